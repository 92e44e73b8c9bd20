//! One invocation: a batch of SQS records, processed concurrently (bounded), failures reported
//! (`sqs_batch` says why each record runs in its own task and which ids may be reported).

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use shared::lifecycle::Change;
use shared::metrics::Metrics;
use sqs_batch::{UnidentifiedRecordFailed, batch_response, budget, message_id, run_isolated};
use tables::PutOutcome;
use tokio::time::Instant;

use crate::deps::Deps;
use crate::metrics::ConsumerMetric;
use crate::record::{self, Outcome, Processed, RecordError, Synced};
use crate::refresh::{ProfileEffect, Refreshed};
use crate::welcome::Welcome;

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
        } = isolated.unwrap_or_else(|isolation| Processed {
            result: Err(isolation.into()),
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

fn count_welcome(metrics: &mut Metrics<ConsumerMetric>, welcome: &Result<Welcome, RecordError>) {
    match welcome {
        Ok(Welcome::Requested) => metrics.count(ConsumerMetric::WelcomeRequested, 1),
        Ok(Welcome::Skipped(skip)) if skip.is_counted() => metrics.count(ConsumerMetric::WelcomeSkipped, 1),
        // Retried: counted once it is asked for.
        Ok(Welcome::Skipped(_)) | Err(_) => {}
    }
}

/// The sub and what happened, never the address or the name.
fn log_welcome(message_id: Option<&str>, sub: &str, welcome: &Result<Welcome, RecordError>) {
    match welcome {
        Ok(welcome) => tracing::info!(event = "welcome", message_id, sub, outcome = welcome.as_str()),
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
