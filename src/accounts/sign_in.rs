//! The sign-in use cases: login, refresh (rotation with reuse detection), logout, logout everywhere, password
//! change. Each returns a typed error; the HTTP layer maps them to codes.

use std::{net::IpAddr, time::Duration};

use anyhow::Context;
use chrono::Utc;
use secrecy::SecretString;
use serde::Serialize;
use sqlx::PgPool;
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::{
    auth::{
        Auth, Principal, Role,
        password::{self, PasswordPolicyError},
        sessions::{self, RefreshToken},
        tokens::Subject,
    },
    db::{
        audit::{self, Actor, AuditEntry},
        sessions as repo, users,
    },
};

/// Where a request came from, for the session record and throttling.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub address: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl ClientInfo {
    /// The address as a throttling key (`unknown` when the peer's is not known).
    pub fn address_key(&self) -> String {
        self.address.map_or_else(|| "unknown".to_owned(), |a| a.to_string())
    }
}

/// Tokens handed to a client after sign-in or refresh.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Opaque; send it to `/auth/refresh` for a new pair. Each refresh token works once.
    pub refresh_token: String,
    pub refresh_expires_in: u64,
    pub user_id: Uuid,
    pub role: Role,
    pub tenant_id: Option<Uuid>,
    pub organization_id: Option<Uuid>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthFlowError {
    /// Wrong e-mail, wrong password, inactive account or tenant: one answer for all, so that sign-in does not
    /// reveal which accounts exist.
    #[error("invalid e-mail or password")]
    InvalidCredentials,
    #[error("too many sign-in attempts")]
    Throttled(Duration),
    #[error("the refresh token is invalid, expired or already used")]
    InvalidRefreshToken,
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("new password: {0}")]
    WeakPassword(#[from] PasswordPolicyError),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for AuthFlowError {
    fn from(e: sqlx::Error) -> Self {
        Self::Unexpected(e.into())
    }
}

/// A hash to verify against when the e-mail is unknown, so that both answers take the same time.
static DUMMY_HASH: OnceCell<String> = OnceCell::const_new();

async fn dummy_hash() -> anyhow::Result<String> {
    DUMMY_HASH
        .get_or_try_init(|| password::hash(password::generate()))
        .await
        .cloned()
}

pub async fn login(
    auth: &Auth,
    db: &PgPool,
    email: &str,
    password: SecretString,
    client: &ClientInfo,
) -> Result<TokenPair, AuthFlowError> {
    let address = client.address_key();
    if let Some(wait) = auth.throttle.sign_in(email, &address).await? {
        return Err(AuthFlowError::Throttled(wait));
    }
    let normalized = email.trim().to_lowercase();
    let credentials = {
        let mut conn = db.acquire().await.context("Failed to get a database connection")?;
        users::find_credentials(&mut conn, &normalized).await?
    };
    let (phc, known) = match &credentials {
        Some(c) => (c.password_hash.clone(), true),
        None => (dummy_hash().await?, false),
    };
    let matches = password::verify(password, phc).await?;
    let credentials = match credentials {
        Some(c) if known && matches && c.can_sign_in => c,
        _ => return Err(AuthFlowError::InvalidCredentials),
    };
    auth.throttle.succeeded(&normalized, &address).await?;

    let subject = Subject {
        user_id: credentials.id,
        tenant_id: credentials.tenant_id,
        organization_id: credentials.organization_id,
        role: credentials.role,
    };
    let family_id = Uuid::now_v7();
    let refresh = RefreshToken::generate();
    let mut tx = db.begin().await.context("Failed to begin a transaction")?;
    repo::insert(
        &mut tx,
        &repo::NewRefresh {
            family_id,
            user_id: subject.user_id,
            tenant_id: subject.tenant_id,
            token_hash: &refresh.hash,
            user_agent: client.user_agent.as_deref(),
            client_addr: client.address,
            expires_at: Utc::now() + auth.sessions.refresh_ttl(),
        },
    )
    .await?;
    users::record_login(&mut tx, subject.user_id).await?;
    audit::record(
        &mut tx,
        AuditEntry {
            tenant_id: subject.tenant_id,
            organization_id: subject.organization_id,
            actor: Actor::User(subject.user_id),
            action: "auth.login",
            target_type: "session",
            target_id: Some(family_id.to_string()),
            before: None,
            after: Some(serde_json::json!({ "client_addr": client.address, "user_agent": client.user_agent })),
            request_id: client.request_id.clone(),
        },
    )
    .await?;
    tx.commit().await.context("Failed to commit the session")?;
    auth.sessions.activate(family_id).await?;
    token_pair(auth, subject, family_id, refresh.token)
}

