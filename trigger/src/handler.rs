//! One invocation: read the event, enqueue sign-up confirmations, return the event unchanged.

use post_confirmation::RefusedEvent;
use serde_json::Value;
use shared::envelope;
use shared::metrics::{Metrics, MetricsConfig};
use time::OffsetDateTime;

use crate::config::TriggerConfig;
use crate::metrics::TriggerMetric;
use crate::queue::{EnqueueError, SyncQueue};

/// What lives for the whole execution environment.
pub struct Deps {
    pub config: TriggerConfig,
    pub metrics: MetricsConfig,
    pub queue: SyncQueue,
}

/// Why the trigger failed an invocation. Logged in full; Cognito, which passes the function's
/// error message on to the signing-up user's client, gets only [`TriggerError::public_code`].
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// The event is not one to enqueue ([`post_confirmation::read`] says why).
    #[error(transparent)]
    Refused(#[from] RefusedEvent),
    #[error(transparent)]
    Enqueue(#[from] EnqueueError),
}

impl TriggerError {
    /// The error's kind, Lambda's `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Refused(refused) => refused.error_type(),
            Self::Enqueue(_) => "EnqueueFailed",
        }
    }

    /// A short code that the user may read out to support and an operator can find in the logs
    /// (the `trigger_refused` or `enqueue_failed` line carries it too). Nothing else leaves the
    /// function: pool ids, ARNs, the account id and the SDK's error stay in the log.
    pub fn public_code(&self) -> &'static str {
        match self {
            Self::Refused(refused) => refused.public_code(),
            Self::Enqueue(_) => "SYNC-QUEUE",
        }
    }
}

/// What Cognito receives, and shows the user's client as `PostConfirmation failed with error
/// <message>`: a fixed sentence and the code.
pub fn public_message(code: &str) -> String {
    format!("Your account is confirmed, but its set-up did not finish. Please try again later. (code {code})")
}

impl From<TriggerError> for lambda_runtime::Diagnostic {
    fn from(err: TriggerError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: err.error_type().to_owned(),
            error_message: public_message(err.public_code()),
        }
    }
}

pub async fn handle(deps: &Deps, event: Value) -> Result<Value, TriggerError> {
    let mut metrics = Metrics::new(&deps.metrics);
    let result = handle_event(deps, event, &mut metrics).await;
    metrics.emit();
    if let Err(err) = &result
        && !matches!(err, TriggerError::Enqueue(_))
    {
        // The details, for the operator (an enqueue failure has its own `enqueue_failed` line).
        // Every TriggerError names fields and pool ids, never a value from the event.
        tracing::error!(
            event = "trigger_refused",
            error_type = err.error_type(),
            code = err.public_code(),
            error = %err,
        );
    }
    result
}

async fn handle_event(
    deps: &Deps,
    event: Value,
    metrics: &mut Metrics<TriggerMetric>,
) -> Result<Value, TriggerError> {
    let user = post_confirmation::read(
        &event,
        deps.config.expected_user_pool_id.as_deref(),
        OffsetDateTime::now_utc(),
    )?;
    match deps.queue.send(envelope::encode(&user)).await {
        Ok(message_id) => {
            metrics.count(TriggerMetric::Enqueued, 1);
            tracing::info!(
                event = "enqueued",
                source = user.source().as_str(),
                user_pool_id = user.user_pool_id(),
                sub = user.sub(),
                message_id,
            );
            Ok(event)
        }
        Err(err) => {
            metrics.count(TriggerMetric::EnqueueFailed, 1);
            // The user is already confirmed; this record is what `reconcile` repairs from.
            tracing::error!(
                event = "enqueue_failed",
                source = user.source().as_str(),
                user_pool_id = user.user_pool_id(),
                sub = user.sub(),
                code = "SYNC-QUEUE",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::EnqueueError;
    use post_confirmation::EventError;
    use shared::UserError;

    fn all_errors() -> Vec<TriggerError> {
        vec![
            RefusedEvent::Event(EventError::Shape("missing field `userName`".into())).into(),
            RefusedEvent::Event(EventError::UnknownTriggerSource).into(),
            RefusedEvent::ForeignUserPool {
                expected: "us-east-1_Ours1".into(),
                actual: "eu-west-1_Theirs2".into(),
            }
            .into(),
            RefusedEvent::MissingSub.into(),
            RefusedEvent::InvalidUser(UserError::InvalidSub).into(),
            TriggerError::Enqueue(EnqueueError::new(
                "arn:aws:sqs:us-east-1:123456789012:sync https://sqs.us-east-1.amazonaws.com/123456789012/sync".into(),
            )),
        ]
    }

    #[test]
    fn cognito_gets_a_fixed_message_and_a_code_never_the_details() {
        for err in all_errors() {
            let detail = err.to_string();
            let code = err.public_code();
            let diagnostic = lambda_runtime::Diagnostic::from(err);
            assert_eq!(diagnostic.error_message, public_message(code));
            for secret in [
                "us-east-1_Ours1",
                "eu-west-1_Theirs2",
                "arn:",
                "123456789012",
                "userName",
            ] {
                assert!(
                    !diagnostic.error_message.contains(secret),
                    "{secret} in {diagnostic:?}"
                );
                assert!(
                    !diagnostic.error_type.contains(secret),
                    "{secret} in {diagnostic:?}"
                );
            }
            assert_ne!(detail, diagnostic.error_message);
        }
    }
}
