//! The behaviour every bus, store and registry implementation promises, written once.
//!
//! Each function panics (like a test assertion) when the implementation breaks the
//! contract. The in-memory implementations run them in this crate's tests; the
//! RabbitMQ/Redis implementations run the very same functions against real servers.

use crate::bus::JobBus;
use crate::registry::{NodeInfo, SessionRegistry};
use crate::store::{JobStore, RecordUpdate, UpdateOutcome};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tether_protocol::{
    ExecuteSpec, Job, JobEventKind, JobId, JobKind, JobRecord, JobStatus, NodeId, StreamName,
    UnixMillis, UserUuid,
};

/// A job for tests: `print(n)` in a fresh session.
pub fn sample_job(user: UserUuid, seq: u64) -> Job {
    Job {
        id: JobId::new(),
        user_uuid: user,
        seq,
        kind: JobKind::Execute(ExecuteSpec {
            code: format!("print({seq})"),
            timeout_ms: 1000,
        }),
        submitted_at: UnixMillis::now(),
        callback_url: None,
        metadata: None,
    }
}

fn node(name: &str) -> NodeId {
    NodeId::try_from(name).expect("valid node id")
}

/// Records move forward only; stale updates change nothing.
pub async fn store_transitions_only_move_forward(store: &dyn JobStore) {
    let job = sample_job(UserUuid::random(), 1);
    let id = job.id;
    store
        .insert(&JobRecord::queued(job, None))
        .await
        .expect("insert");
    assert!(
        store
            .insert(&store.get(id).await.unwrap().unwrap())
            .await
            .is_err()
    );

    let started = RecordUpdate::Started {
        node: node("n1"),
        at: UnixMillis::now(),
    };
    assert!(matches!(
        store.update(id, started.clone()).await.unwrap(),
        UpdateOutcome::Applied(r) if r.status == JobStatus::Running
    ));
    assert!(matches!(
        store.update(id, started).await.unwrap(),
        UpdateOutcome::Stale(_)
    ));
    let finish = |status| RecordUpdate::Finished {
        status,
        result: None,
        error: None,
        at: UnixMillis::now(),
    };
    assert!(matches!(
        store
            .update(id, finish(JobStatus::Succeeded))
            .await
            .unwrap(),
        UpdateOutcome::Applied(_)
    ));
    assert!(matches!(
        store.update(id, finish(JobStatus::Failed)).await.unwrap(),
        UpdateOutcome::Stale(r) if r.status == JobStatus::Succeeded
    ));
    assert!(matches!(
        store
            .update(JobId::new(), finish(JobStatus::Failed))
            .await
            .unwrap(),
        UpdateOutcome::Missing
    ));
    let record = store.get(id).await.unwrap().unwrap();
    assert_eq!(record.node_id, Some(node("n1")));
    assert!(record.started_at.is_some() && record.finished_at.is_some());
}

