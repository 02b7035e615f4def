//! Cross-origin browser access: off unless origins are configured. Preflights are
//! answered before authentication (browsers never send the token on them).

use crate::auth::AUTH_HEADER;
use crate::config::CorsOrigins;
use axum::http::{HeaderName, Method, header};
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The CORS layer for the configured origins; `None` when no origin is allowed.
pub fn layer(origins: &CorsOrigins) -> Option<CorsLayer> {
    let allow = match origins {
        CorsOrigins::None => return None,
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => AllowOrigin::list(list.iter().cloned()),
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::CONTENT_TYPE,
                HeaderName::from_static(AUTH_HEADER),
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([header::RETRY_AFTER, header::LOCATION])
            .max_age(Duration::from_secs(600)),
    )
}
