//! `submit`: give a job its place in the session's log, find the node that owns the
//! session (placing it if new), record the job as queued and publish it to that node.

use crate::Dispatcher;
use crate::error::DispatchError;
use crate::placement::{NoPlacement, candidates};
use serde_json::Value;
use std::time::Duration;
use tether_protocol::{
    ErrorCode, Job, JobError, JobId, JobKind, JobRecord, JobResult, JobStatus, NodeId, UnixMillis,
    UserUuid,
};
use tether_transport::{BusError, RecordUpdate, UpdateOutcome};
use tracing::Instrument;

/// How long a job waits for an earlier job of its session to finish publishing. Only a
/// dispatcher that dies mid-publish leaves a turn open; the broker's own time limit (5 s
/// by default) bounds every live publish.
const PUBLISH_TURN_WAIT: Duration = Duration::from_secs(10);

impl Dispatcher {
    /// Queue a job for `user`'s session and return its record.
    ///
    /// On `Ok` the job is on its node's queue (status `queued`), or — for a release of a
    /// session that has no sandbox — already `succeeded` with `released: false`, without a
    /// trip over the bus. On `Err` no job will run: either no record was created
    /// (placement or registry failure) or the record was failed before returning.
    pub async fn submit(
        &self,
        user: UserUuid,
        kind: JobKind,
        callback_url: Option<String>,
        metadata: Option<Value>,
    ) -> Result<JobRecord, DispatchError> {
        self.submit_as(JobId::new(), user, kind, callback_url, metadata)
            .await
    }

    /// [`Dispatcher::submit`] with an id chosen by the caller, who may have promised it
    /// already (an idempotency key bound to it). Fails with a `Duplicate` store error if
    /// the id exists.
    pub async fn submit_as(
        &self,
        id: JobId,
        user: UserUuid,
        kind: JobKind,
        callback_url: Option<String>,
        metadata: Option<Value>,
    ) -> Result<JobRecord, DispatchError> {
        let span =
            tracing::info_span!("submit", job_id = %id, user_uuid = %user, kind = kind.name());
        async move {
            let node = match self.live_binding(user).await? {
                Some(node) => Some(node),
                None if kind == JobKind::Release => None,
                None => Some(self.place(user, None).await?),
            };
            // Allocated only once the job will be recorded, so refused jobs leave no gap
            // in the session's log.
            let (seq, turn_now) = self.store.next_seq_and_turn(user).await?;
            let job = Job {
                id,
                user_uuid: user,
                seq,
                kind,
                submitted_at: UnixMillis::now(),
                callback_url,
                metadata,
            };
            // Jobs of one session reach their queue in seq order, even when dispatched by
            // different replicas: wait until every earlier seq's publish is over.
            let turn = if turn_now {
                Ok(true)
            } else {
                self.store
                    .wait_publish_turn(user, seq, PUBLISH_TURN_WAIT)
                    .await
            };
            let queued = match turn {
                Ok(true) => self.record_and_publish(job, node).await,
                Ok(false) => {
                    tracing::warn!(
                        seq,
                        "an earlier job of this session never finished publishing; going ahead"
                    );
                    self.record_and_publish(job, node).await
                }
                Err(e) => Err(e.into()),
            };
            // Always end the turn, even for a job that failed, or the session's next job
            // would wait for it in vain.
            if let Err(e) = self.store.finish_publish_turn(user, seq).await {
                tracing::warn!(seq, error = %e, "could not end this job's publish turn");
            }
            queued
        }
        .instrument(span)
        .await
    }

    /// Record the job and publish it to `node` (the session's node; `None` for a release
    /// of a session without sandbox, which completes without a bus hop).
    async fn record_and_publish(
        &self,
        job: Job,
        node: Option<NodeId>,
    ) -> Result<JobRecord, DispatchError> {
        let seq = job.seq;
        let Some(node) = node else {
            return self.release_without_sandbox(job).await;
        };
        let record = JobRecord::queued(job, Some(node.clone()));
        self.store.insert(&record).await?;
        match self.bus.publish(&node, &record.job).await {
            Ok(()) => {
                tracing::debug!(node_id = %node, seq, "job queued");
                Ok(record)
            }
            Err(BusError::Unroutable(gone)) if record.job.kind == JobKind::Release => {
                self.release_on_lost_node(record, gone).await
            }
            Err(BusError::Unroutable(gone)) => self.reroute(record, gone).await,
            Err(e) => {
                let message = e.to_string();
                match self
                    .fail(&record, JobStatus::Failed, ErrorCode::Unavailable, &message)
                    .await
                {
                    // The confirm was lost but the job did reach its node, which took it.
                    Some(taken) => Ok(taken),
                    None => Err(DispatchError::Bus(e)),
                }
            }
        }
    }

    /// The session's node if it has one that is still live. A binding to a dead node is
    /// removed so that the session is placed afresh (its state died with the node).
    pub(crate) async fn live_binding(
        &self,
        user: UserUuid,
    ) -> Result<Option<NodeId>, DispatchError> {
        let Some((node, live)) = self.registry.session_binding(user).await? else {
            return Ok(None);
        };
        if live {
            return Ok(Some(node));
        }
        tracing::warn!(node_id = %node, "session was bound to a node that is gone; placing it anew");
        // Its state died with the node: the first job in the new sandbox says so.
        self.registry.lose_session(user, &node).await?;
        Ok(None)
    }

