//! Typed access to the parsed tree that records a [`Problem`] for every mismatch and carries
//! on, so one pass over a manifest reports everything wrong with it.

use serde_json::{Map, Value};

use crate::Problem;

/// The problems found so far.
#[derive(Debug, Default)]
pub(crate) struct Cx {
    pub problems: Vec<Problem>,
}

/// `base.key`, or `key` at the top level.
pub(crate) fn at(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_string()
    } else {
        format!("{base}.{key}")
    }
}

/// `base[i]`.
pub(crate) fn idx(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}

/// A short description of a value for messages: "a number (1.0)", "a list", …
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("true/false ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(_) => "text".to_string(),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a mapping".to_string(),
    }
}

impl Cx {
    pub fn add(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            reason: reason.into(),
        });
    }

    fn wrong_type(&mut self, path: &str, expected: &str, found: &Value) {
        let hint = match found {
            Value::Number(_) | Value::Bool(_) if expected == "text" => "; put it in quotes",
            _ => "",
        };
        self.add(
            path,
            format!("expected {expected}, found {}{hint}", describe(found)),
        );
    }

    /// Optional text: missing, null and blank are `None`.
    pub fn text(&mut self, path: &str, v: Option<&Value>) -> Option<String> {
        match v? {
            Value::Null => None,
            Value::String(s) if s.trim().is_empty() => None,
            Value::String(s) => Some(s.clone()),
            other => {
                self.wrong_type(path, "text", other);
                None
            }
        }
    }

    /// Optional single-line text of at most `max` characters, such as a name.
    pub fn line(&mut self, path: &str, v: Option<&Value>, max: usize) -> Option<String> {
        let s = self.text(path, v)?;
        match check_line(&s, max) {
            Ok(()) => Some(s.trim().to_string()),
            Err(reason) => {
                self.add(path, reason);
                None
            }
        }
    }

    pub fn flag(&mut self, path: &str, v: Option<&Value>) -> Option<bool> {
        match v? {
            Value::Null => None,
            Value::Bool(b) => Some(*b),
            other => {
                self.wrong_type(path, "true or false", other);
                None
            }
        }
    }

    pub fn integer(&mut self, path: &str, v: Option<&Value>) -> Option<i64> {
        match v? {
            Value::Null => None,
            Value::Number(n) if n.as_i64().is_some() => n.as_i64(),
            other => {
                self.wrong_type(path, "a whole number", other);
                None
            }
        }
    }

    /// A list; missing and null are empty. A wrong type is reported and read as empty.
    pub fn list<'v>(&mut self, path: &str, v: Option<&'v Value>) -> &'v [Value] {
        match v {
            None | Some(Value::Null) => &[],
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.wrong_type(path, "a list", other);
                &[]
            }
        }
    }

    /// A mapping; missing and null are `None`. A wrong type is reported.
    pub fn map<'v>(&mut self, path: &str, v: Option<&'v Value>) -> Option<&'v Map<String, Value>> {
        match v? {
            Value::Null => None,
            Value::Object(m) => Some(m),
            other => {
                self.wrong_type(path, "a mapping", other);
                None
            }
        }
    }

    /// A list of single-line words (tags, extension points, dependencies, …), each checked by
    /// `check`, duplicates dropped.
    pub fn words(
        &mut self,
        path: &str,
        v: Option<&Value>,
        check: impl Fn(&str) -> Result<(), String>,
    ) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (i, item) in self.list(path, v).iter().enumerate() {
            let item_path = idx(path, i);
            let Some(s) = self.line(&item_path, Some(item), 256) else {
                if matches!(item, Value::String(_) | Value::Null) {
                    self.add(&item_path, "is empty");
                }
                continue;
            };
            if let Err(reason) = check(&s) {
                self.add(&item_path, reason);
            } else if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }
}

/// Single-line, printable, not too long.
pub(crate) fn check_line(s: &str, max: usize) -> Result<(), String> {
    if s.chars().any(char::is_control) {
        return Err("must be one line without control characters".to_string());
    }
    let len = s.trim().chars().count();
    if len > max {
        return Err(format!("is {len} characters long; the limit is {max}"));
    }
    Ok(())
}

/// A name that is used as a key by callers (an action, a command, an event): no blanks, no
/// control characters, at most 128 characters.
pub(crate) fn check_token(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".to_string());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "`{s}` contains blanks or control characters; use `-` or `_` instead"
        ));
    }
    if s.chars().count() > 128 {
        return Err("is longer than 128 characters".to_string());
    }
    Ok(())
}

/// Edit distance, for "did you mean" suggestions on short field names.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("entrypoint", "entry_point"), 1);
        assert_eq!(edit_distance("versoin", "version"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn wrong_types_are_reported_with_advice() {
        let mut cx = Cx::default();
        assert_eq!(cx.text("name", Some(&Value::from(3))), None);
        assert_eq!(cx.list("tags", Some(&Value::from("a"))), &[] as &[Value]);
        assert_eq!(cx.flag("b", Some(&Value::from("yes"))), None);
        let reasons: Vec<String> = cx.problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            reasons,
            [
                "name: expected text, found a number (3); put it in quotes",
                "tags: expected a list, found text",
                "b: expected true or false, found text",
            ]
        );
    }

    #[test]
    fn words_reports_each_bad_item_by_index() {
        let mut cx = Cx::default();
        let v = serde_json::json!(["ok", 1, "", "two words", "ok"]);
        let got = cx.words("tags", Some(&v), check_token);
        assert_eq!(got, ["ok"]);
        let paths: Vec<&str> = cx.problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["tags[1]", "tags[2]", "tags[3]"]);
    }
}
