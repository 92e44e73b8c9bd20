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
use shared::metrics::Metrics;
use tokio::time::Instant;

use crate::deps::Deps;
use crate::greet::Greeting;
use crate::metrics::ConsumerMetric;
use crate::record::{self, Outcome, Processed, RecordError, Synced};
use crate::refresh::{ProfileEffect, Refreshed};
use shared::lifecycle::Change;
use std::future::Future;
use tables::PutOutcome;

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
    let records = event.payload.records;
    let results = run_isolated(records, concurrency, deadline, |message: &SqsMessage| {
        let deps = Arc::clone(&deps);
        let body = message.body.clone();
        async move { record::process(&deps, body.as_deref(), deadline).await }
    })
    .await;

    let mut metrics = Metrics::<ConsumerMetric>::new(&deps.metrics);
    let mut outcomes = Vec::with_capacity(results.len());
    let (mut write_retries, mut cognito_retries) = (0, 0);
    for (message, isolated) in results {
        let Processed {
            result,
            write_retries: retries,
            cognito_retries: reads_retried,
        } = isolated.unwrap_or_else(|err| Processed {
            result: Err(err),
            write_retries: 0,
            cognito_retries: 0,
        });
        write_retries += u64::from(retries);
        cognito_retries += u64::from(reads_retried);
        let message_id = message_id(&message);
        let done = match &result {
            Ok(Outcome::Synced(synced)) => synced.is_done(),
            Ok(_) => true,
            Err(_) => false,
        };
        outcomes.push((message_id.map(str::to_owned), done));
        let receive_count = message
            .attributes
            .get("ApproximateReceiveCount")
            .map(String::as_str);
        match result {
            Ok(Outcome::Synced(synced)) => {
                count_synced(&mut metrics, &synced);
                log_synced(message_id, receive_count, &synced);
                if let Some(welcome) = &synced.welcome {
                    count_welcome(&mut metrics, welcome);
                    log_welcome(message_id, &synced.sub, welcome);
                }
            }
            Ok(Outcome::Refreshed(refreshed)) => {
                count_refreshed(&mut metrics, &refreshed);
                tracing::info!(
                    event = "refreshed",
                    message_id,
                    receive_count,
                    sub = %refreshed.sub,
                    cause = refreshed.cause.as_str(),
                    change = refreshed.change.as_str(),
                    user_written = refreshed.users_written,
                    profile = refreshed.profile.as_str(),
                    conflicts = refreshed.conflicts,
                );
            }
            Ok(Outcome::Unattributable(call)) => {
                metrics.count(ConsumerMetric::UnattributableSignals, 1);
                tracing::info!(event = "signal_without_user", message_id, call = call.as_str());
            }
            Err(err) => {
                if err.is_invalid_message() {
                    metrics.count(ConsumerMetric::InvalidMessages, 1);
                }
                tracing::warn!(
                    event = "record_failed",
                    reason = err.reason(),
                    message_id,
                    receive_count,
                    error = %err,
                );
            }
        }
    }
    let reported = outcomes.iter().filter(|(id, ok)| !ok && id.is_some()).count();
    metrics.count(ConsumerMetric::WriteRetries, write_retries);
    metrics.count(ConsumerMetric::CognitoRetries, cognito_retries);
    metrics.count(ConsumerMetric::BatchItemFailures, reported as u64);
    metrics.emit();
    let response = batch_response(outcomes)?;
    tracing::info!(
        event = "batch_done",
        failures = response.batch_item_failures.len(),
    );
    Ok(response)
}

/// A record's id as Lambda would accept it in `batchItemFailures`: present and not empty.
pub fn message_id(message: &SqsMessage) -> Option<&str> {
    message.message_id.as_deref().filter(|id| !id.is_empty())
}

/// The answer for a batch, from each record's id (see [`message_id`]) and whether it succeeded:
/// the failed records by id, for SQS to redeliver. Lambda fails the whole batch for an empty
/// or unknown `itemIdentifier`, so a failed record without an id fails the batch here, openly
/// (every record is redelivered, which the idempotent writes make harmless).
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
) -> Vec<(T, Result<R, RecordError>)>
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
                    Ok(Err(_elapsed)) => Err(RecordError::DeadlineExceeded),
                    Err(_join_error) => Err(RecordError::Panicked),
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
fn budget(deadline_epoch_ms: u64, margin: Duration) -> Duration {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms))
        .saturating_sub(margin)
        .max(Duration::from_millis(100))
}

