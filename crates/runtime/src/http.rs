//! The `http` runtime (DESIGN §4): Stage7 container plugins run as local HTTP
//! servers, without a container engine.
//!
//! A Stage7 container plugin is a server answering `GET /health` with 200
//! `{"status":"healthy"}` and `POST /execute` with
//! `{"inputs":{…},"context":{trace_id,plugin_id,version}}` → `{"success",
//! "outputs", "error"?}`. plugd starts it itself:
//!
//! * **What to run** — [`dockerfile_command`] reads the package's Dockerfile
//!   (treated as hostile input: size cap, only `CMD`/`ENTRYPOINT` looked at) and
//!   [`http_launch`] turns that argv into a [`LaunchSpec`] in which `python` is the
//!   plugin's own interpreter (its install-time virtualenv when it has one).
//! * **Where it listens** — through [`crate::launch`] with a policy whose network
//!   is `PrivateLoopback`: each instance has its own network namespace with only
//!   loopback, so a hard-coded port (8080) never collides and nothing outside can
//!   reach it. plugd connects with [`plugd_sandbox::connect_loopback`] (a socket
//!   made inside that namespace); with [`Isolation::Direct`] (tests) it connects to
//!   `127.0.0.1` on the host.
//! * **Talking to it** — hyper's HTTP/1 client connection over that one socket.
//!   Not `reqwest`: plugd must hand hyper a socket it created in another network
//!   namespace, which a pooled, resolver-driven client cannot take.
//! * **Lifetime** — an [`HttpInstance`] is long-lived and health-checked: it
//!   starts on first use, is checked again when its last good check is older
//!   than the manifest's interval, and is restarted on the next call after it
//!   crashed or failed `retries` checks in a row. [`http_call_once`] is what
//!   `plugd exec` does: start, health, one call, stop.
//!
//! Health settings are Stage7's Docker `HEALTHCHECK` values (interval between
//! checks of a running container, `retries` failures in a row = unhealthy). At
//! start-up plugd polls faster than `interval` (every [`HttpSettings::poll_interval`])
//! so a server that is ready in 300 ms is used after 300 ms, and gives up after
//! [`HttpSettings::startup_deadline`] — the time Docker would take to call it
//! unhealthy.
//!
//! Every failure becomes an error [`Response`] with an OmniFlow code: 201 for
//! inputs that do not match `inputDefinitions` (checked before any process
//! starts), 301 for a call past `api.timeout`, 100 for a body that is not JSON,
//! 101 for one larger than the line limit, the plugin's own HTTP status when it
//! is one DESIGN §2 passes through (400, 408, 413, 422, 500; any other non-2xx
//! becomes 500), 500 for `success:false`, and 400 when the server cannot be
//! started or reached — those messages quote the end of the server's log.

use crate::worker::human_duration;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Component, Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use serde_json::{Map, Value, json};
use tokio::io::AsyncReadExt;

use crate::isolation::{Isolation, accounting, explain_limit, launch};
use crate::protocol::{ExecCall, Response, codes};
use crate::{
    CallReport, DEFAULT_MAX_LINE, ExitReport, Interpreters, LaunchSpec, RuntimeError,
    STDERR_TAIL_BYTES, WorkerStats, find_program,
};

/// A Dockerfile larger than this is refused: real ones are a few KiB, and plugd
/// reads it whole.
pub const MAX_DOCKERFILE_BYTES: u64 = 64 * 1024;
/// Start-up polling is never slower than this, whatever the manifest's interval.
const MAX_STARTUP_POLL: Duration = Duration::from_millis(200);
/// A server gets at least this long to become healthy.
const MIN_STARTUP: Duration = Duration::from_secs(2);
/// How much of the server's log an error message quotes.
const MESSAGE_TAIL_BYTES: usize = 1024;
/// PATH given to servers besides their interpreter's own directory.
const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Time to let the log readers finish after the server exited, so the last lines
/// (a traceback) are in the tail an error quotes.
const LOG_DRAIN: Duration = Duration::from_millis(500);

/// One declared input (Stage7 `inputDefinitions`), checked before a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    /// The input name (an `args` key).
    pub name: String,
    /// `string | number | integer | boolean | array | object`; anything else (or
    /// `None`, `any`) accepts every value.
    pub value_type: Option<String>,
    /// Whether a call must give it (a `null` counts as not given).
    pub required: bool,
}

/// How to reach a server and judge its answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// The port it listens on (inside its own network namespace when sandboxed).
    pub port: u16,
    /// `GET` path of the health check.
    pub health_path: String,
    /// Docker `HEALTHCHECK --interval`: how old a good check may be before a call
    /// checks again.
    pub health_interval: Duration,
    /// How long one health check may take.
    pub health_timeout: Duration,
    /// Failed checks in a row before the server is unhealthy.
    pub health_retries: u32,
    /// The path calls go to.
    pub endpoint: String,
    /// The method of calls (upper case).
    pub method: String,
    /// How long one call may take (Stage7 `api.timeout`).
    pub timeout: Duration,
    /// Largest response body accepted (the envelope's line limit).
    pub max_response_bytes: usize,
}

impl Default for HttpSettings {
    /// Port 8080, `/health` polled every 200 ms with 2 s per check and 25
    /// retries, `POST /execute` within 30 s.
    fn default() -> Self {
        HttpSettings {
            port: 8080,
            health_path: "/health".into(),
            health_interval: Duration::from_millis(200),
            health_timeout: Duration::from_secs(2),
            health_retries: 25,
            endpoint: "/execute".into(),
            method: "POST".into(),
            timeout: Duration::from_secs(30),
            max_response_bytes: DEFAULT_MAX_LINE,
        }
    }
}

impl HttpSettings {
    /// How often start-up polls: the interval, but at least every 200 ms.
    pub fn poll_interval(&self) -> Duration {
        self.health_interval
            .min(MAX_STARTUP_POLL)
            .max(Duration::from_millis(10))
    }

    /// How long a server may take to become healthy: `interval × retries` (when
    /// Docker would declare it unhealthy), at least 2 s.
    pub fn startup_deadline(&self) -> Duration {
        self.health_interval
            .saturating_mul(self.health_retries.max(1))
            .max(MIN_STARTUP)
    }
}

/// Everything needed to run one HTTP plugin version.
#[derive(Debug, Clone)]
pub struct HttpPlugin {
    /// The plugin id (sent in the call context).
    pub plugin_id: String,
    /// Its version (sent in the call context).
    pub version: String,
    /// How to start the server (see [`http_launch`]).
    pub spec: LaunchSpec,
    /// How to reach it.
    pub settings: HttpSettings,
    /// Its declared inputs.
    pub inputs: Vec<InputSpec>,
    /// Time between SIGTERM and SIGKILL when it is stopped.
    pub stop_grace: Duration,
}

impl HttpPlugin {
    /// `id@version`, as logs and messages name the plugin.
    pub fn label(&self) -> String {
        format!("{}@{}", self.plugin_id, self.version)
    }
}

