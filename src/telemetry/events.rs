//! What the service reports (as `pdscore_actors::events`): one struct per event, whose `emit` records its
//! metric and writes its log line together, so that a metric's name, labels and meaning have one home;
//! [`describe`] registers their help text. Every metric of the service is named `pdscore_…`.

use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

const HTTP_REQUESTS: &str = "pdscore_http_requests_total";
const HTTP_DURATION: &str = "pdscore_http_request_duration_seconds";
const DB_POOL_CONNECTIONS: &str = "pdscore_db_pool_connections";
const DB_POOL_MAX: &str = "pdscore_db_pool_max_connections";
const NATS_CONNECTED: &str = "pdscore_nats_connected";
const DEPENDENCY_UP: &str = "pdscore_dependency_up";
const DEPENDENCY_CHECK: &str = "pdscore_dependency_check_duration_seconds";
const BUILD_INFO: &str = "pdscore_build_info";
const HEAP_ALLOCATED: &str = "pdscore_heap_allocated_bytes";
const HEAP_RESIDENT: &str = "pdscore_heap_resident_bytes";
const LIVE_STREAMS: &str = "pdscore_live_streams";
const LIVE_STREAMS_REFUSED: &str = "pdscore_live_streams_refused_total";
const SSE_ALERTS_MISSED: &str = "pdscore_sse_alerts_missed_total";
const PORTFOLIO_CACHE: &str = "pdscore_portfolio_cache_total";
const PORTFOLIO_CACHE_INVALIDATION_FAILURES: &str = "pdscore_portfolio_cache_invalidation_failures_total";
const DRIFT_PSI: &str = "pdscore_drift_psi";
const DRIFT_ALERTS: &str = "pdscore_drift_alerts_total";

/// An HTTP request was answered (`route`: the matched pattern, or one label for every unmatched path).
pub struct HttpRequestServed<'a> {
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub elapsed: Duration,
}

impl HttpRequestServed<'_> {
    pub fn emit(self) {
        let latency_ms = self.elapsed.as_secs_f64() * 1e3;
        if self.status >= 500 {
            tracing::warn!(latency_ms, "request completed");
        } else if self.route.starts_with("/health") || self.route == "/metrics" {
            tracing::debug!(latency_ms, "request completed");
        } else {
            tracing::info!(latency_ms, "request completed");
        }
        let labels = [
            ("method", self.method.to_owned()),
            ("route", self.route.to_owned()),
            ("status", self.status.to_string()),
        ];
        counter!(HTTP_REQUESTS, &labels).increment(1);
        histogram!(HTTP_DURATION, &labels).record(self.elapsed.as_secs_f64());
    }
}

/// A health check of one dependency ended.
pub struct DependencyChecked<'a> {
    pub dependency: &'static str,
    pub latency: Duration,
    /// The failure, when it failed.
    pub error: Option<&'a anyhow::Error>,
}

impl DependencyChecked<'_> {
    pub fn emit(self) {
        histogram!(DEPENDENCY_CHECK, "dependency" => self.dependency).record(self.latency.as_secs_f64());
        gauge!(DEPENDENCY_UP, "dependency" => self.dependency).set(if self.error.is_none() { 1.0 } else { 0.0 });
        if let Some(e) = self.error {
            tracing::warn!(dependency = self.dependency, error = %format!("{e:#}"), "health check failed");
        }
    }
}

/// The connection pools, sampled when `/metrics` is scraped.
pub struct PoolsSampled {
    pub db_idle: u32,
    pub db_size: u32,
    pub db_max: u32,
    pub nats_connected: bool,
}

impl PoolsSampled {
    pub fn emit(self) {
        gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(f64::from(self.db_idle));
        gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set(f64::from(self.db_size.saturating_sub(self.db_idle)));
        gauge!(DB_POOL_MAX).set(f64::from(self.db_max));
        gauge!(NATS_CONNECTED).set(if self.nats_connected { 1.0 } else { 0.0 });
    }
}

/// The allocator's account of the heap, sampled when `/metrics` is scraped.
pub struct HeapSampled {
    pub allocated: Option<usize>,
    pub resident: Option<usize>,
}

impl HeapSampled {
    pub fn emit(self) {
        if let Some(bytes) = self.allocated {
            gauge!(HEAP_ALLOCATED).set(bytes as f64);
        }
        if let Some(bytes) = self.resident {
            gauge!(HEAP_RESIDENT).set(bytes as f64);
        }
    }
}

/// The service started: its version, as labels of a constant series.
pub struct Started {
    pub version: &'static str,
}

impl Started {
    pub fn emit(self) {
        gauge!(BUILD_INFO, "version" => self.version).set(1.0);
    }
}

/// A live stream (Server-Sent Events) opened, or closed.
pub enum LiveStream {
    Opened,
    Closed,
    /// Refused: its user or the instance has as many open as allowed.
    Refused,
}

