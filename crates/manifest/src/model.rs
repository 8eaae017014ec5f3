//! The one manifest model every dialect is normalised into (DESIGN.md section 3).
//!
//! Everything here is plain data with serde derives: the host stores a [`Manifest`] as JSON in
//! its database and reads it back, so every type round-trips losslessly through `serde_json`
//! (durations are stored as whole milliseconds, which is the finest unit any dialect can express).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The manifest dialect a plugin was written in. It decides which file is read and how its
/// fields are mapped into the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// `manifest.yaml`: plugd's own format, a superset of Wingman's.
    Plugd,
    /// `manifest.json` without a `verb` field: the OmniScope AI format.
    OmniScope,
    /// `manifest.json` with a `verb` field: the Stage7 format.
    Stage7,
    /// `plugin.yaml`: the Migraine format (hooks, commands, flat config).
    Migraine,
}

impl Dialect {
    /// The name used in `Display`, serde and the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Plugd => "plugd",
            Dialect::OmniScope => "omniscope",
            Dialect::Stage7 => "stage7",
            Dialect::Migraine => "migraine",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Declares a closed set of names that parses from, displays as and serialises to exactly one
/// spelling each, and whose parse error lists every known spelling so the user can fix a typo.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal, { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The one spelling used by `Display`, `FromStr` and serde.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownName {
                        what: $what,
                        given: s.to_string(),
                        known: Self::ALL.iter().map(|v| v.as_str()).collect(),
                    })
            }
        }
    };
}

/// A name that is not one of a fixed set (a runtime, language, trust level, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{given}`: use one of {}", known.join(", "))]
pub struct UnknownName {
    /// What kind of name it was meant to be ("runtime", "language", …).
    pub what: &'static str,
    /// The text that was given.
    pub given: String,
    /// Every accepted spelling.
    pub known: Vec<&'static str>,
}

named_enum!(
    /// How plugd talks to a plugin (DESIGN.md section 4).
    Runtime, "runtime", {
        /// The OmniFlow NDJSON envelope over stdin/stdout; the plugin is any executable.
        Ndjson = "ndjson",
        /// A Python `module:function` or `module:Class` served by plugd's Python shim.
        PythonFunction = "python-function",
        /// OmniScope: one process per call, `/plugin/input.json` in, `/plugin/output.json` out.
        File = "file",
        /// Stage7 Python plugins: a JSON array of inputs on stdin, an array of results on stdout.
        StdioBatch = "stdio-batch",
        /// Stage7 container plugins: a long-lived server with `/health` and `/execute`.
        Http = "http",
        /// Migraine standalone plugins: an executable called with argv.
        Command = "command",
    }
);

named_enum!(
    /// The language a plugin is written in; it picks the interpreter.
    Language, "language", {
        /// Python 3 (`python3`).
        Python = "python",
        /// R (`Rscript`).
        R = "r",
        /// Bash.
        Bash = "bash",
        /// Node.js.
        Node = "node",
        /// A native executable, run directly.
        Exec = "exec",
        /// A container image or Dockerfile (Stage7 container plugins).
        Container = "container",
    }
);

impl Language {
    /// Parses the spellings the dialects use in the wild (`Python`, `R`, `javascript`, `sh`,
    /// `python3`, …) as well as the canonical ones. The canonical spelling is what is stored.
    pub fn parse_lenient(s: &str) -> Result<Language, UnknownName> {
        let lower = s.trim().to_ascii_lowercase();
        let canonical = match lower.as_str() {
            "py" | "python3" => "python",
            "rscript" => "r",
            "sh" | "shell" => "bash",
            "js" | "javascript" | "nodejs" => "node",
            "executable" | "binary" | "native" => "exec",
            "docker" => "container",
            other => other,
        };
        canonical.parse().map_err(|mut e: UnknownName| {
            e.given = s.to_string();
            e
        })
    }
}

named_enum!(
    /// How much a plugin is trusted, which decides how it is confined (DESIGN.md section 5).
    TrustLevel, "trust level", {
        /// Built-in or operator-approved: a plain child process with limits and a timeout.
        Trusted = "trusted",
        /// Signed by a trusted key: sandboxed, widened only by its declared permissions.
        Verified = "verified",
        /// Everything else: every sandbox layer, no network.
        Sandboxed = "sandboxed",
    }
);

