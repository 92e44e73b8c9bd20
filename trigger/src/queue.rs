//! The sync queue, as the trigger sees it: one `SendMessage`, bounded as `retry` says.

use aws_sdk_sqs::error::DisplayErrorContext;

use crate::config::TriggerConfig;
use crate::retry;

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
        let sdk = sdk_config::load(retry::sdk_retry(config), retry::sdk_timeouts(config)).await;
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
