//! The keys a deployment's instances sign access tokens with, so that instances which could not verify each
//! other's tokens are not run side by side: a token issued by one instance must work on every other.
//!
//! Each instance lists itself in Redis with the `kid` of its signing key and the kids it verifies, renewed
//! every few seconds ([`RENEW_EVERY`]), removed when it stops and forgotten when not renewed for [`LIVE_FOR`]
//! (an instance killed without a goodbye). An instance that starts while a
//! live one signs with a key it cannot verify — or verifies none of its own — refuses to start and says which
//! key to configure. An instance without a configured key signs with an ephemeral one that no other instance
//! can verify: alone it runs (tokens then end with the process), beside another it refuses. Key rotation
//! passes the check at every step: first every instance verifies both keys, then each signs with the new one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::keys::KeySet;
use crate::cache::Redis;

/// How often an instance renews its entry.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How long an entry lives without renewal (an instance killed without a goodbye).
pub const LIVE_FOR: Duration = Duration::from_secs(15);

/// One instance's entry (under an id of the process).
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    /// The kid of the key it signs with.
    signs: String,
    verifies: Vec<String>,
    /// Milliseconds since the epoch after which the entry is stale.
    until_ms: u64,
}

/// Why this instance may not run beside the live ones.
#[derive(Debug, thiserror::Error)]
pub enum Incompatible {
    #[error(
        "another running instance signs access tokens with key {kid}, which this instance cannot verify{hint}; \
         configure the same auth.jwt_private_key_path on every instance (`pdscore generate-jwt-key`), or list \
         the other key's public half in auth.jwt_public_key_paths while rotating"
    )]
    CannotVerify { kid: String, hint: &'static str },
    #[error(
        "another running instance (signing with key {kid}) cannot verify this instance's key {own}{hint}; \
         configure the same auth.jwt_private_key_path on every instance (`pdscore generate-jwt-key`)"
    )]
    NotVerified {
        kid: String,
        own: String,
        hint: &'static str,
    },
}

/// The registry of signing keys, under the deployment's Redis prefix.
#[derive(Clone)]
pub struct Signers {
    redis: Redis,
    key: String,
    /// This instance's field in the hash.
    instance: String,
    own: String,
    verifies: Vec<String>,
    ephemeral: bool,
}

impl Signers {
    pub fn new(redis: Redis, prefix: &str, keys: &KeySet) -> Self {
        Self {
            redis,
            key: format!("{prefix}:signing-keys"),
            instance: uuid::Uuid::new_v4().to_string(),
            own: keys.signing_kid().to_owned(),
            verifies: keys.jwks().keys.iter().map(|k| k.kid.clone()).collect(),
            ephemeral: keys.is_ephemeral(),
        }
    }

    /// Checks this instance against the live ones and, when it may run beside them, lists it (`Ok(Err(_))`:
    /// it may not). Entries not renewed in time are dropped on the way.
    pub async fn join(&self) -> anyhow::Result<Result<(), Incompatible>> {
        let entries: Vec<(String, String)> = self
            .redis
            .query(redis::Cmd::hgetall(&self.key))
            .await
            .context("Failed to read the instances' signing keys from Redis")?;
        let now = now_ms();
        let hint = if self.ephemeral {
            " (no auth.jwt_private_key_path is set: this instance made a key of its own)"
        } else {
            ""
        };
        let mut stale = Vec::new();
        let mut found = Ok(());
        for (instance, raw) in entries {
            let Some(entry) = serde_json::from_str::<Entry>(&raw).ok().filter(|e| e.until_ms >= now) else {
                stale.push(instance);
                continue;
            };
            if instance == self.instance || found.is_err() {
                continue;
            }
            if !self.verifies.contains(&entry.signs) {
                found = Err(Incompatible::CannotVerify { kid: entry.signs, hint });
            } else if !entry.verifies.contains(&self.own) {
                found = Err(Incompatible::NotVerified {
                    kid: entry.signs,
                    own: self.own.clone(),
                    hint,
                });
            }
        }
        if !stale.is_empty() {
            let _: () = self
                .redis
                .query(redis::Cmd::hdel(&self.key, stale))
                .await
                .context("Failed to drop stale signing-key entries")?;
        }
        if found.is_ok() {
            self.renew().await?;
        }
        Ok(found)
    }

    /// Renews this instance's entry.
    pub async fn renew(&self) -> anyhow::Result<()> {
        let entry = Entry {
            signs: self.own.clone(),
            verifies: self.verifies.clone(),
            until_ms: now_ms() + LIVE_FOR.as_millis() as u64,
        };
        let value = serde_json::to_string(&entry).context("Failed to encode the signing-key entry")?;
        let _: () = self
            .redis
            .query(redis::Cmd::hset(&self.key, &self.instance, value))
            .await
            .context("Failed to list this instance's signing key in Redis")?;
        Ok(())
    }

    /// At shutdown: the instance's entry goes with it.
    pub async fn leave(&self) {
        let removed: redis::RedisResult<()> = self.redis.query(redis::Cmd::hdel(&self.key, &self.instance)).await;
        if let Err(e) = removed {
            tracing::debug!(error = %e, "could not remove this instance's signing-key entry");
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}
