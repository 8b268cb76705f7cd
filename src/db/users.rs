//! User accounts.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::pagination::{Page, contains_pattern};
use crate::{
    auth::{Role, Scope},
    domain::Email,
};

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct User {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub organization_id: Option<Uuid>,
    pub email: String,
    pub full_name: String,
    pub role: Role,
    pub is_active: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, tenant_id, organization_id, email, full_name, role, is_active, last_login_at, created_at, updated_at";

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

#[tracing::instrument(name = "db.users.insert", level = "debug", skip_all)]
pub async fn insert(conn: &mut PgConnection, user: &NewUser<'_>) -> Result<User, InsertUserError> {
    let result = sqlx::query_as(&format!(
        "INSERT INTO users (id, tenant_id, organization_id, email, full_name, password_hash, role)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    ))
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

#[tracing::instrument(name = "db.users.find_id_by_email", level = "debug", skip_all)]
pub async fn find_id_by_email(conn: &mut PgConnection, email: &Email) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(email.as_str())
        .fetch_optional(conn)
        .await
}

/// Replaces a user's password hash and re-activates the account.
#[tracing::instrument(name = "db.users.reset_password", level = "debug", skip_all)]
pub async fn reset_password(conn: &mut PgConnection, user_id: Uuid, password_hash: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET password_hash = $2, password_changed_at = now(), is_active = true WHERE id = $1")
        .bind(user_id)
        .bind(password_hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// What sign-in needs to know about an account.
#[derive(Debug, sqlx::FromRow)]
pub struct Credentials {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub organization_id: Option<Uuid>,
    pub role: Role,
    pub password_hash: String,
    /// The account and its tenant (if any) are both active.
    pub can_sign_in: bool,
}

/// Sign-in is by e-mail across the service (before any tenant is known), so this lookup is unscoped.
#[tracing::instrument(name = "db.users.find_credentials", level = "debug", skip_all)]
pub async fn find_credentials(conn: &mut PgConnection, email: &str) -> sqlx::Result<Option<Credentials>> {
    sqlx::query_as(&format!("{CREDENTIALS} WHERE u.email = $1"))
        .bind(email)
        .fetch_optional(conn)
        .await
}

/// The same by id, for a refresh (the account named by a stored session; unscoped like sign-in).
#[tracing::instrument(name = "db.users.find_credentials_by_id", level = "debug", skip_all)]
pub async fn find_credentials_by_id(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Credentials>> {
    sqlx::query_as(&format!("{CREDENTIALS} WHERE u.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
}

const CREDENTIALS: &str = "SELECT u.id, u.tenant_id, u.organization_id, u.role, u.password_hash,
        u.is_active AND coalesce(t.is_active, true) AS can_sign_in
    FROM users u LEFT JOIN tenants t ON t.id = u.tenant_id";

#[tracing::instrument(name = "db.users.record_login", level = "debug", skip_all)]
pub async fn record_login(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET last_login_at = now() WHERE id = $1")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The scope's condition on users: tenant ($1) and organization ($2).
const IN_SCOPE: &str = "($1::uuid IS NULL OR tenant_id = $1) AND ($2::uuid IS NULL OR organization_id = $2)";

#[tracing::instrument(name = "db.users.find", level = "debug", skip_all)]
pub async fn find(conn: &mut PgConnection, scope: &Scope, id: Uuid) -> sqlx::Result<Option<User>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE {IN_SCOPE} AND id = $3"))
        .bind(scope.tenant())
        .bind(scope.organization())
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// The stored password hash of a user in scope (for a password change).
#[tracing::instrument(name = "db.users.password_hash", level = "debug", skip_all)]
pub async fn password_hash(conn: &mut PgConnection, scope: &Scope, id: Uuid) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(&format!("SELECT password_hash FROM users WHERE {IN_SCOPE} AND id = $3"))
        .bind(scope.tenant())
        .bind(scope.organization())
        .bind(id)
        .fetch_optional(conn)
        .await
}

#[tracing::instrument(name = "db.users.set_password", level = "debug", skip_all)]
pub async fn set_password(conn: &mut PgConnection, scope: &Scope, id: Uuid, password_hash: &str) -> sqlx::Result<()> {
    sqlx::query(&format!(
        "UPDATE users SET password_hash = $4, password_changed_at = now() WHERE {IN_SCOPE} AND id = $3"
    ))
    .bind(scope.tenant())
    .bind(scope.organization())
    .bind(id)
    .bind(password_hash)
    .execute(conn)
    .await?;
    Ok(())
}

/// Filters of the user list.
#[derive(Debug, Default)]
pub struct UserFilter {
    pub organization_id: Option<Uuid>,
    pub role: Option<Role>,
    pub is_active: Option<bool>,
    /// Matches e-mail or name, case-insensitively.
    pub q: Option<String>,
}

pub const SORTS: [(&str, &str); 4] = [
    ("email", "email"),
    ("full_name", "lower(full_name)"),
    ("role", "role"),
    ("created_at", "created_at"),
];

#[tracing::instrument(name = "db.users.list", level = "debug", skip_all)]
pub async fn list(
    conn: &mut PgConnection,
    scope: &Scope,
    filter: &UserFilter,
    order_by: &str,
    page: Page,
) -> sqlx::Result<(Vec<User>, i64)> {
    let condition = format!(
        "{IN_SCOPE} AND ($3::uuid IS NULL OR organization_id = $3) AND ($4::user_role IS NULL OR role = $4)
         AND ($5::boolean IS NULL OR is_active = $5)
         AND ($6::text IS NULL OR email ILIKE $6 OR full_name ILIKE $6)"
    );
    let pattern = filter.q.as_deref().map(contains_pattern);
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM users WHERE {condition}"))
        .bind(scope.tenant())
        .bind(scope.organization())
        .bind(filter.organization_id)
        .bind(filter.role)
        .bind(filter.is_active)
        .bind(&pattern)
        .fetch_one(&mut *conn)
        .await?;
    let users = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM users WHERE {condition} ORDER BY {order_by} LIMIT $7 OFFSET $8"
    ))
    .bind(scope.tenant())
    .bind(scope.organization())
    .bind(filter.organization_id)
    .bind(filter.role)
    .bind(filter.is_active)
    .bind(&pattern)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(conn)
    .await?;
    Ok((users, total))
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct UserChanges {
    pub full_name: Option<String>,
    pub role: Option<Role>,
    pub organization_id: Option<Uuid>,
    pub is_active: Option<bool>,
}

#[tracing::instrument(name = "db.users.update", level = "debug", skip_all)]
pub async fn update(
    conn: &mut PgConnection,
    scope: &Scope,
    id: Uuid,
    changes: &UserChanges,
) -> sqlx::Result<Option<User>> {
    sqlx::query_as(&format!(
        "UPDATE users SET full_name = coalesce($4, full_name), role = coalesce($5, role),
                          organization_id = coalesce($6, organization_id), is_active = coalesce($7, is_active)
         WHERE {IN_SCOPE} AND id = $3 RETURNING {COLUMNS}"
    ))
    .bind(scope.tenant())
    .bind(scope.organization())
    .bind(id)
    .bind(&changes.full_name)
    .bind(changes.role)
    .bind(changes.organization_id)
    .bind(changes.is_active)
    .fetch_optional(conn)
    .await
}
