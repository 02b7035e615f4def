//! Contract checks for the per-session job index and idempotency keys.

use super::sample_job;
use crate::store::{IdempotencyEntry, JobStore};
use std::sync::Arc;
use std::time::Duration;
use tether_protocol::{JobId, JobRecord, UserUuid};

/// `insert` indexes jobs by session; listing pages through them in `seq` order.
pub async fn store_lists_session_jobs(store: &dyn JobStore) {
    let (a, b) = (UserUuid::random(), UserUuid::random());
    // Inserted out of order: the listing still follows seq.
    for seq in [2, 1, 5, 3, 4] {
        store
            .insert(&JobRecord::queued(sample_job(a, seq), None))
            .await
            .unwrap();
    }
    store
        .insert(&JobRecord::queued(sample_job(b, 1), None))
        .await
        .unwrap();
    let seqs = |records: Vec<JobRecord>| records.iter().map(|r| r.job.seq).collect::<Vec<_>>();
    let all = store.session_jobs(a, 0, 100).await.unwrap();
    assert!(all.iter().all(|r| r.job.user_uuid == a));
    assert_eq!(seqs(all), vec![1, 2, 3, 4, 5]);
    assert_eq!(seqs(store.session_jobs(a, 2, 2).await.unwrap()), vec![3, 4]);
    assert_eq!(seqs(store.session_jobs(a, 4, 10).await.unwrap()), vec![5]);
    assert!(store.session_jobs(a, 5, 10).await.unwrap().is_empty());
    assert_eq!(seqs(store.session_jobs(b, 0, 10).await.unwrap()), vec![1]);
    assert!(
        store
            .session_jobs(UserUuid::random(), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A key binds once (atomically), answers with its entry until it expires, and is
/// forgotten only by the entry it holds.
pub async fn store_idempotency_keys(store: Arc<dyn JobStore>) {
    let key = format!("contract-{}", UserUuid::random());
    let first = IdempotencyEntry {
        job_id: JobId::new(),
        fingerprint: "f1".into(),
    };
    let second = IdempotencyEntry {
        job_id: JobId::new(),
        fingerprint: "f2".into(),
    };
    let day = Duration::from_secs(24 * 3600);
    assert_eq!(
        store
            .remember_idempotency_key(&key, &first, day)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .remember_idempotency_key(&key, &second, day)
            .await
            .unwrap(),
        Some(first.clone())
    );
    store.forget_idempotency_key(&key, &second).await.unwrap();
    assert_eq!(
        store
            .remember_idempotency_key(&key, &second, day)
            .await
            .unwrap(),
        Some(first.clone()),
        "forgetting with another entry must not unbind the key"
    );
    store.forget_idempotency_key(&key, &first).await.unwrap();
    assert_eq!(
        store
            .remember_idempotency_key(&key, &second, day)
            .await
            .unwrap(),
        None
    );

    // Expiry.
    let short = format!("contract-short-{}", UserUuid::random());
    store
        .remember_idempotency_key(&short, &first, Duration::from_millis(100))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        store
            .remember_idempotency_key(&short, &second, day)
            .await
            .unwrap(),
        None,
        "an expired key binds afresh"
    );

    // Racing binders: exactly one wins.
    let raced = format!("contract-race-{}", UserUuid::random());
    let mut racers = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let raced = raced.clone();
        racers.push(tokio::spawn(async move {
            let entry = IdempotencyEntry {
                job_id: JobId::new(),
                fingerprint: format!("r{i}"),
            };
            store
                .remember_idempotency_key(&raced, &entry, day)
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for r in racers {
        if r.await.unwrap().is_none() {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}
