//! One invocation: a batch of SQS records, processed concurrently (bounded), failures reported.
//!
//! Lambda treats a returned error, an empty `itemIdentifier` or an id that was not in the batch
//! as a failure of the whole batch. So: each record runs in its own task (a panic fails that
//! record only), each is bounded by the invocation's deadline, and only ids received are
//! reported.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use lambda_runtime::LambdaEvent;
use tokio::time::Instant;

use crate::config::ConsumerConfig;
use crate::record::{self, RecordError, Synced};
use crate::store::{PutOutcome, Store};

/// What lives for the whole execution environment.
pub struct Deps {
    pub config: ConsumerConfig,
    pub store: Store,
}

/// The batch as a whole failed: every record will be redelivered (harmless: writes are idempotent).
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

pub async fn handle(
    deps: Arc<Deps>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, UnidentifiedRecordFailed> {
    let deadline = Instant::now() + budget(event.context.deadline, deps.config.deadline_margin);
    let concurrency = deps.config.max_concurrent_records;
    let results: Vec<(SqsMessage, Result<Synced, RecordError>)> =
        futures::stream::iter(event.payload.records)
            .map(|message| run_isolated(Arc::clone(&deps), message, deadline))
            .buffer_unordered(concurrency)
            .collect()
            .await;

    let mut response = SqsBatchResponse::default();
    let mut unidentified_failure = false;
    for (message, result) in results {
        let message_id = message.message_id.as_deref().filter(|id| !id.is_empty());
        let receive_count = message
            .attributes
            .get("ApproximateReceiveCount")
            .map(String::as_str);
        match result {
            Ok(synced) => log_synced(message_id, receive_count, &synced),
            Err(err) => {
                tracing::warn!(
                    event = "record_failed",
                    reason = err.reason(),
                    message_id,
                    receive_count,
                    error = %err,
                );
                match message_id {
                    Some(id) => response.add_failure(id.to_owned()),
                    None => unidentified_failure = true,
                }
            }
        }
    }
    if unidentified_failure {
        return Err(UnidentifiedRecordFailed);
    }
    tracing::info!(
        event = "batch_done",
        failures = response.batch_item_failures.len(),
    );
    Ok(response)
}

/// Runs one record in its own task, so that a panic or an overrun fails that record only.
async fn run_isolated(
    deps: Arc<Deps>,
    message: SqsMessage,
    deadline: Instant,
) -> (SqsMessage, Result<Synced, RecordError>) {
    let body = message.body.clone();
    let task = tokio::spawn(async move {
        tokio::time::timeout_at(deadline, record::process(&deps, body.as_deref())).await
    });
    let result = match task.await {
        Ok(Ok(result)) => result,
        Ok(Err(_elapsed)) => Err(RecordError::DeadlineExceeded),
        Err(_join_error) => Err(RecordError::Panicked),
    };
    (message, result)
}

/// Time left for the records: until the invocation's deadline (epoch milliseconds) less a
/// margin for reporting. Never zero, so a nearly expired invocation still tries once.
fn budget(deadline_epoch_ms: u64, margin: Duration) -> Duration {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms))
        .saturating_sub(margin)
        .max(Duration::from_millis(100))
}

fn log_synced(message_id: Option<&str>, receive_count: Option<&str>, synced: &Synced) {
    let written = |outcome| matches!(outcome, PutOutcome::Written);
    let event = if written(synced.user) || written(synced.profile) {
        "synced"
    } else {
        "already_synced"
    };
    tracing::info!(
        event,
        message_id,
        receive_count,
        sub = %synced.sub,
        profile_id = %synced.profile_id,
        user_written = written(synced.user),
        profile_written = written(synced.profile),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

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
