//! The escape suite of `escape.rs` once more, with every plugin spawned
//! through a [`plugd_sandbox::ForkServer`] instead of a re-executed helper:
//! the fork server only forks, and the helper it forks must confine exactly
//! as the re-executed one does.

#[path = "escape.rs"]
mod escape;
