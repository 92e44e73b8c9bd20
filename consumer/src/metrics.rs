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
        /// Retries of a DynamoDB call beyond the SDK's attempts.
        WriteRetries = Count,
        /// Records reported failed, for SQS to redeliver.
        BatchItemFailures = Count,
        /// Confirmation to write, per message that wrote something.
        SyncLag = Milliseconds,
        /// Users items replaced by the user's newer state from Cognito.
        UsersUpdated = Count,
        /// Users items turned into tombstones (the user is gone from the pool, or forgotten).
        UsersDeleted = Count,
        /// Refreshes whose state read from Cognito was older than the one stored: nothing written.
        StaleIgnored = Count,
        /// Messages for a user whose item is a tombstone: nothing written but the profile's deletion.
        DeletedUserIgnored = Count,
        /// Refreshes of a user the pool does not have (or has never confirmed) and the tables
        /// do not hold: nothing written.
        UsersNotInPool = Count,
        /// Cognito calls recorded without a sub: no user to refresh.
        UnattributableSignals = Count,
        /// Retries of a Cognito read beyond the SDK's attempts (throttling included).
        CognitoRetries = Count,
        /// First confirmations from sign-up whose welcome was asked for on the welcome queue.
        WelcomeRequested = Count,
        /// First confirmations from sign-up not greeted: no email, an unverified one, or a
        /// deleted user.
        WelcomeSkipped = Count,
    }
}
