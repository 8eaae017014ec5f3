//! Python rules, modelled on Bandit's tests. Imports and aliases are resolved first so that
//! `import subprocess as sp` and `from os import system` name the real function.

use std::collections::HashMap;

use tree_sitter::Node;

use crate::tree::{nodes, parse, text, unquote};
use crate::{Capability, Confidence, FileScan, Severity};

const REQUEST_FUNCS: &[&str] = &[
    "get", "post", "put", "patch", "delete", "head", "options", "request",
];
const SUBPROCESS_FUNCS: &[&str] = &[
    "call",
    "run",
    "Popen",
    "check_call",
    "check_output",
    "getoutput",
    "getstatusoutput",
];

/// Runs the Python rules; `Ok(true)` when the file had syntax errors.
pub(crate) fn scan(fs: &mut FileScan<'_>) -> Result<bool, String> {
    let tree = parse(tree_sitter_python::LANGUAGE.into(), fs.src)?;
    let root = tree.root_node();
    let all = nodes(root);
    let src = fs.src;
    let aliases = imports(&all, src);
    let imported = |m: &str| {
        aliases
            .values()
            .any(|q| q == m || q.starts_with(&format!("{m}.")))
    };

    for &n in &all {
        match n.kind() {
            "import_statement" | "import_from_statement" => import_rules(fs, n, &aliases),
            "call" => call_rules(fs, n, &aliases, imported("flask")),
            "string" => string_rules(fs, n),
            "assignment" => {
                if let (Some(l), Some(rv)) = (
                    n.child_by_field_name("left"),
                    n.child_by_field_name("right"),
                ) && is_plain_string(rv, src)
                    && secret_name(last_name(l, src))
                {
                    fs.report("B105", rv, Confidence::Medium, format!("possible hard-coded password assigned to `{}`; load it from configuration", text(l, src)));
                }
            }
            "default_parameter" | "typed_default_parameter" => {
                if let (Some(name), Some(v)) = (
                    n.child_by_field_name("name"),
                    n.child_by_field_name("value"),
                ) && is_plain_string(v, src)
                    && secret_name(text(name, src))
                {
                    fs.report(
                        "B107",
                        v,
                        Confidence::Medium,
                        format!(
                            "possible hard-coded password as the default of `{}`",
                            text(name, src)
                        ),
                    );
                }
            }
            "comparison_operator" => {
                // `if password == "hunter2"` is Bandit's B105 too.
                let kids: Vec<Node<'_>> = (0..n.named_child_count())
                    .filter_map(|i| n.named_child(i))
                    .collect();
                if kids.len() == 2 {
                    let (a, b) = (kids[0], kids[1]);
                    if (secret_name(last_name(a, src)) && is_plain_string(b, src))
                        || (secret_name(last_name(b, src)) && is_plain_string(a, src))
                    {
                        fs.report(
                            "B105",
                            n,
                            Confidence::Medium,
                            "possible hard-coded password in a comparison",
                        );
                    }
                }
            }
            "binary_operator" => sql_binop(fs, n),
            _ => {}
        }
    }
    Ok(root.has_error())
}

/// alias → fully qualified name, for `import a.b as c`, `import a`, `from a import b as c`.
fn imports(all: &[Node<'_>], src: &[u8]) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for &n in all {
        match n.kind() {
            "import_statement" => {
                let mut c = n.walk();
                for name in n.children_by_field_name("name", &mut c) {
                    if name.kind() == "aliased_import" {
                        if let (Some(q), Some(a)) = (
                            name.child_by_field_name("name"),
                            name.child_by_field_name("alias"),
                        ) {
                            map.insert(text(a, src).to_string(), text(q, src).to_string());
                        }
                    } else {
                        let full = text(name, src);
                        // `import os.path` binds `os`.
                        let head = full.split('.').next().unwrap_or(full);
                        map.insert(head.to_string(), head.to_string());
                    }
                }
            }
            "import_from_statement" => {
                let Some(module) = n.child_by_field_name("module_name") else {
                    continue;
                };
                let module = text(module, src);
                let mut c = n.walk();
                for name in n.children_by_field_name("name", &mut c) {
                    let (q, a) = if name.kind() == "aliased_import" {
                        match (
                            name.child_by_field_name("name"),
                            name.child_by_field_name("alias"),
                        ) {
                            (Some(q), Some(a)) => (text(q, src), text(a, src)),
                            _ => continue,
                        }
                    } else {
                        (text(name, src), text(name, src))
                    };
                    map.insert(a.to_string(), format!("{module}.{q}"));
                }
            }
            _ => {}
        }
    }
    map
}

