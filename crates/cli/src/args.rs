//! The command line, as clap sees it. Nothing here does work: `commands` turns
//! these values into host calls.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// plugd: install, verify, version and run plugins written in any language.
#[derive(Debug, Parser)]
#[command(name = "plugd", version, about, long_about = None)]
#[command(
    after_help = "Exit status: 0 success, 1 the operation failed (or the plugin answered an error), 2 bad usage.\n\
Environment: PLUGD_HOME (the data directory), PLUGD_LOG (log filter, e.g. `debug`),\n\
OMNIFLOW_EXEC_TIMEOUT and OMNIFLOW_PLUGIN_MAX_LINE (passed to plugins and honoured by plugd)."
)]
pub struct Cli {
    /// Where plugd keeps plugins, its database and work directories
    /// [default: $XDG_DATA_HOME/plugd, i.e. ~/.local/share/plugd].
    #[arg(long, global = true, env = "PLUGD_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// Print one JSON document on stdout instead of text for people.
    #[arg(long, global = true)]
    pub json: bool,

    /// The operation.
    #[command(subcommand)]
    pub command: Command,
}

/// Every plugd subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a plugin's manifest (a directory, a manifest file or a .tar.gz) and list every problem.
    Validate {
        /// Plugin directory, manifest file or package.
        path: PathBuf,
        #[command(flatten)]
        limits: UnpackLimits,
    },
    /// Make a deterministic .tar.gz package of a plugin directory.
    Pack {
        /// The plugin directory.
        dir: PathBuf,
        /// Where to write the package [default: ./<id>-<version>.tar.gz].
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Install a plugin from a directory or a .tar.gz (installed disabled unless --enable).
    Install {
        /// Plugin directory or package.
        source: PathBuf,
        /// Enable the plugin right away.
        #[arg(long)]
        enable: bool,
        #[command(flatten)]
        limits: UnpackLimits,
        #[command(flatten)]
        trust: crate::trust::InstallTrustArgs,
    },
    /// List installed plugins.
    List,
    /// Show one plugin: versions, state and audit log.
    Info {
        /// Plugin id.
        id: String,
    },
    /// Allow calls to a plugin.
    Enable {
        /// Plugin id.
        id: String,
    },
    /// Refuse calls to a plugin (it stays installed).
    Disable {
        /// Plugin id.
        id: String,
    },
    /// Install a newer version of a plugin beside the old one and make it active.
    Update {
        /// Plugin id.
        id: String,
        /// Plugin directory or package holding the new version.
        source: PathBuf,
        /// Allow the new version to declare permissions the active one does not.
        #[arg(long)]
        accept_permissions: bool,
        #[command(flatten)]
        limits: UnpackLimits,
        #[command(flatten)]
        trust: crate::trust::InstallTrustArgs,
    },
    /// Make an installed older version active again, recording why.
    Rollback {
        /// Plugin id.
        id: String,
        /// The version to return to [default: the newest installed version older than the active one].
        #[arg(long, value_name = "VERSION")]
        to: Option<String>,
        /// Why (recorded in the audit log).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Remove every version of a plugin.
    Uninstall {
        /// Plugin id.
        id: String,
    },
    /// Scan a plugin directory or package for security issues (exit 1 on a high-severity finding).
    Scan(crate::trust::ScanArgs),
    /// Manage signing keys and the keys trusted for `verified` plugins.
    Key {
        /// The key operation.
        #[command(subcommand)]
        command: crate::trust::KeyCommand,
    },
    /// Sign a plugin directory or package: writes <package>.minisig covering its id, version and digest.
    Sign(crate::trust::SignArgs),
    /// Call an action of a plugin and print the body of its response.
    Exec(ExecArgs),
    /// List recent executions.
    History {
        /// Only this plugin's executions.
        id: Option<String>,
        /// How many to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show which sandbox layers this machine supports and which interpreters plugins can use.
    Doctor,
    /// Measure warm calls to an installed plugin: p50, p99 and calls/s (JSON with --json).
    Bench(BenchArgs),
    /// Check that a plugin directory speaks the protocol: health, each action, malformed JSON,
    /// an over-long line, an unknown type and action, shutdown and exit (exit 1 if any check fails).
    Test {
        /// The plugin directory (not installed: it runs from where it is, sandboxed as its trust level says).
        dir: PathBuf,
    },
}

/// `plugd exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Plugin id.
    pub id: String,
    /// The action [default: the plugin's only action].
    pub action: Option<String>,
    /// Arguments as a JSON object, or @FILE to read them from a file (@- for stdin).
    #[arg(long, value_name = "JSON|@FILE")]
    pub args: Option<String>,
    /// Input data (OmniScope `input_data`): JSON, or @FILE.
    #[arg(long, value_name = "JSON|@FILE")]
    pub input: Option<String>,
    /// A parameter (OmniScope `parameters`); VALUE is parsed as JSON when it is JSON, else kept as text. Repeatable.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// The extension point the call is made for (e.g. `preprocessing`).
    #[arg(long, value_name = "NAME")]
    pub extension_point: Option<String>,
    /// Seconds before the plugin is killed [default: OMNIFLOW_EXEC_TIMEOUT, else 10].
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<f64>,
    /// Argument words after `--`, for `command` plugins (`plugd exec ID COMMAND -- ARGS…`);
    /// sent as `args.argv`.
    #[arg(last = true, value_name = "ARGS")]
    pub argv: Vec<String>,
}

/// `plugd bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Plugin id (an `ndjson` or `python-function` plugin).
    pub id: String,
    /// The action [default: the plugin's only action].
    pub action: Option<String>,
    /// Arguments of every call as a JSON object, or @FILE.
    #[arg(long, value_name = "JSON|@FILE")]
    pub args: Option<String>,
    /// How many calls to time (after a warm-up of a tenth of them, 10 to 1000).
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub calls: usize,
    /// Calls in flight at once (the pool gets min(C, cores) workers).
    #[arg(long, default_value_t = 1, value_name = "C")]
    pub concurrency: usize,
}

