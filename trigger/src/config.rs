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

impl TriggerConfig {
    pub fn from_env(env: &dyn Source) -> Result<Self, ConfigError> {
        let ms = |name, default| {
            parsed_or(env, name, "a number of milliseconds", default).map(Duration::from_millis)
        };
        Ok(Self {
            queue_url: required(env, "QUEUE_URL", "the URL of the sync queue")?,
            expected_user_pool_id: optional(env, "USER_POOL_ID"),
            fail_on_enqueue_error: flag_or(env, "FAIL_ON_ENQUEUE_ERROR", false)?,
            enqueue_max_attempts: parsed_or(env, "ENQUEUE_MAX_ATTEMPTS", "a positive integer", 3u32)?.max(1),
            enqueue_attempt_timeout: ms("ENQUEUE_ATTEMPT_TIMEOUT_MS", 1_000)?,
            enqueue_timeout: ms("ENQUEUE_TIMEOUT_MS", 3_000)?,
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

    #[test]
    fn missing_queue_url_is_named() {
        let err = TriggerConfig::from_env(&|_: &str| None).unwrap_err();
        assert!(err.to_string().contains("QUEUE_URL"), "{err}");
    }
}
