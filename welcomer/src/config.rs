//! The welcomer's configuration (see the README's configuration table).

use std::time::Duration;

use shared::config::{ConfigError, Source, function_timing, integer_in, required};
use welcome::WelcomeConfig;

#[derive(Debug, Clone)]
pub struct WelcomerConfig {
    pub users_table: String,
    /// Requests for any other user pool are refused (they end in the welcome DLQ).
    pub user_pool_id: String,
    /// The welcome queue: a message that cannot be handled now is handed back to it with a delay.
    pub queue_url: String,
    /// Records of one batch processed at the same time.
    pub max_concurrent_records: usize,
    /// Time kept in reserve before the invocation's deadline, to hand back and report records.
    pub deadline_margin: Duration,
    pub welcome: WelcomeConfig,
}

impl WelcomerConfig {
    pub fn from_env(env: &dyn Source) -> Result<Self, ConfigError> {
        let (function_timeout, deadline_margin) = function_timing(env)?;
        Ok(Self {
            users_table: required(env, "USERS_TABLE", "the name of the users table")?,
            user_pool_id: required(env, "USER_POOL_ID", "the id of the Cognito user pool served")?,
            queue_url: required(env, "WELCOME_QUEUE_URL", "the URL of the welcome queue")?,
            max_concurrent_records: integer_in(
                env,
                "MAX_CONCURRENT_RECORDS",
                "an integer from 1 to 100",
                10,
                1..=100,
            )? as usize,
            deadline_margin,
            welcome: WelcomeConfig::from_env(env, function_timeout)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<WelcomerConfig, ConfigError> {
        let mut vars: HashMap<String, String> = [
            ("USERS_TABLE", "users"),
            ("USER_POOL_ID", "us-east-1_A1b2C3"),
            (
                "WELCOME_QUEUE_URL",
                "https://sqs.us-east-1.amazonaws.com/123456789012/welcome",
            ),
            ("FUNCTION_TIMEOUT_SECONDS", "30"),
            ("WELCOME_SENDER_IDENTITY", "hello@example.com"),
            ("WELCOME_CONFIGURATION_SET", "stack-welcome"),
            ("WELCOME_STACK_TAG", "stack"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        vars.extend(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        vars.retain(|_, v| !v.is_empty());
        let env = move |name: &str| vars.get(name).cloned();
        WelcomerConfig::from_env(&env)
    }

    #[test]
    fn the_templates_settings_load_and_a_bad_one_names_its_variable() {
        let config = load(&[]).unwrap();
        assert_eq!(config.welcome.claim_lease, Duration::from_secs(60));
        for (pairs, name) in [
            (vec![("WELCOME_QUEUE_URL", "")], "WELCOME_QUEUE_URL"),
            (vec![("FUNCTION_TIMEOUT_SECONDS", "")], "FUNCTION_TIMEOUT_SECONDS"),
            (vec![("DEADLINE_MARGIN_MS", "15000")], "DEADLINE_MARGIN_MS"),
            (vec![("WELCOME_SENDER_IDENTITY", "")], "WELCOME_SENDER_IDENTITY"),
        ] {
            let err = load(&pairs).unwrap_err().to_string();
            assert!(err.contains(name), "{pairs:?}: {err}");
        }
    }
}
