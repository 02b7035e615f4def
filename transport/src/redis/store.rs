//! [`RedisStore`]: the [`JobStore`] over Redis (ARCHITECTURE decision 3).
//!
//! | key | holds |
//! |---|---|
//! | `{prefix}job:{id}` | the record as JSON, TTL `record_ttl` refreshed on each change |
//! | `{prefix}events:{id}` | the event log, a list (position + 1 = index), same TTL |
//! | `{prefix}seq:{user}` | the session's sequence counter (no TTL, like the in-memory store) |
//! | `{prefix}published:{user}` | the highest seq whose publish attempt is over (no TTL) |
//! | `{prefix}node-jobs:{node}` | a set of the non-terminal job ids whose record names the node |
//! | `{prefix}session_jobs:{user}` | the session's job index, a sorted set by seq, TTL 2 × `record_ttl` from the last insert |
//! | `{prefix}idem:{key}` | an idempotency key's entry, its own TTL |
//! | `{prefix}delivery:{id}` | a job's webhook delivery as JSON, TTL `record_ttl` refreshed on each attempt |
//! | `{prefix}delivery_claim:{id}` | the token of the delivery's current claim |
//! | `{prefix}deliveries_due` | pending deliveries, a sorted set by due time (ms); a claim moves the score to the lease's end |
//! | channel `{prefix}wake` | "job {id} changed", for waiters of any store instance |

use super::RedisPool;
use super::pool::{Failure, decode};
use super::scripts::{
    ACTIVE_JOBS, APPEND_EVENT, COMPARE_AND_SET, FINISH_PUBLISH_TURN, INSERT_JOB, NEXT_SEQ_AND_TURN,
};
use super::wakeup::{Wakeups, listen, wake_message};
use crate::outbox::{ClaimedDelivery, DeliveryClaim, DeliveryNext};
use crate::store::{
    IdempotencyEntry, JobStore, RecordUpdate, StoreError, UpdateOutcome, indexed_node, status_event,
};
use async_trait::async_trait;
use deadpool_redis::redis;
use std::sync::Arc;
use std::time::Duration;
use tether_protocol::{
    DeliveryAttempt, JobEvent, JobEventKind, JobId, JobRecord, NodeId, UnixMillis, UserUuid,
    WebhookDelivery, names,
};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Optimistic writes retry this often when other writers keep changing the same record.
const MAX_WRITE_ATTEMPTS: usize = 16;

/// A waiter for its publish turn re-reads the mark after this long at first, doubling up
/// to [`TURN_POLL_MAX`]. Waiting only happens when one session's jobs race.
const TURN_POLL_FIRST: Duration = Duration::from_millis(1);
const TURN_POLL_MAX: Duration = Duration::from_millis(20);

/// Job records, event logs and wake-ups in Redis. Every call is bounded by
/// [`RedisConfig::op_timeout`](super::RedisConfig::op_timeout): while Redis is down calls
/// fail fast with [`StoreError::Unavailable`], and they work again once it is back.
///
/// Cloning shares the pool and the wake-up listener; dropping the last clone stops it.
#[derive(Debug, Clone)]
pub struct RedisStore {
    pub(super) pool: RedisPool,
    wakeups: Arc<Wakeups>,
    /// Stops the wake-up listener when the last clone goes.
    _stop_on_drop: Arc<DropGuard>,
}

/// What a read-modify-write did.
enum Modified {
    Missing,
    Unchanged(JobRecord),
    Changed(JobRecord),
}

impl From<Modified> for UpdateOutcome {
    fn from(modified: Modified) -> Self {
        match modified {
            Modified::Missing => UpdateOutcome::Missing,
            Modified::Unchanged(record) => UpdateOutcome::Stale(record),
            Modified::Changed(record) => UpdateOutcome::Applied(record),
        }
    }
}

impl RedisStore {
    /// A store on `pool`. Spawns the wake-up listener, so it must run inside a Tokio
    /// runtime; connects lazily (a Redis that is down now only makes calls fail).
    pub fn new(pool: RedisPool) -> Self {
        let wakeups = Arc::new(Wakeups::default());
        let shutdown = CancellationToken::new();
        tokio::spawn(listen(pool.clone(), wakeups.clone(), shutdown.clone()));
        Self {
            pool,
            wakeups,
            _stop_on_drop: Arc::new(shutdown.drop_guard()),
        }
    }

