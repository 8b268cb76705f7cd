//! Companies: created and maintained by organization members (and admins above them), read by everyone in
//! scope — a `user` sees only the companies assigned to them.

use actix_web::{HttpResponse, delete, get, patch, post, put, web};
use serde::Deserialize;
use uuid::Uuid;

use super::{ApiError, ErrorCode, audit_entry, envelope, nullable, order_by, page, snapshot};
use crate::{
    auth::{Permission, Principal},
    db::{
        audit,
        companies::{self, Assignment, Company, CompanyChanges, CompanyFilter, CompanyWriteError, NewCompany},
        organizations,
        pagination::{PageRequest, Paginated},
        users,
    },
    domain::{CompanyFields, CompanySymbol, market_cap, optional_text, required_text},
    fleet::Change,
    http::AppState,
};

impl From<CompanyWriteError> for ApiError {
    fn from(e: CompanyWriteError) -> Self {
        match e {
            CompanyWriteError::SymbolTaken(symbol) => ApiError::new(
                ErrorCode::Conflict,
                format!("A company with symbol {symbol} already exists in this organization."),
            ),
            CompanyWriteError::Database(e) => e.into(),
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CompanyQuery {
    /// Only this organization's companies.
    pub organization_id: Option<Uuid>,
    /// Symbol prefix or name substring, case-insensitive.
    pub q: Option<String>,
    /// Sector, case-insensitive exact match.
    pub sector: Option<String>,
    /// `symbol`, `name`, `sector`, `market_cap` or `created_at`; prefix `-` for descending.
    pub sort: Option<String>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

/// The filter of a company list (the search text is cut at 200 characters).
pub(super) fn company_filter(
    organization_id: Option<Uuid>,
    q: Option<String>,
    sector: Option<String>,
) -> CompanyFilter {
    CompanyFilter {
        organization_id,
        q: q.map(|q| q.chars().take(200).collect()),
        sector,
    }
}

async fn list_companies(
    state: &AppState,
    principal: &Principal,
    query: CompanyQuery,
    organization_id: Option<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let page = page(PageRequest {
        page: query.page,
        per_page: query.per_page,
    })?;
    let order = order_by(query.sort.as_deref(), &companies::SORTS, "symbol")?;
    let filter = company_filter(organization_id.or(query.organization_id), query.q, query.sector);
    let mut conn = state.db.acquire().await?;
    let (items, total) = companies::list(&mut conn, &principal.scope(), &filter, &order, page).await?;
    Ok(envelope::ok(Paginated::new(items, page, total)))
}

/// Every company the caller may see, across their organizations.
#[utoipa::path(tag = "companies", security(("bearer" = [])), params(CompanyQuery), responses(
    (status = 200, body = envelope::Envelope<Paginated<Company>>)))]
#[get("/companies")]
#[tracing::instrument(name = "http.companies.list", skip_all)]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<CompanyQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::CompanyRead)?;
    list_companies(&state, &principal, query.into_inner(), None).await
}

/// The companies of an organization the caller may see.
#[utoipa::path(tag = "companies", security(("bearer" = [])), params(("organization_id" = Uuid, Path), CompanyQuery),
    responses((status = 200, body = envelope::Envelope<Paginated<Company>>), (status = 404, body = envelope::ErrorBody)))]
#[get("/organizations/{organization_id}/companies")]
#[tracing::instrument(name = "http.companies.list_in_organization", skip_all)]
pub async fn list_in_organization(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    query: web::Query<CompanyQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::CompanyRead)?;
    let organization_id = path.into_inner();
    {
        let mut conn = state.db.acquire().await?;
        organizations::find(&mut conn, &principal.scope(), organization_id)
            .await?
            .ok_or_else(|| ApiError::not_found("organization"))?;
    }
    list_companies(&state, &principal, query.into_inner(), Some(organization_id)).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCompany {
    #[schema(example = "ACME")]
    pub symbol: String,
    #[schema(example = "Acme Corporation")]
    pub name: String,
    pub sector: Option<String>,
    /// Market capitalization (currency units, ≥ 0).
    pub market_cap: Option<f64>,
}

/// Create a company in an organization.
#[utoipa::path(tag = "companies", security(("bearer" = [])), params(("organization_id" = Uuid, Path)),
    request_body = CreateCompany, responses((status = 201, body = envelope::Envelope<Company>),
    (status = 404, body = envelope::ErrorBody), (status = 409, body = envelope::ErrorBody),
    (status = 422, body = envelope::ErrorBody)))]
