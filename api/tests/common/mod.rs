//! A real API server on port 0 over the in-memory bus, store and registry, with a fake
//! worker task that answers jobs with canned results chosen by the code's text:
//!
//! | code starts with | the fake worker answers |
//! |---|---|
//! | `raise` | succeeded, outcome `error` (ZeroDivisionError), after printing `before\n` |
//! | `png` | succeeded, stdout `plot\n` and an `image/png` display |
//! | `timeout-reset` | timed_out, outcome `kernel_restarted`, state lost |
//! | `timeout` | timed_out, outcome `timeout_interrupted`, state kept |
//! | `oom` | failed `sandbox_unavailable` with outcome `oom_killed` |
//! | `crash` | failed `sandbox_unavailable`, no result |
//! | `full` | failed `no_capacity` |
//! | `hang` | never answers |
//! | anything else | succeeded: stdout `hello\n`, result `2` |
#![allow(dead_code, reason = "each test binary uses a different part")]

use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;
use tether_api::{ApiConfig, AuthToken, RunError};
use tether_dispatcher::Dispatcher;
use tether_protocol::{
    ErrorCode, ExecError, ExecutionResult, Job, JobError, JobKind, JobResult, JobStatus, NodeId,
    Outcome, Output, StreamName, UnixMillis,
};
use tether_transport::memory::{MemoryBus, MemoryRegistry, MemoryStore};
use tether_transport::{JobBus, JobStore, NodeInfo, RecordUpdate, SessionRegistry};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const TOKEN: &str = "test-token-0123456789";
pub const NODE: &str = "node-1";
pub const PNG: &str = "iVBORw0KGgoAAAANSUhEUg==";

/// A running server and handles on its backends.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<MemoryStore>,
    pub registry: Arc<MemoryRegistry>,
    pub bus: Arc<MemoryBus>,
    pub shutdown: CancellationToken,
    pub server: JoinHandle<Result<(), RunError>>,
}

/// How the test wants its one node.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Node {
    /// Live, ready, room for 10 sessions, with a fake worker.
    Ready,
    /// Live but still warming its pool.
    Starting,
    /// Live, ready, no room for a new session.
    Full,
    /// No node at all.
    Absent,
}

pub fn config() -> ApiConfig {
    ApiConfig::new(AuthToken::new(TOKEN).unwrap())
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(config(), Node::Ready).await
}

