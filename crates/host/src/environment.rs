//! Per-plugin language environments, prepared at install time (DESIGN §6):
//! a Python virtualenv holding the plugin's declared packages, because plugins
//! run without network.

use std::path::PathBuf;

use crate::Host;

/// A plugin version's prepared environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginEnv {
    /// The Python interpreter to run the plugin with (the venv's `bin/python`).
    pub python: PathBuf,
    /// Paths the sandbox must show read-only for it to work (the venv and the
    /// base interpreter's prefix).
    pub paths: Vec<PathBuf>,
}

impl Host {
    /// The environment prepared for `id@version` at install, if it has one.
    pub fn plugin_env(&self, id: &str, version: &str) -> Option<PluginEnv> {
        let _ = (id, version);
        None
    }
}
