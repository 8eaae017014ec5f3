//! Readers for the fields the dialects share. Each takes the path the field has in the source
//! file, so problems point at what the author wrote, whatever the dialect.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::model::{
    Action, BlastRadius, BlastScope, CommandSpec, ConfigOption, Dependencies, EntryPoint,
    HandlerKind, Hook, HookHandler, HttpSpec, Language, Permission, Resources, Runtime, TrustLevel,
    UnknownName, is_identifier, is_module_path,
};
use crate::read::{Cx, at, check_line, check_token, describe, idx};
use crate::units::{self, BareUnit};

/// Longest id accepted.
pub const MAX_ID_LEN: usize = 64;
/// Longest name accepted.
pub const MAX_NAME_LEN: usize = 128;

/// A value that may be absent, present but wrong (already reported), or good. Inference only
/// fills in `Absent`; `Invalid` stops it, so one mistake is not reported twice.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Slot<T> {
    Absent,
    Invalid,
    Given(T),
}

impl<T> Slot<T> {
    pub fn given(&self) -> Option<&T> {
        match self {
            Slot::Given(t) => Some(t),
            _ => None,
        }
    }

    pub fn is_absent(&self) -> bool {
        matches!(self, Slot::Absent)
    }
}

/// `^[a-z0-9]+(-[a-z0-9]+)*$`, at most 64 characters.
pub fn is_kebab(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.split('-').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// The kebab-case form of a name: lower-case ASCII letters and digits kept, every run of
/// anything else turned into one `-`, leading and trailing `-` dropped. May be empty or too
/// long; the caller checks.
pub fn kebab(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// The required name.
pub(crate) fn name(cx: &mut Cx, path: &str, v: Option<&Value>) -> Option<String> {
    let present = v.is_some_and(|v| !v.is_null());
    let got = cx.line(path, v, MAX_NAME_LEN);
    if got.is_none() && !present {
        cx.add(path, "is required: a human-readable plugin name");
    } else if got.is_none() && matches!(v, Some(Value::String(_))) {
        cx.add(path, "is empty: give the plugin a human-readable name");
    }
    got
}

/// The id: the explicit one checked, or one derived from `name`.
pub(crate) fn id(cx: &mut Cx, path: &str, v: Option<&Value>, name: Option<&str>) -> Option<String> {
    let explicit = v.is_some_and(|v| !v.is_null());
    if explicit {
        let id = cx.line(path, v, 256)?;
        if is_kebab(&id) {
            return Some(id);
        }
        let suggestion = kebab(&id);
        let advice = if is_kebab(&suggestion) {
            format!("; write e.g. `{suggestion}`")
        } else {
            String::new()
        };
        cx.add(
            path,
            format!(
                "`{id}` is not kebab-case (lower-case letters and digits in groups joined by single `-`, \
                 at most {MAX_ID_LEN} characters){advice}"
            ),
        );
        return None;
    }
    let name = name?;
    let derived = kebab(name);
    if derived.is_empty() {
        cx.add(
            path,
            format!("cannot be derived from the name `{name}` (it has no ASCII letters or digits); add an `id`"),
        );
        None
    } else if derived.len() > MAX_ID_LEN {
        cx.add(
            path,
            format!(
                "the id derived from the name would be longer than {MAX_ID_LEN} characters; add a shorter `id`"
            ),
        );
        None
    } else {
        Some(derived)
    }
}

/// The required semantic version.
pub(crate) fn version(cx: &mut Cx, path: &str, v: Option<&Value>) -> Option<semver::Version> {
    match v {
        None | Some(Value::Null) => {
            cx.add(
                path,
                "is required: the plugin's semantic version, e.g. \"1.0.0\"",
            );
            None
        }
        Some(v) => semver_value(cx, path, v),
    }
}

/// An optional semantic version (`min_platform_version`).
pub(crate) fn opt_version(cx: &mut Cx, path: &str, v: Option<&Value>) -> Option<semver::Version> {
    match v {
        None | Some(Value::Null) => None,
        Some(v) => semver_value(cx, path, v),
    }
}

fn semver_value(cx: &mut Cx, path: &str, v: &Value) -> Option<semver::Version> {
    let text = match v {
        Value::String(s) => s.trim(),
        Value::Number(n) => {
            cx.add(
                path,
                format!(
                    "`{n}` was read as a number, not a version; write a quoted semantic version \
                     with three parts, e.g. \"{}\"",
                    three_parts(&n.to_string())
                ),
            );
            return None;
        }
        other => {
            cx.add(
                path,
                format!(
                    "expected a semantic version such as \"1.0.0\", found {}",
                    describe(other)
                ),
            );
            return None;
        }
    };
    match semver::Version::parse(text) {
        Ok(version) => Some(version),
        Err(e) => {
            let advice = if let Some(rest) = text.strip_prefix(['v', 'V'])
                && semver::Version::parse(rest).is_ok()
            {
                format!("drop the leading `v`: \"{rest}\"")
            } else if !text.is_empty()
                && text.split('.').count() < 3
                && text.split('.').all(|p| p.parse::<u64>().is_ok())
            {
                format!(
                    "semantic versions have three parts: \"{}\"",
                    three_parts(text)
                )
            } else {
                format!("{e}; write MAJOR.MINOR.PATCH, e.g. \"1.0.0\"")
            };
            cx.add(
                path,
                format!("`{text}` is not a semantic version: {advice}"),
            );
            None
        }
    }
}

/// `1` → `1.0.0`, `1.2` → `1.2.0`, for advice.
fn three_parts(text: &str) -> String {
    let mut parts: Vec<&str> = text.split('.').collect();
    while parts.len() < 3 {
        parts.push("0");
    }
    parts.join(".")
}

/// A named enum, spelled in any case, parsed by `parse`.
fn named_with<T>(
    cx: &mut Cx,
    path: &str,
    v: Option<&Value>,
    parse: impl Fn(&str) -> Result<T, UnknownName>,
) -> Slot<T> {
    match v {
        None | Some(Value::Null) => Slot::Absent,
        Some(Value::String(s)) if s.trim().is_empty() => Slot::Absent,
        Some(Value::String(s)) => match parse(s) {
            Ok(t) => Slot::Given(t),
            Err(mut e) => {
                e.given = s.clone();
                cx.add(path, e.to_string());
                Slot::Invalid
            }
        },
        Some(other) => {
            // Reports the wrong type.
            cx.text(path, Some(other));
            Slot::Invalid
        }
    }
}

fn named<T: FromStr<Err = UnknownName>>(cx: &mut Cx, path: &str, v: Option<&Value>) -> Slot<T> {
    named_with(cx, path, v, |s| s.trim().to_ascii_lowercase().parse())
}

pub(crate) fn runtime(cx: &mut Cx, path: &str, v: Option<&Value>) -> Slot<Runtime> {
    named(cx, path, v)
}

pub(crate) fn trust_level(cx: &mut Cx, path: &str, v: Option<&Value>) -> TrustLevel {
    named(cx, path, v).given().copied().unwrap_or_default()
}

pub(crate) fn language(cx: &mut Cx, path: &str, v: Option<&Value>) -> Slot<Language> {
    named_with(cx, path, v, Language::parse_lenient)
}

/// The language a file's extension implies.
pub(crate) fn language_of_file(path: &str) -> Option<Language> {
    let file = path.rsplit('/').next().unwrap_or(path);
    match file.rsplit_once('.') {
        None => Some(Language::Exec),
        Some((_, ext)) => match ext {
            "py" => Some(Language::Python),
            "R" | "r" => Some(Language::R),
            "sh" | "bash" => Some(Language::Bash),
            "js" | "mjs" | "cjs" => Some(Language::Node),
            _ if file == "Dockerfile" || file == "Containerfile" => Some(Language::Container),
            _ => None,
        },
    }
}

/// An entry point given as text.
pub(crate) fn entry_point(cx: &mut Cx, path: &str, v: Option<&Value>) -> Slot<EntryPoint> {
    let present = v.is_some_and(|v| !v.is_null());
    match cx.text(path, v) {
        Some(text) => match checked_entry_point(&text) {
            Ok(ep) => Slot::Given(ep),
            Err(reason) => {
                cx.add(path, reason);
                Slot::Invalid
            }
        },
        None if present => {
            if matches!(v, Some(Value::String(_))) {
                cx.add(
                    path,
                    "is empty: name the file or the `module:function` the plugin starts from",
                );
            }
            Slot::Invalid
        }
        None => Slot::Absent,
    }
}

/// Parses an entry point and refuses file paths that could leave the package.
pub(crate) fn checked_entry_point(text: &str) -> Result<EntryPoint, String> {
    match EntryPoint::parse(text.trim()) {
        EntryPoint::File(file) => safe_relative_path(&file).map(EntryPoint::File),
        python => Ok(python),
    }
}

/// A file path inside the package: relative, no `..`, forward slashes, no control characters.
/// Returned with empty and `.` components removed (`./bin//run` → `bin/run`).
pub(crate) fn safe_relative_path(path: &str) -> Result<String, String> {
    if path.is_empty() {
        return Err("is empty: name a file in the package".to_string());
    }
    if path.chars().any(char::is_control) {
        return Err("contains control characters".to_string());
    }
    let bytes = path.as_bytes();
    if path.starts_with('/')
        || (bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':')
    {
        return Err(format!(
            "`{path}` is an absolute path; name a file relative to the package root, e.g. `plugin.py`"
        ));
    }
    if path.contains('\\') {
        return Err(format!("`{path}` contains `\\`; write paths with `/`"));
    }
    if path.len() > 1024 {
        return Err("is longer than 1024 bytes".to_string());
    }
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(format!(
            "`{path}` contains `..`; name a file inside the package"
        ));
    }
    if parts.is_empty() {
        return Err(format!("`{path}` names the package root, not a file"));
    }
    Ok(parts.join("/"))
}

/// A directory inside the package, which may be the root itself (`./` → `.`).
pub(crate) fn safe_relative_dir(path: &str) -> Result<String, String> {
    if path.split('/').all(|p| p.is_empty() || p == ".") && !path.is_empty() {
        return Ok(".".to_string());
    }
    safe_relative_path(path)
}

/// Permissions: `resource:action[:qualifier]` or OmniScope's names. `stage7` also accepts
/// Stage7's `network_access` and dotted (`fs.read`) spellings.
pub(crate) fn permissions(
    cx: &mut Cx,
    path: &str,
    v: Option<&Value>,
    stage7: bool,
) -> Vec<Permission> {
    let mut out: Vec<Permission> = Vec::new();
    for (i, item) in cx.list(path, v).iter().enumerate() {
        let item_path = idx(path, i);
        let Some(text) = cx.line(&item_path, Some(item), 256) else {
            if matches!(item, Value::String(_)) {
                cx.add(&item_path, "is empty");
            }
            continue;
        };
        let parsed = if stage7 && text == "network_access" {
            Ok(network_permission(&text))
        } else if stage7 && !text.contains(':') && text.contains('.') {
            Permission::parse(&text.replacen('.', ":", 1)).map(|p| Permission {
                original: text.clone(),
                ..p
            })
        } else {
            Permission::parse(&text)
        };
        match parsed {
            Ok(p) => push_unique(&mut out, p),
            Err(reason) => cx.add(&item_path, reason),
        }
    }
    out
}

/// `net:connect`, remembering how the manifest asked for it.
pub(crate) fn network_permission(original: &str) -> Permission {
    Permission {
        resource: "net".to_string(),
        action: "connect".to_string(),
        qualifier: None,
        original: original.to_string(),
    }
}

/// Adds a permission unless the same grant is already there.
pub(crate) fn push_unique(out: &mut Vec<Permission>, p: Permission) {
    if !out
        .iter()
        .any(|q| q.resource == p.resource && q.action == p.action && q.qualifier == p.qualifier)
    {
        out.push(p);
    }
}

/// Config in map form. Each value is either a schema (`{type, default, description, options}`,
/// OmniScope and plugd) or, when it is not a mapping made only of schema keys, the default
/// itself (Migraine's `{log_file: "./workflow.log"}`).
pub(crate) fn config_map(
    cx: &mut Cx,
    path: &str,
    v: Option<&Value>,
) -> BTreeMap<String, ConfigOption> {
    let mut out = BTreeMap::new();
    let Some(map) = cx.map(path, v) else {
        return out;
    };
    for (key, value) in map {
        let key_path = at(path, key);
        if let Err(reason) = check_token(key) {
            cx.add(&key_path, format!("the option name {reason}"));
            continue;
        }
        let option = match value {
            Value::Object(m) if is_schema(m) => config_schema(cx, &key_path, m, "default"),
            literal => ConfigOption {
                kind: Some(json_kind(literal).to_string()),
                default: Some(literal.clone()),
                ..ConfigOption::default()
            },
        };
        out.insert(key.clone(), option);
    }
    out
}

const SCHEMA_KEYS: &[&str] = &[
    "type",
    "default",
    "description",
    "options",
    "enum",
    "required",
    "min",
    "max",
    "label",
];

fn is_schema(m: &Map<String, Value>) -> bool {
    (m.contains_key("type") || m.contains_key("default"))
        && m.keys().all(|k| SCHEMA_KEYS.contains(&k.as_str()))
}

/// Stage7's `configuration: [{name, type, description, defaultValue, required}]`.
pub(crate) fn config_list(
    cx: &mut Cx,
    path: &str,
    v: Option<&Value>,
) -> BTreeMap<String, ConfigOption> {
    let mut out = BTreeMap::new();
    for (i, item) in cx.list(path, v).iter().enumerate() {
        let item_path = idx(path, i);
        let Some(m) = cx.map(&item_path, Some(item)) else {
            continue;
        };
        let name_path = at(&item_path, "name");
        let Some(key) = cx.line(&name_path, m.get("name"), 128) else {
            cx.add(&name_path, "is required: the option name");
            continue;
        };
        if let Err(reason) = check_token(&key) {
            cx.add(&name_path, reason);
            continue;
        }
        if out.contains_key(&key) {
            cx.add(&name_path, format!("the option `{key}` is declared twice"));
            continue;
        }
        let option = config_schema(cx, &item_path, m, "defaultValue");
        out.insert(key, option);
    }
    out
}

fn config_schema(
    cx: &mut Cx,
    path: &str,
    m: &Map<String, Value>,
    default_key: &str,
) -> ConfigOption {
    let kind = cx.line(&at(path, "type"), m.get("type"), 64);
    let default = m.get(default_key).filter(|v| !v.is_null()).cloned();
    let description = cx.text(&at(path, "description"), m.get("description"));
    let options_key = if m.contains_key("options") {
        "options"
    } else {
        "enum"
    };
    let options = cx.list(&at(path, options_key), m.get(options_key)).to_vec();
    let required = cx
        .flag(&at(path, "required"), m.get("required"))
        .unwrap_or(false);
    if let (Some(kind), Some(d)) = (&kind, &default)
        && !fits_kind(kind, d)
    {
        cx.add(
            at(path, default_key),
            format!("{} does not match the option's type `{kind}`", describe(d)),
        );
    }
    if let Some(d) = &default
        && !options.is_empty()
        && !options.contains(d)
    {
        cx.add(
            at(path, default_key),
            "is not one of the option's allowed values",
        );
    }
    ConfigOption {
        kind,
        default,
        description,
        options,
        required,
    }
}

/// The JSON type name of a value, as used in config schemas.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "any",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether `v` is acceptable for a declared type; types plugd does not know accept anything.
fn fits_kind(kind: &str, v: &Value) -> bool {
    match kind.to_ascii_lowercase().as_str() {
        "string" | "str" | "text" => v.is_string(),
        "number" | "float" => v.is_number(),
        "integer" | "int" => v.is_i64() || v.is_u64(),
        "boolean" | "bool" => v.is_boolean(),
        "array" | "list" => v.is_array(),
        "object" | "dict" | "map" => v.is_object(),
        _ => true,
    }
}

/// Resource limits from a mapping `{memory, cpu, timeout, processes}`, merged into `into`.
/// `bare_timeout` is the unit of a bare timeout number.
pub(crate) fn resources(
    cx: &mut Cx,
    path: &str,
    v: Option<&Value>,
    bare_timeout: BareUnit,
    into: &mut Resources,
) {
    let Some(m) = cx.map(path, v) else {
        return;
    };
    for (key, value) in m {
        let key_path = at(path, key);
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "memory" | "memory_limit" | "memoryLimit" => match units::memory(value) {
                Ok(b) => into.memory = Some(b),
                Err(reason) => cx.add(key_path, reason),
            },
            "cpu" | "cpus" => match units::cpu(value) {
                Ok(c) => into.cpu = Some(c),
                Err(reason) => cx.add(key_path, reason),
            },
            "timeout" => match units::duration(value, bare_timeout) {
                Ok(d) => into.timeout = Some(d),
                Err(reason) => cx.add(key_path, reason),
            },
            "processes" | "pids" | "max_processes" => match value.as_u64() {
                Some(n @ 1..=100_000) => into.processes = Some(n as u32),
                _ => cx.add(
                    key_path,
                    format!(
                        "expected a whole number from 1 to 100000, found {}",
                        describe(value)
                    ),
                ),
            },
            _ => {}
        }
    }
}

