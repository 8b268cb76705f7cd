//! The pipeline's observable events, after Vector's `internal_events`: one struct per event, whose `emit`
//! records its metric and writes its log line together, so that a metric's name, labels and meaning have one
//! home and no call site spells a metric name. [`describe`] registers the help text of every metric here.
//!
//! Latency histograms end in `_seconds` and size histograms are listed in [`SIZE_HISTOGRAMS`]: the service's
//! recorder gives both bucket lists (histograms, not summaries, so that instances aggregate).

use std::{
    collections::HashSet,
    sync::{
        LazyLock, RwLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use metrics::{SharedString, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use pdscore_models::registry::ModelId;
use uuid::Uuid;

const FILINGS_RECEIVED: &str = "pdscore_filings_received_total";
const TENANT_OVERLOADED: &str = "pdscore_tenant_overloaded_total";
const RATE_LIMITED: &str = "pdscore_rate_limited_total";
const SHARED_LIMITS_UNAVAILABLE: &str = "pdscore_shared_limits_unavailable_total";
const TENANT_QUEUE_DEPTH: &str = "pdscore_tenant_queue_depth";
const FILINGS_REJECTED: &str = "pdscore_filings_rejected_total";
const PIPELINE_LATENCY: &str = "pdscore_pipeline_latency_seconds";
const TENANT_ACTORS: &str = "pdscore_tenant_actors";
const TENANT_ACTOR_RESTARTS: &str = "pdscore_tenant_actor_restarts_total";
const MODEL_WORKER_RESTARTS: &str = "pdscore_model_worker_restarts_total";
const MODEL_LATENCY: &str = "pdscore_model_latency_seconds";
const MODEL_BATCH_SIZE: &str = "pdscore_model_batch_size";
const PERSIST_BATCH_ROWS: &str = "pdscore_persist_batch_rows";
const PERSIST_COMMIT: &str = "pdscore_persist_commit_seconds";
const PERSIST_WAITING: &str = "pdscore_persist_waiting_rows";
const PERSIST_SPLIT: &str = "pdscore_persist_split_transactions_total";
const BULK_ROWS: &str = "pdscore_bulk_rows_total";

/// The histograms that count things (rows in a batch), not seconds.
pub const SIZE_HISTOGRAMS: [&str; 2] = [MODEL_BATCH_SIZE, PERSIST_BATCH_ROWS];

/// The `tenant` label of the per-tenant series: the slug of the first [`limit_tenant_series`] tenants this
/// process reports on, `_other` for the rest, so that 10,000 tenants do not mean 10,000 series per metric and
/// instance (the fleet's totals stay exact: every filing counts under one label or the other). No tenant's
/// slug starts with `_`, so none is mistaken for the pool.
pub const OTHER_TENANTS: &str = "_other";

static TENANT_LABELS: LazyLock<TenantLabels> = LazyLock::new(|| TenantLabels::new(100));

/// Tenants with series of their own, per process (`pipeline.max_tenant_series`; default 100).
pub fn limit_tenant_series(max: usize) {
    TENANT_LABELS.max.store(max, Ordering::Relaxed);
}

/// The first tenants seen, up to a bound.
struct TenantLabels {
    max: AtomicUsize,
    named: RwLock<HashSet<SharedString>>,
}

impl TenantLabels {
    fn new(max: usize) -> Self {
        Self {
            max: AtomicUsize::new(max),
            named: RwLock::default(),
        }
    }

    fn label(&self, tenant: &str) -> SharedString {
        if let Some(known) = self.named.read().unwrap_or_else(|e| e.into_inner()).get(tenant) {
            return known.clone();
        }
        let mut named = self.named.write().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = named.get(tenant) {
            return known.clone();
        }
        if named.len() < self.max.load(Ordering::Relaxed) {
            let label = SharedString::from(tenant.to_owned());
            named.insert(label.clone());
            return label;
        }
        SharedString::const_str(OTHER_TENANTS)
    }
}

fn tenant_label(tenant: &str) -> SharedString {
    TENANT_LABELS.label(tenant)
}

/// The tenant's label when it has series of its own, `None` when it counts under `_other`: for gauges,
/// which cannot be summed under one label.
pub fn named_tenant_label(tenant: &str) -> Option<SharedString> {
    Some(tenant_label(tenant)).filter(|label| label.as_ref() != OTHER_TENANTS)
}

/// Filings handed to a tenant's actor (`source`: http, nats, bulk).
pub struct FilingsReceived<'a> {
    pub tenant: &'a str,
    pub source: &'static str,
    pub count: u64,
}

impl FilingsReceived<'_> {
    pub fn emit(self) {
        counter!(FILINGS_RECEIVED, "tenant" => tenant_label(self.tenant), "source" => self.source)
            .increment(self.count);
    }
}

/// A filing refused because its tenant's queue was full.
pub struct TenantOverloaded<'a> {
    pub tenant: &'a str,
    pub source: &'static str,
}

