//! The four dialect readers and the normalisation they share.
//!
//! Each reader maps its dialect's fields onto a [`Draft`], reporting problems against the paths
//! the author wrote (`security.permissions[1]`, `hooks[0].handler.module`). [`finish`] then
//! infers what the dialect leaves implicit (runtime, language, entry point), checks the fields
//! against each other and assembles the [`Manifest`].

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::Problem;
use crate::fields::{self, ListMeans, Slot};
use crate::model::{
    Action, ContainerSpec, Dialect, EntryPoint, HandlerKind, HttpSpec, IoDefinition, Language,
    Manifest, Resources, Runtime, TrustLevel,
};
use crate::read::{Cx, at, check_token, describe, edit_distance, idx};
use crate::units::{self, BareUnit};

/// A manifest being read: the model with placeholders where the required and inferred fields
/// go, and those fields kept aside until [`finish`] settles them.
pub(crate) struct Draft {
    m: Manifest,
    id: Option<String>,
    name: Option<String>,
    version: Option<semver::Version>,
    runtime: Slot<Runtime>,
    language: Slot<Language>,
    entry: Slot<EntryPoint>,
    entry_path: String,
    entry_note: Option<String>,
    entry_candidates: Vec<String>,
    hook_sources: Vec<usize>,
}

/// What reading produced: the manifest (meaningful only when `problems` is empty) and the
/// facts the package-directory check needs.
#[derive(Debug)]
pub(crate) struct Analysis {
    pub manifest: Manifest,
    pub problems: Vec<Problem>,
    /// Where the entry point came from in the source, for problems about it.
    pub entry_path: String,
    /// Whether the entry point is real (not a placeholder for a missing or invalid one).
    pub entry_known: bool,
    /// Why an entry point the manifest does not name was chosen.
    pub entry_note: Option<String>,
    /// Files to try, in order, for an entry point the manifest does not name.
    pub entry_candidates: Vec<String>,
    /// The index in the source `hooks` list of each hook in the model.
    pub hook_sources: Vec<usize>,
}

impl Draft {
    fn new(dialect: Dialect) -> Draft {
        Draft {
            m: Manifest {
                id: String::new(),
                name: String::new(),
                version: semver::Version::new(0, 0, 0),
                author: None,
                author_email: None,
                description: None,
                license: None,
                homepage: None,
                category: None,
                tags: Vec::new(),
                runtime: Runtime::Ndjson,
                language: None,
                entry_point: EntryPoint::File(String::new()),
                actions: Vec::new(),
                commands: Vec::new(),
                extension_points: Vec::new(),
                hooks: Vec::new(),
                permissions: Vec::new(),
                trust_level: TrustLevel::default(),
                blast_radius: None,
                dependencies: Default::default(),
                config: BTreeMap::new(),
                resources: Resources::default(),
                min_platform_version: None,
                python_requires: None,
                http: None,
                signature: None,
                verb: None,
                input_definitions: Vec::new(),
                output_definitions: Vec::new(),
                container: None,
                dialect,
            },
            id: None,
            name: None,
            version: None,
            runtime: Slot::Absent,
            language: Slot::Absent,
            entry: Slot::Absent,
            entry_path: "entry_point".to_string(),
            entry_note: None,
            entry_candidates: Vec::new(),
            hook_sources: Vec::new(),
        }
    }

    /// The fields every dialect spells the same way, read when present.
    fn common(&mut self, cx: &mut Cx, root: &Map<String, Value>) {
        let m = &mut self.m;
        m.author = cx.line("author", root.get("author"), 256);
        m.author_email = cx.line("author_email", root.get("author_email"), 256);
        m.description = cx.text("description", root.get("description"));
        m.license = cx.line("license", root.get("license"), 256);
        m.homepage = cx.line("homepage", root.get("homepage"), 1024);
        m.category = cx.line("category", root.get("category"), 128);
        m.tags = fields::names(cx, "tags", root.get("tags"));
        m.extension_points = fields::names(cx, "extension_points", root.get("extension_points"));
        m.trust_level = fields::trust_level(cx, "trust_level", root.get("trust_level"));
        m.min_platform_version =
            fields::opt_version(cx, "min_platform_version", root.get("min_platform_version"));
        m.signature = cx.text("signature", root.get("signature"));
        fields::resources(
            cx,
            "resources",
            root.get("resources"),
            BareUnit::Seconds,
            &mut m.resources,
        );
        fields::actions(cx, "actions", root.get("actions"), &mut m.actions);
        self.runtime = fields::runtime(cx, "runtime", root.get("runtime"));
        self.language = fields::language(cx, "language", root.get("language"));
        self.version = fields::version(cx, "version", root.get("version"));
    }

