//! The consumer's metrics: the one list the handler emits, the dashboard shows and the alarms
//! watch (`tests/tests/end_to_end/template.rs` checks the template against it).

shared::metric_names! {
    pub enum ConsumerMetric {
        /// Users items created.
        UsersWritten = Count,
        /// Profiles created.
        ProfilesWritten = Count,
        /// Messages whose two items were there already (a redelivery, redrive or duplicate).
        AlreadySynced = Count,
        /// Messages that can never succeed (malformed, another pool, too large): DLQ-bound.
        InvalidMessages = Count,
        /// Retries of a put beyond the SDK's attempts.
        WriteRetries = Count,
        /// Records reported failed, for SQS to redeliver.
        BatchItemFailures = Count,
        /// Confirmation to write, per message that wrote something.
        SyncLag = Milliseconds,
    }
}