/// What a plain list of dependencies means in a dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListMeans {
    Python,
    R,
    System,
}

/// Dependencies: a plain list (meaning depends on the dialect) or plugd's map
/// `{plugins: {id: req}, python: [...], r: [...], system: [...]}`.
pub(crate) fn dependencies(
    cx: &mut Cx,
    path: &str,
    v: Option<&Value>,
    list: ListMeans,
) -> Dependencies {
    let mut out = Dependencies::default();
    match v {
        Some(Value::Array(_)) => match list {
            ListMeans::Python => out.python = cx.words(path, v, check_python_requirement),
            ListMeans::R => out.r = cx.words(path, v, check_r_package),
            ListMeans::System => out.system = cx.words(path, v, check_system_requirement),
        },
        Some(Value::Object(m)) => {
            for (key, value) in m {
                let key_path = at(path, key);
                match key.as_str() {
                    "plugins" => out.plugins = plugin_requirements(cx, &key_path, value),
                    "python" | "pip" => out.python = cx.words(&key_path, Some(value), check_python_requirement),
                    "r" | "cran" => out.r = cx.words(&key_path, Some(value), check_r_package),
                    "system" => out.system = cx.words(&key_path, Some(value), check_system_requirement),
                    other => cx.add(
                        key_path,
                        format!("unknown dependency kind `{other}`; use plugins, python, r or system"),
                    ),
                }
            }
        }
        None | Some(Value::Null) => {}
        Some(other) => cx.add(
            path,
            format!(
                "expected a list of packages or a mapping with plugins, python, r and system, found {}",
                describe(other)
            ),
        ),
    }
    out
}

