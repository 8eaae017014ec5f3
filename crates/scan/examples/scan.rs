//! `scan [--json|--sarif] DIR`: runs the scanner on a directory (used by benches/bandit_compare.py;
//! the user-facing command is `plugd scan`).

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.iter().find(|a| !a.starts_with("--")) else {
        eprintln!("usage: scan [--json|--sarif] DIR");
        return ExitCode::from(2);
    };
    let report = plugd_scan::scan_dir(
        Path::new(dir),
        &plugd_scan::ScanContext::default(),
        &plugd_scan::ScanOptions::default(),
    );
    if args.iter().any(|a| a == "--sarif") {
        println!("{}", plugd_scan::to_sarif(&report));
    } else if args.iter().any(|a| a == "--json") {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        for f in &report.findings {
            println!(
                "{:?} {} {}:{} {}",
                f.severity, f.rule_id, f.file, f.line, f.message
            );
        }
        println!("{} files, {:?}", report.files_scanned, report.duration);
    }
    ExitCode::SUCCESS
}