#[allow(
    clippy::derivable_impls,
    reason = "the enum comes from `named_enum!`, whose derive list is shared with enums that have no default"
)]
impl Default for TrustLevel {
    fn default() -> Self {
        TrustLevel::Sandboxed
    }
}

named_enum!(
    /// What a plugin's actions can reach (Wingman's `blast_radius.scope`).
    BlastScope, "blast radius scope", {
        /// One virtual machine.
        Vm = "vm",
        /// One container.
        Container = "container",
        /// The whole host.
        Host = "host",
        /// The network.
        Network = "network",
    }
);

named_enum!(
    /// The kind of program a hook handler is.
    HandlerKind, "hook handler type", {
        /// A Python `module` + `function`.
        Python = "python",
        /// A bash script (inline text or a file in the package).
        Bash = "bash",
    }
);

/// Where a plugin starts.
///
/// The textual form is parsed by [`EntryPoint::parse`] with one rule: text of the form
/// `module:name`, where `module` is a dotted Python module path and `name` a Python identifier,
/// names Python code; if `name` starts with an upper-case ASCII letter it is a class
/// (`plugin:HelloPlugin`, PEP 8 class naming), otherwise a function (`log_processor:process_log`).
/// Anything else is a file path relative to the package root (`plugin.py`, `bin/echo`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryPoint {
    /// A file relative to the package root, e.g. `plugin.py` or `bin/echo`.
    File(String),
    /// A Python function: `module:function`.
    ModuleFunction {
        /// Dotted module path, e.g. `log_processor` or `pkg.sub`.
        module: String,
        /// Function name.
        function: String,
    },
    /// A Python class: `module:Class`.
    ModuleClass {
        /// Dotted module path.
        module: String,
        /// Class name.
        class: String,
    },
}

impl EntryPoint {
    /// Parses the textual form (see the type's documentation for the rule). The result is not
    /// yet checked for safety: [`crate::parse`] and [`crate::load`] refuse absolute paths and
    /// `..` components.
    pub fn parse(text: &str) -> EntryPoint {
        if let Some((module, name)) = text.split_once(':')
            && is_module_path(module)
            && is_identifier(name)
        {
            let module = module.to_string();
            return if name.starts_with(|c: char| c.is_ascii_uppercase()) {
                EntryPoint::ModuleClass {
                    module,
                    class: name.to_string(),
                }
            } else {
                EntryPoint::ModuleFunction {
                    module,
                    function: name.to_string(),
                }
            };
        }
        EntryPoint::File(text.to_string())
    }

    /// The file path, when the entry point is a file.
    pub fn file(&self) -> Option<&str> {
        match self {
            EntryPoint::File(path) => Some(path),
            _ => None,
        }
    }

    /// The Python module, when the entry point is Python code.
    pub fn module(&self) -> Option<&str> {
        match self {
            EntryPoint::File(_) => None,
            EntryPoint::ModuleFunction { module, .. } | EntryPoint::ModuleClass { module, .. } => {
                Some(module)
            }
        }
    }
}

impl fmt::Display for EntryPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryPoint::File(path) => f.write_str(path),
            EntryPoint::ModuleFunction { module, function } => write!(f, "{module}:{function}"),
            EntryPoint::ModuleClass { module, class } => write!(f, "{module}:{class}"),
        }
    }
}

/// A Python identifier, restricted to ASCII (what plugins use in practice, and what the shim
/// can import without surprises).
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A dotted Python module path such as `pkg.sub.module`.
pub(crate) fn is_module_path(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(is_identifier)
}

