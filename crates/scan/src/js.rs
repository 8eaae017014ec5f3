//! JavaScript rules: eval, the Function constructor, child_process and vm.

use tree_sitter::Node;

use crate::tree::{nodes, parse, text, unquote};
use crate::{Capability, Confidence, FileScan};

pub(crate) fn scan(fs: &mut FileScan<'_>) -> Result<bool, String> {
    let tree = parse(tree_sitter_javascript::LANGUAGE.into(), fs.src)?;
    let root = tree.root_node();
    for n in nodes(root) {
        match n.kind() {
            "call_expression" | "new_expression" => call(fs, n),
            "import_statement" => {
                if let Some(s) = n.child_by_field_name("source") {
                    module(fs, n, unquote(text(s, fs.src)));
                }
            }
            _ => {}
        }
    }
    Ok(root.has_error())
}

fn module(fs: &mut FileScan<'_>, n: Node<'_>, m: &str) {
    let m = m.strip_prefix("node:").unwrap_or(m);
    match m {
        "child_process" => {
            fs.report(
                "plugd-js-child-process",
                n,
                Confidence::High,
                "loads child_process, which runs external commands",
            );
            fs.uses(Capability::Process, n, "child_process");
        }
        "vm" => fs.report(
            "plugd-js-vm",
            n,
            Confidence::High,
            "loads vm, which is not a security boundary; do not run untrusted code in it",
        ),
        "net" | "http" | "https" | "dgram" | "tls" | "http2" | "axios" | "node-fetch" => {
            fs.uses(Capability::Network, n, format!("the {m} module"))
        }
        _ => {}
    }
}

fn call(fs: &mut FileScan<'_>, n: Node<'_>) {
    let src = fs.src;
    let field = if n.kind() == "new_expression" {
        "constructor"
    } else {
        "function"
    };
    let Some(f) = n.child_by_field_name(field) else {
        return;
    };
    let name = text(f, src);
    let args = n.child_by_field_name("arguments");
    let first = args.and_then(|a| a.named_child(0));
    match name {
        "eval" | "window.eval" | "globalThis.eval" => {
            if first.is_some_and(|a| a.kind() != "string") {
                fs.report("plugd-js-eval", n, Confidence::High, "eval() of a non-literal runs code built at run time; use JSON.parse or a lookup table");
            }
        }
        "Function" | "window.Function" | "globalThis.Function" => {
            fs.report(
                "plugd-js-function",
                n,
                Confidence::High,
                "Function(...) compiles a string into code, like eval",
            );
        }
        "require" => {
            if let Some(a) = first
                && a.kind() == "string"
            {
                module(fs, n, unquote(text(a, src)));
            }
        }
        "fetch" => fs.uses(Capability::Network, n, "fetch()"),
        _ => {
            if matches!(
                name,
                "fs.writeFileSync"
                    | "fs.writeFile"
                    | "fs.appendFileSync"
                    | "fs.appendFile"
                    | "fs.unlinkSync"
                    | "fs.rmSync"
                    | "fs.mkdirSync"
                    | "fs.createWriteStream"
            ) {
                fs.uses(Capability::FsWrite, n, name.to_string());
            }
            if (name.ends_with("setTimeout") || name.ends_with("setInterval"))
                && first.is_some_and(|a| a.kind() == "string" || a.kind() == "template_string")
            {
                fs.report(
                    "plugd-js-eval",
                    n,
                    Confidence::Medium,
                    "a string passed to setTimeout/setInterval is evaluated like eval()",
                );
            }
        }
    }
}
