//! Predictions: score a company's filing through the pipeline (201 once committed), read the history, and
//! AccuNode's own endpoints with its request body, so its clients switch by changing the base URL.

use std::{sync::Arc, time::Duration};

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use pdscore_actors::{
    Committed, Filing, FilingContent, FilingSource, PipelineError, PredictionType, RejectCode, Terms,
    domain::{FilingKey, prediction_type},
};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{ApiError, ErrorCode, envelope, field_details, page};
use crate::{
    auth::{Permission, Principal},
    db::{
        companies::{self, CompanyWriteError, NewCompany},
        history::{self as stored, HistoryFilter, Prediction},
        organizations,
        pagination::{PageRequest, Paginated},
    },
    domain::CompanyFields,
    http::AppState,
};

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        let retry = |d: Duration| Duration::from_secs(d.as_secs_f64().ceil().max(1.0) as u64);
        match e {
            PipelineError::Rejected(r) => {
                // Spelled out, so that a new refusal code must be given its answer here.
                let code = match r.code {
                    RejectCode::NotFound => ErrorCode::NotFound,
                    RejectCode::Conflict => ErrorCode::Conflict,
                    RejectCode::ValidationError
                    | RejectCode::ControlCharacter
                    | RejectCode::UnknownModel
                    | RejectCode::ModelError
                    | RejectCode::UnstorableFiling
                    | RejectCode::DuplicateRow => ErrorCode::ValidationError,
                };
                let details = r.field.as_deref().map(|f| field_details(f, &r.message));
                let error = ApiError::new(code, r.message);
                match details {
                    Some(d) => error.with_details(d),
                    None => error,
                }
            }
            PipelineError::UnknownTenant => ApiError::not_found("tenant"),
            PipelineError::TenantInactive => ApiError::new(ErrorCode::Forbidden, "The tenant is deactivated."),
            PipelineError::RateLimited { retry_after } => {
                ApiError::new(ErrorCode::RateLimited, "The tenant's scoring rate limit is exceeded.")
                    .with_retry_after(retry(retry_after))
            }
            PipelineError::Overloaded { retry_after } => {
                ApiError::new(ErrorCode::RateLimited, "The tenant's scoring queue is full.")
                    .with_retry_after(retry(retry_after))
            }
            PipelineError::Unavailable(reason) => {
                tracing::warn!(%reason, "scoring unavailable");
                ApiError::unavailable("Scoring is temporarily unavailable.", Duration::from_secs(2))
            }
        }
    }
}

fn idempotency_key(req: &HttpRequest, filing_id: Option<String>) -> Result<String, ApiError> {
    let header = req
        .headers()
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| ApiError::validation("Idempotency-Key must be printable text"))?;
    match filing_id.or(header) {
        Some(key) => Ok(FilingKey::parse(&key)?.into_string()),
        None => Ok(format!("http:{}", Uuid::now_v7())),
    }
}