    fn hooks(&mut self, cx: &mut Cx, root: &Map<String, Value>) {
        for (source, hook) in fields::hooks(cx, "hooks", root.get("hooks")) {
            self.hook_sources.push(source);
            self.m.hooks.push(hook);
        }
    }

    fn name_and_id(
        &mut self,
        cx: &mut Cx,
        root: &Map<String, Value>,
        name_value: Option<&Value>,
        name_path: &str,
    ) {
        self.name = fields::name(cx, name_path, name_value);
        self.id = fields::id(cx, "id", root.get("id"), self.name.as_deref());
    }

    fn implicit_entry(&mut self, path: &str, note: String, entry: EntryPoint) {
        self.entry = Slot::Given(entry);
        self.entry_path = path.to_string();
        self.entry_note = Some(note);
    }
}

/// Every field of plugd's own `manifest.yaml`; other keys are allowed but checked for typos.
const PLUGD_FIELDS: &[&str] = &[
    "id",
    "name",
    "version",
    "author",
    "author_email",
    "description",
    "license",
    "homepage",
    "category",
    "tags",
    "runtime",
    "language",
    "entry_point",
    "actions",
    "commands",
    "extension_points",
    "hooks",
    "permissions",
    "trust_level",
    "blast_radius",
    "dependencies",
    "config",
    "resources",
    "min_platform_version",
    "python_requires",
    "http",
    "signature",
    "verb",
    "input_definitions",
    "output_definitions",
    "container",
];

/// plugd's own `manifest.yaml`, and Wingman's, which is a subset of it.
pub(crate) fn read_plugd(cx: &mut Cx, root: &Map<String, Value>) -> Draft {
    let mut d = Draft::new(Dialect::Plugd);
    d.name_and_id(cx, root, root.get("name"), "name");
    d.common(cx, root);
    d.entry = fields::entry_point(cx, "entry_point", root.get("entry_point"));
    d.hooks(cx, root);
    let m = &mut d.m;
    m.commands = fields::commands(cx, "commands", root.get("commands"));
    m.permissions = fields::permissions(cx, "permissions", root.get("permissions"), false);
    m.blast_radius = fields::blast_radius(cx, "blast_radius", root.get("blast_radius"));
    m.config = fields::config_map(cx, "config", root.get("config"));
    m.python_requires = cx.line("python_requires", root.get("python_requires"), 128);
    m.http = fields::http(cx, "http", root.get("http"));
    m.verb = verb(cx, "verb", root.get("verb"), false);
    m.input_definitions = io_definitions(cx, "input_definitions", root.get("input_definitions"));
    m.output_definitions = io_definitions(cx, "output_definitions", root.get("output_definitions"));
    m.container = container(cx, "container", root.get("container"), &mut m.resources);
    // A plain list is Wingman's pip requirements.
    m.dependencies = fields::dependencies(
        cx,
        "dependencies",
        root.get("dependencies"),
        ListMeans::Python,
    );
    for key in root.keys() {
        if !PLUGD_FIELDS.contains(&key.as_str())
            && let Some(known) = likely_meant(key)
        {
            cx.add(
                key.as_str(),
                format!("unknown field `{key}`: did you mean `{known}`?"),
            );
        }
    }
    if d.runtime.is_absent() {
        d.runtime = match d.entry.given() {
            Some(EntryPoint::File(_)) => Slot::Given(Runtime::Ndjson),
            Some(_) => Slot::Given(Runtime::PythonFunction),
            None => Slot::Absent,
        };
    }
    d
}

