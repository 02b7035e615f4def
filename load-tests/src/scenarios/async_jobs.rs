//! `async`: the job API's three ways of getting a result — submit then long-poll the
//! record, submit then follow the SSE event stream, submit with a callback URL and wait
//! for the webhook — each driven with the stateful scripts and verified. A client kind
//! whose endpoint the server does not have is reported as unavailable, not as a crash.

use crate::cli::{AsyncArgs, AsyncClient, ThinkTime};
use crate::client::{ClientError, TetherClient, job_id};
use crate::driver::{self, Failure, Plan, Target};
use crate::report::{self, Report, RunConfig, Section};
use crate::scenarios::load;
use crate::stats::Figures;
use crate::workload::Answer;
use futures::StreamExt;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tether_protocol::{JobStatus, Output};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// One user's session driven through the job API.
#[derive(Debug, Clone)]
struct JobSession {
    client: TetherClient,
    user: String,
    kind: AsyncClient,
    wait: Duration,
    timeout: Duration,
    hooks: Option<Arc<Webhooks>>,
}

impl Target for JobSession {
    async fn execute(&mut self, code: &str) -> Result<Answer, Failure> {
        let deadline = Instant::now() + self.timeout;
        let callback = self.hooks.as_ref().map(|h| h.url.clone());
        let id = self
            .client
            .submit(&self.user, code, callback.as_deref())
            .await?;
        let record = match self.kind {
            AsyncClient::Poll => self.poll(&id, deadline).await?,
            AsyncClient::Sse => {
                self.follow(&id, deadline).await?;
                self.client.job(&id, Duration::ZERO).await?
            }
            AsyncClient::Webhook => match &self.hooks {
                Some(hooks) => hooks.wait(&id, deadline).await.ok_or_else(|| {
                    Failure::new(
                        "webhook_missing",
                        format!("no delivery for job {id} before the deadline"),
                    )
                })?,
                None => return Err(Failure::new("webhook_missing", "no listener")),
            },
        };
        record_answer(&record)
    }
}

impl JobSession {
    /// Long-poll until the record is terminal.
    async fn poll(&self, id: &str, deadline: Instant) -> Result<Value, Failure> {
        loop {
            let record = self.client.job(id, self.wait).await?;
            if is_terminal(&record) {
                return Ok(record);
            }
            if Instant::now() >= deadline {
                return Err(Failure::new("timeout", format!("job {id} not finished")));
            }
        }
    }

    /// Read the event stream until a terminal status event (or the stream ends).
    async fn follow(&self, id: &str, deadline: Instant) -> Result<(), Failure> {
        let mut response = self.client.events(id).await?;
        let mut buffer = String::new();
        loop {
            let chunk = tokio::time::timeout_at(deadline, response.chunk())
                .await
                .map_err(|_| Failure::new("timeout", format!("no terminal event for job {id}")))?
                .map_err(ClientError::from)?;
            let Some(chunk) = chunk else { return Ok(()) };
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                if sse_data(&event).is_some_and(|d| d["event"] == "status" && is_terminal(&d)) {
                    return Ok(());
                }
            }
        }
    }
}

/// The JSON in an SSE event's `data:` lines.
fn sse_data(event: &str) -> Option<Value> {
    let data: Vec<&str> = event
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    serde_json::from_str(&data.join("\n")).ok()
}

fn is_terminal(record: &Value) -> bool {
    serde_json::from_value::<JobStatus>(record["status"].clone()).is_ok_and(JobStatus::is_terminal)
}

/// The answer inside a terminal job record (status `succeeded` with an execute result).
fn record_answer(record: &Value) -> Result<Answer, Failure> {
    let status = record["status"].as_str().unwrap_or("missing");
    if status != "succeeded" {
        let why = record
            .get("error")
            .map_or_else(String::new, Value::to_string);
        return Err(Failure::new(format!("job_{status}"), why));
    }
    let result = &record["result"];
    let outputs: Vec<Output> =
        serde_json::from_value(result["outputs"].clone()).unwrap_or_default();
    let stdout = result["stdout"].as_str().unwrap_or_default().to_owned();
    let problem = match (&result["error"], result["outcome"].as_str()) {
        (Value::Null, None | Some("ok")) => None,
        (Value::Null, Some(outcome)) => Some(outcome.to_owned()),
        (error, _) => Some(error.to_string()),
    };
    let mut answer = Answer::from_outputs(&outputs, stdout, problem);
    if answer.result_text.is_none() {
        answer.result_text = result["result_text"].as_str().map(str::to_owned);
    }
    Ok(answer)
}

