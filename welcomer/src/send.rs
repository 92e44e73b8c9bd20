//! One request to greet a user: admitted under SES's limits, claimed on the users item, sent
//! through SES, recorded (the README's "Welcome email" states the guarantee). What cannot be done
//! now is a [`Deferral`]: the handler hands the message back to the queue for that long.

use std::time::Duration;

use shared::timestamp::{epoch_ms, format_rfc3339};
use tables::{WelcomeClaim, WelcomeResult, WriteError};
use time::OffsetDateTime;
use tokio::time::Instant;
use welcome::backoff::retry_delay;
use welcome::message::Request;
use welcome::ses::{SendError, render};
use welcome::{Skip, Values};

use crate::deps::Deps;
use crate::pacing::{Admission, Hold};

/// What became of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Greeting {
    Sent {
        ses_message_id: String,
    },
    /// Sent by an earlier delivery: nothing sent now.
    AlreadySent,
    /// The user changed since the sign-up: deleted, or their email no longer verified.
    Dropped(Skip),
    /// SES refused for good: logged, counted and recorded on the users item (`ops welcome
    /// unsent` lists it).
    Refused(SendError),
    /// Sent, but not recorded: this delivery's claim was taken over meanwhile (its lease ran
    /// out first), or the record's write failed. Not retried, which could only send again.
    SentUnrecorded {
        ses_message_id: String,
    },
}

impl Greeting {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Sent { .. } => "sent",
            Self::AlreadySent => "already_sent",
            Self::Dropped(skip) => skip.as_str(),
            Self::Refused(_) => "refused",
            Self::SentUnrecorded { .. } => "sent_unrecorded",
        }
    }
}

/// Why a request waits, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deferral {
    pub after: Duration,
    pub reason: DeferReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeferReason {
    /// SES's limits, as `GetAccount` tells them, or this environment's share of the rate.
    Held(Hold),
    /// Another delivery claimed the send and its lease has not run out: it may be sending now.
    ClaimHeld,
    /// SES answered with a throttle (or another retryable refusal): nothing was sent.
    Throttled { code: String },
    /// SES's answer was lost (a timeout, a dropped connection, its 5xx): the mail may have
    /// gone. The claim stays until its lease runs out; the retry after it sends again.
    AnswerLost { code: String },
    /// The users table did not answer.
    Table,
    /// Too little of the invocation was left to send and record.
    NoTime,
}

impl DeferReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Held(hold) => hold.as_str(),
            Self::ClaimHeld => "claim_held",
            Self::Throttled { .. } => "throttled",
            Self::AnswerLost { .. } => "answer_lost",
            Self::Table => "table_unavailable",
            Self::NoTime => "no_time",
        }
    }
}

/// How long before the deadline a sent welcome's record must finish: the record's own bound
/// ends before the record's task is cut off at the deadline, so that it is reported as sent.
const RECORD_MARGIN: Duration = Duration::from_millis(100);

/// Greets the user `request` names, once, by `deadline`; `receive_count` is how often the
/// queue has delivered it (the backoff's step).
pub async fn greet(
    deps: &Deps,
    request: &Request,
    receive_count: u32,
    deadline: Instant,
) -> Result<Greeting, Deferral> {
    let welcome = &deps.config.welcome;
    // The claim, the send and the record each get the send's timeout: a send starts only with
    // all three left.
    let send_timeout = welcome.send_timeout;
    let latest_start = deadline
        .checked_sub(send_timeout * 3)
        .unwrap_or_else(Instant::now);
    match deps.pacing.admit(&deps.mailer, latest_start, receive_count).await {
        Admission::Later { after, hold } => {
            return Err(Deferral {
                after,
                reason: DeferReason::Held(hold),
            });
        }
        Admission::Go { wait } => tokio::time::sleep(wait).await,
    }
    let table_down = |_: WriteError| Deferral {
        after: retry_delay(receive_count, welcome.first_retry),
        reason: DeferReason::Table,
    };
    let now = OffsetDateTime::now_utc();
    let now_ms = epoch_ms(now);
    let lease_until_ms = now_ms + welcome.claim_lease.as_millis() as i64;
    let claim = uuid::Uuid::new_v4().to_string();
    let claimed = tokio::time::timeout(
        send_timeout,
        deps.store.claim_welcome(
            request.sub(),
            &claim,
            &format_rfc3339(now),
            now_ms,
            lease_until_ms,
        ),
    )
    .await
    .map_err(|_elapsed| Deferral {
        after: retry_delay(receive_count, welcome.first_retry),
        reason: DeferReason::Table,
    })?
    .map_err(table_down)?;
    // What the mail is rendered from and sent to, as the users item has it now.
    let (to, username, attributes) = match claimed {
        WelcomeClaim::Claimed {
            email,
            username,
            attributes,
        } => (email, username, attributes),
        WelcomeClaim::AlreadySent => return Ok(Greeting::AlreadySent),
        WelcomeClaim::UserDeleted => return Ok(Greeting::Dropped(Skip::UserDeleted)),
        WelcomeClaim::EmailNotVerified => return Ok(Greeting::Dropped(Skip::EmailNotVerified)),
        WelcomeClaim::Held { lease_until_ms } => {
            let left = lease_until_ms
                .saturating_sub(epoch_ms(OffsetDateTime::now_utc()))
                .max(0) as u64;
            return Err(Deferral {
                after: (Duration::from_millis(left) + Duration::from_secs(1))
                    .max(retry_delay(receive_count, welcome.first_retry)),
                reason: DeferReason::ClaimHeld,
            });
        }
    };
    if Instant::now() + send_timeout * 2 > deadline {
        // Claimed, not sent: give the claim up, so that the next try need not wait its lease.
        let _ = deps.store.release_welcome(request.sub(), &claim).await;
        return Err(Deferral {
            after: retry_delay(receive_count, welcome.first_retry),
            reason: DeferReason::NoTime,
        });
    }
    let values = Values {
        username: &username,
        attributes: &attributes,
    };
    match deps
        .mailer
        .send(&to, render(&welcome.content, &values), request.sub())
        .await
    {
        Ok(ses_message_id) => Ok(record_sent(deps, request.sub(), &claim, ses_message_id, deadline).await),
        Err(err) => {
            match after_failed_send(&err, (receive_count, welcome.first_retry), welcome.claim_lease) {
                FailedSend::Retry {
                    release_claim,
                    deferral,
                } => {
                    if release_claim {
                        let _ = deps.store.release_welcome(request.sub(), &claim).await;
                    }
                    if err.code == "SendingPausedException" {
                        // A pause GetAccount may not show yet (a configuration set's): read again.
                        deps.pacing.forget_quota().await;
                    }
                    Err(deferral)
                }
                FailedSend::Refused => {
                    let refused = WelcomeResult::Refused { code: &err.code };
                    deps.store
                        .record_welcome(request.sub(), &claim, refused)
                        .await
                        .map_err(table_down)?;
                    Ok(Greeting::Refused(err))
                }
            }
        }
    }
}

