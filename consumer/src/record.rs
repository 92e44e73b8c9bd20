//! One SQS record: decode the envelope, check the pool, write both items.

use std::time::Duration;

use backon::Retryable;
use shared::mapping::sync_items;
use shared::{ConfirmedUser, EnvelopeError, ProfileId, SyncItems, envelope};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::deps::Deps;
use crate::retry;
use crate::store::{PutOutcome, Table, WriteError};

/// A record that was synced (or found synced already).
#[derive(Debug)]
pub struct Synced {
    pub sub: String,
    /// Confirmation to write, when this delivery wrote anything.
    pub sync_lag: Option<Duration>,
    pub profile_id: ProfileId,
    pub user: PutOutcome,
    pub profile: PutOutcome,
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
    #[error("record did not finish before the invocation's deadline")]
    DeadlineExceeded,
    #[error("processing the record panicked")]
    Panicked,
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
            Self::DeadlineExceeded => "deadline_exceeded",
            Self::Panicked => "panicked",
        }
    }
}

/// What one message asks the consumer to write, decided without AWS.
#[derive(Debug)]
pub struct Plan {
    pub user: ConfirmedUser,
    pub items: SyncItems,
}

/// Decides what to write for a message `body` (the envelope decoded, the pool checked, both items
/// mapped with `now` and checked against DynamoDB's item size limit), or why nothing can be:
/// every error here is the message's own and will never succeed.
pub fn plan(body: Option<&str>, user_pool_id: &str, now: OffsetDateTime) -> Result<Plan, RecordError> {
    let user = envelope::decode(body.ok_or(RecordError::MissingBody)?)?;
    if user.user_pool_id() != user_pool_id {
        return Err(RecordError::ForeignUserPool {
            expected: user_pool_id.to_owned(),
            actual: user.user_pool_id().to_owned(),
        });
    }
    let items = sync_items(&user, now);
    if let Some((table, bytes)) = items.oversized() {
        return Err(RecordError::ItemTooLarge { table, bytes });
    }
    Ok(Plan { user, items })
}

/// What one record came to, and the retries it took on the way.
#[derive(Debug)]
pub struct Processed {
    pub result: Result<Synced, RecordError>,
    /// Retries of a put beyond the SDK's attempts (`WriteRetries`), whether or not the record
    /// then succeeded or ran out of time.
    pub write_retries: u32,
}

/// Processes one message body: [`plan`], then both conditional puts, by `deadline`. Safe to run
/// any number of times for the same body.
pub async fn process(deps: &Deps, body: Option<&str>, deadline: Instant) -> Processed {
    let Plan { user, items } = match plan(body, &deps.config.user_pool_id, OffsetDateTime::now_utc()) {
        Ok(plan) => plan,
        Err(err) => {
            return Processed {
                result: Err(err),
                write_retries: 0,
            };
        }
    };
    let (mut user_retries, mut profile_retries) = (0, 0);
    let writes = async {
        tokio::try_join!(
            put_with_retry(deps, Table::Users, &items.user, &mut user_retries),
            put_with_retry(deps, Table::Profiles, &items.profile, &mut profile_retries),
        )
    };
    let result = match tokio::time::timeout_at(deadline, writes).await {
        Ok(Ok((user_outcome, profile_outcome))) => {
            let wrote = user_outcome == PutOutcome::Written || profile_outcome == PutOutcome::Written;
            let lag = OffsetDateTime::now_utc() - user.confirmed_at();
            Ok(Synced {
                sub: user.sub().to_owned(),
                sync_lag: wrote.then(|| lag.try_into().unwrap_or_default()),
                profile_id: user.profile_id(),
                user: user_outcome,
                profile: profile_outcome,
            })
        }
        Ok(Err(err)) => Err(err.into()),
        Err(_elapsed) => Err(RecordError::DeadlineExceeded),
    };
    Processed {
        result,
        write_retries: user_retries + profile_retries,
    }
}

/// Retries what the SDK's own attempts did not absorb, as [`retry::write_backoff`] says,
/// counting each retry in `retries`.
async fn put_with_retry(
    deps: &Deps,
    table: Table,
    item: &shared::Item,
    retries: &mut u32,
) -> Result<PutOutcome, WriteError> {
    (|| deps.store.put_if_absent(table, item))
        .retry(retry::write_backoff())
        .when(|err: &WriteError| err.retryable)
        .notify(|err: &WriteError, wait: Duration| {
            *retries += 1;
            tracing::warn!(
                event = "write_retry",
                table = table.as_str(),
                retry_in_ms = wait.as_millis() as u64,
                error = %err,
            );
        })
        .await
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
        let plan = plan(Some(&body(POOL, &[("email", "ana@example.com")])), POOL, now).unwrap();
        assert_eq!(plan.user.sub(), SUB);
        assert_eq!(plan.items, sync_items(&plan.user, now));
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
}
