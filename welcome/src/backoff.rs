//! When a welcome that could not go out now is tried again.
//!
//! A throttled send, a reached daily quota, a paused account, a send that may have gone (its
//! answer lost) or a claim another delivery holds does not fail anything: the welcomer hands the
//! message back to the welcome queue with a delay that doubles with each receive, up to an hour
//! (whatever the reason, never less: SQS gives up by receives, so no short wait may use one
//! up), and gives up (the message moves to the welcome DLQ, where `ops welcome unsent` lists
//! it) only after more than a day of tries, since SES's daily quota is a rolling 24 hours.

use std::time::Duration;

/// The welcome queue's `maxReceiveCount`: the receive after which SQS moves a message to the
/// welcome DLQ. The template's value; `tests/tests/end_to_end/template.rs` checks they agree.
pub const GIVE_UP_AFTER_RECEIVES: u32 = 36;

/// The first delay, unless `WELCOME_FIRST_RETRY_SECONDS` says otherwise.
pub const FIRST_RETRY: Duration = Duration::from_secs(60);
const LONGEST: Duration = Duration::from_secs(3_600);

/// How long a message received `receive_count` times (1 the first time) waits before the next
/// try: `first` (a minute), doubled at each receive, an hour at most.
pub fn retry_delay(receive_count: u32, first: Duration) -> Duration {
    let doublings = receive_count.saturating_sub(1).min(16);
    first.saturating_mul(1 << doublings).min(LONGEST)
}

/// The longest a message keeps being tried, from its first receive to its last: the delays
/// before each of the receives that follow it.
pub fn patience(first: Duration) -> Duration {
    (1..GIVE_UP_AFTER_RECEIVES).map(|n| retry_delay(n, first)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_from_a_minute_to_an_hour() {
        let delays: Vec<u64> = (1..=9).map(|n| retry_delay(n, FIRST_RETRY).as_secs()).collect();
        assert_eq!(delays, [60, 120, 240, 480, 960, 1_920, 3_600, 3_600, 3_600]);
        assert_eq!(retry_delay(0, FIRST_RETRY), FIRST_RETRY);
        assert_eq!(retry_delay(u32::MAX, FIRST_RETRY), LONGEST);
    }

    #[test]
    fn a_message_is_tried_for_more_than_the_daily_quotas_day_before_it_is_given_up() {
        let day = Duration::from_secs(24 * 3_600);
        let patience = patience(FIRST_RETRY);
        assert!(patience > day, "{patience:?}");
        // And not much longer: a welcome more than a day and a half late is not worth sending.
        assert!(patience < day * 3 / 2, "{patience:?}");
    }
}
