//! The warm pool: sandboxes started ahead of demand so a new session gets a ready kernel
//! at once, under a hard cap on how many sandboxes exist.

use crate::config::EngineConfig;
use crate::container::ContainerRuntime;
use crate::sandbox::{Sandbox, SandboxError};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Why no sandbox could be handed out.
#[derive(Debug, thiserror::Error)]
pub enum AcquireError {
    /// `max_total` sandboxes exist already; retry later.
    #[error("all {0} sandbox slots are in use")]
    NoCapacity(usize),
    /// Creating a sandbox failed (Docker, disk or kernel start-up).
    #[error("could not start a sandbox: {0}")]
    Start(#[from] SandboxError),
}

/// Shared pool state; cheap to clone.
#[derive(Debug, Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    runtime: ContainerRuntime,
    config: EngineConfig,
    idle: Mutex<VecDeque<Sandbox>>,
    /// Every sandbox that exists or is being created (idle + in use + starting).
    total: AtomicUsize,
    /// Sandboxes being created for the idle set.
    warming: AtomicUsize,
    /// Set once the first fill of the idle set finished.
    initialised: AtomicBool,
    /// Wakes the replenisher.
    wake: Notify,
    /// Wakes acquirers waiting for a warming sandbox.
    turned_idle: Notify,
    /// Bounds concurrent sandbox starts.
    starts: tokio::sync::Semaphore,
}

/// Counts for status reporting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolCounts {
    pub total: usize,
    pub idle: usize,
    pub max_total: usize,
}

impl Pool {
    pub fn new(runtime: ContainerRuntime, config: EngineConfig) -> Self {
        let starts = config.max_concurrent_starts.max(1);
        Self {
            inner: Arc::new(Inner {
                runtime,
                config,
                idle: Mutex::new(VecDeque::new()),
                total: AtomicUsize::new(0),
                warming: AtomicUsize::new(0),
                initialised: AtomicBool::new(false),
                wake: Notify::new(),
                turned_idle: Notify::new(),
                starts: tokio::sync::Semaphore::new(starts),
            }),
        }
    }

    /// Take a ready sandbox, or start one if the cap allows.
    pub async fn acquire(&self) -> Result<Sandbox, AcquireError> {
        let deadline = tokio::time::Instant::now() + self.inner.config.start_timeout;
        loop {
            // Register interest before looking, so a sandbox that turns idle in between
            // is not missed.
            let turned_idle = self.inner.turned_idle.notified();
            tokio::pin!(turned_idle);
            turned_idle.as_mut().enable();
            let ready = self.idle().pop_front();
            if let Some(sandbox) = ready {
                self.inner.wake.notify_one();
                return Ok(sandbox);
            }
            if self.reserve() {
                break;
            }
            // At the cap, but sandboxes being warmed will become free: wait for one.
            if self.inner.warming.load(Ordering::SeqCst) == 0
                || tokio::time::timeout_at(deadline, turned_idle)
                    .await
                    .is_err()
            {
                return Err(AcquireError::NoCapacity(self.inner.config.max_total));
            }
        }
        match self.create().await {
            Ok(sandbox) => Ok(sandbox),
            Err(e) => {
                self.inner.total.fetch_sub(1, Ordering::SeqCst);
                Err(e.into())
            }
        }
    }

    /// Start one sandbox, at most `max_concurrent_starts` at a time: on a small machine a
    /// burst of simultaneous container starts makes every one of them slow, so queueing
    /// them lets the first sessions get their sandbox in seconds instead of all waiting.
    async fn create(&self) -> Result<Sandbox, SandboxError> {
        let _permit = self.inner.starts.acquire().await;
        Sandbox::create(&self.inner.runtime, &self.inner.config).await
    }

    /// Destroy a sandbox that is no longer needed and free its slot.
    pub async fn discard(&self, sandbox: Sandbox) {
        if let Err(e) = sandbox.destroy(&self.inner.runtime).await {
            tracing::warn!(error = %e, "sandbox teardown incomplete");
        }
        self.inner.total.fetch_sub(1, Ordering::SeqCst);
        self.inner.wake.notify_one();
    }

    /// Reserve one slot under the cap.
    fn reserve(&self) -> bool {
        let max = self.inner.config.max_total;
        self.inner
            .total
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                (t < max).then_some(t + 1)
            })
            .is_ok()
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, VecDeque<Sandbox>> {
        self.inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn counts(&self) -> PoolCounts {
        PoolCounts {
            total: self.inner.total.load(Ordering::SeqCst),
            idle: self.idle().len(),
            max_total: self.inner.config.max_total,
        }
    }

    /// Whether the first warm-up has finished.
    pub fn initialised(&self) -> bool {
        self.inner.initialised.load(Ordering::SeqCst)
    }

    /// Keep `min_idle` sandboxes ready until `shutdown`; then destroy the idle ones.
    pub async fn replenish(self, shutdown: CancellationToken) {
        let min_idle = self.inner.config.min_idle;
        let mut backoff = Duration::from_millis(200);
        loop {
            let wanted = min_idle
                .saturating_sub(self.idle().len() + self.inner.warming.load(Ordering::SeqCst));
            let mut starts = Vec::new();
            for _ in 0..wanted {
                if !self.reserve() {
                    break;
                }
                self.inner.warming.fetch_add(1, Ordering::SeqCst);
                let pool = self.clone();
                starts.push(tokio::spawn(async move {
                    let made = pool.create().await;
                    let ok = match made {
                        Ok(sandbox) => {
                            pool.idle().push_back(sandbox);
                            true
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "warming a sandbox failed");
                            pool.inner.total.fetch_sub(1, Ordering::SeqCst);
                            false
                        }
                    };
                    pool.inner.warming.fetch_sub(1, Ordering::SeqCst);
                    pool.inner.turned_idle.notify_waiters();
                    ok
                }));
            }
            let mut failed = false;
            for start in starts {
                failed |= !start.await.unwrap_or(false);
            }
            if !failed {
                self.inner.initialised.store(true, Ordering::SeqCst);
                backoff = Duration::from_millis(200);
            }
            let pause = if failed {
                backoff = (backoff * 2).min(Duration::from_secs(10));
                backoff
            } else {
                Duration::from_secs(3600)
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
        let idle: Vec<Sandbox> = self.idle().drain(..).collect();
        for sandbox in idle {
            self.discard(sandbox).await;
        }
    }
}
