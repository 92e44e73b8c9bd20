//! Reading the Cognito Post Confirmation event, leniently.
//!
//! The handler must return the event byte-for-byte as it came, including fields that no Rust
//! type models, so it keeps the original `serde_json::Value` and reads only what it needs from
//! it here. The trigger source is matched with `aws_lambda_events`' enum.

use std::collections::BTreeMap;

use aws_lambda_events::event::cognito::CognitoEventUserPoolsPostConfirmationTriggerSource as TriggerSource;
use serde::Deserialize;
use serde_json::Value;

/// What the trigger reads from the event.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostConfirmationEvent {
    pub trigger_source: String,
    pub user_pool_id: String,
    pub user_name: String,
    #[serde(default)]
    pub request: Request,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    #[serde(default)]
    pub user_attributes: BTreeMap<String, String>,
}

/// What the event asks of the trigger.
#[derive(Debug, PartialEq, Eq)]
pub enum Confirmation {
    SignUp,
    ForgotPassword,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// serde's messages about wrong types quote the value (PII), so only "missing field"
    /// messages, which name a field and nothing else, are passed on.
    #[error("event is not a Cognito Post Confirmation event: {0}")]
    Shape(String),
    #[error(
        "trigger source is not a Post Confirmation source; this function must be wired as PostConfirmation"
    )]
    UnknownTriggerSource,
}

impl PostConfirmationEvent {
    pub fn from_value(value: &Value) -> Result<Self, EventError> {
        Self::deserialize(value).map_err(|e| {
            let message = e.to_string();
            EventError::Shape(if message.starts_with("missing field") {
                message
            } else {
                "a field has the wrong type (triggerSource, userPoolId and userName must be strings, request.userAttributes an object of strings)".to_owned()
            })
        })
    }

    pub fn confirmation(&self) -> Result<Confirmation, EventError> {
        match serde_json::from_value(Value::String(self.trigger_source.clone())) {
            Ok(TriggerSource::ConfirmSignUp) => Ok(Confirmation::SignUp),
            Ok(TriggerSource::ConfirmForgotPassword) => Ok(Confirmation::ForgotPassword),
            _ => Err(EventError::UnknownTriggerSource),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A Post Confirmation event from `source`, as Cognito sends it.
    pub(crate) fn event(source: &str) -> Value {
        json!({
            "version": "1",
            "region": "us-east-1",
            "userPoolId": "us-east-1_AbCdEf123",
            "userName": "ana",
            "callerContext": {"awsSdkVersion": "aws-sdk-js-3", "clientId": "abc"},
            "triggerSource": source,
            "request": {"userAttributes": {"sub": "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c", "email": "ana@example.com"}},
            "response": {}
        })
    }

    #[test]
    fn reads_a_sign_up_confirmation() {
        let e = PostConfirmationEvent::from_value(&event("PostConfirmation_ConfirmSignUp")).unwrap();
        assert_eq!(e.confirmation(), Ok(Confirmation::SignUp));
        assert_eq!(e.user_pool_id, "us-east-1_AbCdEf123");
        assert_eq!(e.request.user_attributes["email"], "ana@example.com");
    }

    #[test]
    fn reads_a_forgot_password_confirmation() {
        let e = PostConfirmationEvent::from_value(&event("PostConfirmation_ConfirmForgotPassword")).unwrap();
        assert_eq!(e.confirmation(), Ok(Confirmation::ForgotPassword));
    }

    #[test]
    fn refuses_other_trigger_sources() {
        let e = PostConfirmationEvent::from_value(&event("PreSignUp_SignUp")).unwrap();
        assert_eq!(e.confirmation(), Err(EventError::UnknownTriggerSource));
    }

    #[test]
    fn missing_fields_are_named() {
        let mut value = event("PostConfirmation_ConfirmSignUp");
        value.as_object_mut().unwrap().remove("userName");
        let err = PostConfirmationEvent::from_value(&value).unwrap_err();
        assert_eq!(
            err.to_string(),
            "event is not a Cognito Post Confirmation event: missing field `userName`"
        );
    }

    #[test]
    fn shape_errors_do_not_quote_values() {
        let mut value = event("PostConfirmation_ConfirmSignUp");
        value["request"]["userAttributes"]["email"] = json!(["ana@example.com"]);
        let err = PostConfirmationEvent::from_value(&value).unwrap_err();
        assert!(!err.to_string().contains("ana@"), "{err}");
        assert!(matches!(err, EventError::Shape(_)));
    }
}
