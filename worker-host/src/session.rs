//! One session's serial executor: a task that owns the session's sandbox and runs its
//! commands strictly in the order they were submitted.

use crate::cell::{CellControl, CellReport, run_cell};
use crate::engine::{EngineError, Shared};
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
    /// Destroy the sandbox and its disk. Replies whether a sandbox existed.
    Release { reply: oneshot::Sender<bool> },
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Execute { .. } => f.write_str("Execute"),
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
        let shutdown = self.shared.shutdown.clone();
        loop {
            let command = tokio::select! {
                c = self.rx.recv() => c,
                _ = shutdown.cancelled() => None,
            };
            let Some(command) = command else { break };
            self.busy.store(true, Ordering::SeqCst);
            match command {
                Command::Execute {
                    code,
                    control,
                    gate,
                    reply,
                } => {
                    if let Some(gate) = gate
                        && !gate().await
                    {
                        let _ = reply.send(Err(EngineError::Skipped));
                        self.touch();
                        continue;
                    }
                    let fresh = sandbox.is_none();
                    if fresh {
                        match self.shared.pool.acquire().await {
                            Ok(s) => {
                                tracing::info!(parent: &span, slot = %s.slot, "sandbox attached");
                                sandbox = Some(s);
                                self.attached.store(true, Ordering::SeqCst);
                            }
                            Err(e) => {
                                let _ = reply.send(Err(match e {
                                    AcquireError::NoCapacity(n) => EngineError::NoCapacity(n),
                                    AcquireError::Start(e) => {
                                        EngineError::SandboxUnavailable(e.to_string())
                                    }
                                }));
                                // Nothing was created: end this session; queued commands
                                // move to a fresh one.
                                self.end(None).await;
                                return;
                            }
                        }
                    }
                    let Some(active) = sandbox.as_mut() else {
                        continue;
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
                            report.fresh_sandbox = fresh;
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
                Command::Release { reply } => {
                    let existed = sandbox.is_some();
                    self.end(sandbox.take()).await;
                    let _ = reply.send(existed);
                    return;
                }
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
