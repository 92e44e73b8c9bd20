//! Reads one user from the Cognito user pool as the users table mirrors them.
//!
//! `AdminGetUser` by username when the username is known (the users item stores it), else
//! `ListUsers` filtered on `sub` (CloudTrail records the sub, not the username). Both draw on
//! Cognito's request-rate quotas, which are per account and region and shared with everything
//! else in the account (`UserRead`, 120 requests per second by default, and `UserList`, 30, not
//! adjustable), so each kind of call goes through its own [`Pacer`]. Errors carry the
//! operation, Cognito's error code and the HTTP status, never Cognito's message, which can
//! quote the request (a username may be an email address).

use std::collections::BTreeMap;

use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::config::http::HttpResponse;
use aws_sdk_cognitoidentityprovider::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cognitoidentityprovider::operation::admin_get_user::{AdminGetUserError, AdminGetUserOutput};
use aws_sdk_cognitoidentityprovider::types::{AttributeType, UserStatusType, UserType};
use shared::UserError;
use shared::lifecycle::PoolUser;
use time::OffsetDateTime;

pub mod pacer;
pub use pacer::Pacer;

/// Cognito's default `UserRead` quota (`AdminGetUser`), per account and region.
pub const USER_READ_DEFAULT_QUOTA: f64 = 120.0;
/// Cognito's `UserList` quota (`ListUsers`), per account and region; not adjustable.
pub const USER_LIST_DEFAULT_QUOTA: f64 = 30.0;

/// Why a user could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("{operation} failed ({}): {code}{}", if *retryable { "retryable" } else { "not retryable" }, status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Call {
        operation: &'static str,
        retryable: bool,
        /// Cognito's error code, or the kind of transport failure.
        code: String,
        status: Option<u16>,
    },
    #[error("{operation} returned a user this service cannot store: {source}")]
    Unusable {
        operation: &'static str,
        source: UserError,
    },
}

impl ReadError {
    /// Throttling (`TooManyRequestsException`), Cognito's internal errors and transport failures
    /// are worth another try; anything else fails the same way again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Call { retryable: true, .. })
    }
}

/// One pool's users, read at bounded rates.
pub struct PoolReader {
    client: Client,
    user_pool_id: String,
    get_pacer: Pacer,
    list_pacer: Pacer,
}

impl PoolReader {
    /// `gets_per_second` paces `AdminGetUser`, `lists_per_second` paces `ListUsers`.
    pub fn new(client: Client, user_pool_id: &str, gets_per_second: f64, lists_per_second: f64) -> Self {
        Self {
            client,
            user_pool_id: user_pool_id.to_owned(),
            get_pacer: Pacer::per_second(gets_per_second),
            list_pacer: Pacer::per_second(lists_per_second),
        }
    }

    pub fn user_pool_id(&self) -> &str {
        &self.user_pool_id
    }

    /// The user called `username`, or `None` when the pool has no such user.
    pub async fn get(&self, username: &str) -> Result<Option<PoolUser>, ReadError> {
        const OPERATION: &str = "AdminGetUser";
        self.get_pacer.wait().await;
        let result = self
            .client
            .admin_get_user()
            .user_pool_id(&self.user_pool_id)
            .username(username)
            .send()
            .await;
        let user = match result {
            Ok(user) => user,
            Err(SdkError::ServiceError(service))
                if matches!(service.err(), AdminGetUserError::UserNotFoundException(_)) =>
            {
                return Ok(None);
            }
            Err(err) => return Err(call_error(OPERATION, &err)),
        };
        usable(OPERATION, pool_user(&self.user_pool_id, CognitoUser::from(&user)))
    }

    /// The user whose `sub` is `sub`, or `None` when the pool has none.
    pub async fn find_by_sub(&self, sub: &str) -> Result<Option<PoolUser>, ReadError> {
        const OPERATION: &str = "ListUsers";
        // A sub is a validated UUID: nothing in it can change the filter's meaning.
        let sub = shared::user::normalise_sub(sub).map_err(|source| unusable(OPERATION, source))?;
        self.list_pacer.wait().await;
        let listed = self
            .client
            .list_users()
            .user_pool_id(&self.user_pool_id)
            .filter(format!("sub = \"{sub}\""))
            .limit(1)
            .send()
            .await
            .map_err(|err| call_error(OPERATION, &err))?;
        let Some(user) = listed.users().first() else {
            return Ok(None);
        };
        usable(OPERATION, pool_user(&self.user_pool_id, CognitoUser::from(user)))
    }
}

/// The `sub` attribute of a listed user, as Cognito sent it (unvalidated).
pub fn sub_of(user: &UserType) -> Option<&str> {
    user.attributes()
        .iter()
        .find(|a| a.name() == "sub")
        .and_then(|a| a.value())
}

/// A user as `AdminGetUser` or `ListUsers` returns them.
pub struct CognitoUser<'a> {
    pub username: &'a str,
    pub attributes: &'a [AttributeType],
    pub status: Option<&'a UserStatusType>,
    pub enabled: bool,
    pub last_modified: Option<&'a aws_smithy_types::DateTime>,
}

impl<'a> From<&'a AdminGetUserOutput> for CognitoUser<'a> {
    fn from(user: &'a AdminGetUserOutput) -> Self {
        Self {
            username: user.username(),
            attributes: user.user_attributes(),
            status: user.user_status(),
            enabled: user.enabled(),
            last_modified: user.user_last_modified_date(),
        }
    }
}

