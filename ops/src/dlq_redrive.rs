//! `dlq redrive`: move the dead-letter queue's messages back to the sync queue.
//!
//! First choice: SQS's own `StartMessageMoveTask` (what the console's "Start DLQ redrive" does):
//! it runs server-side and keeps each message whole. Messages are moved one at a time instead
//! (receive from the DLQ, `SendMessage` the same body and message attributes to the queue, and
//! `DeleteMessage` from the DLQ only after the send succeeded) when `--max` limits the count (a
//! move task cannot), when `--client-side` says the endpoint has no move-task API, or when the
//! service itself answers that the API is unsupported (an unknown-operation error code).
//!
//! Never on any other failure, an HTTP 500 included: a 500 may come after the task started, and
//! moving client-side beside a running task moves messages twice and counts nothing right. For
//! the same reason no client-side move starts while `ListMessageMoveTasks` shows a task running
//! on the DLQ. moto implements neither API and answers both with a bare HTTP 500, so against moto
//! the default refuses and names `--client-side`, which is what the local stack uses.
//!
//! Nothing can be lost that way. A refused send leaves the message in the DLQ (kept hidden until
//! the run ends, so it is not retried in a loop, then made visible again) and is counted; the run
//! then exits non-zero. A delete that fails after a good send leaves the message in both queues:
//! a duplicate, which the consumer's create-only writes make harmless.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_config::retry::RetryConfig;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use indicatif::ProgressBar;
use serde_json::json;

use crate::queue::{self, QueueInfo};
use crate::{Ctx, Outcome, aws, progress};

/// How long a received message stays hidden while it is being moved: long enough for a send
/// and a delete, and for refused ones to stay out of the way until the run ends.
const HOLD_SECONDS: i32 = 300;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Say how many messages would move, and move nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Move at most this many messages (moves them one by one).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max: Option<u64>,
    /// Move the messages one by one from here, for an endpoint without SQS's move-task API
    /// (moto). A move task already running on the DLQ still stops the run.
    #[arg(long)]
    pub client_side: bool,
}

/// What `ListMessageMoveTasks` said about the DLQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListedTasks {
    /// A task is running (its handle, or what is known of it).
    Running(String),
    /// None is running.
    NoneRunning,
    /// The service said the API is unsupported (an unknown-operation error code).
    Unsupported,
    /// The call failed otherwise: no telling whether a task runs.
    Failed(String),
}

/// How to redrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    MoveTask,
    ClientSide,
    Refuse(String),
}

/// Decides from what `ListMessageMoveTasks` said and whether the operator asked for a
/// client-side move (`--client-side`, or `--max`, which a move task cannot honour).
pub fn choose_method(listed: &ListedTasks, client_side: bool, max_given: bool) -> Method {
    match listed {
        ListedTasks::Running(task) => Method::Refuse(format!(
            "a message move task is already running on this DLQ ({task}): wait for it to finish, or \
             cancel it (aws sqs cancel-message-move-task --task-handle ...), then run again"
        )),
        ListedTasks::Unsupported => Method::ClientSide,
        ListedTasks::NoneRunning if client_side || max_given => Method::ClientSide,
        ListedTasks::NoneRunning => Method::MoveTask,
        // The operator has said this endpoint has no move-task API: no task can be running.
        ListedTasks::Failed(_) if client_side => Method::ClientSide,
        ListedTasks::Failed(why) => Method::Refuse(format!(
            "cannot tell whether a message move task is already running on this DLQ \
             (ListMessageMoveTasks failed: {why}); nothing was moved. If this endpoint does not \
             implement SQS's move-task API (moto does not), run again with --client-side"
        )),
    }
}