/// Submits a filing of the company `symbol`; answers with its prediction (a duplicate's is read back).
async fn score(
    state: &AppState,
    principal: &Principal,
    filing: Filing,
    symbol: &str,
) -> Result<(Committed, Prediction), ApiError> {
    // What the answer needs of the filing, which the pipeline takes.
    let shown = Filing {
        tenant_id: filing.tenant_id,
        organization_id: filing.organization_id,
        company_id: filing.company_id,
        idempotency_key: String::new(),
        source: filing.source,
        prediction_type: filing.prediction_type,
        content: FilingContent {
            period: filing.content.period,
            statement: None,
            ratios: None,
            model: None,
        },
        terms: filing.terms,
        raw: Value::Null,
        bulk: None,
        received_at: filing.received_at,
        trailing: None,
        new_company: None,
    };
    let committed = state.pipeline.submit(filing).await?;
    if let Committed::Created {
        prediction_id, stored, ..
    } = &committed
    {
        let prediction = Prediction::committed(&shown, symbol, *prediction_id, stored);
        return Ok((committed, prediction));
    }
    let mut conn = state.db.acquire().await?;
    let scope = principal.scope_in_tenant(shown.tenant_id, "prediction")?;
    let prediction = stored::find(&mut conn, &scope, committed.prediction_id())
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("committed prediction not readable")))?;
    Ok((committed, prediction))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePrediction {
    /// `annual` or `quarterly`.
    #[serde(rename = "type")]
    #[schema(example = "annual")]
    pub prediction_type: String,
    /// Fiscal year (number or four-digit string).
    #[schema(value_type = Object, example = 2024)]
    pub reporting_year: Value,
    /// `Q1`..`Q4` (required for quarterly filings).
    #[schema(value_type = Option<Object>, example = "Q2")]
    pub reporting_quarter: Option<Value>,
    /// Line items in thousands (see the statement schema); the model's ratios are computed from it.
    #[schema(value_type = Option<Object>)]
    pub statement: Option<Value>,
    /// Ratios by name (override the computed ones); numbers, numeric strings, or "NM"/"N/A"/null (missing).
    #[schema(value_type = Option<Object>)]
    pub ratios: Option<Map<String, Value>>,
    /// A model id, e.g. `annual/polish-gbdt@1`; default: the tenant's.
    pub model: Option<String>,
    /// Idempotency key (also accepted as the `Idempotency-Key` header): the same key again returns the
    /// prediction already made, with 200.
    pub filing_id: Option<String>,
}

/// Score a filing of a company: 201 with the prediction once committed; 200 with the earlier prediction
/// when the idempotency key was seen before.
#[utoipa::path(tag = "predictions", security(("bearer" = [])), params(("company_id" = Uuid, Path)),
    request_body = CreatePrediction, responses((status = 201, body = envelope::Envelope<Prediction>),
    (status = 200, body = envelope::Envelope<Prediction>), (status = 404, body = envelope::ErrorBody),
    (status = 422, body = envelope::ErrorBody), (status = 429, body = envelope::ErrorBody)))]
#[post("/companies/{company_id}/predictions")]
#[tracing::instrument(name = "http.predictions.create", skip_all)]
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    body: crate::http::Json<CreatePrediction>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::PredictionManage)?;
    let body = body.into_inner();
    let company = {
        let mut conn = state.db.acquire().await?;
        companies::find(&mut conn, &principal.scope(), path.into_inner())
            .await?
            .ok_or_else(|| ApiError::not_found("company"))?
    };
    let prediction_type = prediction_type(&body.prediction_type)?;
    let content = FilingContent::parse(
        prediction_type,
        &body.reporting_year,
        body.reporting_quarter.as_ref(),
        body.statement,
        body.ratios,
        body.model.as_deref(),
    )
    .map_err(PipelineError::Rejected)?;
    let raw = content_raw(&content, prediction_type);
    let filing = Filing {
        tenant_id: company.tenant_id,
        organization_id: company.organization_id,
        company_id: company.id,
        idempotency_key: idempotency_key(&req, body.filing_id)?,
        source: FilingSource::Http,
        prediction_type,
        content,
        terms: Terms::Product,
        raw,
        bulk: None,
        received_at: std::time::Instant::now(),
        trailing: None,
        new_company: None,
    };
    let (committed, prediction) = score(&state, &principal, filing, &company.symbol).await?;
    Ok(match committed {
        Committed::Created { .. } => envelope::created(prediction),
        Committed::Duplicate { .. } => envelope::ok(prediction),
    })
}