impl<'a> From<&'a UserType> for CognitoUser<'a> {
    fn from(user: &'a UserType) -> Self {
        Self {
            username: user.username().unwrap_or_default(),
            attributes: user.attributes(),
            status: user.user_status(),
            enabled: user.enabled(),
            last_modified: user.user_last_modified_date(),
        }
    }
}

/// A user as Cognito returns them, validated. A missing `UserLastModifiedDate` (Cognito always
/// sends one) reads as the oldest possible version, so it can never replace a stored state.
pub fn pool_user(user_pool_id: &str, user: CognitoUser<'_>) -> Result<PoolUser, UserError> {
    let attributes: BTreeMap<String, String> = user
        .attributes
        .iter()
        .filter_map(|a| Some((a.name().to_owned(), a.value()?.to_owned())))
        .collect();
    let last_modified = user
        .last_modified
        .and_then(|at| OffsetDateTime::from_unix_timestamp_nanos(at.as_nanos()).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    PoolUser::new(
        user_pool_id,
        user.username,
        attributes,
        user.status.map_or("UNKNOWN", UserStatusType::as_str),
        user.enabled,
        last_modified,
    )
}

fn unusable(operation: &'static str, source: UserError) -> ReadError {
    ReadError::Unusable { operation, source }
}

fn usable(operation: &'static str, user: Result<PoolUser, UserError>) -> Result<Option<PoolUser>, ReadError> {
    user.map(Some).map_err(|source| unusable(operation, source))
}

/// An SDK error of a Cognito call as a [`ReadError`]: its code and status, never its message.
pub fn call_error<E: ProvideErrorMetadata>(
    operation: &'static str,
    err: &SdkError<E, HttpResponse>,
) -> ReadError {
    let (retryable, code, status) = match err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("unknown").to_owned();
            let status = service.raw().status().as_u16();
            let retryable = matches!(
                code.as_str(),
                "TooManyRequestsException" | "InternalErrorException" | "ThrottlingException"
            ) || status >= 500
                || status == 429;
            (retryable, code, Some(status))
        }
        SdkError::TimeoutError(_) => (true, "timeout".to_owned(), None),
        SdkError::DispatchFailure(_) => (true, "dispatch failure".to_owned(), None),
        SdkError::ResponseError(_) => (true, "unreadable response".to_owned(), None),
        _ => (false, "request not built".to_owned(), None),
    };
    ReadError::Call {
        operation,
        retryable,
        code,
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cognitoidentityprovider::operation::list_users::ListUsersError;
    use aws_sdk_cognitoidentityprovider::types::error::{InternalErrorException, TooManyRequestsException};
    use aws_smithy_types::body::SdkBody;

    fn service_error(err: ListUsersError, status: u16) -> SdkError<ListUsersError, HttpResponse> {
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(err, raw)
    }

    #[test]
    fn throttling_and_internal_errors_are_retryable_and_nothing_else() {
        let throttled = TooManyRequestsException::builder()
            .message("Rate exceeded for ana@example.com")
            .meta(
                aws_smithy_types::error::ErrorMetadata::builder()
                    .code("TooManyRequestsException")
                    .build(),
            )
            .build();
        let err = call_error(
            "ListUsers",
            &service_error(ListUsersError::TooManyRequestsException(throttled), 400),
        );
        assert!(err.is_retryable(), "{err}");
        assert!(
            !err.to_string().contains("ana@"),
            "Cognito's message is never quoted: {err}"
        );
        let internal = InternalErrorException::builder()
            .meta(
                aws_smithy_types::error::ErrorMetadata::builder()
                    .code("InternalErrorException")
                    .build(),
            )
            .build();
        assert!(
            call_error(
                "ListUsers",
                &service_error(ListUsersError::InternalErrorException(internal), 500)
            )
            .is_retryable()
        );
        let denied = ListUsersError::generic(
            aws_smithy_types::error::ErrorMetadata::builder()
                .code("AccessDeniedException")
                .build(),
        );
        let err = call_error("ListUsers", &service_error(denied, 400));
        assert!(!err.is_retryable(), "{err}");
        assert_eq!(
            err.to_string(),
            "ListUsers failed (not retryable): AccessDeniedException (HTTP 400)"
        );
    }

    #[test]
    fn a_listed_user_becomes_a_pool_user_with_its_version() {
        let attribute =
            |name: &str, value: &str| AttributeType::builder().name(name).value(value).build().unwrap();
        let modified = aws_smithy_types::DateTime::from_millis(1_795_457_327_123);
        let attributes = [
            attribute("sub", "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c"),
            attribute("email", "ana@example.com"),
        ];
        let listed = |attributes| CognitoUser {
            username: "ana",
            attributes,
            status: Some(&UserStatusType::Confirmed),
            enabled: false,
            last_modified: Some(&modified),
        };
        let user = pool_user("us-east-1_AbCdEf123", listed(&attributes)).unwrap();
        assert_eq!(user.status(), "CONFIRMED");
        assert!(!user.enabled());
        assert_eq!(
            user.last_modified().unix_timestamp_nanos(),
            1_795_457_327_123_000_000
        );
        assert_eq!(user.attributes()["email"], "ana@example.com");
        let without_sub = pool_user("us-east-1_AbCdEf123", listed(&[]));
        assert_eq!(without_sub, Err(UserError::MissingSub));
    }
}