/// The known plugd field a misspelt key was probably meant to be: the same letters with other
/// separators or case (`entrypoint`, `Entry-Point`), or one edit away (two for longer keys).
/// Short keys get one edit only, so an unrelated extra field such as `kind` is not taken for
/// `id`.
fn likely_meant(key: &str) -> Option<&'static str> {
    // Field names are short; a long key is no typo of one (and would make the distance costly).
    if key.len() > 32 {
        return None;
    }
    let squash = |s: &str| s.to_ascii_lowercase().replace(['_', '-', ' '], "");
    let k = squash(key);
    if let Some(f) = PLUGD_FIELDS.iter().copied().find(|f| squash(f) == k) {
        return Some(f);
    }
    let max = match k.len() {
        0..=2 => return None,
        3..=5 => 1,
        _ => 2,
    };
    PLUGD_FIELDS
        .iter()
        .copied()
        .map(|f| (edit_distance(&k, &squash(f)), f))
        .filter(|(d, _)| *d <= max)
        .min_by_key(|(d, _)| *d)
        .map(|(_, f)| f)
}

/// OmniScope's `manifest.json`.
pub(crate) fn read_omniscope(cx: &mut Cx, root: &Map<String, Value>) -> Draft {
    let mut d = Draft::new(Dialect::OmniScope);
    d.name_and_id(cx, root, root.get("name"), "name");
    d.common(cx, root);
    d.entry = fields::entry_point(cx, "entry_point", root.get("entry_point"));
    d.hooks(cx, root);
    let m = &mut d.m;
    m.permissions = fields::permissions(cx, "permissions", root.get("permissions"), false);
    m.config = fields::config_map(cx, "config", root.get("config"));
    // An R plugin's dependencies are R packages.
    let list = match d.language.given() {
        Some(Language::R) => ListMeans::R,
        _ => ListMeans::Python,
    };
    m.dependencies = fields::dependencies(cx, "dependencies", root.get("dependencies"), list);
    // The OmniScope SDK names the main file after the plugin.
    if d.entry.is_absent()
        && let (Some(name), Some(lang @ (Language::Python | Language::R))) =
            (&d.name, d.language.given())
    {
        let file = format!("{}.{}", name, if *lang == Language::R { "R" } else { "py" });
        if let Ok(file) = fields::safe_relative_path(&file) {
            d.implicit_entry(
                "entry_point",
                format!("OmniScope plugins without `entry_point` start from a file named after the plugin, `{file}`"),
                EntryPoint::File(file),
            );
        }
    }
    if d.runtime.is_absent() {
        d.runtime = match d.entry.given() {
            Some(EntryPoint::File(_)) => Slot::Given(Runtime::File),
            Some(_) => Slot::Given(Runtime::PythonFunction),
            None => Slot::Absent,
        };
    }
    d
}

