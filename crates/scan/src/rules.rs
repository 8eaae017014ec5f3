//! The rule catalogue: ids, default severities and descriptions, used for findings and SARIF.

use crate::Severity::{self, High, Low, Medium};

/// Static metadata of one rule.
#[derive(Debug, Clone, Copy)]
pub struct RuleInfo {
    /// The id findings carry.
    pub id: &'static str,
    /// Short kebab-case name.
    pub name: &'static str,
    /// Default severity.
    pub severity: Severity,
    /// One-sentence description.
    pub description: &'static str,
}

const fn r(
    id: &'static str,
    name: &'static str,
    severity: Severity,
    description: &'static str,
) -> RuleInfo {
    RuleInfo {
        id,
        name,
        severity,
        description,
    }
}

/// Every rule the scanner can report.
pub const RULES: &[RuleInfo] = &[
    // Python, Bandit ids.
    r(
        "B102",
        "exec-used",
        Medium,
        "exec() runs arbitrary code built at run time",
    ),
    r(
        "B103",
        "set-bad-file-permissions",
        High,
        "os.chmod grants write or execute to group/others",
    ),
    r(
        "B104",
        "hardcoded-bind-all-interfaces",
        Medium,
        "binding to 0.0.0.0 exposes the service on every interface",
    ),
    r(
        "B105",
        "hardcoded-password-string",
        Low,
        "a password, secret or key is hard-coded in a string",
    ),
    r(
        "B106",
        "hardcoded-password-funcarg",
        Low,
        "a password, secret or key is passed as a literal argument",
    ),
    r(
        "B107",
        "hardcoded-password-default",
        Low,
        "a password, secret or key is a literal default argument",
    ),
    r(
        "B108",
        "hardcoded-tmp-directory",
        Medium,
        "a fixed path in a shared temp directory invites symlink races",
    ),
    r(
        "B113",
        "request-without-timeout",
        Medium,
        "an HTTP request without a timeout can hang the worker forever",
    ),
    r(
        "B201",
        "flask-debug-true",
        High,
        "Flask debug mode exposes the Werkzeug debugger, which runs arbitrary code",
    ),
    r(
        "B202",
        "tarfile-unsafe-members",
        High,
        "tarfile.extractall without member filtering allows path traversal",
    ),
    r(
        "B301",
        "pickle",
        Medium,
        "unpickling (pickle/shelve/dill) untrusted data runs arbitrary code",
    ),
    r(
        "B302",
        "marshal",
        Medium,
        "marshal loading of untrusted data is unsafe",
    ),
    r(
        "B303",
        "md5-or-sha1",
        Medium,
        "MD5/SHA1 are broken for security purposes",
    ),
    r(
        "B306",
        "mktemp-q",
        Medium,
        "tempfile.mktemp is racy; use mkstemp or NamedTemporaryFile",
    ),
    r(
        "B307",
        "eval",
        Medium,
        "eval() of a non-literal runs arbitrary code; use ast.literal_eval",
    ),
    r(
        "B310",
        "urllib-urlopen",
        Medium,
        "urlopen accepts file:// and custom schemes; check the URL scheme",
    ),
    r(
        "B401",
        "import-telnetlib",
        High,
        "telnet sends credentials in clear text",
    ),
    r(
        "B314",
        "xml-bad-etree",
        Medium,
        "xml.etree parsing of untrusted XML is vulnerable to entity attacks; use defusedxml",
    ),
    r(
        "B318",
        "xml-bad-minidom",
        Medium,
        "xml.dom.minidom parsing of untrusted XML is vulnerable; use defusedxml",
    ),
    r(
        "B402",
        "import-ftplib",
        High,
        "FTP sends credentials in clear text",
    ),
    r(
        "B324",
        "hashlib-insecure",
        High,
        "hashlib MD5/SHA1/MD4 used without usedforsecurity=False",
    ),
    r(
        "B501",
        "request-with-no-cert-validation",
        High,
        "verify=False disables TLS certificate checks",
    ),
    r(
        "B506",
        "yaml-load",
        Medium,
        "yaml.load without SafeLoader can construct arbitrary objects",
    ),
    r(
        "B507",
        "ssh-no-host-key-verification",
        High,
        "paramiko AutoAddPolicy/WarningPolicy accepts any host key",
    ),
    r(
        "B602",
        "subprocess-popen-with-shell-equals-true",
        High,
        "subprocess with shell=True and a non-literal command allows shell injection",
    ),
    r(
        "B604",
        "any-other-function-with-shell-equals-true",
        Medium,
        "a call with shell=True probably runs a shell",
    ),
    r(
        "B605",
        "start-process-with-a-shell",
        High,
        "os.system/os.popen run a shell; a non-literal command allows injection",
    ),
    r(
        "B608",
        "hardcoded-sql-expressions",
        Medium,
        "SQL built by string formatting allows SQL injection; use parameters",
    ),
    r(
        "B701",
        "jinja2-autoescape-false",
        High,
        "jinja2 without autoescape allows XSS",
    ),
    r(
        "plugd-py-compile",
        "compile-non-literal",
        Medium,
        "compile() of a non-literal prepares arbitrary code for execution",
    ),
    r(
        "plugd-py-ctypes",
        "ctypes",
        Medium,
        "ctypes calls native code directly, outside Python's safety checks",
    ),
    r(
        "plugd-py-dynamic-import",
        "dynamic-import",
        Medium,
        "__import__/importlib with a non-literal name loads code chosen at run time",
    ),
    r(
        "plugd-py-socket",
        "raw-socket",
        Low,
        "opens a raw network socket",
    ),
    // Bash.
    r(
        "plugd-sh-eval",
        "shell-eval",
        High,
        "eval re-parses data as shell code",
    ),
    r(
        "plugd-sh-curl-pipe",
        "download-piped-to-shell",
        High,
        "downloaded content is piped straight into an interpreter",
    ),
    r(
        "plugd-sh-rm-rf-var",
        "rm-rf-variable",
        High,
        "rm -rf on a variable deletes / or $HOME when the variable is empty",
    ),
    r(
        "plugd-sh-system-write",
        "write-system-path",
        High,
        "writes to a system path outside the plugin's directory",
    ),
    r(
        "plugd-sh-chmod-777",
        "chmod-world-writable",
        Medium,
        "chmod 777/o+w makes files world-writable",
    ),
    r(
        "plugd-sh-network",
        "network-tool",
        Low,
        "runs a network tool",
    ),
    // R.
    r(
        "plugd-r-system",
        "r-system",
        High,
        "system()/system2()/shell() run external commands",
    ),
    r(
        "plugd-r-eval-parse",
        "r-eval-parse",
        High,
        "eval(parse(...)) runs code built at run time",
    ),
    r(
        "plugd-r-download",
        "r-download",
        Medium,
        "download.file/url fetch content from the network",
    ),
    r(
        "plugd-r-source-url",
        "r-source-url",
        High,
        "source() of a URL runs remote code",
    ),
    // JavaScript.
    r(
        "plugd-js-eval",
        "js-eval",
        High,
        "eval() runs code built at run time",
    ),
    r(
        "plugd-js-function",
        "js-function-constructor",
        High,
        "Function(...) compiles a string into code",
    ),
    r(
        "plugd-js-child-process",
        "js-child-process",
        High,
        "child_process runs external commands",
    ),
    r(
        "plugd-js-vm",
        "js-vm",
        Medium,
        "the vm module is not a security boundary",
    ),
    // Package level.
    r(
        "plugd-pkg-setuid",
        "setuid-setgid",
        High,
        "a file has the setuid or setgid bit",
    ),
    r(
        "plugd-pkg-world-writable",
        "world-writable",
        Medium,
        "a file or directory is world-writable",
    ),
    r(
        "plugd-pkg-undeclared-binary",
        "undeclared-binary",
        High,
        "a native executable the manifest does not declare",
    ),
    r(
        "plugd-pkg-ext-mismatch",
        "extension-mismatch",
        Medium,
        "the file's content contradicts its extension",
    ),
    // Manifest vs code.
    r(
        "plugd-manifest-network",
        "undeclared-network",
        Medium,
        "code uses the network without a network permission",
    ),
    r(
        "plugd-manifest-process",
        "undeclared-process",
        Medium,
        "code spawns processes without a process permission",
    ),
    r(
        "plugd-manifest-fs-write",
        "undeclared-fs-write",
        Medium,
        "code writes files though the plugin is sandboxed",
    ),
    // Dependencies.
    r(
        "plugd-dep-advisory",
        "vulnerable-dependency",
        High,
        "a declared dependency has a known advisory",
    ),
    r(
        "plugd-advisory-file",
        "advisory-file-unreadable",
        Low,
        "the configured advisory file could not be used",
    ),
];

/// Looks a rule up by id.
pub fn rule_info(id: &str) -> Option<&'static RuleInfo> {
    RULES.iter().find(|r| r.id == id)
}
