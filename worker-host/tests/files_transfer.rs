//! File jobs end to end against real sandboxes, a local HTTP file server and the S3 API
//! server: acceptance 1 (URL import → pandas → PNG + xlsx → presigned PUT and POST export),
//! acceptance 2 (50 MiB `s3://` multipart round trip) and the size limit.

mod common;

use common::files::{
    FileServer, bucket, egress, get_object, noise, presigned_post, presigned_put, s3_allow_entry,
    s3_settings, sha256,
};
use common::{T, TestEngine, config};
use std::time::Instant;
use tether_protocol::files::{ExportItem, ImportItem};
use tether_protocol::{ErrorCode, ExportSpec, ImportSpec, Outcome, SandboxPath, UserUuid};
use tether_worker_host::files::S3Store;
use tether_worker_host::{EngineConfig, EngineError};

fn files_config(test: &str, server: &FileServer) -> EngineConfig {
    let mut config = config(test);
    config.limits.disk_mib = 160;
    config.files.egress = egress(&format!("{},{}", server.allow_entry(), s3_allow_entry()));
    config.files.s3 = Some(s3_settings());
    config
}

fn import(url: &str, path: &str, name: &str) -> ImportItem {
    ImportItem {
        download_url: url.into(),
        path: path.into(),
        name: name.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_in_chart_and_xlsx_out_via_presigned_put_and_post() {
    let server = FileServer::start().await;
    let csv = "month,revenue\nJan,10\nFeb,20\nMar,15\n";
    server.put("sales.csv", csv.as_bytes());
    let store = S3Store::new(&s3_settings());
    let bucket = bucket(&store, "accept1").await;
    let t = TestEngine::start(files_config("accept1", &server)).await;
    let u = UserUuid::random();

    let spec = ImportSpec::try_from(vec![import(
        &server.url("/files/sales.csv"),
        "/sandbox/data/",
        "sales.csv",
    )])
    .unwrap();
    let imported = t.engine.import_files(u, spec).await.expect("import");
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].full_path, "/sandbox/data/sales.csv");
    assert_eq!(imported[0].size, csv.len() as u64);

    let code = r#"
import os, hashlib
import pandas as pd
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
df = pd.read_csv("/sandbox/data/sales.csv")
print(int(df["revenue"].sum()))
os.makedirs("/sandbox/out", exist_ok=True)
df.plot(x="month", y="revenue").get_figure().savefig("/sandbox/out/chart.png")
df.to_excel("/sandbox/out/report.xlsx", index=False)
for n in ("chart.png", "report.xlsx"):
    print(n, hashlib.sha256(open("/sandbox/out/" + n, "rb").read()).hexdigest())
"#;
    let r = t.engine.execute(u, code, T).await.unwrap().result;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    let mut lines = r.stdout.lines();
    assert_eq!(lines.next(), Some("45"));
    let written: std::collections::HashMap<String, String> = lines
        .map(|l| {
            let (n, h) = l.split_once(' ').unwrap();
            (n.to_owned(), h.to_owned())
        })
        .collect();
    let mut manifest: Vec<&str> = r.files.iter().map(|f| f.path.as_str()).collect();
    manifest.sort();
    assert_eq!(
        manifest,
        ["/sandbox/out/chart.png", "/sandbox/out/report.xlsx"]
    );

    let put_url = presigned_put(&store, &bucket, "exports/chart.png").await;
    let (post_url, fields) = presigned_post(&bucket, "exports/report.xlsx");
    let spec = ExportSpec::try_from(vec![
        ExportItem {
            path: "/sandbox/out".into(),
            name: "chart.png".into(),
            upload_url: put_url,
            method: Some("PUT".into()),
            fields: None,
        },
        ExportItem {
            path: "/sandbox/out".into(),
            name: "report.xlsx".into(),
            upload_url: post_url,
            method: Some("POST".into()),
            fields: Some(fields),
        },
    ])
    .unwrap();
    let exported = t.engine.export_files(u, spec).await.expect("export");
    assert_eq!(exported.len(), 2);
    assert_eq!(
        (exported[0].path.as_str(), exported[0].name.as_str()),
        ("/sandbox/out", "chart.png")
    );

    for (key, name, result) in [
        ("exports/chart.png", "chart.png", &exported[0]),
        ("exports/report.xlsx", "report.xlsx", &exported[1]),
    ] {
        let (bytes, _) = get_object(&store, &bucket, key).await;
        assert_eq!(bytes.len() as u64, result.size, "{name}");
        assert_eq!(
            sha256(&bytes),
            written[name],
            "{name}: the object differs from what the sandbox wrote"
        );
    }
    assert!(
        get_object(&store, &bucket, "exports/chart.png")
            .await
            .0
            .starts_with(b"\x89PNG")
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_round_trip_of_50_mib_uses_multipart_and_keeps_the_bytes() {
    let server = FileServer::start().await;
    let store = S3Store::new(&s3_settings());
    let bucket = bucket(&store, "accept2").await;
    let original = noise(50 * 1024 * 1024, 42);
    let digest = sha256(&original);
    store
        .client()
        .put_object()
        .bucket(&bucket)
        .key("in/big.bin")
        .body(original.into())
        .send()
        .await
        .expect("seed object");
    let t = TestEngine::start(files_config("accept2", &server)).await;
    let u = UserUuid::random();
    // Attach the sandbox first so the timing below is the transfer alone.
    t.engine.execute(u, "1", T).await.unwrap();

    let started = Instant::now();
    let spec = ImportSpec::try_from(vec![import(
        &format!("s3://{bucket}/in/big.bin"),
        "/sandbox",
        "big.bin",
    )])
    .unwrap();
    let imported = t.engine.import_files(u, spec).await.expect("s3 import");
    let import_time = started.elapsed();
    assert_eq!(imported[0].size, 50 * 1024 * 1024);

    let r = t
        .engine
        .execute(u, "import hashlib; print(hashlib.sha256(open('/sandbox/big.bin','rb').read()).hexdigest())", T)
        .await
        .unwrap()
        .result;
    assert_eq!(r.stdout.trim(), digest, "the sandbox sees different bytes");

    let started = Instant::now();
    let spec = ExportSpec::try_from(vec![ExportItem {
        path: "/sandbox".into(),
        name: "big.bin".into(),
        upload_url: format!("s3://{bucket}/out/big.bin"),
        method: None,
        fields: None,
    }])
    .unwrap();
    let exported = t.engine.export_files(u, spec).await.expect("s3 export");
    let export_time = started.elapsed();
    assert_eq!(exported[0].size, 50 * 1024 * 1024);

    let (bytes, etag) = get_object(&store, &bucket, "out/big.bin").await;
    assert_eq!(sha256(&bytes), digest, "the exported object differs");
    let etag = etag.unwrap_or_default();
    assert!(
        etag.trim_matches('"').ends_with("-7"),
        "expected a 7-part multipart upload, ETag {etag}"
    );
    println!(
        "50 MiB s3 round trip: import {:.0} ms, export {:.0} ms (multipart, 8 MiB parts)",
        import_time.as_secs_f64() * 1000.0,
        export_time.as_secs_f64() * 1000.0
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_sources_fail_and_leave_nothing_behind() {
    let server = FileServer::start().await;
    server.put("small.csv", b"a,b\n1,2\n");
    server.put("big.bin", &vec![7u8; 2 * 1024 * 1024]);
    let mut config = files_config("limit", &server);
    config.files.max_file_bytes = 1024 * 1024;
    let t = TestEngine::start(config).await;
    let u = UserUuid::random();

    // Announced too large (Content-Length), and streamed too large (no length): both
    // refused; the good entry in the same job does not land either (all or nothing).
    for big in ["/files/big.bin", "/stream/2097152"] {
        let spec = ImportSpec::try_from(vec![
            import(&server.url("/files/small.csv"), "/sandbox/in", "small.csv"),
            import(&server.url(big), "/sandbox/in", "big.bin"),
        ])
        .unwrap();
        match t.engine.import_files(u, spec).await {
            Err(EngineError::Files(f)) => {
                assert_eq!(f.index, Some(1), "{f}");
                assert_eq!(f.error.code(), ErrorCode::FileTooLarge, "{f}");
            }
            other => panic!("expected file_too_large, got {other:?}"),
        }
    }
    let listing = t
        .engine
        .list_dir(u, SandboxPath::try_from("/sandbox/in").unwrap())
        .await
        .unwrap();
    assert!(
        listing.entries.is_empty(),
        "left behind: {:?}",
        listing.entries
    );

    // A redirect to an allowed hop is followed; the size limit still applies per file.
    let redirect = server.url(&format!("/redirect?to={}", server.url("/files/small.csv")));
    let spec =
        ImportSpec::try_from(vec![import(&redirect, "/sandbox/in", "via-redirect.csv")]).unwrap();
    let imported = t
        .engine
        .import_files(u, spec)
        .await
        .expect("redirected import");
    assert_eq!(imported[0].size, 8);

    // A missing remote file is a transfer failure naming the entry.
    let spec = ImportSpec::try_from(vec![import(
        &server.url("/files/nope.csv"),
        "/sandbox/in",
        "nope.csv",
    )])
    .unwrap();
    match t.engine.import_files(u, spec).await {
        Err(EngineError::Files(f)) => assert_eq!(f.error.code(), ErrorCode::TransferFailed, "{f}"),
        other => panic!("expected transfer_failed, got {other:?}"),
    }
    // Exporting a file that does not exist names it.
    let spec = ExportSpec::try_from(vec![ExportItem {
        path: "/sandbox/in".into(),
        name: "absent.png".into(),
        upload_url: server.url("/files/absent.png"),
        method: None,
        fields: None,
    }])
    .unwrap();
    match t.engine.export_files(u, spec).await {
        Err(EngineError::Files(f)) => assert_eq!(f.error.code(), ErrorCode::FileNotFound, "{f}"),
        other => panic!("expected file_not_found, got {other:?}"),
    }
    t.stop().await;
}