/// Stage7's `manifest.json` (the one with a `verb`).
pub(crate) fn read_stage7(cx: &mut Cx, root: &Map<String, Value>) -> Draft {
    let mut d = Draft::new(Dialect::Stage7);
    let verb = verb(cx, "verb", root.get("verb"), true);
    // Stage7 plugins are known by their verb; many have no separate name. A bad verb is
    // reported once, by `verb`.
    if root.get("name").is_some_and(|v| !v.is_null()) {
        d.name = fields::name(cx, "name", root.get("name"));
    } else {
        d.name = verb.clone();
    }
    d.id = fields::id(cx, "id", root.get("id"), d.name.as_deref());
    d.common(cx, root);
    let m = &mut d.m;
    m.verb = verb.clone();

    // Stage7 keeps marketplace metadata under `metadata`.
    if let Some(meta) = cx.map("metadata", root.get("metadata")) {
        m.author = m
            .author
            .take()
            .or_else(|| cx.line("metadata.author", meta.get("author"), 256));
        m.license = m
            .license
            .take()
            .or_else(|| cx.line("metadata.license", meta.get("license"), 256));
        m.category = m
            .category
            .take()
            .or_else(|| cx.line("metadata.category", meta.get("category"), 128));
        m.homepage = m
            .homepage
            .take()
            .or_else(|| cx.line("metadata.homepage", meta.get("homepage"), 1024));
        if m.tags.is_empty() {
            m.tags = fields::names(cx, "metadata.tags", meta.get("tags"));
        }
    }

    m.input_definitions = io_definitions(cx, "inputDefinitions", root.get("inputDefinitions"));
    m.output_definitions = io_definitions(cx, "outputDefinitions", root.get("outputDefinitions"));
    m.config = fields::config_list(cx, "configuration", root.get("configuration"));
    m.dependencies = fields::dependencies(
        cx,
        "dependencies",
        root.get("dependencies"),
        ListMeans::Python,
    );

    // The verb is the action; `operations[]` add more.
    if let Some(verb) = verb
        .as_ref()
        .filter(|v| !m.actions.iter().any(|a| &a.name == *v))
    {
        m.actions.insert(
            0,
            Action {
                name: verb.clone(),
                description: m.description.clone(),
                input: None,
                output: None,
            },
        );
    }
    for (i, op) in cx
        .list("operations", root.get("operations"))
        .iter()
        .enumerate()
    {
        let op_path = idx("operations", i);
        let (name_path, name_value, desc) = match op {
            Value::Object(o) => (
                at(&op_path, "name"),
                o.get("name"),
                cx.text(&at(&op_path, "description"), o.get("description")),
            ),
            other => (op_path.clone(), Some(other), None),
        };
        if let Some(name) = fields::action_name(
            cx,
            &name_path,
            name_value,
            m.actions.iter().map(|a| a.name.as_str()),
        ) {
            m.actions.push(Action {
                name,
                description: desc,
                input: None,
                output: None,
            });
        }
    }

    // Security: permissions, sandbox limits, network flag, signature.
    m.permissions = fields::permissions(cx, "permissions", root.get("permissions"), true);
    let security = cx.map("security", root.get("security"));
    if let Some(sec) = security {
        for p in fields::permissions(cx, "security.permissions", sec.get("permissions"), true) {
            fields::push_unique(&mut m.permissions, p);
        }
        fields::resources(
            cx,
            "security.sandboxOptions",
            sec.get("sandboxOptions"),
            BareUnit::Millis,
            &mut m.resources,
        );
        if let Some(trust) = cx.map("security.trust", sec.get("trust")) {
            m.signature = m
                .signature
                .take()
                .or_else(|| cx.text("security.trust.signature", trust.get("signature")));
        }
    }
    // `network_access: true` may sit at the top, in `security`, its `sandboxOptions` or in
    // `container`; each one grants the network.
    let sandbox = security
        .and_then(|s| s.get("sandboxOptions"))
        .and_then(Value::as_object);
    let container_map = root.get("container").and_then(Value::as_object);
    for (path, holder) in [
        ("network_access", Some(root)),
        ("security.network_access", security),
        ("security.sandboxOptions.network_access", sandbox),
        ("container.network_access", container_map),
    ] {
        if let Some(holder) = holder
            && cx.flag(path, holder.get("network_access")) == Some(true)
        {
            fields::push_unique(
                &mut m.permissions,
                fields::network_permission("network_access"),
            );
        }
    }

    m.container = container(cx, "container", root.get("container"), &mut m.resources);

    // How it runs: `language` (or `type`) decides, as in Stage7's CapabilitiesManager.
    if d.language.is_absent() {
        d.language = fields::language(cx, "type", root.get("type"));
    }
    let (entry_field, entry_path) = stage7_entry(cx, root);
    if d.runtime.is_absent() {
        d.runtime = match d.language.given() {
            Some(Language::Container) => Slot::Given(Runtime::Http),
            Some(Language::Python) => Slot::Given(Runtime::StdioBatch),
            Some(other) => {
                cx.add(
                    "language",
                    format!(
                        "plugd runs Stage7 plugins written in python (runtime stdio-batch) or as containers \
                         (runtime http); for `{other}` set `runtime` explicitly"
                    ),
                );
                Slot::Invalid
            }
            None if d.language == Slot::Invalid => Slot::Invalid,
            None if root.contains_key("container") => Slot::Given(Runtime::Http),
            None => {
                cx.add(
                    "language",
                    "is required for Stage7 plugins: `python` or `container`",
                );
                Slot::Invalid
            }
        };
    }
    d.entry = entry_field;
    d.entry_path = entry_path.to_string();
    if d.entry.is_absent() {
        match d.runtime.given() {
            Some(Runtime::StdioBatch) => d.implicit_entry(
                "entryPoint",
                "Stage7 python plugins start from `main.py` by convention".to_string(),
                EntryPoint::File("main.py".to_string()),
            ),
            Some(Runtime::Http) => {
                let dockerfile =
                    d.m.container
                        .as_ref()
                        .and_then(|c| c.dockerfile.clone())
                        .unwrap_or_else(|| "Dockerfile".to_string());
                d.implicit_entry(
                    "container.dockerfile",
                    format!("Stage7 container plugins are started by the `CMD` of their Dockerfile, `{dockerfile}`"),
                    EntryPoint::File(dockerfile),
                );
            }
            _ => {}
        }
    }
    if d.runtime.given() == Some(&Runtime::Http) {
        d.m.http = Some(stage7_http(cx, root));
    }
    d
}

