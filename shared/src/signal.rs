//! Signals that a user changed: they name the user, never their state.
//!
//! Two kinds reach the queue: a `refresh` envelope (a request to read a user again, for tools
//! that find users to repair) and a Cognito API call that CloudTrail recorded and the stack's
//! EventBridge rule routed here, as EventBridge sends it (the "AWS API Call via CloudTrail"
//! event, unchanged). Either way the consumer reads the user's current state from Cognito, so
//! what the call changed does not matter, only who it changed.
//!
//! CloudTrail records the user's `sub` in `additionalEventData.sub` and hides the username
//! (`HIDDEN_DUE_TO_SECURITY_REASONS`); calls made with an access token name no pool. A call
//! that carries no sub cannot be attributed to a user ([`Signal::Unattributable`]): it is
//! counted, not sent to the DLQ, because retrying it can never help (`ops reconcile` finds what
//! such calls leave behind).

use serde_json::{Map, Value};

use crate::EnvelopeError;
use crate::user::{check_identity, is_user_pool_id, normalise_sub};

/// EventBridge's `detail-type` for API calls recorded by CloudTrail.
pub const CLOUDTRAIL_DETAIL_TYPE: &str = "AWS API Call via CloudTrail";
/// EventBridge's `source` for Cognito user pools.
pub const COGNITO_EVENT_SOURCE: &str = "aws.cognito-idp";
/// What CloudTrail writes in place of a sensitive request field starts with this
/// (`HIDDEN_DUE_TO_SECURITY_REASONS` in the records seen; AWS's page spells it
/// `HIDDEN_FOR_SECURITY_REASONS`).
const HIDDEN_PREFIX: &str = "HIDDEN_";

/// The user-level Cognito calls that can change what the users table mirrors. The stack's
/// EventBridge rule lists the same names (the template test checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CognitoCall {
    AdminUpdateUserAttributes,
    UpdateUserAttributes,
    AdminDeleteUserAttributes,
    DeleteUserAttributes,
    VerifyUserAttribute,
    AdminDisableUser,
    AdminEnableUser,
    AdminDeleteUser,
    DeleteUser,
    AdminSetUserPassword,
    AdminConfirmSignUp,
    AdminResetUserPassword,
    /// A confirmed password reset (Post Confirmation runs too, but only creates).
    ConfirmForgotPassword,
    AdminLinkProviderForUser,
    AdminDisableProviderForUser,
    /// How an administrator-created user completes their first sign-in (the rule routes only the
    /// `NEW_PASSWORD_REQUIRED` answers, not every sign-in).
    RespondToAuthChallenge,
    AdminRespondToAuthChallenge,
}

impl CognitoCall {
    pub const ALL: [Self; 17] = [
        Self::AdminUpdateUserAttributes,
        Self::UpdateUserAttributes,
        Self::AdminDeleteUserAttributes,
        Self::DeleteUserAttributes,
        Self::VerifyUserAttribute,
        Self::AdminDisableUser,
        Self::AdminEnableUser,
        Self::AdminDeleteUser,
        Self::DeleteUser,
        Self::AdminSetUserPassword,
        Self::AdminConfirmSignUp,
        Self::AdminResetUserPassword,
        Self::ConfirmForgotPassword,
        Self::AdminLinkProviderForUser,
        Self::AdminDisableProviderForUser,
        Self::RespondToAuthChallenge,
        Self::AdminRespondToAuthChallenge,
    ];

    /// The call's name, as CloudTrail's `eventName` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AdminUpdateUserAttributes => "AdminUpdateUserAttributes",
            Self::UpdateUserAttributes => "UpdateUserAttributes",
            Self::AdminDeleteUserAttributes => "AdminDeleteUserAttributes",
            Self::DeleteUserAttributes => "DeleteUserAttributes",
            Self::VerifyUserAttribute => "VerifyUserAttribute",
            Self::AdminDisableUser => "AdminDisableUser",
            Self::AdminEnableUser => "AdminEnableUser",
            Self::AdminDeleteUser => "AdminDeleteUser",
            Self::DeleteUser => "DeleteUser",
            Self::AdminSetUserPassword => "AdminSetUserPassword",
            Self::AdminConfirmSignUp => "AdminConfirmSignUp",
            Self::AdminResetUserPassword => "AdminResetUserPassword",
            Self::ConfirmForgotPassword => "ConfirmForgotPassword",
            Self::AdminLinkProviderForUser => "AdminLinkProviderForUser",
            Self::AdminDisableProviderForUser => "AdminDisableProviderForUser",
            Self::RespondToAuthChallenge => "RespondToAuthChallenge",
            Self::AdminRespondToAuthChallenge => "AdminRespondToAuthChallenge",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|call| call.as_str() == name)
    }
}