fn count_synced(metrics: &mut Metrics<ConsumerMetric>, synced: &Synced) {
    let written = |outcome| u64::from(outcome == PutOutcome::Written);
    metrics.count(ConsumerMetric::UsersWritten, written(synced.user));
    metrics.count(ConsumerMetric::ProfilesWritten, written(synced.profile));
    if synced.user == PutOutcome::UserDeleted {
        metrics.count(ConsumerMetric::DeletedUserIgnored, 1);
    } else if synced.user == PutOutcome::AlreadyExists && synced.profile == PutOutcome::AlreadyExists {
        metrics.count(ConsumerMetric::AlreadySynced, 1);
    }
    if let Some(lag) = synced.sync_lag {
        metrics.sample(ConsumerMetric::SyncLag, lag.as_secs_f64() * 1000.0);
    }
}

fn count_welcome(metrics: &mut Metrics<ConsumerMetric>, welcome: &Result<Greeting, RecordError>) {
    match welcome {
        Ok(Greeting::Sent { .. } | Greeting::SentUnrecorded { .. }) => {
            metrics.count(ConsumerMetric::WelcomeSent, 1)
        }
        Ok(Greeting::Skipped(skip)) if skip.is_counted() => metrics.count(ConsumerMetric::WelcomeSkipped, 1),
        Ok(Greeting::Refused(_)) => metrics.count(ConsumerMetric::WelcomeFailed, 1),
        // Retried: counted once it is sent or refused for good.
        Ok(Greeting::AlreadySent | Greeting::Skipped(_)) | Err(_) => {}
    }
}

/// The sub and what happened, never the address or the name.
fn log_welcome(message_id: Option<&str>, sub: &str, welcome: &Result<Greeting, RecordError>) {
    match welcome {
        Ok(greeting @ Greeting::Refused(err)) => tracing::error!(
            event = "welcome_failed",
            message_id,
            sub,
            outcome = greeting.as_str(),
            code = err.code,
            status = err.status,
            error = %err,
        ),
        Ok(greeting) => tracing::info!(
            event = "welcome",
            message_id,
            sub,
            outcome = greeting.as_str(),
            ses_message_id = match greeting {
                Greeting::Sent { message_id } | Greeting::SentUnrecorded { message_id } =>
                    Some(message_id.as_str()),
                _ => None,
            },
        ),
        Err(err) => tracing::warn!(
            event = "record_failed",
            reason = err.reason(),
            message_id,
            sub,
            error = %err,
        ),
    }
}

fn count_refreshed(metrics: &mut Metrics<ConsumerMetric>, refreshed: &Refreshed) {
    let wrote = refreshed.users_written;
    match refreshed.change {
        Change::Created => metrics.count(ConsumerMetric::UsersWritten, u64::from(wrote)),
        Change::Updated => metrics.count(ConsumerMetric::UsersUpdated, u64::from(wrote)),
        Change::Deleted | Change::Forgotten => metrics.count(ConsumerMetric::UsersDeleted, u64::from(wrote)),
        Change::Stale => metrics.count(ConsumerMetric::StaleIgnored, 1),
        Change::AlreadyDeleted => metrics.count(ConsumerMetric::DeletedUserIgnored, 1),
        Change::NotInPool | Change::NotConfirmed => metrics.count(ConsumerMetric::UsersNotInPool, 1),
        Change::Unchanged => {}
    }
    metrics.count(
        ConsumerMetric::ProfilesWritten,
        u64::from(refreshed.profile == ProfileEffect::Created),
    );
}

fn log_synced(message_id: Option<&str>, receive_count: Option<&str>, synced: &Synced) {
    let written = |outcome| matches!(outcome, PutOutcome::Written);
    let event = if written(synced.user) || written(synced.profile) {
        "synced"
    } else if synced.user == PutOutcome::UserDeleted {
        "user_deleted"
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn synced() -> Synced {
        Synced {
            sub: "s".into(),
            sync_lag: None,
            profile_id: shared::ProfileId::derive("us-east-1_A1", "s"),
            user: PutOutcome::Written,
            profile: PutOutcome::Written,
            welcome: None,
        }
    }

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
                Ok::<_, RecordError>(synced())
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
                    "slow" => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        Ok::<_, RecordError>(synced())
                    }
                    _ => Ok(synced()),
                }
            }
        })
        .await;
        let outcome = |name: &str| -> Vec<&'static str> {
            results
                .iter()
                .filter(|(item, _)| *item == name)
                .map(|(_, r)| r.as_ref().map(|_| "ok").unwrap_or_else(|e| e.reason()))
                .collect()
        };
        assert_eq!(outcome("ok"), ["ok", "ok"]);
        assert_eq!(outcome("panic"), ["panicked"]);
        assert_eq!(outcome("slow"), ["deadline_exceeded"]);
    }

    /// Records as Lambda delivers them, one without a `messageId` and one with an empty one.
    fn hand_built_event() -> SqsEvent {
        serde_json::from_value(serde_json::json!({"Records": [
            {"messageId": "m-ok", "body": "{}", "attributes": {}, "messageAttributes": {}},
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
