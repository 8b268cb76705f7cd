//! Authentication and authorization.
//!
//! - [`password`]: argon2id hashing on the blocking pool, and the password policy;
//! - [`keys`] and [`tokens`]: RS256 access tokens and the JWKS document;
//! - [`sessions`]: rotating refresh tokens and the live-session state every request checks (Redis);
//! - [`rate_limit`]: throttling of sign-in (per account and client address), token refresh and password change
//!   (Redis);
//! - [`principal`]: the verified caller and the data [`Scope`](principal::Scope) it may touch (the HTTP layer
//!   extracts it from a request: `http::principal`);
//! - [`role`] and [`rbac`]: the five roles, the role table and the one authorization function;
//! - [`signers`]: the signing keys of the deployment's running instances, so that an instance whose tokens
//!   another could not verify refuses to start.
//!
//! Nothing here reads the database: the use cases that combine these with the repositories (sign-in,
//! refresh, sign-out) are in `crate::accounts`, and a session's durable record is looked up by the caller
//! of [`sessions::SessionStore::is_active`].

pub mod jwt_crypto;
pub mod keys;
pub mod password;
pub mod principal;
pub mod rate_limit;
pub mod rbac;
pub mod role;
pub mod sessions;
pub mod signers;
pub mod tokens;

use std::time::Duration;

pub use principal::{AccessDenied, Principal, Scope};
pub use rbac::Permission;
pub use role::Role;

use crate::configuration::AuthSettings;

/// Everything authentication needs at request time; built once at start.
pub struct Auth {
    pub tokens: tokens::TokenService,
    pub sessions: sessions::SessionStore,
    pub throttle: rate_limit::AuthThrottle,
    /// Take the client address from `X-Forwarded-For`.
    pub trust_forwarded_for: bool,
}

impl Auth {
    pub fn new(settings: &AuthSettings, redis: crate::cache::Redis, redis_prefix: &str) -> anyhow::Result<Self> {
        let keys = keys::KeySet::from_settings(settings)?;
        let access_ttl = Duration::from_secs(settings.access_token_ttl_secs);
        Ok(Self {
            tokens: tokens::TokenService::new(keys, settings),
            sessions: sessions::SessionStore::new(
                redis.clone(),
                redis_prefix,
                Duration::from_secs(settings.refresh_token_ttl_secs),
                access_ttl,
            ),
            throttle: rate_limit::AuthThrottle::new(
                redis,
                redis_prefix,
                rate_limit::Limits {
                    failures_per_account: rate_limit::Limit {
                        limit: settings.login_attempts_per_account,
                        window: Duration::from_secs(settings.login_account_window_secs),
                    },
                    sign_ins_per_address: rate_limit::Limit {
                        limit: settings.login_attempts_per_address,
                        window: Duration::from_secs(settings.login_address_window_secs),
                    },
                    refreshes_per_address: rate_limit::Limit {
                        limit: settings.refreshes_per_address,
                        window: Duration::from_secs(settings.refresh_address_window_secs),
                    },
                    password_changes_per_account: rate_limit::Limit {
                        limit: settings.password_changes_per_account,
                        window: Duration::from_secs(settings.password_change_window_secs),
                    },
                },
            ),
            trust_forwarded_for: settings.trust_forwarded_for,
        })
    }
}
