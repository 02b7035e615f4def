//! A node (re)joining the cluster. The janitor removed every sandbox an earlier run of
//! this node id left behind, so whatever the registry and the store still say about that
//! run is settled before the node takes jobs: its sessions are unbound and marked lost
//! (their next job starts afresh and reports `session_restarted: true` instead of
//! silently finding empty state), and its unfinished jobs end `session_lost` (they died
//! with the old process, or would run against state that no longer exists).

use std::sync::Arc;
use std::time::Duration;
use tether_protocol::{JobError, JobStatus, NodeId, UnixMillis, UserUuid};
use tether_transport::{JobStore, RecordUpdate, SessionRegistry, UpdateOutcome};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the previous run of this node left and this one settled.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    pub sessions: usize,
    pub jobs: usize,
}

/// Settle the previous run of `node`, retrying (with backoff) while the registry or
/// store is unreachable. Returns `None` if `shutdown` fired first.
pub async fn settle_previous_run(
    node: &NodeId,
    store: &Arc<dyn JobStore>,
    registry: &Arc<dyn SessionRegistry>,
    shutdown: &CancellationToken,
) -> Option<Settled> {
    let mut delay = Duration::from_millis(100);
    loop {
        match try_settle(node, store, registry).await {
            Ok(settled) => return Some(settled),
            Err(e) => {
                tracing::warn!(error = %e, "cannot settle this node's previous run yet; retrying");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

async fn try_settle(
    node: &NodeId,
    store: &Arc<dyn JobStore>,
    registry: &Arc<dyn SessionRegistry>,
) -> Result<Settled, String> {
    // Out of the live list first, so that no new session is placed on the old run.
    registry.deregister(node).await.map_err(|e| e.to_string())?;
    let sessions = registry
        .lose_sessions_of(node)
        .await
        .map_err(|e| e.to_string())?;
    let ids = store
        .active_jobs_on(node)
        .await
        .map_err(|e| e.to_string())?;
    let mut jobs = 0;
    for id in ids {
        let update = RecordUpdate::Finished {
            status: JobStatus::SessionLost,
            result: None,
            error: Some(JobError::session_lost(node)),
            at: UnixMillis::now(),
        };
        if let UpdateOutcome::Applied(_) =
            store.update(id, update).await.map_err(|e| e.to_string())?
        {
            jobs += 1;
        }
    }
    let settled = Settled {
        sessions: sessions.len(),
        jobs,
    };
    if settled != Settled::default() {
        tracing::warn!(
            node_id = %node,
            sessions = settled.sessions,
            jobs = settled.jobs,
            "an earlier run of this node left sessions and jobs behind: sessions marked lost, jobs ended session_lost"
        );
    }
    Ok(settled)
}

/// Tell the registry about sessions the idle reaper released: unbound and marked lost,
/// so the session's next job reports `session_restarted: true`.
pub async fn report_reaped(
    node: NodeId,
    registry: Arc<dyn SessionRegistry>,
    mut reaped: mpsc::UnboundedReceiver<UserUuid>,
) {
    while let Some(user) = reaped.recv().await {
        if let Err(e) = registry.lose_session(user, &node).await {
            tracing::warn!(user_uuid = %user, error = %e, "could not unbind a reaped session");
        }
    }
}
