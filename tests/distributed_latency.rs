//! Issue 4's closing figure: the latency the RabbitMQ/Redis path adds per request over
//! the embedded path, measured in one run on this machine. A `tether serve` (in-process
//! bus and store) and a `tether api` + `tether worker-host` (RabbitMQ + Redis) run side
//! by side; after 20 warm-up calls each, 200 rounds each send one trivial execute to the
//! embedded service, then one to the distributed one, sequentially, so that both see the
//! same background load. Prints p50/p95 of both, their difference and the median of the
//! per-round differences; asserts only that every call succeeded (tests never assert
//! timings). The binary under test is the debug build.

mod cluster;

use cluster::{
    Cluster, ClusterConfig, TOKEN, execute, listening_url, log_file, new_user, percentiles,
};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const WARM_UP: usize = 20;
const ROUNDS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_added_by_the_distributed_path() {
    let mut cluster = Cluster::new(ClusterConfig::new("lat")).await;
    cluster.start_api();
    let worker = cluster.start_worker(1);

    // Embedded: one `tether serve`, no broker, no Redis.
    let node = cluster.node_id(0);
    let log = cluster.data_dir.join("logs").join("serve.log");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_tether"))
        .arg("serve")
        .env("TETHER_LISTEN", "127.0.0.1:0")
        .env("TETHER_NODE_ID", &node)
        .env("TETHER_DATA_DIR", &cluster.data_dir)
        .env("TETHER_AUTH_TOKEN", TOKEN)
        .env("TETHER_MIN_IDLE", "1")
        .env("TETHER_MAX_TOTAL", "4")
        .env("TETHER_DISK_MIB", "64")
        .env("TETHER_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file(&log)))
        .spawn()
        .expect("start tether serve");
    let embedded = listening_url(&mut serve, &log);
    let distributed = cluster.api_url(0);
    let client = cluster.client.clone();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let ready = client.get(format!("{embedded}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(Instant::now() < deadline, "tether serve never ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster
        .wait_nodes_ready(std::slice::from_ref(&worker), Duration::from_secs(180))
        .await;

    let (e_user, d_user) = (new_user(), new_user());
    let (mut e, mut d, mut diff) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..WARM_UP + ROUNDS {
        let re = execute(&client, &embedded, &e_user, "print(1)").await;
        let rd = execute(&client, &distributed, &d_user, "print(1)").await;
        for r in [&re, &rd] {
            assert_eq!(r.status, 200, "{}", r.body);
            assert_eq!(r.text(), "1\n");
        }
        if i >= WARM_UP {
            e.push(re.took);
            d.push(rd.took);
            diff.push(rd.took.as_secs_f64() - re.took.as_secs_f64());
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    let _ = serve.wait();

    let (e50, e95) = percentiles(&mut e);
    let (d50, d95) = percentiles(&mut d);
    diff.sort_by(f64::total_cmp);
    let paired = diff[diff.len() / 2] * 1000.0;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    eprintln!(
        "latency of {ROUNDS} sequential `print(1)` executes per path, interleaved (debug build; \
         load average {}):\n  \
         embedded    (tether serve):                        p50 {e50:?}  p95 {e95:?}\n  \
         distributed (api + worker-host, RabbitMQ + Redis): p50 {d50:?}  p95 {d95:?}\n  \
         added: p50 {:?}, p95 {:?}; median of per-round differences {paired:.2} ms",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        d50.saturating_sub(e50),
        d95.saturating_sub(e95),
    );
    cluster.shutdown().await;
}
