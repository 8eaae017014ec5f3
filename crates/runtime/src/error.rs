//! Errors of preparing and starting a plugin process. Errors of a call on a running
//! plugin are [`crate::CallError`]: those become error responses, these mean the
//! call could not be attempted.

use std::io;
use std::path::PathBuf;

/// Why a plugin could not be prepared or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The sandbox could not be prepared or set up; the plugin never ran.
    #[error(
        "plugin {plugin}: the sandbox could not be set up: {detail}; `plugd doctor` shows which isolation layers this machine supports"
    )]
    SandboxSetup {
        /// The plugin (`id@version`).
        plugin: String,
        /// What failed, naming the setup step.
        detail: String,
    },
    /// The manifest's entry point is not a safe relative path.
    #[error(
        "plugin {plugin}: entry point '{entry_point}' {reason}; name a file inside the plugin directory, e.g. 'plugin.py'"
    )]
    EntryPointInvalid {
        /// The plugin (`id@version`).
        plugin: String,
        /// The entry point as written.
        entry_point: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The entry point resolves (through symlinks) outside the plugin directory.
    #[error(
        "plugin {plugin}: entry point '{entry_point}' resolves to {} which is outside the plugin directory {}; plugd only runs files shipped in the package",
        resolved.display(), plugin_dir.display()
    )]
    EntryPointEscapes {
        /// The plugin (`id@version`).
        plugin: String,
        /// The entry point as written.
        entry_point: String,
        /// Where it leads.
        resolved: PathBuf,
        /// The plugin directory.
        plugin_dir: PathBuf,
    },
    /// The entry point file cannot be found or read.
    #[error("plugin {plugin}: entry point {} cannot be used; check `entry_point` in the manifest and that the file is in the package", path.display())]
    EntryPointMissing {
        /// The plugin (`id@version`).
        plugin: String,
        /// Where it was looked for.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: io::Error,
    },
    /// The entry point is a directory or another non-file.
    #[error("plugin {plugin}: entry point {} is not a regular file; `entry_point` must name the program to run", path.display())]
    EntryPointNotFile {
        /// The plugin (`id@version`).
        plugin: String,
        /// The path.
        path: PathBuf,
    },
    /// Nothing says how to run the entry point, and it is not executable.
    #[error(
        "plugin {plugin}: entry point {} is not executable and plugd cannot tell its language ({why}); set `language` (python, r, bash, node) in the manifest, or ship the file with its executable bit set",
        path.display()
    )]
    NotExecutable {
        /// The plugin (`id@version`).
        plugin: String,
        /// The entry point.
        path: PathBuf,
        /// What was looked at.
        why: &'static str,
    },
    /// The manifest's `language` is not one an NDJSON plugin can be written in.
    #[error(
        "plugin {plugin}: language '{language}' cannot run as an ndjson plugin; use one of python, r, bash, node, exec"
    )]
    UnsupportedLanguage {
        /// The plugin (`id@version`).
        plugin: String,
        /// The language as written.
        language: String,
    },
    /// The interpreter the plugin needs is not installed.
    #[error(
        "plugin {plugin} is written in {language} but `{program}` was not found on PATH when plugd started; install it or put it on plugd's PATH"
    )]
    InterpreterMissing {
        /// The plugin (`id@version`).
        plugin: String,
        /// The language.
        language: &'static str,
        /// The program looked for.
        program: String,
    },
    /// A directory plugd was given does not exist or cannot be resolved.
    #[error("the {what} {} cannot be used", path.display())]
    Directory {
        /// Which directory ("plugin directory", "work directory").
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: io::Error,
    },
    /// The operating system refused to start the process.
    #[error("could not start {} for plugin {plugin} (in {}); check that it exists and is executable", program.display(), cwd.display())]
    Spawn {
        /// The plugin (`id@version`).
        plugin: String,
        /// The program.
        program: PathBuf,
        /// The working directory.
        cwd: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A `python-function` entry point or handler is not `module:attr`.
    #[error(
        "plugin {plugin}: {what} '{given}' {reason}; write it as `module:function` or `module:Class`, e.g. 'plugin:MyPlugin' for plugin.py"
    )]
    PythonTargetInvalid {
        /// The plugin (`id@version`).
        plugin: String,
        /// Which one: "entry point" or "handler for action 'x'".
        what: String,
        /// The text as written.
        given: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A setting in the environment is unusable.
    #[error("{name}={value:?} is not usable: {reason}")]
    InvalidSetting {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is expected.
        reason: String,
    },
}
