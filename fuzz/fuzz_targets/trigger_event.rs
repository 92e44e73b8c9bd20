//! Any bytes as the trigger's invocation payload, read as the handler reads it: JSON, then
//! `PostConfirmationEvent::from_value`, `.confirmation()`, and for either confirmation the
//! `ConfirmedUser` built from the event's fields, whose envelope SQS must accept and the consumer
//! must read back.
//!
//! Never a panic, and no error message other than the fixed ones (serde's own messages quote
//! values, which may be personal data).

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use shared::envelope::{decode, encode};
use shared::mapping::sync_items;
use shared::{ConfirmationSource, ConfirmedUser};
use time::OffsetDateTime;
use trigger::event::{Confirmation, EventError, PostConfirmationEvent};

const SHAPE_PREFIX: &str = "event is not a Cognito Post Confirmation event: ";

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let event = match PostConfirmationEvent::from_value(&value) {
        Ok(event) => event,
        Err(err) => {
            let message = err.to_string();
            let detail = message.strip_prefix(SHAPE_PREFIX).expect("a shape error");
            assert!(
                (detail.starts_with("missing field `") && detail.ends_with('`'))
                    || detail.starts_with("a field has the wrong type ("),
                "unexpected event error: {message}"
            );
            return;
        }
    };
    // Both confirmations are enqueued, each with its own source.
    let source = match event.confirmation() {
        Ok(Confirmation::SignUp) => ConfirmationSource::PostConfirmation,
        Ok(Confirmation::ForgotPassword) => ConfirmationSource::PostConfirmationForgotPassword,
        Err(EventError::UnknownTriggerSource) => return,
        Err(other) => panic!("confirmation() failed with {other:?}"),
    };
    let Some(sub) = event.request.user_attributes.get("sub") else {
        return;
    };
    let Ok(user) = ConfirmedUser::new(
        &event.user_pool_id,
        sub,
        &event.user_name,
        event.request.user_attributes.clone(),
        OffsetDateTime::UNIX_EPOCH,
        source,
    ) else {
        return;
    };
    // What the trigger enqueues, the consumer reads and maps.
    let body = encode(&user);
    assert!(
        body.chars().all(shared::envelope::sqs_accepts),
        "SQS would refuse the body"
    );
    let received = decode(&body).expect("the consumer reads what the trigger writes");
    assert!(received == user);
    let _ = sync_items(&received, OffsetDateTime::UNIX_EPOCH);
});
