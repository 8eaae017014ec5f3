//! Integration tests for plugd-scan: every rule against the corpus, the clean files, package-level
//! checks, manifest-vs-code, advisories, SARIF shape and hostile input.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use plugd_scan::{
    Finding, ScanContext, ScanOptions, ScanReport, Severity, TrustLevel, scan_dir, to_sarif,
};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// A context that grants everything, so only the code rules speak.
fn permissive() -> ScanContext {
    ScanContext {
        declared_network: true,
        declared_process: true,
        declared_fs_write: true,
        trust_level: TrustLevel::Trusted,
        ..Default::default()
    }
}

fn scan(dir: &Path, ctx: &ScanContext) -> ScanReport {
    scan_dir(dir, ctx, &ScanOptions::default())
}

fn has(report: &ScanReport, file: &str, rule: &str, line: usize) -> bool {
    report
        .findings
        .iter()
        .any(|f| f.file == file && f.rule_id == rule && f.line == line)
}

// ---- every rule fires where the corpus says ----

const EXPECTED: &[(&str, &str, usize)] = &[
    ("python/b307_eval.py", "B307", 2),
    ("python/b102_exec.py", "B102", 2),
    ("python/b602_subprocess_alias.py", "B602", 4),
    ("python/b602_from_import.py", "B602", 4),
    ("python/b605_os_system.py", "B605", 4),
    ("python/b605_os_popen.py", "B605", 4),
    ("python/b301_pickle.py", "B301", 4),
    ("python/b301_shelve.py", "B301", 4),
    ("python/b302_marshal.py", "B302", 4),
    ("python/b506_yaml.py", "B506", 4),
    ("python/b501_verify.py", "B501", 4),
    ("python/b113_timeout.py", "B113", 4),
    ("python/b105_password.py", "B105", 1),
    ("python/b106_password_arg.py", "B106", 2),
    ("python/b108_tmp.py", "B108", 2),
    ("python/b306_mktemp.py", "B306", 4),
    ("python/b324_md5.py", "B324", 4),
    ("python/b324_sha1_new.py", "B324", 4),
    ("python/b104_bind_all.py", "B104", 5),
    ("python/b104_bind_all.py", "plugd-py-socket", 4),
    ("python/b201_flask_debug.py", "B201", 4),
    ("python/b608_sql_percent.py", "B608", 2),
    ("python/b608_sql_format.py", "B608", 2),
    ("python/b608_sql_fstring.py", "B608", 2),
    ("python/plugd_ctypes.py", "plugd-py-ctypes", 1),
    ("python/plugd_ctypes.py", "plugd-py-ctypes", 3),
    (
        "python/plugd_dynamic_import.py",
        "plugd-py-dynamic-import",
        4,
    ),
    (
        "python/plugd_dunder_import.py",
        "plugd-py-dynamic-import",
        2,
    ),
    ("python/plugd_compile.py", "plugd-py-compile", 2),
    ("python/b310_urlopen.py", "B310", 4),
    ("python/b103_chmod.py", "B103", 4),
    ("python/b202_tarfile.py", "B202", 5),
    ("python/b314_xml.py", "B314", 4),
    ("python/b701_jinja.py", "B701", 3),
    ("python/b401_telnet.py", "B401", 1),
    ("python/b402_ftplib.py", "B402", 1),
    ("bash/eval.sh", "plugd-sh-eval", 3),
    ("bash/curl_pipe.sh", "plugd-sh-curl-pipe", 2),
    ("bash/curl_pipe.sh", "plugd-sh-network", 2),
    ("bash/wget_pipe.sh", "plugd-sh-curl-pipe", 1),
    ("bash/rm_rf_var.sh", "plugd-sh-rm-rf-var", 2),
    ("bash/system_write.sh", "plugd-sh-system-write", 2),
    ("bash/system_write.sh", "plugd-sh-system-write", 3),
    ("bash/chmod_777.sh", "plugd-sh-chmod-777", 2),
    ("bash/network.sh", "plugd-sh-network", 2),
    ("bash/run_noext", "plugd-sh-eval", 2),
    ("r/system.R", "plugd-r-system", 2),
    ("r/system2.R", "plugd-r-system", 1),
    ("r/eval_parse.R", "plugd-r-eval-parse", 1),
    ("r/download.R", "plugd-r-download", 1),
    ("r/source_url.R", "plugd-r-source-url", 1),
    ("js/eval.js", "plugd-js-eval", 2),
    ("js/function_ctor.js", "plugd-js-function", 1),
    ("js/child_process.js", "plugd-js-child-process", 1),
    ("js/child_process_import.mjs", "plugd-js-child-process", 1),
    ("js/vm.js", "plugd-js-vm", 1),
];

