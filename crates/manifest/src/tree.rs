//! Turns manifest bytes into a `serde_json::Value` tree, written for hostile input.
//!
//! Both formats go through one [`serde::de::DeserializeSeed`] that builds the tree while keeping
//! a budget, because the parsers' own limits are not enough for files an attacker writes:
//!
//! - serde_yaml_ng caps nesting at 128 and alias *jumps* at 100 × the number of events, but a
//!   1 MiB file can still define one large anchor and reference it a hundred thousand times
//!   ("billion laughs"), which expands to billions of values. The budget counts every value
//!   and every byte of text produced, aliases included, and stops the parse as soon as either
//!   runs out, before the memory is spent.
//! - Nesting is capped lower than either parser's own limit ([`MAX_DEPTH`]); no manifest needs
//!   more and deep trees make every later walk over them slower.
//! - Duplicate keys are refused: two readers (say, the scanner and the loader) could otherwise
//!   each see a different value for the same field.
//! - YAML tags (`!Tag value`) and non-finite numbers (`.nan`, `.inf`) have no JSON form and are
//!   refused rather than silently changed.
//! - Non-UTF-8 input is refused with the position of the first bad byte.
//! - libyaml's scanner takes time quadratic in the depth of flow collections (`[[[[…`): a 1 MiB
//!   line of `[` keeps it busy for half an hour, long before any depth limit is reached,
//!   because the whole document is scanned first. YAML text with more than
//!   [`MAX_FLOW_OPENERS`] `[` and `{` is therefore refused before it reaches the parser. The
//!   count ignores quoting on purpose: a scanner that tried to skip quoted text could be
//!   fooled into missing brackets libyaml sees, while over-counting only refuses manifests
//!   no one writes. JSON does not need this: serde_json is linear and stops at depth 128.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Deepest nesting of lists and mappings accepted.
pub const MAX_DEPTH: usize = 64;
/// Most values (scalars, lists and mappings, counting every alias expansion) accepted.
pub const MAX_NODES: usize = 200_000;
/// Most bytes of text (keys and strings, counting every alias expansion) accepted. Without
/// aliases the text of a document is never longer than the document, so this is twice the
/// file size limit.
pub const MAX_TEXT_BYTES: usize = 2 * crate::MAX_MANIFEST_BYTES as usize;

/// Most `[` and `{` accepted in YAML text (see the module documentation). At this count the
/// worst case costs libyaml well under a second; hand-written manifests use a few dozen.
pub const MAX_FLOW_OPENERS: usize = 10_000;

/// The syntax of a manifest file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syntax {
    Json,
    Yaml,
}

/// Why a manifest could not be turned into a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl SyntaxError {
    fn at(line: Option<usize>, column: Option<usize>, message: impl Into<String>) -> Self {
        SyntaxError {
            line,
            column,
            message: message.into(),
        }
    }
}

/// Parses `bytes` as `syntax` into a tree whose root is a mapping.
pub(crate) fn parse(bytes: &[u8], syntax: Syntax) -> Result<Map<String, Value>, SyntaxError> {
    let text = decode(bytes)?;
    let mut budget = Budget::default();
    let value = match syntax {
        Syntax::Json => parse_json(text, &mut budget)?,
        Syntax::Yaml => parse_yaml(text, &mut budget)?,
    };
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Err(SyntaxError::at(
            None,
            None,
            "the manifest is empty: it must be a mapping of fields such as `name` and `version`",
        )),
        other => Err(SyntaxError::at(
            Some(1),
            Some(1),
            format!(
                "the manifest must be a mapping of fields such as `name` and `version`, but its top level is {}",
                crate::read::describe(&other)
            ),
        )),
    }
}

/// Checks UTF-8 and drops a leading byte-order mark, which some editors write and which
/// serde_json refuses.
fn decode(bytes: &[u8]) -> Result<&str, SyntaxError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        // valid_up_to ends on a character boundary, so this slice is valid UTF-8.
        let column = std::str::from_utf8(&good[line_start..]).map_or(1, |s| s.chars().count() + 1);
        SyntaxError::at(
            Some(line),
            Some(column),
            "the manifest is not valid UTF-8: save it as UTF-8 text",
        )
    })
}

