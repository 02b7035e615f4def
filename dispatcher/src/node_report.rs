//! What a node says about itself, read from its heartbeat in one place.
//!
//! A worker-host heartbeats [`NodeInfo`] with a free-form `detail` object such as
//! `{"ready": true, "total_workers": 8, "busy_workers": 2, "idle_workers": 3, "sessions": 5,
//! "file_url": "http://10.0.0.5:3875"}`.
//! Placement, readiness probes and the status endpoint all read it through
//! [`NodeReport`], so a missing or misspelt figure degrades the same way everywhere.

use serde::Serialize;
use serde_json::Value;
use tether_protocol::NodeId;
use tether_transport::NodeInfo;

/// A node's heartbeat figures, with fallbacks for figures the node did not send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeReport {
    pub id: NodeId,
    /// The node's pool is initialised and it can start sandboxes. A node that sends no
    /// `ready` flag is taken as ready.
    pub ready: bool,
    /// The node takes no new sessions.
    pub draining: bool,
    /// Sandboxes the node may run at once.
    pub capacity: u32,
    /// Sandbox containers that exist (bound or warm); falls back to `capacity`.
    pub total_workers: u64,
    /// Sandboxes running code right now.
    pub busy_workers: u64,
    /// Warm sandboxes waiting for a session.
    pub idle_workers: u64,
    /// Sessions bound to the node.
    pub sessions: u64,
    /// Slots left for new sessions.
    pub free: u32,
    /// Where the node serves direct file transfer (`None`: it serves none). An internal
    /// address, so never shown in status output.
    #[serde(skip)]
    pub file_url: Option<String>,
}

impl From<&NodeInfo> for NodeReport {
    fn from(info: &NodeInfo) -> Self {
        let figure = |name: &str| info.detail.get(name).and_then(Value::as_u64);
        Self {
            id: info.id.clone(),
            ready: info
                .detail
                .get("ready")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            draining: info.draining,
            capacity: info.capacity,
            total_workers: figure("total_workers").unwrap_or(u64::from(info.capacity)),
            busy_workers: figure("busy_workers").unwrap_or(0),
            idle_workers: figure("idle_workers").unwrap_or(0),
            sessions: figure("sessions").unwrap_or(u64::from(info.sessions)),
            free: info.free(),
            file_url: info
                .detail
                .get("file_url")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(detail: Value) -> NodeInfo {
        NodeInfo {
            id: NodeId::try_from("n1").expect("valid"),
            capacity: 4,
            sessions: 1,
            draining: false,
            detail,
        }
    }

    #[test]
    fn reads_figures_from_detail() {
        let r = NodeReport::from(&info(json!({
            "ready": false, "total_workers": 3, "busy_workers": 1, "idle_workers": 2, "sessions": 1
        })));
        assert!(!r.ready);
        assert_eq!((r.total_workers, r.busy_workers, r.idle_workers), (3, 1, 2));
        assert_eq!(r.free, 3);
    }

    #[test]
    fn missing_figures_fall_back() {
        let r = NodeReport::from(&info(Value::Null));
        assert!(r.ready);
        assert_eq!((r.total_workers, r.busy_workers, r.sessions), (4, 0, 1));
    }
}
