//! The portfolio: every company the caller may see with its current risk, for the dashboard's main table
//! and for clients that monitor a book of obligors.

use actix_web::{
    HttpRequest, HttpResponse, get,
    http::header::{CacheControl, CacheDirective, Header},
    web,
};
use pdscore_actors::RiskLevel;
use pdscore_models::registry::sha256_hex;
use serde::Deserialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use super::{ApiError, companies::company_filter, envelope, order_by, page};
use crate::{
    auth::{Permission, Principal, Scope},
    cache::Lookup,
    db::{
        companies::CompanyFilter,
        pagination::{Page, PageRequest, Paginated},
        portfolio::{self, PortfolioItem},
    },
    http::AppState,
};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PortfolioQuery {
    /// Only this organization's companies.
    pub organization_id: Option<Uuid>,
    /// Symbol prefix or name substring, case-insensitive.
    pub q: Option<String>,
    /// Sector, case-insensitive exact match.
    pub sector: Option<String>,
    /// Only companies whose current risk is `low`, `medium`, `high` or `critical`.
    pub risk_level: Option<String>,
    /// `symbol`, `name`, `sector`, `market_cap`, `created_at` or `probability` (the latest PD; unscored
    /// companies last); prefix `-` for descending.
    pub sort: Option<String>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

/// The companies the caller may see, each with its latest prediction (of the latest reporting period, annual
/// or quarterly, whichever was scored last), the PD of the period before and the trend between them. Answers
/// are cached in Redis until the tenant's next write (`redis.portfolio_cache_ttl_secs`).
#[utoipa::path(tag = "companies", operation_id = "portfolio", security(("bearer" = [])), params(PortfolioQuery), responses(
    (status = 200, body = envelope::Envelope<Paginated<PortfolioItem>>), (status = 422, body = envelope::ErrorBody)))]
#[get("/portfolio")]
#[tracing::instrument(name = "http.portfolio.list", skip_all)]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<PortfolioQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::CompanyRead)?;
    principal.authorize(Permission::PredictionRead)?;
    let query = query.into_inner();
    let page = page(PageRequest {
        page: query.page,
        per_page: query.per_page,
    })?;
    let order = order_by(query.sort.as_deref(), &portfolio::SORTS, "symbol")?;
    let risk_level = super::risk_level(query.risk_level.as_deref())?;
    let scope = principal.scope();
    let filter = company_filter(query.organization_id, query.q, query.sector);
    // Cached per tenant (a super_admin's service-wide view is not); `Cache-Control: no-cache` asks for a
    // fresh answer (which then replaces the cached one).
    let fresh = CacheControl::parse(&req).is_ok_and(|c| c.0.contains(&CacheDirective::NoCache));
    let cached = match scope.tenant() {
        Some(tenant) => {
            let digest = cache_key(&scope, &filter, risk_level, &order, page);
            let lookup = match fresh {
                true => state.portfolio.generation(tenant).await,
                false => state.portfolio.get(tenant, &digest).await,
            };
            Some((tenant, lookup, digest))
        }
        None => None,
    };
    if let Some((_, Lookup::Hit(answer), _)) = cached {
        let answer = RawValue::from_string(answer).map_err(ApiError::internal)?;
        return Ok(envelope::ok(answer));
    }
    let mut conn = state.db.acquire().await?;
    let (items, total) = portfolio::list(&mut conn, &scope, &filter, risk_level, &order, page).await?;
    drop(conn);
    let answer = Paginated::new(items, page, total);
    match &cached {
        // Encoded once: the cached copy is the answer's text.
        Some((tenant, Lookup::Miss { generation }, digest)) => {
            let json = serde_json::value::to_raw_value(&answer).map_err(ApiError::internal)?;
            state.portfolio.put(*tenant, generation, digest, json.get()).await;
            Ok(envelope::ok(json))
        }
        _ => Ok(envelope::ok(answer)),
    }
}

/// What makes two portfolio answers the same: the caller's scope and every parameter, as a digest.
fn cache_key(scope: &Scope, filter: &CompanyFilter, level: Option<RiskLevel>, order: &str, page: Page) -> String {
    let identity = format!(
        "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{level:?}|{order}|{}|{}",
        scope.tenant(),
        scope.organization(),
        scope.assigned_to(),
        filter.organization_id,
        filter.q,
        filter.sector,
        page.page,
        page.per_page
    );
    sha256_hex(identity.as_bytes())
}
