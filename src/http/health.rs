//! `GET /health` and `GET /health/live`.

use std::time::Duration;

use actix_web::{HttpResponse, get, web};

use super::{ApiError, envelope};
use crate::{health as checks, http::AppState};

/// Readiness: every dependency checked. 200 with the report, or 503 `SERVICE_UNAVAILABLE` with the report
/// in `error.details` when a required dependency is down.
#[utoipa::path(tag = "operations", responses((status = 200, description = "All required dependencies are up"),
    (status = 503, body = envelope::ErrorBody)))]
#[get("/health")]
#[tracing::instrument(name = "health", skip_all)]
pub async fn health(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let report = checks::check(checks::Dependencies {
        db: &state.db,
        redis: &state.redis,
        messaging: &state.messaging,
        settings: &state.health,
        started_at: state.started_at,
    })
    .await;
    let failing = report.failing_required();
    if failing.is_empty() {
        return Ok(envelope::ok(report));
    }
    let details = serde_json::to_value(&report).map_err(ApiError::internal)?;
    Err(ApiError::unavailable(
        format!("Required dependencies are down: {}", failing.join(", ")),
        Duration::from_secs(5),
    )
    .with_details(details))
}

/// Liveness: the process is up and serving; says nothing about dependencies.
#[utoipa::path(tag = "operations", responses((status = 200, description = "The process serves")))]
#[get("/health/live")]
#[tracing::instrument(name = "http.health.live", skip_all)]
pub async fn live() -> HttpResponse {
    envelope::ok(serde_json::json!({ "status": "alive", "version": crate::VERSION }))
}