/// Why a user is to be read again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// A `refresh` envelope: an operator or the reconciler asked.
    Requested,
    /// A Cognito call recorded by CloudTrail.
    Call(CognitoCall),
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Call(call) => call.as_str(),
        }
    }
}

/// "Read this user again and apply what Cognito says."
#[derive(Clone, PartialEq, Eq)]
pub struct Refresh {
    user_pool_id: Option<String>,
    sub: String,
    username: Option<String>,
    cause: Cause,
}

impl Refresh {
    /// A requested refresh of `sub` in `user_pool_id`; `username`, when known, saves a lookup.
    pub fn requested(
        user_pool_id: &str,
        sub: &str,
        username: Option<&str>,
    ) -> Result<Self, crate::UserError> {
        let sub = match username {
            Some(username) => check_identity(user_pool_id, sub, username)?,
            None => {
                if !is_user_pool_id(user_pool_id) {
                    return Err(crate::UserError::InvalidUserPoolId);
                }
                normalise_sub(sub)?
            }
        };
        Ok(Self {
            user_pool_id: Some(user_pool_id.to_owned()),
            sub,
            username: username.map(str::to_owned),
            cause: Cause::Requested,
        })
    }

    /// The pool the signal names; `None` for a call made with an access token, which names none.
    pub fn user_pool_id(&self) -> Option<&str> {
        self.user_pool_id.as_deref()
    }

    pub fn sub(&self) -> &str {
        &self.sub
    }

    /// The username, when the signal carries one (CloudTrail hides it).
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    pub fn cause(&self) -> Cause {
        self.cause
    }
}

/// Identifiers only: the username may be an email address.
impl std::fmt::Debug for Refresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Refresh")
            .field("user_pool_id", &self.user_pool_id)
            .field("sub", &self.sub)
            .field("username", &self.username.as_ref().map(|_| "<redacted>"))
            .field("cause", &self.cause)
            .finish()
    }
}

/// Decodes an EventBridge event (an object with `detail-type`) into a signal.
pub(crate) fn decode_cloudtrail(event: &Map<String, Value>) -> Result<Signal, EnvelopeError> {
    let text = |object: &Map<String, Value>, field: &str| {
        object.get(field).and_then(Value::as_str).map(str::to_owned)
    };
    if text(event, "detail-type").as_deref() != Some(CLOUDTRAIL_DETAIL_TYPE)
        || text(event, "source").as_deref() != Some(COGNITO_EVENT_SOURCE)
    {
        return Err(EnvelopeError::NotACognitoCall);
    }
    let detail = match event.get("detail") {
        Some(Value::Object(detail)) => detail,
        None | Some(Value::Null) => return Err(EnvelopeError::MissingField { field: "detail" }),
        Some(_) => return Err(EnvelopeError::NotACognitoCall),
    };
    let call = text(detail, "eventName")
        .and_then(|name| CognitoCall::parse(&name))
        .ok_or(EnvelopeError::UnhandledCall)?;
    let empty = Map::new();
    let section = |name: &str| match detail.get(name) {
        Some(Value::Object(object)) => object,
        _ => &empty,
    };
    let (request, additional) = (section("requestParameters"), section("additionalEventData"));
    let user_pool_id = text(request, "userPoolId").or_else(|| text(additional, "userPoolId"));
    if let Some(pool) = &user_pool_id
        && !is_user_pool_id(pool)
    {
        return Err(EnvelopeError::InvalidUser(crate::UserError::InvalidUserPoolId));
    }
    let Some(sub) = text(additional, "sub").filter(|sub| !sub.trim().is_empty()) else {
        return Ok(Signal::Unattributable(call));
    };
    let sub = normalise_sub(&sub)?;
    let username =
        text(request, "username").filter(|name| !name.starts_with(HIDDEN_PREFIX) && !name.trim().is_empty());
    Ok(Signal::Refresh(Refresh {
        user_pool_id,
        sub,
        username,
        cause: Cause::Call(call),
    }))
}

