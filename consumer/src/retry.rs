//! The consumer's retry policy, in one place: the SDK's attempts and timeouts for one call (a
//! DynamoDB read or write, a Cognito read), the `backon` policy around them, and what SQS does
//! beyond both.
//!
//! | layer | what it absorbs | bound |
//! |---|---|---|
//! | SDK standard retry (exponential backoff, jitter): [`sdk_retry`], [`sdk_timeouts`] | a blip in one call, Cognito's `TooManyRequestsException` included | `DYNAMODB_MAX_ATTEMPTS` (3), 2 s per attempt, 6 s per call |
//! | `backon` (exponential, jitter, 100 ms to 2 s), per call: [`retrying`] | throttling or an outage that outlasts the SDK's attempts; only retryable errors (throttling, 5xx, timeouts) | the invocation's deadline less `DEADLINE_MARGIN_MS`; 8 retries |
//! | SQS redelivery | a record still failing when the invocation ends | the visibility timeout (180 s in the template), then the DLQ after `maxReceiveCount` (5) receives |
//!
//! Each layer works on its own time scale, so they do not multiply: the SDK's milliseconds
//! inside `backon`'s hundreds of milliseconds inside SQS's minutes. An error that retrying
//! cannot fix (validation, a missing table, access denied) skips the first two layers.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use backon::{ExponentialBuilder, Retryable};

/// The SDK's own retries of one request: `max_attempts` in standard mode.
pub fn sdk_retry(max_attempts: u32) -> RetryConfig {
    RetryConfig::standard().with_max_attempts(max_attempts)
}

/// How long one request may take: to connect, per attempt, and for the call with its retries.
pub fn sdk_timeouts() -> TimeoutConfig {
    sdk_config::record_call_timeouts()
}

/// The retries of a put beyond the SDK's. The invocation's deadline bounds the total; the cap
/// on retries is a backstop.
pub fn write_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(8)
        .with_jitter()
}

/// An error that another try may cure.
pub trait Transient: std::fmt::Display {
    fn is_transient(&self) -> bool;
}

impl Transient for tables::WriteError {
    fn is_transient(&self) -> bool {
        self.retryable
    }
}

impl Transient for pool_reader::ReadError {
    fn is_transient(&self) -> bool {
        self.is_retryable()
    }
}

/// Which retry log line and counter a call's retries go to.
#[derive(Clone, Copy, Debug)]
pub enum Service {
    /// `write_retry`, counted as `WriteRetries`.
    DynamoDb,
    /// `cognito_retry`, counted as `CognitoRetries`.
    Cognito,
}

/// Runs `call`, retrying transient errors as [`write_backoff`] says and counting each retry in
/// `retries`; `what` names the call (a table, an operation) in the log line of each retry.
pub async fn retrying<T, E, F, Fut>(
    service: Service,
    what: &'static str,
    retries: &mut u32,
    call: F,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: Transient,
{
    call.retry(write_backoff())
        .when(|err: &E| err.is_transient())
        .notify(|err: &E, wait: Duration| {
            *retries += 1;
            let retry_in_ms = wait.as_millis() as u64;
            match service {
                Service::DynamoDb => {
                    tracing::warn!(event = "write_retry", table = what, retry_in_ms, error = %err)
                }
                Service::Cognito => {
                    tracing::warn!(event = "cognito_retry", operation = what, retry_in_ms, error = %err)
                }
            }
        })
        .await
}