/// Stage7's `entryPoint` (`"main.py"` or `{main, function}`), or plugd's `entry_point`.
fn stage7_entry(cx: &mut Cx, root: &Map<String, Value>) -> (Slot<EntryPoint>, &'static str) {
    let path = match root.get("entryPoint") {
        _ if root.contains_key("entry_point") => "entry_point",
        Some(Value::Object(_)) => "entryPoint.main",
        _ => "entryPoint",
    };
    let value = match root.get("entryPoint") {
        _ if root.contains_key("entry_point") => root.get("entry_point"),
        Some(Value::Object(e)) => e.get("main"),
        other => other,
    };
    (fields::entry_point(cx, path, value), path)
}

/// The Stage7 verb: upper-case by convention, but any token is accepted.
fn verb(cx: &mut Cx, path: &str, v: Option<&Value>, required: bool) -> Option<String> {
    let verb = cx.line(path, v, 128);
    match &verb {
        None if required => cx.add(
            path,
            "is required: the verb this plugin implements, e.g. `TEXT_STATS`",
        ),
        Some(v) => {
            if let Err(reason) = check_token(v) {
                cx.add(path, reason);
                return None;
            }
        }
        None => {}
    }
    verb
}

/// `[{name, type|valueType, required, description}]`.
fn io_definitions(cx: &mut Cx, path: &str, v: Option<&Value>) -> Vec<IoDefinition> {
    let mut out: Vec<IoDefinition> = Vec::new();
    for (i, item) in cx.list(path, v).iter().enumerate() {
        let item_path = idx(path, i);
        let Some(m) = cx.map(&item_path, Some(item)) else {
            continue;
        };
        let name_path = at(&item_path, "name");
        let Some(name) = cx.line(&name_path, m.get("name"), 128) else {
            cx.add(&name_path, "is required");
            continue;
        };
        if let Err(reason) = check_token(&name) {
            cx.add(&name_path, reason);
            continue;
        }
        if out.iter().any(|d| d.name == name) {
            cx.add(&name_path, format!("`{name}` is defined twice"));
            continue;
        }
        let type_key = if m.contains_key("valueType") {
            "valueType"
        } else {
            "type"
        };
        out.push(IoDefinition {
            name,
            value_type: cx.line(&at(&item_path, type_key), m.get(type_key), 64),
            required: cx
                .flag(&at(&item_path, "required"), m.get("required"))
                .unwrap_or(false),
            description: cx.text(&at(&item_path, "description"), m.get("description")),
        });
    }
    out
}

