//! `node_for`: the node that holds a session, for operations that go to the node directly
//! (direct file transfer streams bytes to the node over HTTP instead of through the bus).

use crate::Dispatcher;
use crate::error::DispatchError;
use crate::node_report::NodeReport;
use tether_protocol::UserUuid;

impl Dispatcher {
    /// The live node holding `user`'s session. A session without one is placed exactly as
    /// its first job would be, so the operation and later jobs meet on the same disk.
    pub async fn node_for(&self, user: UserUuid) -> Result<NodeReport, DispatchError> {
        let node = match self.live_binding(user).await? {
            Some(node) => node,
            None => self.place(user, None).await?,
        };
        let live = self.registry.live_nodes().await?;
        // The node can only be missing if it died in between: retrying places anew.
        live.iter()
            .find(|n| n.id == node)
            .map(NodeReport::from)
            .ok_or(DispatchError::NotReady)
    }
}