fn plugin_requirements(cx: &mut Cx, path: &str, v: &Value) -> BTreeMap<String, semver::VersionReq> {
    let mut out = BTreeMap::new();
    let Some(m) = cx.map(path, Some(v)) else {
        return out;
    };
    for (id, req) in m {
        let id_path = at(path, id);
        if !is_kebab(id) {
            cx.add(
                &id_path,
                format!("`{id}` is not a plugin id (kebab-case, at most {MAX_ID_LEN} characters)"),
            );
            continue;
        }
        let text = match req {
            Value::String(s) => s.clone(),
            Value::Null => "*".to_string(),
            other => {
                cx.add(
                    &id_path,
                    format!(
                        "expected a version requirement such as \"^1.2\", found {}",
                        describe(other)
                    ),
                );
                continue;
            }
        };
        match semver::VersionReq::parse(&text) {
            Ok(r) => {
                out.insert(id.clone(), r);
            }
            Err(e) => cx.add(
                &id_path,
                format!("`{text}` is not a version requirement ({e}); write e.g. \"^1.2\" or \">=1.0, <2\""),
            ),
        }
    }
    out
}

/// A PEP 508 requirement without direct references: `name[extras] specifiers ; marker`.
/// Refuses anything pip would read as an option (`-e …`, `--index-url …`) or fetch from a URL
/// or path, because these strings reach `pip install` at install time.
pub(crate) fn check_python_requirement(s: &str) -> Result<(), String> {
    if s.starts_with('-') {
        return Err(format!(
            "`{s}` looks like a pip option; list package requirements only, e.g. `httpx>=0.24.0`"
        ));
    }
    if s.contains("://") || s.contains('@') || s.starts_with('.') || s.contains('/') {
        return Err(format!(
            "`{s}` is a URL or path; plugd installs Python packages by name and version only, e.g. `httpx>=0.24.0`"
        ));
    }
    let (req, _marker) = s.split_once(';').unwrap_or((s, ""));
    let name_end = req
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        .unwrap_or(req.len());
    let (name, mut rest) = req.split_at(name_end);
    let name_ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !name_ok {
        return Err(format!(
            "`{s}` does not start with a package name; write e.g. `numpy` or `httpx>=0.24.0`"
        ));
    }
    rest = rest.trim_start();
    if let Some(extras) = rest.strip_prefix('[') {
        let Some((inside, after)) = extras.split_once(']') else {
            return Err(format!("`{s}` has an unclosed `[`"));
        };
        if !inside.split(',').all(|e| {
            !e.trim().is_empty()
                && e.trim()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        }) {
            return Err(format!("`{s}` has malformed extras"));
        }
        rest = after;
    }
    if !rest
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " <>=!~,.*+()".contains(c))
    {
        return Err(format!(
            "`{s}` has characters no version specifier uses; write e.g. `numpy>=1.24,<3`"
        ));
    }
    Ok(())
}

