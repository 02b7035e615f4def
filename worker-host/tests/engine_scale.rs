//! Acceptance 8: many sessions in parallel, each stateful and verified; the pool never
//! exceeds its cap and refuses more with a typed error.

mod common;

use common::{T, TestEngine, config};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tether_protocol::UserUuid;
use tether_worker_host::EngineError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sessions_fifty_steps_and_a_hard_cap() {
    let mut cfg = config("scale");
    cfg.min_idle = 4;
    cfg.max_total = 20;
    cfg.limits.memory_mib = 256;
    let max_total = cfg.max_total;
    let t = TestEngine::start(cfg).await;
    let peak = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let engine = t.engine.clone();
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(engine.status().pool.total, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut sessions = Vec::new();
    for i in 0..20u64 {
        let engine = t.engine.clone();
        sessions.push(tokio::spawn(async move {
            let user = UserUuid::random();
            engine
                .execute(user, &format!("acc = {i}"), T * 4)
                .await
                .expect("first step");
            let mut expected = i;
            for step in 1..50u64 {
                expected += step;
                let r = engine
                    .execute(user, &format!("acc += {step}; print(acc)"), T)
                    .await
                    .expect("step")
                    .result;
                assert_eq!(
                    r.stdout.trim(),
                    expected.to_string(),
                    "session {i} step {step}"
                );
            }
            user
        }));
    }
    let mut users = Vec::new();
    for s in sessions {
        users.push(s.await.expect("session task"));
    }
    // All 20 slots are bound to sessions: a 21st session is refused, typed.
    let extra = t.engine.execute(UserUuid::random(), "1", T).await;
    assert!(
        matches!(extra, Err(EngineError::NoCapacity(20))),
        "{extra:?}"
    );
    watcher.abort();
    assert!(
        peak.load(Ordering::SeqCst) <= max_total,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    // Releasing one frees a slot for a newcomer.
    assert!(t.engine.release(users[0]).await);
    let r = t
        .engine
        .execute(UserUuid::random(), "print('in')", T)
        .await
        .unwrap();
    assert_eq!(r.result.stdout, "in\n");
    t.stop().await;
}
