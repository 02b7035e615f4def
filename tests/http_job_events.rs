//! Issue 5, acceptance 2: a job's output streams over SSE as the kernel produces it, and a
//! client that reconnects with Last-Event-ID gets the rest exactly once.

mod common;

use common::jobs::SseItem;
use common::{AppOptions, new_user, spawn_app};
use serde_json::Value;
use std::time::{Duration, Instant};

const PRINTER: &str =
    "import time\nfor i in range(7):\n    print(f'line {i}', flush=True)\n    time.sleep(0.3)";

fn expected() -> String {
    (0..7).map(|i| format!("line {i}\n")).collect()
}

/// (id, event, data) of an event item; `None` for comments.
fn event(item: &SseItem) -> Option<(Option<u64>, &str, &Value)> {
    match item {
        SseItem::Event { id, event, data } => Some((*id, event.as_str(), data)),
        SseItem::Comment(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_as_produced_and_resumes_without_loss_or_duplicates() {
    let app = spawn_app(
        "jobs-sse",
        AppOptions {
            sse_keep_alive: Duration::from_millis(500),
            ..AppOptions::default()
        },
    )
    .await;
    let user = new_user();
    // Warm the session so the timing below is the job's, not the sandbox start.
    app.execute(&user, "1").await;

    // One uninterrupted stream: when does the first chunk arrive, when the end?
    let submitted = Instant::now();
    let id = app.submit_code(&user, PRINTER).await;
    let mut stream = app.events(&id, None).await;
    let (mut first_chunk, mut terminal) = (None, None);
    let mut stdout = String::new();
    let mut ids = Vec::new();
    let mut names = Vec::new();
    while let Some(item) = stream.next().await {
        let Some((event_id, name, data)) = event(&item) else {
            continue;
        };
        names.push(name.to_owned());
        ids.extend(event_id);
        match name {
            "stdout" => {
                first_chunk.get_or_insert_with(|| submitted.elapsed());
                stdout.push_str(data["text"].as_str().unwrap());
            }
            "status" if data["status"] == "succeeded" => terminal = Some(submitted.elapsed()),
            "result" => {
                assert_eq!(data["job_id"], id.as_str());
                assert_eq!(data["result"]["stdout"], expected());
            }
            _ => {}
        }
    }
    let (first_chunk, terminal) = (first_chunk.unwrap(), terminal.unwrap());
    eprintln!(
        "acceptance 2: first stdout chunk after {first_chunk:?}, terminal status after {terminal:?}"
    );
    assert_eq!(stdout, expected());
    assert_eq!(names.first().map(String::as_str), Some("status"));
    assert_eq!(names.last().map(String::as_str), Some("result"));
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "ids are the log index"
    );
    assert!(
        terminal - first_chunk >= Duration::from_secs(1),
        "the first chunk came only {:?} before the end",
        terminal - first_chunk
    );

    // Disconnect after two events, reconnect with Last-Event-ID.
    let id = app.submit_code(&user, PRINTER).await;
    let mut first = app.events(&id, None).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let item = first.next().await.expect("event");
        if let Some((event_id, name, data)) = event(&item) {
            seen.push((event_id.unwrap(), name.to_owned(), data.clone()));
        }
    }
    drop(first);
    let last = seen.last().unwrap().0;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut second = app.events(&id, Some(last)).await;
    let mut result = None;
    while let Some(item) = second.next().await {
        match event(&item) {
            Some((Some(event_id), name, data)) => {
                seen.push((event_id, name.to_owned(), data.clone()))
            }
            Some((None, "result", data)) => result = Some(data.clone()),
            _ => {}
        }
    }
    let ids: Vec<u64> = seen.iter().map(|(i, _, _)| *i).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "lost or repeated: {ids:?}"
    );
    let joined: String = seen
        .iter()
        .filter(|(_, name, _)| name == "stdout")
        .map(|(_, _, data)| data["text"].as_str().unwrap())
        .collect();
    assert_eq!(joined, expected());
    let result = result.expect("a result event");
    assert_eq!(result["result"]["stdout"], expected());
    eprintln!(
        "acceptance 2: resumed after event {last}; {} events in all, stdout complete once",
        ids.len()
    );

    // Reconnecting after the end gets only the result; idle streams carry keep-alives.
    let mut after_end = app.events(&id, Some(*ids.last().unwrap())).await;
    let items: Vec<SseItem> = {
        let mut items = Vec::new();
        while let Some(item) = after_end.next().await {
            items.push(item);
        }
        items
    };
    let events: Vec<_> = items.iter().filter_map(event).map(|(_, n, _)| n).collect();
    assert_eq!(events, vec!["result"]);
    let quiet = app.submit_code(&user, "import time\ntime.sleep(2)").await;
    let mut stream = app.events(&quiet, None).await;
    let mut comments = 0;
    while let Some(item) = stream.next().await {
        if matches!(item, SseItem::Comment(_)) {
            comments += 1;
        }
    }
    assert!(
        comments >= 2,
        "{comments} keep-alive comments in a 2 s silence"
    );
    app.stop().await;
}
