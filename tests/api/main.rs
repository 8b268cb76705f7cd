//! Integration tests against the real PostgreSQL, Redis and NATS JetStream servers. One binary for all of
//! them (one link step); each test isolates itself through `helpers::spawn_app`.

mod accounts;
mod auth;
mod authorization;
mod binary;
mod bulk;
mod crash;
mod dashboard;
mod deploy;
mod deployments;
mod drift;
mod envelope;
mod fleet;
mod health;
mod helpers;
mod hostile;
mod management;
mod metrics;
mod outage;
mod outcomes;
mod pipeline;
mod replays;
mod request_id;
mod schema;
mod streams;
mod validation;
