//! The consumer's configuration (see the README's configuration table).

use std::time::Duration;

use shared::config::{ConfigError, Source, function_timing, integer_in, optional, required};
use shared::lifecycle::ProfileOnDeletion;

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub users_table: String,
    pub profiles_table: String,
    /// Messages for any other user pool are refused (they end in the DLQ). This is the
    /// authoritative pool check: unlike the trigger, the consumer can always be told the pool.
    pub user_pool_id: String,
    /// Records of one batch processed at the same time.
    pub max_concurrent_records: usize,
    /// Time kept in reserve before the invocation's deadline, to report results.
    pub deadline_margin: Duration,
    /// Attempts per PutItem in the SDK, including the first.
    pub sdk_max_attempts: u32,
    /// The function's own timeout (the template sets it beside `Timeout`). Lambda tells a
    /// function its deadline per invocation only; this lets a margin that could never work be
    /// refused at start-up.
    pub function_timeout: Duration,
    /// What a user's deletion does to their profile (`PROFILE_ON_DELETION`: mark or delete).
    pub profile_on_deletion: ProfileOnDeletion,
    /// `AdminGetUser` calls per second, at most, from one execution environment: its share of
    /// the whole consumer's rate.
    pub cognito_gets_per_second: f64,
    /// `ListUsers` calls per second, at most, from one execution environment.
    pub cognito_lists_per_second: f64,
    /// The welcome queue, where a first sign-up's welcome is asked for (`None`: the welcome is
    /// off).
    pub welcome_queue_url: Option<String>,
}

