//! An emulator of Lambda's SQS event source mapping with `ReportBatchItemFailures`.
//!
//! Like the real one it receives a batch, invokes the function with the Lambda SQS event shape,
//! deletes the records the function did not report, and leaves the reported ones (and, when the
//! invocation fails or the response is invalid, the whole batch) to become visible again after
//! the queue's visibility timeout. SQS itself counts the receives and moves a message to the DLQ
//! after `maxReceiveCount`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};
use serde_json::{Value, json};

use crate::runtime_api::LambdaFunction;

pub struct SqsEventSource<'a> {
    pub sqs: &'a Client,
    pub queue_url: &'a str,
    pub queue_arn: &'a str,
    pub function: &'a LambdaFunction,
    pub batch_size: i32,
}

/// What one poll did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollReport {
    pub received: usize,
    pub deleted: usize,
    pub reported_failures: usize,
    /// Invocations that failed as a whole (error, crash, timeout, invalid response).
    pub failed_invocations: usize,
    /// The function's own time for the batches (delivery to answer), summed.
    pub function_time: Duration,
}

impl std::ops::AddAssign for PollReport {
    fn add_assign(&mut self, other: Self) {
        self.received += other.received;
        self.deleted += other.deleted;
        self.reported_failures += other.reported_failures;
        self.failed_invocations += other.failed_invocations;
        self.function_time += other.function_time;
    }
}

impl SqsEventSource<'_> {
    /// Receives one batch and settles it. `received == 0` when the queue had nothing visible.
    pub async fn poll_once(&self) -> Result<PollReport> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(self.queue_url)
            .max_number_of_messages(self.batch_size.clamp(1, 10))
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .context("ReceiveMessage failed")?;
        let messages = received.messages();
        if messages.is_empty() {
            return Ok(PollReport::default());
        }
        let event = json!({ "Records": messages.iter().map(|m| self.record(m)).collect::<Vec<_>>() });
        let mut report = PollReport {
            received: messages.len(),
            ..PollReport::default()
        };
        let ids: HashSet<&str> = messages.iter().filter_map(|m| m.message_id()).collect();
        let (outcome, times) = self.function.invoke_timed(&event).await;
        report.function_time = times.own().unwrap_or_default();
        let failed: Option<HashSet<String>> = match outcome {
            Ok(response) => reported_failures(&response, &ids),
            Err(_) => None,
        };
        let Some(failed) = failed else {
            report.failed_invocations = 1;
            return Ok(report);
        };
        report.reported_failures = failed.len();
        let done: Vec<&Message> = messages
            .iter()
            .filter(|m| !failed.contains(m.message_id().unwrap_or_default()))
            .collect();
        report.deleted = done.len();
        self.delete(&done).await?;
        Ok(report)
    }

    /// Polls until the queue holds nothing (visible or in flight), or fails after `timeout`.
    pub async fn drain(&self, timeout: Duration) -> Result<PollReport> {
        let started = Instant::now();
        let mut total = PollReport::default();
        loop {
            let report = self.poll_once().await?;
            total += report;
            if report.received == 0 {
                // moto counts visible and in-flight messages at slightly different moments, so a
                // message becoming visible between the two is counted as neither: only an empty
                // queue seen twice, a moment apart, with nothing received between, is drained.
                if self.queue_is_empty().await? {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let again = self.poll_once().await?;
                    total += again;
                    if again.received == 0 && self.queue_is_empty().await? {
                        return Ok(total);
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if started.elapsed() > timeout {
                bail!("the queue did not drain within {timeout:?} ({total:?})");
            }
        }
    }

    async fn queue_is_empty(&self) -> Result<bool> {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .context("GetQueueAttributes failed")?;
        Ok(attributes
            .attributes()
            .map(|a| a.values().all(|v| v == "0"))
            .unwrap_or(true))
    }

    async fn delete(&self, messages: &[&Message]) -> Result<()> {
        for chunk in messages.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            let result = self
                .sqs
                .delete_message_batch()
                .queue_url(self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .context("DeleteMessageBatch failed")?;
            if !result.failed().is_empty() {
                bail!("DeleteMessageBatch failed for {} messages", result.failed().len());
            }
        }
        Ok(())
    }

    /// One record of the Lambda SQS event, field for field as Lambda builds it.
    fn record(&self, message: &Message) -> Value {
        let system = |name: MessageSystemAttributeName| {
            message
                .attributes()
                .and_then(|a| a.get(&name))
                .cloned()
                .unwrap_or_default()
        };
        let message_attributes: serde_json::Map<String, Value> = message
            .message_attributes()
            .map(|attrs| {
                attrs
                    .iter()
                    .map(|(name, value)| {
                        (
                            name.clone(),
                            json!({
                                "stringValue": value.string_value(),
                                "stringListValues": [],
                                "binaryListValues": [],
                                "dataType": value.data_type(),
                            }),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        json!({
            "messageId": message.message_id(),
            "receiptHandle": message.receipt_handle(),
            "body": message.body(),
            "attributes": {
                "ApproximateReceiveCount": system(MessageSystemAttributeName::ApproximateReceiveCount),
                "SentTimestamp": system(MessageSystemAttributeName::SentTimestamp),
                "SenderId": system(MessageSystemAttributeName::SenderId),
                "ApproximateFirstReceiveTimestamp": system(MessageSystemAttributeName::ApproximateFirstReceiveTimestamp),
            },
            "messageAttributes": message_attributes,
            "md5OfBody": message.md5_of_body(),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": "us-east-1",
        })
    }
}

/// The ids a `ReportBatchItemFailures` response names, or `None` when Lambda would treat the
/// response as a failure of the whole batch: not that shape, an empty id, or an id not in it.
pub fn reported_failures(response: &Value, batch: &HashSet<&str>) -> Option<HashSet<String>> {
    match response.get("batchItemFailures") {
        None | Some(Value::Null) => Some(HashSet::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                let id = item.get("itemIdentifier")?.as_str()?;
                (!id.is_empty() && batch.contains(id)).then(|| id.to_owned())
            })
            .collect(),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_failures_follow_lambdas_rules() {
        let batch: HashSet<&str> = ["a", "b"].into();
        let ids = |v: Value| reported_failures(&v, &batch);
        assert_eq!(ids(json!({"batchItemFailures": []})), Some(HashSet::new()));
        assert_eq!(ids(json!({})), Some(HashSet::new()));
        assert_eq!(
            ids(json!({"batchItemFailures": [{"itemIdentifier": "a"}]})),
            Some(["a".to_owned()].into())
        );
        assert_eq!(ids(json!({"batchItemFailures": [{"itemIdentifier": ""}]})), None);
        assert_eq!(
            ids(json!({"batchItemFailures": [{"itemIdentifier": "zzz"}]})),
            None
        );
        assert_eq!(ids(json!({"batchItemFailures": "a"})), None);
    }
}
