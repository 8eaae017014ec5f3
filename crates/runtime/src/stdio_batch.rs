//! The `stdio-batch` runtime (DESIGN §4): Stage7 Python plugins, one process
//! per call.
//!
//! Stage7 serialises a verb's inputs as a JSON array of `[name, {value,
//! valueType, args}]` pairs on the plugin's stdin and runs `python3 main.py
//! <plugin root>`; the plugin prints an array of `{success, name, resultType,
//! result, resultDescription, error?}`. Each key of the call's `args` is one
//! input ([`batch_input`]); its `valueType` is inferred from the JSON value
//! (`string`, `number`, `boolean`, `array`, `object`; `any` for null).
//!
//! Before anything starts, the inputs are checked against the manifest's
//! `inputDefinitions` ([`check_inputs`]): a missing required input or a value
//! of the wrong type is refused with 201 naming the input. Inputs the manifest
//! does not define are passed on, as Stage7 does.
//!
//! The result ([`interpret_results`]): timeout → 301; runaway stdout → 300;
//! stdout that is not an array of result objects with a boolean `success` →
//! 100 (or, when the process also failed, 400 with its exit status and stderr,
//! which explains more); any `success: false` → 500 with that result's
//! `error` (else its `resultDescription`); all successful but a non-zero exit →
//! 400. Success gives `body = {"results": [...], "outputs": {name: result}}`:
//! `results` as the plugin wrote them and `outputs` as a convenience map from
//! each result's `name` to its `result` (the last one wins on duplicate
//! names), the shape Stage7's HTTP plugins answer with. Error responses carry
//! `{"results": [...]}` when there were any.

use serde_json::{Map, Value};

use crate::file::preview;
use crate::oneshot::{
    OneshotOptions, OneshotOutput, not_started_report, refused_report, run_oneshot,
};
use crate::protocol::json_kind;
use crate::protocol::{ExecCall, Response, codes};
use crate::{CallReport, Interpreters, Isolation, LaunchSpec, PluginRef, RuntimeError};

/// One of the manifest's `inputDefinitions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputDef<'a> {
    /// The input's name.
    pub name: &'a str,
    /// Its declared type (`string`, `number`, `boolean`, `array`, `object`;
    /// other Stage7 types such as `any` or `plan` accept every value).
    pub value_type: Option<&'a str>,
    /// Whether a call must give it.
    pub required: bool,
}

/// The Stage7 `valueType` of a JSON value.
pub fn value_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "any",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks `args` against the input definitions: every required input given
/// (null counts as not given), every defined input of its declared type.
/// `Err` is the message of a 201 response, naming the input.
pub fn check_inputs(args: &Map<String, Value>, defs: &[InputDef<'_>]) -> Result<(), String> {
    let missing: Vec<&str> = defs
        .iter()
        .filter(|d| d.required && args.get(d.name).is_none_or(Value::is_null))
        .map(|d| d.name)
        .collect();
    if !missing.is_empty() {
        let given: Vec<&str> = args.keys().map(String::as_str).collect();
        return Err(format!(
            "missing required input{} {}; pass {} in --args (given: {})",
            if missing.len() == 1 { "" } else { "s" },
            missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", "),
            if missing.len() == 1 { "it" } else { "them" },
            if given.is_empty() {
                "nothing".to_string()
            } else {
                given.join(", ")
            }
        ));
    }
    for def in defs {
        let (Some(value), Some(declared)) = (args.get(def.name), def.value_type) else {
            continue;
        };
        if value.is_null() {
            continue;
        }
        let declared = declared.trim().to_ascii_lowercase();
        let fits = match declared.as_str() {
            "string" => value.is_string(),
            "number" | "integer" => value.is_number(),
            "boolean" | "bool" => value.is_boolean(),
            "array" | "list" => value.is_array(),
            "object" => value.is_object(),
            _ => true,
        };
        if !fits {
            return Err(format!(
                "input `{}` must be {declared} but is {}",
                def.name,
                json_kind(value)
            ));
        }
    }
    Ok(())
}

