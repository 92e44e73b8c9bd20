//! One SQS record: decode the message, check the pool, then either write both items of a
//! confirmation or apply a refresh signal (`refresh`).

use std::time::Duration;

use shared::envelope::{self, Message};
use shared::mapping::sync_items;
use shared::signal::{CognitoCall, Refresh, Signal};
use shared::{ConfirmedUser, EnvelopeError, ProfileId, SyncItems};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::deps::Deps;
use crate::refresh::{self, Refreshed};
use crate::retry::{Service, retrying};
use crate::welcome::{self, Welcome};
use tables::{PutOutcome, Table, WriteError};

/// A confirmation that was synced (or found synced already).
#[derive(Debug)]
pub struct Synced {
    pub sub: String,
    /// Confirmation to write, when this delivery wrote anything.
    pub sync_lag: Option<Duration>,
    pub profile_id: ProfileId,
    pub user: PutOutcome,
    pub profile: PutOutcome,
    /// The welcome's request (`None`: off). An error fails the record, for SQS to bring back:
    /// the items above are written either way, and the retry finds them and only asks again.
    pub welcome: Option<Result<Welcome, RecordError>>,
}

impl Synced {
    /// Whether the record is done (else it is reported failed, to come back).
    pub fn is_done(&self) -> bool {
        !matches!(self.welcome, Some(Err(_)))
    }
}

/// What a record came to when it succeeded.
#[derive(Debug)]
pub enum Outcome {
    Synced(Synced),
    Refreshed(Refreshed),
    /// A Cognito call that names no user: nothing to do.
    Unattributable(CognitoCall),
}

/// Why a record failed. Every message is safe to log: no value from the body appears in it.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("message has no body")]
    MissingBody,
    #[error("message is not a valid envelope: {0}")]
    InvalidEnvelope(#[from] EnvelopeError),
    #[error("message is for user pool {actual}, but this consumer serves {expected}")]
    ForeignUserPool { expected: String, actual: String },
    #[error(
        "the {table} item would be {bytes} bytes, over DynamoDB's 400 KB item limit; nothing was written"
    )]
    ItemTooLarge { table: &'static str, bytes: usize },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("reading the user from Cognito failed: {0}")]
    Read(#[from] pool_reader::ReadError),
    #[error("the users item changed under each of {rounds} refreshes in a row; retrying later")]
    KeptChanging { rounds: u32 },
    #[error("record did not finish before the invocation's deadline")]
    DeadlineExceeded,
    #[error("the welcome could not be asked for on the welcome queue ({detail}); retrying later")]
    WelcomeEnqueue { detail: String },
    #[error("processing the record panicked")]
    Panicked,
}

impl From<sqs_batch::Isolation> for RecordError {
    fn from(isolation: sqs_batch::Isolation) -> Self {
        match isolation {
            sqs_batch::Isolation::DeadlineExceeded => Self::DeadlineExceeded,
            sqs_batch::Isolation::Panicked => Self::Panicked,
        }
    }
}

impl RecordError {
    /// The message itself is bad (it will never succeed): counted as `InvalidMessages`.
    pub fn is_invalid_message(&self) -> bool {
        matches!(
            self,
            Self::MissingBody
                | Self::InvalidEnvelope(_)
                | Self::ForeignUserPool { .. }
                | Self::ItemTooLarge { .. }
        )
    }

    /// A short, stable label for logs, metrics and `dlq peek`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingBody => "missing_body",
            Self::InvalidEnvelope(e) => e.reason(),
            Self::ForeignUserPool { .. } => "foreign_user_pool",
            Self::ItemTooLarge { .. } => "item_too_large",
            Self::Write(e) if e.retryable => "write_failed_retryable",
            Self::Write(_) => "write_failed",
            Self::Read(e) if e.is_retryable() => "cognito_read_failed_retryable",
            Self::Read(_) => "cognito_read_failed",
            Self::KeptChanging { .. } => "kept_changing",
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::WelcomeEnqueue { .. } => "welcome_enqueue_failed_retryable",
            Self::Panicked => "panicked",
        }
    }
}