impl TenantOverloaded<'_> {
    pub fn emit(self) {
        counter!(TENANT_OVERLOADED, "tenant" => tenant_label(self.tenant), "source" => self.source).increment(1);
    }
}

/// A filing refused by its tenant's rate limit.
pub struct TenantRateLimited<'a> {
    pub tenant: &'a str,
    pub source: &'static str,
}

impl TenantRateLimited<'_> {
    pub fn emit(self) {
        counter!(RATE_LIMITED, "tenant" => tenant_label(self.tenant), "source" => self.source).increment(1);
    }
}

/// The fleet's shared rate limits could not be reached: the tenant actor's own bucket decided instead.
pub struct SharedLimitsUnavailable<'a> {
    pub error: &'a dyn std::fmt::Display,
}

impl SharedLimitsUnavailable<'_> {
    pub fn emit(self) {
        counter!(SHARED_LIMITS_UNAVAILABLE).increment(1);
        tracing::debug!(error = %self.error, "shared rate limits unavailable; this instance's bucket decides");
    }
}

/// Filings a tenant's actor holds (queued and being scored); 0 when it stops. Reported as changes, so that the
/// tenants sharing the `_other` series add up.
#[derive(Debug, Default)]
pub struct TenantQueueDepth {
    /// The label and depth last reported.
    reported: Option<(SharedString, usize)>,
}

impl TenantQueueDepth {
    pub fn report(&mut self, tenant: &str, depth: usize) {
        let label = tenant_label(tenant);
        match self.reported.take() {
            Some((previous, was)) if previous == label => {
                gauge!(TENANT_QUEUE_DEPTH, "tenant" => label.clone()).increment(depth as f64 - was as f64);
            }
            Some((previous, was)) => {
                gauge!(TENANT_QUEUE_DEPTH, "tenant" => previous).decrement(was as f64);
                gauge!(TENANT_QUEUE_DEPTH, "tenant" => label.clone()).increment(depth as f64);
            }
            None => gauge!(TENANT_QUEUE_DEPTH, "tenant" => label.clone()).increment(depth as f64),
        }
        self.reported = Some((label, depth));
    }
}

/// A filing the pipeline refused for its content (no model for it, a feature it cannot compute, …).
pub struct FilingRejected {
    pub source: &'static str,
    pub code: crate::RejectCode,
}

impl FilingRejected {
    pub fn emit(self) {
        counter!(FILINGS_REJECTED, "source" => self.source, "code" => self.code.as_str()).increment(1);
    }
}

/// A filing's answer is known (committed or refused by the store): the time since its actor received it.
pub struct FilingAnswered {
    pub source: &'static str,
    pub elapsed: Duration,
}

impl FilingAnswered {
    pub fn emit(self) {
        histogram!(PIPELINE_LATENCY, "source" => self.source).record(self.elapsed.as_secs_f64());
    }
}

/// The number of live tenant actors changed.
pub struct TenantActors {
    pub count: usize,
}

impl TenantActors {
    pub fn emit(self) {
        gauge!(TENANT_ACTORS).set(self.count as f64);
    }
}

/// A tenant actor failed; the router starts another with the filings it had queued.
pub struct TenantActorFailed {
    pub tenant_id: Uuid,
    pub pending: usize,
}

impl TenantActorFailed {
    pub fn emit(self) {
        counter!(TENANT_ACTOR_RESTARTS).increment(1);
        tracing::warn!(tenant_id = %self.tenant_id, pending = self.pending, "restarting tenant actor");
    }
}

/// A model worker panicked while scoring a batch; it is rebuilt and the batch retried.
pub struct ModelWorkerFailed<'a> {
    pub reason: &'a str,
    pub filings: usize,
}

impl ModelWorkerFailed<'_> {
    pub fn emit(self) {
        tracing::error!(reason = %self.reason, filings = self.filings, "model worker failed; restarting it");
        counter!(MODEL_WORKER_RESTARTS).increment(1);
    }
}

/// A model scored a batch of rows.
pub struct ModelBatchScored<'a> {
    pub model: &'a ModelId,
    pub rows: usize,
    pub elapsed: Duration,
}

