//! Issue 5: `plugd scan`, the install policy, keys and signatures, end to end
//! through the real binary.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{Env, python_fixture};

const ECHO: &str = r#"reply(req, body={"ok": True})"#;

/// Code with one high-severity finding (B605: `os.system` of a non-literal).
const RISKY: &str = "import os\ndef risky(cmd):\n    os.system(\"ls \" + cmd)\n";

/// A plugin directory with the given trust level; `risky` appends a high finding.
fn plugin(
    env: &Env,
    dir: &str,
    id: &'static str,
    version: &'static str,
    trust: &str,
    risky: bool,
) -> PathBuf {
    let root = env.plugin(dir, &python_fixture(id, version, ECHO));
    let manifest = root.join("manifest.yaml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(&format!("trust_level: {trust}\n"));
    std::fs::write(&manifest, text).unwrap();
    if risky {
        let code = root.join("plugin.py");
        let mut text = std::fs::read_to_string(&code).unwrap();
        text.push_str(RISKY);
        std::fs::write(&code, text).unwrap();
    }
    root
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Generates an unencrypted key named `name` in this home and returns its key id.
fn generate(env: &Env, name: &str) -> String {
    let doc = env.json(&["key", "generate", "--name", name, "--no-password"]);
    doc["key_id"].as_str().unwrap().to_string()
}

/// Runs plugd with `PLUGD_KEY_PASSWORD` set; returns the exit code and stderr.
fn with_password(env: &Env, args: &[&str], password: &str) -> (Option<i32>, String) {
    let out = env
        .command(args)
        .env("PLUGD_KEY_PASSWORD", password)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn pubkey(env: &Env, name: &str) -> PathBuf {
    env.home.path().join("keys").join(format!("{name}.pub"))
}

fn keyfile(env: &Env, name: &str) -> PathBuf {
    env.home.path().join("keys").join(format!("{name}.key"))
}

#[test]
fn generate_sign_trust_install_verified_and_info_shows_the_signer() {
    let env = Env::new();
    let dir = plugin(&env, "signed", "signed-plugin", "1.0.0", "verified", false);
    let key_id = generate(&env, "default");
    let package = env.path("signed-plugin-1.0.0.tar.gz");
    env.ok(&["pack", s(&dir), "--output", s(&package)]);
    let signed = env.json(&["sign", s(&package)]);
    assert_eq!(signed["key_id"], key_id.as_str());
    assert!(env.path("signed-plugin-1.0.0.tar.gz.minisig").exists());
    env.ok(&[
        "key",
        "trust",
        s(&pubkey(&env, "default")),
        "--name",
        "maintainer",
    ]);

    let report = env.json(&["install", s(&package)]);
    assert_eq!(report["trust_level"], "verified");
    assert_eq!(report["signature"]["status"], "trusted");
    assert_eq!(report["signature"]["key_id"], key_id.as_str());
    assert_eq!(report["signature"]["key_name"], "maintainer");

    let info = env.json(&["info", "signed-plugin"]);
    let version = &info["versions"][0];
    assert_eq!(version["signer"]["status"], "trusted", "{info}");
    assert_eq!(version["signer"]["key_id"], key_id.as_str());
    let text = env.ok(&["info", "signed-plugin"]);
    assert!(
        text.stdout
            .contains(&format!("signed by trusted key `maintainer` ({key_id})")),
        "{}",
        text.stdout
    );
}

#[test]
fn a_package_changed_after_signing_is_refused_naming_the_digest() {
    let env = Env::new();
    let dir = plugin(&env, "tampered", "tampered", "1.0.0", "verified", false);
    generate(&env, "default");
    env.ok(&["key", "trust", s(&pubkey(&env, "default"))]);
    env.ok(&["sign", s(&dir)]);
    assert!(env.path("tampered.minisig").exists());
    let code = dir.join("plugin.py");
    let mut bytes = std::fs::read(&code).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x01;
    std::fs::write(&code, bytes).unwrap();
    env.ok(&["list"]); // lays out the home, so only the install's effect is compared
    let before = env.home_tree();
    let run = env.fails(&["install", s(&dir)]);
    assert!(run.stderr.contains("digest mismatch"), "{}", run.stderr);
    assert!(run.stderr.contains("tampered.minisig"), "{}", run.stderr);
    assert_eq!(
        env.home_tree(),
        before,
        "a refused install changed the home"
    );
    // Also refused at the `sandboxed` level: a broken seal is never installed.
    let sandboxed = plugin(
        &env,
        "tampered2",
        "tampered-two",
        "1.0.0",
        "sandboxed",
        false,
    );
    env.ok(&["sign", s(&sandboxed)]);
    std::fs::write(sandboxed.join("extra.txt"), "added after signing").unwrap();
    let run = env.fails(&["install", s(&sandboxed)]);
    assert!(run.stderr.contains("digest mismatch"), "{}", run.stderr);
}

#[test]
fn verified_needs_a_trusted_key_and_untrusted_signers_are_recorded_with_a_warning() {
    let env = Env::new();
    let key_id = generate(&env, "stranger");
    let verified = plugin(&env, "v", "verified-one", "1.0.0", "verified", false);
    env.ok(&["sign", s(&verified), "--key", s(&keyfile(&env, "stranger"))]);
    let run = env.fails(&["install", s(&verified)]);
    assert!(run.stderr.contains("untrusted key"), "{}", run.stderr);
    assert!(run.stderr.contains(&key_id), "{}", run.stderr);
    assert!(run.stderr.contains("plugd key trust"), "{}", run.stderr);

    // Unsigned `verified`: refused, naming where the signature was looked for.
    let unsigned = plugin(&env, "u", "unsigned-one", "1.0.0", "verified", false);
    let run = env.fails(&["install", s(&unsigned)]);
    assert!(run.stderr.contains("unsigned"), "{}", run.stderr);
    assert!(run.stderr.contains("u.minisig"), "{}", run.stderr);

    // The same untrusted signature on a `sandboxed` plugin: installed, with a warning.
    let sandboxed = plugin(&env, "sb", "sandboxed-one", "1.0.0", "sandboxed", false);
    env.ok(&[
        "sign",
        s(&sandboxed),
        "--key",
        s(&keyfile(&env, "stranger")),
    ]);
    let run = env.ok(&["install", s(&sandboxed)]);
    assert!(run.stderr.contains("warning:"), "{}", run.stderr);
    assert!(run.stderr.contains("untrusted"), "{}", run.stderr);
    let info = env.json(&["info", "sandboxed-one"]);
    assert_eq!(
        info["versions"][0]["signer"]["status"], "untrusted",
        "{info}"
    );
    assert_eq!(info["versions"][0]["signer"]["key_id"], key_id.as_str());
    assert_eq!(info["versions"][0]["signer"]["checked"], true);

    // Trusting the key lets the verified plugin in.
    env.ok(&["key", "trust", s(&pubkey(&env, "stranger"))]);
    env.ok(&["install", s(&verified)]);
}

#[test]
fn a_signature_replayed_on_another_plugin_or_version_is_refused() {
    let env = Env::new();
    generate(&env, "default");
    env.ok(&["key", "trust", s(&pubkey(&env, "default"))]);
    let original = plugin(&env, "orig", "replay-a", "1.0.0", "verified", false);
    env.ok(&["sign", s(&original)]);
    let signature = env.path("orig.minisig");

    // Same files, another id.
    let other = plugin(&env, "other", "replay-b", "1.0.0", "verified", false);
    std::fs::copy(&signature, env.path("other.minisig")).unwrap();
    let run = env.fails(&["install", s(&other)]);
    assert!(run.stderr.contains("id mismatch"), "{}", run.stderr);
    assert!(run.stderr.contains("replay-a"), "{}", run.stderr);

    // Same id, another version (given with --signature this time).
    let newer = plugin(&env, "newer", "replay-a", "1.1.0", "verified", false);
    let run = env.fails(&["install", s(&newer), "--signature", s(&signature)]);
    assert!(run.stderr.contains("version mismatch"), "{}", run.stderr);

    // A corrupted signature file is refused as malformed or bad, never accepted.
    let text = std::fs::read_to_string(&signature).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let sig = &mut lines[1];
    let flipped = if sig.as_bytes()[20] == b'A' { "B" } else { "A" };
    sig.replace_range(20..21, flipped);
    std::fs::write(&signature, lines.join("\n") + "\n").unwrap();
    let run = env.fails(&["install", s(&original)]);
    assert!(run.stderr.contains("bad signature"), "{}", run.stderr);
}

#[test]
fn password_protected_keys_sign_only_with_their_password() {
    let env = Env::new();
    let refused = env.fails(&["key", "generate"]);
    assert!(
        refused.stderr.contains("--no-password"),
        "{}",
        refused.stderr
    );
    let password = env.path("pw.txt");
    std::fs::write(&password, "correct horse\n").unwrap();
    let doc = env.json(&["key", "generate", "--password-file", s(&password)]);
    assert_eq!(doc["encrypted"], true);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(keyfile(&env, "default"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = env.fails(&["key", "generate", "--no-password"]);
    assert!(again.stderr.contains("--force"), "{}", again.stderr);

    let dir = plugin(&env, "p", "pw-plugin", "1.0.0", "sandboxed", false);
    let run = env.fails(&["sign", s(&dir)]);
    assert!(run.stderr.contains("PLUGD_KEY_PASSWORD"), "{}", run.stderr);
    let (code, stderr) = with_password(&env, &["sign", s(&dir)], "wrong");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("password"), "{stderr}");
    let (code, stderr) = with_password(&env, &["sign", s(&dir)], "correct horse");
    assert_eq!(code, Some(0), "{stderr}");
    env.ok(&["sign", s(&dir), "--password-file", s(&password)]);
}

#[test]
fn key_list_and_untrust() {
    let env = Env::new();
    assert_eq!(env.json(&["key", "list"])["keys"], Value::Array(vec![]));
    let a = generate(&env, "a");
    let b = generate(&env, "b");
    env.ok(&["key", "trust", s(&pubkey(&env, "a")), "--name", "alice"]);
    let key_line = std::fs::read_to_string(pubkey(&env, "b")).unwrap();
    let key_line = key_line.lines().nth(1).unwrap();
    env.ok(&["key", "trust", key_line]);
    let keys = env.json(&["key", "list"]);
    let ids: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&a.as_str()) && ids.contains(&b.as_str()));
    let dup = env.fails(&["key", "trust", s(&pubkey(&env, "a")), "--name", "again"]);
    assert!(
        dup.stderr.contains("already trusted as `alice`"),
        "{}",
        dup.stderr
    );
    env.ok(&["key", "untrust", "alice"]);
    env.ok(&["key", "untrust", &b]);
    assert_eq!(env.json(&["key", "list"])["keys"], Value::Array(vec![]));
    let missing = env.fails(&["key", "untrust", "alice"]);
    assert!(
        missing.stderr.contains("plugd key list"),
        "{}",
        missing.stderr
    );
    let bad = env.fails(&["key", "trust", "not-a-key"]);
    assert!(
        bad.stderr.contains("not a minisign public key"),
        "{}",
        bad.stderr
    );
}

#[test]
fn scan_exit_codes_text_and_json() {
    let env = Env::new();
    let clean = plugin(&env, "clean", "clean-one", "1.0.0", "sandboxed", false);
    let risky = plugin(&env, "risky", "risky-one", "1.0.0", "sandboxed", true);
    let run = env.ok(&["scan", s(&clean)]);
    assert!(run.stdout.contains("findings: 0 high"), "{}", run.stdout);

    let run = env.fails(&["scan", s(&risky)]);
    assert!(run.stdout.contains("findings: 1 high"), "{}", run.stdout);
    assert!(run.stdout.contains("B605"), "{}", run.stdout);
    assert!(run.stdout.contains("plugin.py:"), "{}", run.stdout);

    let json = env.run(&["--json", "scan", s(&risky)]);
    assert_eq!(json.code, Some(1));
    let doc = json.json();
    assert_eq!(doc["counts"]["high"], 1);
    assert_eq!(doc["manifest"]["id"], "risky-one");

    // A package is unpacked first; the findings are the same.
    let package = env.path("risky.tar.gz");
    env.ok(&["pack", s(&risky), "--output", s(&package)]);
    let packed = env.run(&["--json", "scan", s(&package)]);
    assert_eq!(packed.code, Some(1), "{}", packed.stderr);
    assert_eq!(packed.json()["counts"]["high"], 1);

    // No manifest: scanned anyway, and it says so.
    std::fs::remove_file(risky.join("manifest.yaml")).unwrap();
    let run = env.fails(&["scan", s(&risky)]);
    assert!(
        run.stdout.contains("without manifest context"),
        "{}",
        run.stdout
    );

    let missing = env.run(&["scan", s(&env.path("nope"))]);
    assert_eq!(missing.code, Some(2), "{}", missing.stderr);
    let not_a_package = env.path("notes.txt");
    std::fs::write(&not_a_package, "hello").unwrap();
    assert_eq!(env.run(&["scan", s(&not_a_package)]).code, Some(2));
}

#[test]
fn scan_sarif_validates_against_the_sarif_2_1_0_schema() {
    let env = Env::new();
    let risky = plugin(&env, "risky", "sarif-one", "1.0.0", "sandboxed", true);
    let run = env.run(&["scan", "--sarif", s(&risky)]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let sarif: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let schema: Value = serde_json::from_str(include_str!(
        "../../../scan/tests/data/sarif-schema-2.1.0.json"
    ))
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&sarif)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert!(results.iter().any(|r| r["ruleId"] == "B605"), "{sarif}");
}

#[test]
fn high_findings_block_trusted_installs_unless_accepted() {
    let env = Env::new();
    let risky = plugin(&env, "risky", "risky-trusted", "1.0.0", "trusted", true);
    env.ok(&["list"]); // lays out the home, so only the install's effect is compared
    let before = env.home_tree();
    let run = env.fails(&["install", s(&risky)]);
    assert!(run.stderr.contains("--accept-findings"), "{}", run.stderr);
    assert!(run.stderr.contains("B605"), "{}", run.stderr);
    assert_eq!(env.home_tree(), before);
    let run = env.ok(&["install", s(&risky), "--accept-findings"]);
    assert!(
        run.stdout.contains("security scan: 1 high"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("accepted with --accept-findings"),
        "{}",
        run.stderr
    );

    // `update` goes through the same policy.
    let newer = plugin(&env, "risky2", "risky-trusted", "1.1.0", "trusted", true);
    let run = env.fails(&["update", "risky-trusted", s(&newer)]);
    assert!(run.stderr.contains("--accept-findings"), "{}", run.stderr);
    env.ok(&["update", "risky-trusted", s(&newer), "--accept-findings"]);
}

#[test]
fn sandboxed_installs_with_a_warning_and_the_scan_is_stored() {
    let env = Env::new();
    let risky = plugin(&env, "risky", "risky-sandboxed", "1.0.0", "sandboxed", true);
    let run = env.ok(&["install", s(&risky)]);
    assert!(run.stderr.contains("warning:"), "{}", run.stderr);
    assert!(run.stderr.contains("sandboxed"), "{}", run.stderr);
    assert!(run.stdout.contains("B605"), "{}", run.stdout);

    let info = env.json(&["info", "risky-sandboxed"]);
    let scan = &info["versions"][0]["scan"];
    assert_eq!(scan["counts"]["high"], 1, "{info}");
    assert!(
        scan["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule_id"] == "B605" && f["file"] == "plugin.py"),
        "{scan}"
    );
    assert_eq!(info["versions"][0]["signer"], Value::Null);
    let text = env.ok(&["info", "risky-sandboxed"]);
    assert!(
        text.stdout.contains("security scan: 1 high"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("signer: none"), "{}", text.stdout);
}