fn parse_json(text: &str, budget: &mut Budget) -> Result<Value, SyntaxError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = TreeSeed { budget, depth: 0 }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| {
            let (line, column) = (e.line(), e.column());
            let known = |n: usize| (n > 0).then_some(n);
            SyntaxError::at(
                known(line),
                known(column),
                strip_position(&e.to_string(), line, column),
            )
        })?;
    Ok(value)
}

fn parse_yaml(text: &str, budget: &mut Budget) -> Result<Value, SyntaxError> {
    flow_guard(text)?;
    // serde_yaml_ng drives a C-to-Rust translation of libyaml whose internal invariants are
    // asserted with panics. No input is known to trip them, but a manifest is attacker-written
    // and a panic here would take the whole host down, so one is turned into a parse error.
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        TreeSeed { budget, depth: 0 }.deserialize(serde_yaml_ng::Deserializer::from_str(text))
    }));
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            let location = e.location();
            let line = location.as_ref().map(|l| l.line());
            let column = location.as_ref().map(|l| l.column());
            let message = strip_position(&e.to_string(), line.unwrap_or(0), column.unwrap_or(0));
            Err(SyntaxError::at(line, column, yaml_hint(message)))
        }
        Err(_) => Err(SyntaxError::at(
            None,
            None,
            "the YAML parser failed on this input; simplify the manifest",
        )),
    }
}

/// Refuses YAML with more flow-collection openers than [`MAX_FLOW_OPENERS`], pointing at the
/// first one over the limit.
fn flow_guard(text: &str) -> Result<(), SyntaxError> {
    let Some((offset, _)) = text
        .bytes()
        .enumerate()
        .filter(|(_, b)| matches!(b, b'[' | b'{'))
        .nth(MAX_FLOW_OPENERS)
    else {
        return Ok(());
    };
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Err(SyntaxError::at(
        Some(line),
        Some(column),
        format!(
            "the manifest has more than {MAX_FLOW_OPENERS} `[` and `{{`, which the YAML parser cannot \
             handle safely; write lists and mappings in block style (one item per line) or use JSON"
        ),
    ))
}

/// Adds advice to the parser messages people meet most.
fn yaml_hint(message: String) -> String {
    if message.contains("more than one document") {
        format!("{message}; a manifest is one YAML document: remove the extra `---`")
    } else if message.contains("repetition limit") || message.contains("recursion limit") {
        format!("{message}; the manifest uses too many or too deep aliases or nesting")
    } else {
        message
    }
}

/// The parsers put " at line L column C" in their messages; the position is reported in
/// separate fields, so it is removed from the text to avoid printing it twice. (Other
/// positions, such as where an unclosed list started, stay.)
fn strip_position(message: &str, line: usize, column: usize) -> String {
    message.replacen(&format!(" at line {line} column {column}"), "", 1)
}

/// What is left to spend while building one tree.
#[derive(Debug)]
struct Budget {
    nodes: usize,
    text: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            nodes: MAX_NODES,
            text: MAX_TEXT_BYTES,
        }
    }
}

impl Budget {
    fn node<E: de::Error>(&mut self) -> Result<(), E> {
        self.nodes = self.nodes.checked_sub(1).ok_or_else(|| {
            E::custom(format_args!(
                "the manifest expands to more than {MAX_NODES} values (a YAML alias bomb?); \
                 write each value out once and keep manifests small"
            ))
        })?;
        Ok(())
    }

    fn text<E: de::Error>(&mut self, len: usize) -> Result<(), E> {
        self.text = self.text.checked_sub(len).ok_or_else(|| {
            E::custom(format_args!(
                "the manifest expands to more than {MAX_TEXT_BYTES} bytes of text (a YAML alias bomb?); \
                 write each value out once and keep manifests small"
            ))
        })?;
        Ok(())
    }
}

/// Builds one value of the tree, spending from the budget.
struct TreeSeed<'b> {
    budget: &'b mut Budget,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for TreeSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.budget.node()?;
        deserializer.deserialize_any(self)
    }
}

impl TreeSeed<'_> {
    fn nested<E: de::Error>(&self) -> Result<usize, E> {
        let depth = self.depth + 1;
        if depth > MAX_DEPTH {
            return Err(E::custom(format_args!(
                "lists and mappings are nested more than {MAX_DEPTH} levels deep; flatten the manifest"
            )));
        }
        Ok(depth)
    }
}

