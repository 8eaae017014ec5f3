//! Offline matching of declared dependencies against an OSV-format advisory file.
//!
//! Only the OSV fields needed for matching are read (`id`, `summary`, `affected[].package`,
//! `affected[].versions`, `affected[].ranges[].events`). Versions are compared component by
//! component numerically, which handles PEP 440 and npm release versions alike; pre-release tags
//! compare as text after the numbers (good enough for advisories, which name releases).

use std::cmp::Ordering;
use std::path::Path;

use serde::Deserialize;

use crate::{Confidence, Finding, ScanContext, Severity};

/// Why the advisory file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AdvisoryError {
    /// The file could not be read.
    #[error("cannot read advisory file {path}: {source}; check the path configured for advisories")]
    Read {
        /// The configured path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not OSV JSON.
    #[error(
        "advisory file {path} is not OSV JSON (an advisory, an array, or {{\"vulns\": [...]}}): {source}"
    )]
    Parse {
        /// The configured path.
        path: String,
        /// The JSON error, with line and column.
        #[source]
        source: serde_json::Error,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OsvFile {
    Wrapped { vulns: Vec<Osv> },
    Many(Vec<Osv>),
    One(Box<Osv>),
}

#[derive(Deserialize)]
struct Osv {
    id: String,
    #[serde(default)]
    summary: String,
    #[serde(default)]
    affected: Vec<Affected>,
}

#[derive(Deserialize)]
struct Affected {
    package: Pkg,
    #[serde(default)]
    versions: Vec<String>,
    #[serde(default)]
    ranges: Vec<Range>,
}

#[derive(Deserialize)]
struct Pkg {
    name: String,
    #[serde(default)]
    ecosystem: String,
}

#[derive(Deserialize)]
struct Range {
    #[serde(default)]
    events: Vec<serde_json::Map<String, serde_json::Value>>,
}

fn load(path: &Path) -> Result<Vec<Osv>, AdvisoryError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| AdvisoryError::Read {
        path: p.clone(),
        source,
    })?;
    let f: OsvFile = serde_json::from_slice(&bytes)
        .map_err(|source| AdvisoryError::Parse { path: p, source })?;
    Ok(match f {
        OsvFile::Wrapped { vulns } | OsvFile::Many(vulns) => vulns,
        OsvFile::One(v) => vec![*v],
    })
}

/// PEP 503 normalisation: case and `-`/`_`/`.` do not distinguish Python packages.
fn norm(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace(['_', '.'], "-")
}

/// Splits `requests==2.19.0` into the name and, if pinned exactly, the version.
fn split_req(req: &str) -> (String, Option<String>) {
    let req = req.split(';').next().unwrap_or(req).trim();
    let end = req
        .find(|c: char| "=<>!~[ ".contains(c))
        .unwrap_or(req.len());
    let name = &req[..end];
    let pinned = req
        .find("==")
        .map(|i| req[i + 2..].trim().trim_start_matches('=').to_string());
    (norm(name), pinned)
}

pub(crate) fn cmp_versions(a: &str, b: &str) -> Ordering {
    let parts = |s: &str| {
        s.trim_start_matches('v')
            .split(['.', '-', '+'])
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let (pa, pb) = (parts(a), parts(b));
    for i in 0..pa.len().max(pb.len()) {
        let x = pa.get(i).map_or("0", String::as_str);
        let y = pb.get(i).map_or("0", String::as_str);
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

fn affected(a: &Affected, version: &str) -> bool {
    if a.versions
        .iter()
        .any(|v| cmp_versions(v, version) == Ordering::Equal)
    {
        return true;
    }
    a.ranges.iter().any(|r| {
        // OSV events are ordered: introduced/fixed pairs; last_affected is inclusive.
        let mut inside = false;
        for e in &r.events {
            let get = |k: &str| e.get(k).and_then(|v| v.as_str());
            if let Some(i) = get("introduced")
                && (i == "0" || cmp_versions(version, i) != Ordering::Less)
            {
                inside = true;
            }
            if let Some(f) = get("fixed")
                && cmp_versions(version, f) != Ordering::Less
            {
                inside = false;
            }
            if let Some(l) = get("last_affected")
                && cmp_versions(version, l) == Ordering::Greater
            {
                inside = false;
            }
        }
        inside
    })
}

pub(crate) fn check(path: &Path, ctx: &ScanContext, out: &mut Vec<Finding>) {
    let vulns = match load(path) {
        Ok(v) => v,
        Err(e) => {
            out.push(Finding {
                rule_id: "plugd-advisory-file".into(),
                severity: Severity::Low,
                confidence: Confidence::High,
                file: path.display().to_string(),
                line: 0,
                column: 0,
                message: e.to_string(),
                snippet: String::new(),
            });
            return;
        }
    };
    let deps = ctx
        .python_deps
        .iter()
        .map(|r| (split_req(r), "PyPI", r.clone()))
        .chain(ctx.npm_deps.iter().map(|(n, v)| {
            (
                (
                    n.trim().to_string(),
                    Some(v.trim_start_matches(['^', '~', '=']).to_string()),
                ),
                "npm",
                format!("{n}@{v}"),
            )
        }));
    for ((name, version), eco, shown) in deps {
        for v in &vulns {
            for a in &v.affected {
                let same_eco =
                    a.package.ecosystem.is_empty() || a.package.ecosystem.eq_ignore_ascii_case(eco);
                let same_name = if eco == "PyPI" {
                    norm(&a.package.name) == name
                } else {
                    a.package.name == name
                };
                if !(same_eco && same_name) {
                    continue;
                }
                let (hit, confidence) = match &version {
                    Some(ver) => (affected(a, ver), Confidence::High),
                    // Unpinned: the resolver may pick an affected version.
                    None => (true, Confidence::Low),
                };
                if hit {
                    out.push(Finding {
                        rule_id: "plugd-dep-advisory".into(),
                        severity: Severity::High,
                        confidence,
                        file: "manifest".into(),
                        line: 0,
                        column: 0,
                        message: format!(
                            "dependency {shown} is affected by {}: {}; upgrade to a fixed version",
                            v.id, v.summary
                        ),
                        snippet: shown.clone(),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(cmp_versions("2.10.0", "2.9.1"), Ordering::Greater);
        assert_eq!(cmp_versions("1.0", "1.0.0"), Ordering::Equal);
        assert_eq!(
            split_req("Py_YAML==5.3 ; python_version>'3'"),
            ("py-yaml".into(), Some("5.3".into()))
        );
        assert_eq!(split_req("flask>=2").1, None);
    }
}
