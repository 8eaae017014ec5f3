//! The one envelope (DESIGN §2): the request plugd sends and the response a plugin
//! answers with, in the OmniFlow NDJSON shape, plus the error-code taxonomy.
//!
//! This module is serde types only. It does no I/O, so adapters for other runtimes,
//! the server and the CLI can share these types without pulling in processes or
//! tokio (the nushell `nu-plugin-protocol` habit). Framing lives in
//! [`crate::codec`], the process side in [`crate::Worker`].

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a request asks of the plugin: the envelope's `type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestType {
    /// "Are you ready?" Sent once after start; anything but `status: ok` means no.
    Health,
    /// Run one action; the payload is built by [`ExecCall::to_payload`].
    Exec,
    /// Finish in-flight work, answer, and exit. plugd closes stdin afterwards and
    /// kills the process group when the grace period runs out.
    Shutdown,
    /// Describe yourself (actions, version); optional for plugins.
    Meta,
    /// Abandon the request whose id is in `payload.id`; optional for plugins.
    Cancel,
}

impl RequestType {
    /// The wire name (`"health"`, `"exec"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RequestType::Health => "health",
            RequestType::Exec => "exec",
            RequestType::Shutdown => "shutdown",
            RequestType::Meta => "meta",
            RequestType::Cancel => "cancel",
        }
    }
}

impl fmt::Display for RequestType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Host → plugin: one JSON object on one line of the plugin's stdin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Unique among the requests in flight on one plugin process; the response echoes it.
    pub id: String,
    /// What is asked.
    #[serde(rename = "type")]
    pub kind: RequestType,
    /// When plugd sent it, RFC 3339 UTC.
    pub timestamp: String,
    /// The arguments; serialised as `null` when absent, as seed 000's probes do.
    pub payload: Option<Value>,
}

impl Request {
    /// A request stamped with the current time.
    pub fn new(id: impl Into<String>, kind: RequestType, payload: Option<Value>) -> Request {
        Request {
            id: id.into(),
            kind,
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            payload,
        }
    }
}

/// The outcome a response reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The request succeeded; `body` holds the result.
    Ok,
    /// The request failed; `code` and `message` say why.
    Error,
    /// The plugin cannot take the request now: retry elsewhere or later, with backoff.
    Busy,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Ok => "ok",
            Status::Error => "error",
            Status::Busy => "busy",
        })
    }
}

/// Plugin → host: one JSON object on one line of the plugin's stdout.
///
/// Unknown fields are ignored (plugins add their own), absent optional fields are
/// left out when serialising, so a response plugd made itself looks like one a
/// plugin would write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The id of the request answered.
    pub id: String,
    /// Success, failure or "try later".
    pub status: Status,
    /// `0` or absent on success; see [`codes`] for plugd's own, plugin codes pass through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    /// A sentence for a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// Anything else the plugin (or plugd, for errors it made) wants to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
}

impl Response {
    /// A success carrying `body`.
    pub fn ok(id: impl Into<String>, body: Option<Value>) -> Response {
        Response {
            id: id.into(),
            status: Status::Ok,
            code: Some(codes::OK),
            message: None,
            body,
            meta: None,
        }
    }

    /// A failure with a code (see [`codes`]) and a message for a person.
    pub fn error(id: impl Into<String>, code: i64, message: impl Into<String>) -> Response {
        Response {
            id: id.into(),
            status: Status::Error,
            code: Some(code),
            message: Some(message.into()),
            body: None,
            meta: None,
        }
    }

    /// Whether the status is `ok`.
    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok
    }
}

/// The OmniFlow error taxonomy plugd itself uses (DESIGN §2). Codes a plugin sends
/// (HTTP-style 400, 408, 413, 422, 500, …) are passed through unchanged.
pub mod codes {
    /// Success.
    pub const OK: i64 = 0;
    /// A line was not valid JSON.
    pub const MALFORMED_JSON: i64 = 100;
    /// A line was longer than `OMNIFLOW_PLUGIN_MAX_LINE`.
    pub const LINE_TOO_LONG: i64 = 101;
    /// A required envelope field was missing.
    pub const MISSING_FIELD: i64 = 102;
    /// The plugin does not know the action or request type.
    pub const UNSUPPORTED_ACTION: i64 = 200;
    /// The action's arguments were wrong.
    pub const INVALID_ARGS: i64 = 201;
    /// Out of memory, processes, workers, …
    pub const RESOURCE_EXHAUSTED: i64 = 300;
    /// No answer in time.
    pub const TIMEOUT: i64 = 301;
    /// Anything else, including a plugin that crashed.
    pub const INTERNAL: i64 = 400;