#[post("/organizations/{organization_id}/companies")]
#[tracing::instrument(name = "http.companies.create", skip_all)]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    body: crate::http::Json<CreateCompany>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::CompanyManage)?;
    let organization_id = path.into_inner();
    let body = body.into_inner();
    let fields = CompanyFields::parse(
        &body.symbol,
        ("name", &body.name),
        body.sector.as_deref(),
        body.market_cap,
    )?;
    let mut tx = state.db.begin().await?;
    let organization = organizations::find(&mut tx, &principal.scope(), organization_id)
        .await?
        .ok_or_else(|| ApiError::not_found("organization"))?;
    let company = companies::insert(
        &mut tx,
        &NewCompany {
            tenant_id: organization.tenant_id,
            organization_id,
            symbol: fields.symbol.as_str(),
            name: &fields.name,
            sector: fields.sector.as_deref(),
            market_cap: fields.market_cap,
            // A super_admin has no row in the tenant to point at; the audit log records them.
            created_by: principal.tenant_id.map(|_| principal.user_id),
        },
    )
    .await?;
    let mut entry = audit_entry(
        &principal,
        "company.create",
        "company",
        company.id,
        Some(company.tenant_id),
        Some(organization_id),
    );
    entry.after = snapshot(&company);
    audit::record(&mut tx, entry).await?;
    tx.commit().await?;
    state
        .companies_changed(Change::CompanyAdded {
            tenant_id: company.tenant_id,
            organization_id: company.organization_id,
            symbol: company.symbol.clone(),
        })
        .await;
    Ok(envelope::created(company))
}

async fn find_company(state: &AppState, principal: &Principal, id: Uuid) -> Result<Company, ApiError> {
    let mut conn = state.db.acquire().await?;
    companies::find(&mut conn, &principal.scope(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("company"))
}

/// A company the caller may see.
#[utoipa::path(tag = "companies", security(("bearer" = [])), params(("company_id" = Uuid, Path)), responses(
    (status = 200, body = envelope::Envelope<Company>), (status = 404, body = envelope::ErrorBody)))]
#[get("/companies/{company_id}")]
#[tracing::instrument(name = "http.companies.get", skip_all)]
pub async fn get(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::CompanyRead)?;
    Ok(envelope::ok(find_company(&state, &principal, path.into_inner()).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCompany {
    pub symbol: Option<String>,
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub sector: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<f64>)]
    pub market_cap: Option<Option<f64>>,
}

/// Change a company.
#[utoipa::path(tag = "companies", security(("bearer" = [])), params(("company_id" = Uuid, Path)),
    request_body = UpdateCompany, responses((status = 200, body = envelope::Envelope<Company>),
    (status = 404, body = envelope::ErrorBody), (status = 409, body = envelope::ErrorBody)))]
#[patch("/companies/{company_id}")]
#[tracing::instrument(name = "http.companies.update", skip_all)]
pub async fn update(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    body: crate::http::Json<UpdateCompany>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::CompanyManage)?;
    let id = path.into_inner();
    let body = body.into_inner();
    let changes = CompanyChanges {
        symbol: body
            .symbol
            .as_deref()
            .map(CompanySymbol::parse)
            .transpose()?
            .map(|s| s.as_str().to_owned()),
        name: body
            .name
            .as_deref()
            .map(|n| required_text("name", n, 300))
            .transpose()?,
        sector: match body.sector {
            Some(Some(s)) => Some(optional_text("sector", &s, 120)?),
            Some(None) => Some(None),
            None => None,
        },
        market_cap: match body.market_cap {
            Some(v) => Some(market_cap(v)?),
            None => None,
        },
    };
    let scope = principal.scope();
    let mut tx = state.db.begin().await?;
    let before = companies::find(&mut tx, &scope, id)
        .await?
        .ok_or_else(|| ApiError::not_found("company"))?;
    let after = companies::update(&mut tx, &scope, id, &changes)
        .await?
        .ok_or_else(|| ApiError::not_found("company"))?;
    let mut entry = audit_entry(
        &principal,
        "company.update",
        "company",
        id,
        Some(after.tenant_id),
        Some(after.organization_id),
    );
    entry.before = snapshot(&before);
    entry.after = snapshot(&after);
    audit::record(&mut tx, entry).await?;
    tx.commit().await?;
    state
        .companies_changed(Change::Companies {
            tenant_id: after.tenant_id,
        })
        .await;
    Ok(envelope::ok(after))
}

