//! Issue 2, acceptance 9: SIGKILL the process while sessions run; a restarted node
//! removes every container, mount and loop device the old run left. Also: a graceful
//! SIGTERM leaves nothing behind. Uses the real `tether serve` binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "crash-test-token-123";

struct Node {
    child: Child,
    url: String,
}

fn start(node_id: &str, data_dir: &Path) -> Node {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
        .arg("serve")
        .env("TETHER_LISTEN", "127.0.0.1:0")
        .env("TETHER_NODE_ID", node_id)
        .env("TETHER_DATA_DIR", data_dir)
        .env("TETHER_AUTH_TOKEN", TOKEN)
        .env("TETHER_MIN_IDLE", "2")
        .env("TETHER_MAX_TOTAL", "6")
        .env("TETHER_DISK_MIB", "64")
        .env("TETHER_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start tether serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("tether exited early").expect("read");
        if let Some(rest) = line.strip_prefix("Tether is listening on ") {
            break rest.trim().to_owned();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Node { child, url }
}

async fn wait_ready(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{url}/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("node never became ready");
}

async fn execute(client: &reqwest::Client, url: &str, user: &str, code: &str) -> serde_json::Value {
    let r = client
        .post(format!("{url}/api/v1/execute?user_uuid={user}"))
        .header("X-Auth-Token", TOKEN)
        .json(&serde_json::json!({ "code": code }))
        .send()
        .await
        .expect("execute");
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.expect("json")
}

fn containers(node_id: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=org.tether.node={node_id}"),
        ])
        .output()
        .expect("docker ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect()
}

fn loops_under(dir: &Path) -> Vec<String> {
    let out = Command::new("losetup")
        .args(["-l", "-n", "-O", "NAME,BACK-FILE"])
        .output()
        .expect("losetup");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|b| Path::new(b).starts_with(dir))
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_leftovers_are_removed_on_restart() {
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let node_id = format!("t-crash-{suffix}");
    let data_dir = PathBuf::from(format!("/tmp/tether-test/crash-{suffix}"));
    let client = reqwest::Client::new();

    let mut first = start(&node_id, &data_dir);
    wait_ready(&client, &first.url).await;
    for _ in 0..3 {
        let user = uuid::Uuid::new_v4().to_string();
        execute(&client, &first.url, &user, "x = 1").await;
    }
    let old_containers = containers(&node_id);
    let old_mounts = mounts_under(&data_dir);
    assert!(old_containers.len() >= 3, "{old_containers:?}");
    assert!(old_mounts.len() >= 3, "{old_mounts:?}");

    first.child.kill().expect("SIGKILL");
    first.child.wait().expect("reap");
    // The crash left everything in place (the warm pool may have started one more
    // sandbox between the snapshot and the kill).
    let after_crash = containers(&node_id);
    assert!(
        old_containers.iter().all(|c| after_crash.contains(c)),
        "{after_crash:?}"
    );
    assert!(!mounts_under(&data_dir).is_empty());

    let mut second = start(&node_id, &data_dir);
    wait_ready(&client, &second.url).await;
    let now = containers(&node_id);
    assert!(
        old_containers.iter().all(|c| !now.contains(c)),
        "old containers survived: {now:?}"
    );
    let mounts = mounts_under(&data_dir);
    assert!(
        old_mounts.iter().all(|m| !mounts.contains(m)),
        "old mounts survived: {mounts:?}"
    );
    let loops = loops_under(&data_dir);
    assert!(
        loops.len() <= mounts.len(),
        "stray loop devices: {loops:?} vs mounts {mounts:?}"
    );
    // The restarted node serves.
    let body = execute(
        &client,
        &second.url,
        &uuid::Uuid::new_v4().to_string(),
        "print(6*7)",
    )
    .await;
    assert_eq!(body["result_text"], "42\n");

    // Graceful shutdown removes everything of this node.
    let pid = second.child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let status = second.child.wait().expect("wait");
    assert!(status.success(), "{status:?}");
    assert!(
        containers(&node_id).is_empty(),
        "containers left after SIGTERM"
    );
    assert!(
        mounts_under(&data_dir).is_empty(),
        "mounts left after SIGTERM"
    );
    assert!(
        loops_under(&data_dir).is_empty(),
        "loop devices left after SIGTERM"
    );
    let _ = std::fs::remove_dir_all(&data_dir);
}
