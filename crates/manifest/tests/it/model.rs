use std::str::FromStr;

use plugd_manifest::{Dialect, EntryPoint, Language, Manifest, Permission, Runtime, TrustLevel};
use serde_json::json;

use crate::dialects::{
    MIGRAINE_DOCKER_MANAGER, MIGRAINE_LOG_PROCESSOR, OMNISCOPE_SEED, PLUGD_FULL, STAGE7_CONTAINER,
    WINGMAN_SEED,
};
use crate::ok;

#[test]
fn runtimes_parse_display_and_serialise_with_one_spelling() {
    let names = [
        "ndjson",
        "python-function",
        "file",
        "stdio-batch",
        "http",
        "command",
    ];
    assert_eq!(Runtime::ALL.len(), names.len());
    for (runtime, name) in Runtime::ALL.iter().zip(names) {
        assert_eq!(runtime.to_string(), name);
        assert_eq!(Runtime::from_str(name), Ok(*runtime));
        assert_eq!(serde_json::to_value(runtime).unwrap(), json!(name));
        assert_eq!(
            serde_json::from_value::<Runtime>(json!(name)).unwrap(),
            *runtime
        );
    }
    let err = Runtime::from_str("python_function").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown runtime `python_function`: use one of ndjson, python-function, file, stdio-batch, http, command"
    );
}

#[test]
fn dialects_languages_and_trust_levels_have_lower_case_names() {
    let dialects: Vec<String> = [
        Dialect::Plugd,
        Dialect::OmniScope,
        Dialect::Stage7,
        Dialect::Migraine,
    ]
    .iter()
    .map(|d| format!("{d}={}", serde_json::to_value(d).unwrap()))
    .collect();
    assert_eq!(
        dialects,
        [
            "plugd=\"plugd\"",
            "omniscope=\"omniscope\"",
            "stage7=\"stage7\"",
            "migraine=\"migraine\""
        ]
    );
    assert_eq!(serde_json::to_value(Language::R).unwrap(), json!("r"));
    assert_eq!(Language::Container.to_string(), "container");
    assert_eq!(Language::parse_lenient("Python3"), Ok(Language::Python));
    assert_eq!(Language::parse_lenient("JS"), Ok(Language::Node));
    assert!(Language::parse_lenient("cobol").is_err());
    assert_eq!(TrustLevel::default(), TrustLevel::Sandboxed);
    assert_eq!(TrustLevel::Verified.to_string(), "verified");
    assert_eq!(
        serde_json::to_value(TrustLevel::Trusted).unwrap(),
        json!("trusted")
    );
}

#[test]
fn entry_points_tell_files_functions_and_classes_apart() {
    let cases = [
        ("plugin.py", EntryPoint::File("plugin.py".into())),
        ("bin/echo", EntryPoint::File("bin/echo".into())),
        (
            "log_processor:process_log",
            EntryPoint::ModuleFunction {
                module: "log_processor".into(),
                function: "process_log".into(),
            },
        ),
        (
            "pkg.sub:HelloPlugin",
            EntryPoint::ModuleClass {
                module: "pkg.sub".into(),
                class: "HelloPlugin".into(),
            },
        ),
        (
            "plugin:_private",
            EntryPoint::ModuleFunction {
                module: "plugin".into(),
                function: "_private".into(),
            },
        ),
        // Not `module:identifier`, so a file name.
        ("a:b:c", EntryPoint::File("a:b:c".into())),
        ("my-module:run", EntryPoint::File("my-module:run".into())),
        (":run", EntryPoint::File(":run".into())),
    ];
    for (text, expected) in cases {
        let parsed = EntryPoint::parse(text);
        assert_eq!(parsed, expected, "{text}");
        assert_eq!(parsed.to_string(), text, "Display gives back the text");
    }
    assert_eq!(EntryPoint::parse("plugin:Main").module(), Some("plugin"));
    assert_eq!(EntryPoint::parse("run.sh").file(), Some("run.sh"));
}

#[test]
fn permissions_parse_structured_and_omniscope_forms() {
    let p = Permission::parse("proxmox:snapshot:create").unwrap();
    assert_eq!(
        (
            p.resource.as_str(),
            p.action.as_str(),
            p.qualifier.as_deref()
        ),
        ("proxmox", "snapshot", Some("create"))
    );
    let p = Permission::parse("fs:read:/data/in").unwrap();
    assert_eq!(p.qualifier.as_deref(), Some("/data/in"));
    assert!(!p.grants_network());
    let p = Permission::parse("network").unwrap();
    assert_eq!(
        (p.to_string(), p.original.as_str()),
        ("net:connect".to_string(), "network")
    );
    assert!(p.grants_network());
    assert!(Permission::parse("http:request").unwrap().grants_network());
    for bad in [
        "docker",
        "Docker:read",
        "docker:Read",
        ":read",
        "docker:",
        "do cker:read",
        "fs:read:",
        "1fs:read",
        "fs:re\u{7}ad",
    ] {
        assert!(Permission::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn manifests_round_trip_through_json_losslessly() {
    for (file, text) in [
        ("manifest.json", OMNISCOPE_SEED),
        ("manifest.json", STAGE7_CONTAINER),
        ("plugin.yaml", MIGRAINE_LOG_PROCESSOR),
        ("plugin.yaml", MIGRAINE_DOCKER_MANAGER),
        ("manifest.yaml", WINGMAN_SEED),
        ("manifest.yaml", PLUGD_FULL),
    ] {
        let m = ok(file, text);
        let stored = serde_json::to_string(&m).unwrap();
        let back: Manifest = serde_json::from_str(&stored).unwrap();
        assert_eq!(back, m, "{file}");
        // And again, to be sure the stored form is stable.
        assert_eq!(serde_json::to_string(&back).unwrap(), stored);
    }
}

#[test]
fn the_stored_form_is_readable() {
    let m = ok("manifest.json", STAGE7_CONTAINER);
    let v = serde_json::to_value(&m).unwrap();
    assert_eq!(v["runtime"], "http");
    assert_eq!(v["dialect"], "stage7");
    assert_eq!(v["version"], "1.0.0");
    assert_eq!(v["entry_point"], json!({"file": "Dockerfile"}));
    assert_eq!(
        v["http"]["timeout"], 30000,
        "durations are stored in milliseconds"
    );
    assert_eq!(v["resources"]["timeout"], 30000);
    assert_eq!(
        v["permissions"][0],
        json!({"resource": "net", "action": "connect", "qualifier": null, "original": "network_access"})
    );
    let m = ok("manifest.yaml", WINGMAN_SEED);
    let v = serde_json::to_value(&m).unwrap();
    assert_eq!(
        v["entry_point"],
        json!({"module_class": {"module": "plugin", "class": "MyPlugin"}})
    );
}

#[test]
fn config_defaults_leave_out_options_without_one() {
    let m = ok(
        "manifest.json",
        r#"{"name": "c", "version": "1.0.0", "entry_point": "c.py",
            "config": {"a": {"type": "integer", "default": 3}, "b": {"type": "string"}, "c": {"default": null}}}"#,
    );
    assert_eq!(
        serde_json::Value::Object(m.config_defaults()),
        json!({"a": 3})
    );
}
