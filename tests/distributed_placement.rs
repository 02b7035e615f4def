//! Issue 4, acceptance 2 and 3, and ordering across API replicas, with real processes:
//! two `tether api` and three (then four) `tether worker-host` on real RabbitMQ, Redis
//! and Docker.
//!
//! - (2) 30 sessions × 20 stateful steps through both APIs at random: every state check
//!   passes, every session's jobs ran on one node, sessions use all three nodes.
//! - (3) a fourth worker-host joins after step 10: sessions started afterwards land on
//!   it; the 30 running sessions do not move.
//! - Ordering: 40 jobs of one session sent at once through both APIs run in the order of
//!   the seq each was given.

mod cluster;

use cluster::{Cluster, ClusterConfig, Reply, execute, new_user, pick};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

const SESSIONS: usize = 30;
const STEPS: usize = 20;
const JOINER_SESSIONS: usize = 6;

fn step_code(k: usize) -> String {
    if k == 1 {
        "n = 1\nprint(n)".to_owned()
    } else {
        "n += 1\nprint(n)".to_owned()
    }
}

/// One session's client: steps `from..=to` through a random API each time; returns the
/// node of each step. Panics on the first failed state check.
async fn run_steps(
    client: reqwest::Client,
    apis: Vec<String>,
    user: String,
    from: usize,
    to: usize,
) -> Vec<String> {
    let mut nodes = Vec::new();
    for k in from..=to {
        let api = &apis[pick(apis.len())];
        let reply: Reply = execute(&client, api, &user, &step_code(k)).await;
        assert_eq!(reply.status, 200, "session {user} step {k}: {}", reply.body);
        assert_eq!(
            reply.text(),
            format!("{k}\n"),
            "session {user} step {k}: state check failed: {}",
            reply.body
        );
        assert!(!reply.restarted(), "session {user} step {k}: restarted");
        nodes.push(reply.node());
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_stick_spread_and_a_new_node_takes_new_sessions() {
    let mut cluster = Cluster::new(ClusterConfig::new("place")).await;
    cluster.start_api();
    cluster.start_api();
    let first: Vec<String> = (1..=3).map(|n| cluster.start_worker(n)).collect();
    cluster
        .wait_nodes_ready(&first, Duration::from_secs(180))
        .await;
    let apis = vec![cluster.api_url(0), cluster.api_url(1)];
    let started = Instant::now();

    // Steps 1–10 of 30 sessions, then they wait while a fourth node joins.
    let (go_on, gate) = watch::channel(false);
    let halfway = Arc::new(AtomicUsize::new(0));
    let mut sessions = Vec::new();
    for _ in 0..SESSIONS {
        let (client, apis, user) = (cluster.client.clone(), apis.clone(), new_user());
        let mut gate = gate.clone();
        let halfway = halfway.clone();
        sessions.push(tokio::spawn(async move {
            let mut nodes = run_steps(client.clone(), apis.clone(), user.clone(), 1, 10).await;
            halfway.fetch_add(1, Ordering::SeqCst);
            let _ = gate.wait_for(|open| *open).await;
            nodes.extend(run_steps(client, apis, user.clone(), 11, STEPS).await);
            (user, nodes)
        }));
    }
    // Wait until every session finished step 10 (they block on the gate).
    let deadline = Instant::now() + Duration::from_secs(300);
    while halfway.load(Ordering::SeqCst) < SESSIONS {
        assert!(Instant::now() < deadline, "sessions stuck before step 10");
        if let Some(i) = sessions.iter().position(|s| s.is_finished()) {
            // Only a failed state check ends a session task before the gate opens.
            sessions
                .swap_remove(i)
                .await
                .expect("session failed before step 10");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let n4 = cluster.start_worker(4);
    cluster
        .wait_nodes_ready(std::slice::from_ref(&n4), Duration::from_secs(180))
        .await;
    let _ = go_on.send(true);

    // (3) New sessions, while the old ones run steps 11–20.
    let mut joiners = Vec::new();
    for _ in 0..JOINER_SESSIONS {
        let (client, apis, user) = (cluster.client.clone(), apis.clone(), new_user());
        joiners.push(tokio::spawn(async move {
            (user.clone(), run_steps(client, apis, user, 1, 10).await)
        }));
    }

    let mut by_node: BTreeMap<String, usize> = BTreeMap::new();
    for s in sessions {
        let (user, nodes) = s.await.expect("session task");
        assert_eq!(nodes.len(), STEPS);
        let distinct: BTreeSet<&String> = nodes.iter().collect();
        assert_eq!(
            distinct.len(),
            1,
            "(2) session {user} ran on several nodes: {nodes:?}"
        );
        assert_ne!(nodes[0], n4, "(3) session {user} moved to the new node");
        *by_node.entry(nodes[0].clone()).or_default() += 1;
    }
    let spread: BTreeSet<&String> = by_node.keys().collect();
    let expected: BTreeSet<&String> = first.iter().collect();
    assert_eq!(spread, expected, "(2) sessions per node: {by_node:?}");
    // Placement is atomic across replicas, so a burst of new sessions spreads evenly.
    assert!(
        by_node.values().all(|n| *n >= SESSIONS / 3 - 3),
        "(2) uneven spread: {by_node:?}"
    );
    for j in joiners {
        let (user, nodes) = j.await.expect("joiner task");
        assert!(
            nodes.iter().all(|n| *n == n4),
            "(3) new session {user} did not land on the new node {n4}: {nodes:?}"
        );
    }
    eprintln!(
        "(2)+(3): {SESSIONS} sessions x {STEPS} steps + {JOINER_SESSIONS} x 10 on the new node \
         in {:?}; sessions per node before the join: {by_node:?}",
        started.elapsed()
    );

    // Ordering: 40 jobs of one session at once through both APIs.
    let user = new_user();
    let init = cluster.execute(0, &user, "L = []").await;
    assert_eq!(init.status, 200, "{}", init.body);
    let mut sent = Vec::new();
    for i in 0..40 {
        let (client, api, user) = (cluster.client.clone(), apis[i % 2].clone(), user.clone());
        sent.push(tokio::spawn(async move {
            let r = execute(&client, &api, &user, &format!("L.append({i})")).await;
            assert_eq!(r.status, 200, "{}", r.body);
            (r.body["seq"].as_u64().expect("seq"), i)
        }));
    }
    let mut seq_of = BTreeMap::new();
    for s in sent {
        let (seq, i) = s.await.expect("submit");
        seq_of.insert(i, seq);
    }
    let read = cluster.execute(1, &user, "print(L)").await;
    assert_eq!(read.status, 200, "{}", read.body);
    let ran: Vec<usize> = read
        .text()
        .trim()
        .trim_matches(['[', ']'])
        .split(", ")
        .map(|s| s.parse().expect("index"))
        .collect();
    assert_eq!(ran.len(), 40, "{ran:?}");
    let seqs: Vec<u64> = ran.iter().map(|i| seq_of[i]).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "jobs ran out of seq order: {seqs:?}"
    );
    eprintln!("ordering: 40 concurrent jobs through two APIs ran in seq order");

    cluster.shutdown().await;
}