/// The filing as stored: what was scored, in the canonical form (the HTTP body itself may hold an
/// idempotency key or other transport details).
fn content_raw(content: &FilingContent, prediction_type: PredictionType) -> Value {
    serde_json::json!({
        "type": prediction_type,
        "reporting_year": content.period.year,
        "reporting_quarter": content.period.quarter,
        "statement": content.statement,
        "ratios": content.ratios,
        "model": content.model,
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// `annual` or `quarterly`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub prediction_type: Option<String>,
    pub from_year: Option<i16>,
    pub to_year: Option<i16>,
    /// `low`, `medium`, `high` or `critical`.
    pub risk_level: Option<String>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

/// A company's predictions, latest reporting period first.
#[utoipa::path(tag = "predictions", security(("bearer" = [])), params(("company_id" = Uuid, Path), HistoryQuery),
    responses((status = 200, body = envelope::Envelope<Paginated<Prediction>>), (status = 404, body = envelope::ErrorBody)))]
#[get("/companies/{company_id}/predictions")]
#[tracing::instrument(name = "http.predictions.history", skip_all)]
pub async fn history(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    query: web::Query<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::PredictionRead)?;
    let query = query.into_inner();
    let page = page(PageRequest {
        page: query.page,
        per_page: query.per_page,
    })?;
    let filter = HistoryFilter {
        prediction_type: query.prediction_type.as_deref().map(prediction_type).transpose()?,
        from_year: query.from_year,
        to_year: query.to_year,
        risk_level: super::risk_level(query.risk_level.as_deref())?,
    };
    let scope = principal.scope();
    let mut conn = state.db.acquire().await?;
    let company = companies::find(&mut conn, &scope, path.into_inner())
        .await?
        .ok_or_else(|| ApiError::not_found("company"))?;
    let (items, total) = stored::list(&mut conn, &scope, company.id, &filter, page).await?;
    Ok(envelope::ok(Paginated::new(items, page, total)))
}

/// One prediction.
#[utoipa::path(tag = "predictions", security(("bearer" = [])), params(("prediction_id" = Uuid, Path)),
    responses((status = 200, body = envelope::Envelope<Prediction>), (status = 404, body = envelope::ErrorBody)))]
#[get("/predictions/{prediction_id}")]
#[tracing::instrument(name = "http.predictions.get", skip_all)]
pub async fn get(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::PredictionRead)?;
    let mut conn = state.db.acquire().await?;
    let prediction = stored::find(&mut conn, &principal.scope(), path.into_inner())
        .await?
        .ok_or_else(|| ApiError::not_found("prediction"))?;
    Ok(envelope::ok(prediction))
}

/// AccuNode's request body: the company by symbol (created in the caller's organization if new), the
/// period, and the ratios of the prediction type in percent units at the top level.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct AccunodePrediction {
    #[schema(example = "ACME")]
    pub company_symbol: String,
    #[schema(example = "Acme Corporation")]
    pub company_name: String,
    pub market_cap: Option<f64>,
    pub sector: Option<String>,
    #[schema(value_type = Object, example = 2024)]
    pub reporting_year: Value,
    #[schema(value_type = Option<Object>, example = "Q4")]
    pub reporting_quarter: Option<Value>,
    /// For accounts without an organization of their own (tenant admins): where the company lives.
    pub organization_id: Option<Uuid>,
    /// A model id (`annual/polish-gbdt@1`); default: AccuNode's scorecard for the prediction type, whatever
    /// the tenant's default, so that AccuNode's clients see the PDs they saw before.
    pub model: Option<String>,
    /// The ratios, e.g. `long_term_debt_to_total_capital`, `total_debt_to_ebitda`, … (percent units).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub ratios: Map<String, Value>,
}

/// AccuNode-compatible annual prediction: 201 with the prediction; the same company and fiscal year twice
/// is a 409.
#[utoipa::path(tag = "predictions", security(("bearer" = [])), request_body = AccunodePrediction, responses(
    (status = 201, body = envelope::Envelope<Prediction>), (status = 409, body = envelope::ErrorBody),
    (status = 422, body = envelope::ErrorBody)))]
