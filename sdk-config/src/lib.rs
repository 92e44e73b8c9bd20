//! The AWS SDK configuration the functions load at init.
//!
//! Two departures from `aws_config::defaults`, both measured by `scripts/bench` on the cold
//! start at 128 MB's CPU share (docs/performance.md, "Init: the credentials chain"):
//!
//! - **Credentials from the environment, when it has them.** Lambda gives a function its
//!   execution role's credentials in `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//!   `AWS_SESSION_TOKEN`, the first place the default chain looks, so the chain's answer is the
//!   same. Building the whole chain is not free: its web-identity provider creates an STS
//!   client, whose HTTPS connector loads and parses the trust store at init, for a provider
//!   that is never asked. Without those variables (a laptop, a profile) the default chain is
//!   built as usual.
//! - **No stalled-stream protection.** It watches the throughput of streaming bodies; these
//!   are small JSON bodies that the attempt timeout bounds already, and its per-poll
//!   bookkeeping was measurable CPU on every call.

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use std::error::Error;

use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// The variables without which the environment holds no credentials.
const CREDENTIAL_VARIABLES: [&str; 2] = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"];

/// Loads the shared SDK configuration with `retry` and `timeouts`; region and endpoint
/// (`AWS_ENDPOINT_URL`) come from the environment as usual.
pub async fn load(retry: RetryConfig, timeouts: TimeoutConfig) -> SdkConfig {
    let credentials_in_environment = environment_has_credentials(|name| std::env::var_os(name));
    load_with(retry, timeouts, credentials_in_environment).await
}

async fn load_with(
    retry: RetryConfig,
    timeouts: TimeoutConfig,
    credentials_in_environment: bool,
) -> SdkConfig {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry)
        .timeout_config(timeouts)
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled());
    let loader = if credentials_in_environment {
        loader.credentials_provider(EnvironmentVariableCredentialsProvider::new())
    } else {
        loader
    };
    loader.load().await
}

/// How long one request of an SQS-driven function may take (the consumer's and the
/// welcomer's DynamoDB, Cognito and SQS calls): 1 s to connect, 2 s per attempt, 6 s for the
/// call with its retries, each well inside a record's share of a 30 s invocation.
pub fn record_call_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(1))
        .operation_attempt_timeout(std::time::Duration::from_secs(2))
        .operation_timeout(std::time::Duration::from_secs(6))
        .build()
}

/// Whether the environment provider would answer: both variables set and not blank.
fn environment_has_credentials(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    CREDENTIAL_VARIABLES
        .iter()
        .all(|name| var(name).is_some_and(|value| !value.to_string_lossy().trim().is_empty()))
}

/// An SDK error as one line for an operator or a log line: the service's code and message when the service
/// answered (`QueueDoesNotExist: The specified queue does not exist.`), else the whole chain
/// (connection refused, timeout, ...). SDK errors never carry request bodies, so no PII.
pub fn detail<E>(err: &E) -> String
where
    E: ProvideErrorMetadata + Error + 'static,
{
    match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => chain(err),
    }
}

/// An error and its sources, `: `-separated, each once (the SDK's own `DisplayErrorContext`
/// appends a `Debug` dump that is no use to an operator).
pub fn chain(err: &dyn Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn lambda_style_credentials_are_taken_from_the_environment() {
        assert!(environment_has_credentials(env(&[
            ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
        ])));
    }

    /// The provider the loaded configuration asks, by its type name (its `Debug` output).
    async fn provider_of(credentials_in_environment: bool) -> (String, SdkConfig) {
        let sdk = load_with(
            RetryConfig::standard(),
            TimeoutConfig::builder().build(),
            credentials_in_environment,
        )
        .await;
        let provider = format!(
            "{:?}",
            sdk.credentials_provider().expect("a credentials provider")
        );
        (provider, sdk)
    }

    #[tokio::test]
    async fn with_credentials_in_the_environment_only_the_environment_provider_is_built() {
        let (provider, sdk) = provider_of(true).await;
        assert!(
            provider.contains("EnvironmentVariableCredentialsProvider"),
            "{provider}"
        );
        assert!(!provider.contains("DefaultCredentialsChain"), "{provider}");
        let stalled = sdk.stalled_stream_protection().expect("set explicitly");
        assert!(!stalled.is_enabled());
    }

    #[tokio::test]
    async fn without_them_the_default_chain_is_built() {
        let (provider, _) = provider_of(false).await;
        assert!(provider.contains("DefaultCredentialsChain"), "{provider}");
    }

    #[test]
    fn without_both_variables_the_default_chain_is_used() {
        assert!(!environment_has_credentials(env(&[])));
        assert!(!environment_has_credentials(env(&[(
            "AWS_ACCESS_KEY_ID",
            "ASIAEXAMPLE"
        )])));
        assert!(!environment_has_credentials(env(&[
            ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", " "),
        ])));
    }
}
