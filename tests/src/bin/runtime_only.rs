//! The benchmark's baseline: a Rust Lambda function with `lambda_runtime` and nothing else,
//! echoing its event. Built with the same release profile and Tokio runtime as the functions,
//! so that what the trigger and consumer take beyond it is their own (the SDK, TLS, their work).

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, lambda_runtime::Error>(event.payload)
    }))
    .await
}