/// The qualified name of a callee: `sp.call` → `subprocess.call`; unknown roots stay as written.
fn qualify(n: Node<'_>, src: &[u8], aliases: &HashMap<String, String>) -> String {
    match n.kind() {
        "identifier" => {
            let t = text(n, src);
            aliases.get(t).cloned().unwrap_or_else(|| t.to_string())
        }
        "attribute" => {
            let obj = n
                .child_by_field_name("object")
                .map(|o| qualify(o, src, aliases))
                .unwrap_or_default();
            let attr = n
                .child_by_field_name("attribute")
                .map(|a| text(a, src))
                .unwrap_or_default();
            format!("{obj}.{attr}")
        }
        "call" => n
            .child_by_field_name("function")
            .map(|f| format!("{}()", qualify(f, src, aliases)))
            .unwrap_or_default(),
        _ => text(n, src).to_string(),
    }
}

fn last_name<'s>(n: Node<'_>, src: &'s [u8]) -> &'s str {
    match n.kind() {
        "attribute" => n
            .child_by_field_name("attribute")
            .map_or("", |a| text(a, src)),
        "subscript" => n
            .child_by_field_name("subscript")
            .map_or("", |s| unquote(text(s, src))),
        _ => text(n, src),
    }
}

fn secret_name(name: &str) -> bool {
    let l = name.to_ascii_lowercase();
    // Bandit's word list (pass, passwd, password, pwd, token, secret) plus key names.
    [
        "pass",
        "pwd",
        "token",
        "secret",
        "api_key",
        "apikey",
        "private_key",
        "secret_key",
    ]
    .iter()
    .any(|w| l.contains(w))
        && !l.contains("path")
}

fn is_plain_string(n: Node<'_>, src: &[u8]) -> bool {
    n.kind() == "string" && !has_interpolation(n) && !unquote(text(n, src)).is_empty()
}

fn has_interpolation(n: Node<'_>) -> bool {
    (0..n.named_child_count())
        .filter_map(|i| n.named_child(i))
        .any(|c| c.kind() == "interpolation")
}

/// A literal whose value is fixed in the source: strings without interpolation, numbers, and
/// concatenations/containers of literals.
fn is_literal(n: Node<'_>) -> bool {
    match n.kind() {
        "string" => !has_interpolation(n),
        "integer" | "float" | "true" | "false" | "none" => true,
        "concatenated_string" | "list" | "tuple" | "parenthesized_expression" => (0..n
            .named_child_count())
            .filter_map(|i| n.named_child(i))
            .all(is_literal),
        _ => false,
    }
}

struct Args<'t> {
    positional: Vec<Node<'t>>,
    keywords: Vec<(String, Node<'t>)>,
}

fn args<'t>(call: Node<'t>, src: &[u8]) -> Args<'t> {
    let mut a = Args {
        positional: Vec::new(),
        keywords: Vec::new(),
    };
    let Some(list) = call.child_by_field_name("arguments") else {
        return a;
    };
    for i in 0..list.named_child_count() {
        let Some(c) = list.named_child(i) else {
            continue;
        };
        match c.kind() {
            "keyword_argument" => {
                if let (Some(k), Some(v)) = (
                    c.child_by_field_name("name"),
                    c.child_by_field_name("value"),
                ) {
                    a.keywords.push((text(k, src).to_string(), v));
                }
            }
            "comment" => {}
            _ => a.positional.push(c),
        }
    }
    a
}