/// One permission a plugin asks for: `resource:action[:qualifier]`.
///
/// The dialects' other spellings are mapped onto this form and the original text is kept:
/// OmniScope's `read_data` → `data:read`, `write_data` → `data:write`, `network` →
/// `net:connect`, `file_system` → `fs:access` (file system access beyond the plugin's own
/// directories); Stage7's `network_access` → `net:connect` and its dotted `fs.read` → `fs:read`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Permission {
    /// What is accessed: `net`, `fs`, `docker`, `proxmox`, `data`, …
    pub resource: String,
    /// What is done to it: `connect`, `read`, `restart`, `snapshot`, …
    pub action: String,
    /// Everything after the second `:`, e.g. `/data` in `fs:read:/data` or `create` in
    /// `proxmox:snapshot:create`. It may itself contain `:` (`net:connect:example.com:443`).
    pub qualifier: Option<String>,
    /// The text as written in the manifest.
    pub original: String,
}

impl Permission {
    /// Parses `resource:action[:qualifier]` (lower-case resource and action) or one of the
    /// OmniScope names. Stage7's spellings are handled by the Stage7 reader, not here, so that
    /// a dotted name in another dialect is reported rather than guessed at.
    pub fn parse(text: &str) -> Result<Permission, String> {
        let (resource, action, qualifier) = match text {
            "read_data" => ("data", "read", None),
            "write_data" => ("data", "write", None),
            "network" => ("net", "connect", None),
            "file_system" => ("fs", "access", None),
            _ => return Self::parse_structured(text),
        };
        Ok(Permission {
            resource: resource.to_string(),
            action: action.to_string(),
            qualifier: qualifier.map(str::to_string),
            original: text.to_string(),
        })
    }

    fn parse_structured(text: &str) -> Result<Permission, String> {
        let help = "write `resource:action` or `resource:action:qualifier` in lower case, e.g. \
                    `net:connect`, `fs:read:/data` or `docker:restart` (or one of read_data, \
                    write_data, network, file_system)";
        let mut parts = text.splitn(3, ':');
        let resource = parts.next().unwrap_or_default();
        let Some(action) = parts.next() else {
            return Err(format!("`{text}` has no `:action` part; {help}"));
        };
        let qualifier = parts.next();
        for (what, part) in [("resource", resource), ("action", action)] {
            if !is_permission_word(part) {
                return Err(format!(
                    "the {what} `{part}` in `{text}` must be lower-case letters, digits, `_` or `-`; {help}"
                ));
            }
        }
        if let Some(q) = qualifier
            && (q.is_empty() || q.chars().any(char::is_control))
        {
            return Err(format!(
                "the qualifier in `{text}` is empty or holds control characters; {help}"
            ));
        }
        Ok(Permission {
            resource: resource.to_string(),
            action: action.to_string(),
            qualifier: qualifier.map(str::to_string),
            original: text.to_string(),
        })
    }

    /// Whether this permission lets the plugin use the network (`net:*` or `http:*`).
    pub fn grants_network(&self) -> bool {
        matches!(self.resource.as_str(), "net" | "http")
    }
}

fn is_permission_word(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

impl fmt::Display for Permission {
    /// The canonical `resource:action[:qualifier]` form (not the original spelling).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.resource, self.action)?;
        if let Some(q) = &self.qualifier {
            write!(f, ":{q}")?;
        }
        Ok(())
    }
}

/// One action a plugin can be called with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// The name callers use (`plugd exec ID ACTION`).
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// A JSON Schema (or any description) of its arguments, as written.
    pub input: Option<serde_json::Value>,
    /// A JSON Schema (or any description) of its result, as written.
    pub output: Option<serde_json::Value>,
}

/// One command of a Migraine standalone plugin, passed as `argv[1]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandSpec {
    /// The command name.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// A usage line for people.
    pub usage: Option<String>,
}

/// The program a hook runs (Migraine's `handler` and `on_error`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookHandler {
    /// Python or bash.
    pub kind: HandlerKind,
    /// Python module (for `python`).
    pub module: Option<String>,
    /// Python function (for `python`).
    pub function: Option<String>,
    /// Bash script: inline text, or a file in the package when it is a single `*.sh` path.
    pub script: Option<String>,
}

