//! SQS helpers shared by the subcommands: checking a queue exists (and reading its ARN and
//! depth); sending in batches is `sync_queue`'s.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::QueueAttributeName;

use crate::aws;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue {url} does not exist (check the URL, the region and the stack's outputs)")]
    DoesNotExist { url: String },
    #[error("{operation} on queue {url} failed: {detail}")]
    Api {
        operation: &'static str,
        url: String,
        detail: String,
    },
}

/// What `GetQueueAttributes` says about a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    pub arn: String,
    /// Messages that can be received now.
    pub visible: u64,
    /// Messages received by someone and not yet deleted or made visible again.
    pub in_flight: u64,
}

impl QueueInfo {
    pub fn total(&self) -> u64 {
        self.visible + self.in_flight
    }
}

/// Reads the queue's ARN and depth; the first call on a queue, so a wrong URL fails here with a
/// message that names it.
pub async fn inspect(sqs: &Client, url: &str) -> Result<QueueInfo, QueueError> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .map_err(|err| {
            if err
                .as_service_error()
                .is_some_and(|e| e.is_queue_does_not_exist())
            {
                QueueError::DoesNotExist { url: url.to_owned() }
            } else {
                QueueError::Api {
                    operation: "GetQueueAttributes",
                    url: url.to_owned(),
                    detail: aws::detail(&err),
                }
            }
        })?;
    let get = |name: QueueAttributeName| attributes.attributes().and_then(|a| a.get(&name)).cloned();
    let count = |name| get(name).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(QueueInfo {
        arn: get(QueueAttributeName::QueueArn).ok_or_else(|| QueueError::Api {
            operation: "GetQueueAttributes",
            url: url.to_owned(),
            detail: "the answer has no QueueArn".into(),
        })?,
        visible: count(QueueAttributeName::ApproximateNumberOfMessages),
        in_flight: count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    })
}

pub use sync_queue::{MAX_BATCH, Outgoing, send_batches};