impl<'t> Args<'t> {
    fn kw(&self, name: &str) -> Option<Node<'t>> {
        self.keywords
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
    }
    fn kw_true(&self, name: &str, src: &[u8]) -> bool {
        self.kw(name)
            .is_some_and(|v| !matches!(text(v, src), "False" | "None" | "0" | "\"\"" | "''"))
    }
    fn kw_false(&self, name: &str, src: &[u8]) -> bool {
        self.kw(name)
            .is_some_and(|v| matches!(text(v, src), "False" | "0"))
    }
}

fn import_rules(fs: &mut FileScan<'_>, n: Node<'_>, _aliases: &HashMap<String, String>) {
    let t = text(n, fs.src);
    let mentions = |m: &str| {
        t.split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .any(|w| w == m)
    };
    if mentions("ctypes") {
        fs.report(
            "plugd-py-ctypes",
            n,
            Confidence::High,
            "imports ctypes, which calls native code outside Python's checks",
        );
    }
    if mentions("telnetlib") {
        fs.report(
            "B401",
            n,
            Confidence::High,
            "imports telnetlib: telnet sends credentials in clear text; use SSH",
        );
    }
    if mentions("ftplib") {
        fs.report(
            "B402",
            n,
            Confidence::High,
            "imports ftplib: FTP sends credentials in clear text; use SFTP/HTTPS",
        );
    }
}