/// An R package name (CRAN rules: letters, digits and dots, starting with a letter).
pub(crate) fn check_r_package(s: &str) -> Result<(), String> {
    let ok = s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
        && !s.ends_with('.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not an R package name (letters, digits and `.`, starting with a letter)"
        ))
    }
}

/// A system requirement is informational; it only has to be one line that cannot be read as
/// an option by whatever tool shows or checks it.
pub(crate) fn check_system_requirement(s: &str) -> Result<(), String> {
    if s.starts_with('-') {
        return Err(format!(
            "`{s}` starts with `-`; name the requirement, e.g. `docker`"
        ));
    }
    Ok(())
}

/// Extension points, tags and similar lists of names.
pub(crate) fn names(cx: &mut Cx, path: &str, v: Option<&Value>) -> Vec<String> {
    cx.words(path, v, |s| check_line(s, 128))
}

/// Actions: plain names or `{name, description, input|input_schema, output|output_schema}`.
pub(crate) fn actions(cx: &mut Cx, path: &str, v: Option<&Value>, out: &mut Vec<Action>) {
    for (i, item) in cx.list(path, v).iter().enumerate() {
        let item_path = idx(path, i);
        let (name_path, name_value, m) = match item {
            Value::Object(m) => (at(&item_path, "name"), m.get("name"), Some(m)),
            other => (item_path.clone(), Some(other), None),
        };
        let Some(name) = action_name(
            cx,
            &name_path,
            name_value,
            out.iter().map(|a| a.name.as_str()),
        ) else {
            continue;
        };
        let (description, input, output) = match m {
            Some(m) => (
                cx.text(&at(&item_path, "description"), m.get("description")),
                m.get("input")
                    .or_else(|| m.get("input_schema"))
                    .filter(|v| !v.is_null())
                    .cloned(),
                m.get("output")
                    .or_else(|| m.get("output_schema"))
                    .filter(|v| !v.is_null())
                    .cloned(),
            ),
            None => (None, None, None),
        };
        out.push(Action {
            name,
            description,
            input,
            output,
        });
    }
}

