//! A stand-in for the `plugd` binary in this crate's own tests and bench: it
//! only runs the sandbox helper mode, exactly as `plugd`'s `main` does first
//! thing.

fn main() {
    plugd_sandbox::run_helper_if_requested();
    eprintln!(
        "plugd-sandbox-init only runs as `plugd-sandbox-init {}`, started by plugd_sandbox",
        plugd_sandbox::HELPER_ARG
    );
    std::process::exit(2);
}
