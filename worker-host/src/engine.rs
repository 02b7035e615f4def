//! The sandbox engine's public face: execute code in a user's session, release sessions,
//! report status. Sessions of different users run concurrently; commands of one session
//! run strictly in submission order.

use crate::cell::{CellControl, CellReport};
use crate::config::EngineConfig;
use crate::container::{ContainerError, ContainerRuntime};
use crate::files::ops::{BodyChunk, FileDownload, FileOp};
use crate::files::{FileFailure, Transfers};
use crate::janitor;
use crate::pool::{Pool, PoolCounts};
use crate::session::{self, Command, SessionHandle, StartGate, fail};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tether_protocol::files::{DeletedFile, ExportedFile, ImportedFile};
use tether_protocol::{
    DeleteSpec, DirListing, ExportSpec, ImportSpec, Output, SandboxPath, UnixMillis, UserUuid,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// Why the engine could not run a command.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// Every sandbox slot is taken; retry later.
    #[error("no sandbox capacity: all {0} slots are in use")]
    NoCapacity(usize),
    /// The sandbox could not be started or was lost beyond recovery.
    #[error("sandbox unavailable: {0}")]
    SandboxUnavailable(String),
    /// The start gate declined the command (it was cancelled while queued).
    #[error("skipped before it started")]
    Skipped,
    /// The engine is shutting down.
    #[error("worker-host is shutting down")]
    ShuttingDown,
    /// A file operation failed (the failure names the entry and carries its code).
    #[error(transparent)]
    Files(#[from] FileFailure),
}

/// What the engine reports about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineStatus {
    pub pool: PoolCounts,
    /// Sessions with a sandbox attached or being attached.
    pub sessions: usize,
    /// Sessions running a command right now.
    pub busy: usize,
    /// The warm pool finished its first fill.
    pub ready: bool,
}

/// State shared by the engine and its session tasks.
#[derive(Debug)]
pub struct Shared {
    pub config: EngineConfig,
    pub runtime: ContainerRuntime,
    pub pool: Pool,
    pub shutdown: CancellationToken,
    /// File transfers: egress, S3 client, limits.
    pub files: Transfers,
    sessions: Mutex<HashMap<UserUuid, SessionHandle>>,
    generations: AtomicU64,
    /// Told about every session the idle reaper released (see [`Engine::reaped`]).
    reaped: Mutex<Option<mpsc::UnboundedSender<UserUuid>>>,
}

impl Shared {
    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<UserUuid, SessionHandle>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Called by a session task that ends: leave the table (if still ours) and move any
    /// commands queued behind it, in order, to a fresh session of the same user.
    pub fn retire(
        self: &Arc<Self>,
        user: UserUuid,
        generation: u64,
        rx: &mut mpsc::UnboundedReceiver<Command>,
    ) {
        let mut sessions = self.sessions();
        if sessions
            .get(&user)
            .is_some_and(|h| h.generation == generation)
        {
            sessions.remove(&user);
        }
        rx.close();
        let mut leftover = Vec::new();
        while let Ok(command) = rx.try_recv() {
            leftover.push(command);
        }
        if leftover.is_empty() || self.shutdown.is_cancelled() {
            return;
        }
        let handle = sessions
            .entry(user)
            .or_insert_with(|| self.spawn_session(user));
        for command in leftover {
            if let Err(mpsc::error::SendError(command)) = handle.tx.send(command) {
                fail(command, EngineError::ShuttingDown);
            }
        }
    }

    fn spawn_session(self: &Arc<Self>, user: UserUuid) -> SessionHandle {
        let generation = self.generations.fetch_add(1, Ordering::SeqCst);
        session::spawn(self.clone(), user, generation)
    }
}

/// The sandbox engine of one worker-host node. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

/// A submitted command, to be awaited.
#[derive(Debug)]
pub struct Pending<T = CellReport>(oneshot::Receiver<Result<T, EngineError>>);

impl<T> Pending<T> {
    /// Wait for the outcome.
    pub async fn report(self) -> Result<T, EngineError> {
        self.0.await.unwrap_or(Err(EngineError::ShuttingDown))
    }
}

/// Options for one execution.
#[derive(Default)]
pub struct ExecuteOptions {
    /// Receives each output as the kernel emits it.
    pub sink: Option<mpsc::UnboundedSender<Output>>,
    /// Cancelling it interrupts the cell (or skips it if it has not started).
    pub cancel: CancellationToken,
    /// Awaited just before the cell starts; `false` skips it.
    pub gate: Option<StartGate>,
}