pub async fn spawn_app_with(config: ApiConfig, node: Node) -> TestApp {
    let bus = Arc::new(MemoryBus::new());
    let store = Arc::new(MemoryStore::default());
    let registry = Arc::new(MemoryRegistry::new());
    let node_id = NodeId::try_from(NODE).unwrap();
    if node != Node::Absent {
        let (ready, sessions) = match node {
            Node::Starting => (false, 0),
            Node::Full => (true, 10),
            Node::Ready | Node::Absent => (true, 2),
        };
        let info = NodeInfo {
            id: node_id.clone(),
            capacity: 10,
            sessions,
            draining: false,
            detail: json!({
                "ready": ready, "total_workers": 4, "busy_workers": 1,
                "idle_workers": 2, "sessions": sessions
            }),
        };
        registry
            .heartbeat(info, Duration::from_secs(600))
            .await
            .unwrap();
        let deliveries = bus.consume(&node_id, 16).await.unwrap();
        tokio::spawn(fake_worker(node_id, deliveries, store.clone()));
    }
    let dispatcher = Dispatcher::new(bus.clone(), store.clone(), registry.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(tether_api::run(
        config,
        dispatcher,
        listener,
        shutdown.clone(),
    ));
    TestApp {
        base,
        client: reqwest::Client::new(),
        store,
        registry,
        bus,
        shutdown,
        server,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `POST /api/v1/execute?user_uuid=` with the token.
    pub async fn execute(&self, user: &str, code: &str) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/api/v1/execute?user_uuid={user}")))
            .header("X-Auth-Token", TOKEN)
            .json(&json!({ "code": code }))
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("X-Auth-Token", TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("X-Auth-Token", TOKEN)
            .send()
            .await
            .unwrap()
    }
}

/// Read a JSON body, asserting the status first (with the body in the message).
pub async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "body: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Assert the one error shape and return the body.
pub async fn error_of(response: reqwest::Response, status: u16, code: &str) -> Value {
    let body = json_of(response, status).await;
    assert!(body["detail"].is_string(), "no detail: {body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "no message: {body}");
    body
}

pub fn new_user() -> String {
    tether_protocol::UserUuid::random().to_string()
}

async fn fake_worker(
    node: NodeId,
    mut deliveries: tokio::sync::mpsc::Receiver<tether_transport::Delivery>,
    store: Arc<MemoryStore>,
) {
    while let Some(delivery) = deliveries.recv().await {
        let Ok(job) = delivery.job.as_ref() else {
            delivery.settle.reject(false).await;
            continue;
        };
        let started = RecordUpdate::Started {
            node: node.clone(),
            at: UnixMillis::now(),
        };
        let _ = store.update(job.id, started).await;
        if let Some(finished) = answer(job) {
            let _ = store.update(job.id, finished).await;
        }
        delivery.settle.ack().await;
    }
}

fn answer(job: &Job) -> Option<RecordUpdate> {
    let code = match &job.kind {
        JobKind::Execute(spec) => spec.code.as_str(),
        JobKind::Release => {
            return Some(finished(
                JobStatus::Succeeded,
                Some(JobResult::Release { released: true }),
                None,
            ));
        }
        JobKind::FilesImport(_) | JobKind::FilesExport(_) | JobKind::FilesDelete(_) => {
            return Some(finished(
                JobStatus::Failed,
                None,
                Some(JobError {
                    code: ErrorCode::InvalidRequest,
                    message: "the fake worker moves no files".into(),
                }),
            ));
        }
    };
    let execute = |r: ExecutionResult| Some(JobResult::Execute(r));
    let job_error = |code, message: &str| {
        Some(JobError {
            code,
            message: message.into(),
        })
    };
    let update = if code.starts_with("raise") {
        let error = ExecError {
            ename: "ZeroDivisionError".into(),
            evalue: "division by zero".into(),
            traceback: vec![
                "Traceback (most recent call last):".into(),
                "ZeroDivisionError: division by zero".into(),
            ],
        };
        let mut r = result(
            Outcome::Error,
            true,
            vec![stdout("before\n"), Output::Error(error.clone())],
        );
        r.error = Some(error);
        finished(JobStatus::Succeeded, execute(r), None)
    } else if code.starts_with("png") {
        let mut data = Map::new();
        data.insert("image/png".into(), Value::String(PNG.into()));
        data.insert("text/plain".into(), Value::String("<Figure>".into()));
        let display = Output::DisplayData {
            data,
            metadata: Map::new(),
        };
        let r = result(Outcome::Ok, true, vec![stdout("plot\n"), display]);
        finished(JobStatus::Succeeded, execute(r), None)
    } else if code.starts_with("timeout-reset") {
        let mut r = result(Outcome::KernelRestarted, false, vec![stdout("partial\n")]);
        r.message = Some("the kernel ignored the interrupt and was restarted; state lost".into());
        finished(JobStatus::TimedOut, execute(r), None)
    } else if code.starts_with("timeout") {
        let mut r = result(Outcome::TimeoutInterrupted, true, vec![stdout("partial\n")]);
        r.message = Some("interrupted; state kept".into());
        finished(JobStatus::TimedOut, execute(r), None)
    } else if code.starts_with("oom") {
        let r = result(Outcome::OomKilled, false, vec![]);
        let e = job_error(
            ErrorCode::SandboxUnavailable,
            "kernel killed by the OOM killer",
        );
        finished(JobStatus::Failed, execute(r), e)
    } else if code.starts_with("crash") {
        let e = job_error(ErrorCode::SandboxUnavailable, "sandbox container exited");
        finished(JobStatus::Failed, None, e)
    } else if code.starts_with("full") {
        let e = job_error(ErrorCode::NoCapacity, "every sandbox slot is in use");
        finished(JobStatus::Failed, None, e)
    } else if code.starts_with("hang") {
        return None;
    } else {
        let mut data = Map::new();
        data.insert("text/plain".into(), Value::String("2".into()));
        let value = Output::ExecuteResult {
            execution_count: Some(1),
            data,
            metadata: Map::new(),
        };
        finished(
            JobStatus::Succeeded,
            execute(result(Outcome::Ok, true, vec![stdout("hello\n"), value])),
            None,
        )
    };
    Some(update)
}

fn stdout(text: &str) -> Output {
    Output::Stream {
        name: StreamName::Stdout,
        text: text.into(),
    }
}

fn result(outcome: Outcome, state_preserved: bool, outputs: Vec<Output>) -> ExecutionResult {
    let stdout = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Stream {
                name: StreamName::Stdout,
                text,
            } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    ExecutionResult {
        outcome,
        state_preserved,
        stdout,
        stderr: String::new(),
        outputs,
        error: None,
        execution_count: Some(1),
        duration_ms: 3,
        truncated: false,
        message: None,
        session_restarted: false,
        files: vec![],
    }
}

fn finished(status: JobStatus, result: Option<JobResult>, error: Option<JobError>) -> RecordUpdate {
    RecordUpdate::Finished {
        status,
        result,
        error,
        at: UnixMillis::now(),
    }
}
