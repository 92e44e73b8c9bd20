//! When a send may start: under SES's limits as the account has them now.
//!
//! The decision is [`admission`], a plain function of what `GetAccount` said, the next free
//! slot of this environment's rate and the latest moment a send may still start in this
//! invocation. [`Pacing`] keeps the quota (read again after a minute) and the slot.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use welcome::backoff::retry_delay;
use welcome::quota::SendQuota;
use welcome::ses::Mailer;

/// How long what `GetAccount` said is trusted: the quota's use moves with every send, SES's
/// and the team's other mail's alike.
const QUOTA_TTL: Duration = Duration::from_secs(60);

/// Why a send waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// SES has paused the account's sending.
    SendingPaused,
    /// The rolling day's quota is used up.
    DailyQuota,
    /// This environment's share of the rate has no slot left in this invocation.
    Rate,
}

impl Hold {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendingPaused => "sending_paused",
            Self::DailyQuota => "daily_quota",
            Self::Rate => "rate",
        }
    }
}

/// Whether a send may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// After `wait` (the rate's next slot), which is then taken.
    Go { wait: Duration },
    /// Not in this invocation: hand the message back for `after`.
    Later { after: Duration, hold: Hold },
}

/// Whether a send may start at `now`, given the account's `quota` (`None`: unknown, and then
/// SES's own throttles pace the sends), this environment's `rate` (sends a second) and its
/// `next_slot`, and the `latest_start` this invocation allows. A message received
/// `receive_count` times waits the backoff's delay for a paused account or a spent quota.
pub fn admission(
    quota: Option<&SendQuota>,
    rate: Option<f64>,
    next_slot: Option<Instant>,
    now: Instant,
    latest_start: Instant,
    (receive_count, first_retry): (u32, Duration),
) -> Admission {
    if let Some(quota) = quota {
        if !quota.sending_enabled {
            return Admission::Later {
                after: retry_delay(receive_count, first_retry),
                hold: Hold::SendingPaused,
            };
        }
        if quota.daily_quota_reached() {
            return Admission::Later {
                after: retry_delay(receive_count, first_retry),
                hold: Hold::DailyQuota,
            };
        }
    }
    let slot = match (rate, next_slot) {
        (Some(_), Some(next)) => next.max(now),
        _ => now,
    };
    if slot > latest_start {
        // Never shorter than the backoff's delay: every hand-back uses up one of the queue's
        // receives, which must last more than a day.
        return Admission::Later {
            after: (slot - now).max(retry_delay(receive_count, first_retry)),
            hold: Hold::Rate,
        };
    }
    Admission::Go { wait: slot - now }
}

/// The quota as last read, and this environment's next free slot.
pub struct Pacing {
    share_percent: u8,
    environments: u32,
    first_retry: Duration,
    /// An async lock: the records of a batch that find the reading stale wait for one
    /// `GetAccount`, not one each.
    quota: tokio::sync::Mutex<Option<(Instant, Option<SendQuota>)>>,
    next_slot: Mutex<Option<Instant>>,
}

impl Pacing {
    pub fn new(share_percent: u8, environments: u32, first_retry: Duration) -> Self {
        Self {
            share_percent,
            environments,
            first_retry,
            quota: tokio::sync::Mutex::new(None),
            next_slot: Mutex::new(None),
        }
    }

    /// Admits a send (see [`admission`]), reading the quota from SES when the last reading is
    /// over a minute old; a send admitted takes its slot.
    pub async fn admit(&self, mailer: &Mailer, latest_start: Instant, receive_count: u32) -> Admission {
        let quota = self.quota(mailer).await;
        let rate = quota.map(|q| q.environment_rate(self.share_percent, self.environments));
        let mut next_slot = self.next_slot.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let admitted = admission(
            quota.as_ref(),
            rate,
            *next_slot,
            now,
            latest_start,
            (receive_count, self.first_retry),
        );
        if let (Admission::Go { wait }, Some(rate)) = (admitted, rate) {
            *next_slot = Some(now + wait + Duration::from_secs_f64(1.0 / rate));
        }
        admitted
    }

    /// Forgets the quota read: SES has just said something it does not show (a pause), so the
    /// next send reads it again.
    pub async fn forget_quota(&self) {
        *self.quota.lock().await = None;
    }

    async fn quota(&self, mailer: &Mailer) -> Option<SendQuota> {
        let mut reading = self.quota.lock().await;
        if let Some((read_at, quota)) = *reading
            && read_at.elapsed() < QUOTA_TTL
        {
            return quota;
        }
        let quota = match mailer.send_quota().await {
            Ok(quota) => Some(quota),
            Err(err) => {
                // Sent anyway: SES's throttles then pace the sends, and the queue retries them.
                tracing::warn!(event = "welcome_quota_unknown", code = err.code, status = err.status, error = %err);
                None
            }
        };
        *reading = Some((Instant::now(), quota));
        quota
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Duration = welcome::backoff::FIRST_RETRY;

    fn quota(sending_enabled: bool, sent_last_24_hours: f64) -> SendQuota {
        SendQuota {
            max_send_rate: 2.0,
            max_24_hour_send: 100.0,
            sent_last_24_hours,
            sending_enabled,
            production_access: true,
        }
    }

    #[test]
    fn a_paused_account_or_a_spent_daily_quota_waits_the_backoffs_delay_without_a_slot() {
        let now = Instant::now();
        let latest = now + Duration::from_secs(20);
        assert_eq!(
            admission(Some(&quota(false, 0.0)), Some(1.0), None, now, latest, (3, FIRST)),
            Admission::Later {
                after: retry_delay(3, FIRST),
                hold: Hold::SendingPaused
            }
        );
        assert_eq!(
            admission(
                Some(&quota(true, 100.0)),
                Some(1.0),
                None,
                now,
                latest,
                (1, FIRST)
            ),
            Admission::Later {
                after: retry_delay(1, FIRST),
                hold: Hold::DailyQuota
            }
        );
    }

    #[test]
    fn a_send_waits_for_its_slot_or_is_handed_back_when_the_slot_is_past_the_invocation() {
        let now = Instant::now();
        let latest = now + Duration::from_secs(5);
        let q = quota(true, 10.0);
        assert_eq!(
            admission(Some(&q), Some(1.0), None, now, latest, (1, FIRST)),
            Admission::Go { wait: Duration::ZERO }
        );
        assert_eq!(
            admission(
                Some(&q),
                Some(1.0),
                Some(now + Duration::from_secs(3)),
                now,
                latest,
                (1, FIRST)
            ),
            Admission::Go {
                wait: Duration::from_secs(3)
            }
        );
        assert_eq!(
            admission(
                Some(&q),
                Some(1.0),
                Some(now + Duration::from_secs(8)),
                now,
                latest,
                (1, FIRST)
            ),
            Admission::Later {
                after: FIRST,
                hold: Hold::Rate
            }
        );
    }

    #[test]
    fn an_unknown_quota_is_no_reason_to_wait() {
        let now = Instant::now();
        assert_eq!(
            admission(
                None,
                None,
                Some(now + Duration::from_secs(60)),
                now,
                now,
                (1, FIRST)
            ),
            Admission::Go { wait: Duration::ZERO }
        );
    }
}
