//! The welcomer: sends the welcome email of each first sign-up the consumer asks for, once.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{LambdaEvent, service_fn};

use welcomer::config::WelcomerConfig;
use welcomer::deps::Deps;
use welcomer::handler;

// One thread, as the other functions: a fraction of a core, and tasks interleave anyway.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let (config, metrics) = shared::config::load_at_init(WelcomerConfig::from_env)?;
    let deps = Arc::new(Deps::connect(config, metrics).await);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let deps = Arc::clone(&deps);
        async move { handler::handle(deps, event).await }
    }))
    .await
}
