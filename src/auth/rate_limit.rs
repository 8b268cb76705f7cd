//! Sign-in throttling: fixed-window counters in Redis, shared by every instance.

use std::time::Duration;

use anyhow::Context;
use sha2::{Digest, Sha256};

/// Counts a hit and reads the window's remaining time atomically.
const HIT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
";

/// One throttled dimension: at most `limit` hits per `window`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub limit: u32,
    pub window: Duration,
}

#[derive(Clone)]
pub struct LoginThrottle {
    redis: crate::cache::Redis,
    prefix: String,
    per_account: Limit,
    per_address: Limit,
}

impl LoginThrottle {
    pub fn new(redis: crate::cache::Redis, prefix: &str, per_account: Limit, per_address: Limit) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
            per_account,
            per_address,
        }
    }

    fn account_key(&self, email: &str) -> String {
        // Hashed: Redis keys are listed by operators and need not show who tried to sign in.
        let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
        format!("{}:login:account:{}", self.prefix, hex(&digest[..16]))
    }

    fn address_key(&self, address: &str) -> String {
        format!("{}:login:addr:{address}", self.prefix)
    }

    /// Counts a sign-in attempt; `Some(retry_after)` when the account or the address is over its limit.
    pub async fn attempt(&self, email: &str, address: &str) -> anyhow::Result<Option<Duration>> {
        let mut wait = None;
        for (key, limit) in [
            (self.address_key(address), self.per_address),
            (self.account_key(email), self.per_account),
        ] {
            let mut hit = crate::cache::eval(HIT, 1);
            hit.arg(&key).arg(limit.window.as_millis() as u64);
            let (count, ttl_ms): (u64, i64) = self
                .redis
                .query(hit)
                .await
                .context("Failed to count a sign-in attempt")?;
            if count > u64::from(limit.limit) {
                let retry = Duration::from_millis(ttl_ms.max(1) as u64);
                wait = Some(wait.map_or(retry, |w: Duration| w.max(retry)));
            }
        }
        Ok(wait)
    }

    /// A successful sign-in clears the account's count (the address's stays).
    pub async fn succeeded(&self, email: &str) -> anyhow::Result<()> {
        let del = redis::Cmd::del(self.account_key(email));
        let _: () = self.redis.query(del).await.context("Redis DEL failed")?;
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
