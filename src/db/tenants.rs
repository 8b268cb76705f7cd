//! Tenants: the isolation boundary. Listing and creating them is a super_admin's business; reading and
//! changing one goes through a [`Scope`] like every tenant-scoped query.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::pagination::{Page, contains_pattern};
use crate::{auth::Scope, domain::TenantSlug};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Tenant {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub is_active: bool,
    /// Scoring rate limit (filings per second); `null` means the service default.
    pub rate_limit_per_second: Option<i32>,
    pub rate_limit_burst: Option<i32>,
    /// Risk-level scheme; `null` means the default (`master_scale`: levels follow the implied rating).
    #[schema(value_type = Option<Object>)]
    pub risk_thresholds: Option<Value>,
    /// Relative PD move that raises an alert without a level change; `null` means the default.
    pub alert_pd_change: Option<f64>,
    /// The portfolio's one-year default rate the trained models' PDs are shifted to; `null` keeps the rate
    /// of each model's training sample (its card says which).
    pub base_rate: Option<f64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, slug, name, is_active, rate_limit_per_second, rate_limit_burst, risk_thresholds, \
                       alert_pd_change, base_rate, created_at, updated_at";

#[tracing::instrument(name = "db.tenants.find_id_by_slug", level = "debug", skip_all)]
pub async fn find_id_by_slug(conn: &mut PgConnection, slug: &TenantSlug) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
        .bind(slug.as_str())
        .fetch_optional(conn)
        .await
}

#[derive(Debug, thiserror::Error)]
pub enum InsertTenantError {
    #[error("a tenant with slug {0} already exists")]
    SlugTaken(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Creates a tenant (service-wide: callers must hold `system` rights).
#[tracing::instrument(name = "db.tenants.insert", level = "debug", skip_all)]
pub async fn insert(conn: &mut PgConnection, slug: &TenantSlug, name: &str) -> Result<Tenant, InsertTenantError> {
    let result = sqlx::query_as(&format!(
        "INSERT INTO tenants (id, slug, name) VALUES ($1, $2, $3) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(slug.as_str())
    .bind(name)
    .fetch_one(conn)
    .await;
    match result {
        Err(sqlx::Error::Database(e)) if e.constraint() == Some("tenants_slug_key") => {
            Err(InsertTenantError::SlugTaken(slug.as_str().to_owned()))
        }
        other => Ok(other?),
    }
}

/// Every tenant (service-wide: callers must hold `system` rights).
#[tracing::instrument(name = "db.tenants.list_all", level = "debug", skip_all)]
pub async fn list_all(
    conn: &mut PgConnection,
    q: Option<&str>,
    is_active: Option<bool>,
    order_by: &str,
    page: Page,
) -> sqlx::Result<(Vec<Tenant>, i64)> {
    let condition = "($1::text IS NULL OR slug ILIKE $1 OR name ILIKE $1) AND ($2::boolean IS NULL OR is_active = $2)";
    let pattern = q.map(contains_pattern);
    let total = sqlx::query_scalar(&format!("SELECT count(*) FROM tenants WHERE {condition}"))
        .bind(&pattern)
        .bind(is_active)
        .fetch_one(&mut *conn)
        .await?;
    let tenants = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tenants WHERE {condition} ORDER BY {order_by} LIMIT $3 OFFSET $4"
    ))
    .bind(&pattern)
    .bind(is_active)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(conn)
    .await?;
    Ok((tenants, total))
}

pub const SORTS: [(&str, &str); 3] = [("slug", "slug"), ("name", "lower(name)"), ("created_at", "created_at")];

#[tracing::instrument(name = "db.tenants.find", level = "debug", skip_all)]
pub async fn find(conn: &mut PgConnection, scope: &Scope, id: Uuid) -> sqlx::Result<Option<Tenant>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tenants WHERE ($1::uuid IS NULL OR id = $1) AND id = $2"
    ))
    .bind(scope.tenant())
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Changes to a tenant; `None` leaves a field as it is. `Some(None)` clears a nullable one.
#[derive(Debug, Default)]
pub struct TenantChanges {
    pub name: Option<String>,
    pub is_active: Option<bool>,
    pub rate_limit_per_second: Option<Option<i32>>,
    pub rate_limit_burst: Option<Option<i32>>,
    pub risk_thresholds: Option<Option<Value>>,
    pub alert_pd_change: Option<Option<f64>>,
    pub base_rate: Option<Option<f64>>,
}

