//! The SQS consumer as a library: the binary (`main.rs`) only wires it to the Lambda runtime,
//! so tests drive the same code.

pub mod config;
pub mod deps;
pub mod handler;
pub mod metrics;
pub mod record;
pub mod refresh;
pub mod retry;
pub mod welcome;