/// `container{dockerfile, buildContext, image, command, environment, resources, …}`; its
/// `resources` are merged into the plugin's.
fn container(
    cx: &mut Cx,
    path: &str,
    v: Option<&Value>,
    resources: &mut Resources,
) -> Option<ContainerSpec> {
    let c = cx.map(path, v)?;
    let file = |cx: &mut Cx, key: &str, check: fn(&str) -> Result<String, String>| {
        let p = at(path, key);
        cx.line(&p, c.get(key), 1024).and_then(|f| match check(&f) {
            Ok(f) => Some(f),
            Err(reason) => {
                cx.add(p, reason);
                None
            }
        })
    };
    let dockerfile = file(cx, "dockerfile", fields::safe_relative_path);
    let build_key = if c.contains_key("buildContext") {
        "buildContext"
    } else {
        "build_context"
    };
    let build_context = file(cx, build_key, fields::safe_relative_dir);
    let command_path = at(path, "command");
    let command = match c.get("command") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            Some(s.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        }
        Some(v @ Value::Array(_)) => Some(cx.words(&command_path, Some(v), |_| Ok(()))),
        Some(other) => {
            cx.add(
                &command_path,
                format!("expected argv as a list of text, found {}", describe(other)),
            );
            None
        }
    }
    .filter(|argv| !argv.is_empty());
    let mut environment = BTreeMap::new();
    if let Some(env) = cx.map(&at(path, "environment"), c.get("environment")) {
        for (key, value) in env {
            let key_path = at(&at(path, "environment"), key);
            let ok_key = !key.is_empty()
                && !key.starts_with(|c: char| c.is_ascii_digit())
                && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok_key {
                cx.add(
                    &key_path,
                    "is not an environment variable name (letters, digits and `_`)",
                );
                continue;
            }
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => {
                    cx.add(
                        &key_path,
                        format!("expected text, found {}", describe(other)),
                    );
                    continue;
                }
            };
            if value.contains('\0') {
                cx.add(&key_path, "contains a NUL byte");
                continue;
            }
            environment.insert(key.clone(), value);
        }
    }
    fields::resources(
        cx,
        &at(path, "resources"),
        c.get("resources"),
        BareUnit::Seconds,
        resources,
    );
    Some(ContainerSpec {
        image: cx.line(&at(path, "image"), c.get("image"), 512),
        dockerfile,
        build_context,
        command,
        environment,
    })
}

/// The HTTP settings of a Stage7 container plugin: `container.ports[0].container`,
/// `container.healthCheck{path, interval, timeout, retries}` and `api{endpoint, method,
/// timeout}`. Bare numbers are milliseconds, as everywhere in Stage7.
fn stage7_http(cx: &mut Cx, root: &Map<String, Value>) -> HttpSpec {
    let mut spec = HttpSpec::default();
    // Already reported by `container` when it is not a mapping.
    let container = root.get("container").and_then(Value::as_object);
    if let Some(c) = container {
        if let Some(port) = cx.list("container.ports", c.get("ports")).first() {
            match port {
                Value::Object(p) => match p.get("container") {
                    Some(v) => fields::port_into(cx, "container.ports[0].container", v, &mut spec),
                    None => cx.add(
                        "container.ports[0].container",
                        "is required: the port the server listens on",
                    ),
                },
                v @ Value::Number(_) => fields::port_into(cx, "container.ports[0]", v, &mut spec),
                other => cx.add(
                    "container.ports[0]",
                    format!(
                        "expected {{\"container\": 8080}}, found {}",
                        describe(other)
                    ),
                ),
            }
        }
        if let Some(h) = cx.map("container.healthCheck", c.get("healthCheck")) {
            if let Some(p) = fields::url_path(cx, "container.healthCheck.path", h.get("path")) {
                spec.health_path = p;
            }
            for (key, target) in [
                ("interval", &mut spec.health_interval),
                ("timeout", &mut spec.health_timeout),
            ] {
                if let Some(v) = h.get(key).filter(|v| !v.is_null()) {
                    match units::duration(v, BareUnit::Millis) {
                        Ok(d) => *target = d,
                        Err(reason) => cx.add(format!("container.healthCheck.{key}"), reason),
                    }
                }
            }
            if let Some(r) = fields::retries(cx, "container.healthCheck.retries", h.get("retries"))
            {
                spec.health_retries = r;
            }
        }
    }
    if let Some(api) = cx.map("api", root.get("api")) {
        if let Some(p) = fields::url_path(cx, "api.endpoint", api.get("endpoint")) {
            spec.execute_path = p;
        }
        if let Some(m) = fields::method(cx, "api.method", api.get("method")) {
            spec.method = m;
        }
        if let Some(v) = api.get("timeout").filter(|v| !v.is_null()) {
            match units::duration(v, BareUnit::Millis) {
                Ok(d) => spec.timeout = d,
                Err(reason) => cx.add("api.timeout", reason),
            }
        }
    }
    spec
}

