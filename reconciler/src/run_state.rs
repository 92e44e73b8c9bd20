//! The run's state item: one per pool, in the stack's reconcile state table. It makes a run a
//! single chain however SQS delivers its messages.
//!
//! SQS delivers at least once, and an invocation that dies after sending the next message but
//! before its own is deleted leaves both on the queue. Without a record of which step a run is
//! at, each would go on and the run would fork into two chains, each walking the pool. So
//! every invocation first *claims* its step with a conditional update: the step must be ahead
//! of the run's recorded step, or equal to it with the earlier claim's lease over (that
//! invocation is past its deadline, so dead, and its message came back). A message whose claim
//! is refused is dropped with the reason logged; one whose step is held by a live claim comes
//! back later. A start claims step 0 of a new run unless another run is live.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use std::collections::HashMap;

/// A run whose lease ended this long ago has lost its chain (its message in the dead-letter
/// queue or purged): a new start supersedes it. A live run claims a step at least every
/// ~25 minutes (a hand-on delayed at most 15 minutes, a dead invocation's message back after
/// the 10-minute visibility timeout), so an hour never supersedes a live one.
pub const STALLED_AFTER_MS: u64 = 60 * 60 * 1000;

/// A claim of one step of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim<'a> {
    pub run_id: &'a str,
    pub step: u64,
    /// RFC 3339, the run's.
    pub started_at: &'a str,
    /// The invocation's deadline, epoch milliseconds: the claimant is surely gone after it.
    pub lease_until_ms: u64,
    pub now_ms: u64,
    /// `Some` for a start (step 0 of a new run): who asked for it.
    pub requested_by: Option<&'a str>,
}

/// What the state item held when a claim was refused.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Held {
    pub run_id: String,
    pub step: u64,
    pub lease_until_ms: u64,
    pub finished: bool,
}

/// Why a claim was refused, and what becomes of its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A start while another run is live: dropped (the schedule's next start tries again).
    RunInProgress { run_id: String },
    /// The run has already passed this step (a duplicate or redelivered message whose
    /// successor went on), or finished: dropped.
    AlreadyDone { held_step: u64, finished: bool },
    /// A newer run has replaced this one (a cursor redriven after its run was superseded):
    /// dropped.
    Superseded { by_run: String },
    /// Another invocation holds this very step and may be alive: the message comes back after
    /// the visibility timeout, when that claim has either moved on or expired.
    HeldByLiveClaim { lease_until_ms: u64 },
}

impl Refusal {
    /// Whether the message is dropped (the handler returns success) rather than retried.
    pub fn drops_message(&self) -> bool {
        !matches!(self, Refusal::HeldByLiveClaim { .. })
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::RunInProgress { .. } => "another run is in progress",
            Refusal::AlreadyDone { finished: true, .. } => "the run has finished",
            Refusal::AlreadyDone { .. } => "the run has passed this step",
            Refusal::Superseded { .. } => "a newer run has superseded this one",
            Refusal::HeldByLiveClaim { .. } => "another invocation holds this step",
        }
    }
}

