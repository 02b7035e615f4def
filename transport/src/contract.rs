//! The behaviour every bus, store and registry implementation promises, written once.
//!
//! Each function panics (like a test assertion) when the implementation breaks the
//! contract. The in-memory implementations run them in this crate's tests; the
//! RabbitMQ/Redis implementations run the very same functions against real servers.

mod outbox;
mod session_index;

pub use outbox::{store_outbox_claims_are_exclusive, store_webhook_outbox};
pub use session_index::{store_idempotency_keys, store_lists_session_jobs};

use crate::bus::JobBus;
use crate::registry::{Candidate, NodeInfo, SessionRegistry};
use crate::store::{JobStore, RecordUpdate, UpdateOutcome};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tether_protocol::{
    ExecuteSpec, Job, JobEventKind, JobId, JobKind, JobRecord, JobStatus, NodeId, StreamName,
    UnixMillis, UserUuid,
};

/// Every store promise, in one call, so each implementation runs the same list.
pub async fn store_contract(store: Arc<dyn JobStore>) {
    store_transitions_only_move_forward(store.as_ref()).await;
    store_status_changes_are_logged(store.as_ref()).await;
    store_update_expecting_checks_the_belief(store.as_ref()).await;
    store_wait_wakes_on_finish(store.clone()).await;
    store_events_resume(store.clone()).await;
    store_seq_per_session(store.as_ref()).await;
    store_lists_session_jobs(store.as_ref()).await;
    store_idempotency_keys(store.clone()).await;
    store_webhook_outbox(store.as_ref()).await;
    store_outbox_claims_are_exclusive(store.clone()).await;
    store_indexes_active_jobs_by_node(store.as_ref()).await;
    store_undelivered_only_ends_queued_jobs(store.as_ref()).await;
    store_publish_turns_follow_seq(store).await;
}

/// Every registry promise, in one call. `prefix` names this run's nodes.
pub async fn registry_contract(registry: Arc<dyn SessionRegistry>, prefix: &str) {
    registry_binds_atomically(registry.clone(), prefix).await;
    registry_tracks_node_loss(registry.clone(), prefix).await;
    registry_places_atomically(registry, prefix).await;
}

/// A node heartbeat for tests: capacity 10, no sessions, not draining.
fn idle_node(id: &NodeId) -> NodeInfo {
    NodeInfo {
        id: id.clone(),
        capacity: 10,
        sessions: 0,
        draining: false,
        detail: serde_json::Value::Null,
    }
}

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

/// Every status change is logged as a status event in the same step (and a record
/// inserted finished carries its event); a job whose cancel was requested never starts.
pub async fn store_status_changes_are_logged(store: &dyn JobStore) {
    let statuses = |events: Vec<tether_protocol::JobEvent>| -> Vec<(u64, Option<JobStatus>)> {
        events
            .into_iter()
            .map(|e| match e.kind {
                JobEventKind::Status { status } => (e.index, Some(status)),
                _ => (e.index, None),
            })
            .collect()
    };
    let quick = Duration::from_millis(10);
    let job = sample_job(UserUuid::random(), 1);
    let id = job.id;
    store.insert(&JobRecord::queued(job, None)).await.unwrap();
    assert!(store.events_after(id, 0, quick).await.unwrap().is_empty());
    let started = RecordUpdate::Started {
        node: node("n1"),
        at: UnixMillis::now(),
    };
    store.update(id, started.clone()).await.unwrap();
    store.update(id, started).await.unwrap(); // stale: no second event
    let output = JobEventKind::Stream {
        name: StreamName::Stdout,
        text: "1\n".into(),
    };
    assert_eq!(store.append_event(id, output).await.unwrap(), 2);
    let finish = |status| RecordUpdate::Finished {
        status,
        result: None,
        error: None,
        at: UnixMillis::now(),
    };
    store
        .update(id, finish(JobStatus::Succeeded))
        .await
        .unwrap();
    store.update(id, finish(JobStatus::Failed)).await.unwrap(); // stale
    assert_eq!(
        statuses(store.events_after(id, 0, quick).await.unwrap()),
        vec![
            (1, Some(JobStatus::Running)),
            (2, None),
            (3, Some(JobStatus::Succeeded))
        ]
    );

    // Inserted already finished (a release with nothing to release): one terminal event.
    let mut done = JobRecord::queued(sample_job(UserUuid::random(), 1), None);
    done.status = JobStatus::Succeeded;
    let done_id = done.job.id;
    store.insert(&done).await.unwrap();
    assert_eq!(
        statuses(store.events_after(done_id, 0, quick).await.unwrap()),
        vec![(1, Some(JobStatus::Succeeded))]
    );

    // Cancel requested while queued: the start is refused, nothing is logged.
    let job = sample_job(UserUuid::random(), 1);
    let id = job.id;
    store.insert(&JobRecord::queued(job, None)).await.unwrap();
    store.request_cancel(id).await.unwrap();
    let refused = store
        .update(
            id,
            RecordUpdate::Started {
                node: node("n1"),
                at: UnixMillis::now(),
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        refused,
        UpdateOutcome::Stale(r) if r.status == JobStatus::Queued && r.cancel_requested
    ));
    assert!(store.events_after(id, 0, quick).await.unwrap().is_empty());
}

