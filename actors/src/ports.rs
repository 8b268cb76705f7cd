//! The ports: what the pipeline needs from the outside world, implemented by the service (PostgreSQL
//! repositories, the NATS alert publisher). Futures are boxed so the ports can be trait objects.

use std::{sync::Arc, time::Duration};

use futures_util::future::BoxFuture;
use pdscore_models::statement::{ReportingPeriod, Statement};
use uuid::Uuid;

use crate::{
    filing::{Alert, Committed, Scores},
    policy::TenantPolicy,
};

/// Why the store could not do its part. Nothing was committed either way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or gave up (connection, pool, timeout): the same write may succeed
    /// later, so the caller answers 503 (HTTP) or Naks (JetStream) and it is retried.
    #[error("{0}")]
    Unavailable(String),
    /// The store refused what it was given (a value it cannot hold, a limit): the same write fails again.
    /// In a batch of filings, the culprit is not known: the writer commits them one by one to find it.
    #[error("{0}")]
    Refused(String),
}

impl StoreError {
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self::Unavailable(reason.into())
    }
}

/// One filing's fate in a commit.
#[derive(Debug, Clone, PartialEq)]
pub enum CommitResult {
    Committed(Box<Committed>),
    /// The company disappeared (deleted) between ingest and commit.
    CompanyGone,
    /// The filing's idempotency key (given here) names a filing of the same source and organization for
    /// another company, type, period or content: not the same filing, and nothing is written.
    KeyReused(String),
}

pub trait PredictionStore: Send + Sync + 'static {
    /// Writes the filings, their predictions and any alert in **one** transaction and returns each
    /// filing's result in input order (the batch is shared so that the caller can retry parts of it). Risk changes are decided inside that transaction (the companies'
    /// rows locked), by reporting period, so that concurrent writers and late arrivals agree.
    fn commit(&self, batch: Arc<Vec<Scores>>) -> BoxFuture<'static, Result<Vec<CommitResult>, StoreError>>;

    /// For each `(company, quarter)`: the statements of the three quarters before it, oldest first, when
    /// all three are on file (each quarter's latest quarterly statement), else `None`; in input order.
    fn previous_quarters(
        &self,
        tenant_id: Uuid,
        requests: Vec<(Uuid, ReportingPeriod)>,
    ) -> BoxFuture<'static, Result<Vec<Option<[Statement; 3]>>, StoreError>>;

    /// The tenant's current policy; `None` when the tenant does not exist.
    fn tenant_policy(&self, tenant_id: Uuid) -> BoxFuture<'static, Result<Option<TenantPolicy>, StoreError>>;
}

/// Where committed alerts go (the ALERTS stream, then live subscribers).
pub trait AlertSink: Send + Sync + 'static {
    /// Publishes committed alerts. Failures are the sink's to retry (the alert rows are an outbox).
    fn publish(&self, alerts: Vec<Alert>) -> BoxFuture<'static, ()>;
}

/// A tenant's rate limit as every instance of the service shares it: one bucket per tenant for the whole
/// fleet, so that N instances admit the tenant's rate, not N times it.
pub trait SharedLimits: Send + Sync + 'static {
    /// Takes one filing's token from the tenant's bucket (refilled at `rate` per second, holding `burst` at
    /// most: the limits of the tenant's policy as the caller read it). `Err`: the shared bucket cannot be
    /// reached, and the tenant actor's own bucket decides instead (each instance then admits up to the
    /// tenant's rate by itself).
    fn take(&self, tenant_id: Uuid, rate: f64, burst: u32) -> BoxFuture<'static, Result<Admission, StoreError>>;
}

/// A shared bucket's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Refused: come back after this long (the next free slot, booked for this caller, so that refused callers
    /// come back spread at the sustained rate).
    Wait(Duration),
}