/// A loopback HTTP listener that records webhook deliveries by job id.
#[derive(Debug)]
struct Webhooks {
    url: String,
    arrived: Mutex<HashMap<String, Value>>,
    notify: Notify,
}

impl Webhooks {
    /// Listen on 127.0.0.1 (a free port) until `stop`.
    async fn start(stop: CancellationToken) -> anyhow::Result<Arc<Self>> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let hooks = Arc::new(Self {
            url: format!("http://{}/hook", listener.local_addr()?),
            arrived: Mutex::new(HashMap::new()),
            notify: Notify::new(),
        });
        let serving = hooks.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((stream, _)) = accepted else { continue };
                let hooks = serving.clone();
                tokio::spawn(async move {
                    if let Ok(Ok(Some(body))) =
                        tokio::time::timeout(Duration::from_secs(10), read_delivery(stream)).await
                    {
                        hooks.deliver(body);
                    }
                });
            }
        });
        Ok(hooks)
    }

    fn deliver(&self, body: Value) {
        if let Some(id) = job_id(&body) {
            self.arrived
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id, body);
            self.notify.notify_waiters();
        }
    }

    /// The delivery for `id`, once it arrived (or `None` at the deadline).
    async fn wait(&self, id: &str, deadline: Instant) -> Option<Value> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(body) = self
                .arrived
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(id)
            {
                return Some(body);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

/// Read one HTTP/1.1 request (headers + Content-Length body, at most 16 MiB), answer 204.
async fn read_delivery(mut stream: tokio::net::TcpStream) -> std::io::Result<Option<Value>> {
    const MAX: usize = 16 * 1024 * 1024;
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let (head_end, length) = loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length.min(MAX));
        }
        if data.len() > MAX {
            return Ok(None);
        }
    };
    while data.len() < head_end + length {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
    }
    stream
        .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await?;
    let end = data.len().min(head_end + length);
    Ok(serde_json::from_slice(&data[head_end..end]).ok())
}

/// Try one job with this client kind; `Err` says why the kind cannot be measured.
async fn probe(session: &mut JobSession) -> Result<(), String> {
    let mut probe = session.clone();
    probe.user = uuid::Uuid::new_v4().to_string();
    probe.timeout = probe.timeout.min(Duration::from_secs(30));
    let outcome = probe.execute("1 + 1").await;
    let _ = probe.client.release(&probe.user).await;
    match outcome {
        Ok(a) if a.is("2") => Ok(()),
        Ok(a) => Err(format!(
            "probe job answered {:?} instead of 2",
            a.result_text
        )),
        Err(f) if f.kind == "http_404" || f.kind == "http_405" => {
            Err(format!("endpoint not available ({})", &f.kind[5..]))
        }
        Err(f) if f.kind == "webhook_missing" => {
            Err("no webhook delivery within 30 s (callback_url not supported?)".into())
        }
        Err(f) => Err(format!("{}: {}", f.kind, f.detail)),
    }
}

