//! SQS helpers shared by the subcommands: checking a queue exists (and reading its ARN and
//! depth), and sending bodies in batches.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};

use crate::aws;

/// SQS takes at most 10 entries per batch call.
pub const MAX_BATCH: usize = 10;
/// ... and at most this many bytes in all: the sum of the entries' bodies (and message
/// attributes, which these calls do not send). Over it, `SendMessageBatch` fails as a whole
/// (`BatchRequestTooLong`), so a page of large users must be split by size as well as by count.
pub const MAX_BATCH_BYTES: usize = 1_048_576;

/// Splits messages of these sizes (bytes) into consecutive batches of at most [`MAX_BATCH`]
/// entries and [`MAX_BATCH_BYTES`] bytes. A message larger than the limit on its own goes alone,
/// so that SQS refuses that one entry and no other.
pub fn plan_batches(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut batches = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, &size) in sizes.iter().enumerate() {
        let full = i - start == MAX_BATCH || (i > start && bytes + size > MAX_BATCH_BYTES);
        if full {
            batches.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        batches.push(start..sizes.len());
    }
    batches
}

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

/// One message to send, with a label to report it by (a `sub`, never PII).
pub struct Outgoing {
    pub label: String,
    pub body: String,
}

/// What a [`send_batches`] did: how many SQS accepted, and the labels it refused, with why.
#[derive(Debug, Default)]
pub struct Sent {
    pub accepted: usize,
    pub refused: Vec<(String, String)>,
}

/// Sends the messages with `SendMessageBatch`, batched by [`plan_batches`]. An entry SQS refuses
/// is reported by its label, not retried, and the other entries go on: the caller reports and
/// exits non-zero. A call that fails as a whole counts all its entries as refused.
pub async fn send_batches(sqs: &Client, url: &str, messages: &[Outgoing]) -> Sent {
    let mut sent = Sent::default();
    let sizes: Vec<usize> = messages.iter().map(|m| m.body.len()).collect();
    for range in plan_batches(&sizes) {
        let chunk = &messages[range];
        let entries: Result<Vec<_>, _> = chunk
            .iter()
            .enumerate()
            .map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&m.body)
                    .build()
            })
            .collect();
        let result = match entries {
            Ok(entries) => sqs
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|err| aws::detail(&err)),
            Err(err) => Err(err.to_string()),
        };
        match result {
            Ok(output) => {
                sent.accepted += output.successful().len();
                for failed in output.failed() {
                    let label = failed
                        .id()
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| chunk.get(i))
                        .map_or_else(|| failed.id().to_owned(), |m| m.label.clone());
                    let why = format!("{}: {}", failed.code(), failed.message().unwrap_or("no message"));
                    sent.refused.push((label, why));
                }
            }
            Err(detail) => {
                sent.refused
                    .extend(chunk.iter().map(|m| (m.label.clone(), detail.clone())));
            }
        }
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covered(batches: &[std::ops::Range<usize>], n: usize) -> bool {
        batches.iter().flat_map(|r| r.clone()).eq(0..n)
    }

    #[test]
    fn small_messages_go_ten_at_a_time() {
        let batches = plan_batches(&[100; 25]);
        assert_eq!(batches, vec![0..10, 10..20, 20..25]);
        assert!(plan_batches(&[]).is_empty());
    }

    #[test]
    fn batches_are_split_by_size_as_well_as_by_count() {
        let big = 300 * 1024;
        let sizes = [big; 10];
        let batches = plan_batches(&sizes);
        assert!(covered(&batches, sizes.len()));
        for batch in &batches {
            let bytes: usize = sizes[batch.clone()].iter().sum();
            assert!(bytes <= MAX_BATCH_BYTES, "{batch:?}: {bytes}");
        }
        assert_eq!(batches, vec![0..3, 3..6, 6..9, 9..10]);
    }

    #[test]
    fn a_message_over_the_limit_on_its_own_goes_alone() {
        let sizes = [10, MAX_BATCH_BYTES + 1, 10, 10];
        assert_eq!(plan_batches(&sizes), vec![0..1, 1..2, 2..4]);
        assert_eq!(plan_batches(&[MAX_BATCH_BYTES, 1]), vec![0..1, 1..2]);
        assert_eq!(plan_batches(&[MAX_BATCH_BYTES - 1, 1]), vec![0..2]);
    }
}
