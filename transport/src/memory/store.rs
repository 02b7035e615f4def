//! Job records in a map, with per-job wake-ups; the session index, idempotency keys and
//! the webhook outbox beside them.

use super::outbox::Outbox;
use crate::outbox::{ClaimedDelivery, DeliveryClaim, DeliveryNext};
use crate::store::{
    IdempotencyEntry, JobStore, RecordUpdate, StoreError, UpdateOutcome, indexed_node, status_event,
};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use tether_protocol::{
    DeliveryAttempt, JobEvent, JobEventKind, JobId, JobRecord, NodeId, UnixMillis, UserUuid,
    WebhookDelivery,
};
use tokio::sync::Notify;

/// Records kept in process memory. Terminal records are dropped after `ttl`.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    jobs: Mutex<HashMap<JobId, Entry>>,
    seqs: Mutex<HashMap<UserUuid, u64>>,
    /// Each session's jobs by seq. Locked after `jobs` when both are needed.
    sessions: Mutex<HashMap<UserUuid, BTreeMap<u64, JobId>>>,
    /// Idempotency keys and when they expire.
    idempotency: Mutex<HashMap<String, (IdempotencyEntry, Instant)>>,
    /// Webhook deliveries. Locked after `jobs` when both are needed.
    outbox: Mutex<Outbox>,
    /// Per session, the highest seq whose publish attempt is over.
    published: Mutex<HashMap<UserUuid, u64>>,
    /// Woken whenever a publish turn ends.
    turn_ended: Notify,
    ttl: Duration,
}

#[derive(Debug)]
struct Entry {
    record: JobRecord,
    events: Vec<JobEvent>,
    /// Woken on every applied update and every appended event.
    changed: Arc<Notify>,
    /// When the record became terminal (for expiry).
    finished: Option<Instant>,
}

impl Entry {
    /// Append to the event log; returns the event's index (the caller wakes readers).
    fn push_event(&mut self, kind: JobEventKind) -> u64 {
        let index = self.events.len() as u64 + 1;
        self.events.push(JobEvent { index, kind });
        index
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(Duration::from_secs(24 * 3600))
    }
}

