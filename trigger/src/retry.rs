//! The trigger's retry policy, in one place.
//!
//! | layer | what it absorbs | bound |
//! |---|---|---|
//! | SDK standard retry (exponential backoff, jitter, 50 to 400 ms): [`sdk_retry`], [`sdk_timeouts`] | a blip in `SendMessage` (throttling, 5xx, transport errors) | `ENQUEUE_MAX_ATTEMPTS` (3), `ENQUEUE_ATTEMPT_TIMEOUT_MS` (1 s) per attempt, `ENQUEUE_TIMEOUT_MS` (3 s) in all |
//! | Cognito's retry of the trigger | an invocation that timed out | Cognito's own |
//!
//! No second layer inside the function: the whole invocation has to stay well inside the 5 s
//! Cognito gives a trigger, and Cognito itself retries a trigger that times out. A user the
//! enqueue still misses is logged as `enqueue_failed` and repaired by `ops reconcile`.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;

use crate::config::TriggerConfig;

/// The SDK's retries of `SendMessage`: short backoffs, so that all attempts fit the budget.
pub fn sdk_retry(config: &TriggerConfig) -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(config.enqueue_max_attempts)
        .with_initial_backoff(Duration::from_millis(50))
        .with_max_backoff(Duration::from_millis(400))
}

/// How long the enqueue may take: to connect, per attempt, and in all.
pub fn sdk_timeouts(config: &TriggerConfig) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(config.enqueue_attempt_timeout.min(Duration::from_millis(500)))
        .operation_attempt_timeout(config.enqueue_attempt_timeout)
        .operation_timeout(config.enqueue_timeout)
        .build()
}
