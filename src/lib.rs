//! `pdscore`: a multi-tenant service that scores the probability of default (PD) of companies from their
//! financial filings, in real time.
//!
//! Map of the service crate (the ML lives in `pdscore-models`, the actor pipeline in `pdscore-actors`, the
//! JetStream adapters in `pdscore-nats`):
//! - [`configuration`]: typed settings from defaults, a file and the environment; secrets never printed;
//! - [`telemetry`]: tracing subscriber (pretty or JSON) and the Prometheus recorder;
//! - [`startup`]: `Application::build` / `run_until_stopped`: wiring, graceful shutdown;
//! - [`http`]: actix-web routes, the response envelope, the error-code table, request ids, metrics;
//! - [`health`]: dependency checks (PostgreSQL, Redis, NATS) with latency;
//! - [`db`]: the PostgreSQL pool, migrations and repositories; [`cache`]: the shared Redis connection;
//!   [`messaging`]: the NATS connection and stream upkeep; [`pipeline`]: the scoring pipeline's wiring
//!   (actors, PostgreSQL store, alert publisher and feed, JetStream ingest);
//! - [`auth`]: passwords (and, with the identity issue, JWT sessions and RBAC); [`domain`]: validated values;
//! - [`accounts`]: operator use cases behind the CLI (`create-super-admin`, `demo-setup`);
//! - [`cli`]: the command line of the `pdscore` binary; [`load`]: its load generator (`pdscore load`).

pub mod accounts;
pub mod auth;
pub mod bulk;
pub mod cache;
pub mod cli;
pub mod configuration;
pub mod db;
pub mod domain;
pub mod health;
pub mod http;
pub mod load;
pub mod messaging;
pub mod pipeline;
pub mod startup;
pub mod state;
pub mod telemetry;

/// The service's version, as reported by `/health`, `meta.version` and `pdscore version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