/// What one message asks the consumer to do, decided without AWS.
#[derive(Debug)]
pub enum Plan {
    /// Write both items of a confirmation, create-only.
    Confirmation { user: ConfirmedUser, items: SyncItems },
    /// Read the user from Cognito and apply their state.
    Refresh(Refresh),
    /// Nothing to do: a Cognito call without a sub.
    Unattributable(CognitoCall),
}

/// Decides what to do for a message `body` (decoded, the pool checked; for a confirmation both
/// items mapped with `now` and checked against DynamoDB's item size limit), or why nothing can
/// be done: every error here is the message's own and will never succeed.
pub fn plan(body: Option<&str>, user_pool_id: &str, now: OffsetDateTime) -> Result<Plan, RecordError> {
    let foreign = |actual: &str| RecordError::ForeignUserPool {
        expected: user_pool_id.to_owned(),
        actual: actual.to_owned(),
    };
    match envelope::decode_message(body.ok_or(RecordError::MissingBody)?)? {
        Message::Confirmation(user) => {
            if user.user_pool_id() != user_pool_id {
                return Err(foreign(user.user_pool_id()));
            }
            let items = sync_items(&user, now);
            if let Some((table, bytes)) = items.oversized() {
                return Err(RecordError::ItemTooLarge { table, bytes });
            }
            Ok(Plan::Confirmation { user, items })
        }
        Message::Signal(Signal::Refresh(refresh)) => match refresh.user_pool_id() {
            // A call made with an access token names no pool: the user is looked up in ours.
            Some(pool) if pool != user_pool_id => Err(foreign(pool)),
            _ => Ok(Plan::Refresh(refresh)),
        },
        Message::Signal(Signal::Unattributable(call)) => Ok(Plan::Unattributable(call)),
    }
}

/// What one record came to, and the retries it took on the way.
#[derive(Debug)]
pub struct Processed {
    pub result: Result<Outcome, RecordError>,
    /// Retries of a DynamoDB call beyond the SDK's attempts (`WriteRetries`), whether or not
    /// the record then succeeded or ran out of time.
    pub write_retries: u32,
    /// Retries of a Cognito read beyond the SDK's attempts (`CognitoRetries`).
    pub cognito_retries: u32,
}

/// Retries counted while a record runs, by service.
#[derive(Debug, Default)]
pub struct Retries {
    pub dynamodb: u32,
    pub cognito: u32,
}

/// Processes one message body: [`plan`], then its writes, by `deadline`. Safe to run any number
/// of times for the same body.
pub async fn process(deps: &Deps, body: Option<&str>, deadline: Instant) -> Processed {
    let mut retries = Retries::default();
    let result = match plan(body, &deps.config.user_pool_id, OffsetDateTime::now_utc()) {
        Err(err) => Err(err),
        Ok(Plan::Unattributable(call)) => Ok(Outcome::Unattributable(call)),
        Ok(Plan::Confirmation { user, items }) => {
            let (mut user_retries, mut profile_retries) = (0, 0);
            let writes = async {
                tokio::try_join!(
                    retrying(
                        Service::DynamoDb,
                        Table::Users.as_str(),
                        &mut user_retries,
                        || { deps.store.put_if_absent(Table::Users, &items.user) }
                    ),
                    retrying(
                        Service::DynamoDb,
                        Table::Profiles.as_str(),
                        &mut profile_retries,
                        || { deps.store.put_if_absent(Table::Profiles, &items.profile) }
                    ),
                )
            };
            let result = tokio::time::timeout_at(deadline, writes).await;
            retries.dynamodb += user_retries + profile_retries;
            match result {
                Ok(Ok((user_outcome, profile_outcome))) => {
                    let mut synced = synced(&user, user_outcome, profile_outcome);
                    let requested =
                        tokio::time::timeout_at(deadline, welcome::request(deps, &user, user_outcome)).await;
                    synced.welcome = requested.unwrap_or(Some(Err(RecordError::DeadlineExceeded)));
                    Ok(Outcome::Synced(synced))
                }
                Ok(Err(err)) => Err(err.into()),
                Err(_elapsed) => Err(RecordError::DeadlineExceeded),
            }
        }
        Ok(Plan::Refresh(signal)) => {
            match tokio::time::timeout_at(deadline, refresh::apply(deps, &signal, &mut retries)).await {
                Ok(result) => result.map(Outcome::Refreshed),
                Err(_elapsed) => Err(RecordError::DeadlineExceeded),
            }
        }
    };
    Processed {
        result,
        write_retries: retries.dynamodb,
        cognito_retries: retries.cognito,
    }
}