pub async fn refresh(auth: &Auth, db: &PgPool, token: &str, client: &ClientInfo) -> Result<TokenPair, AuthFlowError> {
    if let Some(wait) = auth.throttle.refresh(&client.address_key()).await? {
        return Err(AuthFlowError::Throttled(wait));
    }
    let mut tx = db.begin().await.context("Failed to begin a transaction")?;
    let Some(row) = repo::find_for_update(&mut tx, &sessions::hash(token)).await? else {
        return Err(AuthFlowError::InvalidRefreshToken);
    };
    if row.revoked_at.is_some() || row.replaced_by.is_some() {
        // A token used twice was stolen or leaked: end the whole family (the thief's copy and the owner's).
        if row.revoked_at.is_none() {
            repo::revoke_family(&mut tx, row.family_id, "refresh token reused").await?;
            let owner = users::find_credentials_by_id(&mut tx, row.user_id).await?;
            audit::record(
                &mut tx,
                AuditEntry {
                    tenant_id: owner.as_ref().and_then(|c| c.tenant_id),
                    organization_id: owner.as_ref().and_then(|c| c.organization_id),
                    actor: Actor::User(row.user_id),
                    action: "auth.refresh_reuse_detected",
                    target_type: "session",
                    target_id: Some(row.family_id.to_string()),
                    before: None,
                    after: Some(serde_json::json!({ "client_addr": client.address })),
                    request_id: client.request_id.clone(),
                },
            )
            .await?;
            tx.commit().await.context("Failed to commit the revocation")?;
            auth.sessions.revoke(&[row.family_id]).await?;
            tracing::warn!(user_id = %row.user_id, family_id = %row.family_id, "refresh token reuse: session revoked");
        }
        return Err(AuthFlowError::InvalidRefreshToken);
    }
    if row.expires_at <= Utc::now() {
        return Err(AuthFlowError::InvalidRefreshToken);
    }
    let credentials = users::find_credentials_by_id(&mut tx, row.user_id)
        .await?
        .filter(|c| c.can_sign_in)
        .ok_or(AuthFlowError::InvalidRefreshToken)?;
    let (tenant_id, organization_id, role) = (credentials.tenant_id, credentials.organization_id, credentials.role);
    let next = RefreshToken::generate();
    let next_id = repo::insert(
        &mut tx,
        &repo::NewRefresh {
            family_id: row.family_id,
            user_id: row.user_id,
            tenant_id,
            token_hash: &next.hash,
            user_agent: client.user_agent.as_deref(),
            client_addr: client.address,
            expires_at: Utc::now() + auth.sessions.refresh_ttl(),
        },
    )
    .await?;
    repo::mark_replaced(&mut tx, row.id, next_id).await?;
    tx.commit().await.context("Failed to commit the rotation")?;
    auth.sessions.activate(row.family_id).await?;
    let subject = Subject {
        user_id: row.user_id,
        tenant_id,
        organization_id,
        role,
    };
    token_pair(auth, subject, row.family_id, next.token)
}

fn token_pair(
    auth: &Auth,
    subject: Subject,
    family_id: Uuid,
    refresh_token: String,
) -> Result<TokenPair, AuthFlowError> {
    Ok(TokenPair {
        access_token: auth.tokens.issue(subject, family_id)?,
        token_type: "Bearer",
        expires_in: auth.tokens.ttl().as_secs(),
        refresh_token,
        refresh_expires_in: auth.sessions.refresh_ttl().as_secs(),
        user_id: subject.user_id,
        role: subject.role,
        tenant_id: subject.tenant_id,
        organization_id: subject.organization_id,
    })
}