/// Why an HTTP plugin could not be started or called. Each becomes an error
/// [`Response`] through [`HttpError::into_response`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The Dockerfile cannot be read or is unusable.
    #[error("Dockerfile {}: {reason}", path.display())]
    Dockerfile {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// The start command cannot be run.
    #[error("plugin {plugin}: the start command {argv:?} cannot be run: {reason}")]
    StartCommand {
        /// `id@version`.
        plugin: String,
        /// The command as given.
        argv: Vec<String>,
        /// Why, and what to do.
        reason: String,
    },
    /// The process could not be launched (or the sandbox not set up).
    #[error(transparent)]
    Launch(#[from] RuntimeError),
    /// The server exited before it was healthy.
    #[error(
        "plugin {plugin}: the server {exit} before it answered its health check{}",
        quote(tail)
    )]
    ExitedAtStart {
        /// `id@version`.
        plugin: String,
        /// "exited with status 3", …
        exit: String,
        /// The end of its log.
        tail: String,
    },
    /// The server kept running but never answered its health check as healthy.
    #[error(
        "plugin {plugin}: the server was not healthy within {} (GET {path} on port {port}: {last}); check that it listens on port {port} and answers 200 {{\"status\":\"healthy\"}}, or raise container.healthCheck interval × retries in the manifest{}",
        human_duration(*after), quote(tail)
    )]
    NeverHealthy {
        /// `id@version`.
        plugin: String,
        /// How long plugd waited.
        after: Duration,
        /// The health path.
        path: String,
        /// The port.
        port: u16,
        /// What the last check saw.
        last: String,
        /// The end of its log.
        tail: String,
    },
    /// A required input was not given.
    #[error(
        "plugin {plugin}: required input `{name}` is missing; pass it in --args, e.g. {{\"{name}\": …}}"
    )]
    MissingInput {
        /// `id@version`.
        plugin: String,
        /// The input.
        name: String,
    },
    /// An input has the wrong JSON type.
    #[error("plugin {plugin}: input `{name}` must be {expected} but is {found}")]
    WrongType {
        /// `id@version`.
        plugin: String,
        /// The input.
        name: String,
        /// The declared type.
        expected: String,
        /// What was given.
        found: &'static str,
    },
    /// The call did not complete within `api.timeout`.
    #[error("plugin {plugin} did not answer {method} {path} within {}; raise api.timeout in the manifest if it needs longer", human_duration(*after))]
    Timeout {
        /// `id@version`.
        plugin: String,
        /// The method.
        method: String,
        /// The path.
        path: String,
        /// The timeout.
        after: Duration,
    },
    /// The server could not be reached, or the exchange broke off.
    #[error("plugin {plugin}: {what}{}", quote(tail))]
    Unreachable {
        /// `id@version`.
        plugin: String,
        /// What failed ("the connection to port 8080 was refused", "the server exited with status 3 during the call").
        what: String,
        /// The end of its log.
        tail: String,
    },
    /// The server answered with a non-2xx status.
    #[error("plugin {plugin} answered HTTP {status}: {message}")]
    Status {
        /// `id@version`.
        plugin: String,
        /// The HTTP status.
        status: u16,
        /// Its `error` (or `message`) field, or the start of the body.
        message: String,
        /// The body, when it was JSON.
        body: Option<Value>,
    },
    /// The server answered `success: false`.
    #[error("plugin {plugin} failed: {message}")]
    PluginFailed {
        /// `id@version`.
        plugin: String,
        /// Its `error` field.
        message: String,
        /// The whole body.
        body: Value,
    },
    /// The body is not a JSON object.
    #[error(
        "plugin {plugin} answered HTTP {status} with a body that is not a JSON object ({detail}): {snippet:?}"
    )]
    NotJson {
        /// `id@version`.
        plugin: String,
        /// The HTTP status.
        status: u16,
        /// The parse error or the JSON type found.
        detail: String,
        /// The start of the body.
        snippet: String,
    },
    /// The body is larger than the limit.
    #[error(
        "plugin {plugin}'s response is larger than {limit} bytes (OMNIFLOW_PLUGIN_MAX_LINE); return less data or raise the limit"
    )]
    TooLarge {
        /// `id@version`.
        plugin: String,
        /// The limit.
        limit: usize,
    },
}

impl HttpError {
    /// The OmniFlow code of this failure (see the module doc).
    pub fn code(&self) -> i64 {
        match self {
            HttpError::MissingInput { .. } | HttpError::WrongType { .. } => codes::INVALID_ARGS,
            HttpError::Timeout { .. } => codes::TIMEOUT,
            HttpError::NotJson { .. } => codes::MALFORMED_JSON,
            HttpError::TooLarge { .. } => codes::LINE_TOO_LONG,
            HttpError::Status { status, .. } => match status {
                400 | 408 | 413 | 422 | 500 => i64::from(*status),
                _ => 500,
            },
            HttpError::PluginFailed { .. } => 500,
            HttpError::Dockerfile { .. }
            | HttpError::StartCommand { .. }
            | HttpError::Launch(_)
            | HttpError::ExitedAtStart { .. }
            | HttpError::NeverHealthy { .. }
            | HttpError::Unreachable { .. } => codes::INTERNAL,
        }
    }

    /// The error response for request `id`: the code, the message with its
    /// causes, the plugin's body when it sent a JSON one, and
    /// `meta.origin = "plugd"` when plugd (not the plugin) made the error.
    pub fn into_response(self, id: &str) -> Response {
        let mut response = Response::error(id, self.code(), crate::call::error_chain(&self));
        let (origin, kind) = match &self {
            HttpError::Status { .. } | HttpError::PluginFailed { .. } => ("plugin", "plugin"),
            HttpError::MissingInput { .. } | HttpError::WrongType { .. } => ("plugd", "input"),
            HttpError::Timeout { .. } => ("plugd", "timeout"),
            HttpError::NotJson { .. } | HttpError::TooLarge { .. } => ("plugd", "bad_output"),
            _ => ("plugd", "start"),
        };
        response.meta = Some(json!({"origin": origin, "error": kind}));
        response.body = match self {
            HttpError::Status { body, .. } => body,
            HttpError::PluginFailed { body, .. } => Some(body),
            _ => None,
        };
        response
    }
}

// --- the Dockerfile ------------------------------------------------------------

/// The start instruction of a Dockerfile, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerCommand {
    /// Exec form: `["python", "app.py"]`.
    Exec(Vec<String>),
    /// Shell form: `python app.py` (run by `/bin/sh -c` in Docker).
    Shell(String),
}

/// The argv a Dockerfile starts its container with: the last `ENTRYPOINT` and
/// the last `CMD`, combined as Docker does (an exec-form `ENTRYPOINT` gets the
/// exec-form `CMD` as arguments; a shell-form one ignores `CMD`). A shell-form
/// command made only of plain words is split on white space, so `python app.py`
/// still runs the plugin's interpreter; one using shell syntax runs as
/// `/bin/sh -c TEXT`. Every other instruction is ignored: plugd builds no image.
pub fn parse_dockerfile(text: &str) -> Result<Vec<String>, String> {
    let mut cmd = None;
    let mut entrypoint = None;
    for (keyword, rest) in instructions(text) {
        match keyword.to_ascii_uppercase().as_str() {
            "CMD" => cmd = Some(docker_command(&rest)),
            "ENTRYPOINT" => entrypoint = Some(docker_command(&rest)),
            _ => {}
        }
    }
    let argv = match (entrypoint, cmd) {
        (Some(DockerCommand::Exec(mut e)), Some(DockerCommand::Exec(c))) => {
            e.extend(c);
            e
        }
        (Some(DockerCommand::Exec(e)), _) => e,
        (Some(DockerCommand::Shell(s)), _) | (None, Some(DockerCommand::Shell(s))) => {
            shell_argv(&s)
        }
        (None, Some(DockerCommand::Exec(c))) => c,
        (None, None) => {
            return Err(
                "it has neither CMD nor ENTRYPOINT, so plugd cannot tell how to start the server; add e.g. CMD [\"python\", \"app.py\"] or give container.command in the manifest"
                    .into(),
            );
        }
    };
    if argv.first().is_none_or(|p| p.trim().is_empty()) {
        return Err("its CMD/ENTRYPOINT is empty; write e.g. CMD [\"python\", \"app.py\"]".into());
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err("its CMD/ENTRYPOINT contains a NUL byte".into());
    }
    Ok(argv)
}

