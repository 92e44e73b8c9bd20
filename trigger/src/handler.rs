//! One invocation: read the event, enqueue sign-up confirmations, return the event unchanged.

use serde_json::Value;
use shared::metrics::{Metrics, MetricsConfig};
use shared::{ConfirmationSource, ConfirmedUser, UserError, envelope};
use time::OffsetDateTime;

use crate::config::TriggerConfig;
use crate::event::{Confirmation, EventError, PostConfirmationEvent};
use crate::queue::{EnqueueError, SyncQueue};

/// What lives for the whole execution environment.
pub struct Deps {
    pub config: TriggerConfig,
    pub metrics: MetricsConfig,
    pub queue: SyncQueue,
}

/// The trigger's metrics, emitted (zero included) on every invocation.
pub const METRICS: [&str; 3] = ["Enqueued", "EnqueueFailed", "Skipped"];

/// Why the trigger refused an event. Returned to Cognito, which then fails the user's call.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("event is from user pool {actual}, but this trigger serves {expected}")]
    ForeignUserPool { expected: String, actual: String },
    #[error("event has no `sub` user attribute")]
    MissingSub,
    #[error("event is not a valid confirmation: {0}")]
    InvalidUser(#[from] UserError),
    #[error(transparent)]
    Enqueue(#[from] EnqueueError),
}

impl From<TriggerError> for lambda_runtime::Diagnostic {
    fn from(err: TriggerError) -> Self {
        let error_type = match &err {
            TriggerError::Event(EventError::Shape(_)) => "InvalidEvent",
            TriggerError::Event(EventError::UnknownTriggerSource) => "UnknownTriggerSource",
            TriggerError::ForeignUserPool { .. } => "ForeignUserPool",
            TriggerError::MissingSub | TriggerError::InvalidUser(_) => "InvalidUser",
            TriggerError::Enqueue(_) => "EnqueueFailed",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_owned(),
            error_message: err.to_string(),
        }
    }
}

pub async fn handle(deps: &Deps, event: Value) -> Result<Value, TriggerError> {
    let mut metrics = Metrics::new(&deps.metrics, &METRICS);
    let result = handle_event(deps, event, &mut metrics).await;
    metrics.emit();
    result
}

async fn handle_event(deps: &Deps, event: Value, metrics: &mut Metrics) -> Result<Value, TriggerError> {
    let parsed = PostConfirmationEvent::from_value(&event)?;
    let confirmation = parsed.confirmation()?;
    if let Some(expected) = &deps.config.expected_user_pool_id
        && *expected != parsed.user_pool_id
    {
        // Pool ids are not secret and not personal: naming both makes the misconfiguration obvious.
        return Err(TriggerError::ForeignUserPool {
            expected: expected.clone(),
            actual: parsed.user_pool_id,
        });
    }
    if confirmation == Confirmation::ForgotPassword {
        tracing::info!(event = "skipped", reason = "forgot_password", user_pool_id = %parsed.user_pool_id);
        metrics.count("Skipped", 1);
        return Ok(event);
    }

    let user = confirmed_user(parsed)?;
    match deps.queue.send(envelope::encode(&user)).await {
        Ok(message_id) => {
            metrics.count("Enqueued", 1);
            tracing::info!(
                event = "enqueued",
                user_pool_id = user.user_pool_id(),
                sub = user.sub(),
                message_id,
            );
            Ok(event)
        }
        Err(err) => {
            metrics.count("EnqueueFailed", 1);
            // The user is already confirmed; this record is what `reconcile` repairs from.
            tracing::error!(
                event = "enqueue_failed",
                user_pool_id = user.user_pool_id(),
                sub = user.sub(),
                error = %err,
            );
            if deps.config.fail_on_enqueue_error {
                Err(err.into())
            } else {
                Ok(event)
            }
        }
    }
}

fn confirmed_user(event: PostConfirmationEvent) -> Result<ConfirmedUser, TriggerError> {
    let sub = event
        .request
        .user_attributes
        .get("sub")
        .cloned()
        .ok_or(TriggerError::MissingSub)?;
    Ok(ConfirmedUser::new(
        &event.user_pool_id,
        &sub,
        &event.user_name,
        event.request.user_attributes,
        OffsetDateTime::now_utc(),
        ConfirmationSource::PostConfirmation,
    )?)
}