/// Why a claim with these values was refused, given what the item held (the condition of
/// [`RunStates::claim`] in plain code; `None` if the item vanished in between).
pub fn refusal(claim: &Claim<'_>, held: Option<&Held>) -> Refusal {
    let Some(held) = held else {
        // Only reachable if the item was deleted between the update and now; the message
        // comes back and claims again.
        return Refusal::HeldByLiveClaim { lease_until_ms: 0 };
    };
    if held.run_id != claim.run_id {
        return if claim.requested_by.is_some() {
            Refusal::RunInProgress {
                run_id: held.run_id.clone(),
            }
        } else {
            Refusal::Superseded {
                by_run: held.run_id.clone(),
            }
        };
    }
    if held.finished || held.step > claim.step {
        return Refusal::AlreadyDone {
            held_step: held.step,
            finished: held.finished,
        };
    }
    Refusal::HeldByLiveClaim {
        lease_until_ms: held.lease_until_ms,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunStateError {
    #[error("{operation} on the reconcile state table failed: {detail}")]
    Table { operation: &'static str, detail: String },
}

/// The reconcile state table, for one pool.
#[derive(Debug, Clone)]
pub struct RunStates {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    user_pool_id: String,
}

/// A new run, or this run's own earlier claim of an earlier step or of this one expired. An
/// absent item is claimable by any message: the first run, or a cursor of a run begun before
/// the table existed (an upgrade) adopting it.
const CONTINUE_CONDITION: &str = "attribute_not_exists(run_id) OR (run_id = :run AND attribute_not_exists(finished_at) AND (step < :step OR (step = :step AND lease_until < :now)))";
/// A start: as a continue of its own run (a redelivered start), or a new run once the last
/// has finished or stalled.
const START_CONDITION: &str = "attribute_not_exists(run_id) OR (run_id = :run AND attribute_not_exists(finished_at) AND (step < :step OR (step = :step AND lease_until < :now))) OR (run_id <> :run AND (attribute_exists(finished_at) OR lease_until < :stalled))";

impl RunStates {
    pub fn new(dynamodb: aws_sdk_dynamodb::Client, table: &str, user_pool_id: &str) -> Self {
        Self {
            dynamodb,
            table: table.to_owned(),
            user_pool_id: user_pool_id.to_owned(),
        }
    }

    fn key(&self) -> AttributeValue {
        AttributeValue::S(self.user_pool_id.clone())
    }

    /// Claims `claim`'s step of its run; `Err(Refusal)` inside `Ok` when the state says no.
    pub async fn claim(&self, claim: &Claim<'_>) -> Result<Result<(), Refusal>, RunStateError> {
        let number = |n: u64| AttributeValue::N(n.to_string());
        let mut update = self
            .dynamodb
            .update_item()
            .table_name(&self.table)
            .key("user_pool_id", self.key())
            .expression_attribute_values(":run", AttributeValue::S(claim.run_id.to_owned()))
            .expression_attribute_values(":step", number(claim.step))
            .expression_attribute_values(":lease", number(claim.lease_until_ms))
            .expression_attribute_values(":now", number(claim.now_ms))
            .expression_attribute_values(":started", AttributeValue::S(claim.started_at.to_owned()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        update = match claim.requested_by {
            Some(requested_by) => update
                .update_expression(
                    "SET run_id = :run, step = :step, lease_until = :lease, started_at = :started, requested_by = :by REMOVE finished_at",
                )
                .condition_expression(START_CONDITION)
                .expression_attribute_values(":by", AttributeValue::S(requested_by.to_owned()))
                .expression_attribute_values(
                    ":stalled",
                    number(claim.now_ms.saturating_sub(STALLED_AFTER_MS)),
                ),
            None => update
                .update_expression(
                    "SET run_id = :run, step = :step, lease_until = :lease, started_at = :started",
                )
                .condition_expression(CONTINUE_CONDITION),
        };
        match update.send().await {
            Ok(_) => Ok(Ok(())),
            Err(SdkError::ServiceError(err))
                if matches!(err.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                let UpdateItemError::ConditionalCheckFailedException(failed) = err.into_err() else {
                    unreachable!("matched above")
                };
                let held = failed.item().map(held_of);
                Ok(Err(refusal(claim, held.as_ref())))
            }
            Err(err) => Err(RunStateError::Table {
                operation: "UpdateItem",
                detail: sdk_config::detail(&err),
            }),
        }
    }

    /// Marks the run finished at `step`, if it still holds that step: `false` if not (its
    /// claim was taken over, so the run's result is another invocation's to report).
    pub async fn finish(&self, run_id: &str, step: u64, finished_at: &str) -> Result<bool, RunStateError> {
        let result = self
            .dynamodb
            .update_item()
            .table_name(&self.table)
            .key("user_pool_id", self.key())
            .update_expression("SET finished_at = :finished")
            .condition_expression("run_id = :run AND step = :step AND attribute_not_exists(finished_at)")
            .expression_attribute_values(":finished", AttributeValue::S(finished_at.to_owned()))
            .expression_attribute_values(":run", AttributeValue::S(run_id.to_owned()))
            .expression_attribute_values(":step", AttributeValue::N(step.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(err))
                if matches!(err.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(false)
            }
            Err(err) => Err(RunStateError::Table {
                operation: "UpdateItem",
                detail: sdk_config::detail(&err),
            }),
        }
    }
}

fn held_of(item: &HashMap<String, AttributeValue>) -> Held {
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Held {
        run_id: item
            .get("run_id")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default(),
        step: number("step"),
        lease_until_ms: number("lease_until"),
        finished: item.contains_key("finished_at"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(run_id: &str, step: u64, start: bool) -> Claim<'_> {
        Claim {
            run_id,
            step,
            started_at: "2026-12-03T00:00:00Z",
            lease_until_ms: 2_000,
            now_ms: 1_000,
            requested_by: start.then_some("schedule"),
        }
    }

    fn held(run_id: &str, step: u64, finished: bool) -> Held {
        Held {
            run_id: run_id.to_owned(),
            step,
            lease_until_ms: 1_500,
            finished,
        }
    }

    #[test]
    fn a_start_while_another_run_is_live_is_dropped() {
        let refused = refusal(&claim("b", 0, true), Some(&held("a", 7, false)));
        assert_eq!(refused, Refusal::RunInProgress { run_id: "a".into() });
        assert!(refused.drops_message());
    }

    #[test]
    fn a_cursor_of_a_replaced_run_is_dropped() {
        let refused = refusal(&claim("a", 3, false), Some(&held("b", 1, false)));
        assert_eq!(refused, Refusal::Superseded { by_run: "b".into() });
        assert!(refused.drops_message());
    }

    #[test]
    fn a_step_the_run_has_passed_or_a_finished_run_is_dropped() {
        for (state, finished) in [(held("a", 4, false), false), (held("a", 3, true), true)] {
            let refused = refusal(&claim("a", 3, false), Some(&state));
            assert_eq!(
                refused,
                Refusal::AlreadyDone {
                    held_step: state.step,
                    finished
                }
            );
            assert!(refused.drops_message());
        }
        // A redelivered start of a run that went on.
        let refused = refusal(&claim("a", 0, true), Some(&held("a", 2, false)));
        assert!(matches!(refused, Refusal::AlreadyDone { held_step: 2, .. }));
    }

    #[test]
    fn a_step_held_by_a_live_claim_comes_back_later() {
        let refused = refusal(&claim("a", 3, false), Some(&held("a", 3, false)));
        assert_eq!(
            refused,
            Refusal::HeldByLiveClaim {
                lease_until_ms: 1_500
            }
        );
        assert!(!refused.drops_message());
    }

    #[test]
    fn a_refused_item_is_read_back() {
        let item = HashMap::from([
            ("user_pool_id".to_owned(), AttributeValue::S("p".into())),
            ("run_id".to_owned(), AttributeValue::S("r".into())),
            ("step".to_owned(), AttributeValue::N("12".into())),
            ("lease_until".to_owned(), AttributeValue::N("99".into())),
            ("finished_at".to_owned(), AttributeValue::S("t".into())),
        ]);
        assert_eq!(
            held_of(&item),
            Held {
                run_id: "r".into(),
                step: 12,
                lease_until_ms: 99,
                finished: true
            }
        );
    }
}