fn call_rules(fs: &mut FileScan<'_>, n: Node<'_>, aliases: &HashMap<String, String>, flask: bool) {
    let src = fs.src;
    let Some(func) = n.child_by_field_name("function") else {
        return;
    };
    let q = qualify(func, src, aliases);
    let a = args(n, src);
    let first = a.positional.first().copied();
    let first_literal = first.is_none_or(is_literal);
    let last = q.rsplit('.').next().unwrap_or(&q).to_string();
    let q = q.as_str();

    match q {
        "eval" if !first_literal => fs.report("B307", n, Confidence::High, "eval() of a non-literal runs arbitrary code; use ast.literal_eval or a parser"),
        "exec" => fs.report("B102", n, Confidence::High, "exec() runs arbitrary code; avoid it or restrict the input to constants"),
        "compile" if !first_literal => fs.report("plugd-py-compile", n, Confidence::Medium, "compile() of a non-literal prepares arbitrary code for execution"),
        "__import__" | "importlib.import_module" | "importlib.__import__" if !first_literal => {
            fs.report("plugd-py-dynamic-import", n, Confidence::Medium, format!("{q}() with a non-literal name loads code chosen at run time; use a fixed allow-list"))
        }
        "os.system" | "os.popen" | "os.popen2" | "os.popen3" | "os.popen4" | "popen2.popen2" | "commands.getoutput" | "commands.getstatusoutput" => {
            fs.uses(Capability::Process, n, format!("{q}()"));
            if !first_literal {
                fs.report_sev("B605", n, Severity::High, Confidence::High, format!("{q}() runs a shell with a non-literal command: shell injection; use subprocess with a list"));
            } else {
                fs.report_sev("B605", n, Severity::Low, Confidence::High, format!("{q}() starts a process with a shell"));
            }
        }
        "pickle.loads" | "pickle.load" | "pickle.Unpickler" | "cPickle.loads" | "cPickle.load" | "dill.loads" | "dill.load" | "shelve.open" | "shelve.DbfilenameShelf" | "pandas.read_pickle" => {
            fs.report("B301", n, Confidence::High, format!("{q}() deserializes with pickle, which runs arbitrary code on untrusted data; use JSON"))
        }
        "marshal.loads" | "marshal.load" => fs.report("B302", n, Confidence::High, format!("{q}() of untrusted data is unsafe; use JSON")),
        "yaml.load" | "yaml.load_all" => {
            let loader = a.kw("Loader").or_else(|| a.positional.get(1).copied()).map(|l| text(l, src)).unwrap_or("");
            if !(loader.contains("SafeLoader") || loader.contains("CSafeLoader") || loader.contains("BaseLoader")) {
                fs.report("B506", n, Confidence::High, "yaml.load without Loader=yaml.SafeLoader can build arbitrary objects; use yaml.safe_load");
            }
        }
        "tempfile.mktemp" => fs.report("B306", n, Confidence::High, "tempfile.mktemp is racy; use tempfile.mkstemp or NamedTemporaryFile"),
        "hashlib.md5" | "hashlib.sha1" | "hashlib.md4"
            if !a.kw_false("usedforsecurity", src) => {
                fs.report("B324", n, Confidence::High, format!("{q}() is a weak hash; use sha256 or pass usedforsecurity=False if not for security"));
            }
        "hashlib.new" => {
            let name = first.map(|f| unquote(text(f, src)).to_ascii_lowercase()).unwrap_or_default();
            if matches!(name.as_str(), "md5" | "sha1" | "md4" | "sha" | "ripemd160") && !a.kw_false("usedforsecurity", src) {
                fs.report("B324", n, Confidence::High, format!("hashlib.new('{name}') is a weak hash; use sha256"));
            }
        }
        "Crypto.Hash.MD5.new" | "Crypto.Hash.SHA.new" | "Cryptodome.Hash.MD5.new" | "cryptography.hazmat.primitives.hashes.MD5" | "cryptography.hazmat.primitives.hashes.SHA1" => {
            fs.report("B303", n, Confidence::High, format!("{q} is a weak hash for security purposes; use SHA-256"))
        }
        "urllib.request.urlopen" | "urllib.urlopen" | "urllib2.urlopen" | "urllib.request.urlretrieve" | "six.moves.urllib.request.urlopen" => {
            fs.uses(Capability::Network, n, format!("{q}()"));
            fs.report("B310", n, Confidence::High, format!("{q}() also opens file:// and custom schemes; check the URL scheme first"));
        }
        "xml.etree.ElementTree.parse" | "xml.etree.ElementTree.fromstring" | "xml.etree.cElementTree.parse" | "xml.etree.cElementTree.fromstring" | "xml.etree.ElementTree.iterparse" => {
            fs.report("B314", n, Confidence::High, format!("{q}() on untrusted XML allows entity attacks; use defusedxml"))
        }
        "xml.dom.minidom.parse" | "xml.dom.minidom.parseString" => fs.report("B318", n, Confidence::High, format!("{q}() on untrusted XML allows entity attacks; use defusedxml")),
        "os.chmod" => {
            if let Some(mode) = a.positional.get(1).or(a.kw("mode").as_ref()).map(|m| text(*m, src))
                && let Some(bits) = parse_mode(mode)
                    && (bits & 0o002 != 0 || bits & 0o020 != 0) {
                        let sev = if bits & 0o002 != 0 { Severity::High } else { Severity::Medium };
                        fs.report_sev("B103", n, sev, Confidence::High, format!("os.chmod with mode {mode:?} makes the file writable by others; use 0o600/0o644"));
                    }
        }
        "paramiko.AutoAddPolicy" | "paramiko.WarningPolicy" | "paramiko.client.AutoAddPolicy" => {
            fs.report("B507", n, Confidence::Medium, format!("{q} accepts any SSH host key; load known_hosts and use RejectPolicy"))
        }
        "jinja2.Environment"
            if (a.kw("autoescape").is_none() || a.kw_false("autoescape", src)) => {
                fs.report("B701", n, Confidence::High, "jinja2.Environment without autoescape=True allows XSS; use select_autoescape()");
            }
        "socket.socket" | "socket.create_connection" | "socket.create_server" => {
            fs.uses(Capability::Network, n, format!("{q}()"));
            fs.report("plugd-py-socket", n, Confidence::High, format!("{q}() opens a raw network socket"));
        }
        "ctypes.CDLL" | "ctypes.cdll.LoadLibrary" | "ctypes.PyDLL" => {
            fs.report("plugd-py-ctypes", n, Confidence::High, format!("{q}() loads a native library"));
        }
        _ => {}
    }

    if q == "open" || q == "io.open" || q == "builtins.open" {
        let mode = a
            .positional
            .get(1)
            .copied()
            .or_else(|| a.kw("mode"))
            .map(|m| unquote(text(m, src)).to_string())
            .unwrap_or_default();
        if mode.contains(['w', 'a', 'x', '+']) {
            fs.uses(Capability::FsWrite, n, format!("open(..., {mode:?})"));
        }
    }
    if matches!(
        q,
        "os.remove"
            | "os.unlink"
            | "os.rename"
            | "os.makedirs"
            | "os.mkdir"
            | "shutil.rmtree"
            | "shutil.copy"
            | "shutil.copyfile"
            | "shutil.move"
    ) || q.ends_with(".write_text")
        || q.ends_with(".write_bytes")
    {
        fs.uses(Capability::FsWrite, n, format!("{q}()"));
    }
    if q.starts_with("os.exec") || q.starts_with("os.spawn") || q == "os.fork" {
        fs.uses(Capability::Process, n, format!("{q}()"));
    }

    // subprocess, with or without a shell.
    if let Some(f) = q.strip_prefix("subprocess.") {
        if SUBPROCESS_FUNCS.contains(&f) {
            fs.uses(Capability::Process, n, format!("{q}()"));
            let shell_fn = matches!(f, "getoutput" | "getstatusoutput");
            if a.kw_true("shell", src) || shell_fn {
                let (sev, msg) = if first_literal {
                    (
                        Severity::Low,
                        format!("{q}() with shell=True and a literal command"),
                    )
                } else {
                    (
                        Severity::High,
                        format!(
                            "{q}() with shell=True and a non-literal command allows shell injection; pass a list and drop shell=True"
                        ),
                    )
                };
                fs.report_sev("B602", n, sev, Confidence::High, msg);
            }
        }
    } else if a.kw_true("shell", src) && !q.starts_with("os.") {
        fs.report(
            "B604",
            n,
            Confidence::Low,
            format!("{q}() is called with shell=True, which probably runs a shell"),
        );
    }

    // HTTP clients.
    for client in ["requests", "httpx"] {
        if let Some(f) = q.strip_prefix(client).and_then(|r| r.strip_prefix('.')) {
            if REQUEST_FUNCS.contains(&f) || f == "stream" {
                fs.uses(Capability::Network, n, format!("{q}()"));
                if a.kw_false("verify", src) {
                    fs.report("B501", n, Confidence::High, format!("{q}() with verify=False accepts any TLS certificate; remove it or pass a CA bundle"));
                }
                // httpx has a default timeout; requests does not.
                if client == "requests" && a.kw("timeout").is_none_or(|t| text(t, src) == "None") {
                    fs.report(
                        "B113",
                        n,
                        Confidence::Low,
                        format!("{q}() without a timeout can hang forever; pass timeout="),
                    );
                }
            } else if matches!(f, "Client" | "AsyncClient" | "Session") && a.kw_false("verify", src)
            {
                fs.report(
                    "B501",
                    n,
                    Confidence::High,
                    format!("{q}() with verify=False accepts any TLS certificate"),
                );
            }
        }
    }

    // Flask's app.run(debug=True): Bandit only flags it when flask is imported.
    if flask && last == "run" && func.kind() == "attribute" && a.kw_true("debug", src) {
        fs.report(
            "B201",
            n,
            Confidence::Medium,
            "Flask app.run(debug=True) exposes the Werkzeug debugger, which runs arbitrary code",
        );
    }

    // Literal secrets passed as keyword arguments.
    for (k, v) in &a.keywords {
        if secret_name(k) && is_plain_string(*v, src) {
            fs.report(
                "B106",
                *v,
                Confidence::Medium,
                format!(
                    "possible hard-coded password passed as `{k}=`; load it from configuration"
                ),
            );
        }
    }

    // "SELECT ... {}".format(x)
    if last == "format"
        && func.kind() == "attribute"
        && let Some(obj) = func.child_by_field_name("object")
        && obj.kind() == "string"
        && looks_like_sql(unquote(text(obj, src)))
    {
        fs.report(
            "B608",
            n,
            Confidence::Medium,
            "SQL built with str.format allows SQL injection; use query parameters",
        );
    }
    if last == "extractall"
        && func.kind() == "attribute"
        && a.kw("members").is_none()
        && a.kw("filter").is_none()
    {
        let obj = func
            .child_by_field_name("object")
            .map(|o| qualify(o, src, aliases))
            .unwrap_or_default();
        if obj.starts_with("tarfile.") || text(func, src).contains("tar") {
            fs.report("B202", n, Confidence::Medium, "tarfile extractall without filter= or members= allows path traversal; pass filter='data'");
        }
    }
}

