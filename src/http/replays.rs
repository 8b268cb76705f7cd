//! Point-in-time replays: stored filings re-scored with another model version as a bulk job (progress,
//! events, cancel and errors under `/bulk-jobs/{id}`), and the rating migrations between the answers they
//! were given and the replay's — the evidence a model-change review asks for.

use actix_web::{HttpResponse, get, http::StatusCode, post, web};
use pdscore_models::PredictionType;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    ApiError, audit_entry, bulk_jobs::JobView, envelope, field_details, json::Json, models::answering_model, snapshot,
};
use crate::{
    auth::{Permission, Principal},
    bulk::replay,
    db::{audit, bulk_jobs, companies, organizations, replays},
    http::AppState,
    validation::{
        MAX_OBSERVATIONS,
        comparison::{self, Agreement, Pair},
    },
};

/// A replay to run.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReplay {
    /// The model version to score the stored filings with (a deployed one-year model of the type).
    #[schema(example = "annual/polish-gbdt@2")]
    pub model: String,
    /// `annual` (default) or `quarterly`.
    #[serde(rename = "type")]
    pub prediction_type: Option<String>,
    /// One company's filings …
    pub company_id: Option<Uuid>,
    /// … or one organization's (default for organization roles: their own) …
    pub organization_id: Option<Uuid>,
    /// … or, for a tenant admin, the whole tenant's (a super_admin names it).
    pub tenant_id: Option<Uuid>,
}

/// Re-score stored filings with another model version, as they were received (no filing, answer or alert
/// changes: the replay's predictions are stored beside the answers, like a challenger's). The filings are
/// those received before the replay was asked for — a company's, an organization's or the tenant's. 202 with
/// the job; follow it under `/bulk-jobs/{id}` (events, cancel, errors) and read its migrations at
/// `/replays/{id}`. A replay interrupted by a restart resumes after its last recorded filing.
#[utoipa::path(tag = "validation", security(("bearer" = [])), request_body = NewReplay,
    responses((status = 202, body = envelope::Envelope<JobView>), (status = 403, body = envelope::ErrorBody),
    (status = 404, body = envelope::ErrorBody), (status = 422, body = envelope::ErrorBody)))]
#[post("/replays")]
#[tracing::instrument(name = "http.replays.create", skip_all)]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    body: Json<NewReplay>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::PredictionManage)?;
    let body = body.into_inner();
    let (tenant_id, scope) = super::tenant_scope(&principal, body.tenant_id)?;
    let prediction_type = match body.prediction_type.as_deref() {
        Some(raw) => pdscore_actors::domain::prediction_type(raw)?,
        None => PredictionType::Annual,
    };
    let model = answering_model(&state, &body.model, "model", prediction_type)?;
    let mut tx = state.db.begin().await?;
    let organization_id = match (body.company_id, body.organization_id) {
        (Some(company_id), _) => {
            let company = companies::find(&mut tx, &scope, company_id)
                .await?
                .ok_or_else(|| ApiError::not_found("company"))?;
            Some(company.organization_id)
        }
        (None, Some(organization_id)) => {
            organizations::find(&mut tx, &scope, organization_id)
                .await?
                .ok_or_else(|| ApiError::not_found("organization"))?;
            Some(organization_id)
        }
        // An organization role replays its organization; a tenant admin the tenant.
        (None, None) => scope.organization(),
    };
    if scope.assigned_to().is_some() && body.company_id.is_none() {
        return Err(
            ApiError::validation("Name the company to replay.").with_details(field_details("company_id", "required"))
        );
    }
    let job = replays::insert(
        &mut tx,
        &replays::NewReplay {
            id: Uuid::now_v7(),
            tenant_id,
            organization_id,
            company_id: body.company_id,
            created_by: principal.tenant_id.map(|_| principal.user_id),
            prediction_type,
            model: &model,
        },
    )
    .await?;
    let mut entry = audit_entry(
        &principal,
        "replay.create",
        "bulk_job",
        job.id,
        Some(tenant_id),
        organization_id,
    );
    entry.after = snapshot(&job);
    audit::record(&mut tx, entry).await?;
    tx.commit().await?;
    state.bulk.wake();
    Ok(envelope::with_status(StatusCode::ACCEPTED, JobView::from(job)))
}

/// A replay and the migrations it shows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReplayReport {
    pub job: JobView,
    /// The model the filings were re-scored with.
    pub model: String,
    /// The answers the filings were given (by whichever model answered each) against the replay's scores, on
    /// the filings replayed so far: level and rating agreement, the rating migration matrix, upgrades and
    /// downgrades, and the PD differences (replay minus answer).
    pub migrations: Agreement,
}

/// A replay's progress and its rating migrations between the filings' answers and the replayed version.
#[utoipa::path(tag = "validation", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = envelope::Envelope<ReplayReport>), (status = 404, body = envelope::ErrorBody)))]
#[get("/replays/{id}")]
#[tracing::instrument(name = "http.replays.get", skip_all)]
pub async fn get(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::PredictionRead)?;
    let scope = principal.scope();
    let id = path.into_inner();
    let mut conn = state.db.acquire().await?;
    let job = bulk_jobs::find(&mut conn, &scope, id)
        .await?
        .filter(|job| job.kind == "replay")
        .ok_or_else(|| ApiError::not_found("replay"))?;
    let runnable = bulk_jobs::runnable_any(&mut conn, job.tenant_id, job.id)
        .await?
        .ok_or_else(|| ApiError::not_found("replay"))?;
    let (selection, model) = replay::selection(&runnable)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a replay without its model")))?;
    let rows = replays::pairs(
        &mut conn,
        &selection,
        (&model.name, model.version),
        runnable.resume_after_filing,
        MAX_OBSERVATIONS as i64,
    )
    .await?;
    let pairs: Vec<Pair> = rows.into_iter().map(Pair::from).collect();
    let migrations = web::block(move || comparison::agreement(&pairs))
        .await
        .map_err(ApiError::internal)?;
    Ok(envelope::ok(ReplayReport {
        job: JobView::from(job),
        model: model.to_string(),
        migrations,
    }))
}