impl std::fmt::Debug for ExecuteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecuteOptions").finish_non_exhaustive()
    }
}

impl Engine {
    /// Connect to Docker, remove whatever a previous run of this node left behind
    /// (containers, mounts, loop devices, directories), and start the warm pool.
    pub async fn start(
        config: EngineConfig,
        shutdown: CancellationToken,
    ) -> Result<Self, ContainerError> {
        let runtime = ContainerRuntime::connect(config.clone()).await?;
        janitor::remove_leftovers(&runtime, &config).await;
        let pool = Pool::new(runtime.clone(), config.clone());
        tokio::spawn(pool.clone().replenish(shutdown.clone()));
        let shared = Arc::new(Shared {
            files: Transfers::new(config.files.clone()),
            config,
            runtime,
            pool,
            shutdown: shutdown.clone(),
            sessions: Mutex::new(HashMap::new()),
            generations: AtomicU64::new(1),
            reaped: Mutex::new(None),
        });
        let engine = Self { shared };
        tokio::spawn(engine.clone().reap_idle());
        Ok(engine)
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// Queue `code` for `user`'s session (creating the session on first use) and return
    /// at once; the order of `submit` calls is the order of execution within a session.
    pub fn submit(
        &self,
        user: UserUuid,
        code: String,
        timeout: Duration,
        options: ExecuteOptions,
    ) -> Pending {
        let (reply, rx) = oneshot::channel();
        let command = Command::Execute {
            code,
            control: CellControl {
                timeout,
                cancel: options.cancel,
                sink: options.sink,
            },
            gate: options.gate,
            reply,
        };
        self.send(user, command);
        Pending(rx)
    }

    /// Run `code` in `user`'s session and wait for the result.
    pub async fn execute(
        &self,
        user: UserUuid,
        code: &str,
        timeout: Duration,
    ) -> Result<CellReport, EngineError> {
        self.submit(user, code.to_owned(), timeout, ExecuteOptions::default())
            .report()
            .await
    }

    fn submit_files<T>(
        &self,
        user: UserUuid,
        gate: Option<StartGate>,
        op: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> FileOp,
    ) -> Pending<T> {
        let (reply, rx) = oneshot::channel();
        self.send(
            user,
            Command::Files {
                op: op(reply),
                gate,
            },
        );
        Pending(rx)
    }

    /// Queue a `files.import` for `user`'s session: every file lands, or none does.
    pub fn submit_import(
        &self,
        user: UserUuid,
        spec: ImportSpec,
        gate: Option<StartGate>,
    ) -> Pending<Vec<ImportedFile>> {
        self.submit_files(user, gate, |reply| FileOp::Import { spec, reply })
    }

    /// Queue a `files.export` for `user`'s session.
    pub fn submit_export(
        &self,
        user: UserUuid,
        spec: ExportSpec,
        gate: Option<StartGate>,
    ) -> Pending<Vec<ExportedFile>> {
        self.submit_files(user, gate, |reply| FileOp::Export { spec, reply })
    }

    /// Queue a `files.delete` for `user`'s session.
    pub fn submit_delete(
        &self,
        user: UserUuid,
        spec: DeleteSpec,
        gate: Option<StartGate>,
    ) -> Pending<Vec<DeletedFile>> {
        self.submit_files(user, gate, |reply| FileOp::Delete { spec, reply })
    }

    /// Import files into `user`'s session and wait.
    pub async fn import_files(
        &self,
        user: UserUuid,
        spec: ImportSpec,
    ) -> Result<Vec<ImportedFile>, EngineError> {
        self.submit_import(user, spec, None).report().await
    }

    /// Export files from `user`'s session and wait.
    pub async fn export_files(
        &self,
        user: UserUuid,
        spec: ExportSpec,
    ) -> Result<Vec<ExportedFile>, EngineError> {
        self.submit_export(user, spec, None).report().await
    }

    /// Delete files from `user`'s session and wait.
    pub async fn delete_files(
        &self,
        user: UserUuid,
        spec: DeleteSpec,
    ) -> Result<Vec<DeletedFile>, EngineError> {
        self.submit_delete(user, spec, None).report().await
    }

    /// Write `path` in `user`'s session from `body` (direct upload), in queue order. The
    /// caller forwards chunks as they arrive and sends [`BodyChunk::End`] last; a bounded
    /// channel keeps memory flat whatever the size. `announced` is the client's
    /// `Content-Length`, refused up front when above the limit.
    pub async fn write_file(
        &self,
        user: UserUuid,
        path: SandboxPath,
        announced: Option<u64>,
        body: mpsc::Receiver<BodyChunk>,
    ) -> Result<ImportedFile, EngineError> {
        self.submit_files(user, None, |reply| FileOp::Write {
            path,
            announced,
            body,
            reply,
        })
        .report()
        .await
    }

    /// Open `path` in `user`'s session for a direct download (size known up front).
    pub async fn read_file(
        &self,
        user: UserUuid,
        path: SandboxPath,
    ) -> Result<FileDownload, EngineError> {
        self.submit_files(user, None, |reply| FileOp::Read { path, reply })
            .report()
            .await
    }

    /// List the directory `path` in `user`'s session.
    pub async fn list_dir(
        &self,
        user: UserUuid,
        path: SandboxPath,
    ) -> Result<DirListing, EngineError> {
        self.submit_files(user, None, |reply| FileOp::List { path, reply })
            .report()
            .await
    }

    /// Destroy `user`'s sandbox and disk after the commands queued before this one.
    /// Returns whether a session existed. Unknown sessions are not created.
    pub async fn release(&self, user: UserUuid) -> bool {
        let (reply, rx) = oneshot::channel();
        {
            let sessions = self.shared.sessions();
            let Some(handle) = sessions.get(&user) else {
                return false;
            };
            if handle.tx.send(Command::Release { reply }).is_err() {
                return false;
            }
        }
        rx.await.unwrap_or(false)
    }

    fn send(&self, user: UserUuid, command: Command) {
        if self.shared.shutdown.is_cancelled() {
            fail(command, EngineError::ShuttingDown);
            return;
        }
        let mut sessions = self.shared.sessions();
        let mut command = command;
        for _ in 0..2 {
            let handle = sessions
                .entry(user)
                .or_insert_with(|| self.shared.spawn_session(user));
            handle
                .last_active
                .store(UnixMillis::now().0, Ordering::SeqCst);
            match handle.tx.send(command) {
                Ok(()) => return,
                Err(mpsc::error::SendError(back)) => {
                    // The task ended between lookup and send: start a fresh one.
                    sessions.remove(&user);
                    command = back;
                }
            }
        }
        fail(command, EngineError::ShuttingDown);
    }

    /// Current figures.
    pub fn status(&self) -> EngineStatus {
        let sessions = self.shared.sessions();
        EngineStatus {
            pool: self.shared.pool.counts(),
            sessions: sessions.len(),
            busy: sessions
                .values()
                .filter(|h| h.busy.load(Ordering::SeqCst))
                .count(),
            ready: self.shared.pool.initialised(),
        }
    }

    /// Users with a live session on this node.
    pub fn sessions(&self) -> Vec<UserUuid> {
        self.shared.sessions().keys().copied().collect()
    }

    /// Sessions the idle reaper releases from now on, as they go (their state is gone;
    /// the job loop tells the registry). A later call replaces the earlier receiver.
    pub fn reaped(&self) -> mpsc::UnboundedReceiver<UserUuid> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self
            .shared
            .reaped
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(tx);
        rx
    }

