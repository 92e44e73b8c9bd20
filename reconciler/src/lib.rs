//! The scheduled reconciliation, as a library (the function's handler and `ops reconcile` both
//! run it) and a Lambda function on the reconcile queue.
//!
//! A run is a chain of messages on the reconcile queue, each holding the run's
//! [`drift::Cursor`]. The schedule (or `ops reconcile --start`) sends the first; each invocation
//! advances the cursor by a bounded number of pages ([`run::advance`]), sends the next message
//! and returns. Every drift found becomes a refresh signal on the sync queue, which the
//! consumer applies like any other; the reconciler reads Cognito and the tables and writes
//! neither.

pub mod config;
pub mod handler;
pub mod metrics;
pub mod pacer;
pub mod run;
pub mod run_state;
pub mod signals;
pub mod walk;
