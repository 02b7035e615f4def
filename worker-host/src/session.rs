//! One session's serial executor: a task that owns the session's sandbox and runs its
//! commands strictly in the order they were submitted.

use crate::cell::{CellControl, CellReport, run_cell};
use crate::engine::{EngineError, Shared};
use crate::files::manifest::{ManifestLimits, Snapshot, changes, snapshot};
use crate::files::{DiskRoot, FileOp};
use crate::pool::AcquireError;
use crate::sandbox::Sandbox;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tether_protocol::{UnixMillis, UserUuid};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

/// Awaited just before a queued command runs; `false` skips it (e.g. it was cancelled
/// while waiting). The job layer uses it to mark the job `running` at the right moment.
pub type StartGate = Box<dyn FnOnce() -> BoxFuture<'static, bool> + Send>;

/// What a session can be asked to do.
pub enum Command {
    Execute {
        code: String,
        control: CellControl,
        gate: Option<StartGate>,
        reply: oneshot::Sender<Result<CellReport, EngineError>>,
    },
    /// A file operation against the session disk (job or direct transfer).
    Files { op: FileOp, gate: Option<StartGate> },
    /// Destroy the sandbox and its disk. Replies whether a sandbox existed.
    Release { reply: oneshot::Sender<bool> },
}

/// Answer a command without running it.
pub fn fail(command: Command, error: EngineError) {
    match command {
        Command::Execute { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        Command::Files { op, .. } => op.fail(error),
        Command::Release { reply } => {
            let _ = reply.send(false);
        }
    }
}

/// Walk the disk on a blocking thread (an unreadable disk yields an empty, truncated
/// snapshot: the manifest is then incomplete, never wrong about what it lists).
async fn take_snapshot(mount_point: &std::path::Path, limits: ManifestLimits) -> Snapshot {
    let Ok(root) = DiskRoot::open(mount_point) else {
        return Snapshot::incomplete();
    };
    tokio::task::spawn_blocking(move || snapshot(&root, limits))
        .await
        .unwrap_or_else(|_| Snapshot::incomplete())
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Execute { .. } => f.write_str("Execute"),
            Command::Files { op, .. } => write!(f, "Files({})", op.name()),
            Command::Release { .. } => f.write_str("Release"),
        }
    }
}

/// The engine's handle on a running session task.
#[derive(Debug)]
pub struct SessionHandle {
    pub tx: mpsc::UnboundedSender<Command>,
    /// Distinguishes this task from a later session of the same user.
    pub generation: u64,
    /// Last time a command finished or arrived (for idle reaping).
    pub last_active: Arc<AtomicU64>,
    /// A command is running right now.
    pub busy: Arc<AtomicBool>,
    /// A sandbox is attached (false while the first one is being acquired).
    pub attached: Arc<AtomicBool>,
}

/// Start a session task for `user`.
pub fn spawn(shared: Arc<Shared>, user: UserUuid, generation: u64) -> SessionHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let last_active = Arc::new(AtomicU64::new(UnixMillis::now().0));
    let busy = Arc::new(AtomicBool::new(false));
    let attached = Arc::new(AtomicBool::new(false));
    let task = SessionTask {
        shared,
        user,
        generation,
        rx,
        last_active: last_active.clone(),
        busy: busy.clone(),
        attached: attached.clone(),
    };
    tokio::spawn(task.run());
    SessionHandle {
        tx,
        generation,
        last_active,
        busy,
        attached,
    }
}

struct SessionTask {
    shared: Arc<Shared>,
    user: UserUuid,
    generation: u64,
    rx: mpsc::UnboundedReceiver<Command>,
    last_active: Arc<AtomicU64>,
    busy: Arc<AtomicBool>,
    attached: Arc<AtomicBool>,
}

