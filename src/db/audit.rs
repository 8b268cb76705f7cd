//! The audit log: every mutation writes one row in the mutation's own transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::pagination::Cursor;
use crate::auth::Scope;

/// Who performed an audited action.
#[derive(Debug, Clone, Copy)]
pub enum Actor {
    User(Uuid),
    /// The operator's command line (`pdscore create-super-admin`, `pdscore demo-setup`).
    Cli,
    /// A message from NATS (no user: the tenant's publisher).
    Nats,
}

/// One audited mutation.
#[derive(Debug)]
pub struct AuditEntry<'a> {
    pub tenant_id: Option<Uuid>,
    /// The organization the change concerns, when there is one (organization admins read these).
    pub organization_id: Option<Uuid>,
    pub actor: Actor,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub request_id: Option<String>,
}

#[tracing::instrument(name = "db.audit.record", level = "debug", skip_all)]
pub async fn record(conn: &mut PgConnection, entry: AuditEntry<'_>) -> sqlx::Result<()> {
    let (actor_user_id, actor_kind) = match entry.actor {
        Actor::User(id) => (Some(id), "user"),
        Actor::Cli => (None, "cli"),
        Actor::Nats => (None, "nats"),
    };
    sqlx::query(
        "INSERT INTO audit_log (id, tenant_id, organization_id, actor_user_id, actor_kind, action, target_type,
                                target_id, before, after, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(Uuid::now_v7())
    .bind(entry.tenant_id)
    .bind(entry.organization_id)
    .bind(actor_user_id)
    .bind(actor_kind)
    .bind(entry.action)
    .bind(entry.target_type)
    .bind(entry.target_id)
    .bind(entry.before)
    .bind(entry.after)
    .bind(entry.request_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// An audit row as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditRecord {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub organization_id: Option<Uuid>,
    pub actor_user_id: Option<Uuid>,
    pub actor_kind: String,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub actor_user_id: Option<Uuid>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// The newest rows first (ids are time-ordered UUIDv7), from the cursor on.
#[tracing::instrument(name = "db.audit.list", level = "debug", skip_all)]
pub async fn list(
    conn: &mut PgConnection,
    scope: &Scope,
    filter: &AuditFilter,
    cursor: Cursor,
) -> sqlx::Result<Vec<AuditRecord>> {
    sqlx::query_as(
        "SELECT id, tenant_id, organization_id, actor_user_id, actor_kind, action, target_type, target_id, before,
                after, request_id, created_at
         FROM audit_log
         WHERE ($1::uuid IS NULL OR tenant_id = $1) AND ($2::uuid IS NULL OR organization_id = $2)
           AND ($3::text IS NULL OR action = $3) AND ($4::text IS NULL OR target_type = $4)
           AND ($5::text IS NULL OR target_id = $5) AND ($6::uuid IS NULL OR actor_user_id = $6)
           AND ($7::timestamptz IS NULL OR created_at >= $7) AND ($8::timestamptz IS NULL OR created_at < $8)
           AND ($9::uuid IS NULL OR id < $9)
         ORDER BY id DESC LIMIT $10",
    )
    .bind(scope.tenant())
    .bind(scope.organization())
    .bind(&filter.action)
    .bind(&filter.target_type)
    .bind(&filter.target_id)
    .bind(filter.actor_user_id)
    .bind(filter.since)
    .bind(filter.until)
    .bind(cursor.before)
    .bind(cursor.limit())
    .fetch_all(conn)
    .await
}
