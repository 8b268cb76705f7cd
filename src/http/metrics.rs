//! `GET /metrics`: the Prometheus exposition. Pool gauges are sampled at scrape time, so they are exact
//! when read and cost nothing in between.

use actix_web::{HttpResponse, get, http::header::ContentType, web};

use crate::state::AppState;

/// Prometheus text exposition.
#[utoipa::path(tag = "operations", responses((status = 200, description = "Prometheus exposition", content_type = "text/plain")))]
#[get("/metrics")]
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
    let idle = state.db.num_idle() as f64;
    let size = f64::from(state.db.size());
    ::metrics::gauge!("db_pool_connections", "state" => "idle").set(idle);
    ::metrics::gauge!("db_pool_connections", "state" => "in_use").set(size - idle);
    ::metrics::gauge!("db_pool_max_connections").set(f64::from(state.db.options().get_max_connections()));
    ::metrics::gauge!("nats_connected").set(if state.messaging.is_connected() { 1.0 } else { 0.0 });
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
    if let Ok(bytes) = stats::allocated::read() {
        ::metrics::gauge!("pdscore_heap_allocated_bytes").set(bytes as f64);
    }
    if let Ok(bytes) = stats::resident::read() {
        ::metrics::gauge!("pdscore_heap_resident_bytes").set(bytes as f64);
    }
}
