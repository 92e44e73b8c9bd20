//! The SQS consumer: one users item and one profile item per confirmation, written with
//! conditional puts; each refresh signal applies the user's current Cognito state (or their
//! deletion); partial batch failures are reported to the event source mapping.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};

use consumer::config::ConsumerConfig;
use consumer::deps::Deps;
use consumer::handler;

// One thread: Lambda gives a function a fraction of a core below 1,769 MB, and a worker pool
// only adds cross-thread wake-ups (eventfd, futex, context switches) to every call (measured in
// docs/performance.md). Concurrency within an invocation is unchanged: tasks still interleave.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let (config, metrics) = shared::config::load_at_init(ConsumerConfig::from_env)?;
    let deps = Arc::new(Deps::connect(config, metrics).await);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let deps = Arc::clone(&deps);
        async move { handler::handle(deps, event).await }
    }))
    .await
}
