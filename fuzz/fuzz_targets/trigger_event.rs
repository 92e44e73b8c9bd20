//! Any bytes as the trigger's invocation payload, read as the handler reads it: JSON, then
//! `post_confirmation::read`, the one function the handler calls. For either confirmation the
//! `ConfirmedUser` it returns must give an envelope that SQS accepts and the consumer reads back.
//!
//! Never a panic, and no error message other than the fixed ones (serde's own messages quote
//! values, which may be personal data).

#![no_main]

use libfuzzer_sys::fuzz_target;
use post_confirmation::{EventError, RefusedEvent};
use serde_json::Value;
use shared::envelope::{decode, encode};
use shared::mapping::sync_items;
use time::OffsetDateTime;

const SHAPE_PREFIX: &str = "event is not a Cognito Post Confirmation event: ";

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let user = match post_confirmation::read(&value, None, OffsetDateTime::UNIX_EPOCH) {
        Ok(user) => user,
        Err(err @ RefusedEvent::Event(EventError::Shape(_))) => {
            let message = err.to_string();
            let detail = message.strip_prefix(SHAPE_PREFIX).expect("a shape error");
            assert!(
                (detail.starts_with("missing field `") && detail.ends_with('`'))
                    || detail.starts_with("a field has the wrong type ("),
                "unexpected event error: {message}"
            );
            return;
        }
        Err(
            RefusedEvent::Event(EventError::UnknownTriggerSource)
            | RefusedEvent::MissingSub
            | RefusedEvent::InvalidUser(_),
        ) => return,
        Err(other @ RefusedEvent::ForeignUserPool { .. }) => {
            panic!("no pool was expected, yet: {other:?}")
        }
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
