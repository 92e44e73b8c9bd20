//! The function: one message of the reconcile queue per invocation (batch size 1).
//!
//! A start begins a run unless one is in progress; a cursor goes on with its run. Either first
//! claims its step in the run's state item ([`crate::run_state`]), so a duplicate or stale
//! message is dropped instead of forking the run. The slice ends at the page budget or near
//! the deadline; the next message is sent before the handler returns, so SQS only deletes the
//! one received once its successor is on the queue. An invocation that dies leaves its
//! message to come back after the visibility timeout: the run resumes from it and repeats at
//! most one slice.

use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use drift::cursor::{decode, encode};
use drift::{Cursor, DriftKind, RunMessage};
use lambda_runtime::LambdaEvent;
use shared::metrics::{Metrics, MetricsConfig};
use time::OffsetDateTime;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::ReconcilerConfig;
use crate::metrics::{InvocationMetric, RunMetric};
use crate::run::{Budget, SliceEnd, advance};
use crate::run_state::{Claim, Refusal, RunStateError, RunStates};
use crate::signals::SignalSender;
use crate::walk::{Sources, Walker};

/// Kept back from the invocation's deadline for the last page's signals and the next message.
const MIN_MARGIN: Duration = Duration::from_secs(5);

/// What lives for the whole execution environment.
pub struct Deps {
    pub config: ReconcilerConfig,
    pub metrics: MetricsConfig,
    pub sqs: aws_sdk_sqs::Client,
    pub runs: RunStates,
    /// One invocation at a time per environment; the pacer's slowed rate carries over.
    pub walker: Mutex<Walker>,
}

