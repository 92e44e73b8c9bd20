//! The reconciler's metrics: per invocation, and once per run when it ends (stamped with the
//! run's start, so that each scheduled run lands in its own period of the drift alarm).

shared::metric_names! {
    pub enum InvocationMetric {
        /// `ListUsers` pages walked.
        PagesWalked = Count,
        /// Users items read by the deletion check's scan.
        ItemsScanned = Count,
        /// `ListUsers` calls refused for the rate (or failing transiently): each halved the rate.
        ListUsersThrottled = Count,
        /// Refresh signals the sync queue accepted.
        SignalsSent = Count,
        /// Refresh signals that could not be sent (the next run finds those users again).
        SignalsRefused = Count,
    }
}

shared::metric_names! {
    pub enum RunMetric {
        /// Users whose tables differed from the pool because a change was missed: every kind
        /// but `DriftFederatedAttributes`. What `ReconcileDriftAlarm` reads.
        DriftFound = Count,
        DriftMissing = Count,
        DriftNoUsersItem = Count,
        DriftNoProfile = Count,
        DriftStale = Count,
        DriftEnabledDiffers = Count,
        DriftDeleted = Count,
        /// Federated users whose attributes changed at a sign-in (no event brings those): kept
        /// out of `DriftFound`.
        DriftFederatedAttributes = Count,
        /// 1 when more users were deleted without a signal than one run can list.
        DeletionsIncomplete = Count,
        /// Runs that ended.
        RunsCompleted = Count,
        /// `ListUsers` pages of the whole run.
        RunPages = Count,
        /// From the run's start to its end.
        RunDuration = Milliseconds,
    }
}

impl RunMetric {
    pub fn of_kind(kind: drift::DriftKind) -> Self {
        use drift::DriftKind;
        match kind {
            DriftKind::Missing => Self::DriftMissing,
            DriftKind::NoUsersItem => Self::DriftNoUsersItem,
            DriftKind::NoProfile => Self::DriftNoProfile,
            DriftKind::Stale => Self::DriftStale,
            DriftKind::EnabledDiffers => Self::DriftEnabledDiffers,
            DriftKind::Deleted => Self::DriftDeleted,
            DriftKind::FederatedAttributes => Self::DriftFederatedAttributes,
        }
    }
}
