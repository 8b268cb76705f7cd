//! `GET /metrics`: the Prometheus exposition. Pool gauges are sampled at scrape time, so they are exact
//! when read and cost nothing in between.

use actix_web::{HttpResponse, get, http::header::ContentType, web};

use crate::{
    http::AppState,
    telemetry::events::{HeapSampled, PoolsSampled},
};

/// Prometheus text exposition.
#[utoipa::path(tag = "operations", responses((status = 200, description = "Prometheus exposition", content_type = "text/plain")))]
#[get("/metrics")]
#[tracing::instrument(name = "http.metrics.metrics", skip_all)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    sample_pools(&state);
    sample_heap();
    state.metrics.run_upkeep();
    HttpResponse::Ok()
        .content_type(ContentType(
            "text/plain; version=0.0.4; charset=utf-8"
                .parse()
                .expect("a valid media type"),
        ))
        .body(state.metrics.render())
}

fn sample_pools(state: &AppState) {
    PoolsSampled {
        db_idle: u32::try_from(state.db.num_idle()).unwrap_or(u32::MAX),
        db_size: state.db.size(),
        db_max: state.db.options().get_max_connections(),
        nats_connected: state.messaging.is_connected(),
    }
    .emit();
}

/// The allocator's own account of the heap (jemalloc, the binary's allocator): bytes the service holds in live
/// allocations, and bytes of memory the allocator keeps resident for them. Unlike RSS, the first does not
/// include memory freed but not yet returned to the system.
fn sample_heap() {
    use tikv_jemalloc_ctl::{epoch, stats};
    // The statistics are a snapshot refreshed by advancing the epoch.
    if epoch::advance().is_err() {
        return;
    }
    HeapSampled {
        allocated: stats::allocated::read().ok(),
        resident: stats::resident::read().ok(),
    }
    .emit();
}