/// The `async` subcommand.
pub async fn run(args: AsyncArgs, stop: &CancellationToken) -> anyhow::Result<()> {
    let (users, requests) = if args.limits.smoke {
        (1, 2)
    } else {
        (args.users, args.requests)
    };
    let think = args.think.unwrap_or(ThinkTime::ZERO);
    let plan = Plan {
        requests_per_user: requests,
        first_step: 0,
        think,
        max_duration: args.limits.max_duration(),
        exclude_setup: args.exclude_setup.unwrap_or(false),
    };
    let timeout = args.limits.request_timeout();
    let client = TetherClient::new(
        &args.target.url,
        args.target.token.clone(),
        timeout + Duration::from_secs(args.wait_s),
        users,
    )?;
    load::preflight(&client).await?;
    let mut report = Report::new(
        "async",
        args.target.mode,
        client.base().as_str(),
        RunConfig::new(users, requests, think, args.limits.smoke),
    );
    let listening = stop.child_token();
    let mut series = Vec::new();
    for kind in args.clients.iter().copied() {
        if stop.is_cancelled() {
            break;
        }
        let name = match kind {
            AsyncClient::Poll => "poll",
            AsyncClient::Sse => "sse",
            AsyncClient::Webhook => "webhook",
        };
        let hooks = match kind {
            AsyncClient::Webhook => Some(Webhooks::start(listening.clone()).await?),
            _ => None,
        };
        let mut template = JobSession {
            client: client.clone(),
            user: String::new(),
            kind,
            wait: Duration::from_secs(args.wait_s),
            timeout,
            hooks,
        };
        if let Err(why) = probe(&mut template).await {
            report
                .sections
                .insert(name.into(), Section::unavailable(why));
            continue;
        }
        let sessions: Vec<JobSession> = (0..users)
            .map(|_| JobSession {
                user: uuid::Uuid::new_v4().to_string(),
                ..template.clone()
            })
            .collect();
        let bar = driver::progress(args.output.quiet, users as u64 * requests, name);
        let run = driver::drive(sessions, plan, &bar, stop).await;
        bar.finish_and_clear();
        let unreleased = futures::stream::iter(&run.targets)
            .map(|s| async move { s.client.release(&s.user).await })
            .buffer_unordered(8)
            .filter(|r| std::future::ready(r.is_err()))
            .count()
            .await;
        if unreleased > 0 {
            report.notes.push(format!(
                "{name}: {unreleased} sessions could not be released"
            ));
        }
        let figures = Figures::from_samples(&run.measured.samples, run.measured.elapsed);
        if report.figures.is_none() {
            report.figures = Some(figures.clone());
        }
        report
            .sections
            .insert(name.into(), Section::measured(figures));
        series.push(report::series(name, &run.measured.samples));
    }
    listening.cancel();
    if report.figures.is_none() {
        report
            .notes
            .push("no async client kind could be measured against this server".into());
    }
    report.emit(&series, &args.output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sse_events_are_parsed_and_terminal_status_recognised() {
        let event = "id: 3\nevent: status\ndata: {\"index\":3,\"event\":\"status\",\"status\":\"succeeded\"}\n\n";
        let data = sse_data(event).expect("data");
        assert!(data["event"] == "status" && is_terminal(&data));
        assert!(!is_terminal(&json!({"status": "running"})));
        assert!(sse_data(": keep-alive\n\n").is_none());
    }

    #[test]
    fn records_give_answers_or_failures() {
        let ok = json!({"status": "succeeded", "result": {"type": "execute", "outcome": "ok", "stdout": "",
            "outputs": [{"type": "execute_result", "execution_count": 1, "data": {"text/plain": "42"}}]}});
        assert!(record_answer(&ok).expect("answer").is("42"));
        let lost = json!({"status": "session_lost", "error": {"code": "session_lost", "message": "node died"}});
        assert_eq!(
            record_answer(&lost).expect_err("failure").kind,
            "job_session_lost"
        );
    }

    #[tokio::test]
    async fn the_webhook_listener_matches_deliveries_to_jobs() {
        let stop = CancellationToken::new();
        let hooks = Webhooks::start(stop.clone()).await.expect("listener");
        let body = json!({"job_id": "j1", "status": "succeeded"}).to_string();
        let mut stream = tokio::net::TcpStream::connect(
            hooks
                .url
                .trim_start_matches("http://")
                .trim_end_matches("/hook"),
        )
        .await
        .expect("connect");
        let request = format!(
            "POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.expect("reply");
        assert!(reply.starts_with("HTTP/1.1 204"), "{reply}");
        let got = hooks
            .wait("j1", Instant::now() + Duration::from_secs(5))
            .await
            .expect("delivery");
        assert_eq!(got["status"], "succeeded");
        stop.cancel();
    }
}