impl SessionTask {
    async fn run(mut self) {
        let span = tracing::info_span!("session", user_uuid = %self.user, node_id = %self.shared.config.node_id);
        let mut sandbox: Option<Sandbox> = None;
        // The disk as the last run left it: the manifest baseline of the next run.
        let mut baseline: Option<Snapshot> = None;
        // A sandbox was attached and no execution has reported it yet: the next one is
        // the first to run in it (file jobs do not report it).
        let mut fresh = false;
        let shutdown = self.shared.shutdown.clone();
        loop {
            let command = tokio::select! {
                c = self.rx.recv() => c,
                _ = shutdown.cancelled() => None,
            };
            let Some(command) = command else { break };
            self.busy.store(true, Ordering::SeqCst);
            let mut command = command;
            let gate = match &mut command {
                Command::Release { .. } => {
                    let existed = sandbox.is_some();
                    self.end(sandbox.take()).await;
                    if let Command::Release { reply } = command {
                        let _ = reply.send(existed);
                    }
                    return;
                }
                Command::Execute { gate, .. } | Command::Files { gate, .. } => gate.take(),
            };
            if let Some(gate) = gate
                && !gate().await
            {
                fail(command, EngineError::Skipped);
                self.touch();
                continue;
            }
            if sandbox.is_none() {
                match self.shared.pool.acquire().await {
                    Ok(s) => {
                        tracing::info!(parent: &span, slot = %s.slot, "sandbox attached");
                        sandbox = Some(s);
                        fresh = true;
                        self.attached.store(true, Ordering::SeqCst);
                    }
                    Err(e) => {
                        fail(
                            command,
                            match e {
                                AcquireError::NoCapacity(n) => EngineError::NoCapacity(n),
                                AcquireError::Start(e) => {
                                    EngineError::SandboxUnavailable(e.to_string())
                                }
                            },
                        );
                        // Nothing was created: end this session; queued commands move
                        // to a fresh one.
                        self.end(None).await;
                        return;
                    }
                }
            }
            let Some(active) = sandbox.as_mut() else {
                continue;
            };
            match command {
                Command::Execute {
                    code,
                    control,
                    reply,
                    ..
                } => {
                    let manifest = self.shared.config.files.manifest;
                    let before = match baseline.take() {
                        Some(snap) => snap,
                        None => take_snapshot(active.disk_root(), manifest).await,
                    };
                    let result = run_cell(
                        active,
                        &self.shared.runtime,
                        &self.shared.config,
                        &code,
                        control,
                    )
                    .instrument(span.clone())
                    .await;
                    match result {
                        Ok(mut report) => {
                            report.fresh_sandbox = std::mem::take(&mut fresh);
                            let after = take_snapshot(active.disk_root(), manifest).await;
                            let (files, truncated) = changes(&before, &after, manifest);
                            if truncated {
                                tracing::warn!(parent: &span, "the disk has too many entries for a complete file manifest");
                            }
                            report.result.files = files;
                            baseline = Some(after);
                            let _ = reply.send(Ok(report));
                        }
                        Err(e) => {
                            tracing::error!(parent: &span, error = %e, "sandbox lost and could not be recovered");
                            let _ = reply.send(Err(EngineError::SandboxUnavailable(e.to_string())));
                            self.end(sandbox.take()).await;
                            return;
                        }
                    }
                }
                Command::Files { op, .. } => {
                    if op.mutates() {
                        baseline = None;
                    }
                    let name = op.name();
                    op.run(active.disk_root(), &self.shared.files)
                        .instrument(tracing::info_span!(parent: &span, "files", op = name))
                        .await;
                }
                Command::Release { .. } => {}
            }
            self.touch();
        }
        let sandbox = sandbox.take();
        self.end(sandbox).await;
    }

    fn touch(&self) {
        self.busy.store(false, Ordering::SeqCst);
        self.last_active
            .store(UnixMillis::now().0, Ordering::SeqCst);
    }

    /// Destroy the sandbox, leave the session table, and hand any commands queued behind
    /// us to a fresh session of the same user, in order.
    async fn end(mut self, sandbox: Option<Sandbox>) {
        if let Some(s) = sandbox {
            self.shared.pool.discard(s).await;
        }
        self.busy.store(false, Ordering::SeqCst);
        self.shared.retire(self.user, self.generation, &mut self.rx);
    }
}
