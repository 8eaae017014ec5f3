use crate::{BASE_YAML, ok, only_problem, problems, read};

/// BASE_YAML with `lines` added, each replacing the base line of the same key.
fn with(lines: &str) -> String {
    let keys: Vec<&str> = lines
        .lines()
        .map(|l| l.split(':').next().unwrap())
        .collect();
    let mut out: String = BASE_YAML
        .lines()
        .filter(|l| !keys.iter().any(|k| l.starts_with(&format!("{k}:"))))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(lines);
    out.push('\n');
    out
}

#[test]
fn the_base_manifest_is_valid() {
    ok("manifest.yaml", BASE_YAML);
}

#[test]
fn explicit_ids_must_be_kebab_case_and_are_not_rewritten() {
    only_problem(
        "manifest.yaml",
        &with("id: My_Plugin"),
        "id",
        "write e.g. `my-plugin`",
    );
    only_problem("manifest.yaml", &with("id: a--b"), "id", "not kebab-case");
    only_problem(
        "manifest.yaml",
        &with(&format!("id: {}", "a".repeat(65))),
        "id",
        "at most 64",
    );
    // Stage7's own ids (`plugin-TEXT_ANALYSIS`) are refused with the kebab-case spelling to use.
    only_problem(
        "manifest.json",
        r#"{"id": "plugin-TEXT_ANALYSIS", "verb": "TEXT_ANALYSIS", "version": "1.0.0", "language": "python"}"#,
        "id",
        "`plugin-text-analysis`",
    );
}

#[test]
fn ids_are_derived_from_names() {
    let m = ok(
        "manifest.yaml",
        "name: My Great_Plugin v2\nversion: 1.0.0\nentry_point: run\n",
    );
    assert_eq!(m.id, "my-great-plugin-v2");
    only_problem(
        "manifest.yaml",
        "name: '!!!'\nversion: 1.0.0\nentry_point: run\n",
        "id",
        "add an `id`",
    );
    let long = format!(
        "name: {}\nversion: 1.0.0\nentry_point: run\n",
        "word ".repeat(20)
    );
    only_problem("manifest.yaml", &long, "id", "shorter `id`");
}

#[test]
fn name_and_version_are_required() {
    let found = problems("manifest.yaml", "entry_point: plugin.py\n");
    assert_eq!(
        found,
        [
            "name: is required: a human-readable plugin name",
            "version: is required: the plugin's semantic version, e.g. \"1.0.0\"",
        ]
    );
}

#[test]
fn versions_must_be_semver_and_numbers_get_advice() {
    only_problem(
        "manifest.yaml",
        &with("version: 1.0"),
        "version",
        "read as a number",
    );
    only_problem(
        "manifest.yaml",
        &with("version: 1.0"),
        "version",
        "\"1.0.0\"",
    );
    only_problem(
        "manifest.yaml",
        &with("version: '1.0'"),
        "version",
        "three parts",
    );
    only_problem(
        "manifest.yaml",
        &with("version: v1.2.3"),
        "version",
        "drop the leading `v`",
    );
    only_problem(
        "manifest.yaml",
        &with("version: [1]"),
        "version",
        "found a list",
    );
    only_problem(
        "manifest.yaml",
        &with("min_platform_version: latest"),
        "min_platform_version",
        "MAJOR.MINOR.PATCH",
    );
}

#[test]
fn unknown_runtime_language_and_trust_level_list_the_known_ones() {
    only_problem(
        "manifest.yaml",
        &with("runtime: grpc"),
        "runtime",
        "unknown runtime `grpc`: use one of ndjson, python-function, file, stdio-batch, http, command",
    );
    only_problem(
        "manifest.yaml",
        &with("language: cobol"),
        "language",
        "unknown language `cobol`: use one of python, r, bash, node, exec, container",
    );
    only_problem(
        "manifest.yaml",
        &with("trust_level: root"),
        "trust_level",
        "unknown trust level `root`: use one of trusted, verified, sandboxed",
    );
    only_problem(
        "manifest.yaml",
        &with("trust_level: 3"),
        "trust_level",
        "expected text",
    );
}

