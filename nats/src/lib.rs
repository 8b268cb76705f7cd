//! NATS JetStream adapters of the scoring service.
//!
//! What this crate owns:
//! - [`subjects`]: the subject and stream naming scheme, including the per-deployment (or per-test) prefix
//!   that keeps several deployments on one NATS server apart;
//! - [`streams`]: the JetStream streams the product needs (`FILINGS`, `ALERTS`, `DEAD_LETTERS`, `OUTCOMES`). Their
//!   definitions live in `nats/streams/*.json`, in the JetStream API format, so the same files work with the
//!   `nats` CLI (`nats stream add --config nats/streams/FILINGS.json`) and are applied, idempotently, by the
//!   service at start-up.
//!
//! - [`message`]: the filing message (versioned JSON, documented in `nats/FILINGS.md`) and its decoding into
//!   the values every ingest path shares (`pdscore_actors::domain`: the same symbol and filing-id rules as
//!   HTTP and bulk files);
//! - [`ingest`]: the durable pull consumer feeding the actor pipeline (ack after commit, Nak with delay when
//!   overloaded or when the service's [`ingest::Directory`] is unavailable, dead letter + Term when
//!   undecodable);
//! - [`outcomes`]: the credit events' consumer (`outcomes.<tenant>`), recording through the service's sink;
//! - [`consumer`]: the durable pull consumer both run on, and how each message is answered;
//! - [`alerts`]: publishing risk-change alerts (the service's alert stage calls it; SSE subscribers get them
//!   back from the stream);
//! - [`events`]: what the adapters report, each event's metric and log line in one place.
//!
//! They adapt JetStream to the pipeline of `pdscore-actors`, so nothing in the actor crate knows async-nats.

pub mod alerts;
pub mod consumer;
pub mod events;
pub mod ingest;
pub mod message;
pub mod outcomes;
pub mod streams;
pub mod subjects;

pub use streams::{EnsureStreamsError, StreamKind, delete_streams, ensure_streams};
pub use subjects::{InvalidNamespace, Namespace};
