//! Small helpers over tree-sitter nodes shared by the language rules.

use tree_sitter::{Language, Node, Parser, Tree};

/// Parses `src`; `Err` carries a reason fit for [`crate::Skipped`].
pub(crate) fn parse(lang: Language, src: &[u8]) -> Result<Tree, String> {
    let mut parser = Parser::new();
    parser
        .set_language(&lang)
        .map_err(|e| format!("grammar not loadable (a build problem, please report it): {e}"))?;
    parser
        .parse(src, None)
        .ok_or_else(|| "the parser gave up on this file (timeout or cancellation)".to_string())
}

/// Every node in document order, without recursion: nesting depth is chosen by the attacker.
pub(crate) fn nodes(root: Node<'_>) -> Vec<Node<'_>> {
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        out.push(n);
        for i in (0..n.child_count()).rev() {
            if let Some(c) = n.child(i) {
                stack.push(c);
            }
        }
    }
    out
}

/// The text of a node; invalid UTF-8 becomes the empty string (rules then simply do not match).
pub(crate) fn text<'s>(n: Node<'_>, src: &'s [u8]) -> &'s str {
    n.utf8_text(src).unwrap_or("")
}

/// Strips quotes (and Python/R string prefixes) from a string literal's text.
pub(crate) fn unquote(s: &str) -> &str {
    let s = s.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    for q in ["\"\"\"", "'''", "\"", "'", "`"] {
        if let Some(inner) = s.strip_prefix(q).and_then(|x| x.strip_suffix(q)) {
            return inner;
        }
    }
    s
}