/// What follows a send SES did not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailedSend {
    /// Try again later; give the claim up first when nothing went out.
    Retry { release_claim: bool, deferral: Deferral },
    /// Refused for good: recorded, and listed by `ops welcome unsent`.
    Refused,
}

/// Decides what follows `err`, for a message received `receive_count` times and claims held for
/// `claim_lease`. A throttle answered by SES sent nothing: the claim is given up and the next try
/// claims afresh. A lost answer may have sent the mail: the claim is kept, so that no other
/// delivery sends before its lease runs out, and the retry waits at least that long.
pub fn after_failed_send(
    err: &SendError,
    (receive_count, first_retry): (u32, Duration),
    claim_lease: Duration,
) -> FailedSend {
    if !err.retryable {
        return FailedSend::Refused;
    }
    let code = err.code.clone();
    if err.certainly_not_sent {
        FailedSend::Retry {
            release_claim: true,
            deferral: Deferral {
                after: retry_delay(receive_count, first_retry),
                reason: DeferReason::Throttled { code },
            },
        }
    } else {
        FailedSend::Retry {
            release_claim: false,
            deferral: Deferral {
                after: retry_delay(receive_count, first_retry).max(claim_lease + Duration::from_secs(1)),
                reason: DeferReason::AnswerLost { code },
            },
        }
    }
}

async fn record_sent(
    deps: &Deps,
    sub: &str,
    claim: &str,
    ses_message_id: String,
    deadline: Instant,
) -> Greeting {
    let sent_at = format_rfc3339(OffsetDateTime::now_utc());
    let sent = WelcomeResult::Sent {
        at: &sent_at,
        message_id: &ses_message_id,
    };
    let record_by = deadline.checked_sub(RECORD_MARGIN).unwrap_or(deadline);
    let recorded = tokio::time::timeout_at(record_by, deps.store.record_welcome(sub, claim, sent)).await;
    match recorded {
        Ok(Ok(true)) => Greeting::Sent { ses_message_id },
        Ok(Ok(false)) => Greeting::SentUnrecorded { ses_message_id },
        Ok(Err(err)) => {
            tracing::error!(event = "welcome_unrecorded", sub, error = %err);
            Greeting::SentUnrecorded { ses_message_id }
        }
        Err(_elapsed) => {
            tracing::error!(
                event = "welcome_unrecorded",
                sub,
                error = "the record did not finish before the deadline"
            );
            Greeting::SentUnrecorded { ses_message_id }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(retryable: bool, certainly_not_sent: bool, code: &str) -> SendError {
        SendError {
            retryable,
            certainly_not_sent,
            code: code.to_owned(),
            status: None,
        }
    }

    const LEASE: Duration = Duration::from_secs(60);
    const FIRST: Duration = welcome::backoff::FIRST_RETRY;

    #[test]
    fn a_throttle_sent_nothing_so_the_claim_is_given_up_and_the_retry_backs_off() {
        let throttled = error(true, true, "TooManyRequestsException");
        assert_eq!(
            after_failed_send(&throttled, (4, FIRST), LEASE),
            FailedSend::Retry {
                release_claim: true,
                deferral: Deferral {
                    after: retry_delay(4, FIRST),
                    reason: DeferReason::Throttled {
                        code: "TooManyRequestsException".into()
                    }
                }
            }
        );
    }

    #[test]
    fn a_lost_answer_keeps_the_claim_and_waits_at_least_its_lease() {
        let lost = error(true, false, "timeout");
        let FailedSend::Retry {
            release_claim,
            deferral,
        } = after_failed_send(&lost, (1, FIRST), LEASE)
        else {
            panic!("retried");
        };
        assert!(!release_claim, "the mail may have gone: nobody else may send yet");
        assert!(deferral.after > LEASE, "{deferral:?}");
        assert_eq!(deferral.reason.as_str(), "answer_lost");
        // Later receives back off beyond the lease.
        let FailedSend::Retry { deferral, .. } = after_failed_send(&lost, (8, FIRST), LEASE) else {
            panic!("retried");
        };
        assert_eq!(deferral.after, retry_delay(8, FIRST));
    }

    #[test]
    fn a_refusal_for_good_is_recorded_not_retried() {
        assert_eq!(
            after_failed_send(&error(false, true, "MessageRejected"), (1, FIRST), LEASE),
            FailedSend::Refused
        );
    }
}
