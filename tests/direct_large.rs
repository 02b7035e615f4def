//! Acceptance 3's large file: a 200 MiB direct upload and download, streamed end to end,
//! with the process's peak memory measured. Its own test binary, so nothing else runs in
//! the process while it measures (the API, the node and the client all live in it).

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on the first surprise"
)]

mod common;

use bytes::Bytes;
use common::{AppOptions, new_user, spawn_app};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::time::Instant;
use tether_worker_host::FilesConfig;

const MIB: u64 = 1024 * 1024;
const SIZE_MIB: u64 = 200;

/// Chunk `i` of the test file: a pseudo-random MiB, stamped with its index so that no
/// two chunks are alike (a swapped or repeated chunk changes the checksum).
fn chunk(i: u64) -> Bytes {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut block = Vec::with_capacity(MIB as usize);
    while block.len() < MIB as usize {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        block.extend_from_slice(&state.to_le_bytes());
    }
    block[..8].copy_from_slice(&i.to_le_bytes());
    Bytes::from(block)
}

/// A figure from `/proc/self/status`, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Start a fresh peak: the kernel resets `VmHWM` to the current RSS.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_200_mib_upload_and_download_stay_flat() {
    let options = AppOptions {
        disk_mib: 300,
        min_idle: 1,
        files: FilesConfig {
            max_file_bytes: 256 * MIB,
            ..FilesConfig::default()
        },
        ..AppOptions::default()
    };
    let app = spawn_app("direct-large", options).await;
    let user = new_user();
    let url = format!("/api/v1/sessions/{user}/files/sandbox/big.bin");

    // The session exists before measuring (its sandbox start is not the upload's cost).
    let r = app.put(&url).body("warm").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 201);

    let mut expected = Sha256::new();
    for i in 0..SIZE_MIB {
        expected.update(chunk(i));
    }
    let expected = expected.finalize();

    reset_peak();
    let before = status_kib("VmRSS:");
    let started = Instant::now();
    let body = futures::stream::iter(0..SIZE_MIB).map(|i| Ok::<_, std::io::Error>(chunk(i)));
    let r = app
        .put(&url)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    let upload = started.elapsed();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    let upload_peak = status_kib("VmHWM:");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["size"], SIZE_MIB * MIB);

    reset_peak();
    let before_download = status_kib("VmRSS:");
    let started = Instant::now();
    let r = app.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["content-length"],
        (SIZE_MIB * MIB).to_string().as_str()
    );
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    let mut got = Sha256::new();
    let mut received = 0u64;
    let mut stream = r.bytes_stream();
    while let Some(piece) = stream.next().await {
        let piece = piece.unwrap();
        received += piece.len() as u64;
        got.update(&piece);
    }
    let download = started.elapsed();
    let download_peak = status_kib("VmHWM:");
    assert_eq!(received, SIZE_MIB * MIB);
    assert_eq!(got.finalize(), expected, "downloaded bytes differ");

    // The sandbox sees the same file.
    let (status, body) = app
        .execute(
            &user,
            "import os; print(os.path.getsize('/sandbox/big.bin'))",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stdout"], format!("{}\n", SIZE_MIB * MIB));

    let upload_growth = upload_peak.saturating_sub(before) / 1024;
    let download_growth = download_peak.saturating_sub(before_download) / 1024;
    println!(
        "direct transfer of {SIZE_MIB} MiB: upload {:.1} s ({:.0} MiB/s), peak RSS growth {upload_growth} MiB (from {} MiB); download {:.1} s ({:.0} MiB/s), peak RSS growth {download_growth} MiB",
        upload.as_secs_f64(),
        SIZE_MIB as f64 / upload.as_secs_f64(),
        before / 1024,
        download.as_secs_f64(),
        SIZE_MIB as f64 / download.as_secs_f64(),
    );
    assert!(
        upload_growth < 64,
        "upload grew the process by {upload_growth} MiB"
    );
    assert!(
        download_growth < 64,
        "download grew the process by {download_growth} MiB"
    );
    app.stop().await;
}
