//! `Dispatcher::submit` against the in-memory bus, store and registry, with a fake
//! worker task standing in for a worker-host.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on the first surprise"
)]

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tether_dispatcher::{DispatchError, Dispatcher};
use tether_protocol::{
    ErrorCode, ExecuteSpec, ExecutionResult, JobKind, JobResult, JobStatus, NodeId, Outcome,
    UnixMillis, UserUuid,
};
use tether_transport::memory::{MemoryBus, MemoryRegistry, MemoryStore};
use tether_transport::{JobBus, JobStore, NodeInfo, RecordUpdate, SessionRegistry};

struct Harness {
    bus: Arc<MemoryBus>,
    store: Arc<MemoryStore>,
    registry: Arc<MemoryRegistry>,
    dispatcher: Dispatcher,
}

fn harness() -> Harness {
    let bus = Arc::new(MemoryBus::new());
    let store = Arc::new(MemoryStore::default());
    let registry = Arc::new(MemoryRegistry::new());
    let dispatcher = Dispatcher::new(bus.clone(), store.clone(), registry.clone());
    Harness {
        bus,
        store,
        registry,
        dispatcher,
    }
}

fn node(id: &str) -> NodeId {
    NodeId::try_from(id).unwrap()
}

impl Harness {
    async fn heartbeat(&self, id: &str, capacity: u32, sessions: u32, ready: bool) {
        let info = NodeInfo {
            id: node(id),
            capacity,
            sessions,
            draining: false,
            detail: json!({ "ready": ready }),
        };
        self.registry
            .heartbeat(info, Duration::from_secs(60))
            .await
            .unwrap();
    }

    /// A node that answers every execute with `stdout` = its own id.
    async fn fake_worker(&self, id: &str) {
        let mut rx = self.bus.consume(&node(id), 8).await.unwrap();
        let store = self.store.clone();
        let me = node(id);
        tokio::spawn(async move {
            while let Some(delivery) = rx.recv().await {
                let job = delivery.job.as_ref().unwrap().clone();
                let started = RecordUpdate::Started {
                    node: me.clone(),
                    at: UnixMillis::now(),
                };
                store.update(job.id, started).await.unwrap();
                let result = match job.kind {
                    JobKind::Execute(_) => JobResult::Execute(ExecutionResult {
                        outcome: Outcome::Ok,
                        state_preserved: true,
                        stdout: me.to_string(),
                        stderr: String::new(),
                        outputs: vec![],
                        error: None,
                        execution_count: Some(1),
                        duration_ms: 1,
                        truncated: false,
                        message: None,
                        session_restarted: false,
                        files: vec![],
                    }),
                    JobKind::Release => JobResult::Release { released: true },
                    JobKind::FilesImport(_) => JobResult::FilesImport { results: vec![] },
                    JobKind::FilesExport(_) => JobResult::FilesExport { results: vec![] },
                    JobKind::FilesDelete(_) => JobResult::FilesDelete { results: vec![] },
                };
                let finished = RecordUpdate::Finished {
                    status: JobStatus::Succeeded,
                    result: Some(result),
                    error: None,
                    at: UnixMillis::now(),
                };
                store.update(job.id, finished).await.unwrap();
                delivery.settle.ack().await;
            }
        });
    }
}

fn execute() -> JobKind {
    JobKind::Execute(ExecuteSpec {
        code: "1".into(),
        timeout_ms: 1000,
    })
}

async fn ran_on(h: &Harness, user: UserUuid) -> String {
    let record = h
        .dispatcher
        .submit(user, execute(), None, None)
        .await
        .unwrap();
    assert_eq!(record.status, JobStatus::Queued);
    let done = h
        .store
        .wait_terminal(record.job.id, Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    match done.result {
        Some(JobResult::Execute(r)) => r.stdout,
        other => panic!("unexpected result {other:?}"),
    }
}

#[tokio::test]
async fn new_session_goes_to_most_free_node_and_stays_there() {
    let h = harness();
    h.heartbeat("a", 4, 3, true).await;
    h.heartbeat("b", 4, 0, true).await;
    h.fake_worker("a").await;
    h.fake_worker("b").await;
    let user = UserUuid::random();
    assert_eq!(ran_on(&h, user).await, "b");

    // b fills up; the session still goes to b, a new one to a.
    h.heartbeat("b", 4, 4, true).await;
    assert_eq!(ran_on(&h, user).await, "b");
    assert_eq!(ran_on(&h, UserUuid::random()).await, "a");
}

#[tokio::test]
async fn seq_counts_up_per_session() {
    let h = harness();
    h.heartbeat("a", 4, 0, true).await;
    h.fake_worker("a").await;
    let user = UserUuid::random();
    for want in 1..=3 {
        let r = h
            .dispatcher
            .submit(user, execute(), None, None)
            .await
            .unwrap();
        assert_eq!(r.job.seq, want);
        assert_eq!(r.node_id, Some(node("a")));
    }
    // A refused submission takes no place in the log.
    let other = UserUuid::random();
    h.heartbeat("a", 4, 4, true).await;
    assert!(
        h.dispatcher
            .submit(other, execute(), None, None)
            .await
            .is_err()
    );
    h.heartbeat("a", 4, 0, true).await;
    let r = h
        .dispatcher
        .submit(other, execute(), None, None)
        .await
        .unwrap();
    assert_eq!(r.job.seq, 1);
}

#[tokio::test]
async fn concurrent_first_jobs_of_a_session_bind_one_node() {
    let h = harness();
    h.heartbeat("a", 4, 0, true).await;
    h.heartbeat("b", 4, 0, true).await;
    h.fake_worker("a").await;
    h.fake_worker("b").await;
    let user = UserUuid::random();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let d = h.dispatcher.clone();
        tasks.push(tokio::spawn(async move {
            d.submit(user, execute(), None, None).await.unwrap().node_id
        }));
    }
    let mut nodes = Vec::new();
    for t in tasks {
        nodes.push(t.await.unwrap());
    }
    assert!(nodes.windows(2).all(|w| w[0] == w[1]), "split: {nodes:?}");
}

