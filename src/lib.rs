//! `pdscore`: a multi-tenant service that scores the probability of default (PD) of companies from their
//! financial filings, in real time.
//!
//! Map of the service crate (the ML lives in `pdscore-models`, the actor pipeline in `pdscore-actors`, the
//! JetStream adapters in `pdscore-nats`; the load generator is a binary of its own, `benches/load`). Its
//! modules in layers, highest first; each names only modules below it (`tests/architecture.rs` checks it):
//! - [`cli`]: the command line of the `pdscore` binary;
//! - [`startup`]: `Application::build` / `run_until_stopped`: wiring, graceful shutdown;
//! - [`http`]: actix-web routes (thin handlers), the request state, the principal extractor, the response
//!   envelope, the error-code table, request ids, metrics, the dashboard's assets;
//! - [`bulk`]: bulk jobs (file readers, the runner); [`health`]: dependency checks with latency;
//! - [`accounts`]: sign-in, refresh, sign-out, and the operator use cases behind the CLI; [`pipeline`]: the
//!   scoring pipeline's wiring and adapters (PostgreSQL store and directory, JetStream ingest); [`outcomes`]:
//!   realised credit events (recorded from the API, CSV imports and NATS); [`validation`]: back-tests of the
//!   models against them; [`deployment`]: model versions uploaded and activated without a restart;
//! - [`alerts`]: the alert stage after the commit (publisher, outbox, the live feed behind SSE);
//! - [`db`]: the PostgreSQL pool, migrations and repositories;
//! - [`auth`]: passwords, roles and permissions, scopes, tokens, sessions (no database); [`fleet`]: what the
//!   instances share (tenants' rate limits in Redis, changes that make their copies stale on NATS);
//! - [`cache`]: Redis and the local caches; [`messaging`]: the NATS connection and stream upkeep;
//! - [`domain`]: validated values; [`telemetry`]: tracing, the Prometheus recorder and the service's events;
//! - [`configuration`]: typed settings from defaults, a file and the environment; secrets never printed.

pub mod accounts;
pub mod alerts;
pub mod auth;
pub mod bulk;
pub mod cache;
pub mod cli;
pub mod configuration;
pub mod db;
pub mod deployment;
pub mod domain;
pub mod fleet;
pub mod health;
pub mod http;
pub mod messaging;
pub mod outcomes;
pub mod pipeline;
pub mod startup;
pub mod telemetry;
pub mod validation;

/// The service's version, as reported by `/health`, `meta.version` and `pdscore version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
