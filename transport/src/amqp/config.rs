//! How to reach the broker and what to call things there.

use crate::secret_url::redact_password;
use std::fmt;
use std::time::Duration;
use tether_protocol::{NodeId, names};

/// Settings of an [`AmqpBus`](super::AmqpBus).
#[derive(Clone)]
pub struct AmqpConfig {
    /// Broker URL, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`. Holds a password, so the
    /// `Debug` output masks it.
    pub url: String,
    /// Shown in the broker's connection list (`rabbitmqctl list_connections client_properties`).
    pub connection_name: String,
    /// Prepended to every exchange and queue name, so that several deployments (or parallel
    /// tests) can share one broker. Empty in production.
    pub prefix: String,
    /// How long a job may wait in a queue before the broker dead-letters it as expired.
    pub job_expiry: Duration,
    /// Bound on every single broker call: connect, declare, publish + confirm, ack.
    pub op_timeout: Duration,
    /// First delay between reconnect attempts; it doubles up to `reconnect_max`.
    pub reconnect_initial: Duration,
    /// Longest delay between reconnect attempts.
    pub reconnect_max: Duration,
}

impl AmqpConfig {
    /// Defaults for everything but the URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            connection_name: "tether".to_owned(),
            prefix: String::new(),
            job_expiry: Duration::from_secs(24 * 3600),
            op_timeout: Duration::from_secs(5),
            reconnect_initial: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
        }
    }

    /// The direct exchange that routes jobs by node id.
    pub fn jobs_exchange(&self) -> String {
        format!("{}{}", self.prefix, names::JOBS_EXCHANGE)
    }

    /// The queue node `node` consumes.
    pub fn node_queue(&self, node: &NodeId) -> String {
        format!("{}{}", self.prefix, names::node_queue(node))
    }

    /// The (fanout) exchange rejected and expired jobs go to.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}{}", self.prefix, names::DEAD_LETTER_EXCHANGE)
    }

    /// The queue that keeps dead-lettered jobs for inspection.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}{}", self.prefix, names::DEAD_LETTER_QUEUE)
    }
}

impl fmt::Debug for AmqpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpConfig")
            .field("url", &redact_password(&self.url))
            .field("connection_name", &self.connection_name)
            .field("prefix", &self.prefix)
            .field("job_expiry", &self.job_expiry)
            .field("op_timeout", &self.op_timeout)
            .field("reconnect_initial", &self.reconnect_initial)
            .field("reconnect_max", &self.reconnect_max)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_print() {
        let c = AmqpConfig::new("amqp://guest:hunter2@127.0.0.1:5672/%2f");
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("amqp://guest:***@127.0.0.1:5672/%2f"));
    }

    #[test]
    fn prefix_applies_to_every_name() {
        let mut c = AmqpConfig::new("amqp://x");
        c.prefix = "t1.".into();
        let n = NodeId::try_from("n1").expect("valid");
        assert_eq!(c.node_queue(&n), "t1.tether.node.n1");
        assert_eq!(c.jobs_exchange(), "t1.tether.jobs");
        assert_eq!(c.dead_letter_exchange(), "t1.tether.dlx");
        assert_eq!(c.dead_letter_queue(), "t1.tether.dead");
    }
}
