//! `GET /api/v1/audit`: the audit trail, newest first, scoped like everything else (a tenant admin sees their
//! tenant's, an organization admin their organization's).

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ApiError, envelope};
use crate::{
    auth::{Permission, Principal},
    db::audit::{self, AuditFilter, AuditRecord},
    state::AppState,
};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// e.g. `company.create`, `user.update`, `auth.login`.
    pub action: Option<String>,
    /// e.g. `company`, `user`, `organization`, `tenant`, `session`.
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub actor_user_id: Option<Uuid>,
    /// Only super_admin: one tenant's trail.
    pub tenant_id: Option<Uuid>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// 1-200, default 50.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditRecord>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<Uuid>,
}

/// The audit trail the caller may read.
#[utoipa::path(tag = "audit", security(("bearer" = [])), params(AuditQuery), responses(
    (status = 200, body = envelope::Envelope<AuditPage>), (status = 403, body = envelope::ErrorBody)))]
#[get("/audit")]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::AuditRead)?;
    let query = query.into_inner();
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::validation("limit must be between 1 and 200")
            .with_details(super::field_details("limit", "must be between 1 and 200")));
    }
    let scope = match query.tenant_id {
        Some(tenant_id) => principal.scope_in_tenant(tenant_id, "tenant")?,
        None => principal.scope(),
    };
    let filter = AuditFilter {
        action: query.action,
        target_type: query.target_type,
        target_id: query.target_id,
        actor_user_id: query.actor_user_id,
        since: query.since,
        until: query.until,
        before_id: query.cursor,
    };
    let mut conn = state.db.acquire().await?;
    let items = audit::list(&mut conn, &scope, &filter, i64::from(limit)).await?;
    let next_cursor = (items.len() == limit as usize)
        .then(|| items.last().map(|r| r.id))
        .flatten();
    Ok(envelope::ok(AuditPage { items, next_cursor }))
}
