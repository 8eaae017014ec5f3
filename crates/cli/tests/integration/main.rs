//! Integration tests of the `plugd` binary: each test gets a fresh home and
//! drives the real binary against real plugin processes.
//!
//! - `lifecycle`: validate, pack, install, update, rollback, enable/disable, uninstall, JSON output
//! - `exec`: calling plugins, both argument styles, and every way a plugin can misbehave
//! - `hostile`: malicious packages refused without leaving anything behind
//! - `sandbox`: what a sandboxed plugin can and cannot reach, accounting, `plugd doctor`
//! - `durability`: plugd killed mid-install, and installs racing on one home

mod durability;
mod exec;
mod hostile;
mod lifecycle;
mod sandbox;
mod util;
