//! Model validation for credit-risk managers: back-tests of a model version's PDs against the tenant's
//! recorded credit events, champion against challenger, and the drift of a model's population.

use actix_web::{HttpResponse, get, web};
use chrono::{NaiveDate, Utc};
use pdscore_actors::ModelChoice;
use pdscore_models::{
    PredictionType,
    registry::{InvalidModelId, ModelId},
};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{ApiError, envelope, field_details};
use crate::{
    auth::{Permission, Principal, Scope},
    db::organizations,
    http::AppState,
    validation::{
        self, Backtest, BacktestError, BacktestRequest, Comparison, MAX_HORIZON_YEARS,
        drift::{self as drift_report, DriftReport},
    },
};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ValidationQuery {
    /// The tenant (a super_admin's choice; others test their own).
    pub tenant_id: Option<Uuid>,
    /// Only this organization's companies.
    pub organization_id: Option<Uuid>,
    /// The model version to test, e.g. `annual/polish-gbdt@1` (default: the tenant's current model for the
    /// type). Its predictions count whether it answered or scored as the challenger.
    pub model: Option<String>,
    /// Comparisons only: the model to compare with (default: the tenant's current challenger).
    pub challenger: Option<String>,
    /// `annual` (default) or `quarterly`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub prediction_type: Option<String>,
    /// Years after the period end within which a credit event counts as a default: 1 (default) to 5; beyond
    /// 1, the PD is the prediction's cumulative PD at that horizon.
    pub horizon: Option<u8>,
    /// Statements whose period ends on or after this day (`YYYY-MM-DD`; default: all).
    pub from: Option<String>,
    /// … and on or before this day (default: all).
    pub to: Option<String>,
}

/// The dates a window may name (the reporting periods' range).
const EARLIEST: NaiveDate = NaiveDate::from_ymd_opt(1900, 1, 1).expect("a date");
const LATEST: NaiveDate = NaiveDate::from_ymd_opt(2999, 12, 31).expect("a date");

fn date(raw: Option<&str>, field: &str, default: NaiveDate) -> Result<NaiveDate, ApiError> {
    let Some(raw) = raw else { return Ok(default) };
    raw.trim()
        .parse()
        .ok()
        .filter(|d| (EARLIEST..=LATEST).contains(d))
        .ok_or_else(|| {
            ApiError::validation(format!(
                "{field} must be a date from 1900-01-01 to 2999-12-31, YYYY-MM-DD."
            ))
            .with_details(field_details(field, "a date, YYYY-MM-DD, 1900-01-01 to 2999-12-31"))
        })
}

fn model_id(raw: &str, field: &str) -> Result<ModelId, ApiError> {
    raw.trim().parse().map_err(|e: InvalidModelId| {
        ApiError::validation(e.to_string()).with_details(field_details(field, "name@version"))
    })
}

/// A checked request, its caller's scope within the tenant, and the tenant's models for the type.
struct Checked {
    scope: Scope,
    request: BacktestRequest,
    choice: ModelChoice,
}

async fn check(state: &AppState, principal: &Principal, query: &ValidationQuery) -> Result<Checked, ApiError> {
    principal.authorize(Permission::PredictionRead)?;
    let (tenant_id, scope) = super::tenant_scope(principal, query.tenant_id)?;
    let prediction_type: PredictionType = match query.prediction_type.as_deref() {
        Some(raw) => pdscore_actors::domain::prediction_type(raw)?,
        None => PredictionType::Annual,
    };
    let horizon_years = query.horizon.unwrap_or(1);
    if !(1..=MAX_HORIZON_YEARS).contains(&horizon_years) {
        return Err(
            ApiError::validation(format!("horizon must be 1 to {MAX_HORIZON_YEARS} years."))
                .with_details(field_details("horizon", "1 to 5")),
        );
    }
    let from = date(query.from.as_deref(), "from", EARLIEST)?;
    let to = date(query.to.as_deref(), "to", LATEST)?;
    if from > to {
        return Err(ApiError::validation("from must not be after to.").with_details(field_details("from", "<= to")));
    }
    if let Some(organization_id) = query.organization_id {
        let mut conn = state.db.acquire().await?;
        organizations::find(&mut conn, &scope, organization_id)
            .await?
            .ok_or_else(|| ApiError::not_found("organization"))?;
    }
    let choice = state.pipeline.policy(tenant_id).await?.models(prediction_type).clone();
    let model = match query.model.as_deref() {
        Some(raw) => model_id(raw, "model")?,
        None => choice.default.clone(),
    };
    Ok(Checked {
        scope,
        request: BacktestRequest {
            tenant_id,
            organization_id: query.organization_id,
            model,
            prediction_type,
            horizon_years,
            from,
            to,
        },
        choice,
    })
}

