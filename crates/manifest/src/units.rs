//! Sizes, durations and CPU shares as the dialects write them (`"256m"`, `"256MB"`, `268435456`,
//! `"30s"`, `30000` milliseconds, `"0.5"`, `"500m"`).
//!
//! Hand-written because the accepted forms are the union of Docker's, Kubernetes' and the seeds'
//! spellings; crates such as `bytesize` or `humantime` each accept only their own and would
//! still need a wrapper for bare numbers whose unit depends on the field.

use std::time::Duration;

use serde_json::Value;

const KIB: f64 = 1024.0;
/// Smallest memory limit accepted: below this no interpreter starts.
pub const MIN_MEMORY: u64 = 1024 * 1024;
/// Largest memory limit accepted.
pub const MAX_MEMORY: u64 = 1024 * 1024 * 1024 * 1024;
/// Longest duration accepted.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// Splits `"12.5 MB"` into `(12.5, "mb")`.
fn number_and_unit(s: &str) -> Option<(f64, String)> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return None;
    }
    let n: f64 = num.parse().ok()?;
    Some((n, unit.trim().to_ascii_lowercase()))
}

/// Memory in bytes. Units are binary whatever their spelling (`256MB` = `256m` = `256MiB`), as
/// in Docker and in the seeds' own size maps; a bare number is bytes.
pub fn memory(v: &Value) -> Result<u64, String> {
    let help = "write bytes (268435456) or a size with a unit: k, m, g (or KB/KiB, MB/MiB, GB/GiB), e.g. \"256m\"";
    let bytes = match v {
        Value::Number(n) => match n.as_u64() {
            Some(b) => b as f64,
            None => return Err(format!("`{n}` is not a whole number of bytes; {help}")),
        },
        Value::String(s) => {
            let Some((n, unit)) = number_and_unit(s) else {
                return Err(format!("`{s}` is not a size; {help}"));
            };
            let factor = match unit.as_str() {
                "" | "b" => 1.0,
                "k" | "kb" | "kib" => KIB,
                "m" | "mb" | "mib" => KIB * KIB,
                "g" | "gb" | "gib" => KIB * KIB * KIB,
                _ => return Err(format!("`{s}` has an unknown unit `{unit}`; {help}")),
            };
            n * factor
        }
        other => {
            return Err(format!(
                "expected a size, found {}; {help}",
                crate::read::describe(other)
            ));
        }
    };
    let bytes = bytes.round();
    if bytes < MIN_MEMORY as f64 {
        return Err(format!(
            "{bytes} bytes is too little to run anything; give at least 1m"
        ));
    }
    if bytes > MAX_MEMORY as f64 {
        return Err("is more than 1 TiB; give a realistic limit such as \"512m\"".to_string());
    }
    Ok(bytes as u64)
}

/// The unit of a bare number, which differs by field (Stage7 writes milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareUnit {
    Seconds,
    Millis,
}

/// A duration: a bare number in `bare` units, or text with a unit (`ms`, `s`, `m`, `h`).
/// Rounded to whole milliseconds, which is what the model stores.
pub fn duration(v: &Value, bare: BareUnit) -> Result<Duration, String> {
    let bare_name = match bare {
        BareUnit::Seconds => "seconds",
        BareUnit::Millis => "milliseconds",
    };
    let help =
        format!("write a number of {bare_name} or text with a unit: ms, s, m or h, e.g. \"30s\"");
    let millis = match v {
        Value::Number(n) => {
            let Some(x) = n.as_f64() else {
                return Err(format!("`{n}` is not a duration; {help}"));
            };
            match bare {
                BareUnit::Seconds => x * 1000.0,
                BareUnit::Millis => x,
            }
        }
        Value::String(s) => {
            let Some((n, unit)) = number_and_unit(s) else {
                return Err(format!("`{s}` is not a duration; {help}"));
            };
            let factor = match unit.as_str() {
                "" => match bare {
                    BareUnit::Seconds => 1000.0,
                    BareUnit::Millis => 1.0,
                },
                "ms" => 1.0,
                "s" | "sec" | "secs" | "second" | "seconds" => 1000.0,
                "m" | "min" | "mins" | "minute" | "minutes" => 60_000.0,
                "h" | "hour" | "hours" => 3_600_000.0,
                _ => return Err(format!("`{s}` has an unknown unit `{unit}`; {help}")),
            };
            n * factor
        }
        other => {
            return Err(format!(
                "expected a duration, found {}; {help}",
                crate::read::describe(other)
            ));
        }
    };
    let millis = millis.round();
    if millis < 1.0 {
        return Err(format!("must be longer than zero; {help}"));
    }
    if millis > MAX_DURATION.as_millis() as f64 {
        return Err("is longer than 24 hours".to_string());
    }
    Ok(Duration::from_millis(millis as u64))
}

