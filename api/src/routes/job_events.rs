//! `GET /api/v1/jobs/{id}/events`: Server-Sent Events as the kernel produces them.
//!
//! | event | id | data |
//! |---|---|---|
//! | `status` | log index | `{"status": "running" \| terminal}` |
//! | `stdout`, `stderr` | log index | `{"text": "…"}` |
//! | `display` | log index | `{"data": {mime: value}}` |
//! | `result` | — | the job's [`JobView`], after the terminal `status`; then the stream ends |
//!
//! Event ids are the job's event-log indices (1, 2, 3, …), so a client that reconnects
//! with `Last-Event-ID: n` gets exactly the events after n: nothing lost, nothing twice.
//! Idle streams carry a keep-alive comment. A job that ended without a terminal event
//! in its log (failed while being routed) still ends its stream with a `status` (no id)
//! and the `result`.

use super::jobs::{job_id, no_job};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde_json::json;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;
use tether_protocol::{JobEvent, JobEventKind, JobId, JobRecord, JobStatus, JobView, StreamName};

/// How long one wait for new events lasts before the record is looked at again.
const POLL: Duration = Duration::from_secs(5);
/// How long a terminal record's own `status` event is waited for before one is made up.
const TERMINAL_EVENT_GRACE: Duration = Duration::from_millis(500);

pub async fn job_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = job_id(&id)?;
    let after = last_event_id(&headers)?;
    if state.store().get(id).await?.is_none() {
        return Err(no_job(id));
    }
    let keep_alive = KeepAlive::new()
        .interval(state.config().sse_keep_alive)
        .text("keep-alive");
    let cursor = Cursor {
        state,
        id,
        after,
        pending: VecDeque::new(),
        done: false,
    };
    let stream = futures::stream::unfold(cursor, |mut cursor| async move {
        let event = cursor.next().await?;
        Some((Ok(event), cursor))
    });
    Ok(Sse::new(stream).keep_alive(keep_alive))
}

fn last_event_id(headers: &HeaderMap) -> Result<u64, ApiError> {
    match headers.get("last-event-id") {
        None => Ok(0),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                ApiError::invalid_field(
                    "Last-Event-ID",
                    "must be the id of an event of this stream (a whole number)",
                )
            }),
    }
}

/// Where a stream is in the job's event log.
struct Cursor {
    state: AppState,
    id: JobId,
    /// Index of the last event sent.
    after: u64,
    pending: VecDeque<Event>,
    /// The `result` is queued (or the stream must stop): send what is pending, then end.
    done: bool,
}

impl Cursor {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.fill().await {
                // The client reconnects with Last-Event-ID and resumes where it was.
                tracing::warn!(job_id = %self.id, error = e.detail(), "event stream ended early");
                self.done = true;
            }
        }
    }

    /// Queue the next events, waiting for them if there are none yet.
    async fn fill(&mut self) -> Result<(), ApiError> {
        let store = self.state.store().clone();
        let mut events = store
            .events_after(self.id, self.after, Duration::ZERO)
            .await?;
        if events.is_empty() {
            match store.get(self.id).await? {
                None => {
                    self.done = true;
                    return Ok(());
                }
                Some(record) if record.status.is_terminal() => return self.ending(record).await,
                Some(_) => {}
            }
            events = tokio::select! {
                waited = store.events_after(self.id, self.after, POLL) => waited?,
                () = self.state.shutdown().cancelled() => {
                    self.done = true;
                    return Ok(());
                }
            };
        }
        if self.push(events) {
            self.finish().await?;
        }
        Ok(())
    }

    /// Queue events in order; true once a terminal status is among them (later events,
    /// if any, are not sent).
    fn push(&mut self, events: Vec<JobEvent>) -> bool {
        for event in events {
            self.after = event.index;
            let terminal = is_terminal(&event.kind);
            self.pending.push_back(sse_event(&event));
            if terminal {
                return true;
            }
        }
        false
    }

    /// The record is terminal but no terminal event has been sent: send what is left of
    /// the log, then the status (made up if the log never gets one), then the result.
    async fn ending(&mut self, record: JobRecord) -> Result<(), ApiError> {
        let store = self.state.store().clone();
        let rest = store
            .events_after(self.id, self.after, TERMINAL_EVENT_GRACE)
            .await?;
        if !self.push(rest) && !self.terminal_already_sent().await? {
            self.pending.push_back(status_event(record.status));
        }
        self.finish().await
    }

    /// Whether the last event the client acknowledged (by its Last-Event-ID) was the
    /// terminal status, so that a reconnect after it gets only the result.
    async fn terminal_already_sent(&self) -> Result<bool, ApiError> {
        if self.after == 0 {
            return Ok(false);
        }
        let last = self
            .state
            .store()
            .events_after(self.id, self.after - 1, Duration::ZERO)
            .await?;
        Ok(last.first().is_some_and(|e| is_terminal(&e.kind)))
    }

    async fn finish(&mut self) -> Result<(), ApiError> {
        if let Some(record) = self.state.store().get(self.id).await? {
            let view = JobView::from(record);
            self.pending.push_back(
                Event::default()
                    .event("result")
                    .json_data(&view)
                    .expect("a job view always encodes as JSON"),
            );
        }
        self.done = true;
        Ok(())
    }
}

fn is_terminal(kind: &JobEventKind) -> bool {
    matches!(kind, JobEventKind::Status { status } if status.is_terminal())
}

fn sse_event(event: &JobEvent) -> Event {
    let (name, data) = match &event.kind {
        JobEventKind::Status { status } => ("status", json!({ "status": status })),
        JobEventKind::Stream {
            name: StreamName::Stdout,
            text,
        } => ("stdout", json!({ "text": text })),
        JobEventKind::Stream {
            name: StreamName::Stderr,
            text,
        } => ("stderr", json!({ "text": text })),
        JobEventKind::Display { data } => ("display", json!({ "data": data })),
    };
    Event::default()
        .event(name)
        .id(event.index.to_string())
        .json_data(data)
        .expect("event data always encodes as JSON")
}

fn status_event(status: JobStatus) -> Event {
    Event::default()
        .event("status")
        .json_data(json!({ "status": status }))
        .expect("event data always encodes as JSON")
}
