//! The SDK configuration, loaded once, and how SDK errors are shown to an operator.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::ProvideCredentials;

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

pub use sdk_config::{chain, detail};
