//! Defence in depth for the strings the store turns into directory names.
//!
//! The host validates ids (kebab-case) and versions (semver) long before they reach the store,
//! but the store is the one component that builds paths from them, so it refuses anything that
//! could leave `$PLUGD_HOME/store` or be confused with the store's own bookkeeping, whatever the
//! caller did.

use crate::StoreError;

/// Longest name a Linux filesystem accepts for one path component (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// Checks that `value` can be used as one directory name under `$PLUGD_HOME/store`.
///
/// Refused: the empty string, anything containing `/`, `\`, `..`, NUL or another control
/// character, a leading `.` (hidden names are reserved for the store itself and `.`/`..` are not
/// names at all) and anything longer than `NAME_MAX` bytes.
pub(crate) fn check_component(what: &'static str, value: &str) -> Result<(), StoreError> {
    let reason = if value.is_empty() {
        Some("it is empty")
    } else if value.len() > NAME_MAX {
        Some("it is longer than 255 bytes")
    } else if value.contains('/') || value.contains('\\') {
        Some("it contains a path separator")
    } else if value.contains("..") {
        Some("it contains `..`")
    } else if value.starts_with('.') {
        Some("it starts with `.`")
    } else if value.chars().any(char::is_control) {
        Some("it contains a NUL or control character")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StoreError::InvalidName {
            what,
            value: value.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::check_component;

    #[test]
    fn accepts_ordinary_ids_and_versions() {
        for ok in [
            "hello-world",
            "a",
            "1.0.0",
            "1.0.0-rc.1+build.5",
            "x_y",
            "ünïcode",
        ] {
            check_component("plugin id", ok).unwrap();
        }
    }

    #[test]
    fn refuses_everything_that_could_escape_or_confuse() {
        let long = "a".repeat(256);
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "x/..",
            "a/b",
            "/abs",
            "a\\b",
            "a\0b",
            "1..2",
            ".hidden",
            "tab\there",
            "new\nline",
            &long,
        ] {
            let err = check_component("version", bad).unwrap_err();
            assert!(
                err.to_string().contains("invalid version"),
                "{bad:?} gave {err}"
            );
        }
    }
}
