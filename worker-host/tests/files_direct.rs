//! Direct transfer (write a stream, read a stream, list), the per-run manifest
//! (acceptance 6, with its measured cost) and release (acceptance 7).

mod common;

use common::files::{noise, sha256};
use common::{T, TestEngine, config};
use futures::StreamExt;
use std::time::Instant;
use tether_protocol::{EntryKind, ErrorCode, Outcome, SandboxPath, UserUuid};
use tether_worker_host::files::DiskRoot;
use tether_worker_host::files::manifest::{ManifestLimits, changes, snapshot};
use tether_worker_host::session_disk::{loop_devices_under, mounts_under};
use tether_worker_host::{BodyChunk, EngineError};
use tokio::sync::mpsc;

fn path(p: &str) -> SandboxPath {
    SandboxPath::try_from(p).expect("valid sandbox path")
}

/// Send `bytes` in 64 KiB chunks through a small bounded channel (as the API will), ending
/// with `End` unless `complete` is false.
fn stream_body(bytes: Vec<u8>, complete: bool) -> mpsc::Receiver<BodyChunk> {
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        for chunk in bytes.chunks(64 * 1024) {
            if tx
                .send(BodyChunk::Data(chunk.to_vec().into()))
                .await
                .is_err()
            {
                return;
            }
        }
        if complete {
            let _ = tx.send(BodyChunk::End).await;
        }
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_read_list_round_trip() {
    let mut config = config("direct");
    config.limits.disk_mib = 96;
    config.files.max_file_bytes = 64 * 1024 * 1024;
    let t = TestEngine::start(config).await;
    let u = UserUuid::random();
    let bytes = noise(20 * 1024 * 1024, 7);
    let digest = sha256(&bytes);

    let written = t
        .engine
        .write_file(
            u,
            path("/sandbox/up/data.bin"),
            Some(bytes.len() as u64),
            stream_body(bytes, true),
        )
        .await
        .expect("upload");
    assert_eq!(written.full_path, "/sandbox/up/data.bin");
    assert_eq!(written.size, 20 * 1024 * 1024);

    let r = t
        .engine
        .execute(u, "import hashlib,os; p='/sandbox/up/data.bin'; s=os.stat(p); print(hashlib.sha256(open(p,'rb').read()).hexdigest(), s.st_uid, oct(s.st_mode & 0o777))", T)
        .await
        .unwrap()
        .result;
    assert_eq!(r.stdout, format!("{digest} 1000 0o644\n"));

    let download = t
        .engine
        .read_file(u, path("/sandbox/up/data.bin"))
        .await
        .expect("open");
    assert_eq!(download.size, 20 * 1024 * 1024);
    let mut stream = Box::pin(download.into_stream());
    let mut got = Vec::new();
    while let Some(chunk) = stream.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(sha256(&got), digest);

    let listing = t.engine.list_dir(u, path("/sandbox/up")).await.unwrap();
    assert_eq!(listing.entries.len(), 1);
    let entry = &listing.entries[0];
    assert_eq!(
        (entry.name.as_str(), entry.path.as_str(), entry.kind),
        ("data.bin", "/sandbox/up/data.bin", EntryKind::File)
    );
    assert_eq!(entry.size, 20 * 1024 * 1024);
    assert!(entry.modified.0 > 0);

    // Announced above the limit: refused up front. Streamed past it: refused, nothing left.
    let too_big = t
        .engine
        .write_file(
            u,
            path("/sandbox/up/big.bin"),
            Some(65 * 1024 * 1024),
            stream_body(vec![0; 10], true),
        )
        .await;
    assert!(
        matches!(&too_big, Err(EngineError::Files(f)) if f.error.code() == ErrorCode::FileTooLarge),
        "{too_big:?}"
    );
    let too_big = t
        .engine
        .write_file(
            u,
            path("/sandbox/up/big.bin"),
            None,
            stream_body(vec![1; 65 * 1024 * 1024], true),
        )
        .await;
    assert!(
        matches!(&too_big, Err(EngineError::Files(f)) if f.error.code() == ErrorCode::FileTooLarge),
        "{too_big:?}"
    );
    // A body that stops without its end (client gone) is discarded.
    let cut = t
        .engine
        .write_file(
            u,
            path("/sandbox/up/cut.bin"),
            None,
            stream_body(vec![2; 1024 * 1024], false),
        )
        .await;
    assert!(cut.is_err(), "{cut:?}");
    // The disk filling up is reported as such, and the partial file removed.
    let fill = t
        .engine
        .write_file(
            u,
            path("/sandbox/up/fill.bin"),
            None,
            stream_body(vec![3; 63 * 1024 * 1024], true),
        )
        .await;
    assert!(fill.is_ok(), "{fill:?}");
    let full = t
        .engine
        .write_file(
            u,
            path("/sandbox/up/full.bin"),
            None,
            stream_body(vec![4; 30 * 1024 * 1024], true),
        )
        .await;
    assert!(
        matches!(&full, Err(EngineError::Files(f)) if f.error.code() == ErrorCode::DiskFull),
        "{full:?}"
    );
    let listing = t.engine.list_dir(u, path("/sandbox/up")).await.unwrap();
    let names: Vec<&str> = listing.entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["data.bin", "fill.bin"], "partial files left behind");

    // Reading a directory or a missing file gives typed errors.
    let dir = t.engine.read_file(u, path("/sandbox/up")).await;
    assert!(
        matches!(&dir, Err(EngineError::Files(f)) if f.error.code() == ErrorCode::InvalidRequest),
        "{dir:?}"
    );
    let missing = t.engine.read_file(u, path("/sandbox/nope")).await;
    assert!(
        matches!(&missing, Err(EngineError::Files(f)) if f.error.code() == ErrorCode::FileNotFound),
        "{missing:?}"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_result_lists_exactly_the_files_the_run_wrote() {
    let t = TestEngine::start(config("manifest")).await;
    let u = UserUuid::random();
    // Something already on the disk that the run leaves alone.
    let r = t
        .engine
        .execute(u, "open('/sandbox/old.txt','w').write('old')", T)
        .await
        .unwrap()
        .result;
    assert_eq!(r.files.len(), 1);

    let code = "import os\nos.makedirs('/sandbox/out', exist_ok=True)\nopen('/sandbox/out/a.csv','w').write('a,b\\n1,2\\n')\nopen('/sandbox/b.txt','w').write('hello')\nopen('/tmp/not-on-the-disk','w').write('x')";
    let r = t.engine.execute(u, code, T).await.unwrap().result;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    let files: Vec<(&str, u64, &str)> = r
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.size, f.kind.as_str()))
        .collect();
    assert_eq!(
        files,
        [
            ("/sandbox/b.txt", 5, "file"),
            ("/sandbox/out/a.csv", 8, "file")
        ]
    );

    // A run that writes nothing lists nothing; one that changes a file lists it.
    let r = t.engine.execute(u, "x = 1", T).await.unwrap().result;
    assert!(r.files.is_empty(), "{:?}", r.files);
    let r = t
        .engine
        .execute(u, "open('/sandbox/b.txt','a').write('!')", T)
        .await
        .unwrap()
        .result;
    let files: Vec<(&str, u64)> = r.files.iter().map(|f| (f.path.as_str(), f.size)).collect();
    assert_eq!(files, [("/sandbox/b.txt", 6)]);
    t.stop().await;
}