#[test]
fn languages_are_inferred_from_the_entry_point() {
    let lang = |entry: &str| ok("manifest.yaml", &with(&format!("entry_point: {entry}"))).language;
    use plugd_manifest::Language::*;
    assert_eq!(lang("plugin.py"), Some(Python));
    assert_eq!(lang("analysis.R"), Some(R));
    assert_eq!(lang("analysis.r"), Some(R));
    assert_eq!(lang("run.sh"), Some(Bash));
    assert_eq!(lang("index.js"), Some(Node));
    assert_eq!(lang("index.mjs"), Some(Node));
    assert_eq!(lang("bin/echo"), Some(Exec));
    assert_eq!(lang("plugin:Main"), Some(Python));
    assert_eq!(
        lang("tool.exe"),
        None,
        "an unknown extension leaves the language open"
    );
    // The dialects' spellings are accepted and stored canonically.
    let m = ok("manifest.yaml", &with("language: JavaScript"));
    assert_eq!(m.language, Some(Node));
}

#[test]
fn malformed_permissions_are_reported_by_index() {
    let text = with(
        "permissions: [net:connect, Docker:Restart, docker, 'fs:read:', fs.read, file_system]",
    );
    let found = problems("manifest.yaml", &text);
    let paths: Vec<&str> = found.iter().map(|p| p.split(':').next().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "permissions[1]",
            "permissions[2]",
            "permissions[3]",
            "permissions[4]"
        ],
        "{found:#?}"
    );
    assert!(
        found[0].contains("`Docker`") && found[0].contains("lower-case"),
        "{found:#?}"
    );
    assert!(found[1].contains("no `:action`"), "{found:#?}");
}

#[test]
fn config_defaults_must_match_their_type_and_options() {
    let text = with(
        "config: {a: {type: integer, default: 1.5}, b: {type: string, default: x, options: [y, z]}}",
    );
    let found = problems("manifest.yaml", &text);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].starts_with(
        "config.a.default: a number (1.5) does not match the option's type `integer`"
    ));
    assert!(found[1].starts_with("config.b.default: is not one of the option's allowed values"));
}

#[test]
fn resources_with_bad_units_are_reported() {
    let text =
        with("resources: {memory: 12 parsecs, cpu: lots, timeout: 30 fortnights, processes: 0}");
    let found = problems("manifest.yaml", &text);
    let paths: Vec<&str> = found.iter().map(|p| p.split(':').next().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "resources.cpu",
            "resources.memory",
            "resources.processes",
            "resources.timeout"
        ],
        "{found:#?}"
    );
    assert!(found[1].contains("unknown unit `parsecs`"), "{found:#?}");
}

#[test]
fn dependency_requirements_are_checked() {
    let text = with(
        "dependencies: {plugins: {base: not-semver}, python: ['-e git+https://x'], r: ['1bad'], system: ['--all']}",
    );
    let found = problems("manifest.yaml", &text);
    let paths: Vec<&str> = found.iter().map(|p| p.split(':').next().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "dependencies.plugins.base",
            "dependencies.python[0]",
            "dependencies.r[0]",
            "dependencies.system[0]"
        ],
        "{found:#?}"
    );
    only_problem(
        "manifest.yaml",
        &with("dependencies: {npm: [x]}"),
        "dependencies.npm",
        "unknown dependency kind",
    );
    only_problem(
        "manifest.yaml",
        &with("dependencies: 3"),
        "dependencies",
        "expected a list",
    );
}

#[test]
fn action_names_must_be_non_empty_and_unique() {
    let text =
        with("actions: [echo, {name: echo}, {description: no name}, '', two words, {name: ok}]");
    let found = problems("manifest.yaml", &text);
    assert_eq!(
        found,
        [
            "actions[1].name: the action `echo` is declared twice; action names must be unique",
            "actions[2].name: is empty: every action needs a name",
            "actions[3]: is empty: every action needs a name",
            "actions[4]: `two words` contains blanks or control characters; use `-` or `_` instead",
        ]
    );
}

#[test]
fn stage7_operations_may_not_repeat_the_verb() {
    only_problem(
        "manifest.json",
        r#"{"id": "x", "verb": "RUN", "version": "1.0.0", "language": "python", "operations": ["RUN"]}"#,
        "operations[0]",
        "declared twice",
    );
}

