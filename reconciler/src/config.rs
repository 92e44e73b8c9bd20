//! The reconciler's configuration (see the README's configuration table).

use shared::config::{ConfigError, Source, integer_in, required};

#[derive(Debug, Clone)]
pub struct ReconcilerConfig {
    pub user_pool_id: String,
    pub users_table: String,
    pub profiles_table: String,
    /// Where refresh signals go.
    pub sync_queue_url: String,
    /// Where the run's cursor goes between invocations (the queue this function consumes).
    pub reconcile_queue_url: String,
    /// The run's state item (its step and lease), which keeps a run one chain.
    pub state_table: String,
    /// `ListUsers` calls per second at most: the run's share of the account's `UserList` quota.
    pub lists_per_second: f64,
    /// Segments of the users table's scan, read at the same time.
    pub scan_segments: u32,
    /// Steps (pages) one invocation takes at most before handing the cursor on: what a
    /// killed invocation can have to repeat.
    pub pages_per_invocation: u64,
}

impl ReconcilerConfig {
    pub fn from_env(env: &dyn Source) -> Result<Self, ConfigError> {
        let in_range = |name, expected, default, range| integer_in(env, name, expected, default, range);
        let user_pool_id = required(env, "USER_POOL_ID", "the user pool's id (region_id)")?;
        if !shared::user::is_user_pool_id(&user_pool_id) {
            return Err(ConfigError::Invalid {
                name: "USER_POOL_ID",
                expected: "a user pool id such as us-east-1_AbC123",
            });
        }
        Ok(Self {
            user_pool_id,
            users_table: required(env, "USERS_TABLE", "the users table's name")?,
            profiles_table: required(env, "PROFILES_TABLE", "the profiles table's name")?,
            sync_queue_url: required(env, "SYNC_QUEUE_URL", "the sync queue's URL")?,
            reconcile_queue_url: required(env, "RECONCILE_QUEUE_URL", "the reconcile queue's URL")?,
            state_table: required(env, "RECONCILE_STATE_TABLE", "the reconcile state table's name")?,
            lists_per_second: in_range(
                "RECONCILE_LISTS_PER_SECOND",
                "an integer from 1 to 25 (Cognito's UserList quota, 30 per second per account, is shared)",
                5,
                1..=25,
            )? as f64,
            scan_segments: in_range(
                "RECONCILE_SCAN_SEGMENTS",
                "an integer from 1 to 64",
                4,
                1..=u64::from(drift::cursor::MAX_SEGMENTS),
            )? as u32,
            pages_per_invocation: in_range(
                "RECONCILE_PAGES_PER_INVOCATION",
                "an integer from 1 to 100000",
                500,
                1..=100_000,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct Env(HashMap<&'static str, &'static str>);

    impl Source for Env {
        fn get(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|v| (*v).to_owned())
        }
    }

    fn env(extra: &[(&'static str, &'static str)]) -> Env {
        let mut vars = HashMap::from([
            ("USER_POOL_ID", "us-east-1_AbCdEf123"),
            ("USERS_TABLE", "users"),
            ("PROFILES_TABLE", "profiles"),
            ("SYNC_QUEUE_URL", "https://sqs/sync"),
            ("RECONCILE_QUEUE_URL", "https://sqs/reconcile"),
            ("RECONCILE_STATE_TABLE", "reconcile-state"),
        ]);
        vars.extend(extra.iter().copied());
        Env(vars)
    }

    #[test]
    fn defaults_are_well_under_the_quota() {
        let config = ReconcilerConfig::from_env(&env(&[])).unwrap();
        assert_eq!(config.lists_per_second, 5.0);
        assert_eq!(config.scan_segments, 4);
        assert_eq!(config.pages_per_invocation, 500);
    }

    #[test]
    fn a_bad_setting_names_its_variable() {
        for (name, value) in [
            ("RECONCILE_LISTS_PER_SECOND", "30"),
            ("RECONCILE_LISTS_PER_SECOND", "0"),
            ("RECONCILE_SCAN_SEGMENTS", "65"),
            ("RECONCILE_PAGES_PER_INVOCATION", "zero"),
            ("USER_POOL_ID", "not a pool"),
        ] {
            let err = ReconcilerConfig::from_env(&env(&[(name, value)]))
                .unwrap_err()
                .to_string();
            assert!(err.contains(name), "{name}={value}: {err}");
        }
        for name in ["RECONCILE_QUEUE_URL", "RECONCILE_STATE_TABLE"] {
            let mut missing = env(&[]);
            missing.0.remove(name);
            let err = ReconcilerConfig::from_env(&missing).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }
}
