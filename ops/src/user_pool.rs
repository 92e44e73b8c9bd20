//! Reading a user pool: describing it, and listing its users page by page, at a bounded rate,
//! with backoff on throttling. Shared by `backfill`, `reconcile` and `attach-trigger`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_sdk_cognitoidentityprovider::Client;
use aws_sdk_cognitoidentityprovider::config::http::HttpResponse;
use aws_sdk_cognitoidentityprovider::error::SdkError;
use aws_sdk_cognitoidentityprovider::operation::list_users::{ListUsersError, ListUsersOutput};
use aws_sdk_cognitoidentityprovider::types::{UserPoolType, UserStatusType, UserType};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use backon::{ExponentialBuilder, Retryable};
use shared::{ConfirmationSource, ConfirmedUser, UserError};
use time::OffsetDateTime;

use crate::aws;
pub use pool_reader::Pacer;

/// The most users Cognito returns per `ListUsers` page.
pub const MAX_PAGE_SIZE: i32 = 60;

/// Cognito's default request-rate quota of the `UserList` category (`ListUsers`,
/// `ListUsersInGroup`), per account and region, shared by every pool and every tool in it.
pub const USER_LIST_DEFAULT_QUOTA: f64 = 30.0;

/// Whether a user of this status must be in the tables: every status that means "confirmed at
/// least once". `backfill` and `reconcile` both select with this, and only this.
///
/// - `CONFIRMED`: confirmed sign-up (or admin-confirmed, or a migrated user).
/// - `EXTERNAL_PROVIDER`: a federated user; Cognito runs Post Confirmation (`ConfirmSignUp`) on
///   their first sign-in, and a federated user is only listed once they signed in.
/// - `RESET_REQUIRED`: confirmed earlier, then an administrator reset the password; or imported
///   by a CSV import job, which confirms them on the administrator's word (their first password
///   reset then runs `PostConfirmation_ConfirmForgotPassword`).
/// - `COMPROMISED` (deprecated): a confirmed user disabled for a security threat.
///
/// Not: `UNCONFIRMED` (never confirmed), `FORCE_CHANGE_PASSWORD` (created by `AdminCreateUser`,
/// never signed in: they become `CONFIRMED` when they set a password, without Post
/// Confirmation, and are selected from then on), `ARCHIVED` (deprecated: no longer active) and
/// any status this SDK does not know.
pub fn must_be_synced(status: Option<&UserStatusType>) -> bool {
    status.is_some_and(|status| shared::lifecycle::confirmed_at_least_once(status.as_str()))
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("user pool {pool_id} does not exist in this account and region")]
    NotFound { pool_id: String },
    #[error("{operation} on user pool {pool_id} failed: {detail}")]
    Api {
        operation: &'static str,
        pool_id: String,
        detail: String,
    },
}

impl PoolError {
    /// `missing`: the service said the pool does not exist.
    pub fn from_sdk<E>(operation: &'static str, pool_id: &str, missing: bool, err: &E) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        if missing {
            Self::NotFound {
                pool_id: pool_id.to_owned(),
            }
        } else {
            Self::Api {
                operation,
                pool_id: pool_id.to_owned(),
                detail: aws::detail(err),
            }
        }
    }
}

/// `--user-pool-id`: refuses what cannot be a pool id before any call is made.
pub fn parse_pool_id(text: &str) -> Result<String, String> {
    if shared::user::is_user_pool_id(text) {
        Ok(text.to_owned())
    } else {
        Err("not a user pool id (expected <region>_<id>, e.g. us-east-1_AbC123)".to_owned())
    }
}

/// `--sub`: a sub names a users item, a UUID as Cognito's always is; stored lower case.
pub fn parse_sub(text: &str) -> Result<String, String> {
    shared::user::normalise_sub(text).map_err(|_| "not a sub (a Cognito sub is a UUID)".to_owned())
}

/// `--rate` and `--user-list-quota`: requests per second, a positive number.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= 1000.0 => Ok(rate),
        _ => Err("must be a number of requests per second above 0 and at most 1000".to_owned()),
    }
}

/// A `--rate` the account's `UserList` quota cannot serve is refused before any request: above
/// it, Cognito throttles this run and every other caller of `ListUsers` in the account and
/// region (the application's own admin pages, other tools) alike.
pub fn check_rate(rate: f64, quota: f64) -> Result<(), String> {
    if rate > quota {
        Err(format!(
            "--rate {rate} is above the account's Cognito UserList request-rate quota ({quota} requests \
             per second for ListUsers and ListUsersInGroup, shared by every pool and tool in the account \
             and region). Use a lower --rate (the default 5 leaves most of it to others), or, if the \
             quota was raised in Service Quotas, say so with --user-list-quota"
        ))
    } else {
        Ok(())
    }
}