/// `update_expecting` gives the same outcome as `update`, whether the caller's belief
/// about the stored record is right or stale.
pub async fn store_update_expecting_checks_the_belief(store: &dyn JobStore) {
    let started = || RecordUpdate::Started {
        node: node("n1"),
        at: UnixMillis::now(),
    };
    let finish = |status| RecordUpdate::Finished {
        status,
        result: None,
        error: None,
        at: UnixMillis::now(),
    };
    // Right beliefs all the way.
    let queued = JobRecord::queued(sample_job(UserUuid::random(), 1), Some(node("n1")));
    store.insert(&queued).await.unwrap();
    let UpdateOutcome::Applied(running) = store.update_expecting(&queued, started()).await.unwrap()
    else {
        panic!("start from the right belief was not applied");
    };
    assert_eq!(running.status, JobStatus::Running);
    assert!(matches!(
        store.update_expecting(&running, finish(JobStatus::Succeeded)).await.unwrap(),
        UpdateOutcome::Applied(r) if r.status == JobStatus::Succeeded
    ));
    // A stale belief (the record finished meanwhile): nothing is overwritten.
    assert!(matches!(
        store.update_expecting(&running, finish(JobStatus::Failed)).await.unwrap(),
        UpdateOutcome::Stale(r) if r.status == JobStatus::Succeeded
    ));
    // A stale belief (a cancel was requested meanwhile): the start is refused.
    let queued = JobRecord::queued(sample_job(UserUuid::random(), 1), Some(node("n1")));
    store.insert(&queued).await.unwrap();
    store.request_cancel(queued.job.id).await.unwrap();
    assert!(matches!(
        store.update_expecting(&queued, started()).await.unwrap(),
        UpdateOutcome::Stale(r) if r.status == JobStatus::Queued && r.cancel_requested
    ));
    // No such record.
    let unknown = JobRecord::queued(sample_job(UserUuid::random(), 1), None);
    assert!(matches!(
        store.update_expecting(&unknown, started()).await.unwrap(),
        UpdateOutcome::Missing
    ));
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
    registry
        .heartbeat(idle_node(&a), Duration::from_secs(30))
        .await
        .unwrap();
    registry
        .heartbeat(idle_node(&b), Duration::from_millis(200))
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
        .heartbeat(idle_node(&a), Duration::from_secs(30))
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

/// The node index follows each record: filed under its node while non-terminal, moved by
/// a reroute or by a start on another node, dropped when the job ends.
pub async fn store_indexes_active_jobs_by_node(store: &dyn JobStore) {
    let a = node("idx-a");
    let b = node("idx-b");
    let on = |ids: Vec<JobId>, id: JobId| ids.contains(&id);
    let job = sample_job(UserUuid::random(), 1);
    let id = job.id;
    store
        .insert(&JobRecord::queued(job, Some(a.clone())))
        .await
        .unwrap();
    let unplaced = sample_job(UserUuid::random(), 1);
    store
        .insert(&JobRecord::queued(unplaced, None))
        .await
        .unwrap();
    assert!(on(store.active_jobs_on(&a).await.unwrap(), id));
    assert!(!on(store.active_jobs_on(&b).await.unwrap(), id));

    let reroute = RecordUpdate::Rerouted { node: b.clone() };
    assert!(matches!(
        store.update(id, reroute.clone()).await.unwrap(),
        UpdateOutcome::Applied(r) if r.node_id.as_ref() == Some(&b) && r.status == JobStatus::Queued
    ));
    assert!(matches!(
        store.update(id, reroute).await.unwrap(),
        UpdateOutcome::Stale(_)
    ));
    assert!(!on(store.active_jobs_on(&a).await.unwrap(), id));
    assert!(on(store.active_jobs_on(&b).await.unwrap(), id));

    let started = RecordUpdate::Started {
        node: a.clone(),
        at: UnixMillis::now(),
    };
    store.update(id, started).await.unwrap();
    assert!(on(store.active_jobs_on(&a).await.unwrap(), id));
    assert!(!on(store.active_jobs_on(&b).await.unwrap(), id));
    // A running job is never rerouted.
    assert!(matches!(
        store
            .update(id, RecordUpdate::Rerouted { node: b.clone() })
            .await
            .unwrap(),
        UpdateOutcome::Stale(_)
    ));

    let lost = RecordUpdate::Finished {
        status: JobStatus::SessionLost,
        result: None,
        error: Some(tether_protocol::JobError::session_lost(&a)),
        at: UnixMillis::now(),
    };
    store.update(id, lost).await.unwrap();
    assert!(!on(store.active_jobs_on(&a).await.unwrap(), id));

    // A record inserted already terminal is never indexed.
    let mut done = JobRecord::queued(sample_job(UserUuid::random(), 1), Some(a.clone()));
    done.status = JobStatus::Succeeded;
    store.insert(&done).await.unwrap();
    assert!(!on(store.active_jobs_on(&a).await.unwrap(), done.job.id));
}

/// Publish turns are granted in seq order however the waiters arrive; a missing
/// predecessor costs at most the wait; the mark never moves backwards.
pub async fn store_publish_turns_follow_seq(store: Arc<dyn JobStore>) {
    let user = UserUuid::random();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut waiters = Vec::new();
    for seq in [3u64, 2, 1] {
        let store = store.clone();
        let order = order.clone();
        waiters.push(tokio::spawn(async move {
            let turn = store
                .wait_publish_turn(user, seq, Duration::from_secs(20))
                .await
                .unwrap();
            assert!(turn, "seq {seq} gave up waiting");
            order.lock().unwrap().push(seq);
            tokio::time::sleep(Duration::from_millis(20)).await;
            store.finish_publish_turn(user, seq).await.unwrap();
        }));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    for w in waiters {
        w.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![1, 2, 3]);

    store.finish_publish_turn(user, 1).await.unwrap();
    assert!(
        store
            .wait_publish_turn(user, 4, Duration::ZERO)
            .await
            .unwrap(),
        "the mark went backwards"
    );

    // A new seq knows at once whether its turn has come; `false` only means "wait".
    let fresh = UserUuid::random();
    let (first, turn) = store.next_seq_and_turn(fresh).await.unwrap();
    assert_eq!(first, 1);
    assert!(turn, "seq 1 has nothing to wait for");
    let (second, early) = store.next_seq_and_turn(fresh).await.unwrap();
    assert_eq!(second, 2);
    assert!(!early, "seq 2 took its turn before seq 1 published");
    store.finish_publish_turn(fresh, first).await.unwrap();
    assert!(
        store
            .wait_publish_turn(fresh, second, Duration::ZERO)
            .await
            .unwrap()
    );

    let gap = UserUuid::random();
    let start = Instant::now();
    assert!(
        !store
            .wait_publish_turn(gap, 2, Duration::from_millis(200))
            .await
            .unwrap()
    );
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(190) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

/// A dead node is found; losing its sessions unbinds them and marks each lost exactly
/// once; `live_nodes` counts bindings the node has not reported yet.
pub async fn registry_tracks_node_loss(registry: Arc<dyn SessionRegistry>, prefix: &str) {
    let a = node(&format!("{prefix}-la"));
    let b = node(&format!("{prefix}-lb"));
    registry
        .heartbeat(idle_node(&a), Duration::from_secs(30))
        .await
        .unwrap();
    registry
        .heartbeat(idle_node(&b), Duration::from_millis(300))
        .await
        .unwrap();
    let (u1, u2, u3) = (UserUuid::random(), UserUuid::random(), UserUuid::random());
    registry.bind_session(u1, &b).await.unwrap();
    registry.bind_session(u2, &b).await.unwrap();
    registry.bind_session(u3, &a).await.unwrap();
    let sessions_of =
        |nodes: &[NodeInfo], id: &NodeId| nodes.iter().find(|n| &n.id == id).map(|n| n.sessions);
    let live = registry.live_nodes().await.unwrap();
    assert_eq!(sessions_of(&live, &b), Some(2), "bindings not counted");
    assert_eq!(sessions_of(&live, &a), Some(1));
    let u4 = UserUuid::random();
    registry.bind_session(u4, &a).await.unwrap();
    registry.unbind_session(u4, &a).await.unwrap();
    let live = registry.live_nodes().await.unwrap();
    assert_eq!(sessions_of(&live, &a), Some(1), "unbind not counted");

    assert!(!registry.expired_nodes().await.unwrap().contains(&b));
    assert_eq!(
        registry.session_binding(u1).await.unwrap(),
        Some((b.clone(), true))
    );
    assert_eq!(registry.session_binding(u4).await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let dead = registry.expired_nodes().await.unwrap();
    assert!(dead.contains(&b) && !dead.contains(&a), "{dead:?}");
    // Still bound, but to a node whose heartbeat expired.
    assert_eq!(
        registry.session_binding(u1).await.unwrap(),
        Some((b.clone(), false))
    );
    assert_eq!(
        registry.session_binding(u3).await.unwrap(),
        Some((a.clone(), true))
    );

    let mut lost = registry.lose_sessions_of(&b).await.unwrap();
    lost.sort();
    let mut want = vec![u1, u2];
    want.sort();
    assert_eq!(lost, want);
    assert!(registry.session_node(u1).await.unwrap().is_none());
    assert!(registry.lose_sessions_of(&b).await.unwrap().is_empty());
    assert!(registry.take_session_lost(u1).await.unwrap());
    assert!(
        !registry.take_session_lost(u1).await.unwrap(),
        "taken twice"
    );
    assert!(registry.take_session_lost(u2).await.unwrap());
    assert!(!registry.take_session_lost(u3).await.unwrap());

    // One session: only if bound to that node.
    assert!(!registry.lose_session(u3, &b).await.unwrap());
    assert_eq!(registry.session_node(u3).await.unwrap().as_ref(), Some(&a));
    assert!(!registry.take_session_lost(u3).await.unwrap());
    assert!(registry.lose_session(u3, &a).await.unwrap());
    assert!(registry.session_node(u3).await.unwrap().is_none());
    assert!(registry.take_session_lost(u3).await.unwrap());
    let live = registry.live_nodes().await.unwrap();
    assert_eq!(sessions_of(&live, &a), Some(0));

    // Forgetting: a live node stays watched; a dead one goes.
    assert!(
        !registry.forget_node(&a).await.unwrap(),
        "forgot a live node"
    );
    assert!(registry.forget_node(&b).await.unwrap());
    assert!(!registry.forget_node(&b).await.unwrap());
    assert!(!registry.expired_nodes().await.unwrap().contains(&b));
    registry.deregister(&a).await.unwrap();
    assert!(registry.expired_nodes().await.unwrap().contains(&a));
    assert!(registry.forget_node(&a).await.unwrap());
    assert!(!registry.expired_nodes().await.unwrap().contains(&a));
}

/// Concurrent placements fill nodes evenly and never beyond capacity; a bound session
/// keeps its node.
pub async fn registry_places_atomically(registry: Arc<dyn SessionRegistry>, prefix: &str) {
    let nodes: Vec<NodeId> = (1..=3).map(|i| node(&format!("{prefix}-p{i}"))).collect();
    let candidates: Vec<Candidate> = nodes
        .iter()
        .map(|n| Candidate {
            node: n.clone(),
            capacity: 10,
            sessions: 0,
        })
        .collect();
    let mut racers = Vec::new();
    for _ in 0..33 {
        let (registry, candidates) = (registry.clone(), candidates.clone());
        racers.push(tokio::spawn(async move {
            let user = UserUuid::random();
            let placed = registry.place_session(user, &candidates).await.unwrap();
            (user, placed)
        }));
    }
    let mut per_node = std::collections::HashMap::new();
    let mut refused = 0;
    let mut placed_users = Vec::new();
    for r in racers {
        match r.await.unwrap() {
            (user, Some(n)) => {
                *per_node.entry(n.clone()).or_insert(0) += 1;
                placed_users.push((user, n));
            }
            (_, None) => refused += 1,
        }
    }
    assert_eq!(refused, 3, "{per_node:?}");
    assert!(per_node.values().all(|n| *n == 10), "{per_node:?}");
    let (user, bound) = placed_users[0].clone();
    // Bound: stays, even though its node is full.
    assert_eq!(
        registry.place_session(user, &candidates).await.unwrap(),
        Some(bound.clone())
    );
    assert_eq!(registry.session_node(user).await.unwrap(), Some(bound));
    for (user, n) in placed_users {
        registry.unbind_session(user, &n).await.unwrap();
    }
    // Reported sessions count too; ties go to the first candidate.
    let mut reported = candidates.clone();
    reported[0].sessions = 5;
    let user = UserUuid::random();
    assert_eq!(
        registry.place_session(user, &reported).await.unwrap(),
        Some(nodes[1].clone())
    );
    registry.unbind_session(user, &nodes[1]).await.unwrap();
}

/// An undelivered job ends only while still queued: a worker that already started it
/// keeps it.
pub async fn store_undelivered_only_ends_queued_jobs(store: &dyn JobStore) {
    let n = node("undelivered");
    let undelivered = || RecordUpdate::Undelivered {
        status: JobStatus::Failed,
        error: tether_protocol::JobError {
            code: tether_protocol::ErrorCode::Unavailable,
            message: "broker gone".into(),
        },
        at: UnixMillis::now(),
    };
    let queued = sample_job(UserUuid::random(), 1);
    let id = queued.id;
    store
        .insert(&JobRecord::queued(queued, Some(n.clone())))
        .await
        .unwrap();
    assert!(matches!(
        store.update(id, undelivered()).await.unwrap(),
        UpdateOutcome::Applied(r) if r.status == JobStatus::Failed && r.error.is_some()
    ));
    assert!(!store.active_jobs_on(&n).await.unwrap().contains(&id));
    let started = RecordUpdate::Started {
        node: n.clone(),
        at: UnixMillis::now(),
    };
    assert!(matches!(
        store.update(id, started.clone()).await.unwrap(),
        UpdateOutcome::Stale(_)
    ));

    let taken = sample_job(UserUuid::random(), 1);
    let id = taken.id;
    store
        .insert(&JobRecord::queued(taken, Some(n.clone())))
        .await
        .unwrap();
    store.update(id, started).await.unwrap();
    assert!(matches!(
        store.update(id, undelivered()).await.unwrap(),
        UpdateOutcome::Stale(r) if r.status == JobStatus::Running
    ));
}