impl ModelBatchScored<'_> {
    pub fn emit(self) {
        histogram!(
            MODEL_LATENCY,
            "model" => self.model.name.clone(),
            "version" => self.model.version.to_string()
        )
        .record(self.elapsed.as_secs_f64());
        histogram!(MODEL_BATCH_SIZE).record(self.rows as f64);
    }
}

/// The persist writer started a transaction of `rows` filings.
pub struct PersistBatchStarted {
    pub rows: usize,
}

impl PersistBatchStarted {
    pub fn emit(self) {
        histogram!(PERSIST_BATCH_ROWS).record(self.rows as f64);
    }
}

/// A persist transaction ended (committed or not).
pub struct PersistCommitEnded {
    pub elapsed: Duration,
}

impl PersistCommitEnded {
    pub fn emit(self) {
        histogram!(PERSIST_COMMIT).record(self.elapsed.as_secs_f64());
    }
}

/// Rows waiting for a free company (or a free transaction slot) in the persist writer.
pub struct PersistWaiting {
    pub rows: usize,
}

impl PersistWaiting {
    pub fn emit(self) {
        gauge!(PERSIST_WAITING).set(self.rows as f64);
    }
}

/// The store refused a transaction for its data: its filings are committed one by one, so only the culprit
/// fails.
pub struct PersistTransactionSplit<'a> {
    pub filings: usize,
    pub reason: &'a str,
}

impl PersistTransactionSplit<'_> {
    pub fn emit(self) {
        tracing::warn!(
            reason = %self.reason,
            filings = self.filings,
            "the store refused a transaction; committing its filings one by one"
        );
        counter!(PERSIST_SPLIT).increment(1);
    }
}

/// A bulk job's chunk is committed: its rows scored and its rows refused.
pub struct BulkRowsDone {
    pub succeeded: u64,
    pub failed: u64,
}

impl BulkRowsDone {
    pub fn emit(self) {
        counter!(BULK_ROWS, "outcome" => "succeeded").increment(self.succeeded);
        counter!(BULK_ROWS, "outcome" => "failed").increment(self.failed);
    }
}

/// Registers the help text and unit of every metric above.
pub fn describe() {
    describe_counter!(
        FILINGS_RECEIVED,
        "Filings handed to a tenant's actor, by tenant and source"
    );
    describe_counter!(
        TENANT_OVERLOADED,
        "Filings refused because the tenant's queue was full, by tenant and source"
    );
    describe_counter!(
        RATE_LIMITED,
        "Filings refused by the tenant's rate limit, by tenant and source"
    );
    describe_counter!(
        SHARED_LIMITS_UNAVAILABLE,
        "Admissions decided by this instance's own bucket because the fleet's shared limits were unreachable"
    );
    describe_gauge!(
        TENANT_QUEUE_DEPTH,
        "Filings a tenant's actor holds (queued or being scored)"
    );
    describe_counter!(
        FILINGS_REJECTED,
        "Filings the pipeline refused for their content, by source and code"
    );
    describe_histogram!(
        PIPELINE_LATENCY,
        Unit::Seconds,
        "From a tenant actor's receipt of a filing to its answer, by source"
    );
    describe_gauge!(TENANT_ACTORS, "Live tenant actors");
    describe_counter!(TENANT_ACTOR_RESTARTS, "Tenant actors restarted after a failure");
    describe_counter!(MODEL_WORKER_RESTARTS, "Model workers rebuilt after a panic");
    describe_histogram!(
        MODEL_LATENCY,
        Unit::Seconds,
        "Scoring time of one batch, by model and version"
    );
    describe_histogram!(MODEL_BATCH_SIZE, Unit::Count, "Rows in a batch sent to a model");
    describe_histogram!(PERSIST_BATCH_ROWS, Unit::Count, "Filings in one persist transaction");
    describe_histogram!(PERSIST_COMMIT, Unit::Seconds, "Duration of one persist transaction");
    describe_gauge!(
        PERSIST_WAITING,
        "Rows waiting in the persist writer for their company or a transaction slot"
    );
    describe_counter!(
        PERSIST_SPLIT,
        "Transactions the store refused for their data, retried filing by filing"
    );
    describe_counter!(BULK_ROWS, "Bulk-job rows committed, by outcome (succeeded, failed)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_tenants_get_series_of_their_own_and_the_rest_share_one() {
        let labels = TenantLabels::new(2);
        assert_eq!(labels.label("a").as_ref(), "a");
        assert_eq!(labels.label("b").as_ref(), "b");
        assert_eq!(labels.label("c").as_ref(), OTHER_TENANTS);
        assert_eq!(labels.label("a").as_ref(), "a", "a tenant keeps its series");
        assert_eq!(labels.label("d").as_ref(), OTHER_TENANTS);
    }
}