/// Delete a company with its filings, predictions and alerts.
#[utoipa::path(tag = "companies", security(("bearer" = [])), params(("company_id" = Uuid, Path)), responses(
    (status = 200, body = envelope::Envelope<Company>), (status = 404, body = envelope::ErrorBody)))]
#[delete("/companies/{company_id}")]
#[tracing::instrument(name = "http.companies.delete", skip_all)]
pub async fn delete(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::CompanyManage)?;
    let id = path.into_inner();
    let mut tx = state.db.begin().await?;
    let deleted = companies::delete(&mut tx, &principal.scope(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("company"))?;
    let mut entry = audit_entry(
        &principal,
        "company.delete",
        "company",
        id,
        Some(deleted.tenant_id),
        Some(deleted.organization_id),
    );
    entry.before = snapshot(&deleted);
    audit::record(&mut tx, entry).await?;
    tx.commit().await?;
    state
        .companies_changed(Change::Companies {
            tenant_id: deleted.tenant_id,
        })
        .await;
    Ok(envelope::ok(deleted))
}

/// Who a company is assigned to.
#[utoipa::path(tag = "companies", security(("bearer" = [])), params(("company_id" = Uuid, Path)), responses(
    (status = 200, body = envelope::Envelope<Vec<Assignment>>), (status = 404, body = envelope::ErrorBody)))]
#[get("/companies/{company_id}/assignments")]
#[tracing::instrument(name = "http.companies.assignments", skip_all)]
pub async fn assignments(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::CompanyManage)?;
    let company = find_company(&state, &principal, path.into_inner()).await?;
    let mut conn = state.db.acquire().await?;
    Ok(envelope::ok(companies::assignments(&mut conn, &company).await?))
}

/// Assign a company to a user of its organization (a `user` sees only assigned companies). Idempotent.
#[utoipa::path(tag = "companies", security(("bearer" = [])),
    params(("company_id" = Uuid, Path), ("user_id" = Uuid, Path)), responses(
    (status = 200, body = envelope::Envelope<Vec<Assignment>>), (status = 404, body = envelope::ErrorBody),
    (status = 422, body = envelope::ErrorBody)))]
#[put("/companies/{company_id}/assignments/{user_id}")]
#[tracing::instrument(name = "http.companies.assign", skip_all)]
pub async fn assign(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    change_assignment(&state, &principal, path.into_inner(), true).await
}

/// Remove a company's assignment to a user. Idempotent.
#[utoipa::path(tag = "companies", security(("bearer" = [])),
    params(("company_id" = Uuid, Path), ("user_id" = Uuid, Path)), responses(
    (status = 200, body = envelope::Envelope<Vec<Assignment>>), (status = 404, body = envelope::ErrorBody)))]
#[delete("/companies/{company_id}/assignments/{user_id}")]
#[tracing::instrument(name = "http.companies.unassign", skip_all)]
pub async fn unassign(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    change_assignment(&state, &principal, path.into_inner(), false).await
}

async fn change_assignment(
    state: &AppState,
    principal: &Principal,
    (company_id, user_id): (Uuid, Uuid),
    add: bool,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::CompanyManage)?;
    let scope = principal.scope();
    let mut tx = state.db.begin().await?;
    let company = companies::find(&mut tx, &scope, company_id)
        .await?
        .ok_or_else(|| ApiError::not_found("company"))?;
    let user = users::find(&mut tx, &scope, user_id)
        .await?
        .filter(|u| u.tenant_id == Some(company.tenant_id))
        .ok_or_else(|| ApiError::not_found("user"))?;
    let changed = if add {
        if user.organization_id != Some(company.organization_id) {
            return Err(
                ApiError::validation("user_id: the user does not belong to the company's organization")
                    .with_details(super::field_details("user_id", "not in the company's organization")),
            );
        }
        companies::assign(
            &mut tx,
            &company,
            user_id,
            principal.tenant_id.map(|_| principal.user_id),
        )
        .await?
    } else {
        companies::unassign(&mut tx, &company, user_id).await?
    };
    if changed {
        let action = if add { "company.assign" } else { "company.unassign" };
        let mut entry = audit_entry(
            principal,
            action,
            "company",
            company.id,
            Some(company.tenant_id),
            Some(company.organization_id),
        );
        entry.after = Some(serde_json::json!({ "user_id": user_id }));
        audit::record(&mut tx, entry).await?;
    }
    let current = companies::assignments(&mut tx, &company).await?;
    tx.commit().await?;
    if changed {
        state.portfolio.invalidate(company.tenant_id).await;
    }
    Ok(envelope::ok(current))
}