/// Migraine's `plugin.yaml`.
pub(crate) fn read_migraine(cx: &mut Cx, root: &Map<String, Value>) -> Draft {
    let mut d = Draft::new(Dialect::Migraine);
    d.name_and_id(cx, root, root.get("name"), "name");
    d.common(cx, root);
    d.entry = fields::entry_point(cx, "entry_point", root.get("entry_point"));
    d.hooks(cx, root);
    let m = &mut d.m;
    // Migraine's plugin `type` (`command-output-interceptor`) is a category.
    if m.category.is_none() {
        m.category = cx.line("type", root.get("type"), 128);
    }
    m.commands = fields::commands(cx, "commands", root.get("commands"));
    // Each command is also callable as an action, so callers can name it.
    for c in &m.commands {
        if !m.actions.iter().any(|a| a.name == c.name) {
            m.actions.push(Action {
                name: c.name.clone(),
                description: c.description.clone(),
                input: None,
                output: None,
            });
        }
    }
    m.permissions = fields::permissions(cx, "permissions", root.get("permissions"), false);
    m.config = fields::config_map(cx, "config", root.get("config"));
    m.dependencies = fields::dependencies(
        cx,
        "dependencies",
        root.get("dependencies"),
        ListMeans::System,
    );

    let first_python = m.hooks.iter().enumerate().find_map(|(i, h)| {
        let handler = h
            .handler
            .as_ref()
            .filter(|h| h.kind == HandlerKind::Python)?;
        Some((
            d.hook_sources[i],
            handler.module.clone()?,
            handler.function.clone()?,
        ))
    });
    if d.runtime.is_absent() {
        d.runtime = match (&d.entry, &first_python) {
            (Slot::Given(EntryPoint::File(_)), _) => Slot::Given(Runtime::Command),
            (Slot::Given(_), _) | (Slot::Absent, Some(_)) => Slot::Given(Runtime::PythonFunction),
            (Slot::Absent, None) if !m.commands.is_empty() => Slot::Given(Runtime::Command),
            (Slot::Invalid, _) => Slot::Invalid,
            (Slot::Absent, None) => {
                if !root.contains_key("hooks")
                    || !cx.problems.iter().any(|p| p.path.starts_with("hooks"))
                {
                    cx.add(
                        "hooks",
                        "plugd cannot tell how to run this plugin: give a hook with a python handler, a list of \
                         `commands` with an executable, or set `runtime` and `entry_point`",
                    );
                }
                Slot::Invalid
            }
        };
    }
    if d.entry.is_absent() {
        match (d.runtime.given(), first_python) {
            (Some(Runtime::PythonFunction), Some((source, module, function))) => d.implicit_entry(
                &format!("hooks[{source}].handler"),
                "Migraine python plugins start from their first python hook handler".to_string(),
                EntryPoint::ModuleFunction { module, function },
            ),
            (Some(Runtime::Command), _) => {
                let mut candidates: Vec<String> = Vec::new();
                for c in [d.id.clone(), d.name.clone()].into_iter().flatten() {
                    for f in [c.clone(), format!("bin/{c}")] {
                        if let Ok(f) = fields::safe_relative_path(&f)
                            && !candidates.contains(&f)
                        {
                            candidates.push(f);
                        }
                    }
                }
                if let Some(first) = candidates.first().cloned() {
                    d.implicit_entry(
                        "entry_point",
                        format!(
                            "Migraine command plugins run an executable named like the plugin ({}); add \
                             `entry_point` to name another file",
                            candidates.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
                        ),
                        EntryPoint::File(first),
                    );
                    d.entry_candidates = candidates;
                }
            }
            _ => {}
        }
    }
    d
}