impl ConsumerConfig {
    pub fn from_env(env: &dyn Source) -> Result<Self, ConfigError> {
        let in_range = |name, expected, default, range| integer_in(env, name, expected, default, range);
        let (function_timeout, deadline_margin) = function_timing(env)?;
        // Rates for the whole consumer, under the account-wide quotas (UserRead 120/s, UserList
        // 30/s); every execution environment the queue may start takes an equal share, so no
        // number of them can exceed the rates together.
        let cognito_gets_per_second = in_range(
            "COGNITO_GETS_PER_SECOND",
            "an integer from 1 to 120 (Cognito's default UserRead quota per account)",
            50,
            1..=120,
        )? as f64;
        let cognito_lists_per_second = in_range(
            "COGNITO_LISTS_PER_SECOND",
            "an integer from 1 to 30 (Cognito's UserList quota per account)",
            10,
            1..=30,
        )? as f64;
        let environments = in_range(
            "CONSUMER_MAX_CONCURRENCY",
            "an integer from 2 to 1000 (the event source's maximum concurrency)",
            5,
            2..=1000,
        )? as f64;
        Ok(Self {
            users_table: required(env, "USERS_TABLE", "the name of the users table")?,
            profiles_table: required(env, "PROFILES_TABLE", "the name of the profiles table")?,
            user_pool_id: required(env, "USER_POOL_ID", "the id of the Cognito user pool served")?,
            max_concurrent_records: in_range(
                "MAX_CONCURRENT_RECORDS",
                "an integer from 1 to 1000",
                10,
                1..=1000,
            )? as usize,
            deadline_margin,
            sdk_max_attempts: in_range("DYNAMODB_MAX_ATTEMPTS", "an integer from 1 to 10", 3, 1..=10)? as u32,
            function_timeout,
            profile_on_deletion: match optional(env, "PROFILE_ON_DELETION") {
                None => ProfileOnDeletion::default(),
                Some(text) => ProfileOnDeletion::parse(&text).ok_or(ConfigError::Invalid {
                    name: "PROFILE_ON_DELETION",
                    expected: "mark or delete",
                })?,
            },
            cognito_gets_per_second: cognito_gets_per_second / environments,
            cognito_lists_per_second: cognito_lists_per_second / environments,
            welcome_queue_url: optional(env, "WELCOME_QUEUE_URL"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUIRED: [(&str, &str); 4] = [
        ("USERS_TABLE", "u"),
        ("PROFILES_TABLE", "p"),
        ("USER_POOL_ID", "us-east-1_A1"),
        ("FUNCTION_TIMEOUT_SECONDS", "30"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        let extra = extra.to_vec();
        move |name: &str| {
            extra
                .iter()
                .chain(REQUIRED.iter())
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn settings_that_cannot_work_stop_start_up_naming_the_variable() {
        let refused = [
            ("MAX_CONCURRENT_RECORDS", "0"),
            ("MAX_CONCURRENT_RECORDS", "1001"),
            ("DYNAMODB_MAX_ATTEMPTS", "0"),
            ("DEADLINE_MARGIN_MS", "0"),
            ("DEADLINE_MARGIN_MS", "99"),
            ("DEADLINE_MARGIN_MS", "15000"),
            ("DEADLINE_MARGIN_MS", "30000"),
            ("FUNCTION_TIMEOUT_SECONDS", "0"),
            ("FUNCTION_TIMEOUT_SECONDS", "901"),
            ("PROFILE_ON_DELETION", "keep"),
            ("COGNITO_GETS_PER_SECOND", "0"),
            ("COGNITO_GETS_PER_SECOND", "121"),
            ("COGNITO_LISTS_PER_SECOND", "31"),
            ("CONSUMER_MAX_CONCURRENCY", "1"),
            ("CONSUMER_MAX_CONCURRENCY", "1001"),
        ];
        for (name, value) in refused {
            let err = ConsumerConfig::from_env(&with(&[(name, value)])).unwrap_err();
            assert!(err.to_string().contains(name), "{name}={value}: {err}");
        }
        let ok = ConsumerConfig::from_env(&with(&[("DEADLINE_MARGIN_MS", "14999")])).unwrap();
        assert_eq!(ok.deadline_margin, Duration::from_millis(14_999));
        assert_eq!(ok.max_concurrent_records, 10);
        assert_eq!(ok.function_timeout, Duration::from_secs(30));
        assert_eq!(ok.profile_on_deletion, ProfileOnDeletion::Mark);
        let deleting = ConsumerConfig::from_env(&with(&[("PROFILE_ON_DELETION", "delete")])).unwrap();
        assert_eq!(deleting.profile_on_deletion, ProfileOnDeletion::Delete);
    }

    #[test]
    fn each_environment_reads_cognito_at_its_share_of_the_whole_consumers_rate() {
        let defaults = ConsumerConfig::from_env(&with(&[])).unwrap();
        assert_eq!(defaults.cognito_gets_per_second, 10.0);
        assert_eq!(defaults.cognito_lists_per_second, 2.0);
        let widest = ConsumerConfig::from_env(&with(&[
            ("COGNITO_GETS_PER_SECOND", "100"),
            ("COGNITO_LISTS_PER_SECOND", "25"),
            ("CONSUMER_MAX_CONCURRENCY", "1000"),
        ]))
        .unwrap();
        // A thousand environments together: 100 and 25 a second, under 120 and 30.
        assert!((widest.cognito_gets_per_second * 1000.0 - 100.0).abs() < 1e-9);
        assert!((widest.cognito_lists_per_second * 1000.0 - 25.0).abs() < 1e-9);
    }

    #[test]
    fn each_missing_variable_is_named() {
        let all = REQUIRED;
        for missing in [
            "USERS_TABLE",
            "PROFILES_TABLE",
            "USER_POOL_ID",
            "FUNCTION_TIMEOUT_SECONDS",
        ] {
            let env = |name: &str| {
                all.iter()
                    .find(|(k, _)| *k == name && *k != missing)
                    .map(|(_, v)| v.to_string())
            };
            let err = ConsumerConfig::from_env(&env).unwrap_err();
            assert!(err.to_string().contains(missing), "{err}");
        }
    }

    #[test]
    fn bad_numbers_are_refused_by_name() {
        let err = ConsumerConfig::from_env(&with(&[("MAX_CONCURRENT_RECORDS", "many")])).unwrap_err();
        assert!(err.to_string().contains("MAX_CONCURRENT_RECORDS"), "{err}");
    }
}
