//! The HTTP API (actix-web): routes, the response envelope, errors and the request context.
//!
//! | route                | what                                                        |
//! |----------------------|-------------------------------------------------------------|
//! | `GET /health`        | PostgreSQL, Redis, NATS with status and latency; 503 if down |
//! | `GET /health/live`   | the process answers (no dependency checked)                  |
//! | `GET /metrics`       | Prometheus exposition                                        |
//! | `/api/v1/…`          | the REST API (identity, scoring, bulk jobs: later issues)    |

pub mod envelope;
pub mod error;
pub mod health;
pub mod metrics;
pub mod middleware;
pub mod request_id;

use actix_web::{HttpResponse, Resource, web};

pub use error::{ApiError, ErrorCode};

/// Registers every route and the extractor configurations (their errors become envelopes).
pub fn configure(cfg: &mut web::ServiceConfig, max_json_body_bytes: usize) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(max_json_body_bytes)
            .error_handler(error::json_error),
    )
    .app_data(web::PathConfig::default().error_handler(error::path_error))
    .app_data(web::QueryConfig::default().error_handler(error::query_error))
    .service(resource("/health").get(health::health))
    .service(resource("/health/live").get(health::live))
    .service(resource("/metrics").get(metrics::metrics))
    .service(web::scope("/api/v1"))
    .default_service(web::to(not_found));
}

/// A resource whose unsupported methods answer `405 METHOD_NOT_ALLOWED` (not the app-wide 404).
pub fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(ErrorCode::NotFound, "No route matches this path."))
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        ErrorCode::MethodNotAllowed,
        ErrorCode::MethodNotAllowed.default_message(),
    ))
}
