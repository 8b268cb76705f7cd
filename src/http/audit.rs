//! `GET /api/v1/audit`: the audit trail, newest first, scoped like everything else (a tenant admin sees their
//! tenant's, an organization admin their organization's).

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::{ApiError, envelope};
use crate::{
    auth::{Permission, Principal},
    db::{
        audit::{self, AuditFilter, AuditRecord},
        pagination::CursorList,
    },
    http::AppState,
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
    /// 1 to 200 (default 50).
    pub per_page: Option<u32>,
    /// `next_cursor` of the previous answer: the rows older than it.
    pub cursor: Option<Uuid>,
}

/// The audit trail the caller may read.
#[utoipa::path(tag = "audit", security(("bearer" = [])), params(AuditQuery), responses(
    (status = 200, body = envelope::Envelope<CursorList<AuditRecord>>), (status = 403, body = envelope::ErrorBody)))]
#[get("/audit")]
#[tracing::instrument(name = "http.audit.list", skip_all)]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::AuditRead)?;
    let query = query.into_inner();
    let cursor = super::cursor(query.per_page, query.cursor)?;
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
    };
    let mut conn = state.db.acquire().await?;
    let items = audit::list(&mut conn, &scope, &filter, cursor).await?;
    Ok(envelope::ok(CursorList::new(items, cursor, |r| r.id)))
}