/// A subscription to a host event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// The event name (`command-output`, `pre-command`, `workflow:post-deploy`, …).
    pub event: String,
    /// A regular expression the event subject must match (Migraine matches command text).
    pub pattern: Option<String>,
    /// The program to run.
    pub handler: Option<HookHandler>,
    /// A bash fallback run when the handler fails (Migraine's hook-level `script`).
    pub script: Option<String>,
    /// A command of this plugin to run instead of a handler (Migraine standalone plugins).
    pub command: Option<String>,
    /// What to run when the handler fails.
    pub on_error: Option<HookHandler>,
    /// Order among hooks of the same event; higher runs first. Default 0.
    pub priority: i64,
}

/// What a plugin's actions can reach and change (Wingman).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlastRadius {
    /// The widest thing an action can touch.
    pub scope: Option<BlastScope>,
    /// Whether actions change state.
    pub mutates_state: Option<bool>,
    /// Whether actions can be undone.
    pub reversible: Option<bool>,
}

/// One configuration option and its schema.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigOption {
    /// The value type (`string`, `number`, `integer`, `boolean`, `array`, `object`, or a
    /// dialect's own word such as `select`); inferred from the default when the dialect only
    /// gives a value (Migraine).
    pub kind: Option<String>,
    /// The value used when the caller gives none.
    pub default: Option<serde_json::Value>,
    /// What it is for.
    pub description: Option<String>,
    /// The allowed values, when restricted.
    pub options: Vec<serde_json::Value>,
    /// Whether a value must be given (Stage7 `required`).
    pub required: bool,
}

/// Resource limits a plugin asks for. Unset fields take plugd's defaults (DESIGN.md section 5).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// Memory limit in bytes.
    pub memory: Option<u64>,
    /// CPU share in cores (`0.5` = half a core).
    pub cpu: Option<f64>,
    /// Wall-clock limit per call (serialised as milliseconds).
    #[serde(with = "opt_millis", default)]
    pub timeout: Option<Duration>,
    /// Maximum number of processes.
    pub processes: Option<u32>,
}

/// Dependencies by ecosystem.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependencies {
    /// Other plugd plugins, by id, with the versions accepted.
    pub plugins: BTreeMap<String, semver::VersionReq>,
    /// Python requirement strings (`numpy`, `httpx>=0.24.0`).
    pub python: Vec<String>,
    /// R package names.
    pub r: Vec<String>,
    /// System requirements (`docker`, `docker-socket`); informational, plugd installs none.
    pub system: Vec<String>,
}

impl Dependencies {
    /// Whether nothing is declared.
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
            && self.python.is_empty()
            && self.r.is_empty()
            && self.system.is_empty()
    }
}

/// How to reach an HTTP plugin (Stage7 container plugins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpSpec {
    /// The port the server listens on inside its own network namespace.
    pub port: u16,
    /// The health-check path (`GET`, expects 200).
    pub health_path: String,
    /// Time between health checks (serialised as milliseconds).
    #[serde(with = "millis")]
    pub health_interval: Duration,
    /// Time one health check may take (serialised as milliseconds).
    #[serde(with = "millis")]
    pub health_timeout: Duration,
    /// Failed checks in a row before the instance is considered down.
    pub health_retries: u32,
    /// The path calls are sent to.
    pub execute_path: String,
    /// The HTTP method of calls (upper case).
    pub method: String,
    /// Time one call may take (serialised as milliseconds).
    #[serde(with = "millis")]
    pub timeout: Duration,
}

impl HttpSpec {
    /// The port of the Stage7 container template, used when a manifest names none.
    pub const DEFAULT_PORT: u16 = 8080;
}

