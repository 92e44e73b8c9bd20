//! What lives for the whole execution environment, built once at init.

use shared::metrics::MetricsConfig;
use tables::Store;
use welcome::ses::Mailer;

use crate::config::WelcomerConfig;
use crate::pacing::Pacing;
use crate::retry;

pub struct Deps {
    pub config: WelcomerConfig,
    pub metrics: MetricsConfig,
    /// The users item: the welcome's claim and record.
    pub store: Store,
    pub mailer: Mailer,
    /// The welcome queue, to hand back what cannot go out now.
    pub queue: aws_sdk_sqs::Client,
    pub pacing: Pacing,
}

impl Deps {
    pub async fn connect(config: WelcomerConfig, metrics: MetricsConfig) -> Self {
        let sdk = sdk_config::load(retry::sdk_retry(), retry::sdk_timeouts()).await;
        Self {
            store: Store::users_only(aws_sdk_dynamodb::Client::new(&sdk), &config.users_table),
            mailer: Mailer::connect(&sdk, config.welcome.clone()),
            queue: aws_sdk_sqs::Client::new(&sdk),
            pacing: Pacing::new(
                config.welcome.send_rate_percent,
                config.welcome.environments,
                config.welcome.first_retry,
            ),
            config,
            metrics,
        }
    }
}
