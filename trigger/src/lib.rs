//! The Cognito Post Confirmation trigger as a library: the binary (`main.rs`) only wires it to
//! the Lambda runtime, so tests and fuzzers drive the same code.

pub mod config;
pub mod handler;
pub mod metrics;
pub mod queue;
pub mod retry;
