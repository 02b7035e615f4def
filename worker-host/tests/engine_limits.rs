//! Acceptance 4–7: the timeout ladder, the memory limit, the disk quota and the hardened
//! container profile, each checked from inside a real sandbox.

mod common;

use common::{T, TestEngine, config};
use std::time::{Duration, Instant};
use tether_protocol::{Outcome, UserUuid};
use tether_worker_host::Cause;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_interrupts_and_session_survives() {
    let t = TestEngine::start(config("timeout")).await;
    let u = UserUuid::random();
    t.engine.execute(u, "kept = 'yes'", T).await.unwrap();
    let start = Instant::now();
    let r = t
        .engine
        .execute(u, "while True: pass", Duration::from_secs(2))
        .await
        .unwrap();
    let took = start.elapsed();
    assert_eq!(r.cause, Cause::Timeout);
    assert_eq!(
        r.result.outcome,
        Outcome::TimeoutInterrupted,
        "{:?}",
        r.result
    );
    assert!(r.result.state_preserved);
    assert!(
        r.result
            .message
            .as_deref()
            .unwrap_or("")
            .contains("interrupted")
    );
    assert!(took < Duration::from_secs(4), "took {took:?}");
    let r = t.engine.execute(u, "print(kept)", T).await.unwrap().result;
    assert_eq!(r.stdout, "yes\n");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uninterruptible_code_restarts_the_kernel() {
    let t = TestEngine::start(config("restart")).await;
    let u = UserUuid::random();
    t.engine.execute(u, "lost = 1", T).await.unwrap();
    // SIGINT is ignored, so the interrupt cannot stop it: the ladder must restart.
    let code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: time.sleep(0.05)";
    let r = t
        .engine
        .execute(u, code, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(r.result.outcome, Outcome::KernelRestarted, "{:?}", r.result);
    assert!(!r.result.state_preserved);
    let r = t
        .engine
        .execute(u, "print('alive'); print('lost' in globals())", T)
        .await
        .unwrap()
        .result;
    assert_eq!(r.stdout, "alive\nFalse\n");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_kills_only_that_kernel() {
    let mut cfg = config("oom");
    cfg.limits.memory_mib = 256;
    let t = TestEngine::start(cfg).await;
    let (u, other) = (UserUuid::random(), UserUuid::random());
    t.engine.execute(other, "survivor = 7", T).await.unwrap();
    let r = t
        .engine
        .execute(u, "blob = b'x' * (1024 * 1024 * 1024)", T)
        .await
        .unwrap()
        .result;
    assert!(
        matches!(r.outcome, Outcome::OomKilled | Outcome::KernelRestarted),
        "{r:?}"
    );
    assert!(!r.state_preserved);
    assert!(
        r.message.as_deref().unwrap_or("").contains("memory"),
        "{:?}",
        r.message
    );
    let r = t
        .engine
        .execute(u, "print('usable')", T)
        .await
        .unwrap()
        .result;
    assert_eq!(r.stdout, "usable\n");
    let r = t
        .engine
        .execute(other, "print(survivor)", T)
        .await
        .unwrap()
        .result;
    assert_eq!(r.stdout, "7\n");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_quota_stops_writes_inside_the_sandbox() {
    let cfg = config("quota");
    let quota = cfg.limits.disk_mib;
    let host_free_before = free_bytes("/");
    let t = TestEngine::start(cfg).await;
    let u = UserUuid::random();
    let code = format!(
        "import os\ntry:\n    with open('/sandbox/big', 'wb') as f:\n        for _ in range({}):\n            f.write(b'x' * 1024 * 1024)\n    print('wrote all')\nexcept OSError as e:\n    print('error:', e.strerror)",
        quota * 2
    );
    let r = t.engine.execute(u, &code, T).await.unwrap().result;
    assert!(r.stdout.contains("No space left"), "{r:?}");
    let host_free_after = free_bytes("/");
    assert!(
        host_free_before.saturating_sub(host_free_after) < (quota + 64) * 1024 * 1024,
        "host disk lost more than the quota"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_is_hardened() {
    let t = TestEngine::start(config("hardened")).await;
    let u = UserUuid::random();
    let probe = r#"
import socket, os, getpass, shutil, subprocess
out = []
try:
    socket.getaddrinfo("deb.debian.org", 80); out.append("dns:ok")
except Exception as e:
    out.append("dns:fail")
try:
    s = socket.create_connection(("1.1.1.1", 80), timeout=2); out.append("tcp:ok")
except Exception as e:
    out.append("tcp:fail")
out.append("user:" + getpass.getuser())
out.append("uid:" + str(os.getuid()))
try:
    open("/etc/tether-probe", "w"); out.append("etc:writable")
except OSError:
    out.append("etc:readonly")
try:
    open("/etc/shadow").read(); out.append("shadow:readable")
except OSError:
    out.append("shadow:denied")
out.append("sudo:" + ("present" if shutil.which("sudo") else "absent"))
out.append("whoami:" + subprocess.run(["whoami"], capture_output=True, text=True).stdout.strip())
out.append("cwd:" + os.getcwd())
print(" ".join(out))
"#;
    let r = t.engine.execute(u, probe, T).await.unwrap().result;
    let line = r.stdout.trim();
    for expected in [
        "dns:fail",
        "tcp:fail",
        "user:sandbox",
        "uid:1000",
        "etc:readonly",
        "shadow:denied",
        "sudo:absent",
        "whoami:sandbox",
        "cwd:/sandbox",
    ] {
        assert!(
            line.split(' ').any(|w| w == expected),
            "expected {expected} in {line:?} ({r:?})"
        );
    }
    t.stop().await;
}

fn free_bytes(path: &str) -> u64 {
    let out = std::process::Command::new("df")
        .args(["-B1", "--output=avail", path])
        .output()
        .expect("df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_killed_while_idle_is_revived_before_the_next_cell() {
    let mut cfg = config("idle-death");
    cfg.idle_check_after = Duration::ZERO;
    let t = TestEngine::start(cfg).await;
    let u = UserUuid::random();
    let r = t
        .engine
        .execute(u, "import os\nprint(os.getpid())\nlost = 1", T)
        .await
        .unwrap();
    let pid = r.result.stdout.trim().to_owned();
    // Kill the kernel process from outside the session (as an OOM or crash would).
    let containers = std::process::Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=org.tether.node={}", t.engine.config().node_id),
        ])
        .output()
        .unwrap();
    for id in String::from_utf8_lossy(&containers.stdout).lines() {
        let _ = std::process::Command::new("docker")
            .args(["exec", id, "kill", "-9", &pid])
            .output();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = t
        .engine
        .execute(u, "print('ran'); print('lost' in globals())", T)
        .await
        .unwrap()
        .result;
    assert_eq!(r.stdout, "ran\nFalse\n", "{r:?}");
    assert!(!r.state_preserved);
    assert!(r.session_restarted);
    t.stop().await;
}

/// A kernel that misses heartbeats while its container still runs (here: frozen with
/// `docker pause`, as a starved kernel on an overloaded host looks) is waited for, not
/// restarted: the cell finishes and the session keeps its state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_kernel_whose_container_runs_is_waited_for() {
    let t = TestEngine::start(config("silent")).await;
    let u = UserUuid::random();
    let r = t.engine.execute(u, "x = 41", T).await.unwrap().result;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    let ids = std::process::Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=org.tether.node={}", t.engine.config().node_id),
        ])
        .output()
        .unwrap();
    let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    let engine = t.engine.clone();
    let cell = tokio::spawn(async move {
        engine
            .execute(u, "import time\ntime.sleep(1)\nx += 1\nprint(x)", T)
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let docker = |verb: &str| {
        for id in &ids {
            let _ = std::process::Command::new("docker")
                .args([verb, id])
                .output();
        }
    };
    // Frozen for longer than several heartbeat probes (1 s apart, 1.5 s each).
    docker("pause");
    tokio::time::sleep(Duration::from_secs(5)).await;
    docker("unpause");
    let r = cell.await.unwrap().unwrap().result;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(r.stdout, "42\n", "{r:?}");
    assert!(r.state_preserved && !r.session_restarted, "{r:?}");
    t.stop().await;
}