    /// How many times this store's wake-up listener has subscribed: 1 while its first
    /// subscription holds, more after each reconnection (for health checks and tests).
    pub fn wakeup_subscriptions(&self) -> u64 {
        self.wakeups.subscriptions()
    }

    pub(super) fn ttl_ms(&self) -> u64 {
        u64::try_from(self.pool.config.record_ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    async fn read(&self, id: JobId) -> Result<Option<String>, Failure> {
        let mut conn = self.pool.conn().await?;
        let key = names::job_key(self.pool.prefix(), &id);
        self.pool
            .bounded(redis::cmd("GET").arg(&key).query_async(&mut conn))
            .await
    }

    /// Apply `change` to the stored record atomically: read, change in Rust, write only if
    /// nobody wrote meanwhile (else retry on the fresh record). `change` returns whether
    /// it changed anything. With `expected` (the record's JSON as the caller believes it
    /// is stored) the first read is skipped: the compare-and-set checks the belief.
    async fn modify(
        &self,
        id: JobId,
        expected: Option<String>,
        mut change: impl FnMut(&mut JobRecord) -> bool,
    ) -> Result<Modified, Failure> {
        let prefix = self.pool.prefix();
        let key = names::job_key(prefix, &id);
        let channel = names::wake_channel(prefix);
        let mut current = match expected {
            Some(json) => Some(json),
            None => self.read(id).await?,
        };
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let Some(old) = current else {
                return Ok(Modified::Missing);
            };
            let mut record: JobRecord = decode("job record", &old)?;
            let was_on = indexed_node(&record).cloned();
            let was = record.status;
            if !change(&mut record) {
                return Ok(Modified::Unchanged(record));
            }
            let now_on = indexed_node(&record).cloned();
            let index = |node: &Option<NodeId>| match node {
                Some(node) => names::node_jobs_key(prefix, node),
                None => key.clone(),
            };
            let moved = was_on != now_on;
            let flag = |b: bool| if b { "1" } else { "0" };
            let new = serde_json::to_string(&record).expect("a JobRecord always encodes as JSON");
            let event = event_json(status_event(Some(was), &record));
            let (delivery, now) = queued_webhook(&record).unwrap_or((String::new(), UnixMillis(0)));
            let mut conn = self.pool.conn().await?;
            let mut invocation = COMPARE_AND_SET.key(&key);
            invocation
                .key(index(&was_on))
                .key(index(&now_on))
                .key(names::events_key(prefix, &id))
                .key(names::delivery_key(prefix, &id))
                .key(names::deliveries_due_key(prefix))
                .arg(&old)
                .arg(&new)
                .arg(self.ttl_ms())
                .arg(&channel)
                .arg(id.to_string())
                .arg(flag(moved && was_on.is_some()))
                .arg(flag(moved && now_on.is_some()))
                .arg(&event)
                .arg(&delivery)
                .arg(now.0)
                .arg(wake_message(
                    id,
                    record.status.is_terminal() && !was.is_terminal(),
                ));
            let (outcome, now): (i64, Option<String>) = self
                .pool
                .bounded(invocation.invoke_async(&mut conn))
                .await?;
            match outcome {
                0 => return Ok(Modified::Missing),
                2 => return Ok(Modified::Changed(record)),
                _ => current = now,
            }
        }
        Err(Failure::Unavailable(format!(
            "job {id} changed {MAX_WRITE_ATTEMPTS} times while being updated"
        )))
    }
}

#[async_trait]
impl JobStore for RedisStore {
    async fn insert(&self, record: &JobRecord) -> Result<(), StoreError> {
        let id = record.job.id;
        let prefix = self.pool.prefix();
        let json = serde_json::to_string(record).expect("a JobRecord always encodes as JSON");
        let (delivery, now) = queued_webhook(record).unwrap_or((String::new(), UnixMillis(0)));
        let event = event_json(status_event(None, record));
        let mut conn = self.pool.conn().await?;
        let mut invocation = INSERT_JOB.key(names::job_key(prefix, &id));
        invocation
            .key(names::session_jobs_key(prefix, &record.job.user_uuid))
            .key(names::delivery_key(prefix, &id))
            .key(names::deliveries_due_key(prefix))
            .key(names::events_key(prefix, &id))
            .arg(&json)
            .arg(self.ttl_ms())
            .arg(record.job.seq)
            .arg(id.to_string())
            .arg(self.ttl_ms().saturating_mul(2))
            .arg(&delivery)
            .arg(now.0)
            .arg(&event);
        if let Some(node) = indexed_node(record) {
            invocation.key(names::node_jobs_key(prefix, node));
        }
        let inserted: i64 = self
            .pool
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        match inserted {
            1 => Ok(()),
            _ => Err(StoreError::Duplicate(id)),
        }
    }

    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        match self.read(id).await? {
            Some(json) => Ok(Some(decode("job record", &json)?)),
            None => Ok(None),
        }
    }

