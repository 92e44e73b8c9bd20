//! Configuration from environment variables, with errors that name the variable.
//!
//! Readers take a lookup function rather than touching the process environment directly, so
//! tests pass a map and never mutate global state.

use std::str::FromStr;

/// A configuration problem, naming the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is not set (it must be {expected})")]
    Missing {
        name: &'static str,
        expected: &'static str,
    },
    #[error("environment variable {name} is invalid: expected {expected}")]
    Invalid {
        name: &'static str,
        expected: &'static str,
    },
}

/// Where configuration comes from: the process environment in production, a map in tests.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Source for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// A non-empty variable. `expected` says what it should hold, for the error message.
pub fn required(
    source: &dyn Source,
    name: &'static str,
    expected: &'static str,
) -> Result<String, ConfigError> {
    optional(source, name).ok_or(ConfigError::Missing { name, expected })
}

/// A variable, with empty or blank treated as unset (CloudFormation often renders "unset" as "").
pub fn optional(source: &dyn Source, name: &str) -> Option<String> {
    source
        .get(name)
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// A parsed variable, `default` when unset.
pub fn parsed_or<T: FromStr>(
    source: &dyn Source,
    name: &'static str,
    expected: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match optional(source, name) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| ConfigError::Invalid { name, expected }),
    }
}

/// A whole number within `range`, `default` when unset.
pub fn integer_in(
    source: &dyn Source,
    name: &'static str,
    expected: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let value: u64 = parsed_or(source, name, expected, default)?;
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::Invalid { name, expected })
    }
}

/// An SQS-driven function's timing: its own timeout (`FUNCTION_TIMEOUT_SECONDS`, which the
/// template sets beside `Timeout`: Lambda tells a function its deadline per invocation only, so
/// a margin that could never work is refused at start-up) and the time it keeps before each
/// invocation's deadline to report its batch (`DEADLINE_MARGIN_MS`, default 1 s, less than half
/// the timeout).
pub fn function_timing(
    source: &dyn Source,
) -> Result<(std::time::Duration, std::time::Duration), ConfigError> {
    use std::time::Duration;
    const TIMEOUT: &str = "the function's timeout in seconds, 1 to 900 (the template sets it)";
    if optional(source, "FUNCTION_TIMEOUT_SECONDS").is_none() {
        return Err(ConfigError::Missing {
            name: "FUNCTION_TIMEOUT_SECONDS",
            expected: TIMEOUT,
        });
    }
    let timeout = Duration::from_secs(integer_in(
        source,
        "FUNCTION_TIMEOUT_SECONDS",
        TIMEOUT,
        0,
        1..=900,
    )?);
    let margin = Duration::from_millis(integer_in(
        source,
        "DEADLINE_MARGIN_MS",
        "a number of milliseconds, at least 100 (to report the results) and less than half of \
         FUNCTION_TIMEOUT_SECONDS (the records need the rest)",
        1_000,
        100..=u64::MAX,
    )?);
    if margin >= timeout / 2 {
        return Err(ConfigError::Invalid {
            name: "DEADLINE_MARGIN_MS",
            expected: "less than half of FUNCTION_TIMEOUT_SECONDS (the records need the rest)",
        });
    }
    Ok((timeout, margin))
}

/// A function's own configuration and its metrics' (`METRICS_NAMESPACE`, `METRICS_SERVICE`),
/// read at init. A bad setting is logged as `config_invalid`, naming the variable, and returned:
/// Lambda reports it as the init error.
pub fn load_at_init<C>(
    load: impl FnOnce(&dyn Source) -> Result<C, ConfigError>,
) -> Result<(C, crate::metrics::MetricsConfig), ConfigError> {
    let env = ProcessEnv;
    load(&env)
        .and_then(|config| Ok((config, crate::metrics::MetricsConfig::from_env(&env)?)))
        .inspect_err(|err| tracing::error!(event = "config_invalid", error = %err))
}

/// A `true`/`false` variable, `default` when unset.
pub fn flag_or(source: &dyn Source, name: &'static str, default: bool) -> Result<bool, ConfigError> {
    match optional(source, name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(_) => Err(ConfigError::Invalid {
            name,
            expected: "true or false",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Source {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    #[test]
    fn missing_variable_is_named_in_the_error() {
        let err = required(&env(&[]), "QUEUE_URL", "the URL of the sync queue").unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable QUEUE_URL is not set (it must be the URL of the sync queue)"
        );
    }

    #[test]
    fn blank_counts_as_unset() {
        assert_eq!(optional(&env(&[("X", "  ")]), "X"), None);
        assert!(required(&env(&[("X", "")]), "X", "x").is_err());
        assert_eq!(required(&env(&[("X", " v ")]), "X", "x").unwrap(), "v");
    }

    #[test]
    fn parsed_values_and_defaults() {
        assert_eq!(parsed_or(&env(&[]), "N", "a number", 7u32).unwrap(), 7);
        assert_eq!(
            parsed_or(&env(&[("N", "12")]), "N", "a number", 7u32).unwrap(),
            12
        );
        let err = parsed_or(&env(&[("N", "twelve")]), "N", "a positive integer", 7u32).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable N is invalid: expected a positive integer"
        );
    }

    #[test]
    fn flags_accept_only_true_or_false() {
        assert!(!flag_or(&env(&[]), "F", false).unwrap());
        assert!(flag_or(&env(&[("F", "TRUE")]), "F", false).unwrap());
        assert!(flag_or(&env(&[("F", "yes")]), "F", false).is_err());
    }
}
