//! The Cognito Post Confirmation trigger: enqueue the confirmation, return the event unchanged.
//!
//! `main` builds what lives for the whole execution environment (tracing, configuration, the
//! SQS client) once per cold start; the handler borrows it on every invocation.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

use trigger::config::TriggerConfig;
use trigger::handler::{self, Deps};
use trigger::queue;

// One thread: Lambda gives a function a fraction of a core below 1,769 MB, and a worker pool
// only adds cross-thread wake-ups (eventfd, futex, context switches) to every call (measured in
// docs/performance.md). Concurrency within an invocation is unchanged: tasks still interleave.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    // A bad setting is an init error: Lambda shows it and Cognito's call fails loudly, instead
    // of every confirmation being dropped silently.
    let (config, metrics) = shared::config::load_at_init(TriggerConfig::from_env)?;
    let deps = Deps {
        queue: queue::SyncQueue::connect(&config).await,
        config,
        metrics,
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        handler::handle(deps, event.payload).await
    }))
    .await
}