/// A non-empty action name not among `taken`.
pub(crate) fn action_name<'a>(
    cx: &mut Cx,
    path: &str,
    v: Option<&Value>,
    mut taken: impl Iterator<Item = &'a str>,
) -> Option<String> {
    let name = match v {
        Some(Value::String(s)) => s.trim().to_string(),
        None | Some(Value::Null) => String::new(),
        Some(other) => {
            cx.add(
                path,
                format!("expected an action name, found {}", describe(other)),
            );
            return None;
        }
    };
    if name.is_empty() {
        cx.add(path, "is empty: every action needs a name");
        return None;
    }
    if let Err(reason) = check_token(&name) {
        cx.add(path, reason);
        return None;
    }
    if taken.any(|t| t == name) {
        cx.add(
            path,
            format!("the action `{name}` is declared twice; action names must be unique"),
        );
        return None;
    }
    Some(name)
}

/// Commands: plain names or `{name, description, usage}`.
pub(crate) fn commands(cx: &mut Cx, path: &str, v: Option<&Value>) -> Vec<CommandSpec> {
    let mut out: Vec<CommandSpec> = Vec::new();
    for (i, item) in cx.list(path, v).iter().enumerate() {
        let item_path = idx(path, i);
        let (name_path, name_value, m) = match item {
            Value::Object(m) => (at(&item_path, "name"), m.get("name"), Some(m)),
            other => (item_path.clone(), Some(other), None),
        };
        let Some(name) = action_name(
            cx,
            &name_path,
            name_value,
            out.iter().map(|c| c.name.as_str()),
        ) else {
            continue;
        };
        if name.starts_with('-') {
            cx.add(
                &name_path,
                format!("`{name}` starts with `-` and would be read as an option"),
            );
            continue;
        }
        let (description, usage) = match m {
            Some(m) => (
                cx.text(&at(&item_path, "description"), m.get("description")),
                cx.text(&at(&item_path, "usage"), m.get("usage")),
            ),
            None => (None, None),
        };
        out.push(CommandSpec {
            name,
            description,
            usage,
        });
    }
    out
}

