//! The welcome email's sender, as a library: the binary (`main.rs`) only wires it to the Lambda
//! runtime, so tests drive the same code.
//!
//! Each message of the welcome queue is a request to greet a user ([`send`]) or an SES event
//! about a welcome SES accepted ([`problem`]). What cannot be done now (SES's rate or daily
//! quota reached, a claim another delivery holds, a send whose answer was lost) is handed back
//! to the queue with a delay ([`welcome::backoff`]) instead of failing anything.

pub mod config;
pub mod deps;
pub mod handler;
pub mod metrics;
pub mod pacing;
pub mod problem;
pub mod retry;
pub mod send;
