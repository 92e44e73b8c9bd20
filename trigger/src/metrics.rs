//! The trigger's metrics: the one list the handler emits, the dashboard shows and the alarms
//! watch (`tests/tests/end_to_end/template.rs` checks the template against it).

shared::metric_names! {
    pub enum TriggerMetric {
        /// A confirmation put on the sync queue.
        Enqueued = Count,
        /// A confirmation the queue did not take after the retries: the user is confirmed but
        /// not synced until `ops reconcile` repairs it.
        EnqueueFailed = Count,
    }
}
