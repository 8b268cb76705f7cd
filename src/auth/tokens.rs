//! Access tokens: short-lived RS256 JWTs naming the user, tenant, organization, role and session.
//!
//! Verification accepts RS256 only (so neither `alg: none` nor an HS256 token "signed" with the public key can
//! pass), only keys of our key set (by `kid`), and checks issuer, audience and expiry. Whether the session is
//! still alive is the session store's question, asked by the request extractor after this one.

use std::time::Duration;

use jsonwebtoken::{Algorithm, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Role;
use super::keys::KeySet;
use crate::{cache::LocalCache, configuration::AuthSettings};

/// Leeway for clock differences between instances, in seconds.
const CLOCK_LEEWAY_SECS: u64 = 30;

/// How long, and how many, verified tokens are kept (see [`TokenService::verify`]): a minute of a busy
/// instance's distinct tokens, ~1 KB each.
const VERIFIED_TTL: Duration = Duration::from_secs(60);
const VERIFIED_MAX: usize = 10_000;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The user.
    pub sub: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
    /// The session (refresh-token family) the token belongs to: revoking it invalidates the token at once.
    pub sid: Uuid,
    /// The tenant; absent for a super_admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<Uuid>,
    /// The organization, for organization roles (and a tenant admin's home organization).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<Uuid>,
    pub role: Role,
}

/// Who a token is issued to.
#[derive(Debug, Clone, Copy)]
pub struct Subject {
    pub user_id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub organization_id: Option<Uuid>,
    pub role: Role,
}

/// Why a token was refused. Clients get one message for all of them; the kind goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token's key id is not one of ours")]
    UnknownKey,
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid: {0}")]
    Invalid(String),
}

/// Issues and verifies access tokens.
pub struct TokenService {
    keys: KeySet,
    issuer: String,
    audience: String,
    ttl: Duration,
    validation: Validation,
    /// Tokens verified lately, by their exact text, with their claims.
    verified: LocalCache<String, Claims>,
}

impl TokenService {
    pub fn new(keys: KeySet, settings: &AuthSettings) -> Self {
        super::jwt_crypto::install();
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = CLOCK_LEEWAY_SECS;
        Self {
            keys,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            ttl: Duration::from_secs(settings.access_token_ttl_secs),
            validation,
            verified: LocalCache::new(VERIFIED_TTL, VERIFIED_MAX),
        }
    }

    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// How long an access token lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A signed access token for `subject` in session `session_id`.
    pub fn issue(&self, subject: Subject, session_id: Uuid) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: subject.user_id,
            iat: now,
            exp: now + self.ttl.as_secs() as i64,
            jti: Uuid::now_v7(),
            sid: session_id,
            tid: subject.tenant_id,
            org: subject.organization_id,
            role: subject.role,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.keys.signing_kid().to_owned());
        Ok(jsonwebtoken::encode(&header, &claims, self.keys.signing_key())?)
    }

    /// The claims of a token we issued that is still within its lifetime.
    ///
    /// A client presents the same token on every request of its lifetime, and checking its RS256 signature was
    /// an eighth of the service's CPU under load; so a token that passed is kept for [`VERIFIED_TTL`] by its
    /// exact text (another text is verified in full) and served from there while within its lifetime, checked
    /// on each use as for a full verification. Whether its session is still alive is asked on every request
    /// regardless (the request extractor), so a sign-out still ends it at once.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let within_lifetime = |claims: &Claims| claims.exp.saturating_add(CLOCK_LEEWAY_SECS as i64) >= now;
        if let Some(claims) = self.verified.get(token) {
            return if within_lifetime(&claims) {
                Ok(claims)
            } else {
                Err(TokenError::Expired)
            };
        }
        let claims = self.verify_signed(token)?;
        self.verified.insert(token.to_owned(), claims.clone());
        Ok(claims)
    }

    fn verify_signed(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::RS256 {
            return Err(TokenError::Invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.verifying_key(kid))
            .ok_or(TokenError::UnknownKey)?;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Json(_) | ErrorKind::Utf8(_) => {
                    TokenError::Malformed
                }
                other => TokenError::Invalid(format!("{other:?}")),
            })?
            .claims;
        // A token's role and tenant must agree the way the database requires them to.
        if (claims.role == Role::SuperAdmin) != claims.tid.is_none() {
            return Err(TokenError::Invalid("role and tenant disagree".into()));
        }
        if claims.role.is_organization_role() && claims.org.is_none() {
            return Err(TokenError::Invalid("organization role without organization".into()));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::keys::generate_private_key_pem;

    fn settings() -> AuthSettings {
        crate::configuration::Settings::load_from(None, Default::default())
            .unwrap()
            .auth
    }

    fn service() -> TokenService {
        TokenService::new(
            KeySet::from_pems(&generate_private_key_pem().unwrap(), &[]).unwrap(),
            &settings(),
        )
    }

    fn subject() -> Subject {
        Subject {
            user_id: Uuid::now_v7(),
            tenant_id: Some(Uuid::now_v7()),
            organization_id: Some(Uuid::now_v7()),
            role: Role::OrgMember,
        }
    }

    #[test]
    fn an_issued_token_verifies_to_its_claims() {
        let tokens = service();
        let subject = subject();
        let session = Uuid::now_v7();
        let claims = tokens.verify(&tokens.issue(subject, session).unwrap()).unwrap();
        assert_eq!(claims.sub, subject.user_id);
        assert_eq!(claims.sid, session);
        assert_eq!(claims.role, Role::OrgMember);
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[test]
    fn another_services_token_is_refused() {
        let token = service().issue(subject(), Uuid::now_v7()).unwrap();
        assert!(matches!(service().verify(&token), Err(TokenError::UnknownKey)));
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(service().verify("a.b.c"), Err(TokenError::Malformed)));
        assert!(matches!(service().verify(""), Err(TokenError::Malformed)));
    }

    #[test]
    fn a_kept_token_is_served_only_within_its_lifetime_and_only_for_its_exact_text() {
        let tokens = service();
        let token = tokens.issue(subject(), Uuid::now_v7()).unwrap();
        let claims = tokens.verify(&token).unwrap();
        assert_eq!(tokens.verify(&token).unwrap(), claims, "served from the kept tokens");

        // One character of the signature changed: not the kept text, so verified in full, and refused.
        let at = token.len() - 10;
        let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
        let forged = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
        assert!(matches!(tokens.verify(&forged), Err(TokenError::Invalid(_))));

        // A kept token past its expiry (and the leeway) is expired, as a full verification would say.
        let past = Claims {
            exp: jsonwebtoken::get_current_timestamp() as i64 - CLOCK_LEEWAY_SECS as i64 - 1,
            ..claims
        };
        tokens.verified.insert(token.clone(), past);
        assert!(matches!(tokens.verify(&token), Err(TokenError::Expired)));
    }
}