    /// A short name for one of the codes above, `None` for codes plugd does not define.
    pub fn name(code: i64) -> Option<&'static str> {
        Some(match code {
            OK => "ok",
            MALFORMED_JSON => "malformed JSON",
            LINE_TOO_LONG => "line too long",
            MISSING_FIELD => "missing field",
            UNSUPPORTED_ACTION => "unsupported action",
            INVALID_ARGS => "invalid arguments",
            RESOURCE_EXHAUSTED => "resource exhausted",
            TIMEOUT => "timeout",
            INTERNAL => "internal error",
            _ => return None,
        })
    }
}

/// One call of one action, whatever the runtime (DESIGN §2). Runtimes other than
/// NDJSON translate it to their own contract; NDJSON sends [`ExecCall::to_payload`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecCall {
    /// The action to run; plugins with one action may not need it.
    #[serde(default)]
    pub action: Option<String>,
    /// Named arguments.
    #[serde(default)]
    pub args: Map<String, Value>,
    /// OmniScope: the data to process.
    #[serde(default)]
    pub input_data: Option<Value>,
    /// OmniScope: processing parameters.
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    /// OmniScope: the extension point that triggered the call.
    #[serde(default)]
    pub extension_point: Option<String>,
    /// Who is called and why: plugin id, version, config with defaults, trace id.
    #[serde(default)]
    pub context: Option<Value>,
}

impl ExecCall {
    /// A call of `action` with `args`.
    pub fn new(action: impl Into<String>, args: Map<String, Value>) -> ExecCall {
        ExecCall {
            action: Some(action.into()),
            args,
            ..ExecCall::default()
        }
    }

    /// The `exec` payload: `{"action", "args", …}` plus the OmniScope fields that were
    /// given, and every `args` key copied to the top level unless that key is already
    /// taken. Real OmniFlow plugins read `payload.message` while plugd's own read
    /// `payload.args.message`; both work unmodified. The envelope's own keys win so a
    /// caller cannot replace `action` through an argument called `action`.
    pub fn to_payload(&self) -> Value {
        let mut payload = Map::new();
        if let Some(action) = &self.action {
            payload.insert("action".into(), Value::String(action.clone()));
        }
        payload.insert("args".into(), Value::Object(self.args.clone()));
        if let Some(input) = &self.input_data {
            payload.insert("input_data".into(), input.clone());
        }
        if let Some(parameters) = &self.parameters {
            payload.insert("parameters".into(), Value::Object(parameters.clone()));
        }
        if let Some(point) = &self.extension_point {
            payload.insert("extension_point".into(), Value::String(point.clone()));
        }
        if let Some(context) = &self.context {
            payload.insert("context".into(), context.clone());
        }
        // "action" is reserved even when no action was given, so an argument cannot
        // pose as the action the host chose.
        for (key, value) in &self.args {
            if key != "action" && !payload.contains_key(key) {
                payload.insert(key.clone(), value.clone());
            }
        }
        Value::Object(payload)
    }
}

