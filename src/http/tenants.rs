//! Tenants: listed and created by a super_admin; read and configured by their own tenant admin.

use actix_web::{HttpResponse, get, patch, post, web};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{ApiError, ErrorCode, audit_entry, envelope, nullable, order_by, page, snapshot};
use crate::{
    auth::{Permission, Principal, Role, password},
    db::{
        audit,
        pagination::{PageRequest, Paginated},
        sessions,
        tenants::{self, InsertTenantError, Tenant, TenantChanges},
        users::{self, NewUser, User},
    },
    domain::{Email, TenantSlug, required_text},
    http::AppState,
};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TenantQuery {
    /// Slug or name contains this text.
    pub q: Option<String>,
    pub is_active: Option<bool>,
    /// `slug`, `name` or `created_at`; prefix `-` for descending.
    pub sort: Option<String>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

/// Every tenant (super_admin).
#[utoipa::path(tag = "tenants", security(("bearer" = [])), params(TenantQuery), responses(
    (status = 200, body = envelope::Envelope<Paginated<Tenant>>), (status = 403, body = envelope::ErrorBody)))]
#[get("/tenants")]
#[tracing::instrument(name = "http.tenants.list", skip_all)]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<TenantQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::SystemManage)?;
    let query = query.into_inner();
    let page = page(PageRequest {
        page: query.page,
        per_page: query.per_page,
    })?;
    let order = order_by(query.sort.as_deref(), &tenants::SORTS, "slug")?;
    let mut conn = state.db.acquire().await?;
    let (items, total) = tenants::list_all(&mut conn, query.q.as_deref(), query.is_active, &order, page).await?;
    Ok(envelope::ok(Paginated::new(items, page, total)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenantAdmin {
    pub email: String,
    #[serde(default)]
    pub full_name: String,
    /// Omit to generate one (returned once in the answer).
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<SecretString>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// 2-63 characters among a-z, 0-9 and '-' (used in NATS subjects).
    #[schema(example = "acme-bank")]
    pub slug: String,
    pub name: String,
    /// The tenant's first administrator, created in the same transaction.
    pub admin: Option<NewTenantAdmin>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedTenant {
    pub tenant: Tenant,
    pub admin: Option<User>,
    /// The generated password of the admin, shown this once.
    pub admin_initial_password: Option<String>,
}

/// Create a tenant, optionally with its first tenant admin (super_admin).
#[utoipa::path(tag = "tenants", security(("bearer" = [])), request_body = CreateTenant, responses(
    (status = 201, body = envelope::Envelope<CreatedTenant>), (status = 409, body = envelope::ErrorBody),
    (status = 422, body = envelope::ErrorBody)))]
#[post("/tenants")]
#[tracing::instrument(name = "http.tenants.create", skip_all)]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    body: crate::http::Json<CreateTenant>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::SystemManage)?;
    let body = body.into_inner();
    let slug = TenantSlug::parse(body.slug.trim())?;
    let name = required_text("name", &body.name, 200)?;
    let admin = match &body.admin {
        Some(admin) => {
            let email = Email::parse(&admin.email)?;
            let full_name = crate::domain::optional_text("admin.full_name", &admin.full_name, 200)?.unwrap_or_default();
            let (password, generated) = super::users::initial_password(admin.password.clone(), &email)?;
            let hash = password::hash(password.clone()).await?;
            Some((email, full_name, hash, generated.then_some(password)))
        }
        None => None,
    };
    let mut tx = state.db.begin().await?;
    let tenant = tenants::insert(&mut tx, &slug, &name).await.map_err(|e| match e {
        InsertTenantError::SlugTaken(slug) => ApiError::new(
            ErrorCode::Conflict,
            format!("A tenant with slug {slug} already exists."),
        ),
        InsertTenantError::Database(e) => e.into(),
    })?;
    let mut entry = audit_entry(&principal, "tenant.create", "tenant", tenant.id, Some(tenant.id), None);
    entry.after = snapshot(&tenant);
    audit::record(&mut tx, entry).await?;
    let mut created_admin = None;
    let mut initial_password = None;
    if let Some((email, full_name, hash, generated)) = admin {
        let user = users::insert(
            &mut tx,
            &NewUser {
                tenant_id: Some(tenant.id),
                organization_id: None,
                email: &email,
                full_name: &full_name,
                password_hash: &hash,
                role: Role::TenantAdmin,
            },
        )
        .await?;
        let mut entry = audit_entry(&principal, "user.create", "user", user.id, Some(tenant.id), None);
        entry.after = snapshot(&user);
        audit::record(&mut tx, entry).await?;
        created_admin = Some(user);
        initial_password = generated.map(|p| secrecy::ExposeSecret::expose_secret(&p).to_owned());
    }
    tx.commit().await?;
    // The instances' ingest may have cached its slug as unknown.
    state
        .changes
        .announce(crate::fleet::Change::Tenant { tenant_id: tenant.id })
        .await;
    Ok(envelope::created(CreatedTenant {
        tenant,
        admin: created_admin,
        admin_initial_password: initial_password,
    }))
}

/// A tenant (super_admin, or its own tenant admin).
#[utoipa::path(tag = "tenants", security(("bearer" = [])), params(("tenant_id" = Uuid, Path)), responses(
    (status = 200, body = envelope::Envelope<Tenant>), (status = 404, body = envelope::ErrorBody)))]
