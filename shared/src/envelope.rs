//! The versioned message envelope that travels on SQS from the trigger to the consumer.
//!
//! Version 1, a JSON object:
//!
//! ```json
//! {
//!   "version": 1,
//!   "source": "post_confirmation",
//!   "user_pool_id": "us-east-1_AbCdEf123",
//!   "sub": "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c",
//!   "username": "ana",
//!   "confirmed_at": "2026-11-23T18:08:47.123Z",
//!   "attributes": { "email": "ana@example.com", "custom:plan": "pro" }
//! }
//! ```
//!
//! A refresh signal is the same version with `"source": "refresh"`, the pool, the `sub` and
//! optionally the `username`, and no state: the consumer reads the user from Cognito. The queue
//! also carries Cognito calls that EventBridge routed from CloudTrail, as EventBridge sends them
//! (see [`crate::signal`]); [`decode_message`] tells the three apart.
//!
//! Fields this version does not know are ignored, so a producer can add optional fields without
//! a version bump; anything that changes the meaning of a field needs a new `version`, and the
//! consumer refuses versions it does not know rather than guess.
//!
//! Decoding walks a `serde_json::Value` by hand instead of deriving `Deserialize`: serde's
//! messages quote the offending value (which may be an email address), while ours name the
//! field and the JSON type only, so every [`EnvelopeError`] is safe to log.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::signal::{Refresh, Signal, decode_cloudtrail};
use crate::timestamp::{format_rfc3339, parse_rfc3339};
use crate::user::{ConfirmationSource, ConfirmedUser, UserError};

/// The `source` of a refresh envelope.
const REFRESH_SOURCE: &str = "refresh";

/// What a message on the sync queue asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// Create the user's items if absent, from the state the confirmation carried.
    Confirmation(ConfirmedUser),
    /// Read the user from Cognito and apply their current state (or nothing: see
    /// [`Signal::Unattributable`]).
    Signal(Signal),
}

/// The only envelope version this build reads and writes.
pub const ENVELOPE_VERSION: u64 = 1;

/// Why a message body is not a valid envelope. Never carries a value from the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("message body is empty")]
    Empty,
    #[error("message body is not JSON (syntax error at line {line}, column {column})")]
    NotJson { line: usize, column: usize },
    #[error("message body is JSON but not an object (found {found})")]
    NotAnObject { found: &'static str },
    #[error("field `{field}` is missing")]
    MissingField { field: &'static str },
    #[error("field `{field}` must be {expected}, found {found}")]
    WrongType {
        field: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("envelope version {0} is not supported (this consumer reads version {ENVELOPE_VERSION})")]
    UnsupportedVersion(u64),
    #[error("field `confirmed_at` is not an RFC 3339 timestamp between 1970 and 9999 (UTC)")]
    InvalidTimestamp,
    #[error(
        "field `source` must be \"post_confirmation\", \"post_confirmation_forgot_password\", \"backfill\" or \"refresh\""
    )]
    UnknownSource,
    #[error("message is an EventBridge event but not a Cognito API call recorded by CloudTrail")]
    NotACognitoCall,
    #[error("message is a Cognito API call this consumer does not handle (field `detail.eventName`)")]
    UnhandledCall,
    #[error("message is a refresh signal where a confirmation was expected")]
    NotAConfirmation,
    #[error(transparent)]
    InvalidUser(#[from] UserError),
}

impl EnvelopeError {
    /// A short, stable label for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::NotJson { .. } => "not_json",
            Self::NotAnObject { .. } => "not_an_object",
            Self::MissingField { .. } => "missing_field",
            Self::WrongType { .. } => "wrong_type",
            Self::UnsupportedVersion(_) => "unsupported_version",
            Self::InvalidTimestamp => "invalid_timestamp",
            Self::UnknownSource => "unknown_source",
            Self::NotACognitoCall => "not_a_cognito_call",
            Self::UnhandledCall => "unhandled_call",
            Self::NotAConfirmation => "not_a_confirmation",
            Self::InvalidUser(_) => "invalid_user",
        }
    }
}