/// Reads `path` (at most [`MAX_DOCKERFILE_BYTES`], UTF-8) and returns its start
/// argv (see [`parse_dockerfile`]).
pub fn dockerfile_command(path: &Path) -> Result<Vec<String>, HttpError> {
    let bad = |reason: String| HttpError::Dockerfile {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::symlink_metadata(path).map_err(|e| {
        bad(format!(
            "cannot be read ({e}); ship a Dockerfile with a CMD, or give container.command in the manifest"
        ))
    })?;
    if !meta.is_file() {
        return Err(bad("is not a regular file".into()));
    }
    if meta.len() > MAX_DOCKERFILE_BYTES {
        return Err(bad(format!(
            "is {} bytes, more than the {MAX_DOCKERFILE_BYTES} plugd reads",
            meta.len()
        )));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| {
            io::Read::read_to_end(&mut io::Read::take(f, MAX_DOCKERFILE_BYTES + 1), &mut bytes)
        })
        .map_err(|e| bad(format!("cannot be read ({e})")))?;
    if bytes.len() as u64 > MAX_DOCKERFILE_BYTES {
        return Err(bad(format!(
            "is larger than the {MAX_DOCKERFILE_BYTES} bytes plugd reads"
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| bad("is not UTF-8 text".into()))?;
    parse_dockerfile(&text).map_err(bad)
}

/// The instructions of a Dockerfile, `(KEYWORD, arguments)`, with comments and
/// blank lines dropped and `\` continuations joined. Heredocs are not followed:
/// their lines are read as instructions, which only matters if one starts with
/// `CMD`.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (current.is_empty() && trimmed.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                push_instruction(&mut out, &current);
                current.clear();
            }
        }
    }
    push_instruction(&mut out, &current);
    out
}

fn push_instruction(out: &mut Vec<(String, String)>, line: &str) {
    let line = line.trim();
    if line.is_empty() {
        return;
    }
    let (keyword, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    out.push((keyword.to_string(), rest.trim().to_string()));
}

/// Exec form when the arguments are a JSON array of strings (as Docker decides),
/// else shell form.
fn docker_command(rest: &str) -> DockerCommand {
    if rest.starts_with('[')
        && let Ok(argv) = serde_json::from_str::<Vec<String>>(rest)
    {
        return DockerCommand::Exec(argv);
    }
    DockerCommand::Shell(rest.to_string())
}

/// A shell-form command as argv: split when it is plain words, else `sh -c`.
fn shell_argv(text: &str) -> Vec<String> {
    const SHELL_SYNTAX: &[char] = &[
        '$', ';', '&', '|', '<', '>', '`', '(', ')', '*', '?', '[', ']', '{', '}', '\'', '"', '\\',
        '~', '#', '=',
    ];
    if text.contains(SHELL_SYNTAX) {
        vec!["/bin/sh".into(), "-c".into(), text.to_string()]
    } else {
        text.split_whitespace().map(str::to_string).collect()
    }
}

// --- the launch ----------------------------------------------------------------

/// What [`http_launch`] needs to know about the plugin.
#[derive(Debug, Clone)]
pub struct HttpTarget<'a> {
    /// The plugin id.
    pub plugin_id: &'a str,
    /// Its version.
    pub version: &'a str,
    /// The start argv (manifest `container.command`, or the Dockerfile's).
    pub argv: &'a [String],
    /// The installed plugin files; the server's working directory (Docker
    /// images `COPY . .` into their `WORKDIR`).
    pub plugin_dir: &'a Path,
    /// The call's writable directory (`HOME`).
    pub work_dir: &'a Path,
    /// The port, passed as `PORT` too.
    pub port: u16,
    /// `container.environment`.
    pub environment: &'a BTreeMap<String, String>,
}

/// The launch of an HTTP server. The program is resolved as a container would,
/// but with the plugin's own tools: `python`, `python3`, `python3.X` (also as
/// `/usr/local/bin/python…`) are `interpreters.python` (the plugin's virtualenv
/// when it has one, whose `bin` also comes first on `PATH`, for `gunicorn` and
/// friends); `node` and `Rscript` the found interpreters; `./server` a file in
/// the plugin directory; any other bare name is looked up on that `PATH`.
pub fn http_launch(
    target: &HttpTarget<'_>,
    interpreters: &Interpreters,
) -> Result<LaunchSpec, HttpError> {
    let argv = target.argv;
    let refuse = |reason: String| HttpError::StartCommand {
        plugin: format!("{}@{}", target.plugin_id, target.version),
        argv: argv.to_vec(),
        reason,
    };
    let Some(first) = argv.first() else {
        return Err(refuse("it is empty".into()));
    };
    let python_bin = interpreters.python.parent().map(Path::to_path_buf);
    let mut path_value = OsString::new();
    if let Some(bin) = &python_bin {
        path_value.push(bin);
        path_value.push(":");
    }
    path_value.push(SYSTEM_PATH);

    let name = Path::new(first)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let program: PathBuf = if is_python_name(&name)
        && (!first.contains('/') || first.starts_with('/'))
    {
        if !Interpreters::is_found(&interpreters.python) {
            return Err(refuse("python was not found on plugd's PATH".into()));
        }
        interpreters.python.clone()
    } else if first == "node" {
        interpreters.node.clone()
    } else if first == "Rscript" {
        interpreters.rscript.clone()
    } else if first.starts_with('/') {
        let p = PathBuf::from(first);
        if !p.is_file() {
            return Err(refuse(format!(
                "{first} does not exist on this machine (plugd runs the server without its container image); start it with a program from the package, e.g. [\"python\", \"app.py\"]"
            )));
        }
        p
    } else if first.contains('/') {
        let rel = Path::new(first);
        if rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(refuse(format!(
                "{first} leads outside the plugin directory"
            )));
        }
        let p = target.plugin_dir.join(rel);
        let resolved = p
            .canonicalize()
            .map_err(|e| refuse(format!("{} cannot be used ({e})", p.display())))?;
        let root = target
            .plugin_dir
            .canonicalize()
            .map_err(|e| refuse(format!("the plugin directory cannot be used ({e})")))?;
        if !resolved.starts_with(&root) {
            return Err(refuse(format!(
                "{first} leads outside the plugin directory"
            )));
        }
        p
    } else {
        find_program(&path_value, &[first.as_str()]).ok_or_else(|| {
            refuse(format!(
                "`{first}` is not on the plugin's PATH ({}); name a program from the package or python",
                path_value.to_string_lossy()
            ))
        })?
    };
    let mut spec = LaunchSpec {
        program,
        args: argv[1..].iter().map(OsString::from).collect(),
        cwd: target.plugin_dir.to_path_buf(),
        env: Vec::new(),
    };
    spec.set_env("PORT", target.port.to_string());
    for (k, v) in target.environment {
        if !k.starts_with("PLUGD_") && k != "PATH" {
            spec.set_env(k, v);
        }
    }
    spec.set_env("PATH", path_value);
    spec.set_env("HOME", target.work_dir);
    spec.set_env("LANG", "C.UTF-8");
    // The plugin directory is read-only: no __pycache__, and logs unbuffered so a
    // crash's traceback reaches the tail an error quotes.
    spec.set_env("PYTHONDONTWRITEBYTECODE", "1");
    spec.set_env("PYTHONUNBUFFERED", "1");
    spec.set_env("PLUGD_PLUGIN_ID", target.plugin_id);
    spec.set_env("PLUGD_PLUGIN_VERSION", target.version);
    spec.set_env("PLUGD_PLUGIN_DIR", target.plugin_dir);
    Ok(spec)
}