#[test]
fn entry_points_may_not_leave_the_package() {
    only_problem(
        "manifest.yaml",
        &with("entry_point: /usr/bin/python3"),
        "entry_point",
        "absolute path",
    );
    only_problem(
        "manifest.yaml",
        &with("entry_point: ../outside.py"),
        "entry_point",
        "`..`",
    );
    only_problem(
        "manifest.yaml",
        &with("entry_point: bin/../../x"),
        "entry_point",
        "`..`",
    );
    only_problem(
        "manifest.yaml",
        &with("entry_point: 'C:\\tools\\x.exe'"),
        "entry_point",
        "absolute path",
    );
    only_problem(
        "manifest.json",
        r#"{"id": "x", "verb": "X", "version": "1.0.0", "language": "python", "entryPoint": {"main": "/abs/main.py"}}"#,
        "entryPoint.main",
        "absolute path",
    );
    only_problem(
        "manifest.json",
        r#"{"id": "x", "verb": "X", "version": "1.0.0", "language": "container", "container": {"dockerfile": "../Dockerfile"}}"#,
        "container.dockerfile",
        "`..`",
    );
}

#[test]
fn a_missing_entry_point_is_required() {
    only_problem(
        "manifest.yaml",
        "id: x\nname: X\nversion: 1.0.0\n",
        "entry_point",
        "is required",
    );
}

#[test]
fn typos_of_plugd_fields_are_caught_and_other_extra_fields_allowed() {
    let found = problems(
        "manifest.yaml",
        "id: x\nname: X\nversion: 1.0.0\nentrypoint: plugin.py\n",
    );
    assert_eq!(
        found,
        [
            "entrypoint: unknown field `entrypoint`: did you mean `entry_point`?",
            "entry_point: is required: the file (`plugin.py`, `bin/run`) or Python `module:function` / `module:Class` the plugin starts from",
        ]
    );
    only_problem(
        "manifest.yaml",
        &with("trustlevel: trusted"),
        "trustlevel",
        "did you mean `trust_level`?",
    );
    only_problem(
        "manifest.yaml",
        &with("permisions: []"),
        "permisions",
        "did you mean `permissions`?",
    );
    only_problem(
        "manifest.yaml",
        &with("Entry-Point: x"),
        "Entry-Point",
        "did you mean `entry_point`?",
    );
    ok("manifest.yaml", &with("maintainers: [someone]"));
    ok("manifest.yaml", &with("x-build: {tool: make}"));
    // Other dialects carry their own metadata; only manifest.yaml is checked for typos.
    ok(
        "manifest.json",
        r#"{"name": "x", "version": "1.0.0", "language": "python", "entry_point": "x.py", "entrypoint": "y"}"#,
    );
}

#[test]
fn runtime_and_entry_point_must_agree() {
    only_problem(
        "manifest.yaml",
        &with("runtime: ndjson\nentry_point: plugin:Main"),
        "entry_point",
        "runtime ndjson needs a file to run",
    );
    only_problem(
        "manifest.yaml",
        &with("runtime: python-function\nentry_point: plugin.py"),
        "entry_point",
        "needs `module:function` or `module:Class`",
    );
    only_problem(
        "manifest.yaml",
        &with("runtime: python-function\nentry_point: plugin:main\nlanguage: r"),
        "language",
        "runtime python-function does not run `r` plugins",
    );
    only_problem(
        "manifest.yaml",
        &with("runtime: file\nentry_point: index.js"),
        "language",
        "runtime file does not run `node` plugins",
    );
    only_problem(
        "manifest.yaml",
        &with("http: {port: 8080}"),
        "http",
        "only applies to runtime http",
    );
}