/// What a redrive did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    /// Sent to the queue (and deleted from the DLQ, except `duplicated`).
    pub moved: u64,
    /// Refused by the queue; still in the DLQ.
    pub failed: u64,
    /// Sent, but the DLQ delete failed: in both queues until the DLQ copy is redriven again.
    pub duplicated: u64,
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    let dlq_url = ctx.names.dlq_url().await?;
    let queue_url = ctx.names.queue_url().await?;
    let dlq = queue::inspect(&ctx.sqs, &dlq_url).await?;
    let target = queue::inspect(&ctx.sqs, &queue_url).await?;

    if args.dry_run {
        let would = args.max.map_or(dlq.visible, |max| dlq.visible.min(max));
        ctx.printer.report(
            &format!(
                "dry run: would move {would} messages from {dlq_url} to {queue_url} ({} in flight \
                 not counted); nothing moved",
                dlq.in_flight
            ),
            &json!({
                "command": "dlq redrive",
                "dry_run": true,
                "would_move": would,
                "in_flight": dlq.in_flight,
                "moved": 0,
                "failed": 0,
                "left": dlq.total(),
            }),
        );
        return Ok(Outcome::Done);
    }

    let listed = list_move_tasks(ctx, &dlq.arn).await;
    let chosen = choose_method(&listed, args.client_side, args.max.is_some());
    if let (Method::ClientSide, ListedTasks::Failed(why)) = (&chosen, &listed) {
        eprintln!("ListMessageMoveTasks failed ({why}); moving client-side as --client-side asks");
    }
    let length = args.max.map_or(dlq.visible, |max| dlq.visible.min(max));
    let bar = progress::bar(length, "dlq redrive: messages moved");
    let (method, result) = match chosen {
        Method::Refuse(why) => bail!(why),
        Method::ClientSide => (
            "receive_send_delete",
            move_one_by_one(ctx, &dlq_url, &queue_url, args.max, &bar).await?,
        ),
        Method::MoveTask => match start_move_task(ctx, &dlq, &target).await? {
            Some(handle) => ("move_task", watch_move_task(ctx, &dlq.arn, &handle, &bar).await?),
            None => {
                progress::note(
                    &bar,
                    "StartMessageMoveTask is not supported at this endpoint: moving messages one by one",
                );
                (
                    "receive_send_delete",
                    move_one_by_one(ctx, &dlq_url, &queue_url, None, &bar).await?,
                )
            }
        },
    };
    bar.finish_and_clear();

    let left = queue::inspect(&ctx.sqs, &dlq_url).await?.total();
    ctx.printer.report(
        &format!(
            "redrive ({method}): moved {moved}, failed {failed}, left {left} in the DLQ{dup}",
            moved = result.moved,
            failed = result.failed,
            dup = if result.duplicated == 0 {
                String::new()
            } else {
                format!(
                    ", {} sent but not deleted from the DLQ (duplicates are harmless)",
                    result.duplicated
                )
            },
        ),
        &json!({
            "command": "dlq redrive",
            "dry_run": false,
            "method": method,
            "moved": result.moved,
            "failed": result.failed,
            "duplicated": result.duplicated,
            "left": left,
        }),
    );
    Ok(if result.failed == 0 {
        Outcome::Done
    } else {
        Outcome::Incomplete
    })
}

/// What `ListMessageMoveTasks` says about the DLQ (its first result is the most recent task).
async fn list_move_tasks(ctx: &Ctx, dlq_arn: &str) -> ListedTasks {
    let listed = ctx
        .sqs
        .list_message_move_tasks()
        .source_arn(dlq_arn)
        .max_results(1)
        .customize()
        .config_override(aws_sdk_sqs::config::Builder::default().retry_config(RetryConfig::disabled()))
        .send()
        .await;
    match listed {
        Ok(output) => match output.results().first() {
            Some(task) if task.status() == Some("RUNNING") => ListedTasks::Running(format!(
                "{}, {} of {} messages moved",
                task.task_handle().unwrap_or("handle not given"),
                task.approximate_number_of_messages_moved,
                task.approximate_number_of_messages_to_move
                    .map_or_else(|| "?".to_owned(), |n| n.to_string()),
            )),
            _ => ListedTasks::NoneRunning,
        },
        Err(err) if move_task_unsupported(aws_sdk_sqs::error::ProvideErrorMetadata::code(&err)) => {
            ListedTasks::Unsupported
        }
        Err(err) => {
            let status = err
                .raw_response()
                .map_or_else(String::new, |r| format!("HTTP {}: ", r.status().as_u16()));
            ListedTasks::Failed(format!("{status}{}", aws::detail(&err)))
        }
    }
}

