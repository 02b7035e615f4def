//! The session job index and idempotency keys of [`RedisStore`].

use super::RedisStore;
use super::pool::{Failure, decode};
use super::scripts::{DELETE_IF_EQUAL, REMEMBER_KEY};
use crate::store::IdempotencyEntry;
use deadpool_redis::redis;
use std::time::Duration;
use tether_protocol::{JobId, JobRecord, UserUuid, names};

impl RedisStore {
    /// Page through the index; members whose record expired are skipped and removed.
    pub(super) async fn list_session_jobs(
        &self,
        user: UserUuid,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<JobRecord>, Failure> {
        let prefix = self.pool.prefix();
        let index = names::session_jobs_key(prefix, &user);
        let mut records = Vec::new();
        let mut after = after_seq;
        while records.len() < limit {
            let want = limit - records.len();
            let mut conn = self.pool.conn().await?;
            let mut range = redis::cmd("ZRANGEBYSCORE");
            range
                .arg(&index)
                .arg(format!("({after}"))
                .arg("+inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(want);
            let page: Vec<(String, u64)> = self.pool.bounded(range.query_async(&mut conn)).await?;
            let Some(&(_, last)) = page.last() else {
                break;
            };
            let keys = page
                .iter()
                .map(|(id, _)| Ok(names::job_key(prefix, &parse_job_id(id)?)))
                .collect::<Result<Vec<_>, Failure>>()?;
            let mut get = redis::cmd("MGET");
            get.arg(&keys);
            let found: Vec<Option<String>> = self.pool.bounded(get.query_async(&mut conn)).await?;
            let mut expired = Vec::new();
            for ((id, _), json) in page.iter().zip(found) {
                match json {
                    Some(json) => records.push(decode::<JobRecord>("job record", &json)?),
                    None => expired.push(id.clone()),
                }
            }
            if !expired.is_empty() {
                let mut prune = redis::cmd("ZREM");
                prune.arg(&index).arg(&expired);
                let _: i64 = self.pool.bounded(prune.query_async(&mut conn)).await?;
            }
            if page.len() < want {
                break;
            }
            after = last;
        }
        Ok(records)
    }

    pub(super) async fn remember_key(
        &self,
        key: &str,
        entry: &IdempotencyEntry,
        ttl: Duration,
    ) -> Result<Option<IdempotencyEntry>, Failure> {
        let json = serde_json::to_string(entry).expect("an entry always encodes as JSON");
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.pool.conn().await?;
        let mut invocation = REMEMBER_KEY.key(names::idempotency_key(self.pool.prefix(), key));
        invocation.arg(&json).arg(ttl_ms);
        let existing: Option<String> = self
            .pool
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        existing
            .map(|json| decode("idempotency entry", &json))
            .transpose()
    }

    pub(super) async fn forget_key(
        &self,
        key: &str,
        entry: &IdempotencyEntry,
    ) -> Result<(), Failure> {
        let json = serde_json::to_string(entry).expect("an entry always encodes as JSON");
        let mut conn = self.pool.conn().await?;
        let mut invocation = DELETE_IF_EQUAL.key(names::idempotency_key(self.pool.prefix(), key));
        invocation.arg(&json);
        let _: i64 = self
            .pool
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        Ok(())
    }
}

/// A job id read back from a set member.
pub(super) fn parse_job_id(member: &str) -> Result<JobId, Failure> {
    JobId::try_from(member).map_err(|e| Failure::Corrupt(format!("job id {member:?}: {e}")))
}
