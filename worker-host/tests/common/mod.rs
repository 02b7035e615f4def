//! Shared set-up for engine tests: a real Docker engine, the real sandbox image, a node
//! id and data directory of the test's own so tests run in parallel.

#![allow(dead_code)]

pub mod files;

use std::path::PathBuf;
use std::time::Duration;
use tether_protocol::NodeId;
use tether_worker_host::{Engine, EngineConfig};
use tokio_util::sync::CancellationToken;

/// A node id unique to this test run.
pub fn node_id(test: &str) -> NodeId {
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
    NodeId::try_from(format!("t-{test}-{suffix}")).expect("valid node id")
}

/// Engine settings for tests: small pool, short timeouts, the image under test.
pub fn config(test: &str) -> EngineConfig {
    let node = node_id(test);
    let data_dir = PathBuf::from(
        std::env::var("TETHER_TEST_DATA_DIR").unwrap_or_else(|_| "/tmp/tether-test".into()),
    );
    let mut config = EngineConfig::new(node, data_dir);
    if let Ok(image) = std::env::var("TETHER_IMAGE") {
        config.image = image;
    }
    config.min_idle = 1;
    config.max_total = 4;
    config.limits.disk_mib = 64;
    config
}

/// A started engine and the token that stops it.
pub struct TestEngine {
    pub engine: Engine,
    pub shutdown: CancellationToken,
}

impl TestEngine {
    pub async fn start(config: EngineConfig) -> Self {
        init_tracing();
        let shutdown = CancellationToken::new();
        let engine = Engine::start(config, shutdown.clone())
            .await
            .expect("Docker must be running for engine tests (scripts/install-deps.sh starts it)");
        Self { engine, shutdown }
    }

    pub async fn stop(self) {
        self.engine.shutdown(Duration::from_secs(30)).await;
    }
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn,tether_worker_host=info".into()),
        )
        .with_test_writer()
        .try_init();
}

pub const T: Duration = Duration::from_secs(30);