/// Encodes a confirmed user as a version-1 envelope, in characters SQS accepts.
pub fn encode(user: &ConfirmedUser) -> String {
    let body = json!({
        "version": ENVELOPE_VERSION,
        "source": user.source().as_str(),
        "user_pool_id": user.user_pool_id(),
        "sub": user.sub(),
        "username": user.username(),
        "confirmed_at": format_rfc3339(user.confirmed_at()),
        "attributes": user.attributes(),
    })
    .to_string();
    escape_for_sqs(body)
}

/// Encodes a refresh signal: `{"version": 1, "source": "refresh", "user_pool_id", "sub"}`, plus
/// `username` when known.
pub fn encode_refresh(refresh: &Refresh) -> String {
    let mut body = json!({
        "version": ENVELOPE_VERSION,
        "source": REFRESH_SOURCE,
        "user_pool_id": refresh.user_pool_id(),
        "sub": refresh.sub(),
    });
    if let Some(username) = refresh.username() {
        body["username"] = json!(username);
    }
    escape_for_sqs(body.to_string())
}

/// Whether SQS accepts `c` in a message body: `#x9 | #xA | #xD | #x20-#xD7FF |
/// #xE000-#xFFFD | #x10000-#x10FFFF` (anything else is refused with `InvalidMessageContents`).
pub fn sqs_accepts(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Rewrites every character SQS refuses as a JSON `\uXXXX` escape, which decodes to the same
/// character. `serde_json` already escapes the control characters; what it writes raw and SQS
/// refuses are the noncharacters U+FFFE and U+FFFF, which can only occur inside JSON strings,
/// where an escape means the same thing. (Surrogates cannot occur in a Rust string.)
fn escape_for_sqs(json: String) -> String {
    if json.chars().all(sqs_accepts) {
        return json;
    }
    let mut escaped = String::with_capacity(json.len() + 12);
    for c in json.chars() {
        if sqs_accepts(c) {
            escaped.push(c);
        } else {
            // Every refused character is in the Basic Multilingual Plane: one escape each.
            escaped.push_str(&format!("\\u{:04x}", u32::from(c)));
        }
    }
    escaped
}

/// Decodes and validates a message body that must be a confirmation.
pub fn decode(body: &str) -> Result<ConfirmedUser, EnvelopeError> {
    match decode_message(body)? {
        Message::Confirmation(user) => Ok(user),
        Message::Signal(_) => Err(EnvelopeError::NotAConfirmation),
    }
}

/// Decodes and validates any message of the sync queue: an envelope (a confirmation or a
/// refresh) or a Cognito call EventBridge routed from CloudTrail.
pub fn decode_message(body: &str) -> Result<Message, EnvelopeError> {
    if body.trim().is_empty() {
        return Err(EnvelopeError::Empty);
    }
    let value: Value = serde_json::from_str(body).map_err(|e| EnvelopeError::NotJson {
        line: e.line(),
        column: e.column(),
    })?;
    let Value::Object(object) = value else {
        return Err(EnvelopeError::NotAnObject {
            found: json_type(&value),
        });
    };
    if object.contains_key("detail-type") {
        return Ok(Message::Signal(decode_cloudtrail(&object)?));
    }

    let version = match required(&object, "version")? {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| wrong_type("version", "a non-negative integer", &Value::Number(n.clone())))?,
        other => return Err(wrong_type("version", "a non-negative integer", other)),
    };
    if version != ENVELOPE_VERSION {
        return Err(EnvelopeError::UnsupportedVersion(version));
    }

    let source_name = required_str(&object, "source")?;
    if source_name == REFRESH_SOURCE {
        let username = match object.get("username") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.as_str()),
            Some(other) => return Err(wrong_type("username", "a string", other)),
        };
        let refresh = Refresh::requested(
            required_str(&object, "user_pool_id")?,
            required_str(&object, "sub")?,
            username,
        )?;
        return Ok(Message::Signal(Signal::Refresh(refresh)));
    }
    let source = ConfirmationSource::parse(source_name).ok_or(EnvelopeError::UnknownSource)?;
    let user_pool_id = required_str(&object, "user_pool_id")?;
    let sub = required_str(&object, "sub")?;
    let username = required_str(&object, "username")?;
    let confirmed_at =
        parse_rfc3339(required_str(&object, "confirmed_at")?).ok_or(EnvelopeError::InvalidTimestamp)?;
    let attributes = match required(&object, "attributes")? {
        Value::Object(map) => string_map(map)?,
        other => return Err(wrong_type("attributes", "an object of strings", other)),
    };

    match ConfirmedUser::new(user_pool_id, sub, username, attributes, confirmed_at, source) {
        // The envelope's own words for its field: the timestamp parsed, but cannot be stored.
        Err(UserError::ConfirmedAtOutOfRange) => Err(EnvelopeError::InvalidTimestamp),
        Ok(user) => Ok(Message::Confirmation(user)),
        Err(other) => Err(other.into()),
    }
}

