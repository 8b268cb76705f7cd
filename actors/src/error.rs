//! Why a filing was not scored: the one error every ingest path maps to its answer.

use std::time::Duration;

use crate::filing::Rejected;

/// Why a filing was not scored. The ingest path decides the answer: HTTP status, or JetStream Nak/Term.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PipelineError {
    /// The filing itself is wrong (client error; dead letter on NATS).
    #[error(transparent)]
    Rejected(Rejected),
    #[error("unknown tenant")]
    UnknownTenant,
    #[error("the tenant is deactivated")]
    TenantInactive,
    /// The tenant is over its rate limit: retry after the delay.
    #[error("rate limit exceeded; retry in {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// The tenant's queue is full: retry after the delay.
    #[error("the tenant's queue is full; retry in {retry_after:?}")]
    Overloaded { retry_after: Duration },
    /// A dependency failed (database, pool): nothing was committed; retry.
    #[error("{0}")]
    Unavailable(String),
}