#[get("/tenants/{tenant_id}")]
#[tracing::instrument(name = "http.tenants.get", skip_all)]
pub async fn get(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::TenantRead)?;
    let id = path.into_inner();
    let scope = principal.scope_in_tenant(id, "tenant")?;
    let mut conn = state.db.acquire().await?;
    let tenant = tenants::find(&mut conn, &scope, id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    Ok(envelope::ok(tenant))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTenant {
    pub name: Option<String>,
    /// super_admin only. Deactivating ends every session of the tenant's users.
    pub is_active: Option<bool>,
    /// super_admin only; `null` restores the service default.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i32>)]
    pub rate_limit_per_second: Option<Option<i32>>,
    /// super_admin only; `null` restores the service default.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i32>)]
    pub rate_limit_burst: Option<Option<i32>>,
    /// `{"scheme":"master_scale"}` (the default: levels follow the implied rating), `{"scheme":"seed"}`, `{"scheme":"accunode"}` or `{"scheme":"thresholds","low_max":…,"medium_max":…,
    /// "high_max":…}`; `null` restores the default.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    pub risk_thresholds: Option<Option<Value>>,
    /// Relative PD move (0.25 = 25 %) that raises an alert without a level change; `null` restores the default.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<f64>)]
    pub alert_pd_change: Option<Option<f64>>,
    /// The portfolio's one-year default rate (0.02 = 2 %), strictly between 0 and 1: the trained models'
    /// PDs are shifted from their sample's rate to it (ranking unchanged); `null` keeps the sample's.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<f64>)]
    pub base_rate: Option<Option<f64>>,
}

/// Change a tenant. Its own admin may change the name, risk thresholds, alert sensitivity and base rate;
/// activation and rate limits are a super_admin's.
#[utoipa::path(tag = "tenants", security(("bearer" = [])), params(("tenant_id" = Uuid, Path)),
    request_body = UpdateTenant, responses(
    (status = 200, body = envelope::Envelope<Tenant>), (status = 403, body = envelope::ErrorBody),
    (status = 404, body = envelope::ErrorBody), (status = 422, body = envelope::ErrorBody)))]
#[patch("/tenants/{tenant_id}")]
#[tracing::instrument(name = "http.tenants.update", skip_all)]
pub async fn update(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    body: crate::http::Json<UpdateTenant>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::TenantManage)?;
    let id = path.into_inner();
    let scope = principal.scope_in_tenant(id, "tenant")?;
    let body = body.into_inner();
    if body.is_active.is_some() || body.rate_limit_per_second.is_some() || body.rate_limit_burst.is_some() {
        principal.authorize(Permission::SystemManage)?;
    }
    let changes = validate_tenant_changes(body)?;
    let mut tx = state.db.begin().await?;
    let before = tenants::find(&mut tx, &scope, id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    let after = tenants::update(&mut tx, &scope, id, &changes)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    let ended = if before.is_active && !after.is_active {
        sessions::revoke_tenant(&mut tx, id, "tenant deactivated").await?
    } else {
        Vec::new()
    };
    let mut entry = audit_entry(&principal, "tenant.update", "tenant", id, Some(id), None);
    entry.before = snapshot(&before);
    entry.after = snapshot(&after);
    audit::record(&mut tx, entry).await?;
    tx.commit().await?;
    // Every instance applies the new limits and scheme at once (this one before answering).
    state
        .changes
        .announce(crate::fleet::Change::Tenant { tenant_id: id })
        .await;
    state.auth.sessions.revoke(&ended).await?;
    Ok(envelope::ok(after))
}

fn validate_tenant_changes(body: UpdateTenant) -> Result<TenantChanges, ApiError> {
    let invalid = |field: &str, reason: &str| {
        ApiError::validation(format!("{field}: {reason}")).with_details(super::field_details(field, reason))
    };
    let name = body
        .name
        .as_deref()
        .map(|n| required_text("name", n, 200))
        .transpose()?;
    for (field, value) in [
        ("rate_limit_per_second", body.rate_limit_per_second),
        ("rate_limit_burst", body.rate_limit_burst),
    ] {
        if let Some(Some(v)) = value
            && !(1..=1_000_000).contains(&v)
        {
            return Err(invalid(field, "must be between 1 and 1000000"));
        }
    }
    if let Some(Some(v)) = body.alert_pd_change
        && !(v.is_finite() && v > 0.0 && v <= 100.0)
    {
        return Err(invalid(
            "alert_pd_change",
            "must be a relative change above 0 (0.25 = 25 %)",
        ));
    }
    if let Some(Some(v)) = body.base_rate
        && !(v.is_finite() && v > 0.0 && v < 1.0)
    {
        return Err(invalid(
            "base_rate",
            "must be a default rate strictly between 0 and 1 (0.02 = 2 %)",
        ));
    }
    if let Some(Some(scheme)) = &body.risk_thresholds {
        let parsed: pdscore_models::risk::RiskScheme = serde_json::from_value(scheme.clone())
            .map_err(|e| invalid("risk_thresholds", &format!("not a risk scheme: {e}")))?;
        parsed
            .validate()
            .map_err(|e| invalid("risk_thresholds", &e.to_string()))?;
    }
    Ok(TenantChanges {
        name,
        is_active: body.is_active,
        rate_limit_per_second: body.rate_limit_per_second,
        rate_limit_burst: body.rate_limit_burst,
        risk_thresholds: body.risk_thresholds,
        alert_pd_change: body.alert_pd_change,
        base_rate: body.base_rate,
    })
}