/// "an array", "a number", … : what a JSON value is, for error messages.
pub fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Each case: a value, its exact wire form, and back again.
    macro_rules! round_trip {
        ($($name:ident: $ty:ty = $value:expr => $wire:expr;)*) => {$(
            #[test]
            fn $name() {
                let value: $ty = $value;
                let wire: Value = $wire;
                assert_eq!(serde_json::to_value(&value).unwrap(), wire, "serialising");
                let back: $ty = serde_json::from_value(wire).unwrap();
                assert_eq!(back, value, "deserialising");
            }
        )*};
    }

    round_trip! {
        request_with_payload: Request = Request {
            id: "r1".into(), kind: RequestType::Exec, timestamp: "2024-01-01T00:00:00.000Z".into(),
            payload: Some(json!({"action": "echo"})),
        } => json!({"id": "r1", "type": "exec", "timestamp": "2024-01-01T00:00:00.000Z", "payload": {"action": "echo"}});
        request_null_payload: Request = Request {
            id: "h".into(), kind: RequestType::Health, timestamp: "t".into(), payload: None,
        } => json!({"id": "h", "type": "health", "timestamp": "t", "payload": null});
        every_request_type: Vec<RequestType> = vec![
            RequestType::Health, RequestType::Exec, RequestType::Shutdown, RequestType::Meta, RequestType::Cancel,
        ] => json!(["health", "exec", "shutdown", "meta", "cancel"]);
        response_ok_without_code: Response = Response {
            id: "a".into(), status: Status::Ok, code: None, message: None, body: Some(json!({"x": 1})), meta: None,
        } => json!({"id": "a", "status": "ok", "body": {"x": 1}});
        response_error: Response = Response::error("b", codes::TIMEOUT, "slow")
            => json!({"id": "b", "status": "error", "code": 301, "message": "slow"});
        response_busy_with_meta: Response = Response {
            id: "c".into(), status: Status::Busy, code: None, message: None, body: None, meta: Some(json!({"retry_ms": 5})),
        } => json!({"id": "c", "status": "busy", "meta": {"retry_ms": 5}});
    }

    #[test]
    fn response_tolerates_unknown_fields() {
        let r: Response = serde_json::from_str(
            r#"{"id":"x","status":"ok","code":0,"elapsed_ms":3,"plugin":{"v":1},"body":null}"#,
        )
        .unwrap();
        assert_eq!(r.id, "x");
        assert_eq!(r.code, Some(0));
        assert_eq!(r.body, None);
    }

    #[test]
    fn response_rejects_what_is_not_an_envelope() {
        for bad in [
            r#"{"status":"ok"}"#,                      // no id
            r#"{"id":7,"status":"ok"}"#,               // id not a string
            r#"{"id":"x"}"#,                           // no status
            r#"{"id":"x","status":"OK"}"#,             // status is case-sensitive
            r#"{"id":"x","status":"done"}"#,           // unknown status
            r#"{"id":"x","status":"ok","code":"E1"}"#, // code not an integer
            r#"["id","status"]"#,
            r#""ok""#,
        ] {
            assert!(
                serde_json::from_str::<Response>(bad).is_err(),
                "accepted {bad}"
            );
        }
    }

    #[test]
    fn request_rejects_unknown_type() {
        let bad = r#"{"id":"x","type":"explode","timestamp":"t","payload":null}"#;
        assert!(serde_json::from_str::<Request>(bad).is_err());
    }

    #[test]
    fn payload_carries_both_argument_styles() {
        let mut args = Map::new();
        args.insert("message".into(), json!("hi"));
        args.insert("count".into(), json!(2));
        let payload = ExecCall::new("echo", args).to_payload();
        assert_eq!(payload["action"], "echo");
        assert_eq!(payload["args"]["message"], "hi");
        assert_eq!(
            payload["message"], "hi",
            "flat copy for OmniFlow-style plugins"
        );
        assert_eq!(payload["count"], 2);
        assert!(
            payload.get("input_data").is_none(),
            "absent OmniScope fields are left out"
        );
    }

    #[test]
    fn flat_copy_never_overrides_envelope_keys() {
        let mut args = Map::new();
        args.insert("action".into(), json!("rm -rf"));
        args.insert("args".into(), json!("clobber"));
        args.insert("input_data".into(), json!("from args"));
        args.insert("context".into(), json!("forged"));
        let call = ExecCall {
            action: Some("echo".into()),
            args,
            input_data: Some(json!([1, 2])),
            parameters: Some(Map::from_iter([("k".to_string(), json!(true))])),
            extension_point: Some("preprocessing".into()),
            context: Some(json!({"plugin_id": "p"})),
        };
        let payload = call.to_payload();
        assert_eq!(payload["action"], "echo");
        assert_eq!(payload["args"]["action"], "rm -rf", "still visible in args");
        assert!(payload["args"].is_object());
        assert_eq!(payload["input_data"], json!([1, 2]));
        assert_eq!(payload["parameters"], json!({"k": true}));
        assert_eq!(payload["extension_point"], "preprocessing");
        assert_eq!(payload["context"], json!({"plugin_id": "p"}));
    }

    #[test]
    fn argument_named_action_is_not_copied_even_without_an_action() {
        let mut args = Map::new();
        args.insert("action".into(), json!("sneaky"));
        let call = ExecCall {
            args,
            ..ExecCall::default()
        };
        let payload = call.to_payload();
        assert!(payload.get("action").is_none());
        // Without a host-chosen action and with input_data absent, a same-named
        // argument does fill the free slot: only the reserved "action" is withheld.
        let mut args = Map::new();
        args.insert("input_data".into(), json!(5));
        let payload = ExecCall {
            args,
            ..ExecCall::default()
        }
        .to_payload();
        assert_eq!(payload["input_data"], 5);
    }

    #[test]
    fn code_names_cover_the_taxonomy() {
        assert_eq!(codes::name(codes::LINE_TOO_LONG), Some("line too long"));
        assert_eq!(codes::name(422), None);
    }
}