fn is_python_name(name: &str) -> bool {
    name.strip_prefix("python")
        .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

// --- inputs --------------------------------------------------------------------

/// Checks `args` against the declared inputs: every required one present (not
/// `null`), every declared one of its type. Undeclared inputs pass.
pub fn check_inputs(
    plugin: &str,
    inputs: &[InputSpec],
    args: &Map<String, Value>,
) -> Result<(), HttpError> {
    for input in inputs {
        let value = args.get(&input.name).filter(|v| !v.is_null());
        let Some(value) = value else {
            if input.required {
                return Err(HttpError::MissingInput {
                    plugin: plugin.to_string(),
                    name: input.name.clone(),
                });
            }
            continue;
        };
        let Some(expected) = input.value_type.as_deref() else {
            continue;
        };
        let fits = match expected.to_ascii_lowercase().as_str() {
            "string" => value.is_string(),
            "number" => value.is_number(),
            "integer" => value.is_i64() || value.is_u64(),
            "boolean" | "bool" => value.is_boolean(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            // Stage7 has domain types (`plan`, `file`, `any`); plugd cannot check them.
            _ => true,
        };
        if !fits {
            return Err(HttpError::WrongType {
                plugin: plugin.to_string(),
                name: input.name.clone(),
                expected: format!("a {expected}"),
                found: crate::stdio_batch::value_type(value),
            });
        }
    }
    Ok(())
}

/// The request body: each argument as a Stage7 input `{"value", "valueType",
/// "args": {}}` (the shape the Stage7 container template reads), and the context.
pub fn request_body(plugin: &HttpPlugin, call: &ExecCall) -> Value {
    let inputs: Map<String, Value> = call
        .args
        .iter()
        .map(|(name, value)| {
            let declared = plugin
                .inputs
                .iter()
                .find(|i| &i.name == name)
                .and_then(|i| i.value_type.clone());
            let value_type =
                declared.unwrap_or_else(|| crate::stdio_batch::value_type(value).to_string());
            (
                name.clone(),
                json!({"value": value, "valueType": value_type, "args": {}}),
            )
        })
        .collect();
    let context = call.context.as_ref();
    let trace_id = context
        .and_then(|c| c.get("trace_id"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    json!({
        "inputs": inputs,
        "context": {
            "trace_id": trace_id,
            "plugin_id": plugin.plugin_id,
            "version": plugin.version,
        },
    })
}

// --- the running server ----------------------------------------------------------

/// The last bytes of a server's stdout and stderr, interleaved as they came.
#[derive(Debug, Default)]
struct LogTail {
    bytes: Vec<u8>,
}

impl LogTail {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        if self.bytes.len() > STDERR_TAIL_BYTES {
            let cut = self.bytes.len() - STDERR_TAIL_BYTES;
            self.bytes.drain(..cut);
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

type SharedTail = Arc<Mutex<LogTail>>;

fn tail_of(log: &SharedTail) -> String {
    log.lock().map(|t| t.text()).unwrap_or_default()
}

/// One started server process.
struct Running {
    child: tokio::process::Child,
    monitor: Option<plugd_sandbox::Monitor>,
    /// The plugin's pid, or the sandbox helper's: leader of its process group.
    pid: u32,
    sandboxed: bool,
    log: SharedTail,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Running {
    /// A server must not outlive its instance, even when nobody called `stop`.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            kill_group(self.pid, rustix::process::Signal::KILL);
        }
    }
}

fn kill_group(pid: u32, signal: rustix::process::Signal) {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    match rustix::process::kill_process_group(pid, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => {}
        Err(err) => tracing::warn!(
            "could not signal process group {}: {err}",
            pid.as_raw_nonzero()
        ),
    }
}

/// How a server was stopped.
#[derive(Debug, Clone)]
pub struct StopReport {
    /// Its exit status, when it could be reaped.
    pub status: Option<ExitStatus>,
    /// Whether it had to be killed after the grace period.
    pub killed: bool,
    /// The end of its stdout and stderr.
    pub log_tail: String,
    /// The sandbox's accounting, when there was one and it reported.
    pub accounting: Option<plugd_sandbox::Outcome>,
}

/// The health answer that made a server usable.
#[derive(Debug, Clone, PartialEq)]
pub struct Healthy {
    /// The health body (`{"status":"healthy", …}`).
    pub body: Value,
    /// How long start-up took (zero for a re-check).
    pub after: Duration,
}

#[derive(Default)]
struct State {
    running: Option<Running>,
    last_healthy: Option<Instant>,
    starts: u32,
}

/// A long-lived, health-checked HTTP plugin server. Calls may run concurrently;
/// each uses its own connection.
pub struct HttpInstance {
    plugin: HttpPlugin,
    isolation: Isolation,
    state: tokio::sync::Mutex<State>,
}

impl std::fmt::Debug for HttpInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpInstance")
            .field("plugin", &self.plugin.label())
            .finish_non_exhaustive()
    }
}

/// Where one connection goes.
#[derive(Clone, Copy)]
struct Reach {
    pid: u32,
    sandboxed: bool,
    port: u16,
}

impl HttpInstance {
    /// An instance of `plugin` started as `isolation` says (its policy should have
    /// a `PrivateLoopback` network). Nothing runs until [`HttpInstance::start`]
    /// or the first call.
    pub fn new(plugin: HttpPlugin, isolation: Isolation) -> HttpInstance {
        HttpInstance {
            plugin,
            isolation,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// The plugin this instance runs.
    pub fn plugin(&self) -> &HttpPlugin {
        &self.plugin
    }

    /// How many times the server was started (restarts after crashes included).
    pub async fn starts(&self) -> u32 {
        self.state.lock().await.starts
    }

    /// The plugin's (or sandbox helper's) pid while it runs.
    pub async fn pid(&self) -> Option<u32> {
        self.state.lock().await.running.as_ref().map(|r| r.pid)
    }

    /// The end of the server's log so far.
    pub async fn log_tail(&self) -> String {
        let state = self.state.lock().await;
        state
            .running
            .as_ref()
            .map(|r| tail_of(&r.log))
            .unwrap_or_default()
    }

    /// Starts the server if it is not running (or crashed), and waits until it
    /// is healthy. A server that exits or never gets healthy is stopped and the
    /// error quotes its log.
    pub async fn start(&self) -> Result<Healthy, HttpError> {
        let mut state = self.state.lock().await;
        self.ensure_running(&mut state).await
    }

    /// One call: inputs checked, the server started or restarted when needed,
    /// the request sent within `api.timeout`. Always a response, with a fresh id.
    pub async fn call(&self, call: &ExecCall) -> Response {
        let id = uuid::Uuid::new_v4().to_string();
        match self.try_call(call).await {
            Ok(body) => Response::ok(&id, Some(body)),
            Err(err) => err.into_response(&id),
        }
    }

    /// [`HttpInstance::call`], with the failure as a typed error; `Ok` is the
    /// plugin's whole JSON body (`{"success": true, "outputs": …}`).
    pub async fn try_call(&self, call: &ExecCall) -> Result<Value, HttpError> {
        let label = self.plugin.label();
        check_inputs(&label, &self.plugin.inputs, &call.args)?;
        let (reach, log) = {
            let mut state = self.state.lock().await;
            self.ensure_running(&mut state).await?;
            let running = state
                .running
                .as_ref()
                .expect("ensure_running leaves a server");
            (
                Reach {
                    pid: running.pid,
                    sandboxed: running.sandboxed,
                    port: self.plugin.settings.port,
                },
                running.log.clone(),
            )
        };
        let settings = &self.plugin.settings;
        let body =
            serde_json::to_vec(&request_body(&self.plugin, call)).expect("JSON values serialise");
        let answer = tokio::time::timeout(
            settings.timeout,
            exchange(
                reach,
                &settings.method,
                &settings.endpoint,
                Some(body),
                settings.max_response_bytes,
            ),
        )
        .await;
        let (status, bytes) = match answer {
            Err(_) => {
                return Err(HttpError::Timeout {
                    plugin: label,
                    method: settings.method.clone(),
                    path: settings.endpoint.clone(),
                    after: settings.timeout,
                });
            }
            Ok(Err(failure)) => return Err(self.unreachable(failure, &log).await),
            Ok(Ok(answer)) => answer,
        };
        judge(&label, status, &bytes)
    }

    /// Stops the server: SIGTERM (through the sandbox helper, which forwards it),
    /// then SIGKILL to its process group after the grace period. `None` when it
    /// was not running.
    pub async fn stop(&self) -> Option<StopReport> {
        let running = self.state.lock().await.running.take()?;
        Some(stop_running(running, self.plugin.stop_grace).await)
    }

    /// Turns a failed exchange into an error, saying so when the server died.
    async fn unreachable(&self, failure: Failure, log: &SharedTail) -> HttpError {
        let mut what = failure.describe(self.plugin.settings.port);
        if let Failure::TooLarge = failure {
            return HttpError::TooLarge {
                plugin: self.plugin.label(),
                limit: self.plugin.settings.max_response_bytes,
            };
        }
        let mut state = self.state.lock().await;
        if let Some(running) = state.running.as_mut()
            && let Ok(Some(status)) = running.child.try_wait()
        {
            what = format!(
                "the server {} during the call ({what}); it is restarted on the next call",
                describe_exit(Some(status))
            );
        }
        drop(state);
        // The log readers run on their own tasks: give them a moment to take in
        // the server's last words (a traceback) before the tail is quoted.
        tokio::time::sleep(Duration::from_millis(50)).await;
        HttpError::Unreachable {
            plugin: self.plugin.label(),
            what,
            tail: tail_of(log),
        }
    }

    /// Makes `state.running` a healthy server: restarts a dead one, re-checks a
    /// stale one (`retries` failures in a row restart it), starts a missing one.
    async fn ensure_running(&self, state: &mut State) -> Result<Healthy, HttpError> {
        let settings = &self.plugin.settings;
        if let Some(running) = state.running.as_mut() {
            match running.child.try_wait() {
                Ok(None) => {
                    let fresh = state
                        .last_healthy
                        .is_some_and(|t| t.elapsed() < settings.health_interval);
                    if fresh {
                        return Ok(Healthy {
                            body: json!({"status": "healthy"}),
                            after: Duration::ZERO,
                        });
                    }
                    let reach = Reach {
                        pid: running.pid,
                        sandboxed: running.sandboxed,
                        port: settings.port,
                    };
                    let mut last = String::new();
                    for attempt in 0..settings.health_retries.max(1) {
                        if attempt > 0 {
                            tokio::time::sleep(settings.poll_interval()).await;
                        }
                        match check_health(reach, settings).await {
                            Ok(body) => {
                                state.last_healthy = Some(Instant::now());
                                return Ok(Healthy {
                                    body,
                                    after: Duration::ZERO,
                                });
                            }
                            Err(why) => last = why,
                        }
                    }
                    tracing::warn!(plugin = %self.plugin.label(), "server failed {} health checks in a row ({last}); restarting it", settings.health_retries);
                }
                Ok(Some(status)) => {
                    tracing::warn!(plugin = %self.plugin.label(), "server {}; restarting it", describe_exit(Some(status)));
                }
                Err(err) => {
                    tracing::warn!(plugin = %self.plugin.label(), "cannot check the server process ({err}); restarting it");
                }
            }
            if let Some(old) = state.running.take() {
                let report = stop_running(old, self.plugin.stop_grace).await;
                tracing::debug!(plugin = %self.plugin.label(), "previous server log:\n{}", report.log_tail);
            }
            state.last_healthy = None;
        }
        state.starts += 1;
        let (running, healthy) = self.start_new().await?;
        state.running = Some(running);
        state.last_healthy = Some(Instant::now());
        Ok(healthy)
    }

    /// Launches the server and polls its health until it is healthy, exits, or
    /// the start-up deadline passes.
    async fn start_new(&self) -> Result<(Running, Healthy), HttpError> {
        let label = self.plugin.label();
        let settings = &self.plugin.settings;
        let started = Instant::now();
        let mut launched = launch(&self.plugin.spec, &self.isolation)?;
        launched.wait_started(&label).await?;
        let mut child = launched.child;
        // The server does not read stdin; closing it keeps a stray read from
        // blocking forever.
        drop(child.stdin.take());
        let log: SharedTail = Arc::default();
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(read_log(out, log.clone(), label.clone())));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(read_log(err, log.clone(), label.clone())));
        }
        let pid = child.id().unwrap_or(0);
        let mut running = Running {
            child,
            monitor: launched.monitor,
            pid,
            sandboxed: self.isolation.is_sandboxed(),
            log,
            readers,
        };
        let reach = Reach {
            pid,
            sandboxed: running.sandboxed,
            port: settings.port,
        };
        let deadline = started + settings.startup_deadline();
        let mut last;
        loop {
            if let Ok(Some(status)) = running.child.try_wait() {
                drain(&mut running.readers).await;
                let tail = tail_of(&running.log);
                let mut exit = describe_exit(Some(status));
                if let Some(Ok(outcome)) = accounting(running.monitor.take()).await {
                    let mut probe = Response::error("", codes::INTERNAL, exit.clone());
                    probe.meta = Some(json!({"origin": "plugd"}));
                    explain_limit(&mut probe, &outcome);
                    exit = probe.message.unwrap_or(exit);
                }
                return Err(HttpError::ExitedAtStart {
                    plugin: label,
                    exit,
                    tail,
                });
            }
            match check_health_once(reach, settings).await {
                Ok(body) => {
                    return Ok((
                        running,
                        Healthy {
                            body,
                            after: started.elapsed(),
                        },
                    ));
                }
                Err((why, true)) => {
                    let report = stop_running(running, self.plugin.stop_grace).await;
                    return Err(HttpError::Unreachable {
                        plugin: label,
                        what: format!(
                            "plugd cannot reach the server inside its private network ({why}); entering a sandbox's network namespace needs plugd to run as root (`plugd doctor` shows the layers)"
                        ),
                        tail: report.log_tail,
                    });
                }
                Err((why, false)) => last = why,
            }
            if Instant::now() >= deadline {
                let report = stop_running(running, self.plugin.stop_grace).await;
                return Err(HttpError::NeverHealthy {
                    plugin: label,
                    after: started.elapsed(),
                    path: settings.health_path.clone(),
                    port: settings.port,
                    last,
                    tail: report.log_tail,
                });
            }
            tokio::time::sleep(settings.poll_interval()).await;
        }
    }
}

/// SIGTERM, grace, SIGKILL; then the log and accounting.
async fn stop_running(mut running: Running, grace: Duration) -> StopReport {
    let mut killed = false;
    let status = match running.child.try_wait() {
        Ok(Some(status)) => Some(status),
        _ => {
            if running.sandboxed {
                if let Err(err) = plugd_sandbox::terminate(running.pid) {
                    tracing::debug!("could not ask sandbox {} to stop: {err}", running.pid);
                }
            } else {
                kill_group(running.pid, rustix::process::Signal::TERM);
            }
            match tokio::time::timeout(grace, running.child.wait()).await {
                Ok(status) => status.ok(),
                Err(_) => {
                    killed = true;
                    kill_group(running.pid, rustix::process::Signal::KILL);
                    running.child.wait().await.ok()
                }
            }
        }
    };
    drain(&mut running.readers).await;
    let log_tail = tail_of(&running.log);
    let accounting = match accounting(running.monitor.take()).await {
        Some(Ok(outcome)) => Some(outcome),
        Some(Err(err)) => {
            tracing::debug!("no sandbox accounting: {err}");
            None
        }
        None => None,
    };
    StopReport {
        status,
        killed,
        log_tail,
        accounting,
    }
}

/// Lets the log readers reach end of file, but not forever: a grandchild that
/// kept the pipe open must not hold the host.
async fn drain(readers: &mut Vec<tokio::task::JoinHandle<()>>) {
    for reader in readers.drain(..) {
        let abort = reader.abort_handle();
        if tokio::time::timeout(LOG_DRAIN, reader).await.is_err() {
            abort.abort();
        }
    }
}

async fn read_log(mut from: impl tokio::io::AsyncRead + Unpin, log: SharedTail, label: String) {
    let mut buf = vec![0u8; 8192];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tracing::debug!(plugin = %label, "{}", String::from_utf8_lossy(&buf[..n]).trim_end());
                if let Ok(mut tail) = log.lock() {
                    tail.push(&buf[..n]);
                }
            }
        }
    }
}

