//! The SDK configuration, loaded once, and how SDK errors are shown to an operator.

use std::error::Error;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Why the tool cannot talk to AWS at all.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("no AWS region: set AWS_REGION (or a region in the AWS_PROFILE's configuration)")]
    NoRegion,
    #[error(
        "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run \
         with a role ({detail})"
    )]
    NoCredentials { detail: String },
}

/// One `load_defaults` for the process: the standard credential chain, region and endpoint
/// (`AWS_ENDPOINT_URL` and the per-service variants) all apply, as in the functions.
///
/// Credentials are resolved once up front: without that, a missing credential shows up as a
/// "dispatch failure" deep in the first call, which does not say what to fix.
pub async fn load_config() -> Result<SdkConfig, SetupError> {
    let sdk = aws_config::load_defaults(BehaviorVersion::latest()).await;
    if sdk.region().is_none() {
        return Err(SetupError::NoRegion);
    }
    let provider = sdk.credentials_provider().ok_or(SetupError::NoCredentials {
        detail: "no credentials provider is configured".into(),
    })?;
    provider
        .provide_credentials()
        .await
        .map_err(|err| SetupError::NoCredentials { detail: chain(&err) })?;
    Ok(sdk)
}

/// An SDK error as one line for an operator: the service's code and message when the service
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
