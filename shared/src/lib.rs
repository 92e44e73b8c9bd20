//! The contract between the trigger and the consumer.
//!
//! Data flows one way: a Cognito event becomes a [`ConfirmedUser`] (trigger), is encoded as a
//! versioned [`envelope`] on SQS, is decoded back into a [`ConfirmedUser`] (consumer), and is
//! mapped to the two DynamoDB items by [`mapping`]. Every step is a plain function so that tests
//! drive it without AWS.

pub mod config;
pub mod envelope;
pub mod lifecycle;
pub mod mapping;
pub mod metrics;
pub mod pii;
pub mod profile_id;
pub mod signal;
pub mod telemetry;
pub mod timestamp;
pub mod user;

pub use envelope::{ENVELOPE_VERSION, EnvelopeError};
pub use mapping::{Item, ItemValue, SyncItems};
pub use profile_id::ProfileId;
pub use user::{ConfirmationSource, ConfirmedUser, UserError};