fn required<'a>(object: &'a Map<String, Value>, field: &'static str) -> Result<&'a Value, EnvelopeError> {
    match object.get(field) {
        None | Some(Value::Null) => Err(EnvelopeError::MissingField { field }),
        Some(value) => Ok(value),
    }
}

fn required_str<'a>(object: &'a Map<String, Value>, field: &'static str) -> Result<&'a str, EnvelopeError> {
    match required(object, field)? {
        Value::String(text) => Ok(text),
        other => Err(wrong_type(field, "a string", other)),
    }
}

fn string_map(map: &Map<String, Value>) -> Result<BTreeMap<String, String>, EnvelopeError> {
    map.iter()
        .enumerate()
        .map(|(position, (name, value))| match value {
            Value::String(text) => Ok((name.clone(), text.clone())),
            other => Err(wrong_type(
                &attribute_field(position + 1, name),
                "a string",
                other,
            )),
        })
        .collect()
}

/// How an error names an attribute of the body. A name from the body is attacker-chosen text
/// (and a custom attribute's name can itself be personal), so only Cognito's own standard names
/// are quoted; any other is named by its place in name order (1 for the first).
fn attribute_field(place: usize, name: &str) -> String {
    match STANDARD_ATTRIBUTES.iter().find(|standard| **standard == name) {
        Some(standard) => format!("attributes.{standard}"),
        None => format!("attributes (the non-standard attribute at place {place} in name order)"),
    }
}

/// The attribute names Cognito itself defines: fixed text of ours, safe to quote.
const STANDARD_ATTRIBUTES: [&str; 25] = [
    "address",
    "birthdate",
    "cognito:email_alias",
    "cognito:mfa_enabled",
    "cognito:phone_number_alias",
    "cognito:user_status",
    "email",
    "email_verified",
    "family_name",
    "gender",
    "given_name",
    "identities",
    "locale",
    "middle_name",
    "name",
    "nickname",
    "phone_number",
    "phone_number_verified",
    "picture",
    "preferred_username",
    "profile",
    "sub",
    "updated_at",
    "website",
    "zoneinfo",
];