fn answer<T: serde::Serialize>(result: Result<T, BacktestError>) -> Result<HttpResponse, ApiError> {
    match result {
        Ok(report) => Ok(envelope::ok(report)),
        Err(BacktestError::TooWide) => Err(ApiError::validation(BacktestError::TooWide.to_string())
            .with_details(json!({ "reason": "WINDOW_TOO_WIDE", "max_observations": validation::MAX_OBSERVATIONS }))),
        Err(BacktestError::Database(e)) => Err(e.into()),
        Err(e @ BacktestError::Failed(_)) => Err(ApiError::internal(e)),
    }
}

/// A model version's PDs against what happened: for each company and reporting period in the window, its
/// prediction by the model, anchored at the statement's period end, and whether a recorded credit event
/// followed within the horizon. Answers ROC-AUC, accuracy ratio, Brier score, KS, the ROC curve, a reliability
/// table by PD decile, the Jeffreys and binomial tests per implied-rating grade, the rating-migration matrix
/// between consecutive periods and the PD distribution per period. Observations whose horizon has not run its
/// course yet, and companies already in default, are left out and counted.
#[utoipa::path(tag = "validation", security(("bearer" = [])), params(ValidationQuery), responses(
    (status = 200, body = envelope::Envelope<Backtest>), (status = 404, body = envelope::ErrorBody),
    (status = 422, body = envelope::ErrorBody)))]
#[get("/backtests")]
#[tracing::instrument(name = "http.validation.backtest", skip_all)]
pub async fn backtest(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<ValidationQuery>,
) -> Result<HttpResponse, ApiError> {
    if query.challenger.is_some() {
        return Err(
            ApiError::validation("A back-test reads one model: compare two with /comparisons.")
                .with_details(field_details("challenger", "not a back-test parameter")),
        );
    }
    let checked = check(&state, &principal, &query).await?;
    let today = Utc::now().date_naive();
    answer(validation::backtest(&state.db, &checked.scope, &checked.request, today).await)
}

/// Champion against challenger on the same filings: the share given the same risk level (with the level
/// cross-table) and the same implied rating or one grade apart, the distribution of their PD differences,
/// and both back-tested side by side on the company-periods both scored. The challenger's predictions are
/// those it made in the shadow (or, after a promotion, as the model answering).
#[utoipa::path(tag = "validation", security(("bearer" = [])), params(ValidationQuery), responses(
    (status = 200, body = envelope::Envelope<Comparison>), (status = 404, body = envelope::ErrorBody),
    (status = 422, body = envelope::ErrorBody)))]
#[get("/comparisons")]
#[tracing::instrument(name = "http.validation.compare", skip_all)]
pub async fn compare(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<ValidationQuery>,
) -> Result<HttpResponse, ApiError> {
    let checked = check(&state, &principal, &query).await?;
    let challenger = match (query.challenger.as_deref(), &checked.choice) {
        (Some(raw), _) => model_id(raw, "challenger")?,
        (
            None,
            ModelChoice {
                shadow: Some(shadow), ..
            },
        ) => shadow.clone(),
        (None, _) => {
            return Err(
                ApiError::validation("The tenant runs no challenger for this type: name one.")
                    .with_details(field_details("challenger", "required")),
            );
        }
    };
    let today = Utc::now().date_naive();
    answer(validation::compare(&state.db, &checked.scope, &checked.request, &challenger, today).await)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DriftQuery {
    /// The tenant (a super_admin's choice; others read their own).
    pub tenant_id: Option<Uuid>,
    /// The model version, e.g. `annual/polish-gbdt@1` (default: the tenant's most recently measured).
    pub model: Option<String>,
    /// Hours of history: 1 to 8784 (default 168, a week); snapshots are kept for two windows
    /// (`drift.window_hours` × 2).
    pub hours: Option<u32>,
}

/// Whether the population a model scores for the tenant is still the one it was built on: the population
/// stability index (PSI) of its PD and of each input feature, over the last `window_hours` of the tenant's
/// predictions, against the model's training sample and against the window before; the PSIs over time; and
/// the drift alerts (raised when a PSI passes the threshold, resolved when every series is back under it).
/// Recomputed continuously from the stored predictions. For the accounts that see the whole tenant.
#[utoipa::path(tag = "validation", security(("bearer" = [])), params(DriftQuery), responses(
    (status = 200, body = envelope::Envelope<DriftReport>), (status = 403, body = envelope::ErrorBody),
    (status = 404, body = envelope::ErrorBody), (status = 422, body = envelope::ErrorBody)))]
#[get("/drift")]
#[tracing::instrument(name = "http.validation.drift", skip_all)]
pub async fn drift(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<DriftQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::TenantRead)?;
    let (tenant_id, _) = super::tenant_scope(&principal, query.tenant_id)?;
    let hours = query.hours.unwrap_or(168);
    if !(1..=24 * 366).contains(&hours) {
        return Err(ApiError::validation("hours must be 1 to 8784.").with_details(field_details("hours", "1 to 8784")));
    }
    let model = query.model.as_deref().map(|raw| model_id(raw, "model")).transpose()?;
    let registry = state.pipeline.registry().current();
    let report = drift_report::report(&state.db, &registry, state.drift.settings(), tenant_id, model, hours).await?;
    Ok(envelope::ok(report))
}
