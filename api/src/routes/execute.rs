//! `POST /api/v1/execute?user_uuid=U` with `{"code", "timeout_s"?}`: the seed's
//! `{"worker_id", "result_text", "result_base64"}` plus Tether's full result beside it.
//! Code that raised is still a 200: `result_text` is `"<ename>: <evalue>"` and `error`
//! holds the structured exception with its traceback.

use crate::error::ApiError;
use crate::extract::{JsonBody, SessionParam};
use crate::job_input::{ExecuteRequest, execute_job};
use crate::state::AppState;
use crate::sync_call::submit_and_wait;
use crate::verdict::{Execution, execution_of};
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use tether_protocol::{ExecutionResult, JobId};

/// The success body. Old clients read the first three fields and ignore the rest.
#[derive(Debug, Serialize)]
pub struct ExecuteResponse {
    pub worker_id: String,
    /// stdout + the text/plain of results; `"<ename>: <evalue>"` when the code raised.
    pub result_text: Option<String>,
    /// The last image/png emitted, base64.
    pub result_base64: Option<String>,
    pub job_id: JobId,
    /// The job's position in the session's log.
    pub seq: u64,
    /// outcome, state_preserved, stdout, stderr, outputs, error, execution_count,
    /// duration_ms, truncated, message, session_restarted, files.
    #[serde(flatten)]
    pub execution: ExecutionResult,
}

impl From<Execution> for ExecuteResponse {
    fn from(execution: Execution) -> Self {
        let result_text = match execution.raised() {
            Some(e) => format!("{}: {}", e.ename, e.evalue),
            None => execution.result.text(),
        };
        Self {
            worker_id: execution.worker_id,
            result_text: Some(result_text),
            result_base64: execution.result.last_png().map(str::to_owned),
            job_id: execution.job_id,
            seq: execution.seq,
            execution: execution.result,
        }
    }
}

pub async fn execute(
    State(state): State<AppState>,
    SessionParam(user): SessionParam,
    JsonBody(request): JsonBody<ExecuteRequest>,
) -> Result<Json<ExecuteResponse>, ApiError> {
    let kind = execute_job(request.code, request.timeout_s, state.config())?;
    let record = submit_and_wait(&state, user, kind).await?;
    Ok(Json(execution_of(record)?.into()))
}
