//! The seed's file endpoints over HTTP, against the whole single-node service with a real
//! sandbox: a local HTTP file server stands in for presigned URLs, and the S3 API server
//! the test command starts (moto) for `s3://`.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on the first surprise"
)]

mod common;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use common::{AppOptions, spawn_app};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tether_egress::{Egress, EgressConfig};
use tether_worker_host::FilesConfig;
use tether_worker_host::files::{S3Settings, S3Store, Secret};

type Files = Arc<Mutex<HashMap<String, Vec<u8>>>>;

/// GET serves `files`; PUT stores the body into it.
async fn file_server(files: Files) -> std::net::SocketAddr {
    async fn serve(
        State(files): State<Files>,
        Path(name): Path<String>,
    ) -> Result<Vec<u8>, StatusCode> {
        files
            .lock()
            .unwrap()
            .get(&name)
            .cloned()
            .ok_or(StatusCode::NOT_FOUND)
    }
    async fn store(
        State(files): State<Files>,
        Path(name): Path<String>,
        body: axum::body::Bytes,
    ) -> StatusCode {
        files.lock().unwrap().insert(name, body.to_vec());
        StatusCode::OK
    }
    let app = Router::new()
        .route("/f/{name}", get(serve).put(store))
        .with_state(files);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn s3_settings() -> S3Settings {
    S3Settings {
        endpoint: Some(
            std::env::var("TETHER_TEST_S3_ENDPOINT")
                .unwrap_or_else(|_| "http://127.0.0.1:9000".into()),
        ),
        region: "us-east-1".into(),
        access_key_id: "testing".into(),
        secret_access_key: Secret::new("testing"),
        force_path_style: true,
        part_size: 8 * 1024 * 1024,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_file_endpoints_import_export_delete_and_refuse() {
    let files: Files = Arc::default();
    let addr = file_server(files.clone()).await;
    files.lock().unwrap().insert(
        "sales.csv".into(),
        b"month,revenue\nJan,10\nFeb,20\n".to_vec(),
    );
    files
        .lock()
        .unwrap()
        .insert("big.bin".into(), vec![1; 2 * 1024 * 1024]);
    let store = S3Store::new(&s3_settings());
    let bucket = format!("t-http-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    store
        .client()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!("the S3 API server is not reachable (the test command starts moto): {e:?}")
        });

    let config = FilesConfig {
        egress: Egress::new(EgressConfig {
            allow: addr.to_string().parse().unwrap(),
            ..EgressConfig::default()
        }),
        s3: Some(s3_settings()),
        max_file_bytes: 1024 * 1024,
        ..FilesConfig::default()
    };
    let app = spawn_app(
        "httpfiles",
        AppOptions {
            max_total: 2,
            min_idle: 1,
            files: config,
            ..AppOptions::default()
        },
    )
    .await;
    let user = common::new_user();
    let files_url = format!("/api/v1/files?user_uuid={user}");
    let post = |path: &str, body: Value| app.post(path).json(&body).send();

    // Import → 201 with the seed's result shape; the code sees the file.
    let r = post(&files_url, json!({"files": [{"download_url": format!("http://{addr}/f/sales.csv"), "path": "/sandbox/data/", "name": "sales.csv"}]})).await.unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"success": true, "results": [{"full_path": "/sandbox/data/sales.csv", "size": 28}]})
    );
    let (status, body) = app
        .execute(&user, "import pandas as pd; df = pd.read_csv('/sandbox/data/sales.csv'); df.to_csv('/sandbox/out.csv', index=False); print(df.revenue.sum())")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result_text"], "30\n");
    assert_eq!(
        body["files"],
        json!([{"path": "/sandbox/out.csv", "size": 28, "kind": "file"}])
    );

    // Export by PUT to the file server and to s3:// → 200.
    let r = post(
        &format!("/api/v1/files/export?user_uuid={user}"),
        json!({"files": [
            {"path": "/sandbox", "name": "out.csv", "upload_url": format!("http://{addr}/f/out.csv")},
            {"path": "/sandbox", "name": "out.csv", "upload_url": format!("s3://{bucket}/exports/out.csv")}
        ]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["results"][0],
        json!({"path": "/sandbox", "name": "out.csv", "size": 28})
    );
    let uploaded = files.lock().unwrap().get("out.csv").cloned().unwrap();
    assert_eq!(uploaded, b"month,revenue\nJan,10\nFeb,20\n");
    let object = store
        .client()
        .get_object()
        .bucket(&bucket)
        .key("exports/out.csv")
        .send()
        .await
        .unwrap();
    assert_eq!(
        object.body.collect().await.unwrap().into_bytes().as_ref(),
        uploaded.as_slice()
    );

    // Typed refusals, each naming what was wrong.
    let cases = [
        (
            json!({"files": [{"download_url": "file:///etc/passwd", "path": "/sandbox", "name": "p"}]}),
            422,
            "invalid_request",
            Some("files[0].download_url"),
        ),
        (
            json!({"files": [{"download_url": format!("http://{addr}/f/sales.csv"), "path": "/sandbox/../etc", "name": "p"}]}),
            422,
            "invalid_request",
            Some("files[0].path"),
        ),
        (
            json!({"files": [{"download_url": format!("http://{addr}/f/sales.csv"), "path": "/sandbox", "name": "../p"}]}),
            422,
            "invalid_request",
            Some("files[0].name"),
        ),
        (
            json!({"files": vec![json!({"download_url": "https://example.com/a", "path": "/sandbox", "name": "a"}); 101]}),
            422,
            "invalid_request",
            Some("files"),
        ),
        (
            json!({"files": [{"download_url": "http://169.254.169.254/latest/meta-data/", "path": "/sandbox", "name": "m"}]}),
            422,
            "egress_denied",
            None,
        ),
        (
            json!({"files": [{"download_url": format!("http://127.0.0.1:{}/f/sales.csv", addr.port() + 1), "path": "/sandbox", "name": "m"}]}),
            422,
            "egress_denied",
            None,
        ),
        (
            json!({"files": [{"download_url": format!("http://{addr}/f/big.bin"), "path": "/sandbox", "name": "big.bin"}]}),
            413,
            "file_too_large",
            None,
        ),
        (
            json!({"files": [{"download_url": format!("http://{addr}/f/missing"), "path": "/sandbox", "name": "m"}]}),
            502,
            "transfer_failed",
            None,
        ),
    ];
    for (request, status, code, field) in cases {
        let r = post(&files_url, request.clone()).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{request}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["detail"].is_string(), "{body}");
        if let Some(field) = field {
            assert_eq!(body["error"]["field"], field, "{body}");
        }
    }

    // A link planted by the code, and a missing file: 422 and 404 on export.
    app.execute(
        &user,
        "import os; os.symlink('/etc/passwd', '/sandbox/evil')",
    )
    .await;
    for (name, status, code) in [
        ("evil", 422, "unsafe_path"),
        ("nope.csv", 404, "file_not_found"),
    ] {
        let r = post(
            &format!("/api/v1/files/export?user_uuid={user}"),
            json!({"files": [{"path": "/sandbox", "name": name, "upload_url": format!("http://{addr}/f/{name}")}]}),
        )
        .await
        .unwrap();
        assert_eq!(r.status().as_u16(), status, "{name}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    assert!(!files.lock().unwrap().contains_key("evil"));

    // Delete → 204; the file is gone.
    let r = app
        .client
        .delete(format!("{}{files_url}", app.url))
        .header("X-Auth-Token", common::TOKEN)
        .json(&json!({"files": [{"path": "/sandbox/data", "name": "sales.csv"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (_, body) = app
        .execute(
            &user,
            "import os; print(os.path.exists('/sandbox/data/sales.csv'))",
        )
        .await;
    assert_eq!(body["result_text"], "False\n");
    app.stop().await;
}
