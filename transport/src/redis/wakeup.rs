//! Wake-ups for waiters: one pub/sub connection per store instance, fanned out in-process
//! to the tasks waiting on each job (ARCHITECTURE decision 3).
//!
//! A wake-up only says "job X changed, re-read it" (payload: the job id), or "job X
//! ended" (payload: the id and ` end`) when the change made the record terminal. Waiters
//! for the end ignore other changes (status `running`, output events), so a job that
//! prints a thousand lines does not make every synchronous caller re-read its record a
//! thousand times. Waiters always re-read the record and also re-read every
//! `poll_interval`, so a wake-up lost while pub/sub reconnects costs latency, never a
//! result.

use super::RedisPool;
use backoff::backoff::Backoff;
use backoff::{ExponentialBackoff, ExponentialBackoffBuilder};
use futures::StreamExt;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tether_protocol::{JobId, names};
use tokio::sync::Notify;
use tokio::sync::futures::Notified;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What follows the job id in the wake-up of a change that made the record terminal.
const END_SUFFIX: &str = " end";

/// The wake-up message for a change to job `id` (`ended`: the change made it terminal).
pub(super) fn wake_message(id: JobId, ended: bool) -> String {
    if ended {
        format!("{id}{END_SUFFIX}")
    } else {
        id.to_string()
    }
}

/// Longest pause between attempts to subscribe again.
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(5);

/// The jobs some task of this process is waiting on.
#[derive(Debug, Default)]
pub(super) struct Wakeups {
    waiting: Mutex<HashMap<JobId, Waiting>>,
    /// Subscriptions made so far: 1 while the first one holds.
    subscriptions: AtomicU64,
}

#[derive(Debug)]
struct Waiting {
    changed: Arc<Notify>,
    ended: Arc<Notify>,
    /// Live [`Watch`]es on this job; the entry goes with the last one.
    watchers: usize,
}

impl Wakeups {
    fn waiting(&self) -> MutexGuard<'_, HashMap<JobId, Waiting>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Start watching a job; wake-ups reach the watch until it is dropped.
    pub(super) fn watch(self: &Arc<Self>, id: JobId) -> Watch {
        let mut waiting = self.waiting();
        let entry = waiting.entry(id).or_insert_with(|| Waiting {
            changed: Arc::new(Notify::new()),
            ended: Arc::new(Notify::new()),
            watchers: 0,
        });
        entry.watchers += 1;
        Watch {
            changed: entry.changed.clone(),
            ended: entry.ended.clone(),
            id,
            wakeups: self.clone(),
        }
    }

    fn wake(&self, id: &JobId, ended: bool) {
        if let Some(w) = self.waiting().get(id) {
            w.changed.notify_waiters();
            if ended {
                w.ended.notify_waiters();
            }
        }
    }

    /// How many times the listener has subscribed (1 + reconnections).
    pub(super) fn subscriptions(&self) -> u64 {
        self.subscriptions.load(Ordering::Relaxed)
    }

    /// After a pub/sub gap: everyone re-reads.
    fn wake_all(&self) {
        for w in self.waiting().values() {
            w.changed.notify_waiters();
            w.ended.notify_waiters();
        }
    }
}

/// One task's interest in one job.
#[derive(Debug)]
pub(super) struct Watch {
    changed: Arc<Notify>,
    ended: Arc<Notify>,
    id: JobId,
    wakeups: Arc<Wakeups>,
}

impl Watch {
    /// Arm before re-reading, so a change between the read and the wait is not missed
    /// (a `Notified` receives `notify_waiters` from its creation on, even before polling).
    pub(super) fn armed(&self) -> Notified<'_> {
        self.changed.notified()
    }

    /// [`Watch::armed`] for the job's end only (a change that made the record terminal).
    pub(super) fn armed_for_end(&self) -> Notified<'_> {
        self.ended.notified()
    }

    /// Wait for a wake-up or the poll interval; `false` once `deadline` has passed.
    pub(super) async fn changed(
        &self,
        notified: Notified<'_>,
        deadline: Instant,
        poll: Duration,
    ) -> bool {
        let poll_at = (Instant::now() + poll).min(deadline);
        tokio::select! {
            () = notified => true,
            () = tokio::time::sleep_until(poll_at) => Instant::now() < deadline,
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut waiting = self.wakeups.waiting();
        if let Some(w) = waiting.get_mut(&self.id) {
            w.watchers -= 1;
            if w.watchers == 0 {
                waiting.remove(&self.id);
            }
        }
    }
}

/// Keep one subscription to the wake channel, reconnecting with backoff after failures,
/// until shutdown.
pub(super) async fn listen(pool: RedisPool, wakeups: Arc<Wakeups>, shutdown: CancellationToken) {
    let channel = names::wake_channel(pool.prefix());
    let mut backoff = ExponentialBackoffBuilder::new()
        .with_initial_interval(Duration::from_millis(100))
        .with_max_interval(RESUBSCRIBE_MAX)
        .with_max_elapsed_time(None)
        .build();
    loop {
        let outcome = tokio::select! {
            () = shutdown.cancelled() => return,
            outcome = subscribed(&pool, &channel, &wakeups, &mut backoff) => outcome,
        };
        if let Err(e) = outcome {
            tracing::warn!(error = %e, "Redis wake-ups interrupted; waiters poll until they are back");
        }
        let delay = backoff.next_backoff().unwrap_or(RESUBSCRIBE_MAX);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Subscribe and dispatch until the connection fails.
async fn subscribed(
    pool: &RedisPool,
    channel: &str,
    wakeups: &Wakeups,
    backoff: &mut ExponentialBackoff,
) -> Result<(), String> {
    let limit = pool.config.op_timeout;
    let pubsub = within(limit, "connect", pool.client.get_async_pubsub()).await?;
    let (mut sink, mut messages) = pubsub.split();
    within(limit, "subscribe", sink.subscribe(channel)).await?;
    backoff.reset();
    wakeups.subscriptions.fetch_add(1, Ordering::Relaxed);
    // Anything published while we were not listening is picked up by a re-read now.
    wakeups.wake_all();
    let mut ping = tokio::time::interval(pool.config.pubsub_ping);
    ping.reset();
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    return Err("connection closed".to_owned());
                };
                let payload = message.get_payload::<String>().unwrap_or_default();
                let (id, ended) = match payload.strip_suffix(END_SUFFIX) {
                    Some(id) => (id, true),
                    None => (payload.as_str(), false),
                };
                if let Ok(id) = JobId::try_from(id) {
                    wakeups.wake(&id, ended);
                }
            }
            _ = ping.tick() => {
                // In subscribed mode Redis answers PING with `["pong", ""]`, not a
                // string: any answer proves the connection alive.
                within(limit, "ping", sink.ping::<deadpool_redis::redis::Value>()).await?;
            }
        }
    }
}

async fn within<T>(
    limit: Duration,
    what: &str,
    call: impl Future<Output = deadpool_redis::redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {limit:?}")),
    }
}
