//! Sign-in sessions: opaque rotating refresh tokens (stored hashed in PostgreSQL) and the session state in
//! Redis that every authenticated request checks.
//!
//! A session is a refresh-token family: each refresh replaces the token with a new one of the same family, and
//! access tokens carry the family id (`sid`). PostgreSQL is the durable truth; Redis holds `active` or
//! `revoked` per family so that the per-request check is one GET and a revocation is visible at once on every
//! instance. A family Redis no longer knows (Redis restarted) is looked up in PostgreSQL (by the caller, which
//! hands the lookup in: this module does not read the database) and cached again (`SET NX`, so it never
//! overwrites a revocation that raced with it).

use std::time::Duration;

use anyhow::Context;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const ACTIVE: &str = "active";
const REVOKED: &str = "revoked";

/// A new refresh token: the secret goes to the client once; only its hash is stored.
pub struct RefreshToken {
    pub token: String,
    pub hash: Vec<u8>,
}

impl RefreshToken {
    pub fn generate() -> Self {
        use argon2::password_hash::rand_core::{OsRng, RngCore};
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        let token = format!("pdr_{}", URL_SAFE_NO_PAD.encode(bytes));
        let hash = hash(&token);
        Self { token, hash }
    }
}

/// SHA-256 of a refresh token (the token has 256 random bits, so a fast hash is enough).
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Why a session could not be checked (not: why it is invalid).
#[derive(Debug, thiserror::Error)]
#[error("the session store is unavailable: {0:#}")]
pub struct SessionStoreUnavailable(anyhow::Error);

#[derive(Clone)]
pub struct SessionStore {
    redis: crate::cache::Redis,
    prefix: String,
    refresh_ttl: Duration,
    /// A revocation marker must outlive every access token of the family.
    revoked_ttl: Duration,
}

impl SessionStore {
    pub fn new(redis: crate::cache::Redis, prefix: &str, refresh_ttl: Duration, access_ttl: Duration) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
            refresh_ttl,
            revoked_ttl: access_ttl + Duration::from_secs(60),
        }
    }

    pub fn refresh_ttl(&self) -> Duration {
        self.refresh_ttl
    }

    fn key(&self, family_id: Uuid) -> String {
        format!("{}:session:{family_id}", self.prefix)
    }

    /// Marks a family live (after the transaction that created or rotated it committed).
    pub async fn activate(&self, family_id: Uuid) -> anyhow::Result<()> {
        let set = redis::Cmd::set_ex(self.key(family_id), ACTIVE, self.refresh_ttl.as_secs());
        let _: () = self
            .redis
            .query(set)
            .await
            .context("Failed to record the session in Redis")?;
        Ok(())
    }

    /// Marks families revoked (after the transaction that revoked them committed): their access tokens stop
    /// working on every instance now.
    pub async fn revoke(&self, families: &[Uuid]) -> anyhow::Result<()> {
        if families.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for family in families {
            pipe.set_ex(self.key(*family), REVOKED, self.revoked_ttl.as_secs())
                .ignore();
        }
        let _: () = self
            .redis
            .query(pipe)
            .await
            .context("Failed to record revoked sessions in Redis")?;
        Ok(())
    }

    /// Whether the session (refresh-token family) an access token names is alive. `durable` is the
    /// PostgreSQL lookup, awaited only when Redis does not know the family.
    pub async fn is_active<E: std::error::Error + Send + Sync + 'static>(
        &self,
        family_id: Uuid,
        durable: impl Future<Output = Result<bool, E>>,
    ) -> Result<bool, SessionStoreUnavailable> {
        let check = async {
            let get = redis::Cmd::get(self.key(family_id));
            let state: Option<String> = self.redis.query(get).await.context("Redis GET failed")?;
            match state.as_deref() {
                Some(ACTIVE) => return Ok(true),
                Some(_) => return Ok(false),
                None => {}
            }
            let live = durable.await.context("Failed to look the session up")?;
            let (state, ttl) = if live {
                (ACTIVE, self.refresh_ttl)
            } else {
                (REVOKED, self.revoked_ttl)
            };
            let options = redis::SetOptions::default()
                .conditional_set(redis::ExistenceCheck::NX)
                .with_expiration(redis::SetExpiry::EX(ttl.as_secs()));
            let set = redis::Cmd::set_options(self.key(family_id), state, options);
            let _: () = self.redis.query(set).await.context("Redis SET failed")?;
            anyhow::Ok(live)
        };
        check.await.map_err(SessionStoreUnavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_are_random_and_only_their_hash_is_kept() {
        let a = RefreshToken::generate();
        let b = RefreshToken::generate();
        assert_ne!(a.token, b.token);
        assert!(a.token.starts_with("pdr_") && a.token.len() == 47);
        assert_eq!(a.hash, hash(&a.token));
        assert_eq!(a.hash.len(), 32);
    }
}
