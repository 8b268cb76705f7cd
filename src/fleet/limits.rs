//! Tenants' rate limits shared by every instance: one token bucket per tenant in Redis, taken from by one
//! atomic script, so that a tenant flooding N instances gets its rate once, not N times.
//!
//! A busy tenant does not cost a Redis round trip per filing: an instance takes a few tokens at a time (what the
//! tenant's rate earns in [`PREFETCH_WINDOW`], at most [`MAX_PREFETCH`]) and spends them locally within
//! [`LEASE`]; tokens left over then lapse, so a fleet never admits more than the bucket gave out. At 50 filings
//! per second that is one token per call: the limit is exact where it is tight.
//!
//! A refused filing books the next free slot in the shared bucket (its Nak delay or `Retry-After`), so refused
//! callers of every instance come back spread at the sustained rate. A change of limits through the API reaches
//! every instance through the fleet's changes ([`super::changes`]) and applies to the next token taken.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex},
    time::{Duration, Instant},
};

use futures_util::{FutureExt, future::BoxFuture};
use pdscore_actors::{Admission, SharedLimits, StoreError};
use uuid::Uuid;

use crate::cache::Redis;

/// How much of a tenant's rate one instance takes at once.
const PREFETCH_WINDOW: Duration = Duration::from_millis(20);
/// The most tokens one instance takes at once.
const MAX_PREFETCH: u32 = 64;
/// How long tokens taken stay usable by the instance that took them.
const LEASE: Duration = Duration::from_millis(250);
/// Leases kept before the lapsed ones are swept.
const MAX_LEASES: usize = 10_000;

/// Takes up to ARGV[3] tokens from the bucket at KEYS[1] (rate ARGV[1] per second, burst ARGV[2]), on Redis's
/// clock: `{granted, 0}`, or `{0, µs to wait}` with that slot booked for the caller (the next one not promised
/// to an earlier refused caller, at most a minute away). The bucket is a hash (tokens, when, next slot) that
/// expires once it would be full again anyway.
static TAKE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local rate, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at', 'slot')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
local slot = tonumber(state[3]) or now
if now < at then now = at end
tokens = math.min(burst, tokens + (now - at) * rate / 1000000)
local granted, wait = 0, 0
if tokens >= 1 then
  granted = math.min(want, math.floor(tokens))
  tokens = tokens - granted
else
  local first = now + (1 - tokens) * 1000000 / rate
  local booked = math.min(math.max(slot, first), now + 60000000)
  wait = booked - now
  slot = booked + 1000000 / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now), 'slot', tostring(slot))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 61000)
return {granted, math.ceil(wait)}
",
    )
});

/// Tokens an instance took and has not spent yet.
#[derive(Debug, Clone, Copy)]
struct Lease {
    tokens: u32,
    until: Instant,
}

/// The fleet's tenant buckets in Redis, with this instance's leases.
pub struct RedisLimits {
    redis: Redis,
    prefix: String,
    leases: Arc<Mutex<HashMap<Uuid, Lease>>>,
}

impl RedisLimits {
    pub fn new(redis: Redis, key_prefix: &str) -> Self {
        Self {
            redis,
            prefix: format!("{key_prefix}:limits"),
            leases: Arc::default(),
        }
    }

    fn lock(leases: &Mutex<HashMap<Uuid, Lease>>) -> std::sync::MutexGuard<'_, HashMap<Uuid, Lease>> {
        leases.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Spends a leased token, if one is left and still good.
    fn spend_leased(leases: &Mutex<HashMap<Uuid, Lease>>, tenant: Uuid, now: Instant) -> bool {
        let mut leases = Self::lock(leases);
        match leases.get_mut(&tenant) {
            Some(lease) if lease.tokens > 0 && now < lease.until => {
                lease.tokens -= 1;
                true
            }
            Some(_) => {
                leases.remove(&tenant);
                false
            }
            None => false,
        }
    }
}

/// Tokens worth taking at once at `rate` per second.
fn prefetch(rate: f64) -> u32 {
    (rate * PREFETCH_WINDOW.as_secs_f64()).clamp(1.0, f64::from(MAX_PREFETCH)) as u32
}

impl SharedLimits for RedisLimits {
    fn take(&self, tenant: Uuid, rate: f64, burst: u32) -> BoxFuture<'static, Result<Admission, StoreError>> {
        if Self::spend_leased(&self.leases, tenant, Instant::now()) {
            return futures_util::future::ready(Ok(Admission::Admitted)).boxed();
        }
        let rate = rate.max(f64::MIN_POSITIVE);
        let burst = burst.max(1);
        let want = prefetch(rate).min(burst);
        let mut take = TAKE.key(format!("{}:{tenant}", self.prefix));
        take.arg(rate).arg(burst).arg(want);
        let (redis, leases) = (self.redis.clone(), self.leases.clone());
        async move {
            let (granted, wait_us): (u32, u64) = redis
                .query(take)
                .await
                .map_err(|e| StoreError::unavailable(format!("the shared rate limits are unreachable: {e}")))?;
            if granted == 0 {
                return Ok(Admission::Wait(Duration::from_micros(wait_us.max(1))));
            }
            if granted > 1 {
                let mut leases = Self::lock(&leases);
                if leases.len() >= MAX_LEASES {
                    let now = Instant::now();
                    leases.retain(|_, lease| lease.until > now);
                }
                let lease = leases.entry(tenant).or_insert(Lease {
                    tokens: 0,
                    until: Instant::now(),
                });
                lease.tokens += granted - 1;
                lease.until = Instant::now() + LEASE;
            }
            Ok(Admission::Admitted)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_takes_what_the_rate_earns_in_a_short_window() {
        assert_eq!(prefetch(50.0), 1);
        assert_eq!(prefetch(0.1), 1);
        assert_eq!(prefetch(1_000.0), 20);
        assert_eq!(prefetch(1e9), MAX_PREFETCH);
    }

    #[test]
    fn leased_tokens_are_spent_once_and_lapse() {
        let leases = Mutex::new(HashMap::new());
        let tenant = Uuid::new_v4();
        let now = Instant::now();
        leases.lock().unwrap().insert(
            tenant,
            Lease {
                tokens: 2,
                until: now + LEASE,
            },
        );
        assert!(RedisLimits::spend_leased(&leases, tenant, now));
        assert!(RedisLimits::spend_leased(&leases, tenant, now));
        assert!(
            !RedisLimits::spend_leased(&leases, tenant, now),
            "two tokens, two filings"
        );
        leases.lock().unwrap().insert(tenant, Lease { tokens: 5, until: now });
        assert!(
            !RedisLimits::spend_leased(&leases, tenant, now + LEASE),
            "a lapsed lease admits nothing"
        );
        assert!(leases.lock().unwrap().is_empty());
    }
}
