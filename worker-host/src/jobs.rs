//! The node's job loop: consume this node's queue, run each job in its session (in queue
//! order per session), write the result to the store, and only then acknowledge.
//! Also heartbeats the node into the registry so placement can see it.

use crate::cell::{Cause, CellReport};
use crate::engine::{Engine, EngineError, ExecuteOptions, Pending};
use crate::rejoin;
use futures::FutureExt;
use std::sync::Arc;
use std::time::Duration;
use tether_protocol::{
    ErrorCode, Job, JobError, JobEventKind, JobId, JobKind, JobRecord, JobResult, JobStatus,
    NodeId, Output, UnixMillis,
};
use tether_transport::{
    Delivery, JobBus, JobStore, NodeInfo, RecordUpdate, SessionRegistry, StoreError, UpdateOutcome,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How the node takes part in the job system.
#[derive(Debug, Clone)]
pub struct JobLoopConfig {
    /// Unsettled deliveries allowed at once.
    pub prefetch: u16,
    /// How often the node heartbeats.
    pub heartbeat_every: Duration,
    /// How long a heartbeat stays valid; a node silent for longer is considered dead.
    pub heartbeat_ttl: Duration,
    /// How often a running job's record is checked for a cancel request.
    pub cancel_poll: Duration,
    /// Where API replicas reach this node's file endpoint (direct upload and download),
    /// advertised in the heartbeat as `file_url`; `None` when the node serves none.
    pub file_url: Option<String>,
}

impl Default for JobLoopConfig {
    fn default() -> Self {
        Self {
            prefetch: 512,
            heartbeat_every: Duration::from_secs(2),
            heartbeat_ttl: Duration::from_secs(10),
            cancel_poll: Duration::from_millis(200),
            file_url: None,
        }
    }
}

/// The pieces a job loop talks to.
#[derive(Clone)]
pub struct JobLoop {
    pub engine: Engine,
    pub bus: Arc<dyn JobBus>,
    pub store: Arc<dyn JobStore>,
    pub registry: Arc<dyn SessionRegistry>,
    pub config: JobLoopConfig,
}

impl std::fmt::Debug for JobLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobLoop")
            .field("node", &self.node())
            .finish_non_exhaustive()
    }
}

impl JobLoop {
    fn node(&self) -> NodeId {
        self.engine.config().node_id.clone()
    }

    /// Run until `shutdown`: heartbeat, consume, execute. On shutdown the node leaves the
    /// registry first (no new sessions), then stops consuming; in-flight jobs finish.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), tether_transport::BusError> {
        let node = self.node();
        // What an earlier run of this node id left in the registry and store is settled
        // before any job is taken (its sandboxes are gone: the janitor removed them).
        if rejoin::settle_previous_run(&node, &self.store, &self.registry, &shutdown)
            .await
            .is_none()
        {
            return Ok(());
        }
        tokio::spawn(rejoin::report_reaped(
            node.clone(),
            self.registry.clone(),
            self.engine.reaped(),
        ));
        // The broker may not be reachable yet (or at all for a while): keep trying, so a
        // node started before RabbitMQ joins as soon as it is up.
        let mut delay = Duration::from_millis(100);
        let mut deliveries = loop {
            match self.bus.consume(&node, self.config.prefetch).await {
                Ok(rx) => break rx,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot consume the node queue yet; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        };
        let heartbeat = tokio::spawn(self.clone().heartbeat(shutdown.clone()));
        tracing::info!(node_id = %node, "consuming jobs");
        loop {
            let delivery = tokio::select! {
                d = deliveries.recv() => d,
                _ = shutdown.cancelled() => None,
            };
            let Some(delivery) = delivery else { break };
            self.dispatch(delivery);
        }
        heartbeat.abort();
        let _ = self.registry.deregister(&node).await;
        Ok(())
    }

