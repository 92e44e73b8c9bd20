//! What lives for the whole execution environment, built once at init.

use shared::metrics::MetricsConfig;

use crate::config::ConsumerConfig;
use crate::store::Store;

pub struct Deps {
    pub config: ConsumerConfig,
    pub metrics: MetricsConfig,
    pub store: Store,
}
