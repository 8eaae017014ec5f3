//! Bash rules: eval, download-into-shell pipes, `rm -rf $VAR`, writes to system paths,
//! `chmod 777` and network tools.

use tree_sitter::Node;

use crate::tree::{nodes, parse, text, unquote};
use crate::{Capability, Confidence, FileScan};

const NET_TOOLS: &[&str] = &[
    "curl", "wget", "nc", "ncat", "netcat", "socat", "ssh", "scp", "sftp", "rsync", "telnet", "ftp",
];
const SHELLS: &[&str] = &[
    "sh", "bash", "zsh", "dash", "ksh", "python", "python3", "perl", "ruby", "node",
];
const SYSTEM_DIRS: &[&str] = &[
    "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/boot", "/sys", "/proc", "/dev/sd",
    "/root", "/var/lib", "/opt",
];

pub(crate) fn scan(fs: &mut FileScan<'_>) -> Result<bool, String> {
    let tree = parse(tree_sitter_bash::LANGUAGE.into(), fs.src)?;
    let root = tree.root_node();
    for n in nodes(root) {
        match n.kind() {
            "command" => command(fs, n),
            "pipeline" => pipeline(fs, n),
            "file_redirect" => {
                // The operator is the first anonymous child; a leading `2` is a named file_descriptor.
                let op = (0..n.child_count())
                    .filter_map(|i| n.child(i))
                    .find(|c| !c.is_named())
                    .map(|c| text(c, fs.src))
                    .unwrap_or("");
                if let Some(dest) = n.child_by_field_name("destination") {
                    let d = unquote(text(dest, fs.src));
                    if (op.contains('>')) && is_system_path(d) {
                        fs.report("plugd-sh-system-write", n, Confidence::High, format!("redirects output into system path {d}; write under the plugin's data directory"));
                    }
                    // `>&2` and `2>&1` duplicate descriptors; `/dev/null` and the std streams are not files.
                    let dup =
                        op.ends_with('&') || d.chars().all(|c| c.is_ascii_digit() || c == '-');
                    if op.contains('>') && !dup && !d.starts_with("/dev/") {
                        fs.uses(Capability::FsWrite, n, format!("redirect to {d}"));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(root.has_error())
}

fn name_of<'s>(n: Node<'_>, src: &'s [u8]) -> &'s str {
    let name = n
        .child_by_field_name("name")
        .map(|c| text(c, src))
        .unwrap_or("");
    name.rsplit('/').next().unwrap_or(name)
}

fn arguments<'t>(n: Node<'t>) -> Vec<Node<'t>> {
    let mut c = n.walk();
    n.children_by_field_name("argument", &mut c).collect()
}

fn is_system_path(p: &str) -> bool {
    SYSTEM_DIRS.iter().any(|d| {
        p == *d || p.starts_with(&format!("{d}/")) || (d.ends_with("sd") && p.starts_with(d))
    })
}

fn has_expansion(n: Node<'_>) -> bool {
    nodes(n).iter().any(|c| {
        matches!(
            c.kind(),
            "simple_expansion" | "expansion" | "command_substitution"
        )
    })
}

fn command(fs: &mut FileScan<'_>, n: Node<'_>) {
    let src = fs.src;
    let name = name_of(n, src);
    let args = arguments(n);
    let argtext: Vec<&str> = args.iter().map(|a| unquote(text(*a, src))).collect();
    match name {
        "eval" => fs.report(
            "plugd-sh-eval",
            n,
            Confidence::High,
            "eval re-parses its arguments as shell code; a variable in them allows injection",
        ),
        "rm" => {
            let flags: String = argtext
                .iter()
                .filter(|a| a.starts_with('-') && !a.starts_with("--"))
                .map(|a| &a[1..])
                .collect();
            let recursive = flags.contains(['r', 'R']) || argtext.contains(&"--recursive");
            let var_target = args
                .iter()
                .zip(&argtext)
                .any(|(a, t)| !t.starts_with('-') && has_expansion(*a));
            if recursive && var_target {
                fs.report("plugd-sh-rm-rf-var", n, Confidence::High, "rm -r on a variable deletes the wrong tree when it is empty or unset; use \"${VAR:?}\" and check it first");
            }
            if args.iter().zip(&argtext).any(|(_, t)| is_system_path(t)) {
                fs.report(
                    "plugd-sh-system-write",
                    n,
                    Confidence::High,
                    "rm on a system path",
                );
            }
            fs.uses(Capability::FsWrite, n, "rm");
        }
        "chmod"
            if argtext.iter().any(|a| {
                matches!(
                    *a,
                    "777" | "0777" | "666" | "0666" | "a+w" | "o+w" | "a+rwx" | "o+rwx" | "ugo+rwx"
                )
            }) =>
        {
            fs.report(
                "plugd-sh-chmod-777",
                n,
                Confidence::High,
                "chmod makes files world-writable; use 755/644",
            );
        }
        "cp" | "mv" | "install" | "tee" | "ln" | "dd" | "mkdir" | "touch" => {
            if let Some(t) = argtext.iter().rev().find(|a| !a.starts_with('-')) {
                let t = t.strip_prefix("of=").unwrap_or(t);
                if is_system_path(t) {
                    fs.report("plugd-sh-system-write", n, Confidence::High, format!("{name} writes into system path {t}; write under the plugin's data directory"));
                }
            }
            fs.uses(Capability::FsWrite, n, name.to_string());
        }
        _ => {}
    }
    if NET_TOOLS.contains(&name) {
        fs.report(
            "plugd-sh-network",
            n,
            Confidence::High,
            format!("runs network tool {name}"),
        );
        fs.uses(Capability::Network, n, name.to_string());
    }
}

fn pipeline(fs: &mut FileScan<'_>, n: Node<'_>) {
    let src = fs.src;
    let cmds: Vec<Node<'_>> = (0..n.named_child_count())
        .filter_map(|i| n.named_child(i))
        .filter(|c| c.kind() == "command")
        .collect();
    let downloads = cmds
        .iter()
        .any(|c| matches!(name_of(*c, src), "curl" | "wget" | "fetch"));
    let into_shell = cmds.iter().skip(1).find(|c| {
        let nm = name_of(**c, src);
        SHELLS.contains(&nm)
            || (nm == "sudo"
                && arguments(**c)
                    .first()
                    .is_some_and(|a| SHELLS.contains(&text(*a, src))))
    });
    if downloads && let Some(sh) = into_shell {
        let shell = name_of(*sh, src).to_string();
        fs.report(
            "plugd-sh-curl-pipe",
            n,
            Confidence::High,
            format!(
                "downloaded content is piped into {shell}: whoever controls the URL runs code here"
            ),
        );
    }
}
