//! Job records in a map, with per-job wake-ups.

use crate::store::{JobStore, RecordUpdate, StoreError, UpdateOutcome, indexed_node};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tether_protocol::{JobEvent, JobEventKind, JobId, JobRecord, NodeId, UserUuid};
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
                published: Mutex::new(HashMap::new()),
                turn_ended: Notify::new(),
                ttl,
            }),
        }
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Entry>> {
        self.inner
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn published(&self, user: UserUuid) -> u64 {
        self.inner
            .published
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&user)
            .copied()
            .unwrap_or(0)
    }

    fn notifier(&self, id: JobId) -> Option<Arc<Notify>> {
        self.jobs().get(&id).map(|e| e.changed.clone())
    }

    /// Drop terminal records older than the TTL.
    fn expire(&self, jobs: &mut HashMap<JobId, Entry>) {
        let ttl = self.inner.ttl;
        jobs.retain(|_, e| e.finished.is_none_or(|at| at.elapsed() < ttl));
    }
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
        jobs.insert(
            id,
            Entry {
                record: record.clone(),
                events: Vec::new(),
                changed: Arc::new(Notify::new()),
                finished: record.status.is_terminal().then(Instant::now),
            },
        );
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
        if !update.apply(&mut entry.record) {
            return Ok(UpdateOutcome::Stale(entry.record.clone()));
        }
        if entry.record.status.is_terminal() {
            entry.finished = Some(Instant::now());
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
        let mut seqs = self
            .inner
            .seqs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let seq = seqs.entry(user).or_insert(0);
        *seq += 1;
        Ok(*seq)
    }

    async fn append_event(&self, id: JobId, kind: JobEventKind) -> Result<u64, StoreError> {
        let mut jobs = self.jobs();
        let Some(entry) = jobs.get_mut(&id) else {
            return Ok(0);
        };
        let index = entry.events.len() as u64 + 1;
        entry.events.push(JobEvent { index, kind });
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
            let mut published = self
                .inner
                .published
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let mark = published.entry(user).or_insert(0);
            *mark = (*mark).max(seq);
        }
        self.inner.turn_ended.notify_waiters();
        Ok(())
    }
}