pub async fn describe_pool(cognito: &Client, pool_id: &str) -> Result<UserPoolType, PoolError> {
    let described = cognito
        .describe_user_pool()
        .user_pool_id(pool_id)
        .send()
        .await
        .map_err(|err| {
            let missing = err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception());
            PoolError::from_sdk("DescribeUserPool", pool_id, missing, &err)
        })?;
    described.user_pool().cloned().ok_or_else(|| PoolError::NotFound {
        pool_id: pool_id.to_owned(),
    })
}

/// One page of `ListUsers`.
pub struct Page {
    pub users: Vec<UserType>,
    /// The token for the next page; `None` on the last page.
    pub next_token: Option<String>,
}

/// Lists a pool's users page by page. Every request, retries included, waits for its slot from
/// the [`Pacer`]: `ListUsers` draws on an account-wide Cognito quota that the pool's own sign-ins
/// also need, so a backfill must not take all of it.
pub struct UserLister<'a> {
    cognito: &'a Client,
    pool_id: &'a str,
    filter: Option<&'static str>,
    page_size: i32,
    pacer: Pacer,
    retries: AtomicU64,
}

impl<'a> UserLister<'a> {
    pub fn new(
        cognito: &'a Client,
        pool_id: &'a str,
        filter: Option<&'static str>,
        page_size: i32,
        rate: f64,
    ) -> Self {
        Self {
            cognito,
            pool_id,
            filter,
            page_size,
            pacer: Pacer::per_second(rate),
            retries: AtomicU64::new(0),
        }
    }

    /// How many requests were retried so far (throttled, or a transient failure).
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// The page that `token` starts (the first page for `None`).
    ///
    /// The SDK's own retries are off for this call, so that backon is the one retry layer:
    /// exponential from 250 ms to 20 s with jitter, 8 retries, on throttling and transient
    /// failures only. Stacked, the SDK's quick attempts would each spend a request of the quota
    /// that is already exhausted.
    pub async fn page(&self, token: Option<&str>) -> Result<Page, PoolError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(250))
            .with_max_delay(Duration::from_secs(20))
            .with_max_times(8)
            .with_jitter();
        let output: ListUsersOutput = (|| async {
            self.pacer.wait().await;
            self.cognito
                .list_users()
                .user_pool_id(self.pool_id)
                .limit(self.page_size)
                .set_filter(self.filter.map(str::to_owned))
                .set_pagination_token(token.map(str::to_owned))
                .customize()
                .config_override(
                    aws_sdk_cognitoidentityprovider::config::Builder::default()
                        .retry_config(RetryConfig::disabled()),
                )
                .send()
                .await
        })
        .retry(backoff)
        .when(is_retryable)
        .notify(|_, _| {
            self.retries.fetch_add(1, Ordering::Relaxed);
        })
        .await
        .map_err(|err| {
            let missing = err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception());
            PoolError::from_sdk("ListUsers", self.pool_id, missing, &err)
        })?;
        Ok(Page {
            users: output.users().to_vec(),
            next_token: output
                .pagination_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
        })
    }
}