/// Settles inferred fields, checks fields against each other and assembles the manifest.
pub(crate) fn finish(mut d: Draft, mut cx: Cx) -> Analysis {
    if d.language.is_absent() {
        d.language = match d.entry.given() {
            Some(EntryPoint::File(f)) => match fields::language_of_file(f) {
                Some(l) => Slot::Given(l),
                None => Slot::Absent,
            },
            Some(_) => Slot::Given(Language::Python),
            None => Slot::Absent,
        };
    }
    if let (Some(runtime), Some(entry)) = (d.runtime.given(), d.entry.given()) {
        let wants_file = *runtime != Runtime::PythonFunction;
        match entry {
            EntryPoint::File(f) if !wants_file => cx.add(
                &d.entry_path,
                format!(
                    "runtime python-function needs `module:function` or `module:Class`, but `{f}` is a file; \
                     name the Python code (e.g. `plugin:MyPlugin`) or choose another runtime"
                ),
            ),
            python @ (EntryPoint::ModuleClass { .. } | EntryPoint::ModuleFunction { .. }) if wants_file => cx.add(
                &d.entry_path,
                format!(
                    "runtime {runtime} needs a file to run, but `{python}` names Python code; use runtime \
                     python-function or name a file"
                ),
            ),
            _ => {}
        }
    }
    if let (Some(runtime), Some(language)) = (d.runtime.given(), d.language.given()) {
        let allowed: &[Language] = match runtime {
            Runtime::PythonFunction | Runtime::StdioBatch => &[Language::Python],
            Runtime::File => &[Language::Python, Language::R],
            Runtime::Http => &[
                Language::Container,
                Language::Python,
                Language::Node,
                Language::Exec,
                Language::Bash,
            ],
            Runtime::Ndjson | Runtime::Command => &[
                Language::Python,
                Language::R,
                Language::Bash,
                Language::Node,
                Language::Exec,
            ],
        };
        if !allowed.contains(language) {
            let names: Vec<&str> = allowed.iter().map(|l| l.as_str()).collect();
            cx.add(
                "language",
                format!(
                    "runtime {runtime} does not run `{language}` plugins; it runs {}",
                    names.join(", ")
                ),
            );
        }
    }
    match d.runtime.given() {
        Some(Runtime::Http) => {
            d.m.http.get_or_insert_with(HttpSpec::default);
        }
        Some(other) if d.m.http.is_some() && d.m.dialect == Dialect::Plugd => {
            cx.add(
                "http",
                format!("only applies to runtime http, but the runtime is {other}"),
            );
        }
        _ => {}
    }
    let mut m = d.m;
    m.id = d.id.unwrap_or_default();
    m.name = d.name.unwrap_or_default();
    m.version = d.version.unwrap_or_else(|| semver::Version::new(0, 0, 0));
    if let Some(r) = d.runtime.given() {
        m.runtime = *r;
    }
    m.language = d.language.given().copied();
    let entry_known = match d.entry {
        Slot::Given(e) => {
            m.entry_point = e;
            true
        }
        Slot::Invalid => false,
        Slot::Absent => {
            // An invalid runtime's problem already says what to add.
            if d.runtime != Slot::Invalid {
                cx.add(
                    &d.entry_path,
                    "is required: the file (`plugin.py`, `bin/run`) or Python `module:function` / `module:Class` \
                     the plugin starts from",
                );
            }
            false
        }
    };
    // Two readers can trip over the same value (Stage7's verb doubles as its name); say it once.
    let mut seen = std::collections::HashSet::new();
    let problems = cx
        .problems
        .into_iter()
        .filter(|p| seen.insert((p.path.clone(), p.reason.clone())))
        .collect();
    Analysis {
        manifest: m,
        problems,
        entry_path: d.entry_path,
        entry_known,
        entry_note: d.entry_note,
        entry_candidates: d.entry_candidates,
        hook_sources: d.hook_sources,
    }
}

#[cfg(test)]
mod tests {
    use super::likely_meant;

    #[test]
    fn typo_suggestions() {
        assert_eq!(likely_meant("entrypoint"), Some("entry_point"));
        assert_eq!(likely_meant("EntryPoint"), Some("entry_point"));
        assert_eq!(likely_meant("versoin"), Some("version"));
        assert_eq!(likely_meant("tag"), Some("tags"));
        assert_eq!(likely_meant("permision"), Some("permissions"));
        assert_eq!(likely_meant("kind"), None);
        assert_eq!(likely_meant("maintainers"), None);
        assert_eq!(likely_meant("repository"), None);
        assert_eq!(likely_meant("x"), None);
        assert_eq!(likely_meant(&"entry_point".repeat(4)), None);
    }
}
