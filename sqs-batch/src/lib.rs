//! A batch of SQS records, run as an SQS-driven function must run it.
//!
//! Lambda treats a returned error, an empty `itemIdentifier` or an id that was not in the batch
//! as a failure of the whole batch. So: each record runs in its own task (a panic fails that
//! record only), each is bounded by the invocation's deadline, and only ids received are
//! reported. The consumer and the welcomer share this; what a record does is theirs.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsMessage};
use futures::StreamExt;
use tokio::time::Instant;

/// The batch as a whole failed: every record will be redelivered.
#[derive(Debug, thiserror::Error)]
#[error("a record without a message id failed, so it cannot be reported alone; failing the batch")]
pub struct UnidentifiedRecordFailed;

impl From<UnidentifiedRecordFailed> for lambda_runtime::Diagnostic {
    fn from(err: UnidentifiedRecordFailed) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "UnidentifiedRecordFailed".to_owned(),
            error_message: err.to_string(),
        }
    }
}

/// Why a record's task gave no result of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Isolation {
    #[error("record did not finish before the invocation's deadline")]
    DeadlineExceeded,
    #[error("processing the record panicked")]
    Panicked,
}

/// A record's id as Lambda would accept it in `batchItemFailures`: present and not empty.
pub fn message_id(message: &SqsMessage) -> Option<&str> {
    message.message_id.as_deref().filter(|id| !id.is_empty())
}

/// How many times SQS has delivered `message`, this delivery included (1 if SQS did not say).
pub fn receive_count(message: &SqsMessage) -> u32 {
    message
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|count| count.parse().ok())
        .unwrap_or(1)
}

/// When SQS received `message` (epoch milliseconds), if SQS said.
pub fn sent_at_ms(message: &SqsMessage) -> Option<u64> {
    message.attributes.get("SentTimestamp")?.parse().ok()
}

/// The answer for a batch, from each record's id (see [`message_id`]) and whether it succeeded:
/// the failed records by id, for SQS to redeliver. Lambda fails the whole batch for an empty
/// or unknown `itemIdentifier`, so a failed record without an id fails the batch here, openly
/// (every record is redelivered, which idempotent records make harmless).
pub fn batch_response(
    outcomes: impl IntoIterator<Item = (Option<String>, bool)>,
) -> Result<SqsBatchResponse, UnidentifiedRecordFailed> {
    let mut response = SqsBatchResponse::default();
    let mut unidentified_failure = false;
    for (message_id, succeeded) in outcomes {
        match (succeeded, message_id) {
            (true, _) => {}
            (false, Some(id)) => response.add_failure(id),
            (false, None) => unidentified_failure = true,
        }
    }
    if unidentified_failure {
        return Err(UnidentifiedRecordFailed);
    }
    Ok(response)
}

/// Runs `process` for every item, at most `limit` at a time, each in its own task and bounded
/// by `deadline`, so that a panic or an overrun fails that item only. Results come back paired
/// with their items, in completion order. (A record keeps its own deadline too, so that what it
/// did before running out of time is still reported: this one is the backstop.)
pub async fn run_isolated<T, R, F, Fut>(
    items: Vec<T>,
    limit: usize,
    deadline: Instant,
    process: F,
) -> Vec<(T, Result<R, Isolation>)>
where
    F: Fn(&T) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
    R: Send + 'static,
{
    futures::stream::iter(items)
        .map(|item| {
            let task = tokio::spawn(tokio::time::timeout_at(deadline, process(&item)));
            async move {
                let result = match task.await {
                    Ok(Ok(result)) => Ok(result),
                    Ok(Err(_elapsed)) => Err(Isolation::DeadlineExceeded),
                    Err(_join_error) => Err(Isolation::Panicked),
                };
                (item, result)
            }
        })
        .buffer_unordered(limit.max(1))
        .collect()
        .await
}

