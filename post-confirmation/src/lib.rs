//! What the trigger decides, without AWS: Cognito's Post Confirmation event, read into the
//! [`ConfirmedUser`] it enqueues, or the reason it refuses the event.
//!
//! The handler calls [`read`] and only sends what it returns; the fuzz target calls the same
//! function. No AWS SDK here, so the fuzz build (which instruments everything it links) stays
//! small.

pub mod event;

use serde_json::Value;
use shared::{ConfirmationSource, ConfirmedUser, UserError};
use time::OffsetDateTime;

pub use event::{Confirmation, EventError, PostConfirmationEvent};

/// Why the trigger refuses an event. Every message names fields and pool ids, never a value
/// from the event.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RefusedEvent {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("event is from user pool {actual}, but this trigger serves {expected}")]
    ForeignUserPool { expected: String, actual: String },
    #[error("event has no `sub` user attribute")]
    MissingSub,
    #[error("event is not a valid confirmation: {0}")]
    InvalidUser(#[from] UserError),
}

impl RefusedEvent {
    /// The refusal's kind, Lambda's `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Event(EventError::Shape(_)) => "InvalidEvent",
            Self::Event(EventError::UnknownTriggerSource) => "UnknownTriggerSource",
            Self::ForeignUserPool { .. } => "ForeignUserPool",
            Self::MissingSub | Self::InvalidUser(_) => "InvalidUser",
        }
    }

    /// The short code the signing-up user may read out to support.
    pub fn public_code(&self) -> &'static str {
        match self {
            Self::Event(_) => "SYNC-EVENT",
            Self::ForeignUserPool { .. } => "SYNC-POOL",
            Self::MissingSub | Self::InvalidUser(_) => "SYNC-USER",
        }
    }
}

/// Reads `event` into the confirmation to enqueue, confirmed at `now`. With
/// `expected_user_pool_id`, an event from another pool is refused.
///
/// A confirmed password reset is a confirmation too: for a user synced before, the consumer's
/// create-only writes make it a no-op; for a user whose first confirmation it is (imported by a
/// CSV import job, or created by a migrate-user trigger's `UserMigration_ForgotPassword`), it is
/// their sync.
pub fn read(
    event: &Value,
    expected_user_pool_id: Option<&str>,
    now: OffsetDateTime,
) -> Result<ConfirmedUser, RefusedEvent> {
    let parsed = PostConfirmationEvent::from_value(event)?;
    let source = match parsed.confirmation()? {
        Confirmation::SignUp => ConfirmationSource::PostConfirmation,
        Confirmation::ForgotPassword => ConfirmationSource::PostConfirmationForgotPassword,
    };
    if let Some(expected) = expected_user_pool_id
        && expected != parsed.user_pool_id
    {
        // Pool ids are not secret and not personal: naming both makes the misconfiguration obvious.
        return Err(RefusedEvent::ForeignUserPool {
            expected: expected.to_owned(),
            actual: parsed.user_pool_id,
        });
    }
    let sub = parsed
        .request
        .user_attributes
        .get("sub")
        .cloned()
        .ok_or(RefusedEvent::MissingSub)?;
    Ok(ConfirmedUser::new(
        &parsed.user_pool_id,
        &sub,
        &parsed.user_name,
        parsed.request.user_attributes,
        now,
        source,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::event;

    const SUB: &str = "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c";

    #[test]
    fn each_confirmation_becomes_a_user_with_its_source() {
        let now = OffsetDateTime::UNIX_EPOCH;
        for (trigger_source, source) in [
            (
                "PostConfirmation_ConfirmSignUp",
                ConfirmationSource::PostConfirmation,
            ),
            (
                "PostConfirmation_ConfirmForgotPassword",
                ConfirmationSource::PostConfirmationForgotPassword,
            ),
        ] {
            let user = read(&event(trigger_source), Some("us-east-1_AbCdEf123"), now).unwrap();
            assert_eq!(user.source(), source);
            assert_eq!(user.sub(), SUB);
            assert_eq!(user.username(), "ana");
            assert_eq!(user.confirmed_at(), now);
        }
    }

    #[test]
    fn an_event_from_another_pool_is_refused_naming_both_pools() {
        let err = read(
            &event("PostConfirmation_ConfirmSignUp"),
            Some("eu-west-1_Other1"),
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap_err();
        assert_eq!(
            err,
            RefusedEvent::ForeignUserPool {
                expected: "eu-west-1_Other1".into(),
                actual: "us-east-1_AbCdEf123".into()
            }
        );
        assert_eq!(err.public_code(), "SYNC-POOL");
    }

    #[test]
    fn an_event_without_sub_is_refused() {
        let mut value = event("PostConfirmation_ConfirmSignUp");
        value["request"]["userAttributes"]
            .as_object_mut()
            .unwrap()
            .remove("sub");
        let err = read(&value, None, OffsetDateTime::UNIX_EPOCH).unwrap_err();
        assert_eq!(err, RefusedEvent::MissingSub);
        assert_eq!(err.error_type(), "InvalidUser");
    }

    #[test]
    fn another_trigger_source_is_refused_before_the_pool_check() {
        let err = read(
            &event("PreSignUp_SignUp"),
            Some("eu-west-1_Other1"),
            OffsetDateTime::UNIX_EPOCH,
        )
        .unwrap_err();
        assert_eq!(err, RefusedEvent::Event(EventError::UnknownTriggerSource));
    }
}
