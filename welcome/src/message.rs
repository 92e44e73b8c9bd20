//! What the welcome queue carries: requests to greet a user, which the consumer sends once a
//! first sign-up's two items are written, and SES's own events about a welcome it accepted
//! (a bounce, a complaint, a rejection, a template that did not render, a delayed delivery),
//! which the stack's rule routes there from the configuration set's EventBridge destination.
//!
//! Neither carries an address or a name: a request names the user by `sub`, and of an SES
//! event only the kind, SES's message id and the tags the welcomer set are read (the event also
//! holds the recipient's address, which nothing here keeps).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::user::normalise_sub;

/// The tag every welcome carries with the user's `sub`, so that SES's events about it name the
/// user without an address.
pub const SUB_TAG: &str = "cognito-user-sync-sub";
/// The tag every welcome carries with the stack's name: the stack's rule routes SES's events of
/// its own welcomes only (a configuration set may be shared with other mail, or other stacks).
pub const STACK_TAG: &str = "cognito-user-sync-stack";

/// The request's only version so far.
const VERSION: u64 = 1;
const REQUEST: &str = "welcome_request";

/// A welcome to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    version: u64,
    kind: String,
    user_pool_id: String,
    sub: String,
}

impl Request {
    /// The request to greet `sub`, a user of `user_pool_id`.
    pub fn new(user_pool_id: &str, sub: &str) -> Result<Self, MessageError> {
        Ok(Self {
            version: VERSION,
            kind: REQUEST.to_owned(),
            user_pool_id: user_pool_id.to_owned(),
            sub: normalise_sub(sub).map_err(|_| MessageError::BadSub)?,
        })
    }

    pub fn user_pool_id(&self) -> &str {
        &self.user_pool_id
    }

    pub fn sub(&self) -> &str {
        &self.sub
    }

    /// The message body: JSON of identifiers only, well within SQS's character set and size.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a request is plain JSON")
    }
}

/// What SES said became of a welcome it had accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// SES stopped trying: the recipient's server refused it for good (`permanent`), or kept
    /// refusing it for now (a full mailbox, a server down).
    Bounce { permanent: bool },
    /// The recipient marked it as spam.
    Complaint,
    /// SES found a virus in it and did not send it.
    Reject,
    /// The SES template could not be rendered with the data sent: nothing was delivered.
    RenderingFailure,
    /// Delivery is delayed (a full mailbox, a greylisting server); SES keeps trying.
    DeliveryDelay,
}

impl Problem {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bounce { permanent: true } => "bounce",
            Self::Bounce { permanent: false } => "transient_bounce",
            Self::Complaint => "complaint",
            Self::Reject => "reject",
            Self::RenderingFailure => "rendering_failure",
            Self::DeliveryDelay => "delivery_delay",
        }
    }

    /// Whether the welcome did not reach the user (or reached them as unwanted): what `ops
    /// welcome unsent` lists and the undelivered alarm counts. SES reports a bounce, soft or
    /// hard, once it has stopped trying; only a delay may still end in a delivery.
    pub fn is_undelivered(self) -> bool {
        self != Self::DeliveryDelay
    }

    /// Whether sending the welcome again can help once the cause is fixed: a template that did
    /// not render, a message SES rejected, or a soft bounce (a full mailbox, a server down).
    /// Not a hard bounce or a complaint: the address does not exist, or the user does not
    /// want it.
    pub fn may_be_resent(self) -> bool {
        matches!(
            self,
            Self::RenderingFailure | Self::Reject | Self::Bounce { permanent: false }
        )
    }

    /// The text stored in the users item's `welcome_problem`, read back by `ops welcome`.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Bounce { permanent: true },
            Self::Bounce { permanent: false },
            Self::Complaint,
            Self::Reject,
            Self::RenderingFailure,
            Self::DeliveryDelay,
        ]
        .into_iter()
        .find(|problem| problem.as_str() == text)
    }
}

/// An SES event about one of this stack's welcomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryEvent {
    pub sub: String,
    pub problem: Problem,
    /// SES's message id of the welcome.
    pub ses_message_id: String,
    /// When EventBridge received it (epoch milliseconds): later events of the same welcome win.
    pub at_ms: i64,
}