#[tokio::test]
async fn distinguishes_starting_from_full() {
    let h = harness();
    let user = UserUuid::random();
    let err = h
        .dispatcher
        .submit(user, execute(), None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, DispatchError::NotReady), "{err:?}");
    assert_eq!(err.code(), ErrorCode::Unavailable);
    assert!(err.is_retryable() && err.retry_after().is_some());

    h.heartbeat("a", 2, 0, false).await;
    let err = h
        .dispatcher
        .submit(user, execute(), None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, DispatchError::NotReady), "{err:?}");

    h.heartbeat("a", 2, 2, true).await;
    let err = h
        .dispatcher
        .submit(user, execute(), None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, DispatchError::NoCapacity), "{err:?}");
    assert_eq!(err.code(), ErrorCode::NoCapacity);

    h.registry.set_draining(&node("a"), true).await.unwrap();
    h.heartbeat("a", 2, 0, true).await;
    let err = h
        .dispatcher
        .submit(user, execute(), None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, DispatchError::NoCapacity), "{err:?}");
}

#[tokio::test]
async fn release_of_unknown_session_completes_without_the_bus() {
    let h = harness();
    // No node and no consumer at all: any bus hop would fail.
    let record = h
        .dispatcher
        .submit(UserUuid::random(), JobKind::Release, None, None)
        .await
        .unwrap();
    assert_eq!(record.status, JobStatus::Succeeded);
    assert_eq!(record.result, Some(JobResult::Release { released: false }));
    let stored = h.store.get(record.job.id).await.unwrap().unwrap();
    assert_eq!(stored, record);
}

#[tokio::test]
async fn release_of_a_bound_session_goes_to_its_node() {
    let h = harness();
    h.heartbeat("a", 4, 0, true).await;
    h.fake_worker("a").await;
    let user = UserUuid::random();
    ran_on(&h, user).await;
    let record = h
        .dispatcher
        .submit(user, JobKind::Release, None, None)
        .await
        .unwrap();
    assert_eq!(record.status, JobStatus::Queued);
    let done = h
        .store
        .wait_terminal(record.job.id, Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.result, Some(JobResult::Release { released: true }));
}

#[tokio::test]
async fn session_on_a_dead_node_is_placed_anew() {
    let h = harness();
    h.heartbeat("b", 4, 0, true).await;
    h.fake_worker("b").await;
    let user = UserUuid::random();
    // Bound to a node that never heartbeats (dead).
    h.registry.bind_session(user, &node("dead")).await.unwrap();
    assert_eq!(ran_on(&h, user).await, "b");
    assert_eq!(
        h.registry.session_node(user).await.unwrap(),
        Some(node("b"))
    );
}

#[tokio::test]
async fn unroutable_node_is_replaced_once() {
    let h = harness();
    // "a" heartbeats with the most room but has no queue (its worker-host went away).
    h.heartbeat("a", 8, 0, true).await;
    h.heartbeat("b", 4, 0, true).await;
    h.fake_worker("b").await;
    let user = UserUuid::random();
    assert_eq!(ran_on(&h, user).await, "b");
    assert_eq!(
        h.registry.session_node(user).await.unwrap(),
        Some(node("b"))
    );
}

#[tokio::test]
async fn unroutable_twice_fails_the_record_with_session_lost() {
    let h = harness();
    h.heartbeat("a", 8, 0, true).await;
    let user = UserUuid::random();
    let err = h
        .dispatcher
        .submit(user, execute(), None, None)
        .await
        .unwrap_err();
    let DispatchError::SessionLost { job, .. } = err else {
        panic!("unexpected {err:?}");
    };
    let record = h.store.get(job).await.unwrap().unwrap();
    assert_eq!(record.status, JobStatus::SessionLost);
    assert_eq!(record.error.unwrap().code, ErrorCode::SessionLost);
    assert_eq!(h.registry.session_node(user).await.unwrap(), None);
}

#[tokio::test]
async fn release_on_a_vanished_node_succeeds_without_re_placing() {
    let h = harness();
    h.heartbeat("a", 8, 0, true).await;
    h.heartbeat("b", 8, 0, true).await;
    h.fake_worker("b").await;
    let user = UserUuid::random();
    // Bound to "a", which heartbeats but has no queue any more.
    h.registry.bind_session(user, &node("a")).await.unwrap();
    let record = h
        .dispatcher
        .submit(user, JobKind::Release, None, None)
        .await
        .unwrap();
    assert_eq!(record.status, JobStatus::Succeeded);
    assert_eq!(record.result, Some(JobResult::Release { released: false }));
    assert_eq!(h.registry.session_node(user).await.unwrap(), None);
}