/// Hooks: `{event, pattern, handler{type, module, function, script}, script, command, on_error,
/// priority}`, each with its index in the source list (invalid items are left out).
pub(crate) fn hooks(cx: &mut Cx, path: &str, v: Option<&Value>) -> Vec<(usize, Hook)> {
    let mut out = Vec::new();
    for (i, item) in cx.list(path, v).iter().enumerate() {
        let item_path = idx(path, i);
        let Some(m) = cx.map(&item_path, Some(item)) else {
            continue;
        };
        let event_path = at(&item_path, "event");
        let event = cx.line(&event_path, m.get("event"), 128);
        match &event {
            None => cx.add(
                &event_path,
                "is required: the event this hook runs on, e.g. `post-command`",
            ),
            Some(e) => {
                if let Err(reason) = check_token(e) {
                    cx.add(&event_path, reason);
                }
            }
        }
        let pattern = cx.text(&at(&item_path, "pattern"), m.get("pattern"));
        if let Some(p) = &pattern
            && p.len() > 1024
        {
            cx.add(at(&item_path, "pattern"), "is longer than 1024 bytes");
        }
        let handler = hook_handler(cx, &at(&item_path, "handler"), m.get("handler"));
        let script = cx.text(&at(&item_path, "script"), m.get("script"));
        let command = cx.line(&at(&item_path, "command"), m.get("command"), 4096);
        let on_error = hook_handler(cx, &at(&item_path, "on_error"), m.get("on_error"));
        let priority = cx
            .integer(&at(&item_path, "priority"), m.get("priority"))
            .unwrap_or(0);
        let handler_given = m.get("handler").is_some_and(|v| !v.is_null());
        if !handler_given && script.is_none() && command.is_none() {
            cx.add(
                &item_path,
                "runs nothing: give a `handler`, a `script` or a `command`",
            );
        }
        if let Some(event) = event {
            out.push((
                i,
                Hook {
                    event,
                    pattern,
                    handler,
                    script,
                    command,
                    on_error,
                    priority,
                },
            ));
        }
    }
    out
}

fn hook_handler(cx: &mut Cx, path: &str, v: Option<&Value>) -> Option<HookHandler> {
    let m = cx.map(path, v)?;
    let kind_path = at(path, "type");
    let kind = match named::<HandlerKind>(cx, &kind_path, m.get("type")) {
        Slot::Given(k) => k,
        Slot::Invalid => return None,
        // A handler with a module is Python; one with only a script is bash.
        Slot::Absent if m.contains_key("module") => HandlerKind::Python,
        Slot::Absent if m.contains_key("script") => HandlerKind::Bash,
        Slot::Absent => {
            cx.add(
                kind_path,
                "is required: `python` (with module and function) or `bash` (with script)",
            );
            return None;
        }
    };
    let module = cx.line(&at(path, "module"), m.get("module"), 256);
    let function = cx.line(&at(path, "function"), m.get("function"), 128);
    let script = cx.text(&at(path, "script"), m.get("script"));
    let mut ok = true;
    match kind {
        HandlerKind::Python => {
            match &module {
                None => {
                    cx.add(at(path, "module"), "is required for a python handler: the module to import, e.g. `log_processor`");
                    ok = false;
                }
                // `log_processor.py` is a valid dotted path (a submodule `py`), but it is always
                // a file name written where the module name belongs.
                Some(module) if !is_module_path(module) || module.ends_with(".py") => {
                    let advice = module
                        .strip_suffix(".py")
                        .filter(|m| is_module_path(m))
                        .map(|m| format!("; write the module name without `.py`: `{m}`"))
                        .unwrap_or_else(|| {
                            "; write a dotted Python module name such as `pkg.module`".to_string()
                        });
                    cx.add(
                        at(path, "module"),
                        format!("`{module}` is not a Python module name{advice}"),
                    );
                    ok = false;
                }
                Some(_) => {}
            }
            match &function {
                None => {
                    cx.add(
                        at(path, "function"),
                        "is required for a python handler: the function to call",
                    );
                    ok = false;
                }
                Some(f) if !is_identifier(f) => {
                    cx.add(
                        at(path, "function"),
                        format!("`{f}` is not a Python function name"),
                    );
                    ok = false;
                }
                Some(_) => {}
            }
        }
        HandlerKind::Bash => {
            if script.is_none() {
                cx.add(
                    at(path, "script"),
                    "is required for a bash handler: inline script text or a `.sh` file",
                );
                ok = false;
            } else if let Some(file) = script.as_deref().and_then(script_file)
                && let Err(reason) = safe_relative_path(file)
            {
                cx.add(at(path, "script"), reason);
                ok = false;
            }
        }
    }
    ok.then_some(HookHandler {
        kind,
        module,
        function,
        script,
    })
}