/// One message of the welcome queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueMessage {
    Request(Request),
    Delivery(DeliveryEvent),
}

/// Why a message of the welcome queue cannot be read. Every variant names a field or a kind,
/// never a value from the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the body is not JSON")]
    NotJson,
    #[error("the body is neither a welcome request nor an SES event")]
    Unknown,
    #[error("a welcome request of version {0}, which this welcomer does not know")]
    UnknownVersion(u64),
    #[error("{0} is missing or not a string")]
    MissingField(&'static str),
    #[error("the sub is not a UUID")]
    BadSub,
    #[error("an SES event of a kind the welcome does not handle")]
    UnhandledEvent,
}

impl MessageError {
    /// A short, stable label for logs, metrics and `dlq peek`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotJson => "not_json",
            Self::Unknown => "not_a_welcome_message",
            Self::UnknownVersion(_) => "unknown_version",
            Self::MissingField(_) => "missing_field",
            Self::BadSub => "invalid_sub",
            Self::UnhandledEvent => "unhandled_ses_event",
        }
    }
}

/// Reads one message of the welcome queue.
pub fn decode(body: &str) -> Result<QueueMessage, MessageError> {
    let value: Value = serde_json::from_str(body).map_err(|_| MessageError::NotJson)?;
    if value["source"] == "aws.ses" {
        return delivery_event(&value).map(QueueMessage::Delivery);
    }
    if value["kind"] != REQUEST {
        return Err(MessageError::Unknown);
    }
    let version = value["version"]
        .as_u64()
        .ok_or(MessageError::MissingField("version"))?;
    if version != VERSION {
        return Err(MessageError::UnknownVersion(version));
    }
    let text = |name: &'static str| value[name].as_str().ok_or(MessageError::MissingField(name));
    Request::new(text("user_pool_id")?, text("sub")?).map(QueueMessage::Request)
}