/// Time left for the records: until the invocation's deadline (epoch milliseconds) less a
/// margin for reporting. Never zero, so a nearly expired invocation still tries once.
pub fn budget(deadline_epoch_ms: u64, margin: Duration) -> Duration {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms))
        .saturating_sub(margin)
        .max(Duration::from_millis(100))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use aws_lambda_events::event::sqs::SqsEvent;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn records_run_concurrently_but_never_more_than_the_limit() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let deadline = Instant::now() + Duration::from_secs(10);
        let results = run_isolated((0..40).collect(), 4, deadline, |_: &i32| {
            let (in_flight, peak) = (Arc::clone(&in_flight), Arc::clone(&peak));
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
            }
        })
        .await;
        assert_eq!(results.len(), 40);
        assert!(results.iter().all(|(_, r)| r.is_ok()));
        assert_eq!(
            peak.load(Ordering::SeqCst),
            4,
            "concurrency must reach and never exceed the limit"
        );
    }

    #[tokio::test]
    async fn a_panicking_or_overrunning_record_fails_alone() {
        let deadline = Instant::now() + Duration::from_millis(200);
        let results = run_isolated(vec!["ok", "panic", "slow", "ok"], 10, deadline, |item: &&str| {
            let item = *item;
            async move {
                match item {
                    "panic" => panic!("a bug in one record"),
                    "slow" => tokio::time::sleep(Duration::from_secs(60)).await,
                    _ => {}
                }
            }
        })
        .await;
        let outcome = |name: &str| -> Vec<Result<(), Isolation>> {
            results
                .iter()
                .filter(|(item, _)| *item == name)
                .map(|(_, r)| *r)
                .collect()
        };
        assert_eq!(outcome("ok"), [Ok(()), Ok(())]);
        assert_eq!(outcome("panic"), [Err(Isolation::Panicked)]);
        assert_eq!(outcome("slow"), [Err(Isolation::DeadlineExceeded)]);
    }

    /// Records as Lambda delivers them, one without a `messageId` and one with an empty one.
    fn hand_built_event() -> SqsEvent {
        serde_json::from_value(serde_json::json!({"Records": [
            {"messageId": "m-ok", "body": "{}", "attributes": {"ApproximateReceiveCount": "3", "SentTimestamp": "1796724005000"}, "messageAttributes": {}},
            {"messageId": "m-failed", "body": "{}", "attributes": {}, "messageAttributes": {}},
            {"body": "{}", "attributes": {}, "messageAttributes": {}},
            {"messageId": "", "body": "{}", "attributes": {}, "messageAttributes": {}}
        ]}))
        .unwrap()
    }

    fn outcomes(event: &SqsEvent, failed: &[usize]) -> Vec<(Option<String>, bool)> {
        event
            .records
            .iter()
            .enumerate()
            .map(|(i, m)| (message_id(m).map(str::to_owned), !failed.contains(&i)))
            .collect()
    }

    #[test]
    fn failed_records_are_reported_by_id() {
        let event = hand_built_event();
        let response = batch_response(outcomes(&event, &[1])).unwrap();
        let ids: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(ids, ["m-failed"]);
        assert!(
            batch_response(outcomes(&event, &[]))
                .unwrap()
                .batch_item_failures
                .is_empty()
        );
    }

    #[test]
    fn a_failed_record_without_an_id_or_with_an_empty_one_fails_the_whole_batch() {
        let event = hand_built_event();
        assert_eq!(message_id(&event.records[2]), None);
        assert_eq!(message_id(&event.records[3]), None);
        assert!(
            batch_response(outcomes(&event, &[1, 2])).is_err(),
            "missing messageId"
        );
        assert!(batch_response(outcomes(&event, &[3])).is_err(), "empty messageId");
    }

    #[test]
    fn the_receive_count_is_read_from_the_records_attributes() {
        let event = hand_built_event();
        assert_eq!(receive_count(&event.records[0]), 3);
        assert_eq!(receive_count(&event.records[1]), 1, "absent: the first delivery");
        assert_eq!(sent_at_ms(&event.records[0]), Some(1_796_724_005_000));
        assert_eq!(sent_at_ms(&event.records[1]), None);
    }

    #[test]
    fn budget_keeps_the_margin_and_is_never_zero() {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let b = budget(now_ms + 30_000, Duration::from_secs(1));
        assert!(
            b <= Duration::from_secs(29) && b > Duration::from_secs(28),
            "{b:?}"
        );
        assert_eq!(
            budget(now_ms.saturating_sub(5_000), Duration::from_secs(1)),
            Duration::from_millis(100)
        );
    }
}
