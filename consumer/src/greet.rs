//! The welcome of a first confirmation from sign-up, once both items are written: claimed on
//! the users item, sent through SES, recorded (the README's "Welcome email" states the
//! guarantee). A claim held by another delivery, or a failure worth another try, fails the
//! record so that SQS brings it back; the writes before it are idempotent, so the retry only
//! does this part.

use shared::ConfirmedUser;
use shared::timestamp::{epoch_ms, format_rfc3339};
use tables::{PutOutcome, WelcomeClaim, WelcomeResult};
use time::OffsetDateTime;
use tokio::time::Instant;
use welcome::ses::{SendError, render};
use welcome::{Skip, Values};

use crate::deps::Deps;
use crate::record::RecordError;
use crate::retry::{Service, retrying};

/// What became of a user's welcome in this delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Greeting {
    Sent {
        message_id: String,
    },
    /// Sent by an earlier delivery: nothing sent now.
    AlreadySent,
    Skipped(Skip),
    /// SES refused for good (an unverified sender, a missing template, a refused recipient):
    /// logged and counted; the claim is left to expire, and `ops welcome --unsent` lists it.
    Refused(SendError),
    /// Sent, but not recorded: this delivery's claim was taken over meanwhile (its lease ran
    /// out first), or the record's write failed. Not retried, which could only send again.
    SentUnrecorded {
        message_id: String,
    },
}

impl Greeting {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Sent { .. } => "sent",
            Self::AlreadySent => "already_sent",
            Self::Skipped(skip) => skip.as_str(),
            Self::Refused(_) => "refused",
            Self::SentUnrecorded { .. } => "sent_unrecorded",
        }
    }
}

/// Greets `user` if the welcome is on and they are to be greeted (`None`: the welcome is off).
///
/// The claim is bounded by `deadline`; then the send and its record go ahead only with time
/// for both (twice the send's timeout) left, so that the deadline cannot fall between them, and
/// the record is bounded just short of it: a record cut off after the send would bring the
/// message back to send again.
pub async fn greet(
    deps: &Deps,
    user: &ConfirmedUser,
    user_outcome: PutOutcome,
    deadline: Instant,
    retries: &mut u32,
) -> Result<Option<Greeting>, RecordError> {
    let Some(mailer) = &deps.mailer else {
        return Ok(None);
    };
    let deleted = user_outcome == PutOutcome::UserDeleted;
    if let Err(skip) = welcome::recipient(user.source(), user.attributes(), deleted) {
        return Ok(Some(Greeting::Skipped(skip)));
    }
    let now = OffsetDateTime::now_utc();
    let now_ms = epoch_ms(now);
    let lease_until_ms = now_ms + mailer.config().claim_lease.as_millis() as i64;
    let claim = uuid::Uuid::new_v4().to_string();
    let claimed_at = format_rfc3339(now);
    let claimed = tokio::time::timeout_at(
        deadline,
        retrying(Service::DynamoDb, "users", retries, || {
            deps.store
                .claim_welcome(user.sub(), &claim, &claimed_at, now_ms, lease_until_ms)
        }),
    )
    .await
    .map_err(|_elapsed| RecordError::DeadlineExceeded)??;
    // The address as the users item has it now: a change since the sign-up has reached it.
    let to = match claimed {
        WelcomeClaim::Claimed { email } => email,
        WelcomeClaim::AlreadySent => return Ok(Some(Greeting::AlreadySent)),
        WelcomeClaim::UserDeleted => return Ok(Some(Greeting::Skipped(Skip::UserDeleted))),
        WelcomeClaim::EmailNotVerified => return Ok(Some(Greeting::Skipped(Skip::EmailNotVerified))),
        WelcomeClaim::Held { lease_until_ms } => {
            return Err(RecordError::WelcomeClaimHeld { lease_until_ms });
        }
    };
    let send_timeout = mailer.config().send_timeout;
    if Instant::now() + send_timeout * 2 > deadline {
        // Claimed, not sent: the redelivery sends once the lease is over.
        return Err(RecordError::DeadlineExceeded);
    }
    let values = Values {
        username: user.username(),
        attributes: user.attributes(),
    };
    match mailer.send(&to, render(&mailer.config().content, &values)).await {
        Ok(message_id) => {
            let sent_at = format_rfc3339(OffsetDateTime::now_utc());
            let sent = WelcomeResult::Sent {
                at: &sent_at,
                message_id: &message_id,
            };
            let record_by = deadline.checked_sub(RECORD_MARGIN).unwrap_or(deadline);
            let recorded = tokio::time::timeout_at(
                record_by,
                retrying(Service::DynamoDb, "users", retries, || {
                    deps.store.record_welcome(user.sub(), &claim, sent.clone())
                }),
            )
            .await;
            Ok(Some(match recorded {
                Ok(Ok(true)) => Greeting::Sent { message_id },
                Ok(Ok(false)) => Greeting::SentUnrecorded { message_id },
                Ok(Err(err)) => {
                    tracing::error!(event = "welcome_unrecorded", sub = user.sub(), error = %err);
                    Greeting::SentUnrecorded { message_id }
                }
                Err(_elapsed) => {
                    tracing::error!(
                        event = "welcome_unrecorded",
                        sub = user.sub(),
                        error = "the record did not finish before the deadline"
                    );
                    Greeting::SentUnrecorded { message_id }
                }
            }))
        }
        Err(err) if err.retryable => Err(RecordError::WelcomeSend(err)),
        Err(err) => {
            let refused = WelcomeResult::Refused { code: &err.code };
            tokio::time::timeout_at(
                deadline,
                retrying(Service::DynamoDb, "users", retries, || {
                    deps.store.record_welcome(user.sub(), &claim, refused.clone())
                }),
            )
            .await
            .map_err(|_elapsed| RecordError::DeadlineExceeded)??;
            Ok(Some(Greeting::Refused(err)))
        }
    }
}

/// How long before the deadline a sent welcome's record must finish: the record's own bound
/// ends before the record's task is cut off at the deadline, so that it is reported as sent.
const RECORD_MARGIN: std::time::Duration = std::time::Duration::from_millis(100);
