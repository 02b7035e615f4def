//! The registry contract against a real Redis (`TETHER_TEST_REDIS_URL`, default
//! redis://127.0.0.1:6379).

mod common;

use common::{redis_config, redis_pool, redis_url};
use std::sync::Arc;
use tether_transport::contract;
use tether_transport::redis::RedisRegistry;

#[tokio::test]
async fn registry_contract() {
    let config = redis_config(&redis_url());
    let name = config.prefix.trim_end_matches(':').to_owned();
    let registry = Arc::new(RedisRegistry::new(redis_pool(config).await));
    contract::registry_contract(registry, &name).await;
}