    /// Whether Docker answers.
    pub async fn docker_reachable(&self) -> bool {
        self.shared.runtime.ping().await
    }

    /// Stop taking work, wait (bounded) for sessions to end, and remove every container,
    /// mount and directory of this node.
    pub async fn shutdown(&self, within: Duration) {
        self.shared.shutdown.cancel();
        let deadline = tokio::time::Instant::now() + within;
        while !self.shared.sessions().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Let the pool drain its idle sandboxes, then sweep whatever is left.
        while self.shared.pool.counts().total > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        janitor::remove_leftovers(&self.shared.runtime, &self.shared.config).await;
    }

    /// Release sessions idle longer than `idle_ttl`, checking every tenth of it.
    async fn reap_idle(self) {
        let ttl = self.shared.config.idle_ttl;
        let every = (ttl / 10).clamp(Duration::from_millis(200), Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = self.shared.shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let now = UnixMillis::now();
            let stale: Vec<UserUuid> = self
                .shared
                .sessions()
                .iter()
                .filter(|(_, h)| {
                    !h.busy.load(Ordering::SeqCst)
                        && h.attached.load(Ordering::SeqCst)
                        && now.since(UnixMillis(h.last_active.load(Ordering::SeqCst)))
                            > ttl.as_millis() as u64
                })
                .map(|(u, _)| *u)
                .collect();
            for user in stale {
                tracing::info!(user_uuid = %user, "reaping idle session");
                if self.release(user).await
                    && let Some(tx) = self
                        .shared
                        .reaped
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .as_ref()
                {
                    let _ = tx.send(user);
                }
            }
        }
    }
}