/// The stdin document: `[[name, {"value", "valueType", "args": {}}], …]`, one
/// pair per `args` key.
pub fn batch_input(args: &Map<String, Value>) -> Value {
    Value::Array(
        args.iter()
            .map(|(name, value)| {
                serde_json::json!([name, {
                    "value": value,
                    "valueType": value_type(value),
                    "args": {},
                }])
            })
            .collect(),
    )
}

/// The launch of a Stage7 Python plugin: the interpreter, the entry point
/// (`main.py` unless the manifest names another) and the plugin root as
/// `argv[1]` (`/plugin` in the sandbox), in the call's work dir.
pub fn batch_launch(
    plugin: &PluginRef,
    plugin_dir: &std::path::Path,
    work_dir: &std::path::Path,
    interp: &Interpreters,
) -> Result<LaunchSpec, RuntimeError> {
    let plugin = PluginRef {
        language: Some("python".to_string()),
        ..plugin.clone()
    };
    let mut spec = crate::ndjson_launch(&plugin, plugin_dir, work_dir, interp)?;
    let root = crate::launch::canonical_dir("plugin directory", plugin_dir)?;
    spec.args.push(root.into());
    Ok(spec)
}

/// Turns the process's end and its stdout into the call's response (the rules
/// are in the module doc).
pub fn interpret_results(id: &str, out: &OneshotOutput) -> Response {
    if let Some(failure) = out.common_failure(id) {
        return failure;
    }
    let label = &out.label;
    let results = match parse_results(&out.stdout) {
        Ok(results) => results,
        Err(_) if !out.succeeded() => return out.crash_response(id, ""),
        Err((code, problem)) => {
            return Response::error(id, code, format!("plugin {label} {problem}"));
        }
    };
    let body = |results: &[Map<String, Value>]| {
        serde_json::json!({
            "results": results.iter().cloned().map(Value::Object).collect::<Vec<_>>()
        })
    };
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r.get("success") == Some(&Value::Bool(false)))
        .map(|r| {
            let name = r.get("name").and_then(Value::as_str).unwrap_or("(unnamed)");
            let why = ["error", "resultDescription"]
                .iter()
                .find_map(|k| r.get(*k).filter(|v| !v.is_null()))
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .unwrap_or_else(|| "no error given".to_string());
            format!("{why} (result `{name}`)")
        })
        .collect();
    if !failed.is_empty() {
        let mut response = Response::error(
            id,
            500,
            format!("plugin {label} reported failure: {}", failed.join("; ")),
        );
        response.body = Some(body(&results));
        return response;
    }
    if !out.succeeded() {
        let mut response = out.crash_response(id, " although every result it printed succeeded");
        response.body = Some(body(&results));
        return response;
    }
    let mut outputs = Map::new();
    for r in &results {
        if let Some(name) = r.get("name").and_then(Value::as_str) {
            outputs.insert(
                name.to_string(),
                r.get("result").cloned().unwrap_or(Value::Null),
            );
        }
    }
    let mut body = body(&results);
    body["outputs"] = Value::Object(outputs);
    Response::ok(id, Some(body))
}

/// The result array, or the code and the problem ("printed …") for a message.
fn parse_results(stdout: &[u8]) -> Result<Vec<Map<String, Value>>, (i64, String)> {
    let value: Value = serde_json::from_slice(stdout).map_err(|e| {
        (
            codes::MALFORMED_JSON,
            format!(
                "printed something that is not JSON ({e}); stdout must be one JSON array of results; it starts with: {}",
                preview(stdout)
            ),
        )
    })?;
    let Value::Array(items) = value else {
        return Err((
            codes::MALFORMED_JSON,
            format!(
                "printed {} instead of an array of {{success, name, resultType, result, resultDescription}}",
                json_kind(&value)
            ),
        ));
    };
    if items.is_empty() {
        return Err((
            codes::MALFORMED_JSON,
            "printed an empty array; it must print at least one result".to_string(),
        ));
    }
    let mut results = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Value::Object(map) = item else {
            return Err((
                codes::MALFORMED_JSON,
                format!(
                    "printed a result #{i} that is {}, not an object",
                    json_kind(&item)
                ),
            ));
        };
        if !map.get("success").is_some_and(Value::is_boolean) {
            return Err((
                codes::MISSING_FIELD,
                format!("printed a result #{i} without a boolean `success`"),
            ));
        }
        results.push(map);
    }
    Ok(results)
}

