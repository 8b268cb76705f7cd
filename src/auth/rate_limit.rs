//! Throttling of sign-in, token refresh and password change: fixed-window counters in Redis, shared by every
//! instance.

use std::{sync::LazyLock, time::Duration};

use anyhow::Context;
use sha2::{Digest, Sha256};

/// Counts a hit and reads the window's remaining time atomically.
static HIT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
",
    )
});

/// One throttled dimension: at most `limit` hits per `window`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub limit: u32,
    pub window: Duration,
}

/// Decides a sign-in attempt for an account (KEYS[1]: attempts let through since its last success) from an
/// address (KEYS[2]: those of them from this address), atomically, so that concurrent attempts each see the ones
/// before them: refused (`{1, ms left}`) when the account is past its limit (ARGV[2]) and this address tried it
/// before, or past ten times its limit; otherwise counted (`{0, 0}`). Refused attempts are not counted, so an
/// address cannot push an account to the ceiling by itself.
static ATTEMPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local account = tonumber(redis.call('GET', KEYS[1]) or '0')
local here = tonumber(redis.call('GET', KEYS[2]) or '0')
local limit = tonumber(ARGV[2])
if account >= limit and (here >= 1 or account >= 10 * limit) then
  return {1, redis.call('PTTL', KEYS[1])}
end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('PEXPIRE', key, ARGV[1]) end
end
return {0, 0}
",
    )
});

/// The limits of the throttled authentication routes.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Sign-ins per account not followed by a success: past it, sign-in is refused to the addresses that
    /// tried the account before (past ten times it, to every address: distributed guessing stays bounded).
    pub failures_per_account: Limit,
    /// Sign-in attempts per client address, whatever the account.
    pub sign_ins_per_address: Limit,
    /// Refresh-token exchanges per client address (each is a database transaction; no token is needed).
    pub refreshes_per_address: Limit,
    /// Password changes per account (each costs two argon2 computations).
    pub password_changes_per_account: Limit,
}

/// Throttling of the authentication routes: fixed-window counters in Redis, shared by every instance.
///
/// Sign-in counts attempts per address, and per account since its last success. An account past its limit is
/// not locked for everyone — that would let anyone lock a victim out — but for the addresses that tried it
/// before: the right password from an address that has not been failing still signs in. Only an account tried
/// ten times its limit in the window is refused to every address.
#[derive(Clone)]
pub struct AuthThrottle {
    redis: crate::cache::Redis,
    prefix: String,
    limits: Limits,
}

impl AuthThrottle {
    pub fn new(redis: crate::cache::Redis, prefix: &str, limits: Limits) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
            limits,
        }
    }

    fn account_key(&self, email: &str) -> String {
        // Hashed: Redis keys are listed by operators and need not show who tried to sign in.
        let digest = Sha256::digest(email.trim().to_lowercase().as_bytes());
        format!("{}:login:account:{}", self.prefix, hex(&digest[..16]))
    }

    fn pair_key(&self, email: &str, address: &str) -> String {
        let digest = Sha256::digest(format!("{}\n{address}", email.trim().to_lowercase()).as_bytes());
        format!("{}:login:pair:{}", self.prefix, hex(&digest[..16]))
    }

    /// Counts a hit of `key`; `Some(retry_after)` when past `limit` in its window.
    async fn hit(&self, key: &str, limit: Limit, what: &str) -> anyhow::Result<Option<Duration>> {
        let mut hit = HIT.key(key);
        hit.arg(limit.window.as_millis() as u64);
        let (count, ttl_ms): (u64, i64) = self
            .redis
            .query(hit)
            .await
            .with_context(|| format!("Failed to count {what}"))?;
        Ok((count > u64::from(limit.limit)).then(|| Duration::from_millis(ttl_ms.max(1) as u64)))
    }

    /// Counts a sign-in attempt; `Some(retry_after)` when the address is past its attempts, or the account past
    /// its limit and this address one of those that tried it.
    pub async fn sign_in(&self, email: &str, address: &str) -> anyhow::Result<Option<Duration>> {
        let per_address = self.limits.sign_ins_per_address;
        if let Some(wait) = self
            .hit(
                &format!("{}:login:addr:{address}", self.prefix),
                per_address,
                "a sign-in",
            )
            .await?
        {
            return Ok(Some(wait));
        }
        let mut attempt = ATTEMPT.key(self.account_key(email));
        attempt
            .key(self.pair_key(email, address))
            .arg(self.limits.failures_per_account.window.as_millis() as u64)
            .arg(self.limits.failures_per_account.limit);
        let (refused, ttl_ms): (u8, i64) = self
            .redis
            .query(attempt)
            .await
            .context("Failed to count a sign-in attempt")?;
        Ok((refused == 1).then(|| Duration::from_millis(ttl_ms.max(1) as u64)))
    }

    /// A successful sign-in clears the account's count and this address's for it (the address's own attempts
    /// stay).
    pub async fn succeeded(&self, email: &str, address: &str) -> anyhow::Result<()> {
        let del = redis::Cmd::del(&[self.account_key(email), self.pair_key(email, address)]);
        let _: () = self.redis.query(del).await.context("Redis DEL failed")?;
        Ok(())
    }

    /// Counts a refresh-token exchange from the address; `Some(retry_after)` past its limit.
    pub async fn refresh(&self, address: &str) -> anyhow::Result<Option<Duration>> {
        let key = format!("{}:refresh:addr:{address}", self.prefix);
        self.hit(&key, self.limits.refreshes_per_address, "a token refresh")
            .await
    }

    /// Counts a password change of the user; `Some(retry_after)` past its limit.
    pub async fn password_change(&self, user_id: uuid::Uuid) -> anyhow::Result<Option<Duration>> {
        let key = format!("{}:password:user:{user_id}", self.prefix);
        self.hit(&key, self.limits.password_changes_per_account, "a password change")
            .await
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