/// Bounds on unpacking a package; the defaults are far above any real plugin.
#[derive(Debug, Args, Clone)]
pub struct UnpackLimits {
    /// Refuse packages larger than this many bytes once unpacked.
    #[arg(long, env = "PLUGD_MAX_UNPACKED_BYTES", value_name = "BYTES")]
    pub max_unpacked_bytes: Option<u64>,
    /// Refuse packages with more files than this.
    #[arg(long, env = "PLUGD_MAX_FILES", value_name = "N")]
    pub max_files: Option<u64>,
    /// Refuse packages that unpack to more than N times their compressed size.
    #[arg(long, env = "PLUGD_MAX_RATIO", value_name = "N")]
    pub max_ratio: Option<u64>,
    /// Refuse packages holding a path longer than this many bytes.
    #[arg(long, env = "PLUGD_MAX_PATH_BYTES", value_name = "BYTES")]
    pub max_path_bytes: Option<usize>,
    /// Refuse packages nesting directories deeper than this.
    #[arg(long, env = "PLUGD_MAX_DEPTH", value_name = "N")]
    pub max_depth: Option<usize>,
}

impl UnpackLimits {
    /// The package crate's limits with these overrides applied.
    pub fn resolve(&self) -> plugd_package::Limits {
        let mut limits = plugd_package::Limits::default();
        if let Some(v) = self.max_unpacked_bytes {
            limits.max_unpacked_bytes = v;
        }
        if let Some(v) = self.max_files {
            limits.max_files = v;
        }
        if let Some(v) = self.max_ratio {
            limits.max_ratio = v;
        }
        if let Some(v) = self.max_path_bytes {
            limits.max_path_bytes = v;
        }
        if let Some(v) = self.max_depth {
            limits.max_depth = v;
        }
        limits
    }
}
