//! R rules: system/system2/shell, eval(parse(...)), download.file/url, source() of a URL.

use tree_sitter::Node;

use crate::tree::{nodes, parse, text, unquote};
use crate::{Capability, Confidence, FileScan};

pub(crate) fn scan(fs: &mut FileScan<'_>) -> Result<bool, String> {
    let tree = parse(tree_sitter_r::LANGUAGE.into(), fs.src)?;
    let root = tree.root_node();
    for n in nodes(root) {
        if n.kind() == "call" {
            call(fs, n);
        }
    }
    Ok(root.has_error())
}

/// The callee name without a `pkg::` prefix.
fn callee<'s>(n: Node<'_>, src: &'s [u8]) -> &'s str {
    let f = n
        .child_by_field_name("function")
        .map(|f| text(f, src))
        .unwrap_or("");
    f.rsplit("::").next().unwrap_or(f)
}

fn first_arg(n: Node<'_>) -> Option<Node<'_>> {
    let args = n.child_by_field_name("arguments")?;
    let a = (0..args.named_child_count())
        .filter_map(|i| args.named_child(i))
        .find(|c| c.kind() != "comment")?;
    // Grammar versions differ on whether an `argument` wraps the value.
    Some(a.child_by_field_name("value").unwrap_or(a))
}

fn call(fs: &mut FileScan<'_>, n: Node<'_>) {
    let src = fs.src;
    match callee(n, src) {
        "system" | "system2" | "shell" | "pipe" => {
            fs.report(
                "plugd-r-system",
                n,
                Confidence::High,
                "runs an external command; pass a fixed program and arguments, never user data",
            );
            fs.uses(Capability::Process, n, "system()");
        }
        "eval" | "evalq"
            if first_arg(n).is_some_and(|a| {
                a.kind() == "call"
                    && matches!(callee(a, src), "parse" | "str2lang" | "str2expression")
            }) =>
        {
            fs.report(
                "plugd-r-eval-parse",
                n,
                Confidence::High,
                "eval(parse(...)) runs code built from a string",
            );
        }
        "download.file" | "url" | "curl_download" | "GET" | "POST" | "read_html" => {
            fs.report(
                "plugd-r-download",
                n,
                Confidence::Medium,
                "fetches content from the network",
            );
            fs.uses(Capability::Network, n, "download");
        }
        "source" | "sys.source" => {
            if let Some(a) = first_arg(n) {
                let t = unquote(text(a, src)).to_ascii_lowercase();
                if t.starts_with("http://")
                    || t.starts_with("https://")
                    || t.starts_with("ftp://")
                    || (a.kind() == "call" && callee(a, src) == "url")
                {
                    fs.report(
                        "plugd-r-source-url",
                        n,
                        Confidence::High,
                        "source() of a URL runs remote code; vendor the script instead",
                    );
                    fs.uses(Capability::Network, n, "source(url)");
                }
            }
        }
        "writeLines" | "write.csv" | "write.table" | "saveRDS" | "file.remove" | "unlink"
        | "cat"
            if has_file_arg(n, src) =>
        {
            fs.uses(Capability::FsWrite, n, "file write");
        }
        _ => {}
    }
}

fn has_file_arg(n: Node<'_>, src: &[u8]) -> bool {
    let name = callee(n, src);
    if name == "cat" {
        return text(n, src).contains("file");
    }
    name != "cat"
}
