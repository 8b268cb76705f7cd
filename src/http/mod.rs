//! The HTTP API (actix-web): routes, the response envelope, errors and the request context.
//!
//! Every route is an actix handler annotated with `#[utoipa::path]` and registered through
//! `utoipa_actix_web`, so the OpenAPI document (`GET /api/v1/openapi.json`) *is* the route table: a handler
//! cannot be served without being documented. The authorization matrix test walks that document.
//!
//! | area            | routes                                                                          |
//! |-----------------|---------------------------------------------------------------------------------|
//! | operations      | `GET /health`, `/health/live`, `/metrics`, `/.well-known/jwks.json`              |
//! | sign-in         | `/api/v1/auth/{login,refresh,logout,logout-all,me,change-password}`             |
//! | tenancy         | `/api/v1/tenants`, `/tenants/{id}`, `/tenants/{id}/organizations`, `/tenants/{id}/users` |
//! | organizations   | `/api/v1/organizations/{id}`, `/organizations/{id}/companies`                   |
//! | users           | `/api/v1/users/{id}`                                                            |
//! | companies       | `/api/v1/companies`, `/companies/{id}`, `/companies/{id}/assignments[/{user_id}]` |
//! | portfolio       | `GET /api/v1/portfolio` (companies with their current risk and trend)           |
//! | models          | `GET /api/v1/models` (the registry and its model cards)                         |
//! | audit           | `GET /api/v1/audit`                                                             |
//! | dashboard       | `GET /app/` (the analysts' single-page dashboard; `/` leads there)               |
//! | documentation   | `GET /api/v1/openapi.json`, `GET /api/v1/docs/` (Swagger UI, bundled)            |

pub mod alerts;
pub mod audit;
pub mod auth;
pub mod bulk_jobs;
pub mod companies;
pub mod dashboard;
pub mod deployments;
pub mod envelope;
pub mod error;
pub mod error_code;
pub mod health;
pub mod job_progress;
pub mod json;
pub mod live;
pub mod live_streams;
pub mod metrics;
pub mod middleware;
pub mod models;
pub mod openapi;
pub mod organizations;
pub mod outcomes;
pub mod portfolio;
pub mod predictions;
pub mod principal;
pub mod replays;
pub mod request_id;
pub mod state;
pub mod tenants;
pub mod users;
pub mod validation;

use actix_web::{HttpRequest, web};
use serde::{Deserialize, Deserializer};
use utoipa_actix_web::{scope, service_config::ServiceConfig};
use uuid::Uuid;

pub use error::ApiError;
pub use error_code::ErrorCode;
pub use json::Json;
pub use state::AppState;

use crate::{
    accounts::sign_in::ClientInfo,
    auth::Principal,
    db::audit::{Actor, AuditEntry},
};

/// The whole HTTP surface of one worker: the docs (before the `/api/v1` scope, which would otherwise answer
/// every path under it), the documented routes and the fallback. `api` is [`openapi::document`].
pub fn configure_app(
    cfg: &mut web::ServiceConfig,
    max_json_body_bytes: usize,
    api: &utoipa::openapi::OpenApi,
    routes: &openapi::RouteTable,
) {
    dashboard::configure(cfg);
    openapi::configure_docs(cfg, api.clone(), routes.clone());
    configure(&mut ServiceConfig::new(cfg), max_json_body_bytes);
}

/// Registers every documented route and the extractor configurations (their errors become envelopes).
pub fn configure(cfg: &mut ServiceConfig, max_json_body_bytes: usize) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(max_json_body_bytes)
            .error_handler(error::json_error),
    )
    .app_data(web::PathConfig::default().error_handler(error::path_error))
    .app_data(web::QueryConfig::default().error_handler(error::query_error))
    .service(health::health)
    .service(health::live)
    .service(metrics::metrics)
    .service(auth::jwks)
    .service(
        // The hottest routes first: a request is tried against the routes in order, and each pattern with a
        // parameter is a regular expression run on its path (6 % of the service's samples on HTTP scoring, when
        // the AccuNode route came after forty others: benches/flamegraphs/).
        scope::scope("/api/v1")
            .service(predictions::accunode_annual)
            .service(predictions::accunode_quarterly)
            .service(portfolio::list)
            .service(predictions::create)
            .service(auth::login)
            .service(auth::refresh)
            .service(auth::logout)
            .service(auth::logout_all)
            .service(auth::me)
            .service(auth::change_password)
            .service(tenants::list)
            .service(tenants::create)
            .service(tenants::get)
            .service(tenants::update)
            .service(organizations::list)
            .service(organizations::create)
            .service(organizations::get)
            .service(organizations::update)
            .service(organizations::delete)
            .service(users::list)
            .service(users::create)
            .service(users::get)
            .service(users::update)
            .service(companies::list_in_organization)
            .service(companies::create)
            .service(companies::list)
            .service(companies::get)
            .service(companies::update)
            .service(companies::delete)
            .service(companies::assignments)
            .service(companies::assign)
            .service(companies::unassign)
            .service(models::list)
            .service(deployments::upload)
            .service(deployments::activations)
            .service(deployments::activate)
            .service(models::of_tenant)
            .service(models::set_for_tenant)
            .service(models::promote)
            .service(predictions::history)
            .service(predictions::get)
            .service(outcomes::record)
            .service(outcomes::of_company)
            .service(outcomes::import)
            .service(alerts::list)
            .service(alerts::live)
            .service(bulk_jobs::create)
            .service(bulk_jobs::list)
            .service(bulk_jobs::get)
            .service(bulk_jobs::events)
            .service(bulk_jobs::errors)
            .service(bulk_jobs::results)
            .service(bulk_jobs::cancel)
            .service(bulk_jobs::accunode_annual)
            .service(bulk_jobs::accunode_quarterly)
            .service(bulk_jobs::accunode_status)
            .service(replays::create)
            .service(replays::get)
            .service(validation::backtest)
            .service(validation::compare)
            .service(validation::drift)
            .service(audit::list),
    );
}