/// A signal as decoded from a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    Refresh(Refresh),
    /// A Cognito call that names no user (no `sub` recorded): nothing to refresh.
    Unattributable(CognitoCall),
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const POOL: &str = "us-east-1_AbCdEf123";
    const SUB: &str = "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c";

    /// An event shaped as EventBridge delivers a CloudTrail record of `call`.
    fn event(call: &str, request: Value, additional: Value) -> Map<String, Value> {
        let Value::Object(object) = json!({
            "version": "0",
            "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": CLOUDTRAIL_DETAIL_TYPE,
            "source": COGNITO_EVENT_SOURCE,
            "account": "123456789012",
            "time": "2026-12-02T10:00:00Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {
                "eventVersion": "1.08",
                "eventTime": "2026-12-02T10:00:00Z",
                "eventSource": "cognito-idp.amazonaws.com",
                "eventName": call,
                "awsRegion": "us-east-1",
                "requestParameters": request,
                "responseElements": null,
                "additionalEventData": additional,
                "eventID": "3c5b3d0e-5a3f-4b8e-9f61-0d2a0c4b1e77",
                "readOnly": false,
                "eventType": "AwsApiCall",
                "managementEvent": true,
                "eventCategory": "Management"
            }
        }) else {
            unreachable!()
        };
        object
    }

    #[test]
    fn an_admin_call_names_the_pool_and_the_sub_and_hides_the_username() {
        let signal = decode_cloudtrail(&event(
            "AdminUpdateUserAttributes",
            json!({"userPoolId": POOL, "username": "HIDDEN_DUE_TO_SECURITY_REASONS", "userAttributes": "HIDDEN_DUE_TO_SECURITY_REASONS"}),
            json!({"sub": SUB.to_uppercase()}),
        ))
        .unwrap();
        let Signal::Refresh(refresh) = signal else {
            panic!("{signal:?}")
        };
        assert_eq!(refresh.user_pool_id(), Some(POOL));
        assert_eq!(refresh.sub(), SUB, "normalised");
        assert_eq!(refresh.username(), None, "a hidden username is no username");
        assert_eq!(
            refresh.cause(),
            Cause::Call(CognitoCall::AdminUpdateUserAttributes)
        );
    }

    #[test]
    fn a_call_made_with_an_access_token_names_no_pool() {
        let signal = decode_cloudtrail(&event(
            "UpdateUserAttributes",
            json!({"accessToken": "HIDDEN_FOR_SECURITY_REASONS"}),
            json!({"sub": SUB}),
        ))
        .unwrap();
        let Signal::Refresh(refresh) = signal else {
            panic!("{signal:?}")
        };
        assert_eq!(refresh.user_pool_id(), None);
    }

    #[test]
    fn a_call_without_a_sub_cannot_be_attributed() {
        let signal =
            decode_cloudtrail(&event("AdminDisableUser", json!({"userPoolId": POOL}), json!({}))).unwrap();
        assert_eq!(signal, Signal::Unattributable(CognitoCall::AdminDisableUser));
    }

    #[test]
    fn other_events_and_calls_are_refused_naming_no_value() {
        let mut other_source = event("AdminDisableUser", json!({}), json!({"sub": SUB}));
        other_source.insert("source".into(), json!("aws.s3"));
        assert_eq!(
            decode_cloudtrail(&other_source),
            Err(EnvelopeError::NotACognitoCall)
        );
        let unhandled = event("ListUsers", json!({"userPoolId": POOL}), json!({"sub": SUB}));
        assert_eq!(decode_cloudtrail(&unhandled), Err(EnvelopeError::UnhandledCall));
        let bad_pool = event(
            "AdminDisableUser",
            json!({"userPoolId": "ana@example.com"}),
            json!({"sub": SUB}),
        );
        let err = decode_cloudtrail(&bad_pool).unwrap_err();
        assert!(!err.to_string().contains("ana@"), "{err}");
        let bad_sub = event(
            "AdminDisableUser",
            json!({"userPoolId": POOL}),
            json!({"sub": "ana@example.com"}),
        );
        assert_eq!(
            decode_cloudtrail(&bad_sub),
            Err(EnvelopeError::InvalidUser(crate::UserError::InvalidSub))
        );
    }

    #[test]
    fn every_call_name_round_trips() {
        for call in CognitoCall::ALL {
            assert_eq!(CognitoCall::parse(call.as_str()), Some(call));
        }
        assert_eq!(CognitoCall::parse("adminupdateuserattributes"), None);
    }
}