#[post("/predictions/annual")]
#[tracing::instrument(name = "http.predictions.accunode_annual", skip_all)]
pub async fn accunode_annual(
    state: web::Data<AppState>,
    principal: Principal,
    body: crate::http::Json<AccunodePrediction>,
) -> Result<HttpResponse, ApiError> {
    accunode(&state, &principal, PredictionType::Annual, body.into_inner()).await
}

/// AccuNode-compatible quarterly prediction: 201 with the prediction; the same company and quarter twice is
/// a 409.
#[utoipa::path(tag = "predictions", security(("bearer" = [])), request_body = AccunodePrediction, responses(
    (status = 201, body = envelope::Envelope<Prediction>), (status = 409, body = envelope::ErrorBody),
    (status = 422, body = envelope::ErrorBody)))]
#[post("/predictions/quarterly")]
#[tracing::instrument(name = "http.predictions.accunode_quarterly", skip_all)]
pub async fn accunode_quarterly(
    state: web::Data<AppState>,
    principal: Principal,
    body: crate::http::Json<AccunodePrediction>,
) -> Result<HttpResponse, ApiError> {
    accunode(&state, &principal, PredictionType::Quarterly, body.into_inner()).await
}

async fn accunode(
    state: &AppState,
    principal: &Principal,
    prediction_type: PredictionType,
    body: AccunodePrediction,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::PredictionManage)?;
    let raw = serde_json::to_value(&body.ratios).unwrap_or(Value::Null);
    let content = FilingContent::parse(
        prediction_type,
        &body.reporting_year,
        body.reporting_quarter.as_ref(),
        None,
        Some(body.ratios),
        body.model.as_deref(),
    )
    .map_err(PipelineError::Rejected)?;
    let fields = CompanyFields::parse(
        &body.company_symbol,
        ("company_name", &body.company_name),
        body.sector.as_deref(),
        body.market_cap,
    )?;
    let organization_id = body.organization_id.or(principal.organization_id).ok_or_else(|| {
        ApiError::validation("organization_id is required for accounts without an organization")
            .with_details(field_details("organization_id", "required"))
    })?;
    let scope = principal.scope();
    let key = (organization_id, fields.symbol.as_str().to_owned());
    let period = content.period;
    let filing = |company_id: Uuid,
                  tenant_id: Uuid,
                  content: FilingContent,
                  new_company: Option<Arc<pdscore_actors::NewCompany>>| {
        Filing {
            tenant_id,
            organization_id,
            company_id,
            // One prediction per company and period, as AccuNode enforced.
            idempotency_key: format!(
                "accunode:{company_id}:{prediction_type}:{}:{}",
                period.year,
                period.quarter.unwrap_or(0)
            ),
            source: FilingSource::Http,
            prediction_type,
            content,
            terms: Terms::Accunode,
            raw: raw.clone(),
            bulk: None,
            received_at: std::time::Instant::now(),
            trailing: None,
            new_company,
        }
    };
    let cached = state
        .company_symbols
        .get(&key)
        .filter(|company| scope.covers(company.tenant_id, company.organization_id));
    let company = match cached {
        Some(company) => Some(company),
        // Looked up with the other requests' (and the NATS ingest's) symbols of the moment.
        None => state
            .company_lookups
            .find(scope, Some(organization_id), fields.symbol.as_str())
            .await?
            .into_iter()
            .next(),
    };
    // A company not found is created by the filing's own transaction, when the caller's tenant is known and
    // the organization in its scope as far as the token tells (the transaction checks it exists in the
    // tenant); else, and when the symbol was taken meanwhile, here first.
    let tenant = principal
        .tenant_id
        .filter(|_| scope.organization().is_none_or(|own| own == organization_id));
    // Filed with a new company: `None` when its symbol was taken meanwhile (filed again below, for that company).
    let created = match (&company, tenant) {
        (None, Some(tenant_id)) => {
            let new = Arc::new(pdscore_actors::NewCompany {
                symbol: fields.symbol.as_str().to_owned(),
                name: fields.name.clone(),
                sector: fields.sector.clone(),
                market_cap: fields.market_cap,
                created_by: Some(principal.user_id),
            });
            let company_id = Uuid::now_v7();
            let first = filing(company_id, tenant_id, content.clone(), Some(new.clone()));
            match score(state, principal, first, &new.symbol).await {
                Err(e) if e.code() == ErrorCode::NotFound => None,
                outcome => {
                    let now = chrono::Utc::now();
                    let company = companies::Company {
                        id: company_id,
                        tenant_id,
                        organization_id,
                        symbol: new.symbol.clone(),
                        name: new.name.clone(),
                        sector: new.sector.clone(),
                        market_cap: new.market_cap,
                        created_by: new.created_by,
                        created_at: now,
                        updated_at: now,
                    };
                    if outcome.is_ok() {
                        state.company_symbols.insert(key.clone(), company.clone());
                        let added = crate::fleet::Change::CompanyAdded {
                            tenant_id,
                            organization_id,
                            symbol: company.symbol.clone(),
                        };
                        state.changes.announce(added).await;
                    }
                    Some((company, outcome))
                }
            }
        }
        _ => None,
    };
    let (company, outcome) = match created {
        Some(done) => done,
        None => {
            let company = match company {
                Some(company) => company,
                None => find_or_create_company(state, principal, &scope, organization_id, &fields).await?,
            };
            state.company_symbols.insert(key, company.clone());
            let filed = filing(company.id, company.tenant_id, content, None);
            let outcome = score(state, principal, filed, &company.symbol).await;
            (company, outcome)
        }
    };
    let (committed, mut prediction) = outcome.inspect_err(|e| {
        if e.code() == ErrorCode::NotFound {
            // Deleted since it was cached (through another instance).
            state.forget_company(company.id);
        }
    })?;
    // AccuNode answered its levels in capitals.
    prediction.risk_level.make_ascii_uppercase();
    match committed {
        Committed::Created { .. } => Ok(envelope::created(prediction)),
        Committed::Duplicate { prediction_id } => Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "A {prediction_type} prediction for {} and {period} already exists.",
                company.symbol
            ),
        )
        .with_details(serde_json::json!({ "prediction_id": prediction_id }))),
    }
}