#[test]
fn every_corpus_rule_fires() {
    let report = scan(&corpus(), &permissive());
    let missing: Vec<_> = EXPECTED
        .iter()
        .filter(|(f, r, l)| !has(&report, f, r, *l))
        .collect();
    assert!(
        missing.is_empty(),
        "missing findings: {missing:#?}\nall: {:#?}",
        report.findings
    );
    assert!(
        report.files_scanned >= 50,
        "scanned only {}",
        report.files_scanned
    );
    assert_eq!(report.counts, report.counts());
    // Every id the scanner emits is in the catalogue SARIF publishes.
    for f in &report.findings {
        assert!(
            plugd_scan::rule_info(&f.rule_id).is_some(),
            "rule {} not in RULES",
            f.rule_id
        );
    }
}

#[test]
fn clean_files_have_no_findings() {
    let report = scan(&corpus().join("clean"), &permissive());
    assert_eq!(report.files_scanned, 4);
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

#[test]
fn literal_shell_commands_are_low_not_high() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("a.py"),
        "import subprocess\nsubprocess.call('ls', shell=True)\neval('1+1')\n",
    )
    .unwrap();
    let r = scan(d.path(), &permissive());
    let f: Vec<&Finding> = r.findings.iter().filter(|f| f.rule_id == "B602").collect();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].severity, Severity::Low);
    assert!(
        !r.findings.iter().any(|f| f.rule_id == "B307"),
        "eval of a literal is not reported"
    );
}

#[test]
fn shadowed_names_are_not_confused() {
    // `system` here is a local function, not os.system.
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("a.py"),
        "def system(x):\n    return x\nsystem(input())\n",
    )
    .unwrap();
    assert!(scan(d.path(), &permissive()).findings.is_empty());
}

// ---- package level ----

#[test]
fn package_mode_bits_binaries_and_mismatches() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let elf = [b"\x7fELF".as_slice(), &[0u8; 60]].concat();
    std::fs::write(p.join("tool"), &elf).unwrap();
    std::fs::write(p.join("declared"), &elf).unwrap();
    std::fs::write(p.join("fake.py"), &elf).unwrap();
    std::fs::write(p.join("logo.png"), "not a png").unwrap();
    std::fs::write(p.join("suid"), "x").unwrap();
    std::fs::set_permissions(p.join("suid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::write(p.join("ww.txt"), "x").unwrap();
    std::fs::set_permissions(p.join("ww.txt"), std::fs::Permissions::from_mode(0o666)).unwrap();
    let ctx = ScanContext {
        declared_binaries: vec!["./declared".into()],
        ..permissive()
    };
    let r = scan(p, &ctx);
    assert!(has(&r, "tool", "plugd-pkg-undeclared-binary", 0));
    assert!(!has(&r, "declared", "plugd-pkg-undeclared-binary", 0));
    assert!(has(&r, "fake.py", "plugd-pkg-ext-mismatch", 0));
    assert!(has(&r, "fake.py", "plugd-pkg-undeclared-binary", 0));
    assert!(has(&r, "logo.png", "plugd-pkg-ext-mismatch", 0));
    assert!(has(&r, "suid", "plugd-pkg-setuid", 0));
    assert!(has(&r, "ww.txt", "plugd-pkg-world-writable", 0));
    assert!(r.has_high());
}

#[test]
fn symlinks_and_oversized_files_are_skipped_and_reported() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    std::fs::write(p.join("big.py"), "x = 1\n".repeat(100)).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", p.join("link.py")).unwrap();
    let r = scan_dir(
        p,
        &permissive(),
        &ScanOptions {
            max_file_bytes: 100,
            advisories: None,
        },
    );
    assert_eq!(r.files_scanned, 0);
    assert!(
        r.skipped
            .iter()
            .any(|s| s.file == "big.py" && s.reason.contains("over the scan limit")),
        "{:?}",
        r.skipped
    );
    assert!(
        r.skipped
            .iter()
            .any(|s| s.file == "link.py" && s.reason.contains("symlink")),
        "{:?}",
        r.skipped
    );
}

