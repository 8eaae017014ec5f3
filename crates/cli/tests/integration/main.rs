//! Integration tests of the `plugd` binary: each test gets a fresh home and
//! drives the real binary against real plugin processes.
//!
//! - `lifecycle`: validate, pack, install, update, rollback, enable/disable, uninstall, JSON output
//! - `exec`: calling plugins, both argument styles, and every way a plugin can misbehave
//! - `hostile`: malicious packages refused without leaving anything behind
//! - `sandbox`: what a sandboxed plugin can and cannot reach, accounting, `plugd doctor`
//! - `trust`: scan, install policy, keys and signatures (issue 5)
//! - `oneshot`: the `file`, `stdio-batch` and `command` runtimes: examples and failure cases
//! - `conformance`: `plugd test` on every envelope example and on a sloppy plugin, `plugd bench`
//! - `update`: the health check before activation, consent for new permissions
//! - `durability`: plugd killed mid-install, and installs racing on one home
//! - `http`: Stage7 container plugins: private port 8080 per instance, inputs, start failures, the Flask example
//! - `env`: per-plugin Python virtualenvs and R package checks at install

mod conformance;
mod durability;
mod env;
mod exec;
mod hostile;
mod http;
mod lifecycle;
mod oneshot;
mod sandbox;
mod trust;
mod update;
mod util;
