//! The trigger's configuration (see the README's configuration table).

use std::time::Duration;

use shared::config::{ConfigError, Source, flag_or, optional, parsed_or, required};

#[derive(Debug, Clone)]
pub struct TriggerConfig {
    /// The SQS queue the confirmation is enqueued to.
    pub queue_url: String,
    /// When set, events from any other user pool are refused. Unset when the stack creates the
    /// pool: that pool references this function, so the function cannot reference the pool
    /// without a circular dependency (see the README, "Where the user pool check lives").
    pub expected_user_pool_id: Option<String>,
    /// Fail the invocation (and so the user's confirmation call) when the enqueue fails,
    /// instead of logging `enqueue_failed` and letting the sign-up succeed.
    pub fail_on_enqueue_error: bool,
    /// Attempts per SendMessage, including the first.
    pub enqueue_max_attempts: u32,
    /// Time allowed for one SendMessage attempt.
    pub enqueue_attempt_timeout: Duration,
    /// Time allowed for the whole enqueue, retries included; well inside Cognito's 5 s.
    pub enqueue_timeout: Duration,
}

/// The longest `ENQUEUE_TIMEOUT_MS` allowed. Cognito abandons a trigger after 5 s (and the
/// template's function timeout is 5 s), and after the enqueue gives up the trigger still has to
/// log `enqueue_failed`, emit its metrics and answer: a second is kept for that, and for a cold
/// start's first connection.
pub const MAX_ENQUEUE_TIMEOUT: Duration = Duration::from_millis(4_000);

impl TriggerConfig {
    pub fn from_env(env: &dyn Source) -> Result<Self, ConfigError> {
        const MS: &str = "a number of milliseconds from 1 to 4000 (Cognito abandons a trigger after 5 s)";
        let ms = |name, default| {
            let value: u64 = parsed_or(env, name, MS, default)?;
            if value == 0 || Duration::from_millis(value) > MAX_ENQUEUE_TIMEOUT {
                return Err(ConfigError::Invalid { name, expected: MS });
            }
            Ok(Duration::from_millis(value))
        };
        let enqueue_attempt_timeout = ms("ENQUEUE_ATTEMPT_TIMEOUT_MS", 1_000)?;
        let enqueue_timeout = ms("ENQUEUE_TIMEOUT_MS", 3_000)?;
        if enqueue_attempt_timeout > enqueue_timeout {
            return Err(ConfigError::Invalid {
                name: "ENQUEUE_ATTEMPT_TIMEOUT_MS",
                expected: "at most ENQUEUE_TIMEOUT_MS (one attempt cannot outlast the whole enqueue)",
            });
        }
        let enqueue_max_attempts = parsed_or(env, "ENQUEUE_MAX_ATTEMPTS", "an integer from 1 to 10", 3u32)?;
        if !(1..=10).contains(&enqueue_max_attempts) {
            return Err(ConfigError::Invalid {
                name: "ENQUEUE_MAX_ATTEMPTS",
                expected: "an integer from 1 to 10",
            });
        }
        Ok(Self {
            queue_url: required(env, "QUEUE_URL", "the URL of the sync queue")?,
            expected_user_pool_id: optional(env, "USER_POOL_ID"),
            fail_on_enqueue_error: flag_or(env, "FAIL_ON_ENQUEUE_ERROR", false)?,
            enqueue_max_attempts,
            enqueue_attempt_timeout,
            enqueue_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_stay_well_inside_cognitos_five_seconds() {
        let env = |name: &str| (name == "QUEUE_URL").then(|| "https://sqs/q".to_owned());
        let config = TriggerConfig::from_env(&env).unwrap();
        assert_eq!(config.enqueue_timeout, Duration::from_secs(3));
        assert_eq!(config.enqueue_max_attempts, 3);
        assert!(!config.fail_on_enqueue_error);
        assert_eq!(config.expected_user_pool_id, None);
    }

    fn with(pairs: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        let pairs = pairs.to_vec();
        move |name: &str| {
            if name == "QUEUE_URL" {
                return Some("https://sqs/q".to_owned());
            }
            pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn settings_that_cannot_work_stop_start_up_naming_the_variable() {
        let refused = [
            ("ENQUEUE_TIMEOUT_MS", "5000"),
            ("ENQUEUE_TIMEOUT_MS", "4001"),
            ("ENQUEUE_TIMEOUT_MS", "0"),
            ("ENQUEUE_ATTEMPT_TIMEOUT_MS", "0"),
            ("ENQUEUE_ATTEMPT_TIMEOUT_MS", "6000"),
            ("ENQUEUE_MAX_ATTEMPTS", "0"),
            ("ENQUEUE_MAX_ATTEMPTS", "11"),
            ("ENQUEUE_MAX_ATTEMPTS", "-1"),
        ];
        for (name, value) in refused {
            let err = TriggerConfig::from_env(&with(&[(name, value)])).unwrap_err();
            assert!(err.to_string().contains(name), "{name}={value}: {err}");
        }
        let err = TriggerConfig::from_env(&with(&[
            ("ENQUEUE_TIMEOUT_MS", "1000"),
            ("ENQUEUE_ATTEMPT_TIMEOUT_MS", "2000"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("ENQUEUE_ATTEMPT_TIMEOUT_MS"), "{err}");
        let ok = TriggerConfig::from_env(&with(&[
            ("ENQUEUE_TIMEOUT_MS", "4000"),
            ("ENQUEUE_MAX_ATTEMPTS", "1"),
        ]))
        .unwrap();
        assert_eq!(ok.enqueue_timeout, MAX_ENQUEUE_TIMEOUT);
        assert_eq!(ok.enqueue_max_attempts, 1);
    }

    #[test]
    fn missing_queue_url_is_named() {
        let err = TriggerConfig::from_env(&|_: &str| None).unwrap_err();
        assert!(err.to_string().contains("QUEUE_URL"), "{err}");
    }
}
