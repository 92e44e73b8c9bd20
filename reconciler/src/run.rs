//! A slice of a run: steps until the invocation's page budget or deadline, each page's drifts
//! handed on as they are found (so that an invocation that dies has sent what it found).

use drift::{Cursor, Drift};
use tokio::time::Instant;

use crate::walk::{RunError, Step, Walker};

/// How far one slice may go.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Steps (pages walked, or scan rounds) at most.
    pub pages: u64,
    /// No step is started after it.
    pub deadline: Option<Instant>,
}

/// How a slice ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SliceEnd {
    /// More to do: hand the cursor on.
    Paused,
    /// The run is over.
    Finished,
}

/// Where the drifts go: refresh signals on the sync queue, a report, or both.
pub trait DriftSink {
    /// `drifts` were found; returns how many signals were sent and refused.
    fn found(&mut self, drifts: &[Drift]) -> impl std::future::Future<Output = Delivered>;
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    pub sent: u64,
    pub refused: u64,
}

/// Advances `cursor` within `budget`. On an error the cursor holds what was done before it
/// (the caller decides whether to hand it on or let the message come back).
pub async fn advance<S: DriftSink>(
    walker: &mut Walker,
    cursor: &mut Cursor,
    budget: Budget,
    sink: &mut S,
) -> Result<SliceEnd, RunError> {
    let mut difference = cursor.difference()?;
    let mut steps = 0;
    let result = loop {
        if steps >= budget.pages || budget.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            break Ok(SliceEnd::Paused);
        }
        let (drifts, end) = match walker.step(cursor, &mut difference, budget.deadline).await {
            Ok(Step::Page(drifts)) => (drifts, None),
            Ok(Step::Finished(drifts)) => (drifts, Some(SliceEnd::Finished)),
            Err(RunError::OutOfTime) => break Ok(SliceEnd::Paused),
            Err(err) => break Err(err),
        };
        steps += 1;
        if !drifts.is_empty() {
            for drift in &drifts {
                tracing::info!(event = "reconcile_drift", kind = drift.kind.as_str(), sub = %drift.sub);
            }
            let delivered = sink.found(&drifts).await;
            cursor.counts.signals_sent += delivered.sent;
            cursor.counts.signals_refused += delivered.refused;
        }
        if let Some(end) = end {
            break Ok(end);
        }
    };
    cursor.set_difference(&difference);
    result
}