/// The company `fields.symbol` of the organization, created there if new.
async fn find_or_create_company(
    state: &AppState,
    principal: &Principal,
    scope: &crate::auth::Scope,
    organization_id: Uuid,
    fields: &CompanyFields,
) -> Result<companies::Company, ApiError> {
    let mut conn = state.db.acquire().await?;
    // A company found in scope implies its organization is; the organization is looked up only to create one.
    match companies::find_by_symbol(&mut conn, scope, organization_id, fields.symbol.as_str()).await? {
        Some(company) => Ok(company),
        None => {
            let organization = organizations::find(&mut conn, scope, organization_id)
                .await?
                .ok_or_else(|| ApiError::not_found("organization"))?;
            let new = NewCompany {
                tenant_id: organization.tenant_id,
                organization_id: organization.id,
                symbol: fields.symbol.as_str(),
                name: &fields.name,
                sector: fields.sector.as_deref(),
                market_cap: fields.market_cap,
                created_by: Some(principal.user_id).filter(|_| principal.tenant_id.is_some()),
            };
            match companies::insert(&mut conn, &new).await {
                Ok(company) => {
                    let added = crate::fleet::Change::CompanyAdded {
                        tenant_id: company.tenant_id,
                        organization_id: company.organization_id,
                        symbol: company.symbol.clone(),
                    };
                    state.changes.announce(added).await;
                    Ok(company)
                }
                // Created by a concurrent request a moment ago.
                Err(CompanyWriteError::SymbolTaken(_)) => {
                    companies::find_by_symbol(&mut conn, scope, organization.id, fields.symbol.as_str())
                        .await?
                        .ok_or_else(|| ApiError::not_found("company"))
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}