fn synced(user: &ConfirmedUser, user_outcome: PutOutcome, profile_outcome: PutOutcome) -> Synced {
    let wrote = user_outcome == PutOutcome::Written || profile_outcome == PutOutcome::Written;
    let lag = OffsetDateTime::now_utc() - user.confirmed_at();
    Synced {
        sub: user.sub().to_owned(),
        sync_lag: wrote.then(|| lag.try_into().unwrap_or_default()),
        profile_id: user.profile_id(),
        user: user_outcome,
        profile: profile_outcome,
        welcome: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::ConfirmationSource;
    use std::collections::BTreeMap;

    const POOL: &str = "us-east-1_A1b2C3";
    const SUB: &str = "0b5e4a3c-1f2d-4e6a-9b8c-7d6e5f4a3b2c";

    fn body(pool: &str, attributes: &[(&str, &str)]) -> String {
        let mut all: BTreeMap<String, String> = attributes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        all.insert("sub".into(), SUB.into());
        let user = ConfirmedUser::new(
            pool,
            SUB,
            "ana",
            all,
            OffsetDateTime::UNIX_EPOCH,
            ConfirmationSource::PostConfirmation,
        )
        .unwrap();
        envelope::encode(&user)
    }

    #[test]
    fn a_valid_message_plans_both_items_stamped_with_now() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(1);
        let Plan::Confirmation { user, items } =
            plan(Some(&body(POOL, &[("email", "ana@example.com")])), POOL, now).unwrap()
        else {
            panic!("a confirmation plans a confirmation")
        };
        assert_eq!(user.sub(), SUB);
        assert_eq!(items, sync_items(&user, now));
    }

    #[test]
    fn a_message_that_can_never_succeed_is_refused_before_any_write() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let reason = |body: Option<&str>| plan(body, POOL, now).unwrap_err().reason();
        assert_eq!(reason(None), "missing_body");
        assert_eq!(reason(Some("not json")), "not_json");
        assert_eq!(reason(Some(&body("eu-west-1_Other1", &[]))), "foreign_user_pool");
        let huge = "x".repeat(410 * 1024);
        let err = plan(Some(&body(POOL, &[("custom:bio", &huge)])), POOL, now).unwrap_err();
        assert!(matches!(err, RecordError::ItemTooLarge { .. }), "{err}");
        assert!(err.is_invalid_message());
    }

    #[test]
    fn a_signal_for_another_pool_is_refused_and_one_naming_no_pool_is_looked_up_in_ours() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let other = Refresh::requested("eu-west-1_Other1", SUB, None).unwrap();
        let err = plan(Some(&envelope::encode_refresh(&other)), POOL, now).unwrap_err();
        assert_eq!(err.reason(), "foreign_user_pool");
        let token_call = serde_json::json!({
            "version": "0", "detail-type": "AWS API Call via CloudTrail", "source": "aws.cognito-idp",
            "detail": {"eventName": "DeleteUser", "requestParameters": {"accessToken": "HIDDEN_DUE_TO_SECURITY_REASONS"},
                       "additionalEventData": {"sub": SUB}}
        });
        let Plan::Refresh(refresh) = plan(Some(&token_call.to_string()), POOL, now).unwrap() else {
            panic!("a call naming a sub is a refresh")
        };
        assert_eq!((refresh.sub(), refresh.user_pool_id()), (SUB, None));
        let anonymous = serde_json::json!({
            "version": "0", "detail-type": "AWS API Call via CloudTrail", "source": "aws.cognito-idp",
            "detail": {"eventName": "AdminDisableUser", "requestParameters": {"userPoolId": POOL}}
        });
        assert!(matches!(
            plan(Some(&anonymous.to_string()), POOL, now),
            Ok(Plan::Unattributable(CognitoCall::AdminDisableUser))
        ));
    }
}