#[tracing::instrument(name = "db.tenants.update", level = "debug", skip_all)]
pub async fn update(
    conn: &mut PgConnection,
    scope: &Scope,
    id: Uuid,
    changes: &TenantChanges,
) -> sqlx::Result<Option<Tenant>> {
    sqlx::query_as(&format!(
        "UPDATE tenants SET
            name = coalesce($3, name),
            is_active = coalesce($4, is_active),
            rate_limit_per_second = CASE WHEN $5 THEN $6 ELSE rate_limit_per_second END,
            rate_limit_burst = CASE WHEN $7 THEN $8 ELSE rate_limit_burst END,
            risk_thresholds = CASE WHEN $9 THEN $10 ELSE risk_thresholds END,
            alert_pd_change = CASE WHEN $11 THEN $12 ELSE alert_pd_change END,
            base_rate = CASE WHEN $13 THEN $14 ELSE base_rate END
         WHERE ($1::uuid IS NULL OR id = $1) AND id = $2 RETURNING {COLUMNS}"
    ))
    .bind(scope.tenant())
    .bind(id)
    .bind(&changes.name)
    .bind(changes.is_active)
    .bind(changes.rate_limit_per_second.is_some())
    .bind(changes.rate_limit_per_second.flatten())
    .bind(changes.rate_limit_burst.is_some())
    .bind(changes.rate_limit_burst.flatten())
    .bind(changes.risk_thresholds.is_some())
    .bind(changes.risk_thresholds.clone().flatten())
    .bind(changes.alert_pd_change.is_some())
    .bind(changes.alert_pd_change.flatten())
    .bind(changes.base_rate.is_some())
    .bind(changes.base_rate.flatten())
    .fetch_optional(conn)
    .await
}

/// A tenant's own choice of models for one prediction type (`None` fields: the service default, no challenger).
#[derive(Debug, Clone, Default, PartialEq, Serialize, sqlx::FromRow)]
pub struct ModelSettings {
    pub default_model: Option<String>,
    pub shadow_model: Option<String>,
}

/// The tenant's model settings for a type, locked until the transaction ends (`Default` when it has none).
#[tracing::instrument(name = "db.tenants.model_settings_for_update", level = "debug", skip_all)]
pub async fn model_settings_for_update(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    prediction_type: &str,
) -> sqlx::Result<ModelSettings> {
    // The tenant's row is locked first, so two first writers of a type cannot both find nothing to lock.
    sqlx::query("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE")
        .bind(tenant_id)
        .execute(&mut *conn)
        .await?;
    Ok(sqlx::query_as(
        "SELECT default_model, shadow_model FROM tenant_model_settings
         WHERE tenant_id = $1 AND prediction_type = $2::prediction_type FOR UPDATE",
    )
    .bind(tenant_id)
    .bind(prediction_type)
    .fetch_optional(conn)
    .await?
    .unwrap_or_default())
}

/// Stores the tenant's model settings for a type (a row of two NULLs is removed: the service's defaults).
#[tracing::instrument(name = "db.tenants.put_model_settings", level = "debug", skip_all)]
pub async fn put_model_settings(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    prediction_type: &str,
    settings: &ModelSettings,
) -> sqlx::Result<()> {
    if settings == &ModelSettings::default() {
        sqlx::query("DELETE FROM tenant_model_settings WHERE tenant_id = $1 AND prediction_type = $2::prediction_type")
            .bind(tenant_id)
            .bind(prediction_type)
            .execute(conn)
            .await?;
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO tenant_model_settings (tenant_id, prediction_type, default_model, shadow_model)
         VALUES ($1, $2::prediction_type, $3, $4)
         ON CONFLICT (tenant_id, prediction_type)
         DO UPDATE SET default_model = EXCLUDED.default_model, shadow_model = EXCLUDED.shadow_model",
    )
    .bind(tenant_id)
    .bind(prediction_type)
    .bind(&settings.default_model)
    .bind(&settings.shadow_model)
    .execute(conn)
    .await?;
    Ok(())
}
