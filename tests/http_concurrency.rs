//! Issue 3, acceptance 3: 25 concurrent clients × 40 stateful requests, every response
//! 200 and every state check right.

mod common;

use common::{AppOptions, new_user, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_five_clients_forty_stateful_requests() {
    let app = std::sync::Arc::new(
        spawn_app(
            "conc",
            AppOptions {
                max_total: 27,
                min_idle: 4,
                ..AppOptions::default()
            },
        )
        .await,
    );
    let mut clients = Vec::new();
    for c in 0..25u64 {
        let app = app.clone();
        clients.push(tokio::spawn(async move {
            let user = new_user();
            let (s, body) = app
                .execute(&user, &format!("total = {c}\nitems = []"))
                .await;
            assert_eq!(s, 200, "{body}");
            let mut total = c;
            for step in 1..40u64 {
                total += step;
                let code =
                    format!("total += {step}\nitems.append({step})\nprint(total, len(items))");
                let (s, body) = app.execute(&user, &code).await;
                assert_eq!(s, 200, "client {c} step {step}: {body}");
                assert_eq!(
                    body["result_text"],
                    format!("{total} {step}\n"),
                    "client {c} step {step}"
                );
            }
            let r = app
                .post(&format!("/api/v1/release?user_uuid={user}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 204);
        }));
    }
    for client in clients {
        client.await.expect("client");
    }
    let app = std::sync::Arc::into_inner(app).expect("sole owner");
    app.stop().await;
}
