//! The scoring pipeline as actix actors.
//!
//! ```text
//! ingest (HTTP, NATS, bulk) ── Pipeline::submit ──► TenantRouter ──► TenantActor (token bucket, bounded queue)
//!                                                                        │ ScoreBatch
//!                                                                        ▼
//!                                                   ModelPool (SyncArbiter workers, micro-batches)
//!                                                                        │ Persist
//!                                                                        ▼
//!                                                   PersistWriter (group commit by free company) ──► AlertSink
//! ```
//!
//! What this crate owns:
//! - [`domain`]: the values every ingest path types its input into (company symbol, filing key, prediction
//!   type): one rule each;
//! - [`filing`]: what enters the pipeline ([`Filing`]) and what leaves it ([`Scores`], [`Committed`], [`Alert`]);
//! - [`ports`]: the traits the service implements with its repositories and NATS client
//!   ([`PredictionStore`], [`AlertSink`]): nothing here knows sqlx or async-nats;
//! - [`policy`]: a tenant's scoring policy (models, rate limit, risk scheme) and the token bucket;
//! - [`scoring`]: the pure function that turns filings into scores with the model registry;
//! - the actors, one file each: [`tenant_router`], [`tenant_actor`], [`model_pool`], [`persist_writer`];
//! - [`pipeline`]: the handle ingest paths hold, with `submit`; [`error`]: its typed refusals
//!   ([`PipelineError`]); [`config`]: its sizes and timings;
//! - [`bulk_job`]: one uploaded file run through the pipeline in chunks, resumable, cancellable;
//! - [`text`]: the rule every decoder applies to text (no control characters);
//! - [`events`]: what the pipeline reports, each event's metric and log line in one place.

pub mod bulk_job;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod filing;
pub mod model_pool;
pub mod persist_writer;
pub mod pipeline;
pub mod policy;
pub mod ports;
pub mod scoring;
pub mod tenant_actor;
pub mod tenant_router;
pub mod text;

pub use config::PipelineConfig;
pub use error::{PipelineError, RejectCode, Rejected};
pub use filing::{
    Alert, AlertReason, Committed, Filing, FilingContent, FilingSource, ModelScore, NewCompany, Scores, Stored, Terms,
};
pub use pdscore_models::{PredictionType, RiskLevel};
pub use pipeline::Pipeline;
pub use policy::{DefaultModels, ModelChoice, TenantPolicy};
pub use ports::{Admission, AlertSink, PredictionStore, SharedLimits, StoreError};
