//! The knobs of DESIGN §2 read from the environment: the line limit and the
//! per-call timeouts.

use std::time::Duration;

use crate::RuntimeError;

/// `OMNIFLOW_PLUGIN_MAX_LINE`: the longest NDJSON line, in bytes, in either direction.
pub const ENV_MAX_LINE: &str = "OMNIFLOW_PLUGIN_MAX_LINE";
/// `OMNIFLOW_EXEC_TIMEOUT`: seconds an `exec` may take.
pub const ENV_EXEC_TIMEOUT: &str = "OMNIFLOW_EXEC_TIMEOUT";
/// `OMNIFLOW_LOG_JSON`: `true` asks plugins for JSON logs on stderr.
pub const ENV_LOG_JSON: &str = "OMNIFLOW_LOG_JSON";
/// `PLUGIN_LOG_LEVEL`: the plugins' log level.
pub const ENV_LOG_LEVEL: &str = "PLUGIN_LOG_LEVEL";

/// The default line limit of seed 000: 128 KiB.
pub const DEFAULT_MAX_LINE: usize = 131_072;
/// The default `exec` timeout.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(10);
/// The default time a plugin gets to exit after `shutdown` before its group is killed.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Lines shorter than this cannot carry a request envelope, so such a limit is a typo.
const MIN_MAX_LINE: usize = 64;
/// Beyond this the "guard" would no longer guard anything.
const MAX_MAX_LINE: usize = 64 * 1024 * 1024;
/// A day: longer timeouts are typos, and `Duration` arithmetic stays far from overflow.
const MAX_TIMEOUT_SECS: f64 = 86_400.0;

/// Size limits on the NDJSON stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest line in bytes, without its newline (`OMNIFLOW_PLUGIN_MAX_LINE`).
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_line: DEFAULT_MAX_LINE,
        }
    }
}

impl Limits {
    /// Reads `OMNIFLOW_PLUGIN_MAX_LINE`; an unusable value is logged and the
    /// default used, because a typo in the environment must not stop every plugin.
    pub fn from_env() -> Limits {
        let value = std::env::var(ENV_MAX_LINE).ok();
        Limits::parse(value.as_deref()).unwrap_or_else(|err| {
            tracing::warn!("{err}; using {DEFAULT_MAX_LINE}");
            Limits::default()
        })
    }

    /// Parses a value of `OMNIFLOW_PLUGIN_MAX_LINE` (`None`: unset, the default).
    pub fn parse(value: Option<&str>) -> Result<Limits, RuntimeError> {
        let Some(raw) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(Limits::default());
        };
        let invalid = |reason: String| RuntimeError::InvalidSetting {
            name: ENV_MAX_LINE,
            value: raw.to_string(),
            reason,
        };
        let max_line: usize = raw
            .parse()
            .map_err(|_| invalid("expected a whole number of bytes, e.g. 131072".into()))?;
        if !(MIN_MAX_LINE..=MAX_MAX_LINE).contains(&max_line) {
            return Err(invalid(format!(
                "must be between {MIN_MAX_LINE} and {MAX_MAX_LINE} bytes"
            )));
        }
        Ok(Limits { max_line })
    }
}

/// Parses a value of `OMNIFLOW_EXEC_TIMEOUT`: seconds, fractions allowed (`None`: the default).
pub fn parse_exec_timeout(value: Option<&str>) -> Result<Duration, RuntimeError> {
    let Some(raw) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(DEFAULT_EXEC_TIMEOUT);
    };
    let secs: f64 = raw
        .strip_suffix('s')
        .unwrap_or(raw)
        .trim()
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= MAX_TIMEOUT_SECS)
        .ok_or_else(|| RuntimeError::InvalidSetting {
            name: ENV_EXEC_TIMEOUT,
            value: raw.to_string(),
            reason: format!(
                "expected seconds greater than 0 and at most {MAX_TIMEOUT_SECS}, e.g. 10 or 2.5"
            ),
        })?;
    Ok(Duration::from_secs_f64(secs))
}

/// How [`crate::call_once`] runs one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallOptions {
    /// How long the `exec` may take (`OMNIFLOW_EXEC_TIMEOUT`, default 10 s).
    pub timeout: Duration,
    /// How long the start-up `health` probe may take, interpreter start included.
    pub health_timeout: Duration,
    /// How long the plugin gets to exit after `shutdown` before its group is killed.
    pub shutdown_grace: Duration,
    /// The line limit.
    pub limits: Limits,
}

impl Default for CallOptions {
    fn default() -> CallOptions {
        CallOptions {
            timeout: DEFAULT_EXEC_TIMEOUT,
            health_timeout: DEFAULT_EXEC_TIMEOUT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            limits: Limits::default(),
        }
    }
}

impl CallOptions {
    /// Reads `OMNIFLOW_EXEC_TIMEOUT` and `OMNIFLOW_PLUGIN_MAX_LINE`; unusable values
    /// are logged and replaced by the defaults. The health probe gets the same
    /// timeout as the call: a cold interpreter start can take a while.
    pub fn from_env() -> CallOptions {
        let value = std::env::var(ENV_EXEC_TIMEOUT).ok();
        let timeout = parse_exec_timeout(value.as_deref()).unwrap_or_else(|err| {
            tracing::warn!("{err}; using {} s", DEFAULT_EXEC_TIMEOUT.as_secs());
            DEFAULT_EXEC_TIMEOUT
        });
        CallOptions {
            timeout,
            health_timeout: timeout,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            limits: Limits::from_env(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_line_parsing() {
        assert_eq!(Limits::parse(None).unwrap().max_line, DEFAULT_MAX_LINE);
        assert_eq!(Limits::parse(Some(" ")).unwrap().max_line, DEFAULT_MAX_LINE);
        assert_eq!(Limits::parse(Some("4096")).unwrap().max_line, 4096);
        for bad in ["-1", "0", "12", "1e6", "lots", "99999999999999999999999"] {
            let err = Limits::parse(Some(bad)).unwrap_err().to_string();
            assert!(err.contains(ENV_MAX_LINE) && err.contains(bad), "{err}");
        }
    }

    #[test]
    fn exec_timeout_parsing() {
        assert_eq!(parse_exec_timeout(None).unwrap(), DEFAULT_EXEC_TIMEOUT);
        assert_eq!(
            parse_exec_timeout(Some("2.5")).unwrap(),
            Duration::from_millis(2500)
        );
        assert_eq!(
            parse_exec_timeout(Some("30s")).unwrap(),
            Duration::from_secs(30)
        );
        for bad in ["0", "-3", "NaN", "inf", "1e9", "ten"] {
            let err = parse_exec_timeout(Some(bad)).unwrap_err().to_string();
            assert!(err.contains(ENV_EXEC_TIMEOUT), "{err}");
        }
    }
}
