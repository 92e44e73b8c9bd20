//! What lives for the whole execution environment, built once at init.

use shared::metrics::MetricsConfig;

use crate::config::ConsumerConfig;
use crate::retry;
use tables::Store;

pub struct Deps {
    pub config: ConsumerConfig,
    pub metrics: MetricsConfig,
    pub store: Store,
    /// The user pool, read by refresh signals.
    pub pool: pool_reader::PoolReader,
    /// Where a first sign-up's welcome is asked for, when the welcome is on.
    pub welcome_queue: Option<WelcomeQueue>,
}

/// The welcome queue: the welcomer sends the welcomes it is asked for there.
pub struct WelcomeQueue {
    pub client: aws_sdk_sqs::Client,
    pub url: String,
}

impl Deps {
    /// Connects to DynamoDB, Cognito and SQS with one SDK configuration.
    pub async fn connect(config: ConsumerConfig, metrics: MetricsConfig) -> Self {
        let sdk = sdk_config::load(retry::sdk_retry(config.sdk_max_attempts), retry::sdk_timeouts()).await;
        let pool = pool_reader::PoolReader::new(
            aws_sdk_cognitoidentityprovider::Client::new(&sdk),
            &config.user_pool_id,
            config.cognito_gets_per_second,
            config.cognito_lists_per_second,
        );
        Self {
            store: Store::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                &config.users_table,
                &config.profiles_table,
            ),
            pool,
            welcome_queue: config.welcome_queue_url.clone().map(|url| WelcomeQueue {
                client: aws_sdk_sqs::Client::new(&sdk),
                url,
            }),
            config,
            metrics,
        }
    }
}