impl LiveStream {
    pub fn emit(self) {
        match self {
            Self::Opened => gauge!(LIVE_STREAMS).increment(1.0),
            Self::Closed => gauge!(LIVE_STREAMS).decrement(1.0),
            Self::Refused => counter!(LIVE_STREAMS_REFUSED).increment(1),
        }
    }
}

/// An alert stream fell behind the alerts feed and skipped `missed` alerts (its client is told).
pub struct SseAlertsMissed {
    pub missed: u64,
}

impl SseAlertsMissed {
    pub fn emit(self) {
        counter!(SSE_ALERTS_MISSED).increment(self.missed);
    }
}

/// A portfolio read asked the Redis cache.
pub enum PortfolioCacheLookup<'a> {
    Hit,
    Miss,
    /// Redis did not answer: the read goes to PostgreSQL.
    Error(&'a redis::RedisError),
}

impl PortfolioCacheLookup<'_> {
    pub fn emit(self) {
        let outcome = match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Error(e) => {
                tracing::debug!(error = %e, "portfolio cache unavailable");
                "error"
            }
        };
        counter!(PORTFOLIO_CACHE, "outcome" => outcome).increment(1);
    }
}

/// A tenant's cached portfolio answers could not be invalidated: they stay until their TTL.
pub struct PortfolioCacheNotInvalidated<'a> {
    pub tenant: uuid::Uuid,
    pub error: &'a redis::RedisError,
}

impl PortfolioCacheNotInvalidated<'_> {
    pub fn emit(self) {
        counter!(PORTFOLIO_CACHE_INVALIDATION_FAILURES).increment(1);
        tracing::warn!(error = %self.error, tenant = %self.tenant, "portfolio cache not invalidated");
    }
}

/// A model's drift for a tenant was measured against a reference: the PSI of its PD and the largest of its
/// features' (`series` = `pd`, `features_max`). Tenants beyond `pipeline.max_tenant_series` have no gauges
/// (a gauge cannot be summed under `_other`): their PSIs are in `GET /drift` and its alerts.
pub struct DriftMeasured<'a> {
    pub tenant: &'a str,
    pub model: &'a str,
    pub reference: &'static str,
    pub pd: Option<f64>,
    pub features_max: Option<f64>,
}

impl DriftMeasured<'_> {
    pub fn emit(self) {
        let Some(tenant) = pdscore_actors::events::named_tenant_label(self.tenant) else {
            return;
        };
        for (series, value) in [("pd", self.pd), ("features_max", self.features_max)] {
            if let Some(value) = value {
                gauge!(DRIFT_PSI, "tenant" => tenant.clone(), "model" => self.model.to_owned(),
                       "reference" => self.reference, "series" => series)
                .set(value);
            }
        }
    }
}

/// A drift alert was raised (`reference`: training, past).
pub struct DriftAlertRaised {
    pub reference: &'static str,
}

impl DriftAlertRaised {
    pub fn emit(self) {
        counter!(DRIFT_ALERTS, "reference" => self.reference).increment(1);
        tracing::info!(reference = self.reference, "drift alert raised");
    }
}

/// Registers the help text of every metric above.
pub fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests served, by method, route pattern and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency, by method, route pattern and status"
    );
    describe_gauge!(
        DB_POOL_CONNECTIONS,
        "PostgreSQL pool connections, by state (idle, in_use)"
    );
    describe_gauge!(DB_POOL_MAX, "PostgreSQL pool capacity");
    describe_gauge!(
        DRIFT_PSI,
        "Population stability index of a tenant's answering model against a reference (training, past), for its PD and the largest of its features"
    );
    describe_counter!(DRIFT_ALERTS, "Drift alerts raised, by reference (training, past)");
    describe_gauge!(NATS_CONNECTED, "1 when the NATS connection is up");
    describe_gauge!(
        DEPENDENCY_UP,
        "1 when the dependency's last health check passed, by dependency"
    );
    describe_histogram!(
        DEPENDENCY_CHECK,
        Unit::Seconds,
        "Latency of health checks, by dependency"
    );
    describe_gauge!(BUILD_INFO, "Always 1; labels carry the version");
    describe_gauge!(HEAP_ALLOCATED, Unit::Bytes, "Bytes in live allocations (jemalloc)");
    describe_gauge!(
        HEAP_RESIDENT,
        Unit::Bytes,
        "Bytes of memory the allocator keeps resident (jemalloc)"
    );
    describe_gauge!(LIVE_STREAMS, "Open Server-Sent Events streams");
    describe_counter!(
        LIVE_STREAMS_REFUSED,
        "Live streams refused: too many open for their user or the instance"
    );
    describe_counter!(
        SSE_ALERTS_MISSED,
        "Alerts an alert stream skipped because it fell behind"
    );
    describe_counter!(
        PORTFOLIO_CACHE,
        "Portfolio reads asking the Redis cache, by outcome (hit, miss, error)"
    );
    describe_counter!(
        PORTFOLIO_CACHE_INVALIDATION_FAILURES,
        "Writes whose portfolio cache invalidation failed (answers stay until their TTL)"
    );
}