/// One call of a `stdio-batch` plugin: inputs checked (201 before anything
/// starts), written to stdin, results judged.
pub async fn run_stdio_batch(
    spec: &LaunchSpec,
    isolation: &Isolation,
    call: &ExecCall,
    defs: &[InputDef<'_>],
    opts: &OneshotOptions,
) -> CallReport {
    let id = uuid::Uuid::new_v4().to_string();
    if let Err(problem) = check_inputs(&call.args, defs) {
        return refused_report(
            &id,
            codes::INVALID_ARGS,
            format!("plugin {}: {problem}", spec.label()),
        );
    }
    // A map of JSON values always serialises.
    let stdin = serde_json::to_vec(&batch_input(&call.args)).unwrap_or_default();
    match run_oneshot(spec, isolation, stdin, opts).await {
        Ok(out) => {
            let response = interpret_results(&id, &out);
            out.into_report(response)
        }
        Err(err) => not_started_report(&id, codes::INTERNAL, &err),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::oneshot::OneshotEnd;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn out(code: i32, stdout: &str) -> OneshotOutput {
        OneshotOutput {
            label: "text-stats@1.0.0".into(),
            stdout: stdout.as_bytes().to_vec(),
            stderr_tail: "Traceback: kaput\n".into(),
            end: OneshotEnd::Exited(ExitStatus::from_raw(code << 8)),
            duration: Duration::ZERO,
            accounting: None,
        }
    }

    const DEFS: &[InputDef<'static>] = &[
        InputDef {
            name: "text",
            value_type: Some("string"),
            required: true,
        },
        InputDef {
            name: "top_n",
            value_type: Some("number"),
            required: false,
        },
        InputDef {
            name: "anything",
            value_type: Some("any"),
            required: false,
        },
    ];

    #[test]
    fn inputs_become_stage7_pairs() {
        let input = batch_input(&args(json!({
            "text": "hi", "n": 3, "flag": true, "list": [1], "obj": {"a": 1}, "none": null,
        })));
        let pairs = input.as_array().unwrap();
        let find = |name: &str| pairs.iter().find(|p| p[0] == name).unwrap()[1].clone();
        assert_eq!(
            find("text"),
            json!({"value": "hi", "valueType": "string", "args": {}})
        );
        assert_eq!(find("n")["valueType"], "number");
        assert_eq!(find("flag")["valueType"], "boolean");
        assert_eq!(find("list")["valueType"], "array");
        assert_eq!(find("obj")["valueType"], "object");
        assert_eq!(find("none")["valueType"], "any");
        assert_eq!(batch_input(&Map::new()), json!([]));
    }

    #[test]
    fn required_and_typed_inputs_are_checked() {
        assert!(check_inputs(&args(json!({"text": "x", "top_n": 2, "extra": 1})), DEFS).is_ok());
        assert!(check_inputs(&args(json!({"text": "x", "anything": [1]})), DEFS).is_ok());
        let err = check_inputs(&args(json!({"top_n": 2})), DEFS).unwrap_err();
        assert!(err.contains("missing required input `text`"), "{err}");
        assert!(err.contains("given: top_n"), "{err}");
        let err = check_inputs(&args(json!({"text": null})), DEFS).unwrap_err();
        assert!(err.contains("`text`"), "{err}");
        let err = check_inputs(&args(json!({"text": "x", "top_n": "5"})), DEFS).unwrap_err();
        assert_eq!(err, "input `top_n` must be number but is a string");
        let err = check_inputs(&args(json!({"text": 5})), DEFS).unwrap_err();
        assert!(err.contains("must be string"), "{err}");
    }

    #[test]
    fn successful_results_give_results_and_outputs() {
        let r = interpret_results(
            "id",
            &out(
                0,
                r#"[{"success": true, "name": "statistics", "resultType": "object", "result": {"words": 2}, "resultDescription": "d"},
                    {"success": true, "name": "top_words", "resultType": "array", "result": [], "resultDescription": "d"}]"#,
            ),
        );
        assert!(r.is_ok(), "{r:?}");
        let body = r.body.unwrap();
        assert_eq!(body["outputs"]["statistics"], json!({"words": 2}));
        assert_eq!(body["outputs"]["top_words"], json!([]));
        assert_eq!(body["results"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn success_false_is_an_error_with_the_plugins_words() {
        for status in [0, 1] {
            let r = interpret_results(
                "id",
                &out(
                    status,
                    r#"[{"success": false, "name": "error", "resultType": "error", "result": null, "resultDescription": "TEXT_STATS failed", "error": "missing required input `text`"}]"#,
                ),
            );
            assert_eq!(r.code, Some(500), "{r:?}");
            let m = r.message.clone().unwrap();
            assert!(
                m.contains("missing required input `text`") && m.contains("result `error`"),
                "{m}"
            );
            assert_eq!(r.body.unwrap()["results"][0]["success"], false);
        }
        let r = interpret_results(
            "id",
            &out(
                0,
                r#"[{"success": false, "name": "x", "resultDescription": "went wrong"}]"#,
            ),
        );
        assert!(r.message.unwrap().contains("went wrong"));
    }

    #[test]
    fn hostile_stdout_is_a_clear_error() {
        for (stdout, code, needle) in [
            ("", codes::MALFORMED_JSON, "not json"),
            ("hello\n", codes::MALFORMED_JSON, "not json"),
            (
                r#"{"success": true}"#,
                codes::MALFORMED_JSON,
                "an object instead of an array",
            ),
            ("[]", codes::MALFORMED_JSON, "empty array"),
            ("[1]", codes::MALFORMED_JSON, "is a number"),
            (
                r#"[{"name": "x"}]"#,
                codes::MISSING_FIELD,
                "boolean `success`",
            ),
            (
                r#"[{"success": "yes"}]"#,
                codes::MISSING_FIELD,
                "boolean `success`",
            ),
            (
                "[{\"success\": true}] trailing",
                codes::MALFORMED_JSON,
                "not json",
            ),
        ] {
            let r = interpret_results("id", &out(0, stdout));
            assert_eq!(r.code, Some(code), "{stdout}: {r:?}");
            let m = r.message.unwrap().to_lowercase();
            assert!(m.contains(needle), "{stdout}: {m}");
        }
    }

    #[test]
    fn a_crash_names_its_exit_and_stderr() {
        let r = interpret_results("id", &out(1, ""));
        assert_eq!(r.code, Some(codes::INTERNAL));
        let m = r.message.unwrap();
        assert!(
            m.contains("exited with status 1") && m.contains("kaput"),
            "{m}"
        );
        let r = interpret_results(
            "id",
            &out(3, r#"[{"success": true, "name": "a", "result": 1}]"#),
        );
        assert_eq!(r.code, Some(codes::INTERNAL));
        assert!(r.message.unwrap().contains("although every result"));
    }

    #[test]
    fn the_plugin_root_is_argv1() {
        let dir = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.py"), "print()").unwrap();
        let interp = Interpreters {
            python: "/usr/bin/python3".into(),
            bash: "/bin/bash".into(),
            node: "node".into(),
            rscript: "Rscript".into(),
        };
        let plugin = PluginRef {
            id: "t".into(),
            version: "1.0.0".into(),
            entry_point: "main.py".into(),
            language: None,
        };
        let spec = batch_launch(&plugin, dir.path(), work.path(), &interp).unwrap();
        let root = dir.path().canonicalize().unwrap();
        assert_eq!(
            spec.args,
            vec![root.join("main.py").into_os_string(), root.into_os_string()]
        );
        let seen = spec.seen_through(&[(dir.path().canonicalize().unwrap(), "/plugin".into())]);
        assert_eq!(seen.args[1], std::ffi::OsString::from("/plugin"));
    }
}
