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
    /// Filings a batch needs to start while another of its tenant's is in flight; fewer wait for a slot with
    /// no batch beside it (see [`PipelineConfig::may_start_batch`]).
    pub min_concurrent_batch: usize,
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
            min_concurrent_batch: 32,
            max_queued_per_tenant: 1000,
            mailbox_capacity: 1024,
            idle_timeout: Duration::from_secs(300),
            policy_ttl: Duration::from_secs(5),
            persist_max_in_flight: 4,
            persist_max_rows: 512,
        }
    }
}

impl PipelineConfig {
    /// Whether a tenant with `in_flight` batches being scored or committed and `queued` filings waiting starts
    /// a batch now. Alone, a batch starts with whatever waits (one filing answers without delay); beside
    /// another, only with `min_concurrent_batch` filings: a few requests arriving while a batch commits wait
    /// for it and go together in the next transaction, rather than in one of their own (a transaction's fixed
    /// cost paid for three filings; BENCHMARKS.md), and a backlog still fills every slot.
    pub fn may_start_batch(&self, in_flight: usize, queued: usize) -> bool {
        queued > 0
            && (in_flight == 0
                || (in_flight < self.max_batches_in_flight_per_tenant && queued >= self.min_concurrent_batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_beside_another_waits_until_it_is_worth_a_transaction() {
        let config = PipelineConfig {
            max_batches_in_flight_per_tenant: 3,
            min_concurrent_batch: 32,
            ..PipelineConfig::default()
        };
        // Nothing waits: nothing starts.
        assert!(!config.may_start_batch(0, 0));
        // Alone, one filing goes at once.
        assert!(config.may_start_batch(0, 1));
        // Beside another, a few wait; enough go.
        assert!(!config.may_start_batch(1, 31));
        assert!(config.may_start_batch(1, 32));
        assert!(config.may_start_batch(2, 500));
        // Never beyond the tenant's slots.
        assert!(!config.may_start_batch(3, 500));
        // 1: any filing goes in any free slot.
        let eager = PipelineConfig {
            min_concurrent_batch: 1,
            ..config
        };
        assert!(eager.may_start_batch(1, 1));
    }
}