/// A waiter wakes as soon as the job ends, not at its timeout.
pub async fn store_wait_wakes_on_finish(store: Arc<dyn JobStore>) {
    let job = sample_job(UserUuid::random(), 1);
    let id = job.id;
    store.insert(&JobRecord::queued(job, None)).await.unwrap();
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let r = store.wait_terminal(id, Duration::from_secs(20)).await;
            (r, start.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    store
        .update(
            id,
            RecordUpdate::Finished {
                status: JobStatus::Succeeded,
                result: None,
                error: None,
                at: UnixMillis::now(),
            },
        )
        .await
        .unwrap();
    let (record, waited) = waiter.await.unwrap();
    assert_eq!(record.unwrap().unwrap().status, JobStatus::Succeeded);
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");

    // Not finished: returns the current record after the timeout.
    let job = sample_job(UserUuid::random(), 1);
    let id = job.id;
    store.insert(&JobRecord::queued(job, None)).await.unwrap();
    let r = store
        .wait_terminal(id, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(r.unwrap().status, JobStatus::Queued);
    assert!(
        store
            .wait_terminal(JobId::new(), Duration::from_millis(10))
            .await
            .unwrap()
            .is_none()
    );
}

/// Event logs are gap-free, ordered, and resumable from any index.
pub async fn store_events_resume(store: Arc<dyn JobStore>) {
    let job = sample_job(UserUuid::random(), 1);
    let id = job.id;
    store.insert(&JobRecord::queued(job, None)).await.unwrap();
    for i in 0..5 {
        let idx = store
            .append_event(
                id,
                JobEventKind::Stream {
                    name: StreamName::Stdout,
                    text: format!("{i}\n"),
                },
            )
            .await
            .unwrap();
        assert_eq!(idx, i + 1);
    }
    let all = store
        .events_after(id, 0, Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
    let rest = store
        .events_after(id, 3, Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|e| e.index).collect::<Vec<_>>(), vec![4, 5]);
    let none = store
        .events_after(id, 5, Duration::from_millis(50))
        .await
        .unwrap();
    assert!(none.is_empty());

    // A waiting reader wakes on append.
    let reader = {
        let store = store.clone();
        tokio::spawn(async move { store.events_after(id, 5, Duration::from_secs(20)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    store
        .append_event(
            id,
            JobEventKind::Status {
                status: JobStatus::Succeeded,
            },
        )
        .await
        .unwrap();
    let got = reader.await.unwrap().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].index, 6);
}

/// Session sequence numbers count up per session.
pub async fn store_seq_per_session(store: &dyn JobStore) {
    let a = UserUuid::random();
    let b = UserUuid::random();
    assert_eq!(store.next_seq(a).await.unwrap(), 1);
    assert_eq!(store.next_seq(a).await.unwrap(), 2);
    assert_eq!(store.next_seq(b).await.unwrap(), 1);
    assert_eq!(store.next_seq(a).await.unwrap(), 3);
}

/// Publish reaches the consumer in order; requeue redelivers; unknown nodes are unroutable.
pub async fn bus_delivers_in_order_and_requeues(bus: &dyn JobBus, node_name: &str) {
    let n = node(node_name);
    let mut rx = bus.consume(&n, 16).await.expect("consume");
    let user = UserUuid::random();
    let jobs: Vec<Job> = (1..=5).map(|s| sample_job(user, s)).collect();
    for job in &jobs {
        bus.publish(&n, job).await.expect("publish");
    }
    for job in &jobs {
        let d = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("delivery in time")
            .expect("open");
        assert_eq!(d.job.as_ref().expect("decodes").id, job.id);
        d.settle.ack().await;
    }
    // Requeue: the same job comes back.
    let job = sample_job(user, 6);
    bus.publish(&n, &job).await.unwrap();
    let d = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    d.settle.reject(true).await;
    drop(d);
    let again = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.job.as_ref().unwrap().id, job.id);
    again.settle.ack().await;

    bus.delete_queue(&n).await.unwrap();
    let gone = node(&format!("{node_name}-gone"));
    assert!(matches!(
        bus.publish(&gone, &sample_job(user, 7)).await,
        Err(crate::bus::BusError::Unroutable(_))
    ));
}

/// Only live nodes are listed; a session binds to exactly one node even under races.
pub async fn registry_binds_atomically(registry: Arc<dyn SessionRegistry>, prefix: &str) {
    let a = node(&format!("{prefix}-a"));
    let b = node(&format!("{prefix}-b"));
    let info = |id: &NodeId| NodeInfo {
        id: id.clone(),
        capacity: 10,
        sessions: 0,
        draining: false,
        detail: serde_json::Value::Null,
    };
    registry
        .heartbeat(info(&a), Duration::from_secs(30))
        .await
        .unwrap();
    registry
        .heartbeat(info(&b), Duration::from_millis(200))
        .await
        .unwrap();
    let live = registry.live_nodes().await.unwrap();
    assert!(live.iter().any(|n| n.id == a) && live.iter().any(|n| n.id == b));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let live = registry.live_nodes().await.unwrap();
    assert!(live.iter().any(|n| n.id == a));
    assert!(!live.iter().any(|n| n.id == b), "expired node still listed");

    let user = UserUuid::random();
    let mut racers = Vec::new();
    for i in 0..8 {
        let registry = registry.clone();
        let target = if i % 2 == 0 { a.clone() } else { b.clone() };
        racers.push(tokio::spawn(async move {
            registry.bind_session(user, &target).await.unwrap()
        }));
    }
    let mut bound = Vec::new();
    for r in racers {
        bound.push(r.await.unwrap());
    }
    assert!(
        bound.windows(2).all(|w| w[0] == w[1]),
        "split binding {bound:?}"
    );
    assert_eq!(
        registry.session_node(user).await.unwrap().as_ref(),
        Some(&bound[0])
    );
    let other = if bound[0] == a { &b } else { &a };
    registry.unbind_session(user, other).await.unwrap();
    assert!(registry.session_node(user).await.unwrap().is_some());
    registry.unbind_session(user, &bound[0]).await.unwrap();
    assert!(registry.session_node(user).await.unwrap().is_none());

    registry.set_draining(&a, true).await.unwrap();
    registry
        .heartbeat(info(&a), Duration::from_secs(30))
        .await
        .unwrap();
    let live = registry.live_nodes().await.unwrap();
    assert!(live.iter().find(|n| n.id == a).unwrap().draining);
    registry.deregister(&a).await.unwrap();
    assert!(
        !registry
            .live_nodes()
            .await
            .unwrap()
            .iter()
            .any(|n| n.id == a)
    );
}