impl Default for HttpSpec {
    /// The values of the Stage7 container template.
    fn default() -> Self {
        HttpSpec {
            port: Self::DEFAULT_PORT,
            health_path: "/health".to_string(),
            health_interval: Duration::from_secs(30),
            health_timeout: Duration::from_secs(10),
            health_retries: 3,
            execute_path: "/execute".to_string(),
            method: "POST".to_string(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// One Stage7 input or output definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoDefinition {
    /// The input or output name.
    pub name: String,
    /// Its type (`string`, `number`, `object`, `any`, …), from `type` or `valueType`.
    pub value_type: Option<String>,
    /// Whether the caller must give it.
    pub required: bool,
    /// What it is.
    pub description: Option<String>,
}

/// How to build and start a Stage7 container plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// The image name (informational: plugd runs the server without a container engine).
    pub image: Option<String>,
    /// The Dockerfile, relative to the package root; its `CMD` is the start command when the
    /// manifest gives none.
    pub dockerfile: Option<String>,
    /// The build context, relative to the package root.
    pub build_context: Option<String>,
    /// The start command as argv, when the manifest gives one (`command`).
    pub command: Option<Vec<String>>,
    /// Environment variables for the server.
    pub environment: BTreeMap<String, String>,
}

/// A plugin manifest, normalised from any dialect. See DESIGN.md section 3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Kebab-case id, unique in a store (derived from `name` when the manifest has none).
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Semantic version.
    pub version: semver::Version,
    /// Author or organisation.
    pub author: Option<String>,
    /// Author e-mail.
    pub author_email: Option<String>,
    /// What the plugin does.
    pub description: Option<String>,
    /// Licence name or SPDX expression.
    pub license: Option<String>,
    /// Project home page.
    pub homepage: Option<String>,
    /// Marketplace category (Migraine's plugin `type` lands here).
    pub category: Option<String>,
    /// Marketplace tags.
    pub tags: Vec<String>,
    /// How plugd talks to the plugin (inferred when the manifest has none).
    pub runtime: Runtime,
    /// The plugin's language (inferred from the entry point when absent).
    pub language: Option<Language>,
    /// Where the plugin starts.
    pub entry_point: EntryPoint,
    /// Actions it can be called with; empty means it takes any action name.
    pub actions: Vec<Action>,
    /// Commands of a Migraine standalone plugin (each is also an action).
    pub commands: Vec<CommandSpec>,
    /// Host extension points it plugs into (OmniScope `preprocessing`, …).
    pub extension_points: Vec<String>,
    /// Event subscriptions.
    pub hooks: Vec<Hook>,
    /// Permissions it asks for.
    pub permissions: Vec<Permission>,
    /// How much it is trusted (default `sandboxed`).
    pub trust_level: TrustLevel,
    /// What its actions can reach.
    pub blast_radius: Option<BlastRadius>,
    /// What it needs installed.
    pub dependencies: Dependencies,
    /// Its configuration options.
    pub config: BTreeMap<String, ConfigOption>,
    /// Resource limits it asks for.
    pub resources: Resources,
    /// The oldest platform version it runs on.
    pub min_platform_version: Option<semver::Version>,
    /// The Python versions it supports, as written (Wingman `python_requires`).
    pub python_requires: Option<String>,
    /// How to reach it, for the `http` runtime.
    pub http: Option<HttpSpec>,
    /// A detached signature carried in the manifest (Stage7 `security.trust.signature`).
    pub signature: Option<String>,
    /// Stage7: the verb it implements.
    pub verb: Option<String>,
    /// Stage7: its inputs.
    pub input_definitions: Vec<IoDefinition>,
    /// Stage7: its outputs.
    pub output_definitions: Vec<IoDefinition>,
    /// Stage7: how to build and start its container.
    pub container: Option<ContainerSpec>,
    /// The dialect it was written in.
    pub dialect: Dialect,
}

impl Manifest {
    /// The configuration with every declared default filled in, as passed to the plugin in the
    /// call context. Options without a default are left out.
    pub fn config_defaults(&self) -> serde_json::Map<String, serde_json::Value> {
        self.config
            .iter()
            .filter_map(|(key, option)| option.default.clone().map(|v| (key.clone(), v)))
            .collect()
    }

    /// Whether any declared permission lets the plugin use the network.
    pub fn wants_network(&self) -> bool {
        self.permissions.iter().any(Permission::grants_network)
    }

    /// The action names, in declaration order.
    pub fn action_names(&self) -> impl Iterator<Item = &str> {
        self.actions.iter().map(|a| a.name.as_str())
    }
}

/// Serialises a `Duration` as whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Serialises an `Option<Duration>` as whole milliseconds or null.
mod opt_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::millis::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}
