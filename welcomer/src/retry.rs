//! The welcomer's retry policy, in one place.
//!
//! | layer | what it absorbs | bound |
//! |---|---|---|
//! | SDK standard retry of a DynamoDB or SQS call: [`sdk_retry`], [`sdk_timeouts`] | a blip in one call | 4 attempts, 2 s per attempt, 6 s per call |
//! | none for `SendEmail` (`welcome::ses::Mailer::connect`) | — | one attempt: a repeat after a lost answer sends twice |
//! | the welcome queue: the record handed back with a delay ([`welcome::backoff`]) | SES's throttles, its daily quota, a paused account, a claim another delivery holds, a send whose answer was lost, a table that does not answer | a minute doubling to an hour, 36 receives (more than a day), then the welcome DLQ |
//!
//! The queue is the retry that matters: it waits minutes to hours, which no call may, and it
//! never fails anything else (the user's sync is done before the welcome is asked for).

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;

/// Attempts per DynamoDB or SQS call, the first included.
const ATTEMPTS: u32 = 4;

pub fn sdk_retry() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(ATTEMPTS)
}

pub fn sdk_timeouts() -> TimeoutConfig {
    sdk_config::record_call_timeouts()
}