/// An SES event as EventBridge delivers it: the event record SES publishes, under `detail`.
fn delivery_event(event: &Value) -> Result<DeliveryEvent, MessageError> {
    let detail = &event["detail"];
    let problem = match detail["eventType"].as_str() {
        Some("Bounce") => Problem::Bounce {
            permanent: detail["bounce"]["bounceType"] == "Permanent",
        },
        Some("Complaint") => Problem::Complaint,
        Some("Reject") => Problem::Reject,
        Some("Rendering Failure") => Problem::RenderingFailure,
        Some("DeliveryDelay") => Problem::DeliveryDelay,
        Some(_) => return Err(MessageError::UnhandledEvent),
        None => return Err(MessageError::MissingField("detail.eventType")),
    };
    let sub = detail["mail"]["tags"][SUB_TAG][0]
        .as_str()
        .ok_or(MessageError::MissingField(
            "detail.mail.tags.cognito-user-sync-sub",
        ))?;
    Ok(DeliveryEvent {
        sub: normalise_sub(sub).map_err(|_| MessageError::BadSub)?,
        problem,
        ses_message_id: detail["mail"]["messageId"]
            .as_str()
            .ok_or(MessageError::MissingField("detail.mail.messageId"))?
            .to_owned(),
        at_ms: event["time"]
            .as_str()
            .and_then(shared::timestamp::parse_rfc3339)
            .map(shared::timestamp::epoch_ms)
            .ok_or(MessageError::MissingField("time"))?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SUB: &str = "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c";

    /// An SES event as EventBridge delivers it (the record SES publishes, under `detail`).
    fn ses_event(event_type: &str, extra: Value) -> String {
        let mut detail = json!({
            "eventType": event_type,
            "mail": {
                "timestamp": "2026-12-08T10:00:00.000Z",
                "source": "hello@example.com",
                "messageId": "0100018c-ses-message-id",
                "destination": ["ana@example.com"],
                "tags": {
                    "ses:configuration-set": ["welcome"],
                    SUB_TAG: [SUB],
                    STACK_TAG: ["cognito-user-sync"]
                }
            }
        });
        detail
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({
            "version": "0",
            "id": "3c1d8f2a-events",
            "detail-type": "Email Bounced",
            "source": "aws.ses",
            "time": "2026-12-08T10:00:05Z",
            "region": "us-east-1",
            "resources": [],
            "detail": detail
        })
        .to_string()
    }

    #[test]
    fn a_request_survives_the_queue_and_names_no_one() {
        let request = Request::new("us-east-1_AbCdEf123", &SUB.to_uppercase()).unwrap();
        let body = request.encode();
        assert!(!body.contains('@'));
        assert_eq!(decode(&body).unwrap(), QueueMessage::Request(request.clone()));
        assert_eq!(request.sub(), SUB, "normalised");
    }

    #[test]
    fn each_problem_ses_reports_is_read_with_the_user_it_names() {
        for (event_type, extra, problem) in [
            (
                "Bounce",
                json!({"bounce": {"bounceType": "Permanent", "bouncedRecipients": [{"emailAddress": "ana@example.com"}]}}),
                Problem::Bounce { permanent: true },
            ),
            (
                "Bounce",
                json!({"bounce": {"bounceType": "Transient"}}),
                Problem::Bounce { permanent: false },
            ),
            (
                "Complaint",
                json!({"complaint": {"complainedRecipients": []}}),
                Problem::Complaint,
            ),
            (
                "Reject",
                json!({"reject": {"reason": "Bad content"}}),
                Problem::Reject,
            ),
            (
                "Rendering Failure",
                json!({"failure": {"errorMessage": "Attribute 'given_name' is not present in the rendering data.", "templateName": "welcome"}}),
                Problem::RenderingFailure,
            ),
            (
                "DeliveryDelay",
                json!({"deliveryDelay": {"delayType": "MailboxFull"}}),
                Problem::DeliveryDelay,
            ),
        ] {
            let QueueMessage::Delivery(event) = decode(&ses_event(event_type, extra)).unwrap() else {
                panic!("{event_type}: an SES event");
            };
            assert_eq!(event.problem, problem, "{event_type}");
            assert_eq!(event.sub, SUB);
            assert_eq!(event.ses_message_id, "0100018c-ses-message-id");
            assert_eq!(event.at_ms, 1_796_724_005_000);
            assert_eq!(Problem::parse(problem.as_str()), Some(problem));
        }
        assert!(!Problem::DeliveryDelay.is_undelivered());
        assert!(Problem::Bounce { permanent: true }.is_undelivered());
        assert!(Problem::Bounce { permanent: false }.is_undelivered());
        assert!(Problem::RenderingFailure.may_be_resent() && !Problem::Complaint.may_be_resent());
        assert!(Problem::Bounce { permanent: false }.may_be_resent());
        assert!(!Problem::Bounce { permanent: true }.may_be_resent());
    }

    #[test]
    fn a_message_that_cannot_be_read_is_refused_naming_no_value() {
        let reason = |body: &str| decode(body).unwrap_err().reason();
        assert_eq!(reason("ana@example.com"), "not_json");
        assert_eq!(
            reason(r#"{"version":1,"source":"post_confirmation"}"#),
            "not_a_welcome_message"
        );
        assert_eq!(
            reason(r#"{"version":2,"kind":"welcome_request","user_pool_id":"p","sub":"x"}"#),
            "unknown_version"
        );
        assert_eq!(
            reason(r#"{"version":1,"kind":"welcome_request","sub":"x"}"#),
            "missing_field"
        );
        assert_eq!(
            reason(r#"{"version":1,"kind":"welcome_request","user_pool_id":"p","sub":"ana@example.com"}"#),
            "invalid_sub"
        );
        assert_eq!(reason(&ses_event("Open", json!({}))), "unhandled_ses_event");
        let untagged = ses_event("Bounce", json!({})).replace(SUB_TAG, "other-tag");
        let err = decode(&untagged).unwrap_err();
        assert_eq!(err.reason(), "missing_field");
        assert!(!err.to_string().contains("example.com"), "{err}");
    }
}
