//! The local AWS stack for end-to-end tests and the demo.
//!
//! Nothing here fakes an AWS service: DynamoDB, SQS, Cognito, CloudFormation and Lambda's
//! control plane are moto in server mode, reached through the AWS SDK for Rust. What moto cannot
//! do is run a Lambda function, so this crate runs the real compiled binaries itself:
//!
//! - [`runtime_api`]: a Lambda Runtime API emulator that starts a binary as a child process and
//!   feeds it invocations, as the Lambda service does;
//! - [`event_source`]: an SQS event-source-mapping emulator that builds the exact Lambda SQS
//!   event, deletes the successes and leaves the reported failures for redelivery;
//! - [`stack`]: deploys `infra/template.yaml` (translated offline from SAM) into moto;
//! - [`pipeline`]: all of it together, one call away, for tests that read like the guarantee
//!   they prove: running `ops`, deriving a profile id and scanning the logs for PII included;
//! - [`chaos`]: the consumer environments, crash switch and table checks of the chaos test.
//!
//! The tests themselves are one binary, `tests/tests/end_to_end/`, a module per area.

pub mod chaos;
pub mod cloudtrail;
pub mod cognito;
pub mod cpu_share;
pub mod emf;
pub mod event_source;
pub mod fault_proxy;
pub mod moto;
pub mod ops_cli;
pub mod paths;
pub mod pipeline;
pub mod runtime_api;
pub mod ses;
pub mod stack;
pub mod throwaway_ca;

pub use pipeline::{LocalPipeline, NewUser, PipelineOptions};