/// Ends the caller's session (this device).
pub async fn logout(auth: &Auth, db: &PgPool, principal: &Principal, client: &ClientInfo) -> Result<(), AuthFlowError> {
    let mut tx = db.begin().await.context("Failed to begin a transaction")?;
    repo::revoke_family(&mut tx, principal.session_id, "logout").await?;
    audit_session_end(&mut tx, principal, "auth.logout", client, 1).await?;
    tx.commit().await.context("Failed to commit the logout")?;
    auth.sessions.revoke(&[principal.session_id]).await?;
    Ok(())
}

/// Ends every session of the caller (every device); returns how many were ended.
pub async fn logout_all(
    auth: &Auth,
    db: &PgPool,
    principal: &Principal,
    client: &ClientInfo,
) -> Result<usize, AuthFlowError> {
    let mut tx = db.begin().await.context("Failed to begin a transaction")?;
    let mut families = repo::revoke_user(&mut tx, principal.user_id, None, "logout-all").await?;
    if !families.contains(&principal.session_id) {
        families.push(principal.session_id);
    }
    audit_session_end(&mut tx, principal, "auth.logout_all", client, families.len()).await?;
    tx.commit().await.context("Failed to commit the logout")?;
    auth.sessions.revoke(&families).await?;
    Ok(families.len())
}

async fn audit_session_end(
    conn: &mut sqlx::PgConnection,
    principal: &Principal,
    action: &str,
    client: &ClientInfo,
    sessions: usize,
) -> sqlx::Result<()> {
    audit::record(
        conn,
        AuditEntry {
            tenant_id: principal.tenant_id,
            organization_id: principal.organization_id,
            actor: Actor::User(principal.user_id),
            action,
            target_type: "session",
            target_id: Some(principal.session_id.to_string()),
            before: None,
            after: Some(serde_json::json!({ "sessions_ended": sessions })),
            request_id: client.request_id.clone(),
        },
    )
    .await
}

/// Changes the caller's password after checking the current one; every other session of theirs ends.
pub async fn change_password(
    auth: &Auth,
    db: &PgPool,
    principal: &Principal,
    current: SecretString,
    new: SecretString,
    client: &ClientInfo,
) -> Result<(), AuthFlowError> {
    if let Some(wait) = auth.throttle.password_change(principal.user_id).await? {
        return Err(AuthFlowError::Throttled(wait));
    }
    let scope = principal.scope();
    let (email, phc) = {
        let mut conn = db.acquire().await.context("Failed to get a database connection")?;
        let user = users::find(&mut conn, &scope, principal.user_id)
            .await?
            .ok_or(AuthFlowError::InvalidCredentials)?;
        let phc = users::password_hash(&mut conn, &scope, principal.user_id)
            .await?
            .ok_or(AuthFlowError::InvalidCredentials)?;
        (user.email, phc)
    };
    if !password::verify(current, phc).await? {
        return Err(AuthFlowError::WrongPassword);
    }
    password::check_policy(&new, &email)?;
    let new_hash = password::hash(new).await?;
    let mut tx = db.begin().await.context("Failed to begin a transaction")?;
    users::set_password(&mut tx, &scope, principal.user_id, &new_hash).await?;
    let ended = repo::revoke_user(
        &mut tx,
        principal.user_id,
        Some(principal.session_id),
        "password changed",
    )
    .await?;
    audit::record(
        &mut tx,
        AuditEntry {
            tenant_id: principal.tenant_id,
            organization_id: principal.organization_id,
            actor: Actor::User(principal.user_id),
            action: "user.change_password",
            target_type: "user",
            target_id: Some(principal.user_id.to_string()),
            before: None,
            after: Some(serde_json::json!({ "other_sessions_ended": ended.len() })),
            request_id: client.request_id.clone(),
        },
    )
    .await?;
    tx.commit().await.context("Failed to commit the password change")?;
    auth.sessions.revoke(&ended).await?;
    Ok(())
}
