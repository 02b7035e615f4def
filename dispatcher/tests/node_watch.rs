//! The dead-node watch and cross-replica ordering, against the in-memory backends.
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on the first surprise"
)]

use async_trait::async_trait;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tether_dispatcher::{Dispatcher, NodeWatchConfig};
use tether_protocol::{
    ErrorCode, ExecuteSpec, Job, JobEventKind, JobKind, JobStatus, NodeId, UserUuid,
};
use tether_transport::memory::{MemoryBus, MemoryRegistry, MemoryStore};
use tether_transport::{BusError, Delivery, JobBus, JobStore, NodeInfo, SessionRegistry};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn node(id: &str) -> NodeId {
    NodeId::try_from(id).unwrap()
}

fn execute() -> JobKind {
    JobKind::Execute(ExecuteSpec {
        code: "1".into(),
        timeout_ms: 1000,
    })
}

async fn beat(registry: &MemoryRegistry, id: &str, free: u32, ttl: Duration) {
    let info = NodeInfo {
        id: node(id),
        capacity: 10,
        sessions: 10 - free,
        draining: false,
        detail: json!({ "ready": true }),
    };
    registry.heartbeat(info, ttl).await.unwrap();
}

fn watch_config(ttl: Duration) -> NodeWatchConfig {
    let mut config = NodeWatchConfig::new(ttl);
    config.sweep_every = Duration::from_millis(100);
    config
}

#[tokio::test]
async fn a_dead_nodes_jobs_end_session_lost_and_its_sessions_are_marked_lost() {
    let bus = Arc::new(MemoryBus::new());
    let store = Arc::new(MemoryStore::default());
    let registry = Arc::new(MemoryRegistry::new());
    let dispatcher = Dispatcher::new(bus.clone(), store.clone(), registry.clone());
    let ttl = Duration::from_millis(300);
    // `a` has the most room, so the session lands there; nobody works its queue.
    beat(&registry, "a", 9, ttl).await;
    beat(&registry, "b", 5, Duration::from_secs(60)).await;
    let _held = bus.consume(&node("a"), 16).await.unwrap();
    let user = UserUuid::random();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = dispatcher
            .submit(user, execute(), None, None)
            .await
            .unwrap();
        assert_eq!(r.node_id, Some(node("a")));
        ids.push(r.job.id);
    }
    let died = Instant::now();

    // Two watchers at once, as with several API replicas.
    let stop = CancellationToken::new();
    for _ in 0..2 {
        tokio::spawn(
            dispatcher
                .clone()
                .watch_nodes(watch_config(ttl), stop.clone()),
        );
    }
    for id in &ids {
        let r = store
            .wait_terminal(*id, Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.status, JobStatus::SessionLost);
        let error = r.error.unwrap();
        assert_eq!(error.code, ErrorCode::SessionLost);
        assert!(error.message.contains("rebuild"), "{}", error.message);
    }
    let took = died.elapsed();
    // The watchers start with the node; each first waits one TTL of store reachability.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in &ids {
        let events = store
            .events_after(*id, 0, Duration::from_millis(10))
            .await
            .unwrap();
        let ends = events
            .iter()
            .filter(|e| {
                e.kind
                    == JobEventKind::Status {
                        status: JobStatus::SessionLost,
                    }
            })
            .count();
        assert_eq!(ends, 1, "{events:?}");
    }
    stop.cancel();

    // The session is unbound and marked lost; its next job goes to the live node.
    assert!(registry.session_node(user).await.unwrap().is_none());
    let _b = bus.consume(&node("b"), 16).await.unwrap();
    let r = dispatcher
        .submit(user, execute(), None, None)
        .await
        .unwrap();
    assert_eq!(r.node_id, Some(node("b")));
    assert!(registry.take_session_lost(user).await.unwrap());
    assert!(store.active_jobs_on(&node("a")).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_binding_to_a_dead_node_found_at_submit_marks_the_session_lost() {
    let bus = Arc::new(MemoryBus::new());
    let store = Arc::new(MemoryStore::default());
    let registry = Arc::new(MemoryRegistry::new());
    let dispatcher = Dispatcher::new(bus.clone(), store, registry.clone());
    beat(&registry, "a", 9, Duration::from_millis(100)).await;
    beat(&registry, "b", 5, Duration::from_secs(60)).await;
    let _a = bus.consume(&node("a"), 16).await.unwrap();
    let _b = bus.consume(&node("b"), 16).await.unwrap();
    let user = UserUuid::random();
    let r = dispatcher
        .submit(user, execute(), None, None)
        .await
        .unwrap();
    assert_eq!(r.node_id, Some(node("a")));
    tokio::time::sleep(Duration::from_millis(200)).await;
    // No watcher ran: submit itself notices the dead binding.
    let r = dispatcher
        .submit(user, execute(), None, None)
        .await
        .unwrap();
    assert_eq!(r.node_id, Some(node("b")));
    assert!(registry.take_session_lost(user).await.unwrap());
}

/// A bus that takes a different, seq-dependent time to publish each job, as two API
/// replicas on different connections do.
struct SlowBus(MemoryBus);

#[async_trait]
impl JobBus for SlowBus {
    async fn publish(&self, node: &NodeId, job: &Job) -> Result<(), BusError> {
        tokio::time::sleep(Duration::from_millis(job.seq * 7 % 13)).await;
        self.0.publish(node, job).await
    }

    async fn consume(
        &self,
        node: &NodeId,
        prefetch: u16,
    ) -> Result<mpsc::Receiver<Delivery>, BusError> {
        self.0.consume(node, prefetch).await
    }

    async fn delete_queue(&self, node: &NodeId) -> Result<(), BusError> {
        self.0.delete_queue(node).await
    }
}

#[tokio::test]
async fn concurrent_submissions_through_two_dispatchers_reach_the_queue_in_seq_order() {
    let bus = Arc::new(SlowBus(MemoryBus::new()));
    let store = Arc::new(MemoryStore::default());
    let registry = Arc::new(MemoryRegistry::new());
    let replicas = [
        Dispatcher::new(bus.clone(), store.clone(), registry.clone()),
        Dispatcher::new(bus.clone(), store.clone(), registry.clone()),
    ];
    beat(&registry, "a", 9, Duration::from_secs(60)).await;
    let mut rx = bus.consume(&node("a"), 64).await.unwrap();
    let user = UserUuid::random();
    let mut submits = Vec::new();
    for i in 0..20 {
        let d = replicas[i % 2].clone();
        submits.push(tokio::spawn(async move {
            d.submit(user, execute(), None, None).await.unwrap()
        }));
    }
    for s in submits {
        s.await.unwrap();
    }
    let mut seqs = Vec::new();
    for _ in 0..20 {
        let d = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        seqs.push(d.job.as_ref().unwrap().seq);
        d.settle.ack().await;
    }
    assert_eq!(seqs, (1..=20).collect::<Vec<u64>>());
}