    /// Bind a new session to the best live node (never `exclude`). The registry decides
    /// atomically among the open nodes: if another caller bound the session first, its
    /// node is returned; concurrent new sessions spread over the nodes.
    pub(crate) async fn place(
        &self,
        user: UserUuid,
        exclude: Option<&NodeId>,
    ) -> Result<NodeId, DispatchError> {
        let mut nodes = self.registry.live_nodes().await?;
        nodes.retain(|n| Some(&n.id) != exclude);
        let open = candidates(&nodes).map_err(|e| match e {
            NoPlacement::NotReady => DispatchError::NotReady,
            NoPlacement::Full => DispatchError::NoCapacity,
        })?;
        let bound = self
            .registry
            .place_session(user, &open)
            .await?
            .ok_or(DispatchError::NoCapacity)?;
        tracing::debug!(node_id = %bound, "session placed");
        Ok(bound)
    }

    /// The job's node has no queue any more: the session is lost (unbound, marked lost) and
    /// placed once more, on another node; the record follows the job there.
    async fn reroute(
        &self,
        mut record: JobRecord,
        gone: NodeId,
    ) -> Result<JobRecord, DispatchError> {
        let user = record.job.user_uuid;
        tracing::warn!(node_id = %gone, "node has no queue; re-placing the session once");
        let lost = |node: NodeId| DispatchError::SessionLost {
            job: record.job.id,
            node,
        };
        let retried = async {
            self.registry.lose_session(user, &gone).await?;
            let node = self.place(user, Some(&gone)).await?;
            // File the record under its new node before a worker there can see it.
            let rerouted = RecordUpdate::Rerouted { node: node.clone() };
            self.store.update(record.job.id, rerouted).await?;
            self.bus
                .publish(&node, &record.job)
                .await
                .map_err(|e| match e {
                    BusError::Unroutable(node) => lost(node),
                    other => DispatchError::Bus(other),
                })?;
            Ok::<_, DispatchError>(node)
        };
        match retried.await {
            Ok(node) => {
                record.node_id = Some(node);
                Ok(record)
            }
            Err(e) => {
                let message =
                    format!("the session's node {gone} is gone and re-placing failed: {e}");
                match self
                    .fail(
                        &record,
                        JobStatus::SessionLost,
                        ErrorCode::SessionLost,
                        &message,
                    )
                    .await
                {
                    Some(taken) => Ok(taken),
                    None => Err(lost(gone)),
                }
            }
        }
    }

    /// The session's node is gone, and its sandbox with it: a release has nothing left to
    /// do (re-placing it would only reach a node that never had the sandbox).
    async fn release_on_lost_node(
        &self,
        record: JobRecord,
        gone: NodeId,
    ) -> Result<JobRecord, DispatchError> {
        tracing::warn!(node_id = %gone, "released a session whose node is gone");
        self.registry
            .unbind_session(record.job.user_uuid, &gone)
            .await?;
        let now = UnixMillis::now();
        let update = RecordUpdate::Finished {
            status: JobStatus::Succeeded,
            result: Some(JobResult::Release { released: false }),
            error: None,
            at: now,
        };
        match self.store.update(record.job.id, update).await? {
            UpdateOutcome::Applied(record) | UpdateOutcome::Stale(record) => Ok(record),
            UpdateOutcome::Missing => Err(DispatchError::SessionLost {
                job: record.job.id,
                node: gone,
            }),
        }
    }

    /// Nothing to release: record the job as already succeeded, with no bus hop. A loss
    /// not yet reported is forgotten: the client asked for a fresh start anyway.
    async fn release_without_sandbox(&self, job: Job) -> Result<JobRecord, DispatchError> {
        if let Err(e) = self.registry.take_session_lost(job.user_uuid).await {
            tracing::warn!(error = %e, "could not clear the session's lost mark");
        }
        let mut record = JobRecord::queued(job, None);
        let now = UnixMillis::now();
        record.status = JobStatus::Succeeded;
        record.started_at = Some(now);
        record.finished_at = Some(now);
        record.result = Some(JobResult::Release { released: false });
        self.store.insert(&record).await?;
        tracing::debug!("release of a session without sandbox completed at once");
        Ok(record)
    }

    /// End a record that could not be delivered, unless a worker already took the job
    /// (a publish whose confirm was lost may still have reached the queue). Returns the
    /// record as the worker left it in that case, so the caller reports the job as
    /// accepted; `None` when the job was ended here and will never run. A store failure
    /// here is logged, and the caller reports the original error.
    async fn fail(
        &self,
        record: &JobRecord,
        status: JobStatus,
        code: ErrorCode,
        message: &str,
    ) -> Option<JobRecord> {
        let update = RecordUpdate::Undelivered {
            status,
            error: JobError {
                code,
                message: message.to_owned(),
            },
            at: UnixMillis::now(),
        };
        match self.store.update(record.job.id, update).await {
            Ok(UpdateOutcome::Applied(_) | UpdateOutcome::Missing) => None,
            Ok(UpdateOutcome::Stale(taken)) => {
                tracing::warn!(
                    status = taken.status.as_str(),
                    "the publish failed, yet a worker already took the job; it stays accepted"
                );
                Some(taken)
            }
            Err(e) => {
                tracing::error!(error = %e, "could not fail an undeliverable job");
                None
            }
        }
    }
}