/// The manifest's cost: two walks per run at most (usually one: the last run's "after" is
/// the next run's "before"). Printed, not asserted.
#[test]
fn manifest_walk_cost() {
    for files in [0usize, 10, 1000] {
        let dir =
            std::env::temp_dir().join(format!("tether-manifest-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for i in 0..files {
            let sub = if i % 2 == 0 { "" } else { "sub/" };
            std::fs::write(dir.join(format!("{sub}f{i}")), b"x").unwrap();
        }
        let root = DiskRoot::open(&dir).unwrap();
        let limits = ManifestLimits::default();
        let rounds = 200;
        let started = Instant::now();
        let mut last = snapshot(&root, limits);
        for _ in 0..rounds {
            let next = snapshot(&root, limits);
            let (changed, truncated) = changes(&last, &next, limits);
            assert!(changed.is_empty() && !truncated);
            last = next;
        }
        let per = started.elapsed() / rounds;
        assert_eq!(last.len(), files);
        println!(
            "manifest walk + diff, {files} files: {:.1} µs",
            per.as_secs_f64() * 1e6
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_removes_the_disk_and_frees_the_loop_device() {
    let mut config = config("release");
    config.min_idle = 0;
    let node_dir = config.node_dir();
    let t = TestEngine::start(config).await;
    let u = UserUuid::random();
    let r = t
        .engine
        .execute(u, "open('/sandbox/keep.txt','w').write('x')", T)
        .await
        .unwrap()
        .result;
    assert_eq!(r.outcome, Outcome::Ok);
    assert_eq!(loop_devices_under(&node_dir).await.unwrap().len(), 1);
    let mounts = mounts_under(&node_dir).await.unwrap();
    assert_eq!(mounts.len(), 1, "{mounts:?}");

    assert!(t.engine.release(u).await);
    assert!(
        loop_devices_under(&node_dir).await.unwrap().is_empty(),
        "loop device still attached"
    );
    assert!(
        mounts_under(&node_dir).await.unwrap().is_empty(),
        "disk still mounted"
    );
    assert!(!mounts[0].exists(), "disk directory still there");
    // The session starts afresh: the old file is gone.
    let r = t
        .engine
        .execute(
            u,
            "import os; print(os.path.exists('/sandbox/keep.txt'))",
            T,
        )
        .await
        .unwrap()
        .result;
    assert_eq!(r.stdout, "False\n");
    t.stop().await;
}
