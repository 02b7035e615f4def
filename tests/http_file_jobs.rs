//! Issue 6: file jobs are first-class jobs — submitted through the job API, polled,
//! with the same statuses and typed errors as execute jobs.

mod common;

use common::{AppOptions, new_user, spawn_app};
use serde_json::{Value, json};

async fn submit_and_wait(app: &common::TestApp, body: Value) -> Value {
    let r = app
        .post("/api/v1/jobs")
        .json(&body)
        .send()
        .await
        .expect("submit");
    assert_eq!(r.status().as_u16(), 202, "{:?}", r.text().await);
    let accepted: Value = r.json().await.expect("json");
    let id = accepted["job_id"].as_str().expect("job_id").to_owned();
    let r = app
        .get(&format!("/api/v1/jobs/{id}?wait=30"))
        .send()
        .await
        .expect("poll");
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_jobs_through_the_job_api() {
    let app = spawn_app("filejobs", AppOptions::default()).await;
    let user = new_user();
    let (s, _) = app
        .execute(
            &user,
            "open('/sandbox/a.txt', 'w').write('x')\nopen('/sandbox/b.txt', 'w').write('y')",
        )
        .await;
    assert_eq!(s, 200);

    let done = submit_and_wait(
        &app,
        json!({"user_uuid": user, "type": "files.delete", "files": [{"path": "/sandbox/", "name": "a.txt"}]}),
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["type"], "files.delete");
    let (_, body) = app
        .execute(&user, "import os\nprint(sorted(os.listdir('/sandbox')))")
        .await;
    assert_eq!(body["result_text"], "['b.txt']\n");

    // Deleting a missing file is idempotent: it succeeds and says nothing was deleted.
    let done = submit_and_wait(
        &app,
        json!({"user_uuid": user, "type": "files.delete", "files": [{"path": "/sandbox/", "name": "nope.txt"}]}),
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["results"][0]["deleted"], false, "{done}");

    // Exporting a missing file is a failed job with a typed error, not a lost one.
    let done = submit_and_wait(
        &app,
        json!({"user_uuid": user, "type": "files.export", "files": [{"path": "/sandbox/", "name": "nope.txt", "upload_url": "s3://bucket/nope.txt"}]}),
    )
    .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"]["code"], "file_not_found", "{done}");

    // Validation happens at submit: traversal and a missing `files` are 422 naming the field.
    let r = app
        .post("/api/v1/jobs")
        .json(&json!({"user_uuid": user, "type": "files.delete", "files": [{"path": "/sandbox/../etc", "name": "passwd"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("files[0]"),
        "{body}"
    );
    let r = app
        .post("/api/v1/jobs")
        .json(&json!({"user_uuid": user, "type": "files.export"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    app.stop().await;
}
