//! Choosing the node a new session lives on (ARCHITECTURE decision 1): the live,
//! non-draining, ready node with the most free capacity. Adding a node never moves
//! existing sessions; they stay where their binding points.
//!
//! [`candidates`] decides which nodes may take a new session; the registry's
//! `place_session` then picks the freest of them and binds, in one atomic step, so that
//! concurrent placements (several API replicas, a burst of new sessions) see each
//! other's bindings. [`choose_node`] is the same rule on a snapshot.

use crate::node_report::NodeReport;
use tether_protocol::NodeId;
use tether_transport::{Candidate, NodeInfo};

/// Why no node can take a new session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPlacement {
    /// No node is live, or none has finished starting: the service is initialising.
    NotReady,
    /// Nodes are up but every one is full or draining.
    Full,
}

/// The nodes that may take a new session (live, ready, not draining, with a free slot),
/// smallest id first so that ties are deterministic; or why there are none.
pub fn candidates(nodes: &[NodeInfo]) -> Result<Vec<Candidate>, NoPlacement> {
    let reports: Vec<NodeReport> = nodes.iter().map(NodeReport::from).collect();
    if !reports.iter().any(|r| r.ready) {
        return Err(NoPlacement::NotReady);
    }
    let mut open: Vec<Candidate> = nodes
        .iter()
        .zip(&reports)
        .filter(|(_, r)| r.ready && !r.draining && r.free > 0)
        .map(|(n, _)| Candidate {
            node: n.id.clone(),
            capacity: n.capacity,
            sessions: n.sessions,
        })
        .collect();
    if open.is_empty() {
        return Err(NoPlacement::Full);
    }
    open.sort_by(|a, b| a.node.cmp(&b.node));
    Ok(open)
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
    fn candidates_are_the_open_nodes_in_id_order() {
        let nodes = [
            node("d", 2, 1, false, true),
            node("a", 8, 0, true, true),
            node("b", 2, 2, false, true),
            node("c", 8, 0, false, false),
            node("e", 4, 0, false, true),
        ];
        let ids: Vec<NodeId> = candidates(&nodes)
            .expect("open nodes")
            .into_iter()
            .map(|c| c.node)
            .collect();
        assert_eq!(ids, vec![id("d"), id("e")]);
        assert_eq!(candidates(&[]), Err(NoPlacement::NotReady));
        assert_eq!(
            candidates(&[node("b", 2, 2, false, true)]),
            Err(NoPlacement::Full)
        );
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
