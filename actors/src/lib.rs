//! The scoring pipeline as actix actors.
//!
//! What this crate owns (the pipeline issue builds it; this crate is its home from the start so that the
//! dependency direction `models ← actors ← nats ← service` holds from the first commit):
//! - `TenantRouter`: one supervised `TenantActor` per tenant, created on first use, stopped when idle;
//! - `TenantActor`: the tenant's token bucket and bounded mailbox (429 / Nak-with-delay when full);
//! - `ModelPool`: `SyncArbiter` workers holding the loaded models, scoring micro-batches off the async arbiters;
//! - `PersistWriter`: batched writes in one transaction, reporting the commit so the caller can ack;
//! - `BulkJob`: streams an uploaded file through the same pipeline, resumable from its last committed row;
//! - the **ports** the pipeline needs (prediction store, alert sink, …) as traits. Nothing here knows sqlx or
//!   async-nats: the service's repositories and the `pdscore-nats` crate implement the ports.

pub use pdscore_models::{PredictionType, RiskLevel};