impl Deps {
    pub async fn connect(config: ReconcilerConfig, metrics: MetricsConfig) -> Self {
        let sdk = sdk_config::load(
            aws_config::retry::RetryConfig::standard().with_max_attempts(3),
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(10))
                .operation_timeout(Duration::from_secs(30))
                .build(),
        )
        .await;
        // The walk paces and retries ListUsers itself: a throttle slows the whole walk down
        // rather than being retried at once by the SDK.
        let cognito = aws_sdk_cognitoidentityprovider::Client::from_conf(
            aws_sdk_cognitoidentityprovider::config::Builder::from(&sdk)
                .retry_config(aws_config::retry::RetryConfig::disabled())
                .build(),
        );
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let runs = RunStates::new(dynamodb.clone(), &config.state_table, &config.user_pool_id);
        let walker = Walker::new(
            Sources {
                cognito,
                dynamodb,
                user_pool_id: config.user_pool_id.clone(),
                users_table: config.users_table.clone(),
                profiles_table: config.profiles_table.clone(),
            },
            config.lists_per_second,
        );
        Self {
            sqs: aws_sdk_sqs::Client::new(&sdk),
            runs,
            walker: Mutex::new(walker),
            config,
            metrics,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("reconcile message refused: {0}")]
    Message(#[from] drift::cursor::CursorError),
    #[error("the cursor is for user pool {found}, this function reconciles {expected}")]
    OtherPool { found: String, expected: String },
    #[error("{0}")]
    Run(#[from] crate::walk::RunError),
    #[error("{operation} on the reconcile queue failed: {detail}")]
    Queue { operation: &'static str, detail: String },
    #[error("{0}")]
    RunState(#[from] RunStateError),
    #[error(
        "step {step} of run {run_id} is held by another invocation (lease until {lease_until_ms} ms); the message comes back after the visibility timeout"
    )]
    StepHeld {
        run_id: String,
        step: u64,
        lease_until_ms: u64,
    },
}

pub async fn handle(deps: &Deps, event: LambdaEvent<SqsEvent>) -> Result<(), HandlerError> {
    let now_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as u64;
    let remaining = Duration::from_millis(event.context.deadline.saturating_sub(now_ms));
    let deadline = Instant::now() + remaining.saturating_sub((remaining / 5).max(MIN_MARGIN));
    for record in &event.payload.records {
        let receives: u64 = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|count| count.parse().ok())
            .unwrap_or(1);
        let message = decode(record.body.as_deref().unwrap_or("")).inspect_err(|err| {
            tracing::error!(event = "reconcile_message_invalid", reason = %err);
        })?;
        let (cursor, requested_by) = match message {
            // The start's message id names the run: a redelivered start is the same run.
            RunMessage::Start { requested_by } => {
                let run_id = record
                    .message_id
                    .clone()
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                let cursor = Cursor::start(
                    &run_id,
                    &deps.config.user_pool_id,
                    OffsetDateTime::now_utc(),
                    deps.config.scan_segments,
                );
                (cursor, Some(requested_by))
            }
            RunMessage::Continue(cursor) => (*cursor, None),
        };
        if cursor.user_pool_id != deps.config.user_pool_id {
            let err = HandlerError::OtherPool {
                found: cursor.user_pool_id.clone(),
                expected: deps.config.user_pool_id.clone(),
            };
            tracing::error!(event = "reconcile_message_invalid", reason = %err);
            return Err(err);
        }
        let claim = Claim {
            run_id: &cursor.run_id,
            step: cursor.step,
            started_at: &cursor.started_at,
            lease_until_ms: event.context.deadline,
            now_ms,
            requested_by: requested_by.as_deref(),
        };
        if let Err(refusal) = deps.runs.claim(&claim).await? {
            tracing::info!(
                event = "reconcile_message_refused",
                run_id = cursor.run_id,
                step = cursor.step,
                start = requested_by.is_some(),
                reason = refusal.reason(),
                detail = ?refusal,
            );
            // Every other refusal drops its message (Refusal::drops_message).
            if let Refusal::HeldByLiveClaim { lease_until_ms } = refusal {
                return Err(HandlerError::StepHeld {
                    run_id: cursor.run_id,
                    step: cursor.step,
                    lease_until_ms,
                });
            }
            continue;
        }
        if let Some(requested_by) = &requested_by {
            tracing::info!(
                event = "reconcile_run_started",
                run_id = cursor.run_id,
                requested_by
            );
        }
        slice(deps, cursor, receives, deadline).await?;
    }
    Ok(())
}

async fn slice(
    deps: &Deps,
    mut cursor: Cursor,
    receives: u64,
    deadline: Instant,
) -> Result<(), HandlerError> {
    if receives > 1 {
        cursor.counts.resumed += 1;
        tracing::info!(
            event = "reconcile_resumed",
            run_id = cursor.run_id,
            step = cursor.step,
            receives
        );
    }
    let before = cursor.counts.clone();
    let claimed_step = cursor.step;
    let budget = Budget {
        pages: deps.config.pages_per_invocation,
        deadline: Some(deadline),
    };
    let mut sink = SignalSender::new(
        deps.sqs.clone(),
        &deps.config.sync_queue_url,
        &deps.config.user_pool_id,
    );
    let (end, next_page_in) = {
        let mut walker = deps.walker.lock().await;
        let end = advance(&mut walker, &mut cursor, budget, &mut sink).await;
        (end, walker.next_page_in())
    };
    cursor.step += 1;
    cursor.counts.invocations += 1;
    emit_invocation(deps, &before, &cursor.counts);
    let progressed = cursor.counts.pages > before.pages || cursor.counts.scan_pages > before.scan_pages;
    match end {
        Ok(SliceEnd::Finished) => {
            let finished_at = shared::timestamp::format_rfc3339(OffsetDateTime::now_utc());
            // Recorded before it is reported: a run's result is reported at most once.
            if deps
                .runs
                .finish(&cursor.run_id, claimed_step, &finished_at)
                .await?
            {
                finished(deps, &cursor);
            } else {
                tracing::warn!(
                    event = "reconcile_message_refused",
                    run_id = cursor.run_id,
                    step = claimed_step,
                    reason = "the run's last step was claimed again by another invocation",
                );
            }
            Ok(())
        }
        // A slice that could not take a step (the rate, slowed by throttling, has its next page
        // after this invocation's deadline) hands on with a delay until then: no invocations
        // spent waiting.
        Ok(SliceEnd::Paused) if !progressed => hand_on(deps, cursor, next_page_in).await,
        Ok(SliceEnd::Paused) => hand_on(deps, cursor, Duration::ZERO).await,
        // The walk cannot go on from where it was: the same run begins again from the top
        // (its signals so far were sent and stay valid) rather than failing until the DLQ.
        Err(crate::walk::RunError::TokenRefused { code }) => {
            tracing::warn!(
                event = "reconcile_run_restarted",
                run_id = cursor.run_id,
                step = cursor.step,
                reason = "Cognito refused the walk's pagination token",
                code,
            );
            let restarted = cursor.restarted(OffsetDateTime::now_utc());
            hand_on(deps, restarted, Duration::ZERO).await
        }
        // What was done is kept: the failure comes back at once in the next invocation, which
        // then makes no progress and lets its message come back, and go to the DLQ in the end.
        Err(err) if progressed => {
            tracing::warn!(event = "reconcile_step_failed", run_id = cursor.run_id, step = cursor.step, error = %err, handed_on = true);
            hand_on(deps, cursor, Duration::ZERO).await
        }
        Err(err) => {
            tracing::error!(event = "reconcile_step_failed", run_id = cursor.run_id, step = cursor.step, error = %err, handed_on = false);
            Err(err.into())
        }
    }
}

/// Sends the next message; `delay` (at most SQS's 15 minutes) before it can be received.
async fn hand_on(deps: &Deps, cursor: Cursor, delay: Duration) -> Result<(), HandlerError> {
    let delay_seconds = delay.as_secs_f64().ceil().min(900.0) as i32;
    tracing::info!(
        event = "reconcile_progress",
        run_id = cursor.run_id,
        step = cursor.step,
        phase = ?cursor.phase,
        pages = cursor.counts.pages,
        scanned = cursor.counts.scanned,
        drift = cursor.counts.drift(),
        delay_seconds,
    );
    let body = encode(&RunMessage::Continue(Box::new(cursor)))?;
    deps.sqs
        .send_message()
        .queue_url(&deps.config.reconcile_queue_url)
        .message_body(body)
        .delay_seconds(delay_seconds)
        .send()
        .await
        .map_err(|err| HandlerError::Queue {
            operation: "SendMessage",
            detail: sdk_config::detail(&err),
        })?;
    Ok(())
}

fn emit_invocation(deps: &Deps, before: &drift::Counts, after: &drift::Counts) {
    let mut metrics = Metrics::<InvocationMetric>::new(&deps.metrics);
    metrics.count(InvocationMetric::PagesWalked, after.pages - before.pages);
    metrics.count(InvocationMetric::ItemsScanned, after.scanned - before.scanned);
    metrics.count(
        InvocationMetric::ListUsersThrottled,
        after.throttles - before.throttles,
    );
    metrics.count(
        InvocationMetric::SignalsSent,
        after.signals_sent - before.signals_sent,
    );
    metrics.count(
        InvocationMetric::SignalsRefused,
        after.signals_refused - before.signals_refused,
    );
    metrics.emit();
}

fn finished(deps: &Deps, cursor: &Cursor) {
    let counts = &cursor.counts;
    let started_at = cursor.started_at();
    let duration = OffsetDateTime::now_utc() - started_at;
    let duration_ms = duration.whole_milliseconds().max(0) as u64;
    tracing::info!(
        event = "reconcile_run_finished",
        run_id = cursor.run_id,
        started_at = cursor.started_at,
        duration_ms,
        listed = counts.listed,
        pages = counts.pages,
        scanned = counts.scanned,
        drift = counts.drift(),
        missing = counts.missing,
        no_users_item = counts.no_users_item,
        no_profile = counts.no_profile,
        stale = counts.stale,
        enabled_differs = counts.enabled_differs,
        deleted = counts.deleted,
        federated_attributes = counts.federated_attributes,
        deletions_complete = counts.deletions_complete,
        unusable = counts.unusable,
        throttles = counts.throttles,
        signals_sent = counts.signals_sent,
        signals_refused = counts.signals_refused,
        invocations = counts.invocations,
        resumed = counts.resumed,
    );
    // Stamped with the run's start: each scheduled run in its own period of the drift alarm.
    run_metrics(&deps.metrics, counts, duration_ms)
        .emit_at((started_at.unix_timestamp_nanos() / 1_000_000) as u64);
}

/// A finished run's metrics; `DriftFound` is what `ReconcileDriftAlarm` reads.
fn run_metrics(config: &MetricsConfig, counts: &drift::Counts, duration_ms: u64) -> Metrics<RunMetric> {
    let mut metrics = Metrics::<RunMetric>::new(config);
    metrics.count(RunMetric::DriftFound, counts.drift());
    for kind in DriftKind::ALL {
        metrics.count(RunMetric::of_kind(kind), counts.of(kind));
    }
    metrics.count(
        RunMetric::DeletionsIncomplete,
        u64::from(!counts.deletions_complete),
    );
    metrics.count(RunMetric::RunsCompleted, 1);
    metrics.count(RunMetric::RunPages, counts.pages);
    metrics.sample(RunMetric::RunDuration, duration_ms as f64);
    metrics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drift_alarms_metric_counts_missed_changes_and_not_federated_sign_ins() {
        let config = MetricsConfig {
            namespace: "CognitoUserSync".into(),
            service: "stack-a".into(),
        };
        let mut counts = drift::Counts::default();
        for kind in [
            DriftKind::Missing,
            DriftKind::Stale,
            DriftKind::FederatedAttributes,
            DriftKind::FederatedAttributes,
        ] {
            counts.add(kind);
        }
        counts.deletions_complete = true;
        let lines = run_metrics(&config, &counts, 1_500).to_emf_lines(1_795_000_000_000);
        let [line] = lines.as_slice() else {
            panic!("one line: {lines:?}");
        };
        let document: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(document["DriftFound"], 2.0);
        assert_eq!(document["DriftFederatedAttributes"], 2.0);
        assert_eq!(document["DriftStale"], 1.0);
        assert_eq!(document["_aws"]["Timestamp"], 1_795_000_000_000u64);
    }
}