/// Throttling, Cognito's internal errors and transport failures are worth another try; anything
/// else (no such pool, access denied, a bad filter) will fail the same way again.
fn is_retryable(err: &SdkError<ListUsersError, HttpResponse>) -> bool {
    match err {
        SdkError::ServiceError(service) => {
            let status = service.raw().status();
            matches!(
                service.err(),
                ListUsersError::TooManyRequestsException(_) | ListUsersError::InternalErrorException(_)
            ) || status.is_server_error()
                || status.as_u16() == 429
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        _ => false,
    }
}

/// The user's `sub`, from its attributes.
pub use pool_reader::sub_of;

/// A listed user as the message the trigger would have sent, marked as a backfill.
///
/// `confirmed_at` is the user's `UserLastModifiedDate`: Cognito does not record when a user
/// confirmed, and confirming modifies the user, so for a user untouched since then this is the
/// confirmation time, and otherwise the closest later time Cognito knows (never a time before
/// the confirmation, which `UserCreateDate` would be). Cognito always sends it; creation time
/// and then now stand in if it ever does not.
pub fn confirmed_user(pool_id: &str, user: &UserType) -> Result<ConfirmedUser, UserError> {
    let attributes: BTreeMap<String, String> = user
        .attributes()
        .iter()
        .filter_map(|a| Some((a.name().to_owned(), a.value()?.to_owned())))
        .collect();
    let confirmed_at = user
        .user_last_modified_date()
        .or(user.user_create_date())
        .and_then(|at| OffsetDateTime::from_unix_timestamp_nanos(at.as_nanos()).ok())
        .unwrap_or_else(OffsetDateTime::now_utc);
    ConfirmedUser::new(
        pool_id,
        sub_of(user).unwrap_or_default(),
        user.username().unwrap_or_default(),
        attributes,
        confirmed_at,
        ConfirmationSource::Backfill,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cognitoidentityprovider::types::AttributeType;
    use aws_sdk_cognitoidentityprovider::types::error::{
        InternalErrorException, ResourceNotFoundException, TooManyRequestsException,
    };
    use aws_smithy_types::DateTime;
    use aws_smithy_types::body::SdkBody;

    const POOL: &str = "us-east-1_AbCdEf123";
    const SUB: &str = "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c";

    fn user(attributes: &[(&str, &str)]) -> UserType {
        let mut builder = UserType::builder()
            .username("ana")
            .user_create_date(DateTime::from_secs(1_700_000_000))
            .user_last_modified_date(DateTime::from_millis(1_795_457_327_123));
        for (name, value) in attributes {
            builder = builder.attributes(
                AttributeType::builder()
                    .name(*name)
                    .value(*value)
                    .build()
                    .unwrap(),
            );
        }
        builder.build()
    }

    #[test]
    fn a_listed_user_becomes_a_backfill_message_confirmed_when_last_modified() {
        let confirmed = confirmed_user(POOL, &user(&[("sub", SUB), ("email", "ana@example.com")])).unwrap();
        assert_eq!(confirmed.sub(), SUB);
        assert_eq!(confirmed.username(), "ana");
        assert_eq!(confirmed.source(), ConfirmationSource::Backfill);
        assert_eq!(confirmed.attribute("email"), Some("ana@example.com"));
        assert_eq!(
            shared::timestamp::format_rfc3339(confirmed.confirmed_at()),
            "2026-11-23T18:08:47.123Z"
        );
        let body = shared::envelope::encode(&confirmed);
        assert_eq!(shared::envelope::decode(&body).unwrap(), confirmed);
    }

    #[test]
    fn a_user_without_a_sub_is_refused() {
        assert_eq!(
            confirmed_user(POOL, &user(&[("email", "a@example.com")])),
            Err(UserError::InvalidSub)
        );
    }

    #[test]
    fn only_throttling_and_transient_errors_are_retried() {
        let service = |err: ListUsersError, status: u16| -> SdkError<ListUsersError, HttpResponse> {
            let response = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
            SdkError::service_error(err, response)
        };
        let throttled = ListUsersError::TooManyRequestsException(TooManyRequestsException::builder().build());
        assert!(is_retryable(&service(throttled, 400)));
        let internal = ListUsersError::InternalErrorException(InternalErrorException::builder().build());
        assert!(is_retryable(&service(internal, 500)));
        let missing =
            || ListUsersError::ResourceNotFoundException(ResourceNotFoundException::builder().build());
        assert!(!is_retryable(&service(missing(), 400)));
        // A gateway's 503 without a Cognito error code.
        assert!(is_retryable(&service(missing(), 503)));
    }

    #[test]
    fn exactly_the_statuses_that_mean_confirmed_at_least_once_are_selected() {
        let selected = [
            UserStatusType::Confirmed,
            UserStatusType::ExternalProvider,
            UserStatusType::ResetRequired,
            UserStatusType::Compromised,
        ];
        let not_selected = [
            UserStatusType::Unconfirmed,
            UserStatusType::ForceChangePassword,
            UserStatusType::Archived,
            UserStatusType::UnknownValue,
            UserStatusType::from("SOMETHING_NEW"),
        ];
        for status in &selected {
            assert!(must_be_synced(Some(status)), "{status:?}");
        }
        for status in &not_selected {
            assert!(!must_be_synced(Some(status)), "{status:?}");
        }
        assert!(!must_be_synced(None));
    }

    #[test]
    fn a_rate_above_the_user_list_quota_is_refused_naming_it() {
        assert!(check_rate(5.0, USER_LIST_DEFAULT_QUOTA).is_ok());
        assert!(check_rate(30.0, USER_LIST_DEFAULT_QUOTA).is_ok());
        let err = check_rate(31.0, USER_LIST_DEFAULT_QUOTA).unwrap_err();
        assert!(err.contains("UserList") && err.contains("30"), "{err}");
        assert!(check_rate(100.0, 120.0).is_ok());
    }

    #[test]
    fn rate_and_pool_id_flags_are_checked() {
        assert_eq!(parse_rate("2.5"), Ok(2.5));
        for bad in ["0", "-1", "abc", "inf", "NaN", "5000"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert!(parse_pool_id("us-east-1_AbC123").is_ok());
        assert!(parse_pool_id("AbC123").is_err());
    }

    #[test]
    fn a_sub_must_be_a_uuid_and_is_stored_lower_case() {
        const SUB: &str = "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c";
        assert_eq!(parse_sub(&SUB.to_uppercase()), Ok(SUB.to_owned()));
        assert!(parse_sub("ana@example.com").unwrap_err().contains("UUID"));
    }
}
