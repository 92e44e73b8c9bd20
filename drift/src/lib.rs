//! The scheduled reconciliation's decisions, as plain functions and types.
//!
//! A run walks the pool a page at a time and compares each user with their two items
//! ([`compare()`]); it then scans the users table and finds the items whose user the pool no longer
//! has ([`difference`]); between invocations its whole state is one [`cursor::Cursor`], a few
//! kilobytes whatever the pool's size. The reconciler function and `ops reconcile` both drive
//! this crate; neither writes a table: every drift becomes a refresh signal, which the consumer
//! applies like any other.

pub mod compare;
pub mod cursor;
pub mod difference;

pub use compare::{Drift, DriftKind, Seen, compare};
pub use cursor::{Counts, Cursor, Phase, RunMessage};
pub use difference::{Decoded, SubDifference};
