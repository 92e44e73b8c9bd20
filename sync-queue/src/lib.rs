//! Messages to the sync queue, in batches SQS accepts: the refresh signals `ops` and the
//! reconciler send, and the envelopes of a backfill.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use sdk_config::detail;

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
                .map_err(|err| detail(&err)),
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
