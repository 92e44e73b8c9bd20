//! What a million confirmed sign-ups cost on AWS at the measured durations: this design and the
//! two common alternatives. List prices, us-east-1, arm64, on-demand, free tiers left out.

use std::time::Duration;

/// The prices used, and where they come from. Checked against AWS's pricing pages in 2025;
/// this machine cannot reach them, so re-check before quoting a figure.
pub const PRICES_AS_OF: &str =
    "AWS list prices for us-east-1 as published in 2025 (not re-checked from this machine)";
/// Lambda: per request.
pub const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
/// Lambda arm64: per GB-second (first pricing tier).
pub const LAMBDA_ARM64_GB_SECOND: f64 = 0.000_013_333_4;
/// SQS standard queue: per request (after the first million a month).
pub const SQS_REQUEST: f64 = 0.40 / 1e6;
/// DynamoDB on-demand: per write request unit (an item up to 1 KB).
pub const DYNAMODB_WRITE_UNIT: f64 = 0.625 / 1e6;
/// Step Functions standard workflows: per state transition.
pub const STEP_FUNCTIONS_TRANSITION: f64 = 0.025 / 1e3;

/// Lambda's cost of one invocation of `billed` duration at `memory_mb`. Lambda rounds the
/// duration up to the millisecond; for a custom runtime (`provided.al2023`) the init phase of
/// a cold start is billed too, so a cold invocation's `billed` includes it.
pub fn lambda_invocation(memory_mb: u32, billed: Duration) -> f64 {
    let ms = billed.as_secs_f64() * 1000.0;
    let gb_seconds = ms.ceil() / 1000.0 * f64::from(memory_mb) / 1024.0;
    LAMBDA_REQUEST + gb_seconds * LAMBDA_ARM64_GB_SECOND
}

/// SQS requests per sign-up in this design: one `SendMessage`, and the event source's
/// `ReceiveMessage` and `DeleteMessageBatch` shared by the batch (`batch` messages each). The
/// event source's empty long polls are a fixed cost per queue, not per sign-up, and left out.
pub fn sqs_requests_per_sign_up(batch: u32) -> f64 {
    1.0 + 2.0 / f64::from(batch.max(1))
}

/// DynamoDB write units per sign-up: the users item and the profiles item, each under 1 KB.
pub const WRITE_UNITS_PER_SIGN_UP: f64 = 2.0;

/// State transitions of the Step Functions variant per sign-up: the workflow's start, a
/// `PutItem` task per table and its end, as the seed article's workflow has them.
pub const STEP_FUNCTIONS_TRANSITIONS_PER_SIGN_UP: f64 = 4.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_cost_rounds_the_duration_up_to_the_millisecond() {
        let one_ms = lambda_invocation(1024, Duration::from_micros(100));
        assert!((one_ms - (LAMBDA_REQUEST + 0.001 * LAMBDA_ARM64_GB_SECOND)).abs() < 1e-15);
        assert!(
            lambda_invocation(128, Duration::from_millis(10))
                < lambda_invocation(256, Duration::from_millis(10))
        );
    }

    #[test]
    fn a_full_batch_shares_its_receive_and_delete() {
        assert!((sqs_requests_per_sign_up(10) - 1.2).abs() < 1e-12);
        assert!((sqs_requests_per_sign_up(1) - 3.0).abs() < 1e-12);
    }
}
