//! A tenant's scoring policy (which models, how fast, how risk levels are drawn) and its token bucket.

use std::{
    sync::RwLock,
    time::{Duration, Instant},
};

use pdscore_models::{PredictionType, registry::ModelId, risk::RiskScheme};
use uuid::Uuid;

/// The models answering one prediction type for a tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelChoice {
    pub default: ModelId,
    /// Scores alongside the default; stored, never returned.
    pub shadow: Option<ModelId>,
}

/// The models answering the tenants that chose none, per prediction type: the service's defaults. Shared by
/// the policy reader and the API, so a change (an activation) applies to every tenant's next policy read.
#[derive(Debug)]
pub struct DefaultModels {
    annual: RwLock<ModelId>,
    quarterly: RwLock<ModelId>,
}

impl DefaultModels {
    pub fn new(annual: ModelId, quarterly: ModelId) -> Self {
        Self {
            annual: RwLock::new(annual),
            quarterly: RwLock::new(quarterly),
        }
    }

    fn slot(&self, prediction_type: PredictionType) -> &RwLock<ModelId> {
        match prediction_type {
            PredictionType::Annual => &self.annual,
            PredictionType::Quarterly => &self.quarterly,
        }
    }

    pub fn get(&self, prediction_type: PredictionType) -> ModelId {
        self.slot(prediction_type)
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn set(&self, prediction_type: PredictionType, model: ModelId) {
        *self
            .slot(prediction_type)
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = model;
    }
}

/// Everything the pipeline needs to know about a tenant, read from the database (and refreshed, so changes
/// apply without restart).
#[derive(Debug, Clone, PartialEq)]
pub struct TenantPolicy {
    pub tenant_id: Uuid,
    pub slug: String,
    pub active: bool,
    /// Sustained filings per second.
    pub rate_per_second: f64,
    /// Filings accepted at once above the sustained rate.
    pub burst: u32,
    pub risk_scheme: RiskScheme,
    /// Relative PD move raising an alert within a level (0.25 = 25 %).
    pub alert_pd_change: f64,
    /// The portfolio's one-year default rate trained models' PDs are shifted to (`None`: their sample's).
    pub base_rate: Option<f64>,
    pub annual: ModelChoice,
    pub quarterly: ModelChoice,
}

impl TenantPolicy {
    pub fn models(&self, prediction_type: PredictionType) -> &ModelChoice {
        match prediction_type {
            PredictionType::Annual => &self.annual,
            PredictionType::Quarterly => &self.quarterly,
        }
    }
}

/// A token bucket: `burst` tokens, refilled at `rate` per second. Time is passed in, so it is tested without
/// sleeping.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    updated: Instant,
    /// When the next refused caller should come back: each refusal books the next free slot, so refused
    /// callers return spread at the sustained rate instead of all at once.
    next_slot: Instant,
}

/// The furthest a refused caller is told to wait.
const MAX_RETRY: Duration = Duration::from_secs(60);

impl TokenBucket {
    pub fn new(rate: f64, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: rate.max(f64::MIN_POSITIVE),
            burst,
            tokens: burst,
            updated: now,
            next_slot: now,
        }
    }

    /// Changes the limits, keeping the tokens already earned (capped to the new burst).
    pub fn reconfigure(&mut self, rate: f64, burst: u32, now: Instant) {
        self.refill(now);
        self.rate = rate.max(f64::MIN_POSITIVE);
        self.burst = f64::from(burst.max(1));
        self.tokens = self.tokens.min(self.burst);
    }

    pub fn limits(&self) -> (f64, f64) {
        (self.rate, self.burst)
    }

    /// Takes one token, or says when to come back: the next slot not already promised to an earlier
    /// refused caller (at most a minute away).
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let first_token = now + Duration::from_secs_f64((1.0 - self.tokens) / self.rate);
        let slot = self.next_slot.max(first_token).min(now + MAX_RETRY);
        self.next_slot = slot + Duration::from_secs_f64(1.0 / self.rate);
        Err(slot - now)
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.updated = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 3, t0);
        for _ in 0..3 {
            assert!(bucket.try_take(t0).is_ok());
        }
        let wait = bucket.try_take(t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        assert!(bucket.try_take(t0 + Duration::from_millis(100)).is_ok());
        assert!(bucket.try_take(t0 + Duration::from_millis(100)).is_err());
    }

    #[test]
    fn refused_callers_are_told_to_come_back_one_slot_apart() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 1, t0);
        assert!(bucket.try_take(t0).is_ok());
        let waits: Vec<f64> = (0..3).map(|_| bucket.try_take(t0).unwrap_err().as_secs_f64()).collect();
        for (wait, expected) in waits.iter().zip([0.1, 0.2, 0.3]) {
            assert!((wait - expected).abs() < 1e-6, "{waits:?}");
        }
    }

    #[test]
    fn a_bucket_never_holds_more_than_its_burst() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1000.0, 2, t0);
        let later = t0 + Duration::from_secs(60);
        assert!(bucket.try_take(later).is_ok());
        assert!(bucket.try_take(later).is_ok());
        assert!(bucket.try_take(later).is_err());
    }

    #[test]
    fn reconfiguring_caps_the_tokens_to_the_new_burst() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1.0, 100, t0);
        bucket.reconfigure(1.0, 1, t0);
        assert!(bucket.try_take(t0).is_ok());
        assert!(bucket.try_take(t0).is_err());
    }
}
