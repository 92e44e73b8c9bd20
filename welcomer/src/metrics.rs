//! The welcomer's metrics: the one list the handler emits, the dashboard shows and the alarms
//! watch (`tests/tests/end_to_end/template.rs` checks the template against it).

shared::metric_names! {
    pub enum WelcomerMetric {
        /// Welcomes SES accepted (recorded or not).
        WelcomeSent = Count,
        /// Welcomes SES refused for good (an unverified sender, a missing template or
        /// configuration set, access denied): someone has to look.
        WelcomeFailed = Count,
        /// Requests handed back to the welcome queue for later: SES's rate or daily quota, a
        /// paused account, a held claim, a throttle, a lost answer.
        WelcomeDeferred = Count,
        /// Requests not sent because the user changed since the sign-up: deleted, or their
        /// email is no longer verified.
        WelcomeDropped = Count,
        /// What SES reported after accepting a welcome.
        WelcomeBounced = Count,
        WelcomeComplained = Count,
        WelcomeRejected = Count,
        WelcomeRenderingFailed = Count,
        WelcomeDelayed = Count,
        /// How long a welcome request had waited since the consumer asked, each time the
        /// welcomer handles it (sent, refused or handed back): the backlog, welcomes handed back
        /// three times or more included, which SQS's age of the oldest message leaves out.
        WelcomeAge = Milliseconds,
        /// Messages of the welcome queue that can never be handled (malformed, another pool):
        /// handed back at once, so that they reach the welcome DLQ soon.
        WelcomeInvalidMessages = Count,
    }
}
