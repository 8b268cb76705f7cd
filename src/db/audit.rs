//! The audit log: every mutation writes one row in its own transaction.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

/// Who performed an audited action.
#[derive(Debug, Clone, Copy)]
pub enum Actor {
    User(Uuid),
    /// The operator's command line (`pdscore create-super-admin`, `pdscore demo-setup`).
    Cli,
}

/// One audited mutation.
#[derive(Debug)]
pub struct AuditEntry<'a> {
    pub tenant_id: Option<Uuid>,
    pub actor: Actor,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub request_id: Option<String>,
}

pub async fn record(conn: &mut PgConnection, entry: AuditEntry<'_>) -> sqlx::Result<()> {
    let (actor_user_id, actor_kind) = match entry.actor {
        Actor::User(id) => (Some(id), "user"),
        Actor::Cli => (None, "cli"),
    };
    sqlx::query(
        "INSERT INTO audit_log (id, tenant_id, actor_user_id, actor_kind, action, target_type, target_id, before, after, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(Uuid::now_v7())
    .bind(entry.tenant_id)
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
