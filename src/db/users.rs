//! User accounts.

use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::Email;

/// The five roles, highest first (the database enum `user_role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, sqlx::Type)]
#[sqlx(type_name = "user_role", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Role {
    SuperAdmin,
    TenantAdmin,
    OrgAdmin,
    OrgMember,
    User,
}

/// An account to create. The password arrives already hashed.
#[derive(Debug)]
pub struct NewUser<'a> {
    pub tenant_id: Option<Uuid>,
    pub organization_id: Option<Uuid>,
    pub email: &'a Email,
    pub full_name: &'a str,
    pub password_hash: &'a str,
    pub role: Role,
}

#[derive(Debug, thiserror::Error)]
pub enum InsertUserError {
    #[error("a user with e-mail {0} already exists")]
    EmailTaken(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub async fn insert(conn: &mut PgConnection, user: &NewUser<'_>) -> Result<Uuid, InsertUserError> {
    let result = sqlx::query_scalar(
        "INSERT INTO users (id, tenant_id, organization_id, email, full_name, password_hash, role)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(user.tenant_id)
    .bind(user.organization_id)
    .bind(user.email.as_str())
    .bind(user.full_name)
    .bind(user.password_hash)
    .bind(user.role)
    .fetch_one(conn)
    .await;
    match result {
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("users_email") => {
            Err(InsertUserError::EmailTaken(user.email.to_string()))
        }
        other => Ok(other?),
    }
}

pub async fn find_id_by_email(conn: &mut PgConnection, email: &Email) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(email.as_str())
        .fetch_optional(conn)
        .await
}

/// Replaces a user's password hash and re-activates the account.
pub async fn reset_password(conn: &mut PgConnection, user_id: Uuid, password_hash: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET password_hash = $2, password_changed_at = now(), is_active = true WHERE id = $1")
        .bind(user_id)
        .bind(password_hash)
        .execute(conn)
        .await?;
    Ok(())
}
