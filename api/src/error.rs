//! The one error type every handler returns, and its one JSON shape:
//! `{"detail": "human sentence", "error": {"code": "snake_case", "message": "...", "field"?}}`
//! (`detail` is what the seed's clients read). The HTTP status follows from the code by
//! one exhaustive match; the error is logged once, when it becomes a response.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::time::Duration;
use tether_dispatcher::DispatchError;
use tether_protocol::{ErrorCode, ExecutionResult};
use tether_transport::{RegistryError, StoreError};

/// Which contract the response belongs to: the unversioned endpoints answer some
/// failures differently (a timeout there is a 400, as in the seed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    /// `/api/v1/...` and everything newer.
    Current,
    /// `POST /execute`, `POST /release`, `GET /status`.
    Legacy,
}

/// An error answer. Build it with the constructors; the status is derived, never chosen.
/// Boxed so that `Result<_, ApiError>` stays one pointer wide.
#[derive(Debug)]
pub struct ApiError(Box<Parts>);

#[derive(Debug)]
struct Parts {
    code: ErrorCode,
    contract: Contract,
    /// The human sentence clients show.
    detail: String,
    /// The specific reason, for machines and logs.
    message: String,
    /// The request field at fault, for validation errors.
    field: Option<String>,
    /// Sent as `Retry-After` (whole seconds, rounded up).
    retry_after: Option<Duration>,
    /// What the execution produced before it failed (timeouts, crashes).
    execution: Option<ExecutionResult>,
    /// Logged but never sent (internal errors).
    cause: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    detail: &'a str,
    error: ErrorBody<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    execution: Option<&'a ExecutionResult>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: ErrorCode,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    /// An error whose `detail` and `message` are the same sentence.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self(Box::new(Parts {
            code,
            contract: Contract::Current,
            message: detail.clone(),
            detail,
            field: None,
            retry_after: None,
            execution: None,
            cause: None,
        }))
    }

    pub fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "Invalid or missing authentication token",
        )
        .with_message("send the service's token in the X-Auth-Token header")
    }

    /// A request field is missing or wrong; `problem` says how.
    pub fn invalid_field(field: impl Into<String>, problem: impl Into<String>) -> Self {
        let field = field.into();
        let problem = problem.into();
        let mut e = Self::new(
            ErrorCode::InvalidRequest,
            format!("Invalid request: `{field}`: {problem}"),
        );
        e.0.message = problem;
        e.0.field = Some(field);
        e
    }

    /// The body is not JSON at all.
    pub fn invalid_json(problem: impl Into<String>) -> Self {
        let problem = problem.into();
        Self::new(
            ErrorCode::InvalidJson,
            format!("Request body is not valid JSON: {problem}"),
        )
        .with_message(problem)
    }

    /// The body or the code is bigger than allowed.
    pub fn payload_too_large(what: &str, limit: usize) -> Self {
        Self::new(
            ErrorCode::PayloadTooLarge,
            format!("The {what} is larger than the limit of {limit} bytes."),
        )
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, what)
    }

    /// A bug or an unexpected failure: the cause is logged, the client sees a generic sentence.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let mut e = Self::new(
            ErrorCode::Internal,
            "Internal server error; details are in the server log.",
        );
        e.0.cause = Some(cause.to_string());
        e
    }

    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.0.message = message.into();
        self
    }

    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.0.retry_after = Some(after);
        self
    }

    pub fn with_execution(mut self, execution: Option<ExecutionResult>) -> Self {
        self.0.execution = execution;
        self
    }

    /// Answer under the legacy contract.
    pub fn in_contract(mut self, contract: Contract) -> Self {
        self.0.contract = contract;
        self
    }

    pub fn code(&self) -> ErrorCode {
        self.0.code
    }

    pub fn detail(&self) -> &str {
        &self.0.detail
    }

    /// The HTTP status, from the code alone (and the contract, for the legacy timeout).
    pub fn status(&self) -> StatusCode {
        match self.0.code {
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidRequest | ErrorCode::InvalidJson | ErrorCode::IdempotencyConflict => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::NoCapacity | ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ExecutionError => StatusCode::BAD_REQUEST,
            ErrorCode::ExecutionTimeout => match self.0.contract {
                Contract::Current => StatusCode::SERVICE_UNAVAILABLE,
                Contract::Legacy => StatusCode::BAD_REQUEST,
            },
            ErrorCode::SandboxUnavailable | ErrorCode::SessionLost => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::Cancelled | ErrorCode::JobFinished | ErrorCode::IdempotencyInProgress => {
                StatusCode::CONFLICT
            }
            ErrorCode::NotFound | ErrorCode::FileNotFound => StatusCode::NOT_FOUND,
            ErrorCode::FileTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsafePath | ErrorCode::EgressDenied => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::TransferFailed => StatusCode::BAD_GATEWAY,
            ErrorCode::DiskFull => StatusCode::INSUFFICIENT_STORAGE,
            ErrorCode::PoisonJob | ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn log(&self, status: StatusCode) {
        let code = self.0.code.as_str();
        let cause = self.0.cause.as_deref().unwrap_or(&self.0.message);
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!(status = status.as_u16(), code, cause, "request failed");
        } else if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), code, cause, "request refused");
        } else {
            tracing::info!(status = status.as_u16(), code, cause, "request rejected");
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        self.log(status);
        let body = Body {
            detail: &self.0.detail,
            error: ErrorBody {
                code: self.0.code,
                message: &self.0.message,
                field: self.0.field.as_deref(),
            },
            execution: self.0.execution.as_ref(),
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(after) = self.0.retry_after {
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

impl From<DispatchError> for ApiError {
    fn from(e: DispatchError) -> Self {
        let retry_after = e.retry_after();
        let error = match &e {
            DispatchError::NotReady => ApiError::new(
                ErrorCode::Unavailable,
                "Worker pool is initializing. Please try again shortly.",
            ),
            DispatchError::NoCapacity => ApiError::new(
                ErrorCode::NoCapacity,
                "No available workers at the moment, please try again later.",
            ),
            DispatchError::SessionLost { .. } => ApiError::new(
                ErrorCode::SessionLost,
                "The node holding this session is gone; the session starts fresh if you retry.",
            ),
            DispatchError::Bus(_) | DispatchError::Registry(_) => ApiError::new(
                ErrorCode::Unavailable,
                "A backing service is unreachable right now. Please try again shortly.",
            ),
            DispatchError::Store(inner) => return ApiError::from_store(inner, e.to_string()),
        };
        let error = error.with_message(e.to_string());
        match retry_after {
            Some(after) => error.with_retry_after(after),
            None => error,
        }
    }
}

impl ApiError {
    fn from_store(e: &StoreError, message: String) -> Self {
        match e {
            StoreError::Unavailable(_) => ApiError::new(
                ErrorCode::Unavailable,
                "The result store is unreachable right now. Please try again shortly.",
            )
            .with_message(message)
            .with_retry_after(Duration::from_secs(2)),
            StoreError::Corrupt(_) | StoreError::Duplicate(_) => ApiError::internal(message),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let message = e.to_string();
        ApiError::from_store(&e, message)
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        ApiError::new(
            ErrorCode::Unavailable,
            "The node registry is unreachable right now. Please try again shortly.",
        )
        .with_message(e.to_string())
        .with_retry_after(Duration::from_secs(2))
    }
}