/// A CPU share in cores: a number, its text, or Kubernetes millicores (`"500m"`).
pub fn cpu(v: &Value) -> Result<f64, String> {
    let help = "write a number of cores such as 0.5 or 2, or millicores such as \"500m\"";
    let cores = match v {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => match number_and_unit(s) {
            Some((n, unit)) if unit.is_empty() => n,
            Some((n, unit)) if unit == "m" => n / 1000.0,
            _ => return Err(format!("`{s}` is not a CPU share; {help}")),
        },
        other => {
            return Err(format!(
                "expected a CPU share, found {}; {help}",
                crate::read::describe(other)
            ));
        }
    };
    if !(cores > 0.0 && cores <= 1024.0) {
        return Err(format!(
            "must be more than 0 and at most 1024 cores; {help}"
        ));
    }
    Ok(cores)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn memory_spellings() {
        let mib = 1024 * 1024;
        assert_eq!(memory(&json!("256m")), Ok(256 * mib));
        assert_eq!(memory(&json!("256MB")), Ok(256 * mib));
        assert_eq!(memory(&json!("256 MiB")), Ok(256 * mib));
        assert_eq!(memory(&json!("1g")), Ok(1024 * mib));
        assert_eq!(memory(&json!("0.5G")), Ok(512 * mib));
        assert_eq!(memory(&json!(268435456)), Ok(256 * mib));
        assert_eq!(memory(&json!("268435456")), Ok(256 * mib));
    }

    #[test]
    fn bad_memory_is_explained() {
        assert!(
            memory(&json!("256 parsecs"))
                .unwrap_err()
                .contains("unknown unit `parsecs`")
        );
        assert!(
            memory(&json!("lots"))
                .unwrap_err()
                .contains("is not a size")
        );
        assert!(memory(&json!(".5m")).unwrap_err().contains("is not a size"));
        assert!(
            memory(&json!(-5))
                .unwrap_err()
                .contains("not a whole number")
        );
        assert!(
            memory(&json!(1.5))
                .unwrap_err()
                .contains("not a whole number")
        );
        assert!(memory(&json!("12k")).unwrap_err().contains("too little"));
        assert!(memory(&json!("99999g")).unwrap_err().contains("1 TiB"));
        assert!(
            memory(&json!(true))
                .unwrap_err()
                .contains("found true/false")
        );
        assert!(memory(&json!("1e9")).is_err());
    }

    #[test]
    fn durations_by_field_unit() {
        assert_eq!(
            duration(&json!(30), BareUnit::Seconds),
            Ok(Duration::from_secs(30))
        );
        assert_eq!(
            duration(&json!(30000), BareUnit::Millis),
            Ok(Duration::from_secs(30))
        );
        assert_eq!(
            duration(&json!("30s"), BareUnit::Millis),
            Ok(Duration::from_secs(30))
        );
        assert_eq!(
            duration(&json!("1.5s"), BareUnit::Seconds),
            Ok(Duration::from_millis(1500))
        );
        assert_eq!(
            duration(&json!("250ms"), BareUnit::Seconds),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(
            duration(&json!("2m"), BareUnit::Seconds),
            Ok(Duration::from_secs(120))
        );
        assert_eq!(
            duration(&json!("1h"), BareUnit::Seconds),
            Ok(Duration::from_secs(3600))
        );
        assert_eq!(
            duration(&json!("45"), BareUnit::Seconds),
            Ok(Duration::from_secs(45))
        );
    }

    #[test]
    fn bad_durations_are_explained() {
        assert!(
            duration(&json!("30 fortnights"), BareUnit::Seconds)
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(
            duration(&json!(0), BareUnit::Seconds)
                .unwrap_err()
                .contains("longer than zero")
        );
        assert!(
            duration(&json!("0.1ms"), BareUnit::Seconds)
                .unwrap_err()
                .contains("longer than zero")
        );
        assert!(
            duration(&json!(-3), BareUnit::Seconds)
                .unwrap_err()
                .contains("longer than zero")
        );
        assert!(
            duration(&json!("48h"), BareUnit::Seconds)
                .unwrap_err()
                .contains("24 hours")
        );
        assert!(
            duration(&json!(1e300), BareUnit::Seconds)
                .unwrap_err()
                .contains("24 hours")
        );
        assert!(
            duration(&json!([]), BareUnit::Seconds)
                .unwrap_err()
                .contains("found a list")
        );
    }

    #[test]
    fn cpu_shares() {
        assert_eq!(cpu(&json!(0.5)), Ok(0.5));
        assert_eq!(cpu(&json!("0.5")), Ok(0.5));
        assert_eq!(cpu(&json!("500m")), Ok(0.5));
        assert_eq!(cpu(&json!(2)), Ok(2.0));
        assert!(cpu(&json!(0)).is_err());
        assert!(cpu(&json!(-1)).is_err());
        assert!(cpu(&json!("half")).is_err());
        assert!(cpu(&json!("2 cores")).is_err());
        assert!(cpu(&json!(5000)).is_err());
    }
}
