//! Organizations: the teams of a tenant (a bank's credit-risk desk, a fund's portfolio team).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::pagination::{Page, contains_pattern};
use crate::auth::Scope;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Organization {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, tenant_id, name, description, is_active, created_at, updated_at";
/// The scope's condition on organizations: tenant ($1) and, for organization roles, their own ($2).
const IN_SCOPE: &str = "($1::uuid IS NULL OR tenant_id = $1) AND ($2::uuid IS NULL OR id = $2)";

pub const SORTS: [(&str, &str); 2] = [("name", "lower(name)"), ("created_at", "created_at")];

#[derive(Debug, thiserror::Error)]
pub enum OrganizationWriteError {
    #[error("an organization named {0:?} already exists in this tenant")]
    NameTaken(String),
    #[error("the organization still has {0}; move or delete them first")]
    InUse(&'static str),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn name_taken(e: sqlx::Error, name: &str) -> OrganizationWriteError {
    match e {
        sqlx::Error::Database(db) if db.constraint() == Some("organizations_tenant_name") => {
            OrganizationWriteError::NameTaken(name.to_owned())
        }
        other => other.into(),
    }
}

#[tracing::instrument(name = "db.organizations.find", level = "debug", skip_all)]
pub async fn find(conn: &mut PgConnection, scope: &Scope, id: Uuid) -> sqlx::Result<Option<Organization>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM organizations WHERE {IN_SCOPE} AND id = $3"
    ))
    .bind(scope.tenant())
    .bind(scope.organization())
    .bind(id)
    .fetch_optional(conn)
    .await
}

#[tracing::instrument(name = "db.organizations.find_id_by_name", level = "debug", skip_all)]
pub async fn find_id_by_name(conn: &mut PgConnection, scope: &Scope, name: &str) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(&format!(
        "SELECT id FROM organizations WHERE {IN_SCOPE} AND lower(name) = lower($3)"
    ))
    .bind(scope.tenant())
    .bind(scope.organization())
    .bind(name)
    .fetch_optional(conn)
    .await
}

#[tracing::instrument(name = "db.organizations.list", level = "debug", skip_all)]
pub async fn list(
    conn: &mut PgConnection,
    scope: &Scope,
    q: Option<&str>,
    order_by: &str,
    page: Page,
) -> sqlx::Result<(Vec<Organization>, i64)> {
    let condition = format!("{IN_SCOPE} AND ($3::text IS NULL OR name ILIKE $3)");
    let pattern = q.map(contains_pattern);
    let total = sqlx::query_scalar(&format!("SELECT count(*) FROM organizations WHERE {condition}"))
        .bind(scope.tenant())
        .bind(scope.organization())
        .bind(&pattern)
        .fetch_one(&mut *conn)
        .await?;
    let items = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM organizations WHERE {condition} ORDER BY {order_by} LIMIT $4 OFFSET $5"
    ))
    .bind(scope.tenant())
    .bind(scope.organization())
    .bind(&pattern)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(conn)
    .await?;
    Ok((items, total))
}

/// Creates an organization in `tenant_id` (the caller resolved it from its scope).
#[tracing::instrument(name = "db.organizations.insert", level = "debug", skip_all)]
pub async fn insert(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    name: &str,
    description: Option<&str>,
) -> Result<Organization, OrganizationWriteError> {
    sqlx::query_as(&format!(
        "INSERT INTO organizations (id, tenant_id, name, description) VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(tenant_id)
    .bind(name)
    .bind(description)
    .fetch_one(conn)
    .await
    .map_err(|e| name_taken(e, name))
}

#[derive(Debug, Default)]
pub struct OrganizationChanges {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub is_active: Option<bool>,
}

#[tracing::instrument(name = "db.organizations.update", level = "debug", skip_all)]
pub async fn update(
    conn: &mut PgConnection,
    scope: &Scope,
    id: Uuid,
    changes: &OrganizationChanges,
) -> Result<Option<Organization>, OrganizationWriteError> {
    sqlx::query_as(&format!(
        "UPDATE organizations SET name = coalesce($4, name),
                description = CASE WHEN $5 THEN $6 ELSE description END, is_active = coalesce($7, is_active)
         WHERE {IN_SCOPE} AND id = $3 RETURNING {COLUMNS}"
    ))
    .bind(scope.tenant())
    .bind(scope.organization())
    .bind(id)
    .bind(&changes.name)
    .bind(changes.description.is_some())
    .bind(changes.description.clone().flatten())
    .bind(changes.is_active)
    .fetch_optional(conn)
    .await
    .map_err(|e| name_taken(e, changes.name.as_deref().unwrap_or_default()))
}

/// Deletes an empty organization; one that still has users or companies is refused (deleting would cascade
/// to their predictions).
#[tracing::instrument(name = "db.organizations.delete", level = "debug", skip_all)]
pub async fn delete(
    conn: &mut PgConnection,
    scope: &Scope,
    id: Uuid,
) -> Result<Option<Organization>, OrganizationWriteError> {
    let Some(organization) = find(&mut *conn, scope, id).await? else {
        return Ok(None);
    };
    let (users, companies): (bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM users WHERE tenant_id = $1 AND organization_id = $2),
                EXISTS (SELECT 1 FROM companies WHERE tenant_id = $1 AND organization_id = $2)",
    )
    .bind(organization.tenant_id)
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    if users {
        return Err(OrganizationWriteError::InUse("users"));
    }
    if companies {
        return Err(OrganizationWriteError::InUse("companies"));
    }
    sqlx::query("DELETE FROM organizations WHERE tenant_id = $1 AND id = $2")
        .bind(organization.tenant_id)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(Some(organization))
}