/// A bash `script` names a file when it is a single `*.sh` word; otherwise it is inline text.
pub(crate) fn script_file(script: &str) -> Option<&str> {
    let s = script.trim();
    (s.ends_with(".sh") && !s.contains(char::is_whitespace)).then_some(s)
}

/// `blast_radius: {scope, mutates_state, reversible}`.
pub(crate) fn blast_radius(cx: &mut Cx, path: &str, v: Option<&Value>) -> Option<BlastRadius> {
    let m = cx.map(path, v)?;
    Some(BlastRadius {
        scope: named::<BlastScope>(cx, &at(path, "scope"), m.get("scope"))
            .given()
            .copied(),
        mutates_state: cx.flag(&at(path, "mutates_state"), m.get("mutates_state")),
        reversible: cx.flag(&at(path, "reversible"), m.get("reversible")),
    })
}

/// plugd's own `http: {port, health_path, health_interval, health_timeout, health_retries,
/// execute_path, method, timeout}`; durations in seconds unless given with a unit.
pub(crate) fn http(cx: &mut Cx, path: &str, v: Option<&Value>) -> Option<HttpSpec> {
    let m = cx.map(path, v)?;
    let mut spec = HttpSpec::default();
    if let Some(port) = m.get("port") {
        port_into(cx, &at(path, "port"), port, &mut spec);
    }
    for (key, target) in [
        ("health_path", &mut spec.health_path),
        ("execute_path", &mut spec.execute_path),
    ] {
        if let Some(p) = url_path(cx, &at(path, key), m.get(key)) {
            *target = p;
        }
    }
    for (key, target) in [
        ("health_interval", &mut spec.health_interval),
        ("health_timeout", &mut spec.health_timeout),
        ("timeout", &mut spec.timeout),
    ] {
        if let Some(v) = m.get(key).filter(|v| !v.is_null()) {
            match units::duration(v, BareUnit::Seconds) {
                Ok(d) => *target = d,
                Err(reason) => cx.add(at(path, key), reason),
            }
        }
    }
    if let Some(r) = retries(cx, &at(path, "health_retries"), m.get("health_retries")) {
        spec.health_retries = r;
    }
    if let Some(method) = method(cx, &at(path, "method"), m.get("method")) {
        spec.method = method;
    }
    Some(spec)
}

pub(crate) fn port_into(cx: &mut Cx, path: &str, v: &Value, spec: &mut HttpSpec) {
    match v.as_u64() {
        Some(p @ 1..=65535) => spec.port = p as u16,
        _ => cx.add(
            path,
            format!(
                "expected a port number from 1 to 65535, found {}",
                describe(v)
            ),
        ),
    }
}

pub(crate) fn url_path(cx: &mut Cx, path: &str, v: Option<&Value>) -> Option<String> {
    let p = cx.line(path, v, 1024)?;
    if !p.starts_with('/') || p.contains(char::is_whitespace) {
        cx.add(
            path,
            format!("`{p}` is not a URL path; write one starting with `/`, e.g. `/health`"),
        );
        return None;
    }
    Some(p)
}

pub(crate) fn retries(cx: &mut Cx, path: &str, v: Option<&Value>) -> Option<u32> {
    let v = v.filter(|v| !v.is_null())?;
    match v.as_u64() {
        Some(n @ 0..=100) => Some(n as u32),
        _ => {
            cx.add(
                path,
                format!(
                    "expected a whole number from 0 to 100, found {}",
                    describe(v)
                ),
            );
            None
        }
    }
}