    async fn update(&self, id: JobId, update: RecordUpdate) -> Result<UpdateOutcome, StoreError> {
        let modified = self
            .modify(id, None, |record| update.clone().apply(record))
            .await?;
        Ok(modified.into())
    }

    async fn update_expecting(
        &self,
        expected: &JobRecord,
        update: RecordUpdate,
    ) -> Result<UpdateOutcome, StoreError> {
        let json = serde_json::to_string(expected).expect("a JobRecord always encodes as JSON");
        let modified = self
            .modify(expected.job.id, Some(json), |record| {
                update.clone().apply(record)
            })
            .await?;
        Ok(modified.into())
    }

    async fn request_cancel(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        let modified = self
            .modify(id, None, |record| {
                if record.status.is_terminal() || record.cancel_requested {
                    return false;
                }
                record.cancel_requested = true;
                true
            })
            .await?;
        Ok(match modified {
            Modified::Missing => None,
            Modified::Unchanged(record) | Modified::Changed(record) => Some(record),
        })
    }

    async fn wait_terminal(
        &self,
        id: JobId,
        timeout: Duration,
    ) -> Result<Option<JobRecord>, StoreError> {
        let deadline = Instant::now() + timeout;
        let watch = self.wakeups.watch(id);
        loop {
            let notified = watch.armed_for_end();
            match self.get(id).await? {
                Some(record) if !record.status.is_terminal() => {}
                other => return Ok(other),
            }
            let poll = self.pool.config.poll_interval;
            if !watch.changed(notified, deadline, poll).await {
                return self.get(id).await;
            }
        }
    }

    async fn next_seq(&self, user: UserUuid) -> Result<u64, StoreError> {
        let key = names::seq_key(self.pool.prefix(), &user);
        let mut conn = self.pool.conn().await?;
        let mut incr = redis::cmd("INCR");
        incr.arg(&key);
        Ok(self.pool.bounded(incr.query_async(&mut conn)).await?)
    }

    async fn next_seq_and_turn(&self, user: UserUuid) -> Result<(u64, bool), StoreError> {
        let prefix = self.pool.prefix();
        let mut conn = self.pool.conn().await?;
        let mut invocation = NEXT_SEQ_AND_TURN.key(names::seq_key(prefix, &user));
        invocation.key(names::published_key(prefix, &user));
        let (seq, turn): (u64, bool) = self
            .pool
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        Ok((seq, turn))
    }

    async fn append_event(&self, id: JobId, kind: JobEventKind) -> Result<u64, StoreError> {
        let prefix = self.pool.prefix();
        let json = serde_json::to_string(&kind).expect("an event always encodes as JSON");
        let mut conn = self.pool.conn().await?;
        let mut invocation = APPEND_EVENT.key(names::job_key(prefix, &id));
        invocation
            .key(names::events_key(prefix, &id))
            .arg(&json)
            .arg(self.ttl_ms())
            .arg(names::wake_channel(prefix))
            .arg(id.to_string());
        Ok(self
            .pool
            .bounded(invocation.invoke_async(&mut conn))
            .await?)
    }

    async fn events_after(
        &self,
        id: JobId,
        after: u64,
        timeout: Duration,
    ) -> Result<Vec<JobEvent>, StoreError> {
        let deadline = Instant::now() + timeout;
        let prefix = self.pool.prefix();
        let start = i64::try_from(after).unwrap_or(i64::MAX);
        let watch = self.wakeups.watch(id);
        loop {
            let notified = watch.armed();
            let mut conn = self.pool.conn().await?;
            let mut read = redis::pipe();
            read.cmd("EXISTS")
                .arg(names::job_key(prefix, &id))
                .cmd("LRANGE")
                .arg(names::events_key(prefix, &id))
                .arg(start)
                .arg(-1);
            let (exists, raw): (bool, Vec<String>) =
                self.pool.bounded(read.query_async(&mut conn)).await?;
            drop(conn);
            if !raw.is_empty() {
                return raw
                    .iter()
                    .zip(after + 1..)
                    .map(|(json, index)| {
                        let kind = decode::<JobEventKind>("job event", json)?;
                        Ok(JobEvent { index, kind })
                    })
                    .collect();
            }
            if !exists {
                return Ok(Vec::new());
            }
            let poll = self.pool.config.poll_interval;
            if !watch.changed(notified, deadline, poll).await {
                return Ok(Vec::new());
            }
        }
    }