/// One health check: 200 with a JSON object whose `status` is `healthy`.
async fn check_health(reach: Reach, settings: &HttpSettings) -> Result<Value, String> {
    check_health_once(reach, settings)
        .await
        .map_err(|(why, _)| why)
}

/// Plugd cannot enter the server's network namespace: waiting will not help.
fn cannot_enter(failure: &Failure, reach: Reach) -> bool {
    reach.sandboxed
        && matches!(failure, Failure::Connect(e) if e.kind() == io::ErrorKind::PermissionDenied)
}

/// [`check_health`], also saying whether the failure is one retrying cannot fix.
async fn check_health_once(reach: Reach, settings: &HttpSettings) -> Result<Value, (String, bool)> {
    let answer = tokio::time::timeout(
        settings.health_timeout,
        exchange(
            reach,
            "GET",
            &settings.health_path,
            None,
            settings.max_response_bytes,
        ),
    )
    .await;
    match answer {
        Err(_) => Err((
            format!(
                "no answer within {}",
                human_duration(settings.health_timeout)
            ),
            false,
        )),
        Ok(Err(failure)) => {
            let fatal = cannot_enter(&failure, reach);
            Err((failure.describe(reach.port), fatal))
        }
        Ok(Ok((200, bytes))) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(body) if body.get("status").and_then(Value::as_str) == Some("healthy") => Ok(body),
            Ok(body) => Err((
                format!(
                    "HTTP 200 but not {{\"status\":\"healthy\"}}: {}",
                    snippet(body.to_string().as_bytes())
                ),
                false,
            )),
            Err(_) => Err((
                format!(
                    "HTTP 200 with a body that is not JSON: {:?}",
                    snippet(&bytes)
                ),
                false,
            )),
        },
        Ok(Ok((status, bytes))) => Err((format!("HTTP {status}: {:?}", snippet(&bytes)), false)),
    }
}