/// Starts the server-side move. `None` when the service says the API is unsupported.
async fn start_move_task(ctx: &Ctx, dlq: &QueueInfo, target: &QueueInfo) -> Result<Option<String>> {
    let started = ctx
        .sqs
        .start_message_move_task()
        .source_arn(&dlq.arn)
        .destination_arn(&target.arn)
        .customize()
        // An unimplemented operation fails the same way every time: do not retry it.
        .config_override(aws_sdk_sqs::config::Builder::default().retry_config(RetryConfig::disabled()))
        .send()
        .await;
    match started {
        Ok(output) => Ok(Some(output.task_handle().unwrap_or_default().to_owned())),
        Err(err) => {
            if move_task_unsupported(aws_sdk_sqs::error::ProvideErrorMetadata::code(&err)) {
                Ok(None)
            } else {
                let status = err
                    .raw_response()
                    .map_or_else(String::new, |r| format!(" (HTTP {})", r.status().as_u16()));
                bail!(
                    "StartMessageMoveTask failed{status}: {}; nothing was moved client-side, because \
                     the task may have started all the same: check with aws sqs list-message-move-tasks. \
                     If this endpoint does not implement SQS's move-task API (moto does not), run again \
                     with --client-side",
                    aws::detail(&err)
                )
            }
        }
    }
}

/// Whether a failed move-task call means the service says "not available here" (so fall back)
/// rather than a problem to report (access denied, a task already running, an internal error,
/// ...). Only the service's own error code says so; an HTTP status alone never does.
pub fn move_task_unsupported(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "UnknownOperationException"
                | "InvalidAction"
                | "NotImplemented"
                | "UnsupportedOperation"
                | "AWS.SimpleQueueService.UnsupportedOperation"
        )
    )
}

async fn watch_move_task(ctx: &Ctx, dlq_arn: &str, handle: &str, bar: &ProgressBar) -> Result<Moved> {
    progress::note(bar, &format!("move task started: {handle}"));
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let tasks = ctx
            .sqs
            .list_message_move_tasks()
            .source_arn(dlq_arn)
            .max_results(1)
            .send()
            .await
            .map_err(|err| anyhow::anyhow!(aws::detail(&err)))
            .context("ListMessageMoveTasks failed (the move task goes on regardless)")?;
        // Most recent first; only a running task still carries its handle.
        let Some(task) = tasks.results().first() else {
            bail!("the move task {handle} is not listed");
        };
        let moved = u64::try_from(task.approximate_number_of_messages_moved).unwrap_or(0);
        if let Some(to_move) = task.approximate_number_of_messages_to_move {
            bar.set_length(u64::try_from(to_move).unwrap_or(0));
        }
        bar.set_position(moved);
        match task.status() {
            Some("RUNNING") | Some("CANCELLING") => continue,
            Some("COMPLETED") => {
                return Ok(Moved {
                    moved,
                    ..Moved::default()
                });
            }
            status => bail!(
                "the move task ended {}: {} ({moved} messages moved; the rest are still in the DLQ)",
                status.unwrap_or("in an unknown state"),
                task.failure_reason().unwrap_or("no reason given"),
            ),
        }
    }
}