    async fn session_jobs(
        &self,
        user: UserUuid,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<JobRecord>, StoreError> {
        Ok(self.list_session_jobs(user, after_seq, limit).await?)
    }

    async fn remember_idempotency_key(
        &self,
        key: &str,
        entry: &IdempotencyEntry,
        ttl: Duration,
    ) -> Result<Option<IdempotencyEntry>, StoreError> {
        Ok(self.remember_key(key, entry, ttl).await?)
    }

    async fn forget_idempotency_key(
        &self,
        key: &str,
        entry: &IdempotencyEntry,
    ) -> Result<(), StoreError> {
        Ok(self.forget_key(key, entry).await?)
    }

    async fn delivery(&self, job: JobId) -> Result<Option<WebhookDelivery>, StoreError> {
        Ok(self.read_delivery(job).await?)
    }

    async fn claim_due_deliveries(
        &self,
        now: UnixMillis,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        Ok(self.claim_deliveries(now, lease, limit).await?)
    }

    async fn record_attempt(
        &self,
        claim: &DeliveryClaim,
        attempt: DeliveryAttempt,
        next: DeliveryNext,
    ) -> Result<Option<WebhookDelivery>, StoreError> {
        Ok(self.record_delivery_attempt(claim, attempt, next).await?)
    }

    async fn active_jobs_on(&self, node: &NodeId) -> Result<Vec<JobId>, StoreError> {
        let prefix = self.pool.prefix();
        let mut conn = self.pool.conn().await?;
        let mut invocation = ACTIVE_JOBS.key(names::node_jobs_key(prefix, node));
        invocation.arg(format!("{prefix}job:"));
        let ids: Vec<String> = self
            .pool
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        ids.into_iter()
            .map(|id| {
                JobId::try_from(id.as_str())
                    .map_err(|e| StoreError::Corrupt(format!("node job index: {e}")))
            })
            .collect()
    }

    async fn wait_publish_turn(
        &self,
        user: UserUuid,
        seq: u64,
        within: Duration,
    ) -> Result<bool, StoreError> {
        let key = names::published_key(self.pool.prefix(), &user);
        let deadline = Instant::now() + within;
        let mut pause = TURN_POLL_FIRST;
        loop {
            let mut conn = self.pool.conn().await?;
            let mut get = redis::cmd("GET");
            get.arg(&key);
            let mark: Option<u64> = self.pool.bounded(get.query_async(&mut conn)).await?;
            drop(conn);
            if mark.unwrap_or(0) + 1 >= seq {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(pause.min(deadline - Instant::now())).await;
            pause = (pause * 2).min(TURN_POLL_MAX);
        }
    }

    async fn finish_publish_turn(&self, user: UserUuid, seq: u64) -> Result<(), StoreError> {
        let mut conn = self.pool.conn().await?;
        let mut invocation =
            FINISH_PUBLISH_TURN.key(names::published_key(self.pool.prefix(), &user));
        invocation.arg(seq);
        let _: i64 = self
            .pool
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        Ok(())
    }
}

/// An event as the scripts take it: its JSON, or "" for none.
fn event_json(event: Option<JobEventKind>) -> String {
    event.map_or_else(String::new, |kind| {
        serde_json::to_string(&kind).expect("an event always encodes as JSON")
    })
}

/// The delivery to queue with `record`, if it is terminal and names a callback URL:
/// its JSON and the time it is due (now).
fn queued_webhook(record: &JobRecord) -> Option<(String, UnixMillis)> {
    let url = record.job.callback_url.as_ref()?;
    if !record.status.is_terminal() {
        return None;
    }
    let now = UnixMillis::now();
    let delivery = WebhookDelivery::new(record.job.id, url.clone(), now);
    let json = serde_json::to_string(&delivery).expect("a delivery always encodes as JSON");
    Some((json, now))
}
