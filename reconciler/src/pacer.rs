//! The walk's `ListUsers` rate: at most the configured rate, halved on every throttle and
//! regained a tenth at a time on success.
//!
//! `ListUsers` draws on Cognito's `UserList` quota (30 requests per second per account and
//! region, not adjustable), which every other tool in the account shares. A throttle means
//! someone else needs it now: the walk slows down instead of failing, and goes on at the lower
//! rate until the quota has room again.

use std::time::Duration;

use tokio::time::Instant;

/// The slowest the walk goes: one page every 20 seconds.
const MIN_RATE: f64 = 0.05;

#[derive(Debug)]
pub struct AdaptivePacer {
    ceiling: f64,
    rate: f64,
    next_slot: Option<Instant>,
}

impl AdaptivePacer {
    pub fn per_second(ceiling: f64) -> Self {
        let ceiling = ceiling.max(MIN_RATE);
        Self {
            ceiling,
            rate: ceiling,
            next_slot: None,
        }
    }

    /// Requests per second now.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// How long after `now` the next request may start; takes that slot.
    pub fn reserve(&mut self, now: Instant) -> Duration {
        self.reserve_before(now, None).unwrap_or_default()
    }

    /// [`Self::reserve`], unless the slot starts at or after `deadline`: then `None`, and the
    /// slot stays free (a request not made must not push the next one further out).
    pub fn reserve_before(&mut self, now: Instant, deadline: Option<Instant>) -> Option<Duration> {
        let slot = self.next_slot.map_or(now, |next| next.max(now));
        if deadline.is_some_and(|deadline| slot >= deadline) {
            return None;
        }
        self.next_slot = Some(slot + Duration::from_secs_f64(1.0 / self.rate));
        Some(slot - now)
    }

    /// How long after `now` the next request could start.
    pub fn next_slot_in(&self, now: Instant) -> Duration {
        self.next_slot
            .map_or(Duration::ZERO, |next| next.saturating_duration_since(now))
    }

    /// Cognito refused a request for the rate: half as fast, and the next request waits a
    /// whole interval at the new rate.
    pub fn throttled(&mut self, now: Instant) {
        self.rate = (self.rate / 2.0).max(MIN_RATE);
        self.next_slot = Some(now + Duration::from_secs_f64(1.0 / self.rate));
    }

    pub fn succeeded(&mut self) {
        self.rate = (self.rate + self.ceiling / 10.0).min(self.ceiling);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_spaced_by_the_rate() {
        let mut pacer = AdaptivePacer::per_second(5.0);
        let now = Instant::now();
        assert_eq!(pacer.reserve(now), Duration::ZERO);
        assert_eq!(pacer.reserve(now), Duration::from_millis(200));
        assert_eq!(pacer.reserve(now), Duration::from_millis(400));
    }

    #[test]
    fn a_slot_past_the_deadline_is_not_taken() {
        let mut pacer = AdaptivePacer::per_second(1.0);
        let now = Instant::now();
        assert_eq!(pacer.reserve(now), Duration::ZERO);
        let deadline = Some(now + Duration::from_millis(500));
        // Asked again and again before the deadline, the next slot stays one second out.
        for _ in 0..100 {
            assert_eq!(pacer.reserve_before(now, deadline), None);
        }
        assert_eq!(pacer.next_slot_in(now), Duration::from_secs(1));
        assert_eq!(pacer.reserve_before(now, None), Some(Duration::from_secs(1)));
    }

    #[test]
    fn a_throttle_halves_the_rate_and_success_regains_it_slowly() {
        let mut pacer = AdaptivePacer::per_second(4.0);
        let now = Instant::now();
        pacer.throttled(now);
        assert_eq!(pacer.rate(), 2.0);
        assert_eq!(
            pacer.reserve(now),
            Duration::from_millis(500),
            "a whole interval at the new rate"
        );
        pacer.throttled(now);
        assert_eq!(pacer.rate(), 1.0);
        for _ in 0..5 {
            pacer.succeeded();
        }
        assert!((pacer.rate() - 3.0).abs() < 1e-9, "{}", pacer.rate());
        for _ in 0..100 {
            pacer.succeeded();
        }
        assert_eq!(pacer.rate(), 4.0, "never above the configured rate");
        for _ in 0..100 {
            pacer.throttled(now);
        }
        assert_eq!(pacer.rate(), MIN_RATE, "slower, never stopped");
    }
}