/// Receive, send, delete. Refused messages are held (hidden) until the end of the run, then
/// made visible again, so that each is tried once per run and counted once.
async fn move_one_by_one(
    ctx: &Ctx,
    dlq_url: &str,
    queue_url: &str,
    max: Option<u64>,
    bar: &ProgressBar,
) -> Result<Moved> {
    let mut result = Moved::default();
    // Message id -> latest receipt handle of the messages whose send was refused.
    let mut refused: HashMap<String, String> = HashMap::new();
    let outcome: Result<()> = async {
        loop {
            let done = result.moved + result.failed;
            let want = match max {
                Some(max) if done >= max => break,
                Some(max) => (max - done).min(queue::MAX_BATCH as u64) as i32,
                None => queue::MAX_BATCH as i32,
            };
            let batch = ctx
                .sqs
                .receive_message()
                .queue_url(dlq_url)
                .max_number_of_messages(want)
                .visibility_timeout(HOLD_SECONDS)
                .wait_time_seconds(1)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::AwsTraceHeader)
                .send()
                .await
                .map_err(|err| anyhow::anyhow!(aws::detail(&err)))
                .with_context(|| format!("ReceiveMessage on {dlq_url} failed"))?;
            if batch.messages().is_empty() {
                break;
            }
            for message in batch.messages() {
                let id = message.message_id().unwrap_or_default().to_owned();
                let receipt = message.receipt_handle().unwrap_or_default().to_owned();
                if let Some(held) = refused.get_mut(&id) {
                    // Back after a long run's hold ended: already counted, not tried again.
                    *held = receipt;
                    continue;
                }
                match send(ctx, queue_url, message).await {
                    Ok(()) => {
                        result.moved += 1;
                        bar.inc(1);
                        let deleted = ctx
                            .sqs
                            .delete_message()
                            .queue_url(dlq_url)
                            .receipt_handle(&receipt)
                            .send()
                            .await;
                        if let Err(err) = deleted {
                            result.duplicated += 1;
                            progress::note(
                                bar,
                                &format!(
                                    "message {id} sent but not deleted from the DLQ: {}",
                                    aws::detail(&err)
                                ),
                            );
                        }
                    }
                    Err(why) => {
                        result.failed += 1;
                        progress::note(bar, &format!("message {id} not moved (left in the DLQ): {why}"));
                        refused.insert(id, receipt);
                    }
                }
            }
        }
        Ok(())
    }
    .await;
    // Whatever ended the loop, refused messages are made visible again now rather than after
    // the hold.
    for receipt in refused.values() {
        let _ = ctx
            .sqs
            .change_message_visibility()
            .queue_url(dlq_url)
            .receipt_handle(receipt)
            .visibility_timeout(0)
            .send()
            .await;
    }
    outcome.map(|()| result)
}

/// Sends the message's body and message attributes to the queue, as the producer did.
async fn send(ctx: &Ctx, queue_url: &str, message: &Message) -> Result<(), String> {
    let mut request = ctx
        .sqs
        .send_message()
        .queue_url(queue_url)
        .message_body(message.body().unwrap_or_default())
        .set_message_attributes(message.message_attributes().cloned());
    // The trace header is the only system attribute a sender may set.
    if let Some(trace) = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::AwsTraceHeader))
    {
        request = request.message_system_attributes(
            aws_sdk_sqs::types::MessageSystemAttributeNameForSends::AwsTraceHeader,
            aws_sdk_sqs::types::MessageSystemAttributeValue::builder()
                .data_type("String")
                .string_value(trace)
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    request.send().await.map(|_| ()).map_err(|err| aws::detail(&err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unsupported_error_code_falls_back_never_a_bare_500() {
        assert!(move_task_unsupported(Some("UnknownOperationException")));
        assert!(move_task_unsupported(Some("InvalidAction")));
        assert!(move_task_unsupported(Some(
            "AWS.SimpleQueueService.UnsupportedOperation"
        )));
        // moto's bare HTTP 500, or AWS's InternalError: the task may have started.
        assert!(!move_task_unsupported(None));
        assert!(!move_task_unsupported(Some("InternalError")));
        assert!(!move_task_unsupported(Some("AccessDenied")));
        assert!(!move_task_unsupported(Some("InvalidParameterValue")));
    }

    #[test]
    fn no_client_side_move_while_a_move_task_runs_on_the_dlq() {
        let running = ListedTasks::Running("h-1, 3 of 10 messages moved".into());
        for (client_side, max) in [(false, false), (true, false), (false, true), (true, true)] {
            assert!(
                matches!(choose_method(&running, client_side, max), Method::Refuse(why) if why.contains("h-1")),
                "{client_side} {max}"
            );
        }
    }

    #[test]
    fn the_method_follows_what_the_service_says_and_what_was_asked() {
        assert_eq!(
            choose_method(&ListedTasks::NoneRunning, false, false),
            Method::MoveTask
        );
        assert_eq!(
            choose_method(&ListedTasks::NoneRunning, true, false),
            Method::ClientSide
        );
        assert_eq!(
            choose_method(&ListedTasks::NoneRunning, false, true),
            Method::ClientSide
        );
        assert_eq!(
            choose_method(&ListedTasks::Unsupported, false, false),
            Method::ClientSide
        );
        let failed = ListedTasks::Failed("HTTP 500".into());
        assert!(
            matches!(choose_method(&failed, false, false), Method::Refuse(why) if why.contains("--client-side"))
        );
        assert!(matches!(choose_method(&failed, false, true), Method::Refuse(_)));
        assert_eq!(choose_method(&failed, true, false), Method::ClientSide);
    }
}
