//! One live broker connection with its publishing channel.

use super::AmqpConfig;
use super::bounded::bounded;
use super::topology;
use crate::bus::BusError;
use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, ConnectionProperties};
use std::fmt;
use tokio::sync::Notify;

/// A connection that was healthy when opened. Replaced as a whole when it fails: the
/// supervisor opens a new one and re-declares everything on it.
pub(super) struct Link {
    pub(super) connection: Connection,
    /// Confirm-mode channel shared by all publishes (the broker confirms them in order).
    pub(super) publisher: Channel,
    /// Signalled by whoever sees this link fail (a consumer whose stream ended, a publish on
    /// a dead channel); the supervisor then replaces the link.
    pub(super) lost: Notify,
    /// Counts connections since start, for logs.
    pub(super) generation: u64,
}

impl Link {
    /// Connect, declare the shared topology and open the publishing channel.
    pub(super) async fn open(config: &AmqpConfig, generation: u64) -> Result<Self, BusError> {
        let limit = config.op_timeout;
        let properties = ConnectionProperties::default()
            .with_connection_name(config.connection_name.as_str().into());
        let connection = bounded(
            limit,
            "connect to the broker",
            Connection::connect(&config.url, properties),
        )
        .await?;
        let publisher = bounded(limit, "open a channel", connection.create_channel()).await?;
        topology::declare_shared(&publisher, config).await?;
        bounded(
            limit,
            "enable publisher confirms",
            publisher.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        Ok(Self {
            connection,
            publisher,
            lost: Notify::new(),
            generation,
        })
    }

    /// Whether the connection and the publishing channel are still open.
    pub(super) fn is_up(&self) -> bool {
        self.connection.status().connected() && self.publisher.status().connected()
    }

    /// Close the connection if it is still open (its channels go with it).
    pub(super) async fn close(&self, config: &AmqpConfig) {
        if self.connection.status().connected() {
            let closing = self.connection.close(200, "tether bus closing".into());
            let _ = bounded(config.op_timeout, "close the connection", closing).await;
        }
    }
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("generation", &self.generation)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}
