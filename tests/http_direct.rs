//! Direct transfer over HTTP (`PUT`/`GET /api/v1/sessions/{user}/files/sandbox/…`, listing),
//! against the whole single-node service with a real sandbox: bytes stream API ↔ node
//! file endpoint, never through the bus.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on the first surprise"
)]

mod common;

use common::{AppOptions, TestApp, new_user, spawn_app};
use serde_json::Value;
use std::time::Duration;
use tether_worker_host::FilesConfig;

fn files_of(user: &str) -> String {
    format!("/api/v1/sessions/{user}/files")
}

async fn status_and_json(r: reqwest::RequestBuilder) -> (u16, Value) {
    let r = tokio::time::timeout(Duration::from_secs(60), r.send())
        .await
        .expect("no hang")
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn run(app: &TestApp, user: &str, code: &str) -> Value {
    let (status, body) = app.execute(user, code).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_put_get_and_list_round_trip() {
    let app = spawn_app("direct", AppOptions::default()).await;
    let user = new_user();
    let files = files_of(&user);

    // Uploaded by the client, read by code.
    let (status, body) = status_and_json(
        app.put(&format!("{files}/sandbox/in/data.csv"))
            .body("a,b\n1,2\n"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["full_path"], "/sandbox/in/data.csv");
    assert_eq!(body["size"], 8);
    let body = run(
        &app,
        &user,
        "print(open('/sandbox/in/data.csv').read().splitlines()[1])",
    )
    .await;
    assert_eq!(body["stdout"], "1,2\n");

    // Written by code, downloaded by the client.
    run(
        &app,
        &user,
        "import os; os.makedirs('/sandbox/out'); open('/sandbox/out/report.json', 'w').write('{\"ok\": true}')",
    )
    .await;
    let r = app
        .get(&format!("{files}/sandbox/out/report.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.headers()["content-length"], "12");
    assert_eq!(r.text().await.unwrap(), "{\"ok\": true}");

    // Overwrite, then read back.
    let (status, body) =
        status_and_json(app.put(&format!("{files}/sandbox/in/data.csv")).body("x")).await;
    assert_eq!((status, &body["size"]), (201, &Value::from(1)), "{body}");
    let r = app
        .get(&format!("{files}/sandbox/in/data.csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/csv");
    assert_eq!(r.text().await.unwrap(), "x");

    // Listings.
    let (status, body) = status_and_json(app.get(&format!("{files}?path=/sandbox/out"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["path"], "/sandbox/out");
    let entries = body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{body}");
    assert_eq!(entries[0]["name"], "report.json");
    assert_eq!(entries[0]["kind"], "file");
    assert_eq!(entries[0]["size"], 12);
    assert!(entries[0]["modified"].as_u64().unwrap() > 0, "{body}");
    let (status, body) = status_and_json(app.get(&files)).await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<(&str, &str)> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["kind"].as_str().unwrap()))
        .collect();
    assert!(names.contains(&("in", "dir")), "{body}");
    assert!(names.contains(&("out", "dir")), "{body}");

    // Missing file and directory → 404.
    let (status, body) = status_and_json(app.get(&format!("{files}/sandbox/nope.txt"))).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "file_not_found");
    let (status, body) = status_and_json(app.get(&format!("{files}?path=/sandbox/nope"))).await;
    assert_eq!(status, 404, "{body}");

    // Wrong or missing token → 401, and nothing is written.
    let url = format!("{}{files}/sandbox/in/data.csv", app.url);
    for token in [Some("wrong"), None] {
        let mut put = app.client.put(&url).body("evil");
        let mut get = app.client.get(&url);
        if let Some(token) = token {
            put = put.header("X-Auth-Token", token);
            get = get.header("X-Auth-Token", token);
        }
        assert_eq!(put.send().await.unwrap().status().as_u16(), 401);
        assert_eq!(get.send().await.unwrap().status().as_u16(), 401);
    }
    let r = app
        .get(&format!("{files}/sandbox/in/data.csv"))
        .send()
        .await;
    assert_eq!(r.unwrap().text().await.unwrap(), "x");

    // The node's endpoint itself refuses callers without the internal token.
    let r = app
        .client
        .get(format!(
            "{}/internal/v1/files?user_uuid={user}&path=/sandbox/in/data.csv",
            app.file_url
        ))
        .header("x-tether-internal-token", "internal-test-token-012345678X")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // Traversal and paths outside /sandbox → 422 (encoded so the client does not
    // normalise them away).
    for path in [
        "sandbox/..%2F..%2Fetc%2Fpasswd",
        "sandbox/in/..%2F..%2F..%2Fetc%2Fpasswd",
        "etc/passwd",
        "sandbox",
    ] {
        let (status, body) = status_and_json(app.get(&format!("{files}/{path}"))).await;
        assert_eq!(status, 422, "GET {path}: {body}");
        assert_ne!(body["error"]["code"], Value::Null, "{body}");
        let (status, body) = status_and_json(app.put(&format!("{files}/{path}")).body("x")).await;
        assert_eq!(status, 422, "PUT {path}: {body}");
    }
    for path in ["/sandbox/../etc", "/etc", "sandbox"] {
        let (status, body) = status_and_json(app.get(&files).query(&[("path", path)])).await;
        assert_eq!(status, 422, "list {path}: {body}");
    }
    let (status, _) = status_and_json(app.get("/api/v1/sessions/not-a-uuid/files")).await;
    assert_eq!(status, 422);

    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_transfer_refuses_links_fifos_and_hard_links() {
    let app = spawn_app("direct-evil", AppOptions::default()).await;
    let user = new_user();
    let files = files_of(&user);
    run(
        &app,
        &user,
        "import os\n\
         os.symlink('/etc/passwd', '/sandbox/evil')\n\
         os.symlink('/etc', '/sandbox/etcdir')\n\
         os.mkfifo('/sandbox/pipe')\n\
         open('/sandbox/a.txt', 'w').write('mine')\n\
         os.link('/sandbox/a.txt', '/sandbox/b.txt')",
    )
    .await;
    let host_passwd = std::fs::read("/etc/passwd").unwrap();

    for path in ["evil", "etcdir/passwd", "pipe", "b.txt"] {
        let r = tokio::time::timeout(
            Duration::from_secs(30),
            app.get(&format!("{files}/sandbox/{path}")).send(),
        )
        .await
        .expect("a GET never hangs")
        .unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert_eq!(status, 422, "GET {path}: {text}");
        assert!(text.contains("unsafe_path"), "GET {path}: {text}");
        assert!(!text.contains("root:"), "host bytes leaked: {text}");
    }
    // Writing through a linked directory is refused and touches nothing on the host.
    let (status, body) =
        status_and_json(app.put(&format!("{files}/sandbox/etcdir/evil")).body("x")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "unsafe_path");
    // Listing through a link, or a FIFO, is refused.
    for path in ["/sandbox/etcdir", "/sandbox/pipe"] {
        let (status, body) = status_and_json(app.get(&files).query(&[("path", path)])).await;
        assert_eq!(status, 422, "list {path}: {body}");
    }
    // The root listing describes the planted entries without following them.
    let (status, body) = status_and_json(app.get(&files)).await;
    assert_eq!(status, 200, "{body}");
    let kind = |name: &str| {
        body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["kind"].as_str().unwrap().to_owned())
    };
    assert_eq!(kind("evil").as_deref(), Some("symlink"), "{body}");
    assert_eq!(kind("pipe").as_deref(), Some("special"), "{body}");
    // Uploading onto the link's name replaces the link itself, never its target.
    let (status, body) =
        status_and_json(app.put(&format!("{files}/sandbox/evil")).body("replaced")).await;
    assert_eq!(status, 201, "{body}");
    let r = app.get(&format!("{files}/sandbox/evil")).send().await;
    assert_eq!(r.unwrap().text().await.unwrap(), "replaced");
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), host_passwd);

    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_upload_over_the_limit_is_413_and_leaves_nothing() {
    let options = AppOptions {
        files: FilesConfig {
            max_file_bytes: 1024,
            ..FilesConfig::default()
        },
        ..AppOptions::default()
    };
    let app = spawn_app("direct-limit", options).await;
    let user = new_user();
    let files = files_of(&user);
    // Announced size over the limit: refused before any byte is written.
    let (status, body) = status_and_json(
        app.put(&format!("{files}/sandbox/big.bin"))
            .body(vec![7u8; 4096]),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "file_too_large");
    // No announced size (a stream): refused once the limit is crossed.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..4).map(|_| Ok(vec![7u8; 1000])).collect();
    let (status, body) = status_and_json(
        app.put(&format!("{files}/sandbox/big.bin"))
            .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks))),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    let (status, body) = status_and_json(app.get(&files)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["entries"], serde_json::json!([]), "{body}");
    app.stop().await;
}