fn wrong_type(field: &str, expected: &'static str, found: &Value) -> EnvelopeError {
    EnvelopeError::WrongType {
        field: field.to_owned(),
        expected,
        found: json_type(found),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    const POOL: &str = "us-east-1_AbCdEf123";
    const SUB: &str = "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c";

    fn sample_user() -> ConfirmedUser {
        let attributes = [
            ("sub", SUB),
            ("email", "ana@example.com"),
            ("given_name", "Ána"),
            ("family_name", "Łopez 李"),
            ("custom:plan", "pro"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        ConfirmedUser::new(
            POOL,
            SUB,
            "ana",
            attributes,
            OffsetDateTime::from_unix_timestamp_nanos(1_795_457_327_123_000_000).unwrap(),
            ConfirmationSource::PostConfirmation,
        )
        .unwrap()
    }

    fn valid_object() -> Value {
        serde_json::from_str(&encode(&sample_user())).unwrap()
    }

    fn decode_value(value: Value) -> Result<ConfirmedUser, EnvelopeError> {
        decode(&value.to_string())
    }

    #[test]
    fn decode_reverses_encode() {
        let user = sample_user();
        assert_eq!(decode(&encode(&user)).unwrap(), user);
    }

    #[test]
    fn encode_writes_version_1_with_every_field() {
        let value = valid_object();
        assert_eq!(value["version"], 1);
        assert_eq!(value["source"], "post_confirmation");
        assert_eq!(value["user_pool_id"], POOL);
        assert_eq!(value["sub"], SUB);
        assert_eq!(value["username"], "ana");
        assert_eq!(value["confirmed_at"], "2026-11-23T18:08:47.123Z");
        assert_eq!(value["attributes"]["custom:plan"], "pro");
    }

    #[test]
    fn unknown_fields_are_ignored_for_forward_compatibility() {
        let mut value = valid_object();
        value["trace_id"] = json!("abc");
        assert_eq!(decode_value(value).unwrap(), sample_user());
    }

    #[test]
    fn backfill_source_round_trips() {
        let mut value = valid_object();
        value["source"] = json!("backfill");
        assert_eq!(
            decode_value(value).unwrap().source(),
            ConfirmationSource::Backfill
        );
    }

    #[test]
    fn characters_sqs_refuses_are_escaped_and_decode_to_the_same_user() {
        let attributes = [
            ("custom:note", "a\u{FFFE}b\u{FFFF}c\u{0}\u{1F}\u{7F}"),
            ("custom:\u{FFFF}", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let user = ConfirmedUser::new(
            POOL,
            SUB,
            "ana\u{FFFE}",
            attributes,
            OffsetDateTime::UNIX_EPOCH,
            ConfirmationSource::PostConfirmation,
        )
        .unwrap();
        let body = encode(&user);
        assert!(body.chars().all(sqs_accepts), "{body:?}");
        assert!(body.contains("\\ufffe") && body.contains("\\uffff"), "{body}");
        assert_eq!(decode(&body).unwrap(), user);
    }

    #[test]
    fn sqs_character_set_follows_the_documented_ranges() {
        for c in [
            '\u{9}',
            '\u{A}',
            '\u{D}',
            ' ',
            '\u{D7FF}',
            '\u{E000}',
            '\u{FFFD}',
            '\u{10000}',
            '\u{10FFFF}',
        ] {
            assert!(sqs_accepts(c), "{c:?}");
        }
        for c in ['\u{0}', '\u{8}', '\u{B}', '\u{1F}', '\u{FFFE}', '\u{FFFF}'] {
            assert!(!sqs_accepts(c), "{c:?}");
        }
    }

    #[test]
    fn forgot_password_source_round_trips() {
        let mut value = valid_object();
        value["source"] = json!("post_confirmation_forgot_password");
        assert_eq!(
            decode_value(value).unwrap().source(),
            ConfirmationSource::PostConfirmationForgotPassword
        );
    }

    #[test]
    fn a_non_standard_attribute_name_is_never_quoted() {
        let mut value = valid_object();
        value["attributes"]["custom:ana@example.com"] = json!(7);
        let err = decode_value(value).unwrap_err();
        assert!(!err.to_string().contains("ana@example.com"), "{err}");
        assert_eq!(
            err.to_string(),
            "field `attributes (the non-standard attribute at place 1 in name order)` must be a string, found a number"
        );
    }

    #[test]
    fn empty_and_non_json_bodies_are_refused() {
        assert_eq!(decode(""), Err(EnvelopeError::Empty));
        assert_eq!(decode("  \n"), Err(EnvelopeError::Empty));
        assert_eq!(
            decode("hello"),
            Err(EnvelopeError::NotJson { line: 1, column: 1 })
        );
        assert!(matches!(
            decode("{\"version\": 1,"),
            Err(EnvelopeError::NotJson { .. })
        ));
        assert_eq!(
            decode("[1]"),
            Err(EnvelopeError::NotAnObject { found: "an array" })
        );
    }

    #[test]
    fn unknown_versions_are_refused_clearly() {
        let mut value = valid_object();
        value["version"] = json!(2);
        let err = decode_value(value).unwrap_err();
        assert_eq!(err, EnvelopeError::UnsupportedVersion(2));
        assert_eq!(
            err.to_string(),
            "envelope version 2 is not supported (this consumer reads version 1)"
        );
    }

    #[test]
    fn each_missing_field_is_named() {
        for field in [
            "version",
            "source",
            "user_pool_id",
            "sub",
            "username",
            "confirmed_at",
            "attributes",
        ] {
            let mut value = valid_object();
            value.as_object_mut().unwrap().remove(field);
            assert_eq!(
                decode_value(value),
                Err(EnvelopeError::MissingField { field }),
                "{field}"
            );
        }
    }

    #[test]
    fn wrong_types_name_the_field_but_not_the_value() {
        let mut value = valid_object();
        value["attributes"]["email"] = json!(42);
        let err = decode_value(value).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `attributes.email` must be a string, found a number"
        );

        let mut value = valid_object();
        value["username"] = json!(["ana@example.com"]);
        let err = decode_value(value).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field `username` must be a string, found an array"
        );
        assert!(!format!("{err:?}").contains("ana@example.com"));

        let mut value = valid_object();
        value["version"] = json!("1");
        assert_eq!(decode_value(value).unwrap_err().reason(), "wrong_type");
    }

    #[test]
    fn invalid_values_are_refused() {
        let cases: [(&str, Value, EnvelopeError); 4] = [
            (
                "confirmed_at",
                json!("last tuesday"),
                EnvelopeError::InvalidTimestamp,
            ),
            ("source", json!("ana@example.com"), EnvelopeError::UnknownSource),
            (
                "sub",
                json!("not-a-uuid"),
                EnvelopeError::InvalidUser(UserError::InvalidSub),
            ),
            (
                "user_pool_id",
                json!("nope"),
                EnvelopeError::InvalidUser(UserError::InvalidUserPoolId),
            ),
        ];
        for (field, bad, expected) in cases {
            let mut value = valid_object();
            value[field] = bad;
            assert_eq!(decode_value(value), Err(expected), "{field}");
        }
    }

    #[test]
    fn a_refresh_round_trips_with_and_without_a_username_and_is_not_a_confirmation() {
        for username in [None, Some("ana")] {
            let refresh = Refresh::requested(POOL, &SUB.to_uppercase(), username).unwrap();
            let body = encode_refresh(&refresh);
            assert_eq!(
                decode_message(&body),
                Ok(Message::Signal(Signal::Refresh(refresh))),
                "{body}"
            );
            assert_eq!(decode(&body), Err(EnvelopeError::NotAConfirmation));
        }
        let no_sub = json!({"version": 1, "source": "refresh", "user_pool_id": POOL}).to_string();
        assert_eq!(
            decode_message(&no_sub),
            Err(EnvelopeError::MissingField { field: "sub" })
        );
        let numeric_username =
            json!({"version": 1, "source": "refresh", "user_pool_id": POOL, "sub": SUB, "username": 7})
                .to_string();
        assert_eq!(
            decode_message(&numeric_username).unwrap_err().reason(),
            "wrong_type"
        );
    }

    #[test]
    fn an_eventbridge_event_is_told_apart_from_an_envelope() {
        let event = json!({
            "version": "0",
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.cognito-idp",
            "detail": {"eventName": "AdminDeleteUser", "requestParameters": {"userPoolId": POOL},
                       "additionalEventData": {"sub": SUB}}
        });
        let Ok(Message::Signal(Signal::Refresh(refresh))) = decode_message(&event.to_string()) else {
            panic!("expected a refresh")
        };
        assert_eq!(refresh.sub(), SUB);
        let unknown = json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events"});
        assert_eq!(
            decode_message(&unknown.to_string()),
            Err(EnvelopeError::NotACognitoCall)
        );
    }
}
