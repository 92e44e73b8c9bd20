//! The consumer's configuration (see the README's configuration table).

use std::time::Duration;

use shared::config::{ConfigError, Source, parsed_or, required};

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
}

impl ConsumerConfig {
    pub fn from_env(env: &dyn Source) -> Result<Self, ConfigError> {
        Ok(Self {
            users_table: required(env, "USERS_TABLE", "the name of the users table")?,
            profiles_table: required(env, "PROFILES_TABLE", "the name of the profiles table")?,
            user_pool_id: required(env, "USER_POOL_ID", "the id of the Cognito user pool served")?,
            max_concurrent_records: parsed_or(env, "MAX_CONCURRENT_RECORDS", "a positive integer", 10usize)?
                .max(1),
            deadline_margin: Duration::from_millis(parsed_or(
                env,
                "DEADLINE_MARGIN_MS",
                "a number of milliseconds",
                1_000u64,
            )?),
            sdk_max_attempts: parsed_or(env, "DYNAMODB_MAX_ATTEMPTS", "a positive integer", 3u32)?.max(1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_missing_variable_is_named() {
        let all = [
            ("USERS_TABLE", "u"),
            ("PROFILES_TABLE", "p"),
            ("USER_POOL_ID", "us-east-1_A1"),
        ];
        for missing in ["USERS_TABLE", "PROFILES_TABLE", "USER_POOL_ID"] {
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
        let env = |name: &str| match name {
            "MAX_CONCURRENT_RECORDS" => Some("many".to_owned()),
            _ => Some("x".to_owned()),
        };
        let err = ConsumerConfig::from_env(&env).unwrap_err();
        assert!(err.to_string().contains("MAX_CONCURRENT_RECORDS"), "{err}");
    }
}