    async fn heartbeat(self, shutdown: CancellationToken) {
        loop {
            let status = self.engine.status();
            let info = NodeInfo {
                id: self.node(),
                capacity: u32::try_from(status.pool.max_total).unwrap_or(u32::MAX),
                sessions: u32::try_from(status.sessions).unwrap_or(u32::MAX),
                draining: false,
                detail: serde_json::json!({
                    "ready": status.ready,
                    "total_workers": status.pool.total,
                    "busy_workers": status.busy,
                    "idle_workers": status.pool.idle,
                    "sessions": status.sessions,
                    "max_workers": status.pool.max_total,
                    "file_url": self.config.file_url,
                }),
            };
            if let Err(e) = self
                .registry
                .heartbeat(info, self.config.heartbeat_ttl)
                .await
            {
                tracing::warn!(error = %e, "heartbeat failed");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.config.heartbeat_every) => {}
            }
        }
    }

    /// Hand a delivery to its session without waiting: the order of `dispatch` calls is
    /// the order of execution within a session.
    fn dispatch(&self, delivery: Delivery) {
        let job = match delivery.job {
            Ok(job) => job,
            Err(poison) => {
                tracing::error!(reason = %poison.reason, job_id = ?poison.job_id, "poison message: rejecting to the dead-letter queue");
                let this = self.clone();
                tokio::spawn(async move {
                    if let Some(id) = poison.job_id {
                        // The message still names its job: end the record instead of
                        // leaving it queued forever.
                        let error = JobError::poison(&poison.reason);
                        let update = RecordUpdate::Finished {
                            status: JobStatus::Failed,
                            result: None,
                            error: Some(error),
                            at: UnixMillis::now(),
                        };
                        let _ = with_retry(|| this.store.update(id, update.clone())).await;
                    }
                    delivery.settle.reject(false).await;
                });
                return;
            }
        };
        let settle = delivery.settle;
        let this = self.clone();
        let known = Known::queued(&job, self.node());
        match job.kind.clone() {
            JobKind::Execute(spec) => {
                let cancel = CancellationToken::new();
                let (sink, outputs) = mpsc::unbounded_channel();
                let gate_loop = this.clone();
                let gate_cancel = cancel.clone();
                let gate_known = known.clone();
                let gate: crate::session::StartGate =
                    Box::new(move || gate_loop.start(gate_known, gate_cancel).boxed());
                let pending = self.engine.submit(
                    job.user_uuid,
                    spec.code,
                    Duration::from_millis(spec.timeout_ms),
                    ExecuteOptions {
                        sink: Some(sink),
                        cancel: cancel.clone(),
                        gate: Some(gate),
                    },
                );
                tokio::spawn(async move {
                    let streaming = tokio::spawn(this.clone().stream(job.id, outputs));
                    let outcome = pending.report().await;
                    cancel.cancel();
                    let _ = streaming.await;
                    this.finish_execute(&job, &known, outcome).await;
                    settle.ack().await;
                });
            }
            JobKind::FilesImport(spec) => {
                let (gate, cancel) = this.gate(&known);
                let pending = self.engine.submit_import(job.user_uuid, spec, Some(gate));
                this.finish_files_later(job, known, pending, cancel, settle, |results| {
                    JobResult::FilesImport { results }
                });
            }
            JobKind::FilesExport(spec) => {
                let (gate, cancel) = this.gate(&known);
                let pending = self.engine.submit_export(job.user_uuid, spec, Some(gate));
                this.finish_files_later(job, known, pending, cancel, settle, |results| {
                    JobResult::FilesExport { results }
                });
            }
            JobKind::FilesDelete(spec) => {
                let (gate, cancel) = this.gate(&known);
                let pending = self.engine.submit_delete(job.user_uuid, spec, Some(gate));
                this.finish_files_later(job, known, pending, cancel, settle, |results| {
                    JobResult::FilesDelete { results }
                });
            }
            JobKind::Release => {
                tokio::spawn(async move {
                    // A redelivered release whose first delivery already started (or a
                    // release whose record is gone) must not destroy a newer sandbox.
                    if !this.mark_started(&known).await {
                        settle.ack().await;
                        return;
                    }
                    let released = this.engine.release(job.user_uuid).await;
                    let _ = this
                        .registry
                        .unbind_session(job.user_uuid, &this.node())
                        .await;
                    // The client asked for a fresh start: an unreported loss says nothing new.
                    let _ = this.registry.take_session_lost(job.user_uuid).await;
                    this.finish(
                        &known,
                        JobStatus::Succeeded,
                        Some(JobResult::Release { released }),
                        None,
                    )
                    .await;
                    settle.ack().await;
                });
            }
        }
    }

    /// A start gate for the job and the token that stops its cancel watch.
    fn gate(&self, known: &Known) -> (crate::session::StartGate, CancellationToken) {
        let cancel = CancellationToken::new();
        let this = self.clone();
        let token = cancel.clone();
        let known = known.clone();
        (Box::new(move || this.start(known, token).boxed()), cancel)
    }

    /// Wait for a file job, store its result (or typed error), then acknowledge.
    fn finish_files_later<T: Send + 'static>(
        self,
        job: Job,
        known: Known,
        pending: Pending<T>,
        cancel: CancellationToken,
        settle: Box<dyn tether_transport::bus::Settle>,
        result: impl FnOnce(T) -> JobResult + Send + 'static,
    ) {
        tokio::spawn(async move {
            let outcome = pending.report().await;
            cancel.cancel();
            match outcome {
                Ok(value) => {
                    self.finish(&known, JobStatus::Succeeded, Some(result(value)), None)
                        .await;
                }
                Err(EngineError::Skipped) => {}
                Err(e) => {
                    let error = self.engine_error(&job, e).await;
                    self.finish(&known, JobStatus::Failed, None, Some(error))
                        .await;
                }
            }
            settle.ack().await;
        });
    }

    /// The job error for an engine failure (and the side effects some failures need).
    async fn engine_error(&self, job: &Job, error: EngineError) -> JobError {
        match error {
            EngineError::NoCapacity(n) => {
                let _ = self
                    .registry
                    .unbind_session(job.user_uuid, &self.node())
                    .await;
                JobError {
                    code: ErrorCode::NoCapacity,
                    message: format!(
                        "No sandbox is free: all {n} slots on this node are in use. Retry later."
                    ),
                }
            }
            EngineError::SandboxUnavailable(detail) => JobError {
                code: ErrorCode::SandboxUnavailable,
                message: format!("The sandbox could not be reached and was reset: {detail}"),
            },
            EngineError::ShuttingDown | EngineError::Skipped => JobError {
                code: ErrorCode::Unavailable,
                message: "The worker-host is shutting down; retry the job.".into(),
            },
            EngineError::Files(failure) => JobError {
                code: failure.error.code(),
                message: failure.to_string(),
            },
        }
    }

    /// The start gate: mark the job running and watch for a cancel request while it runs;
    /// skip it if it was cancelled (or already started or finished) meanwhile.
    async fn start(self, known: Known, cancel: CancellationToken) -> bool {
        if !self.mark_started(&known).await {
            return false;
        }
        let id = known.id();
        let poll = self.config.cancel_poll;
        let store = self.store.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(poll) => {}
                }
                if let Ok(Some(record)) = store.get(id).await
                    && record.cancel_requested
                {
                    cancel.cancel();
                    return;
                }
            }
        });
        true
    }

    /// Move the job to `running` (the store appends the event); returns whether this
    /// delivery may run it. A job cancelled while queued is ended `cancelled` here and
    /// never runs; one already started (a redelivery) or finished is skipped.
    async fn mark_started(&self, known: &Known) -> bool {
        let update = RecordUpdate::Started {
            node: self.node(),
            at: UnixMillis::now(),
        };
        match self.update(known, update).await {
            Some(UpdateOutcome::Applied(_)) => true,
            Some(UpdateOutcome::Stale(record))
                if record.status == JobStatus::Queued && record.cancel_requested =>
            {
                let error = JobError {
                    code: ErrorCode::Cancelled,
                    message: "The job was cancelled before it started.".into(),
                };
                self.finish(known, JobStatus::Cancelled, None, Some(error))
                    .await;
                false
            }
            Some(UpdateOutcome::Stale(_) | UpdateOutcome::Missing) | None => false,
        }
    }

    /// Forward outputs to the job's event log as the kernel produces them.
    async fn stream(self, id: JobId, mut outputs: mpsc::UnboundedReceiver<Output>) {
        while let Some(output) = outputs.recv().await {
            let kind = match output {
                Output::Stream { name, text } => JobEventKind::Stream { name, text },
                Output::DisplayData { data, .. } | Output::ExecuteResult { data, .. } => {
                    JobEventKind::Display { data }
                }
                Output::Error(_) => continue,
            };
            if let Err(e) = self.store.append_event(id, kind).await {
                tracing::warn!(job_id = %id, error = %e, "could not record output event");
            }
        }
    }

    async fn finish_execute(
        &self,
        job: &Job,
        known: &Known,
        outcome: Result<CellReport, EngineError>,
    ) {
        let (status, result, error) = match outcome {
            Ok(mut report) => {
                if report.fresh_sandbox {
                    report.result.session_restarted = self.take_lost(job).await;
                }
                classify(report)
            }
            Err(EngineError::Skipped) => return,
            Err(e) => (
                JobStatus::Failed,
                None,
                Some(self.engine_error(job, e).await),
            ),
        };
        self.finish(known, status, result, error).await;
    }

    /// Whether the session had lost its sandbox (node death, node restart, idle reaping)
    /// before this job, the first in its new sandbox: consumes the registry's mark.
    async fn take_lost(&self, job: &Job) -> bool {
        match self.registry.take_session_lost(job.user_uuid).await {
            Ok(lost) => lost,
            Err(e) => {
                tracing::warn!(job_id = %job.id, error = %e, "could not read the session's lost mark");
                false
            }
        }
    }

    async fn finish(
        &self,
        known: &Known,
        status: JobStatus,
        result: Option<JobResult>,
        error: Option<JobError>,
    ) {
        let update = RecordUpdate::Finished {
            status,
            result,
            error,
            at: UnixMillis::now(),
        };
        // The store appends the terminal status event with the change.
        let _ = self.update(known, update).await;
    }

    /// Apply `update` (retrying while the store is unavailable), starting from the record
    /// as this node last saw it, and remember the record as it is now.
    async fn update(&self, known: &Known, update: RecordUpdate) -> Option<UpdateOutcome> {
        let expected = known.get();
        let outcome = with_retry(|| self.store.update_expecting(&expected, update.clone())).await?;
        if let UpdateOutcome::Applied(record) | UpdateOutcome::Stale(record) = &outcome {
            known.set(record.clone());
        }
        Some(outcome)
    }
}