// ---- manifest vs code ----

#[test]
fn undeclared_capabilities_will_be_denied() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("p.py"),
        "import socket, subprocess\ns = socket.socket()\nsubprocess.run(['ls'])\nopen('out.txt', 'w').write('x')\nopen('in.txt').read()\n",
    )
    .unwrap();
    let r = scan(d.path(), &ScanContext::default());
    for (rule, line) in [
        ("plugd-manifest-network", 2),
        ("plugd-manifest-process", 3),
        ("plugd-manifest-fs-write", 4),
    ] {
        let f = r
            .findings
            .iter()
            .find(|f| f.rule_id == rule && f.line == line)
            .unwrap_or_else(|| panic!("{rule} missing: {:#?}", r.findings));
        assert!(
            f.message.contains("will be denied at run time"),
            "{}",
            f.message
        );
    }
    assert!(
        !r.findings
            .iter()
            .any(|f| f.rule_id == "plugd-manifest-fs-write" && f.line == 5),
        "reads are fine"
    );
    // Granted, or trusted for writes: nothing to deny.
    let r = scan(d.path(), &permissive());
    assert!(
        !r.findings
            .iter()
            .any(|f| f.rule_id.starts_with("plugd-manifest-"))
    );
}

// ---- advisories ----

#[test]
fn osv_advisories_match_pinned_and_unpinned_deps() {
    let d = tempfile::tempdir().unwrap();
    let adv = d.path().join("osv.json");
    std::fs::write(
        &adv,
        r#"{"vulns":[{"id":"GHSA-test-1","summary":"yaml RCE","affected":[{"package":{"name":"PyYAML","ecosystem":"PyPI"},
           "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"5.4"}]}]}]}]}"#,
    )
    .unwrap();
    let pkg = tempfile::tempdir().unwrap();
    let opts = ScanOptions {
        advisories: Some(adv.clone()),
        ..Default::default()
    };
    let run = |deps: &[&str]| {
        let ctx = ScanContext {
            python_deps: deps.iter().map(|s| s.to_string()).collect(),
            ..permissive()
        };
        scan_dir(pkg.path(), &ctx, &opts)
            .findings
            .into_iter()
            .filter(|f| f.rule_id == "plugd-dep-advisory")
            .collect::<Vec<_>>()
    };
    assert_eq!(run(&["pyyaml==5.3.1"]).len(), 1);
    assert!(run(&["pyyaml==5.4"]).is_empty());
    assert!(run(&["pyyaml==6.0.1"]).is_empty());
    assert!(run(&["requests==2.0"]).is_empty());
    assert_eq!(
        run(&["py_yaml"]).len(),
        0,
        "PEP 503 keeps py-yaml and pyyaml apart"
    );
    assert_eq!(
        run(&["PyYAML"]).len(),
        1,
        "unpinned is reported with low confidence"
    );

    // A broken advisory file is a finding, not a crash.
    std::fs::write(&adv, "{not json").unwrap();
    let ctx = ScanContext {
        python_deps: vec!["pyyaml==5.3".into()],
        ..permissive()
    };
    let r = scan_dir(pkg.path(), &ctx, &opts);
    assert!(
        r.findings
            .iter()
            .any(|f| f.rule_id == "plugd-advisory-file" && f.message.contains("not OSV JSON"))
    );
}