/// Judges a call's answer (see the module doc for the codes).
fn judge(label: &str, status: u16, bytes: &[u8]) -> Result<Value, HttpError> {
    let parsed = serde_json::from_slice::<Value>(bytes);
    let ok_status = (200..300).contains(&status);
    if !ok_status {
        let body = parsed.ok().filter(Value::is_object);
        let message = body
            .as_ref()
            .and_then(|b| b.get("error").or_else(|| b.get("message")))
            .map(|e| match e {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| format!("{:?}", snippet(bytes)));
        return Err(HttpError::Status {
            plugin: label.to_string(),
            status,
            message,
            body,
        });
    }
    let body = match parsed {
        Ok(v @ Value::Object(_)) => v,
        Ok(other) => {
            return Err(HttpError::NotJson {
                plugin: label.to_string(),
                status,
                detail: format!("found {}", crate::stdio_batch::value_type(&other)),
                snippet: snippet(bytes),
            });
        }
        Err(e) => {
            return Err(HttpError::NotJson {
                plugin: label.to_string(),
                status,
                detail: e.to_string(),
                snippet: snippet(bytes),
            });
        }
    };
    match body.get("success") {
        Some(Value::Bool(true)) => Ok(body),
        Some(Value::Bool(false)) => {
            let message = match body.get("error") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => {
                    "it answered success: false without an error message".to_string()
                }
                Some(other) => other.to_string(),
            };
            Err(HttpError::PluginFailed {
                plugin: label.to_string(),
                message,
                body,
            })
        }
        _ => Err(HttpError::NotJson {
            plugin: label.to_string(),
            status,
            detail: "it has no boolean `success` field, which Stage7 plugins must send".into(),
            snippet: snippet(bytes),
        }),
    }
}

// --- one HTTP exchange -----------------------------------------------------------

/// Why an exchange failed before an answer was read.
enum Failure {
    Connect(io::Error),
    Http(String),
    TooLarge,
}

impl Failure {
    fn describe(&self, port: u16) -> String {
        match self {
            Failure::Connect(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                format!("nothing accepts connections on port {port}")
            }
            Failure::Connect(e) => format!("cannot connect to port {port}: {e}"),
            Failure::Http(e) => format!("the HTTP exchange failed: {e}"),
            Failure::TooLarge => "the answer is larger than the limit".to_string(),
        }
    }
}

/// Opens a connection, sends one request, reads the status and (capped) body.
async fn exchange(
    reach: Reach,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
    cap: usize,
) -> Result<(u16, Bytes), Failure> {
    let stream = connect(reach).await.map_err(Failure::Connect)?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .map_err(|e| Failure::Http(e.to_string()))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let result = async {
        let method = hyper::Method::from_bytes(method.as_bytes())
            .map_err(|e| Failure::Http(e.to_string()))?;
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, format!("127.0.0.1:{}", reach.port))
            .header(hyper::header::ACCEPT, "application/json")
            .header(hyper::header::CONNECTION, "close");
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Failure::Http(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| Failure::Http(e.to_string()))?;
        let status = response.status().as_u16();
        let declared = response
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > cap as u64) {
            return Err(Failure::TooLarge);
        }
        match Limited::new(response.into_body(), cap).collect().await {
            Ok(collected) => Ok((status, collected.to_bytes())),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                Err(Failure::TooLarge)
            }
            Err(e) => Err(Failure::Http(e.to_string())),
        }
    }
    .await;
    driver.abort();
    result
}