impl MemoryStore {
    /// A store whose terminal records expire `ttl` after they finish.
    pub fn new(ttl: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                jobs: Mutex::new(HashMap::new()),
                seqs: Mutex::new(HashMap::new()),
                sessions: Mutex::new(HashMap::new()),
                idempotency: Mutex::new(HashMap::new()),
                outbox: Mutex::new(Outbox::default()),
                published: Mutex::new(HashMap::new()),
                turn_ended: Notify::new(),
                ttl,
            }),
        }
    }

    fn jobs(&self) -> MutexGuard<'_, HashMap<JobId, Entry>> {
        lock(&self.inner.jobs)
    }

    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        lock(&self.inner.outbox)
    }

    /// Queue the webhook of a record that just became terminal, if it asks for one.
    fn enqueue_webhook(&self, record: &JobRecord) {
        if let Some(url) = &record.job.callback_url
            && record.status.is_terminal()
        {
            self.outbox().enqueue(record.job.id, url, UnixMillis::now());
        }
    }

    fn published(&self, user: UserUuid) -> u64 {
        lock(&self.inner.published).get(&user).copied().unwrap_or(0)
    }

    fn notifier(&self, id: JobId) -> Option<Arc<Notify>> {
        self.jobs().get(&id).map(|e| e.changed.clone())
    }

    /// Drop terminal records older than the TTL, with their index entries and deliveries,
    /// and idempotency keys past their time.
    fn expire(&self, jobs: &mut HashMap<JobId, Entry>) {
        let ttl = self.inner.ttl;
        let mut gone = Vec::new();
        jobs.retain(|_, e| {
            let keep = e.finished.is_none_or(|at| at.elapsed() < ttl);
            if !keep {
                gone.push((e.record.job.user_uuid, e.record.job.seq, e.record.job.id));
            }
            keep
        });
        let mut sessions = lock(&self.inner.sessions);
        let mut outbox = self.outbox();
        for (user, seq, id) in gone {
            if let Some(index) = sessions.get_mut(&user) {
                index.remove(&seq);
                if index.is_empty() {
                    sessions.remove(&user);
                }
            }
            outbox.forget(id);
        }
        let now = Instant::now();
        lock(&self.inner.idempotency).retain(|_, (_, until)| *until > now);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl JobStore for MemoryStore {
    async fn insert(&self, record: &JobRecord) -> Result<(), StoreError> {
        let mut jobs = self.jobs();
        if jobs.len() % 1024 == 1023 {
            self.expire(&mut jobs);
        }
        let id = record.job.id;
        if jobs.contains_key(&id) {
            return Err(StoreError::Duplicate(id));
        }
        let events = status_event(None, record)
            .map(|kind| JobEvent { index: 1, kind })
            .into_iter()
            .collect();
        jobs.insert(
            id,
            Entry {
                record: record.clone(),
                events,
                changed: Arc::new(Notify::new()),
                finished: record.status.is_terminal().then(Instant::now),
            },
        );
        lock(&self.inner.sessions)
            .entry(record.job.user_uuid)
            .or_default()
            .insert(record.job.seq, id);
        self.enqueue_webhook(record);
        Ok(())
    }

    async fn get(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        Ok(self.jobs().get(&id).map(|e| e.record.clone()))
    }

    async fn update(&self, id: JobId, update: RecordUpdate) -> Result<UpdateOutcome, StoreError> {
        let mut jobs = self.jobs();
        let Some(entry) = jobs.get_mut(&id) else {
            return Ok(UpdateOutcome::Missing);
        };
        let before = entry.record.status;
        if !update.apply(&mut entry.record) {
            return Ok(UpdateOutcome::Stale(entry.record.clone()));
        }
        if let Some(kind) = status_event(Some(before), &entry.record) {
            entry.push_event(kind);
        }
        if entry.record.status.is_terminal() {
            entry.finished = Some(Instant::now());
            self.enqueue_webhook(&entry.record);
        }
        entry.changed.notify_waiters();
        Ok(UpdateOutcome::Applied(entry.record.clone()))
    }

    async fn request_cancel(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        let mut jobs = self.jobs();
        let Some(entry) = jobs.get_mut(&id) else {
            return Ok(None);
        };
        if !entry.record.status.is_terminal() {
            entry.record.cancel_requested = true;
            entry.changed.notify_waiters();
        }
        Ok(Some(entry.record.clone()))
    }

    async fn wait_terminal(
        &self,
        id: JobId,
        timeout: Duration,
    ) -> Result<Option<JobRecord>, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let Some(changed) = self.notifier(id) else {
            return Ok(None);
        };
        loop {
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let record = self.get(id).await?;
            match record {
                Some(r) if !r.status.is_terminal() => {}
                other => return Ok(other),
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.get(id).await;
            }
        }
    }

    async fn next_seq(&self, user: UserUuid) -> Result<u64, StoreError> {
        let mut seqs = lock(&self.inner.seqs);
        let seq = seqs.entry(user).or_insert(0);
        *seq += 1;
        Ok(*seq)
    }

    async fn next_seq_and_turn(&self, user: UserUuid) -> Result<(u64, bool), StoreError> {
        let seq = self.next_seq(user).await?;
        // The mark only grows: once every earlier publish is over, it stays so.
        Ok((seq, self.published(user) + 1 >= seq))
    }

    async fn append_event(&self, id: JobId, kind: JobEventKind) -> Result<u64, StoreError> {
        let mut jobs = self.jobs();
        let Some(entry) = jobs.get_mut(&id) else {
            return Ok(0);
        };
        let index = entry.push_event(kind);
        entry.changed.notify_waiters();
        Ok(index)
    }

    async fn events_after(
        &self,
        id: JobId,
        after: u64,
        timeout: Duration,
    ) -> Result<Vec<JobEvent>, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let Some(changed) = self.notifier(id) else {
            return Ok(Vec::new());
        };
        loop {
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let events: Vec<JobEvent> = {
                let jobs = self.jobs();
                let Some(entry) = jobs.get(&id) else {
                    return Ok(Vec::new());
                };
                let start = usize::try_from(after)
                    .unwrap_or(usize::MAX)
                    .min(entry.events.len());
                entry.events[start..].to_vec()
            };
            if !events.is_empty() {
                return Ok(events);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
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
        let jobs = self.jobs();
        let sessions = lock(&self.inner.sessions);
        let Some(index) = sessions.get(&user) else {
            return Ok(Vec::new());
        };
        Ok(index
            .range(after_seq.saturating_add(1)..)
            .filter_map(|(_, id)| jobs.get(id).map(|e| e.record.clone()))
            .take(limit)
            .collect())
    }

    async fn remember_idempotency_key(
        &self,
        key: &str,
        entry: &IdempotencyEntry,
        ttl: Duration,
    ) -> Result<Option<IdempotencyEntry>, StoreError> {
        let mut keys = lock(&self.inner.idempotency);
        let now = Instant::now();
        match keys.get(key) {
            Some((existing, until)) if *until > now => Ok(Some(existing.clone())),
            _ => {
                keys.insert(key.to_owned(), (entry.clone(), now + ttl));
                Ok(None)
            }
        }
    }

    async fn forget_idempotency_key(
        &self,
        key: &str,
        entry: &IdempotencyEntry,
    ) -> Result<(), StoreError> {
        let mut keys = lock(&self.inner.idempotency);
        if keys.get(key).is_some_and(|(bound, _)| bound == entry) {
            keys.remove(key);
        }
        Ok(())
    }

    async fn delivery(&self, job: JobId) -> Result<Option<WebhookDelivery>, StoreError> {
        Ok(self.outbox().get(job))
    }

    async fn claim_due_deliveries(
        &self,
        now: UnixMillis,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        Ok(self.outbox().claim(now, lease, limit))
    }

    async fn record_attempt(
        &self,
        claim: &DeliveryClaim,
        attempt: DeliveryAttempt,
        next: DeliveryNext,
    ) -> Result<Option<WebhookDelivery>, StoreError> {
        Ok(self.outbox().record(claim, attempt, &next))
    }

    async fn active_jobs_on(&self, node: &NodeId) -> Result<Vec<JobId>, StoreError> {
        Ok(self
            .jobs()
            .values()
            .filter(|e| indexed_node(&e.record) == Some(node))
            .map(|e| e.record.job.id)
            .collect())
    }

    async fn wait_publish_turn(
        &self,
        user: UserUuid,
        seq: u64,
        within: Duration,
    ) -> Result<bool, StoreError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let ended = self.inner.turn_ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.published(user) + 1 >= seq {
                return Ok(true);
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return Ok(self.published(user) + 1 >= seq);
            }
        }
    }

    async fn finish_publish_turn(&self, user: UserUuid, seq: u64) -> Result<(), StoreError> {
        {
            let mut published = lock(&self.inner.published);
            let mark = published.entry(user).or_insert(0);
            *mark = (*mark).max(seq);
        }
        self.inner.turn_ended.notify_waiters();
        Ok(())
    }
}
