//! Refresh sessions: the durable record of sign-in sessions, their rotation chains (families) and revocations.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// A refresh token's row, read for rotation.
#[derive(Debug, sqlx::FromRow)]
pub struct RefreshRow {
    pub id: Uuid,
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub replaced_by: Option<Uuid>,
}

/// A new refresh token of family `family_id`.
#[derive(Debug)]
pub struct NewRefresh<'a> {
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub token_hash: &'a [u8],
    pub user_agent: Option<&'a str>,
    pub client_addr: Option<std::net::IpAddr>,
    pub expires_at: DateTime<Utc>,
}

#[tracing::instrument(name = "db.sessions.insert", level = "debug", skip_all)]
pub async fn insert(conn: &mut PgConnection, new: &NewRefresh<'_>) -> sqlx::Result<Uuid> {
    sqlx::query_scalar(
        "INSERT INTO refresh_sessions (id, family_id, user_id, tenant_id, token_hash, user_agent, client_addr, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7::text::inet, $8) RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(new.family_id)
    .bind(new.user_id)
    .bind(new.tenant_id)
    .bind(new.token_hash)
    .bind(new.user_agent)
    .bind(new.client_addr.map(|addr| addr.to_string()))
    .bind(new.expires_at)
    .fetch_one(conn)
    .await
}

/// The row of a refresh token, locked until the transaction ends (two concurrent rotations serialize).
#[tracing::instrument(name = "db.sessions.find_for_update", level = "debug", skip_all)]
pub async fn find_for_update(conn: &mut PgConnection, token_hash: &[u8]) -> sqlx::Result<Option<RefreshRow>> {
    sqlx::query_as(
        "SELECT id, family_id, user_id, expires_at, revoked_at, replaced_by
         FROM refresh_sessions WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await
}

#[tracing::instrument(name = "db.sessions.mark_replaced", level = "debug", skip_all)]
pub async fn mark_replaced(conn: &mut PgConnection, id: Uuid, replaced_by: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE refresh_sessions SET replaced_by = $2, last_used_at = now() WHERE id = $1")
        .bind(id)
        .bind(replaced_by)
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes every live token of a family.
#[tracing::instrument(name = "db.sessions.revoke_family", level = "debug", skip_all)]
pub async fn revoke_family(conn: &mut PgConnection, family_id: Uuid, reason: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE refresh_sessions SET revoked_at = now(), revoked_reason = $2
         WHERE family_id = $1 AND revoked_at IS NULL",
    )
    .bind(family_id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// Revokes every live session of a user, except `keep` (the caller's own, on a password change); returns the
/// families revoked.
#[tracing::instrument(name = "db.sessions.revoke_user", level = "debug", skip_all)]
pub async fn revoke_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: &str,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "UPDATE refresh_sessions SET revoked_at = now(), revoked_reason = $3
         WHERE user_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR family_id <> $2)
         RETURNING family_id",
    )
    .bind(user_id)
    .bind(keep)
    .bind(reason)
    .fetch_all(conn)
    .await
    .map(dedup)
}

/// Revokes every live session of a tenant's users (the tenant was deactivated); returns the families revoked.
#[tracing::instrument(name = "db.sessions.revoke_tenant", level = "debug", skip_all)]
pub async fn revoke_tenant(conn: &mut PgConnection, tenant_id: Uuid, reason: &str) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "UPDATE refresh_sessions SET revoked_at = now(), revoked_reason = $2
         WHERE tenant_id = $1 AND revoked_at IS NULL RETURNING family_id",
    )
    .bind(tenant_id)
    .bind(reason)
    .fetch_all(conn)
    .await
    .map(dedup)
}

/// Whether a session (family) is alive: a live, unexpired, unreplaced token of it exists for this user.
#[tracing::instrument(name = "db.sessions.is_live", level = "debug", skip_all)]
pub async fn is_live(db: impl sqlx::PgExecutor<'_>, family_id: Uuid, user_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM refresh_sessions
                        WHERE family_id = $1 AND user_id = $2 AND revoked_at IS NULL AND replaced_by IS NULL
                          AND expires_at > now())",
    )
    .bind(family_id)
    .bind(user_id)
    .fetch_one(db)
    .await
}

fn dedup(mut ids: Vec<Uuid>) -> Vec<Uuid> {
    ids.sort();
    ids.dedup();
    ids
}
