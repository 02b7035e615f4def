//! Contract checks for the webhook outbox: queued atomically with the terminal change,
//! claimed under a lease by one loop at a time, moved on only by the claim holder.

use super::sample_job;
use crate::outbox::{DeliveryClaim, DeliveryNext};
use crate::store::{JobStore, RecordUpdate};
use std::sync::Arc;
use std::time::Duration;
use tether_protocol::{
    DeliveryAttempt, DeliveryState, JobId, JobRecord, JobStatus, UnixMillis, UserUuid,
    webhook::webhook_id,
};

fn finished(status: JobStatus) -> RecordUpdate {
    RecordUpdate::Finished {
        status,
        result: None,
        error: None,
        at: UnixMillis::now(),
    }
}

fn attempt(n: u32, status_code: u16) -> DeliveryAttempt {
    DeliveryAttempt {
        attempt: n,
        at: UnixMillis::now(),
        duration_ms: 3,
        status_code: Some(status_code),
        error: None,
    }
}

fn later(at: UnixMillis, ms: u64) -> UnixMillis {
    UnixMillis(at.0 + ms)
}

async fn queued_job(store: &dyn JobStore, callback: Option<&str>) -> JobId {
    let mut job = sample_job(UserUuid::random(), 1);
    job.callback_url = callback.map(str::to_owned);
    let id = job.id;
    store.insert(&JobRecord::queued(job, None)).await.unwrap();
    id
}

/// Claim at `now` and return the claim of `job`, if it was among the claimed.
async fn claim_of(store: &dyn JobStore, job: JobId, now: UnixMillis) -> Option<DeliveryClaim> {
    store
        .claim_due_deliveries(now, Duration::from_millis(500), 1000)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.claim.job_id == job)
        .map(|c| c.claim)
}

/// The whole life of a delivery.
pub async fn store_webhook_outbox(store: &dyn JobStore) {
    // No callback, no delivery.
    let plain = queued_job(store, None).await;
    store
        .update(plain, finished(JobStatus::Succeeded))
        .await
        .unwrap();
    assert!(store.delivery(plain).await.unwrap().is_none());

    // A callback: nothing while queued, a pending delivery once terminal.
    let url = "http://receiver.example/hook";
    let id = queued_job(store, Some(url)).await;
    assert!(store.delivery(id).await.unwrap().is_none());
    store.update(id, finished(JobStatus::Failed)).await.unwrap();
    let delivery = store.delivery(id).await.unwrap().expect("queued");
    assert_eq!(delivery.state, DeliveryState::Pending);
    assert_eq!(delivery.webhook_id, webhook_id(id));
    assert_eq!(delivery.url, url);
    assert!(delivery.attempts.is_empty());
    let due = delivery.next_attempt_at.expect("due");

    // Claimed once; leased meanwhile.
    let now = later(due, 1);
    let claim = claim_of(store, id, now).await.expect("due now");
    assert!(claim_of(store, id, now).await.is_none(), "leased");

    // An attempt moves it on and ends the claim.
    let retry_at = later(now, 200);
    let updated = store
        .record_attempt(&claim, attempt(1, 500), DeliveryNext::RetryAt(retry_at))
        .await
        .unwrap()
        .expect("claim current");
    assert_eq!(updated.attempts.len(), 1);
    assert_eq!(updated.state, DeliveryState::Pending);
    assert_eq!(updated.next_attempt_at, Some(retry_at));
    assert!(
        store
            .record_attempt(&claim, attempt(2, 500), DeliveryNext::Delivered)
            .await
            .unwrap()
            .is_none(),
        "a used claim records nothing"
    );
    assert!(
        claim_of(store, id, later(now, 100)).await.is_none(),
        "not due yet"
    );

    // A lease that runs out lets another claim take over; the old claim is dead.
    let stale = claim_of(store, id, later(retry_at, 1))
        .await
        .expect("due again");
    assert!(claim_of(store, id, later(retry_at, 400)).await.is_none());
    let fresh = claim_of(store, id, later(retry_at, 600))
        .await
        .expect("lease ran out");
    assert_ne!(stale.token, fresh.token);
    assert!(
        store
            .record_attempt(&stale, attempt(2, 200), DeliveryNext::Delivered)
            .await
            .unwrap()
            .is_none()
    );
    let done = store
        .record_attempt(&fresh, attempt(2, 200), DeliveryNext::Delivered)
        .await
        .unwrap()
        .expect("current claim");
    assert_eq!(done.state, DeliveryState::Delivered);
    assert_eq!(done.next_attempt_at, None);
    assert_eq!(
        done.attempts
            .iter()
            .map(|a| a.status_code)
            .collect::<Vec<_>>(),
        vec![Some(500), Some(200)]
    );
    assert!(
        claim_of(store, id, later(retry_at, 1_000_000))
            .await
            .is_none(),
        "delivered is final"
    );
    assert_eq!(store.delivery(id).await.unwrap(), Some(done));

    // Giving up is final too, and says why.
    let id = queued_job(store, Some(url)).await;
    store
        .update(id, finished(JobStatus::Cancelled))
        .await
        .unwrap();
    let claim = claim_of(store, id, later(UnixMillis::now(), 1))
        .await
        .expect("due");
    let failed = store
        .record_attempt(
            &claim,
            attempt(1, 410),
            DeliveryNext::Failed("the receiver answered 410".into()),
        )
        .await
        .unwrap()
        .expect("current");
    assert_eq!(failed.state, DeliveryState::Failed);
    assert_eq!(failed.failure.as_deref(), Some("the receiver answered 410"));

    // A record inserted already terminal (nothing to run) is delivered too.
    let mut job = sample_job(UserUuid::random(), 1);
    job.callback_url = Some(url.into());
    let id = job.id;
    let mut record = JobRecord::queued(job, None);
    record.status = JobStatus::Succeeded;
    record.finished_at = Some(UnixMillis::now());
    store.insert(&record).await.unwrap();
    assert_eq!(
        store.delivery(id).await.unwrap().map(|d| d.state),
        Some(DeliveryState::Pending)
    );
}

/// Concurrent claimers (two dispatchers) never both get the same delivery.
pub async fn store_outbox_claims_are_exclusive(store: Arc<dyn JobStore>) {
    let id = queued_job(store.as_ref(), Some("http://receiver.example/race")).await;
    store
        .update(id, finished(JobStatus::Succeeded))
        .await
        .unwrap();
    let now = later(UnixMillis::now(), 1);
    let mut racers = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        racers.push(tokio::spawn(async move {
            claim_of(store.as_ref(), id, now).await.is_some()
        }));
    }
    let mut winners = 0;
    for r in racers {
        if r.await.unwrap() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}