pub(crate) fn method(cx: &mut Cx, path: &str, v: Option<&Value>) -> Option<String> {
    let m = cx.line(path, v, 16)?.to_ascii_uppercase();
    if ["GET", "POST", "PUT", "PATCH"].contains(&m.as_str()) {
        Some(m)
    } else {
        cx.add(
            path,
            format!("`{m}` is not a supported method; use POST, PUT, PATCH or GET"),
        );
        None
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn kebab_rule() {
        for ok in ["a", "my-plugin", "plugin-2", "x1-y2-z3"] {
            assert!(is_kebab(ok), "{ok}");
        }
        for bad in [
            "",
            "My-Plugin",
            "my_plugin",
            "-a",
            "a-",
            "a--b",
            "a b",
            &"a".repeat(65),
        ] {
            assert!(!is_kebab(bad), "{bad}");
        }
        assert_eq!(kebab("my_plugin"), "my-plugin");
        assert_eq!(kebab("My Plugin  (beta)"), "my-plugin-beta");
        assert_eq!(kebab("plugin-TEXT_ANALYSIS"), "plugin-text-analysis");
        assert_eq!(kebab("Café"), "caf");
        assert_eq!(kebab("!!!"), "");
    }

    #[test]
    fn entry_point_paths_must_stay_inside() {
        assert_eq!(
            checked_entry_point("./bin//run"),
            Ok(EntryPoint::File("bin/run".into()))
        );
        for bad in [
            "/usr/bin/python3",
            "../x.py",
            "a/../../x",
            "C:\\x.exe",
            "a\\b",
            "",
            "./",
            "a\nb",
        ] {
            assert!(checked_entry_point(bad).is_err(), "{bad:?}");
        }
        assert!(
            checked_entry_point("/etc/passwd")
                .unwrap_err()
                .contains("absolute")
        );
        assert!(checked_entry_point("../x.py").unwrap_err().contains("`..`"));
    }

    #[test]
    fn python_requirements() {
        for ok in [
            "numpy",
            "httpx>=0.24.0",
            "requests[security,socks]>=2,<3",
            "pandas ; python_version>'3.8'",
            "a.b_c-d==1.*",
        ] {
            assert_eq!(check_python_requirement(ok), Ok(()), "{ok}");
        }
        for bad in [
            "-e git+https://evil/x",
            "--index-url=https://evil",
            "pkg @ https://evil/pkg.whl",
            "./local",
            "../x",
            "x/y",
            "_bad",
            "numpy$(rm -rf)",
            "x[unclosed",
        ] {
            assert!(check_python_requirement(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_both_styles() {
        let mut cx = Cx::default();
        let v = json!({
            "param1": {"type": "string", "default": "value", "description": "d"},
            "log_file": "./workflow.log",
            "limits": {"a": 1},
            "bad": {"type": "integer", "default": "x"},
            "choice": {"type": "string", "default": "c", "options": ["a", "b"]},
        });
        let c = config_map(&mut cx, "config", Some(&v));
        assert_eq!(c["param1"].default, Some(json!("value")));
        assert_eq!(c["param1"].kind.as_deref(), Some("string"));
        assert_eq!(c["log_file"].default, Some(json!("./workflow.log")));
        assert_eq!(c["log_file"].kind.as_deref(), Some("string"));
        assert_eq!(
            c["limits"].default,
            Some(json!({"a": 1})),
            "a plain mapping is a default"
        );
        let paths: Vec<&str> = cx.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["config.bad.default", "config.choice.default"]);
    }

    #[test]
    fn plugin_dependency_requirements() {
        let mut cx = Cx::default();
        let v = json!({"plugins": {"base-lib": "^1.2", "Bad_Id": "1", "other": "not a req"}, "python": ["numpy"]});
        let d = dependencies(&mut cx, "dependencies", Some(&v), ListMeans::Python);
        assert_eq!(d.plugins.len(), 1);
        assert_eq!(d.plugins["base-lib"].to_string(), "^1.2");
        assert_eq!(d.python, ["numpy"]);
        let paths: Vec<&str> = cx.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            ["dependencies.plugins.Bad_Id", "dependencies.plugins.other"]
        );
    }

    #[test]
    fn version_advice() {
        let mut cx = Cx::default();
        assert!(version(&mut cx, "version", Some(&json!(1.0))).is_none());
        assert!(version(&mut cx, "version", Some(&json!("1.0"))).is_none());
        assert!(version(&mut cx, "version", Some(&json!("v1.2.3"))).is_none());
        assert!(version(&mut cx, "version", Some(&json!("banana"))).is_none());
        assert!(version(&mut cx, "version", None).is_none());
        let reasons: Vec<&str> = cx.problems.iter().map(|p| p.reason.as_str()).collect();
        assert!(
            reasons[0].contains("read as a number") && reasons[0].contains("\"1.0.0\""),
            "{}",
            reasons[0]
        );
        assert!(
            reasons[1].contains("three parts: \"1.0.0\""),
            "{}",
            reasons[1]
        );
        assert!(
            reasons[2].contains("drop the leading `v`"),
            "{}",
            reasons[2]
        );
        assert!(reasons[3].contains("MAJOR.MINOR.PATCH"), "{}", reasons[3]);
        assert!(reasons[4].contains("required"), "{}", reasons[4]);
    }
}
