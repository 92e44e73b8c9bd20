//! The reconciler: consumes the reconcile queue, one run message per invocation.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};
use reconciler::config::ReconcilerConfig;
use reconciler::handler::{self, Deps};

// One thread, as the other functions (docs/performance.md): a run is I/O-bound.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let (config, metrics) = shared::config::load_at_init(ReconcilerConfig::from_env)?;
    let deps = Arc::new(Deps::connect(config, metrics).await);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let deps = Arc::clone(&deps);
        async move {
            handler::handle(&deps, event)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
