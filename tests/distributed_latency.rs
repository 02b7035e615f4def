//! Issue 4's closing figure: the latency the RabbitMQ/Redis path adds per request over
//! the embedded path, measured in one run on this machine. 200 sequential trivial
//! executes (after 20 warm-up ones) of one session through `tether serve` (in-process bus
//! and store), then through `tether api` + `tether worker-host` (RabbitMQ + Redis).
//! Prints p50/p95 of both and the difference; asserts only that every call succeeded
//! (tests never assert timings).

mod cluster;

use cluster::{
    Cluster, ClusterConfig, TOKEN, execute, listening_url, log_file, new_user, percentiles,
};
use std::process::{Command, Stdio};
use std::time::Duration;

const WARM_UP: usize = 20;
const SAMPLES: usize = 200;

async fn measure(client: &reqwest::Client, base: &str) -> Vec<Duration> {
    let user = new_user();
    let mut samples = Vec::with_capacity(SAMPLES);
    for i in 0..WARM_UP + SAMPLES {
        let r = execute(client, base, &user, "print(1)").await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.text(), "1\n");
        if i >= WARM_UP {
            samples.push(r.took);
        }
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_added_by_the_distributed_path() {
    let mut cluster = Cluster::new(ClusterConfig::new("lat")).await;

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
    let embedded_url = listening_url(&mut serve, &log);
    let client = cluster.client.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let ready = client.get(format!("{embedded_url}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tether serve never ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut embedded = measure(&client, &embedded_url).await;
    let _ = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status();
    let _ = serve.wait();

    // Distributed: one api and one worker-host over RabbitMQ and Redis.
    cluster.start_api();
    let worker = cluster.start_worker(1);
    cluster
        .wait_nodes_ready(std::slice::from_ref(&worker), Duration::from_secs(180))
        .await;
    let mut distributed = measure(&client, &cluster.api_url(0)).await;

    let (e50, e95) = percentiles(&mut embedded);
    let (d50, d95) = percentiles(&mut distributed);
    eprintln!(
        "latency of {SAMPLES} sequential `print(1)` executes (one session, after {WARM_UP} warm-up):\n  \
         embedded (tether serve):              p50 {e50:?}  p95 {e95:?}\n  \
         distributed (api + worker-host, RabbitMQ + Redis): p50 {d50:?}  p95 {d95:?}\n  \
         added by the distributed path:        p50 {:?}  p95 {:?}",
        d50.saturating_sub(e50),
        d95.saturating_sub(e95),
    );
    cluster.shutdown().await;
}