impl<'de> Visitor<'de> for TreeSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value with a JSON equivalent")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::from)
            .or_else(|_| u64::try_from(v).map(Value::from))
            .map_err(|_| {
                E::custom(format_args!(
                    "the integer {v} is too large; write it as a string"
                ))
            })
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        u64::try_from(v).map(Value::from).map_err(|_| {
            E::custom(format_args!(
                "the integer {v} is too large; write it as a string"
            ))
        })
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("numbers must be finite (.nan and .inf are not allowed)"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.budget.text(v.len())?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.budget.text(v.len())?;
        Ok(Value::String(v))
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Value, E> {
        Err(E::custom("binary values are not allowed in a manifest"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.nested()?;
        let budget = self.budget;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(TreeSeed {
            budget: &mut *budget,
            depth,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.nested()?;
        let budget = self.budget;
        let mut out = Map::new();
        while let Some(key) = map.next_key_seed(KeySeed {
            budget: &mut *budget,
        })? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "the key `{key}` appears twice in one mapping; keep only one"
                )));
            }
            let value = map.next_value_seed(TreeSeed {
                budget: &mut *budget,
                depth,
            })?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<Value, A::Error> {
        Err(de::Error::custom(
            "YAML tags (`!name value`) are not allowed in a manifest; remove the tag",
        ))
    }
}

/// Reads a mapping key. YAML allows any scalar as a key; manifests only use text, so plain
/// scalars are turned into their text and anything else is refused.
struct KeySeed<'b> {
    budget: &'b mut Budget,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl KeySeed<'_> {
    fn text<E: de::Error>(self, key: String) -> Result<String, E> {
        self.budget.node()?;
        self.budget.text(key.len())?;
        Ok(key)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a text key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        self.text(v.to_string())
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<String, E> {
        self.text(v)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        self.text(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        self.text(v.to_string())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        self.text(v.to_string())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        self.text(v.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        self.text("null".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Result<Map<String, Value>, SyntaxError> {
        parse(text.as_bytes(), Syntax::Yaml)
    }

    #[test]
    fn plain_yaml_and_json_become_the_same_tree() {
        let y = yaml("name: x\nversion: 1.0.0\nn: 3\nlist: [a, 1, true, null]\n").unwrap();
        let j = parse(
            br#"{"name":"x","version":"1.0.0","n":3,"list":["a",1,true,null]}"#,
            Syntax::Json,
        )
        .unwrap();
        assert_eq!(y, j);
    }

    #[test]
    fn scalar_keys_become_text() {
        let t = yaml("1: a\ntrue: b\n").unwrap();
        assert_eq!(t["1"], "a");
        assert_eq!(t["true"], "b");
    }

    #[test]
    fn billion_laughs_is_refused_before_it_expands() {
        let mut doc = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for (prev, next) in ('a'..='h').zip('b'..='i') {
            let refs = vec![format!("*{prev}"); 9].join(",");
            doc.push_str(&format!("{next}: &{next} [{refs}]\n"));
        }
        // serde_yaml_ng's own jump limit or the budget, whichever trips first.
        let err = yaml(&doc).unwrap_err();
        assert!(
            err.message.contains("alias bomb")
                || err.message.contains("too many or too deep aliases"),
            "{err:?}"
        );
    }

    #[test]
    fn one_big_anchor_referenced_many_times_is_refused() {
        // Stays under serde_yaml_ng's own jump limit (few aliases, many events) but would
        // expand to gigabytes of text.
        let big = "x".repeat(400_000);
        let refs = vec!["*s"; 50].join(", ");
        let doc = format!("s: &s \"{big}\"\nt: [{refs}]\n");
        let err = yaml(&doc).unwrap_err();
        assert!(err.message.contains("bytes of text"), "{err:?}");
    }

    #[test]
    fn many_values_through_aliases_are_refused() {
        let items = vec!["1"; 1000].join(", ");
        let refs = vec!["*l"; 1000].join(", ");
        let doc = format!("l: &l [{items}]\nm: [{refs}]\n");
        let err = yaml(&doc).unwrap_err();
        assert!(err.message.contains("more than 200000 values"), "{err:?}");
    }

    #[test]
    fn deep_nesting_is_refused_in_both_syntaxes() {
        let deep_yaml = format!("a: {}1{}\n", "[".repeat(100), "]".repeat(100));
        let err = yaml(&deep_yaml).unwrap_err();
        assert!(err.message.contains("nested more than 64"), "{err:?}");
        let deep_json = format!("{{\"a\": {}1{}}}", "[".repeat(100), "]".repeat(100));
        let err = parse(deep_json.as_bytes(), Syntax::Json).unwrap_err();
        assert!(err.message.contains("nested more than 64"), "{err:?}");
        // 60 levels is fine.
        let ok = format!("a: {}1{}\n", "[".repeat(60), "]".repeat(60));
        yaml(&ok).unwrap();
    }

    #[test]
    fn very_deep_flow_nesting_is_refused_before_the_yaml_scanner_sees_it() {
        let start = std::time::Instant::now();
        let deep = format!("a: {}", "[".repeat(1_000_000));
        let err = yaml(&deep).unwrap_err();
        assert!(err.message.contains("more than 10000"), "{err:?}");
        assert_eq!((err.line, err.column), (Some(1), Some(10_004)));
        // Quoting does not hide brackets from the count.
        let hidden = format!("a: \"{}\"\n", "[".repeat(20_000));
        assert!(
            yaml(&hidden)
                .unwrap_err()
                .message
                .contains("more than 10000")
        );
        // JSON has no such limit: serde_json refuses the depth itself, quickly.
        let deep = format!("{{\"a\": {}", "[".repeat(1_000_000));
        assert!(parse(deep.as_bytes(), Syntax::Json).is_err());
        // Generous: without the guard the YAML case alone takes minutes.
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn block_style_nesting_is_refused_by_depth() {
        let deep = format!("a:\n  {}1\n", "- ".repeat(100_000));
        assert!(yaml(&deep).unwrap_err().message.contains("nested"));
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let err = yaml("name: a\nname: b\n").unwrap_err();
        assert!(err.message.contains("`name` appears twice"), "{err:?}");
        // serde_yaml_ng places errors raised while building a mapping at the mapping's start.
        assert_eq!(err.line, Some(1));
        let err = parse(br#"{"name":"a","name":"b"}"#, Syntax::Json).unwrap_err();
        assert!(err.message.contains("`name` appears twice"), "{err:?}");
    }

    #[test]
    fn tags_and_non_finite_numbers_are_refused() {
        assert!(yaml("a: !custom 3\n").unwrap_err().message.contains("tags"));
        assert!(yaml("a: .nan\n").unwrap_err().message.contains("finite"));
        assert!(yaml("a: .inf\n").unwrap_err().message.contains("finite"));
    }

    #[test]
    fn non_utf8_is_refused_with_its_position() {
        let err = parse(b"name: ok\nversion: \xff\xfe\n", Syntax::Yaml).unwrap_err();
        assert!(err.message.contains("UTF-8"), "{err:?}");
        assert_eq!((err.line, err.column), (Some(2), Some(10)));
    }

    #[test]
    fn a_byte_order_mark_is_accepted() {
        let t = parse(b"\xEF\xBB\xBF{\"name\":\"x\"}", Syntax::Json).unwrap();
        assert_eq!(t["name"], "x");
    }

    #[test]
    fn top_level_must_be_a_mapping() {
        assert!(yaml("- a\n- b\n").unwrap_err().message.contains("a list"));
        assert!(yaml("").unwrap_err().message.contains("empty"));
        assert!(
            parse(b"42", Syntax::Json)
                .unwrap_err()
                .message
                .contains("a number")
        );
    }

    #[test]
    fn several_yaml_documents_are_refused() {
        let err = yaml("name: a\n---\nname: b\n").unwrap_err();
        assert!(err.message.contains("one YAML document"), "{err:?}");
    }

    #[test]
    fn syntax_errors_carry_line_and_column_once() {
        let err = parse(b"{\n  \"name\": \"x\",\n  oops\n}", Syntax::Json).unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(err.column.is_some());
        assert!(!err.message.contains("at line"), "{err:?}");
        let err = yaml("name: [unclosed\n").unwrap_err();
        let (line, column) = (err.line.unwrap(), err.column.unwrap());
        assert!(
            !err.message
                .contains(&format!("at line {line} column {column}")),
            "{err:?}"
        );
    }

    #[test]
    fn trailing_garbage_after_json_is_refused() {
        assert!(parse(br#"{"name":"x"} trailing"#, Syntax::Json).is_err());
    }
}