/// A TCP connection to the server: made inside its network namespace when it is
/// sandboxed (on a blocking thread, since entering a namespace is per thread).
async fn connect(reach: Reach) -> io::Result<tokio::net::TcpStream> {
    if !reach.sandboxed {
        return tokio::net::TcpStream::connect(("127.0.0.1", reach.port)).await;
    }
    let Reach { pid, port, .. } = reach;
    let stream = tokio::task::spawn_blocking(move || plugd_sandbox::connect_loopback(pid, port))
        .await
        .map_err(|e| io::Error::other(format!("the connecting thread failed: {e}")))??;
    stream.set_nonblocking(true)?;
    tokio::net::TcpStream::from_std(stream)
}

// --- plugd exec ------------------------------------------------------------------

/// What `plugd exec` does with an HTTP plugin: inputs checked (no process starts
/// when they are wrong), server started and health-checked, one call, server
/// stopped. Never panics; every failure is an error response in the report.
pub async fn http_call_once(
    plugin: &HttpPlugin,
    isolation: &Isolation,
    call: &ExecCall,
) -> CallReport {
    let started = Instant::now();
    let id = uuid::Uuid::new_v4().to_string();
    let label = plugin.label();
    let not_run = |err: HttpError| CallReport {
        response: err.into_response(&id),
        health: None,
        duration: started.elapsed(),
        stderr_tail: String::new(),
        stats: WorkerStats::default(),
        exit: None,
        accounting: None,
    };
    if let Err(err) = check_inputs(&label, &plugin.inputs, &call.args) {
        return not_run(err);
    }
    let instance = HttpInstance::new(plugin.clone(), isolation.clone());
    let (health, response) = match instance.start().await {
        Err(err) => (None, err.into_response(&id)),
        Ok(healthy) => {
            let mut probe = Response::ok(&id, Some(healthy.body));
            probe.meta = Some(
                json!({"startup_ms": u64::try_from(healthy.after.as_millis()).unwrap_or(u64::MAX)}),
            );
            let response = match instance.try_call(call).await {
                Ok(body) => Response::ok(&id, Some(body)),
                Err(err) => err.into_response(&id),
            };
            (Some(probe), response)
        }
    };
    let mut response = response;
    let stop = instance.stop().await;
    let (exit, stderr_tail, outcome) = match stop {
        Some(stop) => {
            if let Some(outcome) = &stop.accounting {
                explain_limit(&mut response, outcome);
            }
            (
                Some(ExitReport {
                    status: stop.status,
                    acknowledged_shutdown: false,
                    killed: stop.killed,
                    stderr_tail: stop.log_tail.clone(),
                    stats: WorkerStats::default(),
                }),
                stop.log_tail,
                stop.accounting,
            )
        }
        None => (None, String::new(), None),
    };
    CallReport {
        response,
        health,
        duration: started.elapsed(),
        stderr_tail,
        stats: WorkerStats::default(),
        exit,
        accounting: outcome,
    }
}

// --- small helpers ---------------------------------------------------------------

fn describe_exit(status: Option<ExitStatus>) -> String {
    match status {
        None => "ended".to_string(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => format!("was killed by signal {sig}"),
            (None, None) => format!("ended ({s})"),
        },
    }
}

/// "; its log ends with: …" with the last KiB, or nothing when the log is empty.
fn quote(tail: &str) -> String {
    let tail = tail.trim_end();
    if tail.is_empty() {
        return "; it wrote nothing to stdout or stderr".to_string();
    }
    let mut start = tail.len().saturating_sub(MESSAGE_TAIL_BYTES);
    while !tail.is_char_boundary(start) {
        start += 1;
    }
    format!("; its log ends with:\n{}", &tail[start..])
}

fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_form_cmd() {
        let argv = parse_dockerfile("FROM python:3.11-slim\nWORKDIR /app\nCOPY . .\nEXPOSE 8080\nCMD [\"python\", \"app.py\"]\n").unwrap();
        assert_eq!(argv, ["python", "app.py"]);
    }

    #[test]
    fn last_cmd_wins_and_case_and_continuations() {
        let text = "# syntax=docker/dockerfile:1\nFROM x AS build\nCMD [\"old\"]\nFROM y\nRUN pip install \\\n  flask\ncmd python3 \\\n   server.py --port 8080\n";
        assert_eq!(
            parse_dockerfile(text).unwrap(),
            ["python3", "server.py", "--port", "8080"]
        );
    }

    #[test]
    fn entrypoint_and_cmd_combine_like_docker() {
        let text = "ENTRYPOINT [\"python\"]\nCMD [\"app.py\", \"-v\"]";
        assert_eq!(parse_dockerfile(text).unwrap(), ["python", "app.py", "-v"]);
        // A shell-form ENTRYPOINT ignores CMD.
        let text = "ENTRYPOINT python app.py\nCMD [\"ignored\"]";
        assert_eq!(parse_dockerfile(text).unwrap(), ["python", "app.py"]);
    }

    #[test]
    fn shell_syntax_runs_through_sh() {
        let argv = parse_dockerfile("CMD python app.py && echo done").unwrap();
        assert_eq!(argv, ["/bin/sh", "-c", "python app.py && echo done"]);
        // Not a JSON array of strings: Docker treats it as shell form.
        let argv = parse_dockerfile("CMD [\"python\", 1]").unwrap();
        assert_eq!(argv[..2], ["/bin/sh", "-c"]);
    }

    #[test]
    fn hostile_dockerfiles_are_refused_clearly() {
        let err = parse_dockerfile("FROM python\nRUN echo hi\n").unwrap_err();
        assert!(err.contains("neither CMD nor ENTRYPOINT"), "{err}");
        assert!(parse_dockerfile("CMD []").unwrap_err().contains("empty"));
        assert!(
            parse_dockerfile("CMD [\"\"]")
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            parse_dockerfile("CMD [\"a\\u0000b\"]")
                .unwrap_err()
                .contains("NUL")
        );
        assert!(parse_dockerfile("").is_err());
        assert!(parse_dockerfile("CMD \\").unwrap_err().contains("empty"));
        // Garbage and binary noise never panic.
        for text in [
            "\u{feff}\u{0}\u{1}",
            "CMD",
            "[[[[",
            "CMD [\"x\"",
            "\\\n\\\n\\",
        ] {
            let _ = parse_dockerfile(text);
        }
    }

    #[test]
    fn oversized_and_non_utf8_dockerfiles_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("Dockerfile.big");
        std::fs::write(&big, "#".repeat(MAX_DOCKERFILE_BYTES as usize + 1)).unwrap();
        let err = dockerfile_command(&big).unwrap_err().to_string();
        assert!(err.contains("more than"), "{err}");
        let bin = dir.path().join("Dockerfile.bin");
        std::fs::write(&bin, b"CMD [\"python\"]\n\xff\xfe").unwrap();
        assert!(
            dockerfile_command(&bin)
                .unwrap_err()
                .to_string()
                .contains("UTF-8")
        );
        let missing = dockerfile_command(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("container.command"), "{missing}");
        assert!(
            dockerfile_command(dir.path())
                .unwrap_err()
                .to_string()
                .contains("regular file")
        );
    }

    fn interpreters() -> Interpreters {
        Interpreters {
            python: "/opt/venv/bin/python".into(),
            bash: "/bin/bash".into(),
            node: "/usr/bin/node".into(),
            rscript: "/usr/bin/Rscript".into(),
        }
    }

    #[test]
    fn python_is_the_plugins_interpreter() {
        let dir = tempfile::tempdir().unwrap();
        let env = BTreeMap::from([
            ("PLUGIN_ENV".to_string(), "production".to_string()),
            ("PLUGD_PLUGIN_ID".to_string(), "spoof".to_string()),
        ]);
        for first in ["python", "python3", "python3.11", "/usr/local/bin/python"] {
            let argv = vec![first.to_string(), "app.py".to_string()];
            let spec = http_launch(
                &HttpTarget {
                    plugin_id: "svc",
                    version: "1.0.0",
                    argv: &argv,
                    plugin_dir: dir.path(),
                    work_dir: Path::new("/tmp"),
                    port: 8080,
                    environment: &env,
                },
                &interpreters(),
            )
            .unwrap();
            assert_eq!(spec.program, Path::new("/opt/venv/bin/python"), "{first}");
            assert_eq!(spec.args, [OsString::from("app.py")]);
            assert_eq!(spec.cwd, dir.path());
            assert_eq!(spec.env_var("PLUGIN_ENV").unwrap(), "production");
            assert_eq!(spec.env_var("PLUGD_PLUGIN_ID").unwrap(), "svc");
            assert_eq!(spec.env_var("PORT").unwrap(), "8080");
            assert!(
                spec.env_var("PATH")
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("/opt/venv/bin:")
            );
        }
    }

    #[test]
    fn start_commands_cannot_leave_the_plugin_dir() {
        let dir = tempfile::tempdir().unwrap();
        for first in ["../../bin/sh", "./../x", "no-such-program-plugd"] {
            let argv = vec![first.to_string()];
            let err = http_launch(
                &HttpTarget {
                    plugin_id: "svc",
                    version: "1.0.0",
                    argv: &argv,
                    plugin_dir: dir.path(),
                    work_dir: Path::new("/tmp"),
                    port: 8080,
                    environment: &BTreeMap::new(),
                },
                &interpreters(),
            )
            .unwrap_err();
            assert!(
                matches!(err, HttpError::StartCommand { .. }),
                "{first}: {err}"
            );
        }
    }

    fn spec(name: &str, ty: Option<&str>, required: bool) -> InputSpec {
        InputSpec {
            name: name.into(),
            value_type: ty.map(str::to_string),
            required,
        }
    }

    #[test]
    fn inputs_are_checked_by_presence_and_type() {
        let inputs = [
            spec("text", Some("string"), true),
            spec("n", Some("number"), false),
            spec("flag", Some("boolean"), false),
            spec("items", Some("array"), false),
            spec("opts", Some("object"), false),
            spec("plan", Some("plan"), false),
        ];
        let args = |v: Value| v.as_object().unwrap().clone();
        check_inputs("p", &inputs, &args(json!({"text": "x", "n": 2.5, "flag": true, "items": [], "opts": {}, "plan": 3, "extra": 1}))).unwrap();
        let err = check_inputs("p", &inputs, &args(json!({"n": 1}))).unwrap_err();
        assert!(matches!(&err, HttpError::MissingInput { name, .. } if name == "text"));
        assert_eq!(err.code(), codes::INVALID_ARGS);
        let err = check_inputs("p", &inputs, &args(json!({"text": null}))).unwrap_err();
        assert!(matches!(err, HttpError::MissingInput { .. }));
        for (name, bad) in [
            ("text", json!(1)),
            ("n", json!("2")),
            ("flag", json!("yes")),
            ("items", json!({})),
            ("opts", json!([])),
        ] {
            let mut a = args(json!({"text": "x"}));
            a.insert(name.into(), bad);
            let err = check_inputs("p", &inputs, &a).unwrap_err();
            assert!(
                matches!(&err, HttpError::WrongType { name: n, .. } if n == name),
                "{err}"
            );
            assert!(err.to_string().contains(name));
        }
    }

    #[test]
    fn answers_are_judged() {
        assert_eq!(
            judge("p", 200, br#"{"success":true,"outputs":{"x":1}}"#).unwrap()["outputs"]["x"],
            1
        );
        let err = judge("p", 200, br#"{"success":false,"error":"bad unit"}"#).unwrap_err();
        assert!(err.to_string().contains("bad unit"));
        assert_eq!(err.code(), 500);
        let err = judge("p", 422, br#"{"error":"nope"}"#).unwrap_err();
        assert_eq!(err.code(), 422);
        assert!(err.to_string().contains("nope"));
        assert_eq!(judge("p", 503, b"down").unwrap_err().code(), 500);
        assert_eq!(
            judge("p", 200, b"<html>").unwrap_err().code(),
            codes::MALFORMED_JSON
        );
        assert_eq!(
            judge("p", 200, b"[1]").unwrap_err().code(),
            codes::MALFORMED_JSON
        );
        assert_eq!(
            judge("p", 200, br#"{"outputs":{}}"#).unwrap_err().code(),
            codes::MALFORMED_JSON
        );
        let response = judge("p", 400, br#"{"success":false,"error":"x"}"#)
            .unwrap_err()
            .into_response("id");
        assert_eq!(response.code, Some(400));
        assert_eq!(response.body.unwrap()["error"], "x");
    }

    #[test]
    fn request_body_wraps_inputs_the_stage7_way() {
        let plugin = HttpPlugin {
            plugin_id: "svc".into(),
            version: "1.2.3".into(),
            spec: LaunchSpec {
                program: "/bin/true".into(),
                args: vec![],
                cwd: "/".into(),
                env: vec![],
            },
            settings: HttpSettings::default(),
            inputs: vec![spec("n", Some("number"), true)],
            stop_grace: Duration::from_secs(1),
        };
        let mut call = ExecCall::new(
            "run",
            json!({"n": 3, "s": "x"}).as_object().unwrap().clone(),
        );
        call.context = Some(json!({"trace_id": "t-1"}));
        let body = request_body(&plugin, &call);
        assert_eq!(
            body,
            json!({
                "inputs": {
                    "n": {"value": 3, "valueType": "number", "args": {}},
                    "s": {"value": "x", "valueType": "string", "args": {}},
                },
                "context": {"trace_id": "t-1", "plugin_id": "svc", "version": "1.2.3"},
            })
        );
    }

    #[test]
    fn startup_timing_follows_the_manifest() {
        let stage7 = HttpSettings {
            health_interval: Duration::from_secs(30),
            health_retries: 3,
            ..HttpSettings::default()
        };
        assert_eq!(stage7.poll_interval(), MAX_STARTUP_POLL);
        assert_eq!(stage7.startup_deadline(), Duration::from_secs(90));
        let quick = HttpSettings {
            health_interval: Duration::from_millis(50),
            health_retries: 3,
            ..HttpSettings::default()
        };
        assert_eq!(quick.poll_interval(), Duration::from_millis(50));
        assert_eq!(quick.startup_deadline(), MIN_STARTUP);
    }
}
