//! Choosing the node a new session lives on (ARCHITECTURE decision 1): the live,
//! non-draining, ready node with the most free capacity. Adding a node never moves
//! existing sessions; they stay where their binding points.

use crate::node_report::NodeReport;
use tether_protocol::NodeId;
use tether_transport::NodeInfo;

/// Why no node can take a new session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPlacement {
    /// No node is live, or none has finished starting: the service is initialising.
    NotReady,
    /// Nodes are up but every one is full or draining.
    Full,
}

/// The node a new session should go to, or why there is none. Ties go to the smallest
/// node id so that placement is deterministic.
pub fn choose_node(nodes: &[NodeInfo]) -> Result<NodeId, NoPlacement> {
    let reports: Vec<NodeReport> = nodes.iter().map(NodeReport::from).collect();
    if !reports.iter().any(|r| r.ready) {
        return Err(NoPlacement::NotReady);
    }
    reports
        .into_iter()
        .filter(|r| r.ready && !r.draining && r.free > 0)
        .max_by(|a, b| a.free.cmp(&b.free).then_with(|| b.id.cmp(&a.id)))
        .map(|r| r.id)
        .ok_or(NoPlacement::Full)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(id: &str, capacity: u32, sessions: u32, draining: bool, ready: bool) -> NodeInfo {
        NodeInfo {
            id: NodeId::try_from(id).expect("valid"),
            capacity,
            sessions,
            draining,
            detail: json!({ "ready": ready }),
        }
    }

    fn id(s: &str) -> NodeId {
        NodeId::try_from(s).expect("valid")
    }

    #[test]
    fn most_free_capacity_wins() {
        let nodes = [node("a", 4, 3, false, true), node("b", 4, 1, false, true)];
        assert_eq!(choose_node(&nodes), Ok(id("b")));
    }

    #[test]
    fn ties_go_to_the_smallest_id() {
        let nodes = [node("b", 4, 0, false, true), node("a", 4, 0, false, true)];
        assert_eq!(choose_node(&nodes), Ok(id("a")));
    }

    #[test]
    fn draining_full_and_starting_nodes_are_skipped() {
        let nodes = [
            node("a", 8, 0, true, true),
            node("b", 2, 2, false, true),
            node("c", 8, 0, false, false),
            node("d", 2, 1, false, true),
        ];
        assert_eq!(choose_node(&nodes), Ok(id("d")));
    }

    #[test]
    fn distinguishes_starting_from_full() {
        assert_eq!(choose_node(&[]), Err(NoPlacement::NotReady));
        assert_eq!(
            choose_node(&[node("a", 2, 0, false, false)]),
            Err(NoPlacement::NotReady)
        );
        assert_eq!(
            choose_node(&[node("a", 2, 2, false, true), node("b", 2, 0, true, true)]),
            Err(NoPlacement::Full)
        );
    }
}