#[test]
fn http_settings_are_checked() {
    let text = with(
        "runtime: http\nhttp: {port: 70000, health_path: health, method: DELETE, health_retries: -1}",
    );
    let found = problems("manifest.yaml", &text);
    let paths: Vec<&str> = found.iter().map(|p| p.split(':').next().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "http.port",
            "http.health_path",
            "http.health_retries",
            "http.method"
        ],
        "{found:#?}"
    );
    let stage7 = r#"{"id": "x", "verb": "X", "version": "1.0.0", "language": "container",
        "container": {"ports": [{"host": 0}], "healthCheck": {"interval": "soon"}}, "api": {"timeout": "fast"}}"#;
    let found = problems("manifest.json", stage7);
    let paths: Vec<&str> = found.iter().map(|p| p.split(':').next().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "container.ports[0].container",
            "container.healthCheck.interval",
            "api.timeout"
        ],
        "{found:#?}"
    );
}

#[test]
fn hook_handlers_are_checked() {
    let text = "name: h\nversion: 1.0.0\nhooks:\n  - event: post-command\n    handler: {type: python, module: hook.py}\n  \
                - handler: {type: bash}\n  - event: x\n  - event: y\n    handler: {type: perl, script: x}\n";
    let found = problems("plugin.yaml", text);
    assert_eq!(
        found,
        [
            "hooks[0].handler.module: `hook.py` is not a Python module name; write the module name without `.py`: `hook`",
            "hooks[0].handler.function: is required for a python handler: the function to call",
            "hooks[1].event: is required: the event this hook runs on, e.g. `post-command`",
            "hooks[1].handler.script: is required for a bash handler: inline script text or a `.sh` file",
            "hooks[2]: runs nothing: give a `handler`, a `script` or a `command`",
            "hooks[3].handler.type: unknown hook handler type `perl`: use one of python, bash",
        ],
    );
}

#[test]
fn a_migraine_plugin_must_say_how_it_runs() {
    only_problem(
        "plugin.yaml",
        "name: x\nversion: 1.0.0\nconfig: {a: 1}\n",
        "hooks",
        "cannot tell how to run",
    );
}

#[test]
fn stage7_languages_plugd_cannot_run_are_reported() {
    only_problem(
        "manifest.json",
        r#"{"id": "x", "verb": "X", "version": "1.0.0", "language": "javascript"}"#,
        "language",
        "for `node` set `runtime` explicitly",
    );
    only_problem(
        "manifest.json",
        r#"{"id": "x", "verb": "X", "version": "1.0.0"}"#,
        "language",
        "is required for Stage7 plugins",
    );
}

#[test]
fn wrong_types_are_reported_where_they_are() {
    let text =
        with("tags: demo\ndescription: 42\nblast_radius: {scope: galaxy, reversible: maybe}");
    let found = problems("manifest.yaml", &text);
    assert_eq!(
        found,
        [
            "description: expected text, found a number (42); put it in quotes",
            "tags: expected a list, found text",
            "blast_radius.scope: unknown blast radius scope `galaxy`: use one of vm, container, host, network",
            "blast_radius.reversible: expected true or false, found text",
        ]
    );
}

#[test]
fn several_problems_are_reported_at_once_with_their_paths() {
    let text = r#"
id: Bad_Id
name: Broken
version: 1.0
runtime: grpc
entry_point: ../escape.py
trust_level: godmode
permissions: [net:connect, NET]
actions:
  - name: go
  - name: go
hooks:
  - event: pre-command
    handler: {type: python, function: f}
resources: {memory: 1 bushel}
dependencies: {plugins: {base: "~>1"}}
entrypoint: typo.py
"#;
    let found = problems("manifest.yaml", text);
    let paths: Vec<&str> = found
        .iter()
        .map(|p| p.split(": ").next().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "id",
            "trust_level",
            "resources.memory",
            "actions[1].name",
            "runtime",
            "version",
            "entry_point",
            "hooks[0].handler.module",
            "permissions[1]",
            "dependencies.plugins.base",
            "entrypoint",
        ],
        "{found:#?}"
    );
}

#[test]
fn the_error_lists_every_problem_for_people() {
    let err = read(
        "manifest.yaml",
        "name: X\nversion: 1.0\nentry_point: /abs\n",
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("manifest.yaml is not a valid plugin manifest:\n  - version: "),
        "{text}"
    );
    assert!(
        text.contains("\n  - entry_point: `/abs` is an absolute path"),
        "{text}"
    );
    assert_eq!(err.problems().len(), 2);
}
