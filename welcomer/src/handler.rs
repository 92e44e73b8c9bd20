//! One invocation: a batch of the welcome queue's records, each in its own task (`sqs_batch`).
//! A record that cannot be handled now is handed back to the queue with its delay
//! (`ChangeMessageVisibility`) and reported failed, so that SQS delivers it again then; one that
//! can never be handled is handed back at once, so that it reaches the welcome DLQ soon.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use shared::metrics::Metrics;
use sqs_batch::{
    UnidentifiedRecordFailed, batch_response, budget, message_id, receive_count, run_isolated, sent_at_ms,
};
use tokio::time::Instant;
use welcome::message::{self, DeliveryEvent, MessageError, Problem, QueueMessage};

use crate::deps::Deps;
use crate::metrics::WelcomerMetric;
use crate::send::{self, DeferReason, Deferral, Greeting};

/// What one record came to.
#[derive(Debug)]
pub enum Handled {
    Greeted {
        sub: String,
        greeting: Greeting,
    },
    /// An SES event, and whether the users item took it.
    Problem {
        event: DeliveryEvent,
        recorded: bool,
    },
    Deferred {
        sub: String,
        deferral: Deferral,
    },
    /// It can never be handled: malformed, or for another pool.
    Invalid(Invalid),
}

#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    #[error(transparent)]
    Message(#[from] MessageError),
    #[error("a request for user pool {actual}, but this welcomer serves {expected}")]
    ForeignUserPool { expected: String, actual: String },
    #[error("the message has no body")]
    MissingBody,
}

impl Invalid {
    fn reason(&self) -> &'static str {
        match self {
            Self::Message(err) => err.reason(),
            Self::ForeignUserPool { .. } => "foreign_user_pool",
            Self::MissingBody => "missing_body",
        }
    }
}

/// Handles one message body, by `deadline`.
pub async fn process(deps: &Deps, body: Option<&str>, receive_count: u32, deadline: Instant) -> Handled {
    let message = match body
        .ok_or(Invalid::MissingBody)
        .and_then(|b| Ok(message::decode(b)?))
    {
        Ok(message) => message,
        Err(invalid) => return Handled::Invalid(invalid),
    };
    match message {
        QueueMessage::Request(request) if request.user_pool_id() != deps.config.user_pool_id => {
            Handled::Invalid(Invalid::ForeignUserPool {
                expected: deps.config.user_pool_id.clone(),
                actual: request.user_pool_id().to_owned(),
            })
        }
        QueueMessage::Request(request) => {
            let sub = request.sub().to_owned();
            match send::greet(deps, &request, receive_count, deadline).await {
                Ok(greeting) => Handled::Greeted { sub, greeting },
                Err(deferral) => Handled::Deferred { sub, deferral },
            }
        }
        QueueMessage::Delivery(event) => match crate::problem::record(deps, &event).await {
            Ok(recorded) => Handled::Problem { event, recorded },
            Err(_) => Handled::Deferred {
                sub: event.sub,
                deferral: Deferral {
                    after: welcome::backoff::retry_delay(receive_count, deps.config.welcome.first_retry),
                    reason: DeferReason::Table,
                },
            },
        },
    }
}

