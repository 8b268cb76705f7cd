//! The pipeline's sizes and timings, read once at start-up.

use std::time::Duration;

/// Sizes and timings of the pipeline.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Model pool threads.
    pub model_workers: usize,
    /// Filings per micro-batch at most.
    pub max_batch: usize,
    /// Batches of one tenant being scored or committed at once.
    pub max_batches_in_flight_per_tenant: usize,
    /// Filings a tenant may have admitted and not yet answered; beyond, refusals (429 / Nak).
    pub max_queued_per_tenant: usize,
    /// A tenant actor's mailbox bound.
    pub mailbox_capacity: usize,
    /// A tenant actor with nothing to do for this long stops.
    pub idle_timeout: Duration,
    /// How long a tenant's policy is used before it is read again.
    pub policy_ttl: Duration,
    /// Concurrent commit transactions.
    pub persist_max_in_flight: usize,
    /// Rows per commit transaction at most.
    pub persist_max_rows: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            model_workers: 2,
            max_batch: 256,
            max_batches_in_flight_per_tenant: 2,
            max_queued_per_tenant: 1000,
            mailbox_capacity: 1024,
            idle_timeout: Duration::from_secs(300),
            policy_ttl: Duration::from_secs(5),
            persist_max_in_flight: 4,
            persist_max_rows: 512,
        }
    }
}