/// A job's record as this node last saw it, shared by its start gate and its final
/// update, so that the store can skip reading the record before changing it.
#[derive(Clone)]
struct Known(Arc<std::sync::Mutex<JobRecord>>);

impl Known {
    /// The record as the dispatcher inserts it for this node.
    fn queued(job: &Job, node: NodeId) -> Self {
        Self(Arc::new(std::sync::Mutex::new(JobRecord::queued(
            job.clone(),
            Some(node),
        ))))
    }

    fn id(&self) -> JobId {
        self.lock().job.id
    }

    fn get(&self) -> JobRecord {
        self.lock().clone()
    }

    fn set(&self, record: JobRecord) {
        *self.lock() = record;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JobRecord> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Job status for a cell report: finished cells succeed (a Python error is a result, not
/// a job failure); timeouts are `timed_out`; cancelled cells `cancelled`; a dead kernel
/// is a `failed` job that still carries what the cell printed.
fn classify(report: CellReport) -> (JobStatus, Option<JobResult>, Option<JobError>) {
    let CellReport { result, cause, .. } = report;
    let (status, code) = match cause {
        Cause::Finished => return (JobStatus::Succeeded, Some(JobResult::Execute(result)), None),
        Cause::Timeout => (JobStatus::TimedOut, ErrorCode::ExecutionTimeout),
        Cause::Cancelled => (JobStatus::Cancelled, ErrorCode::Cancelled),
        Cause::KernelDied => (JobStatus::Failed, ErrorCode::SandboxUnavailable),
    };
    let error = JobError {
        code,
        message: result.message.clone().unwrap_or_default(),
    };
    (status, Some(JobResult::Execute(result)), Some(error))
}

/// Retry a store call while the store is unavailable (bounded: about a minute), so a
/// result is not lost to a short store outage. Returns `None` if it never succeeded.
async fn with_retry<T, F, Fut>(mut call: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut delay = Duration::from_millis(50);
    for _ in 0..12 {
        match call().await {
            Ok(v) => return Some(v),
            Err(StoreError::Unavailable(e)) => {
                tracing::warn!(error = %e, "store unavailable; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(e) => {
                tracing::error!(error = %e, "store call failed");
                return None;
            }
        }
    }
    None
}