pub async fn handle(
    deps: Arc<Deps>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, UnidentifiedRecordFailed> {
    let deadline = Instant::now() + budget(event.context.deadline, deps.config.deadline_margin);
    let results = run_isolated(
        event.payload.records,
        deps.config.max_concurrent_records,
        deadline,
        |record| {
            let deps = Arc::clone(&deps);
            let body = record.body.clone();
            let receipt = record.receipt_handle.clone();
            let receive_count = receive_count(record);
            async move {
                let handled = process(&deps, body.as_deref(), receive_count, deadline).await;
                // Handed back from within the record's task, so that the deadline bounds it too.
                let delay = match &handled {
                    Handled::Deferred { deferral, .. } => Some(deferral.after),
                    Handled::Invalid(_) => Some(Duration::ZERO),
                    Handled::Greeted { .. } | Handled::Problem { .. } => None,
                };
                if let (Some(delay), Some(receipt)) = (delay, receipt) {
                    hand_back(&deps, &receipt, delay).await;
                }
                handled
            }
        },
    )
    .await;

    let mut metrics = Metrics::<WelcomerMetric>::new(&deps.metrics);
    let mut outcomes = Vec::with_capacity(results.len());
    let now_ms = shared::timestamp::epoch_ms(time::OffsetDateTime::now_utc()).max(0) as u64;
    for (record, result) in results {
        let message_id = message_id(&record);
        let receive_count = receive_count(&record);
        if let (Ok(Handled::Greeted { .. } | Handled::Deferred { .. }), Some(sent_at)) =
            (&result, sent_at_ms(&record))
        {
            metrics.sample(WelcomerMetric::WelcomeAge, now_ms.saturating_sub(sent_at) as f64);
        }
        let done = matches!(result, Ok(Handled::Greeted { .. } | Handled::Problem { .. }));
        outcomes.push((message_id.map(str::to_owned), done));
        match result {
            Ok(handled) => account(&mut metrics, message_id, receive_count, &handled),
            Err(isolation) => tracing::warn!(
                event = "record_failed",
                reason = match isolation {
                    sqs_batch::Isolation::DeadlineExceeded => "deadline_exceeded",
                    sqs_batch::Isolation::Panicked => "panicked",
                },
                message_id,
                receive_count,
                error = %isolation,
            ),
        }
    }
    metrics.emit();
    let response = batch_response(outcomes)?;
    tracing::info!(
        event = "batch_done",
        failures = response.batch_item_failures.len()
    );
    Ok(response)
}

/// Makes the message visible again after `delay` (SQS allows 12 hours at most). When this fails
/// the queue's visibility timeout applies instead: later, never lost.
async fn hand_back(deps: &Deps, receipt: &str, delay: Duration) {
    let seconds = delay.as_secs().min(43_200) as i32;
    if let Err(err) = deps
        .queue
        .change_message_visibility()
        .queue_url(&deps.config.queue_url)
        .receipt_handle(receipt)
        .visibility_timeout(seconds)
        .send()
        .await
    {
        tracing::warn!(event = "welcome_hand_back_failed", error = %sdk_config::detail(&err));
    }
}

/// Counts and logs what a record came to: the sub and what happened, never an address or a name.
fn account(
    metrics: &mut Metrics<WelcomerMetric>,
    message_id: Option<&str>,
    receive_count: u32,
    handled: &Handled,
) {
    match handled {
        Handled::Greeted {
            sub,
            greeting: greeting @ Greeting::Refused(err),
        } => {
            metrics.count(WelcomerMetric::WelcomeFailed, 1);
            tracing::error!(
                event = "welcome_failed",
                message_id,
                sub,
                outcome = greeting.as_str(),
                code = err.code,
                status = err.status,
                error = %err,
            );
        }
        Handled::Greeted { sub, greeting } => {
            let ses_message_id = match greeting {
                Greeting::Sent { ses_message_id } | Greeting::SentUnrecorded { ses_message_id } => {
                    metrics.count(WelcomerMetric::WelcomeSent, 1);
                    Some(ses_message_id.as_str())
                }
                Greeting::Dropped(_) => {
                    metrics.count(WelcomerMetric::WelcomeDropped, 1);
                    None
                }
                Greeting::AlreadySent | Greeting::Refused(_) => None,
            };
            tracing::info!(
                event = "welcome",
                message_id,
                sub,
                outcome = greeting.as_str(),
                ses_message_id
            );
        }
        Handled::Problem { event, recorded } => {
            metrics.count(problem_metric(event.problem), 1);
            tracing::warn!(
                event = "welcome_problem",
                message_id,
                sub = %event.sub,
                problem = event.problem.as_str(),
                ses_message_id = %event.ses_message_id,
                recorded,
            );
        }
        Handled::Deferred { sub, deferral } => {
            metrics.count(WelcomerMetric::WelcomeDeferred, 1);
            let code = match &deferral.reason {
                DeferReason::Throttled { code } | DeferReason::AnswerLost { code } => Some(code.as_str()),
                _ => None,
            };
            tracing::info!(
                event = "welcome_deferred",
                message_id,
                sub,
                receive_count,
                reason = deferral.reason.as_str(),
                code,
                retry_in_s = deferral.after.as_secs(),
                gives_up_after_receives = welcome::backoff::GIVE_UP_AFTER_RECEIVES,
            );
        }
        Handled::Invalid(invalid) => {
            metrics.count(WelcomerMetric::WelcomeInvalidMessages, 1);
            tracing::warn!(
                event = "record_failed",
                reason = invalid.reason(),
                message_id,
                receive_count,
                error = %invalid,
            );
        }
    }
}

fn problem_metric(problem: Problem) -> WelcomerMetric {
    match problem {
        Problem::Bounce { permanent: true } => WelcomerMetric::WelcomeBounced,
        // A soft bounce: SES may still deliver it.
        Problem::Bounce { permanent: false } => WelcomerMetric::WelcomeDelayed,
        Problem::Complaint => WelcomerMetric::WelcomeComplained,
        Problem::Reject => WelcomerMetric::WelcomeRejected,
        Problem::RenderingFailure => WelcomerMetric::WelcomeRenderingFailed,
        Problem::DeliveryDelay => WelcomerMetric::WelcomeDelayed,
    }
}
