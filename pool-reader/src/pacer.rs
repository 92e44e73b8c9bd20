//! A client-side rate limit for calls that draw on an account-wide Cognito quota.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Request starts are spaced at least `1 / rate` seconds apart.
pub struct Pacer {
    interval: Duration,
    next_slot: Mutex<Option<Instant>>,
}

impl Pacer {
    pub fn per_second(rate: f64) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / rate),
            next_slot: Mutex::new(None),
        }
    }

    pub async fn wait(&self) {
        let delay = self.reserve(Instant::now());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }

    /// Takes the next free slot and returns how long after `now` it starts.
    fn reserve(&self, now: Instant) -> Duration {
        let mut next = self.next_slot.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = next.map_or(now, |n| n.max(now));
        *next = Some(slot + self.interval);
        slot - now
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_spaces_requests_by_the_rate() {
        let pacer = Pacer::per_second(5.0);
        let now = Instant::now();
        assert_eq!(pacer.reserve(now), Duration::ZERO);
        assert_eq!(pacer.reserve(now), Duration::from_millis(200));
        assert_eq!(pacer.reserve(now), Duration::from_millis(400));
        // After a quiet spell there is no debt to pay back, and no burst either.
        let later = now + Duration::from_secs(10);
        assert_eq!(pacer.reserve(later), Duration::ZERO);
        assert_eq!(pacer.reserve(later), Duration::from_millis(200));
    }
}
