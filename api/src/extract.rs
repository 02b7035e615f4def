//! Request extractors that fail with [`ApiError`], so that a malformed request gets the
//! same error shape as every other failure: 422 naming the field, 413 past the size limit.

use crate::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use tether_protocol::UserUuid;

/// A JSON body of type `T`. The `Content-Type` is not checked (curl's `-d` sends a form
/// type); the body must parse as `T`, and errors name the offending field.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = body_limit_hint(&req);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large("request body", limit)
            } else {
                ApiError::invalid_json(rejection.body_text())
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The body limit in force, for the 413 message (set by the router as an extension).
fn body_limit_hint(req: &Request) -> usize {
    req.extensions()
        .get::<BodyLimit>()
        .map_or(0, |BodyLimit(limit)| *limit)
}

/// The request body limit, carried as a request extension so the 413 can quote it.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Parse `bytes` as the JSON object `T`; syntax errors are `invalid_json`, shape errors
/// name the field. Only an object is accepted (serde would also read a struct from an
/// array, which no client means).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(ApiError::invalid_json(
                "the body is empty; expected a JSON object",
            ));
        }
        Some(b'{') => {}
        Some(_) if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() => {
            return Err(ApiError::invalid_field("body", "expected a JSON object"));
        }
        Some(_) => {}
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            Category::Syntax | Category::Eof | Category::Io => {
                ApiError::invalid_json(inner.to_string())
            }
            Category::Data => {
                let message = inner.to_string();
                let field = if path == "." {
                    backticked(&message).unwrap_or("body").to_owned()
                } else {
                    path
                };
                ApiError::invalid_field(field, message)
            }
        }
    })?;
    de.end()
        .map_err(|e| ApiError::invalid_json(e.to_string()))?;
    Ok(value)
}

/// The first `name` quoted in backticks in a serde message ("missing field `code`").
fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// The session named by the `user_uuid` query parameter.
#[derive(Debug, Clone, Copy)]
pub struct SessionParam(pub UserUuid);

#[derive(Deserialize)]
struct SessionQuery {
    user_uuid: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for SessionParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Query(query) = Query::<SessionQuery>::try_from_uri(&parts.uri)
            .map_err(|e| ApiError::invalid_field("user_uuid", e.body_text()))?;
        let raw = query.user_uuid.ok_or_else(|| {
            ApiError::invalid_field("user_uuid", "the query parameter is required")
        })?;
        parse_user_uuid(&raw).map(SessionParam)
    }
}

/// Parse a session name, answering 422 naming `user_uuid` if it is not a UUID.
pub fn parse_user_uuid(raw: &str) -> Result<UserUuid, ApiError> {
    UserUuid::try_from(raw).map_err(|e| ApiError::invalid_field("user_uuid", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_protocol::ErrorCode;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only parsed")]
    struct Sample {
        code: String,
        timeout_s: Option<f64>,
    }

    fn field_of(body: &str) -> (ErrorCode, String) {
        let e = parse_json::<Sample>(body.as_bytes()).expect_err("must fail");
        (e.code(), e.detail().to_owned())
    }

    #[test]
    fn errors_name_the_field() {
        let (code, detail) = field_of(r#"{"code": 5}"#);
        assert_eq!(code, ErrorCode::InvalidRequest);
        assert!(detail.contains("`code`"), "{detail}");
        let (_, detail) = field_of(r#"{}"#);
        assert!(detail.contains("`code`"), "{detail}");
        let (_, detail) = field_of(r#"{"code": "x", "cod": 1}"#);
        assert!(detail.contains("`cod`"), "{detail}");
        let (_, detail) = field_of(r#"{"code": "x", "timeout_s": "soon"}"#);
        assert!(detail.contains("`timeout_s`"), "{detail}");
    }

    #[test]
    fn syntax_errors_are_invalid_json() {
        assert_eq!(field_of("print(1)").0, ErrorCode::InvalidJson);
        assert_eq!(field_of("").0, ErrorCode::InvalidJson);
        assert_eq!(
            field_of(r#"{"code": "x"} trailing"#).0,
            ErrorCode::InvalidJson
        );
    }
}
