//! What every handler shares: the settings, the dispatcher (and through it the store and
//! registry), and the shutdown signal that ends long waits.

use crate::config::ApiConfig;
use crate::node_files::NodeFiles;
use std::sync::Arc;
use tether_dispatcher::Dispatcher;
use tether_transport::{JobStore, SessionRegistry};
use tokio_util::sync::CancellationToken;

/// Cloned into every handler; one `Arc` inside.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    config: ApiConfig,
    dispatcher: Dispatcher,
    /// Direct transfer: calls to the file endpoints of nodes.
    node_files: NodeFiles,
    /// Cancelled when the server shuts down; waiting handlers answer 503 at once.
    shutdown: CancellationToken,
}

impl AppState {
    pub fn new(config: ApiConfig, dispatcher: Dispatcher, shutdown: CancellationToken) -> Self {
        Self(Arc::new(Inner {
            node_files: NodeFiles::new(config.internal_token.clone()),
            config,
            dispatcher,
            shutdown,
        }))
    }

    pub fn config(&self) -> &ApiConfig {
        &self.0.config
    }

    pub fn dispatcher(&self) -> &Dispatcher {
        &self.0.dispatcher
    }

    pub fn node_files(&self) -> &NodeFiles {
        &self.0.node_files
    }

    pub fn store(&self) -> &Arc<dyn JobStore> {
        self.0.dispatcher.store()
    }

    pub fn registry(&self) -> &Arc<dyn SessionRegistry> {
        self.0.dispatcher.registry()
    }

    pub fn shutdown(&self) -> &CancellationToken {
        &self.0.shutdown
    }
}
