//! Organizations of a tenant. Tenant admins manage them all; an organization's own roles see (and its admin
//! changes) only their own.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::Deserialize;
use uuid::Uuid;

use super::{ApiError, ErrorCode, audit_entry, envelope, nullable, order_by, page, snapshot};
use crate::{
    auth::{Permission, Principal},
    db::{
        audit,
        organizations::{self, Organization, OrganizationChanges, OrganizationWriteError},
        pagination::{PageRequest, Paginated},
    },
    domain::{optional_text, required_text},
    http::AppState,
};

impl From<OrganizationWriteError> for ApiError {
    fn from(e: OrganizationWriteError) -> Self {
        match e {
            OrganizationWriteError::NameTaken(_) | OrganizationWriteError::InUse(_) => {
                ApiError::new(ErrorCode::Conflict, capitalize(&e.to_string()))
            }
            OrganizationWriteError::Database(e) => e.into(),
        }
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect::<String>() + ".")
        .unwrap_or_default()
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrganizationQuery {
    /// Name contains this text.
    pub q: Option<String>,
    /// `name` or `created_at`; prefix `-` for descending.
    pub sort: Option<String>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

/// The organizations of a tenant the caller may see.
#[utoipa::path(tag = "organizations", security(("bearer" = [])), params(("tenant_id" = Uuid, Path), OrganizationQuery),
    responses((status = 200, body = envelope::Envelope<Paginated<Organization>>), (status = 404, body = envelope::ErrorBody)))]
#[get("/tenants/{tenant_id}/organizations")]
#[tracing::instrument(name = "http.organizations.list", skip_all)]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    query: web::Query<OrganizationQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::OrgRead)?;
    let scope = principal.scope_in_tenant(path.into_inner(), "tenant")?;
    let query = query.into_inner();
    let page = page(PageRequest {
        page: query.page,
        per_page: query.per_page,
    })?;
    let order = order_by(query.sort.as_deref(), &organizations::SORTS, "name")?;
    let mut conn = state.db.acquire().await?;
    let (items, total) = organizations::list(&mut conn, &scope, query.q.as_deref(), &order, page).await?;
    Ok(envelope::ok(Paginated::new(items, page, total)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganization {
    #[schema(example = "Credit Risk")]
    pub name: String,
    pub description: Option<String>,
}

/// Create an organization in a tenant (tenant admin).
#[utoipa::path(tag = "organizations", security(("bearer" = [])), params(("tenant_id" = Uuid, Path)),
    request_body = CreateOrganization, responses((status = 201, body = envelope::Envelope<Organization>),
    (status = 409, body = envelope::ErrorBody), (status = 422, body = envelope::ErrorBody)))]
#[post("/tenants/{tenant_id}/organizations")]
#[tracing::instrument(name = "http.organizations.create", skip_all)]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    body: crate::http::Json<CreateOrganization>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::OrgCreate)?;
    let tenant_id = path.into_inner();
    let scope = principal.scope_in_tenant(tenant_id, "tenant")?;
    let body = body.into_inner();
    let name = required_text("name", &body.name, 200)?;
    let description = body
        .description
        .as_deref()
        .map(|d| optional_text("description", d, 2000))
        .transpose()?
        .flatten();
    let mut tx = state.db.begin().await?;
    // The tenant must exist (a super_admin may name any id).
    crate::db::tenants::find(&mut tx, &scope, tenant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    let organization = organizations::insert(&mut tx, tenant_id, &name, description.as_deref()).await?;
    let mut entry = audit_entry(
        &principal,
        "organization.create",
        "organization",
        organization.id,
        Some(tenant_id),
        Some(organization.id),
    );
    entry.after = snapshot(&organization);
    audit::record(&mut tx, entry).await?;
    tx.commit().await?;
    Ok(envelope::created(organization))
}

/// An organization the caller may see.
#[utoipa::path(tag = "organizations", security(("bearer" = [])), params(("organization_id" = Uuid, Path)),
    responses((status = 200, body = envelope::Envelope<Organization>), (status = 404, body = envelope::ErrorBody)))]
#[get("/organizations/{organization_id}")]
#[tracing::instrument(name = "http.organizations.get", skip_all)]
pub async fn get(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::OrgRead)?;
    let mut conn = state.db.acquire().await?;
    let organization = organizations::find(&mut conn, &principal.scope(), path.into_inner())
        .await?
        .ok_or_else(|| ApiError::not_found("organization"))?;
    Ok(envelope::ok(organization))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrganization {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    pub is_active: Option<bool>,
}

/// Change an organization (tenant admin, or the organization's own admin).
#[utoipa::path(tag = "organizations", security(("bearer" = [])), params(("organization_id" = Uuid, Path)),
    request_body = UpdateOrganization, responses((status = 200, body = envelope::Envelope<Organization>),
    (status = 404, body = envelope::ErrorBody), (status = 409, body = envelope::ErrorBody)))]
#[patch("/organizations/{organization_id}")]
#[tracing::instrument(name = "http.organizations.update", skip_all)]
pub async fn update(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    body: crate::http::Json<UpdateOrganization>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::OrgManage)?;
    let id = path.into_inner();
    let body = body.into_inner();
    let changes = OrganizationChanges {
        name: body
            .name
            .as_deref()
            .map(|n| required_text("name", n, 200))
            .transpose()?,
        description: match body.description {
            Some(Some(d)) => Some(optional_text("description", &d, 2000)?),
            Some(None) => Some(None),
            None => None,
        },
        is_active: body.is_active,
    };
    let scope = principal.scope();
    let mut tx = state.db.begin().await?;
    let before = organizations::find(&mut tx, &scope, id)
        .await?
        .ok_or_else(|| ApiError::not_found("organization"))?;
    let after = organizations::update(&mut tx, &scope, id, &changes)
        .await?
        .ok_or_else(|| ApiError::not_found("organization"))?;
    let mut entry = audit_entry(
        &principal,
        "organization.update",
        "organization",
        id,
        Some(after.tenant_id),
        Some(id),
    );
    entry.before = snapshot(&before);
    entry.after = snapshot(&after);
    audit::record(&mut tx, entry).await?;
    tx.commit().await?;
    Ok(envelope::ok(after))
}

/// Delete an empty organization (tenant admin). One that still has users or companies is a `CONFLICT`.
#[utoipa::path(tag = "organizations", security(("bearer" = [])), params(("organization_id" = Uuid, Path)),
    responses((status = 200, body = envelope::Envelope<Organization>), (status = 404, body = envelope::ErrorBody),
    (status = 409, body = envelope::ErrorBody)))]
#[delete("/organizations/{organization_id}")]
#[tracing::instrument(name = "http.organizations.delete", skip_all)]
pub async fn delete(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::OrgDelete)?;
    let id = path.into_inner();
    let mut tx = state.db.begin().await?;
    let deleted = organizations::delete(&mut tx, &principal.scope(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("organization"))?;
    let mut entry = audit_entry(
        &principal,
        "organization.delete",
        "organization",
        id,
        Some(deleted.tenant_id),
        Some(id),
    );
    entry.before = snapshot(&deleted);
    audit::record(&mut tx, entry).await?;
    tx.commit().await?;
    // Its companies went with it.
    state
        .companies_changed(crate::fleet::Change::Companies {
            tenant_id: deleted.tenant_id,
        })
        .await;
    Ok(envelope::ok(deleted))
}
