//! The ports: what the pipeline needs from the outside world, implemented by the service (PostgreSQL
//! repositories, the NATS alert publisher). Futures are boxed so the ports can be trait objects.

use futures_util::future::BoxFuture;
use uuid::Uuid;

use crate::{
    filing::{Alert, Committed, Scores},
    policy::TenantPolicy,
};

/// Why the store could not do its part. Every variant is transient from the pipeline's point of view: the
/// filing was not committed, so the caller answers 503 (HTTP) or Naks (JetStream) and it is retried.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// One filing's fate in a commit.
#[derive(Debug, Clone, PartialEq)]
pub enum CommitResult {
    Committed(Box<Committed>),
    /// The company disappeared (deleted) between ingest and commit.
    CompanyGone,
}

pub trait PredictionStore: Send + Sync + 'static {
    /// Writes the filings, their predictions and any alert in **one** transaction and returns each
    /// filing's result in input order. Risk changes are decided inside that transaction (the companies'
    /// rows locked), by reporting period, so that concurrent writers and late arrivals agree.
    fn commit(&self, batch: Vec<Scores>) -> BoxFuture<'static, Result<Vec<CommitResult>, StoreError>>;

    /// The tenant's current policy; `None` when the tenant does not exist.
    fn tenant_policy(&self, tenant_id: Uuid) -> BoxFuture<'static, Result<Option<TenantPolicy>, StoreError>>;
}

/// Where committed alerts go (the ALERTS stream, then live subscribers).
pub trait AlertSink: Send + Sync + 'static {
    /// Publishes committed alerts. Failures are the sink's to retry (the alert rows are an outbox).
    fn publish(&self, alerts: Vec<Alert>) -> BoxFuture<'static, ()>;
}
