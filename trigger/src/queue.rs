//! The sync queue, as the trigger sees it: one bounded SendMessage.
//!
//! Retries live in the SDK only (standard mode: exponential backoff with jitter on throttling,
//! 5xx and transport errors), bounded by attempts, a per-attempt timeout and an overall timeout,
//! so the whole invocation stays well inside the 5 s Cognito gives a trigger. No second retry
//! layer: there is no time for one, and Cognito itself retries a trigger that times out.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_sqs::error::DisplayErrorContext;
use std::time::Duration;

use crate::config::TriggerConfig;

pub struct SyncQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

/// Why the message could not be enqueued. The text is the SDK's error chain, which names the
/// operation and the failure, never the message body.
#[derive(Debug, thiserror::Error)]
#[error("SendMessage to the sync queue failed: {0}")]
pub struct EnqueueError(String);

impl EnqueueError {
    pub fn new(detail: String) -> Self {
        Self(detail)
    }
}

impl SyncQueue {
    pub async fn connect(config: &TriggerConfig) -> Self {
        let sdk = sdk_config::load(
            RetryConfig::standard()
                .with_max_attempts(config.enqueue_max_attempts)
                .with_initial_backoff(Duration::from_millis(50))
                .with_max_backoff(Duration::from_millis(400)),
            TimeoutConfig::builder()
                .connect_timeout(config.enqueue_attempt_timeout.min(Duration::from_millis(500)))
                .operation_attempt_timeout(config.enqueue_attempt_timeout)
                .operation_timeout(config.enqueue_timeout)
                .build(),
        )
        .await;
        Self {
            client: aws_sdk_sqs::Client::new(&sdk),
            url: config.queue_url.clone(),
        }
    }

    /// Sends `body`, returning the SQS message id.
    pub async fn send(&self, body: String) -> Result<String, EnqueueError> {
        let output = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| EnqueueError(DisplayErrorContext(&e).to_string()))?;
        Ok(output.message_id.unwrap_or_default())
    }
}