fn parse_mode(s: &str) -> Option<u32> {
    let s = s.trim();
    if let Some(o) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
        u32::from_str_radix(o, 8).ok()
    } else if let Some(h) = s.strip_prefix("0x") {
        u32::from_str_radix(h, 16).ok()
    } else {
        s.parse().ok()
    }
}

fn string_rules(fs: &mut FileScan<'_>, n: Node<'_>) {
    let raw = text(n, fs.src);
    let v = unquote(raw);
    if v == "0.0.0.0" {
        fs.report("B104", n, Confidence::Medium, "binding to 0.0.0.0 listens on every interface; bind to 127.0.0.1 unless exposure is intended");
    }
    if ["/tmp", "/var/tmp", "/dev/shm"]
        .iter()
        .any(|p| v == *p || v.starts_with(&format!("{p}/")))
    {
        fs.report(
            "B108",
            n,
            Confidence::Medium,
            format!("hard-coded path {v:?} in a shared temp directory; use the tempfile module"),
        );
    }
    if has_interpolation(n) && looks_like_sql(v) {
        fs.report(
            "B608",
            n,
            Confidence::Low,
            "SQL built with an f-string allows SQL injection; use query parameters",
        );
    }
}

fn sql_binop(fs: &mut FileScan<'_>, n: Node<'_>) {
    let src = fs.src;
    let op = n
        .child_by_field_name("operator")
        .map(|o| text(o, src))
        .unwrap_or("");
    if op != "%" && op != "+" {
        return;
    }
    // Only report at the outermost `+` of a chain, so "a" + b + "c" is one finding.
    if n.parent().is_some_and(|p| p.kind() == "binary_operator") {
        return;
    }
    let Some(left) = n.child_by_field_name("left") else {
        return;
    };
    let mut s = left;
    while s.kind() == "binary_operator" {
        match s.child_by_field_name("left") {
            Some(l) => s = l,
            None => return,
        }
    }
    let right_literal = n.child_by_field_name("right").is_some_and(is_literal);
    if s.kind() == "string"
        && looks_like_sql(unquote(text(s, src)))
        && !(op == "+" && right_literal && left.kind() == "string")
    {
        fs.report(
            "B608",
            n,
            Confidence::Low,
            format!("SQL built with `{op}` allows SQL injection; use query parameters"),
        );
    }
}

fn looks_like_sql(s: &str) -> bool {
    let l = s.to_ascii_lowercase();
    let has = |a: &str, b: &str| l.find(a).is_some_and(|i| l[i + a.len()..].contains(b));
    has("select ", " from")
        || has("select ", "from ")
        || l.contains("delete from")
        || has("insert into", "values")
        || has("update ", " set ")
}