// ---- SARIF ----

#[test]
fn sarif_has_the_required_2_1_0_shape() {
    let report = scan(&corpus(), &permissive());
    let s = to_sarif(&report);
    assert_eq!(s["version"], "2.1.0");
    let run = &s["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(run["tool"]["driver"]["name"], "plugd-scan");
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), report.findings.len());
    for r in results {
        let id = r["ruleId"].as_str().unwrap();
        assert!(matches!(
            r["level"].as_str().unwrap(),
            "error" | "warning" | "note"
        ));
        assert!(!r["message"]["text"].as_str().unwrap().is_empty());
        let idx = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[idx]["id"], id, "ruleIndex must point at the rule");
        let loc = &r["locations"][0]["physicalLocation"];
        assert!(loc["artifactLocation"]["uri"].is_string());
        if let Some(line) = loc["region"]["startLine"].as_u64() {
            assert!(line >= 1, "SARIF lines are 1-based");
        }
    }
}

// ---- hostile input ----

#[test]
fn hostile_files_do_not_crash_the_scanner() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    std::fs::write(
        p.join("deep.py"),
        format!("x = {}1{}\n", "(".repeat(50_000), ")".repeat(50_000)),
    )
    .unwrap();
    std::fs::write(p.join("bad.py"), b"\xff\xfe def (((: eval(\x00 \n").unwrap();
    std::fs::write(p.join("bad.sh"), "if then fi ((( eval $x\n").unwrap();
    std::fs::write(p.join("bad.R"), "system(((\n").unwrap();
    std::fs::write(p.join("bad.js"), "eval(`${").unwrap();
    std::fs::write(p.join("empty.py"), "").unwrap();
    let r = scan(p, &permissive());
    assert!(
        r.skipped.iter().any(|s| s.reason.contains("syntax errors")),
        "{:?}",
        r.skipped
    );
    assert!(has(&r, "bad.sh", "plugd-sh-eval", 1) || r.skipped.iter().any(|s| s.file == "bad.sh"));
}

#[test]
fn sarif_validates_against_the_official_2_1_0_schema() {
    // The schema is vendored from the npm package @microsoft/jest-sarif (MIT), which ships the
    // OASIS SARIF 2.1.0 (rtm.5) JSON schema; validation is offline.
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("data/sarif-schema-2.1.0.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let report = scan(&corpus(), &ScanContext::default());
    assert!(!report.findings.is_empty());
    let sarif = to_sarif(&report);
    let errors: Vec<String> = validator
        .iter_errors(&sarif)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // And the validator really rejects a broken log, so the check above can fail.
    let mut broken = sarif.clone();
    broken["runs"][0]["results"][0]["level"] = serde_json::json!("catastrophic");
    assert!(!validator.is_valid(&broken));
}

#[test]
fn descriptor_redirects_are_not_file_writes() {
    // Regression: examples/bash-echo's `printf ... >&2` was reported as a file write.
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("a.sh"),
        "echo hi >&2\necho x 2>&1\necho y >/dev/null\necho z > out.txt\nls 2> err.log\necho w &> all.log\n",
    )
    .unwrap();
    let r = scan(d.path(), &ScanContext::default());
    let lines: Vec<usize> = r
        .findings
        .iter()
        .filter(|f| f.rule_id == "plugd-manifest-fs-write")
        .map(|f| f.line)
        .collect();
    assert_eq!(lines, vec![4, 5, 6]);
}
