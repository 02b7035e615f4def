//! The webhook outbox of [`RedisStore`]: deliveries as JSON, pending ones in a sorted set
//! by due time, claims as tokens checked by the script that records an attempt.

use super::RedisStore;
use super::pool::{Failure, decode};
use super::scripts::{CLAIM_DELIVERIES, RECORD_ATTEMPT};
use super::session_index::parse_job_id;
use crate::outbox::{ClaimedDelivery, DeliveryClaim, DeliveryNext, apply_attempt, new_token};
use deadpool_redis::redis;
use std::time::Duration;
use tether_protocol::{DeliveryAttempt, JobId, UnixMillis, WebhookDelivery, names};

impl RedisStore {
    pub(super) async fn read_delivery(
        &self,
        job: JobId,
    ) -> Result<Option<WebhookDelivery>, Failure> {
        let mut conn = self.pool.conn().await?;
        let key = names::delivery_key(self.pool.prefix(), &job);
        let json: Option<String> = self
            .pool
            .bounded(redis::cmd("GET").arg(&key).query_async(&mut conn))
            .await?;
        json.map(|json| decode("webhook delivery", &json))
            .transpose()
    }

    pub(super) async fn claim_deliveries(
        &self,
        now: UnixMillis,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>, Failure> {
        let prefix = self.pool.prefix();
        let due = names::deliveries_due_key(prefix);
        let until = now
            .0
            .saturating_add(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX));
        let mut conn = self.pool.conn().await?;
        let mut invocation = CLAIM_DELIVERIES.key(&due);
        invocation
            .arg(now.0)
            .arg(until)
            .arg(limit)
            .arg(names::delivery_claim_prefix(prefix))
            .arg(new_token())
            .arg(self.ttl_ms());
        let claimed: Vec<(String, String)> = self
            .pool
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let keys = claimed
            .iter()
            .map(|(id, _)| Ok(names::delivery_key(prefix, &parse_job_id(id)?)))
            .collect::<Result<Vec<_>, Failure>>()?;
        let mut get = redis::cmd("MGET");
        get.arg(&keys);
        let found: Vec<Option<String>> = self.pool.bounded(get.query_async(&mut conn)).await?;
        let mut out = Vec::with_capacity(claimed.len());
        let mut orphans = Vec::new();
        for ((id, token), json) in claimed.into_iter().zip(found) {
            let Some(json) = json else {
                // The delivery expired with its job: nothing to send.
                orphans.push(id);
                continue;
            };
            let delivery: WebhookDelivery = decode("webhook delivery", &json)?;
            out.push(ClaimedDelivery {
                claim: DeliveryClaim {
                    job_id: delivery.job_id,
                    token,
                },
                delivery,
            });
        }
        if !orphans.is_empty() {
            let mut prune = redis::cmd("ZREM");
            prune.arg(&due).arg(&orphans);
            let _: i64 = self.pool.bounded(prune.query_async(&mut conn)).await?;
        }
        Ok(out)
    }

    pub(super) async fn record_delivery_attempt(
        &self,
        claim: &DeliveryClaim,
        attempt: DeliveryAttempt,
        next: DeliveryNext,
    ) -> Result<Option<WebhookDelivery>, Failure> {
        let Some(mut delivery) = self.read_delivery(claim.job_id).await? else {
            return Ok(None);
        };
        apply_attempt(&mut delivery, attempt, &next);
        let json = serde_json::to_string(&delivery).expect("a delivery always encodes as JSON");
        let prefix = self.pool.prefix();
        let id = claim.job_id;
        let next_due = next.due().map(|at| at.0.to_string()).unwrap_or_default();
        let mut conn = self.pool.conn().await?;
        let mut invocation = RECORD_ATTEMPT.key(names::delivery_key(prefix, &id));
        invocation
            .key(format!("{}{id}", names::delivery_claim_prefix(prefix)))
            .key(names::deliveries_due_key(prefix))
            .arg(&claim.token)
            .arg(&json)
            .arg(self.ttl_ms())
            .arg(next_due)
            .arg(id.to_string());
        let written: i64 = self
            .pool
            .bounded(invocation.invoke_async(&mut conn))
            .await?;
        Ok((written == 1).then_some(delivery))
    }
}