/// The audit row of a mutation made by `principal` in this request.
pub fn audit_entry<'a>(
    principal: &Principal,
    action: &'a str,
    target_type: &'a str,
    target_id: impl ToString,
    tenant_id: Option<Uuid>,
    organization_id: Option<Uuid>,
) -> AuditEntry<'a> {
    AuditEntry {
        tenant_id,
        organization_id,
        actor: Actor::User(principal.user_id),
        action,
        target_type,
        target_id: Some(target_id.to_string()),
        before: None,
        after: None,
        request_id: request_id::current().map(|id| id.to_string()),
    }
}

/// The serialized form of a resource for an audit row's before/after.
pub fn snapshot<T: serde::Serialize>(value: &T) -> Option<serde_json::Value> {
    serde_json::to_value(value).ok()
}

/// Where the request came from: the peer address, or the first `X-Forwarded-For` hop when configured to
/// trust a proxy.
pub fn client_info(req: &HttpRequest, state: &AppState) -> ClientInfo {
    let forwarded = state
        .auth
        .trust_forwarded_for
        .then(|| req.headers().get("x-forwarded-for"))
        .flatten()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok());
    ClientInfo {
        address: forwarded.or_else(|| req.peer_addr().map(|a| a.ip())),
        user_agent: req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(400).collect()),
        request_id: request_id::current().map(|id| id.to_string()),
    }
}

/// For PATCH bodies: an absent field is `None`, an explicit `null` is `Some(None)` (clear the value).
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A sort parameter checked against a whitelist.
pub fn order_by(sort: Option<&str>, allowed: &[(&str, &str)], default: &str) -> Result<String, ApiError> {
    crate::db::pagination::order_by(sort, allowed, default)
        .map_err(|reason| ApiError::validation(reason.clone()).with_details(field_details("sort", &reason)))
}

/// A `risk_level` parameter: `low`, `medium`, `high` or `critical`.
pub fn risk_level(raw: Option<&str>) -> Result<Option<pdscore_actors::RiskLevel>, ApiError> {
    raw.map(|l| {
        l.parse().map_err(|e: pdscore_models::UnknownKind| {
            ApiError::validation(e.to_string())
                .with_details(field_details("risk_level", "low, medium, high or critical"))
        })
    })
    .transpose()
}

/// `error.details` naming the offending field.
pub fn field_details(field: &str, reason: &str) -> serde_json::Value {
    serde_json::json!({ "field": field, "reason": reason })
}

/// The tenant a request acts in — the one it names (a super_admin's choice), else the caller's — and the caller's
/// scope in it (another tenant: 404).
pub fn tenant_scope(principal: &Principal, named: Option<Uuid>) -> Result<(Uuid, crate::auth::Scope), ApiError> {
    let tenant_id = named.or(principal.tenant_id).ok_or_else(|| {
        ApiError::validation("tenant_id is required for a service-wide account.")
            .with_details(field_details("tenant_id", "required"))
    })?;
    Ok((tenant_id, principal.scope_in_tenant(tenant_id, "tenant")?))
}

/// A cursor request checked against its bounds.
pub fn cursor(per_page: Option<u32>, cursor: Option<Uuid>) -> Result<crate::db::pagination::Cursor, ApiError> {
    crate::db::pagination::Cursor::new(per_page, cursor)
        .map_err(|reason| ApiError::validation(reason.clone()).with_details(field_details("per_page", &reason)))
}

/// A page request checked against its bounds.
pub fn page(request: crate::db::pagination::PageRequest) -> Result<crate::db::pagination::Page, ApiError> {
    request
        .validate()
        .map_err(|reason| ApiError::validation(reason.clone()).with_details(field_details("page", &reason)))
}
