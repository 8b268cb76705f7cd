//! The model registry as deployed: each model's identity, inputs and model card (data, metrics, limits); and
//! which of them answer each tenant's filings, with the challenger beside them.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, post, put, web};
use pdscore_models::{
    PredictionType,
    registry::{InvalidModelId, LoadedModel, ModelId},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{ApiError, ErrorCode, audit_entry, envelope, field_details, json::Json, nullable, snapshot};
use crate::{
    auth::{Permission, Principal},
    db::{
        audit,
        tenants::{self, ModelSettings},
    },
    fleet::Change,
    http::AppState,
};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelView {
    /// `family/name@version`, as predictions name it.
    #[schema(example = "annual/polish-gbdt@1")]
    pub id: String,
    /// `scorecard` or `network`.
    #[schema(value_type = String)]
    pub kind: Value,
    /// `annual` or `quarterly`.
    pub prediction_type: String,
    pub horizon_years: u8,
    #[schema(value_type = String)]
    pub feature_set: Value,
    /// The inputs, in the model's order.
    pub features: Vec<&'static str>,
    pub description: String,
    /// Models giving this one's PD at other horizons, by horizon (`"5y"`).
    pub term_structure: BTreeMap<String, String>,
    /// The model card: what it is for, the data it learned from, its measured performance and its limits.
    #[schema(value_type = Object)]
    pub card: Value,
}

impl From<&LoadedModel> for ModelView {
    fn from(model: &LoadedModel) -> Self {
        let entry = &model.entry;
        Self {
            id: entry.id.to_string(),
            kind: serde_json::to_value(entry.kind).unwrap_or(Value::Null),
            prediction_type: entry.prediction_type.to_string(),
            horizon_years: entry.horizon_years,
            feature_set: serde_json::to_value(entry.feature_set).unwrap_or(Value::Null),
            features: entry.feature_set.names(),
            description: entry.description.clone(),
            term_structure: entry
                .term_structure
                .iter()
                .map(|(horizon, id)| (horizon.clone(), id.to_string()))
                .collect(),
            card: model.card.clone(),
        }
    }
}

/// The models this service scores with, and their model cards.
#[utoipa::path(tag = "models", security(("bearer" = [])),
    responses((status = 200, body = envelope::Envelope<Vec<ModelView>>)))]
#[get("/models")]
#[tracing::instrument(name = "http.models.list", skip_all)]
pub async fn list(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::PredictionRead)?;
    let registry = state.pipeline.registry().current();
    let models: Vec<ModelView> = registry.models().map(|m| ModelView::from(m.as_ref())).collect();
    Ok(envelope::ok(models))
}

/// Which models score a tenant's filings of one type.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantModels {
    /// `annual` or `quarterly`.
    pub prediction_type: String,
    /// The model answering (the champion).
    #[schema(example = "annual/polish-gbdt@1")]
    pub model: String,
    /// Whether `model` is the service's default model (what tenants that choose none get).
    pub service_default: bool,
    /// Scores every filing beside the model; its answers are stored, never returned, and compared in
    /// `GET /comparisons`.
    pub challenger: Option<String>,
}

async fn tenant_models(
    state: &AppState,
    tenant_id: Uuid,
    prediction_type: PredictionType,
) -> Result<TenantModels, ApiError> {
    let policy = state.pipeline.policy(tenant_id).await?;
    let choice = policy.models(prediction_type);
    Ok(TenantModels {
        prediction_type: prediction_type.to_string(),
        model: choice.default.to_string(),
        service_default: choice.default == state.default_models.get(prediction_type),
        challenger: choice.shadow.as_ref().map(ToString::to_string),
    })
}

/// The models scoring the tenant's filings, per type: the champion and the challenger, if any.
#[utoipa::path(tag = "models", security(("bearer" = [])), params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = envelope::Envelope<Vec<TenantModels>>), (status = 404, body = envelope::ErrorBody)))]
#[get("/tenants/{tenant_id}/models")]
#[tracing::instrument(name = "http.models.of_tenant", skip_all)]
pub async fn of_tenant(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::PredictionRead)?;
    let tenant_id = path.into_inner();
    principal.scope_in_tenant(tenant_id, "tenant")?;
    let mut answer = Vec::new();
    for prediction_type in PredictionType::ALL {
        answer.push(tenant_models(&state, tenant_id, prediction_type).await?);
    }
    Ok(envelope::ok(answer))
}

/// A change of a tenant's models for one type.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetTenantModels {
    /// The model to answer with; `null` returns to the service default.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub model: Option<Option<String>>,
    /// The challenger to score in the shadow; `null` stops it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub challenger: Option<Option<String>>,
}

/// A registered model that may answer filings of `prediction_type`: a one-year model of that type.
pub(crate) fn answering_model(
    state: &AppState,
    raw: &str,
    field: &str,
    prediction_type: PredictionType,
) -> Result<String, ApiError> {
    let invalid =
        |reason: String| ApiError::validation(format!("{field}: {reason}")).with_details(field_details(field, &reason));
    let id: ModelId = raw.trim().parse().map_err(|e: InvalidModelId| invalid(e.to_string()))?;
    let registry = state.pipeline.registry().current();
    let model = registry
        .get(&id)
        .ok_or_else(|| invalid(format!("{id} is not a deployed model (GET /models lists them)")))?;
    if model.entry.prediction_type != prediction_type || model.entry.horizon_years != 1 {
        return Err(invalid(format!(
            "{id} is a {}-year {} model; a {prediction_type} filing is answered by a one-year {prediction_type} model",
            model.entry.horizon_years, model.entry.prediction_type
        )));
    }
    Ok(id.to_string())
}

/// Audits and stores a tenant's new model settings, then makes every instance use them.
async fn save_tenant_models(
    state: &AppState,
    principal: &Principal,
    action: &str,
    tenant_id: Uuid,
    prediction_type: PredictionType,
    change: impl FnOnce(&ModelSettings, &ModelId) -> Result<ModelSettings, ApiError>,
) -> Result<TenantModels, ApiError> {
    // An unknown tenant is a 404 before anything is locked.
    state.pipeline.policy(tenant_id).await?;
    let mut tx = state.db.begin().await?;
    let before = tenants::model_settings_for_update(&mut tx, tenant_id, prediction_type.as_str()).await?;
    let current: ModelId = match &before.default_model {
        Some(own) => own.parse().map_err(ApiError::internal)?,
        None => state.default_models.get(prediction_type),
    };
    let after = change(&before, &current)?;
    let effective = after
        .default_model
        .clone()
        .unwrap_or_else(|| state.default_models.get(prediction_type).to_string());
    if after.shadow_model.as_deref() == Some(effective.as_str()) {
        return Err(
            ApiError::validation("challenger: it is the model answering; a challenger must be another model.")
                .with_details(field_details("challenger", "another model than the one answering")),
        );
    }
    tenants::put_model_settings(&mut tx, tenant_id, prediction_type.as_str(), &after).await?;
    let mut entry = audit_entry(
        principal,
        action,
        "tenant_models",
        format!("{tenant_id}/{prediction_type}"),
        Some(tenant_id),
        None,
    );
    entry.before = snapshot(&before);
    entry.after = snapshot(&after);
    audit::record(&mut tx, entry).await?;
    tx.commit().await?;
    state.changes.announce(Change::Tenant { tenant_id }).await;
    tenant_models(state, tenant_id, prediction_type).await
}

fn prediction_type(raw: &str) -> Result<PredictionType, ApiError> {
    Ok(pdscore_actors::domain::prediction_type(raw)?)
}

/// Choose the tenant's model for a type, and its challenger (a tenant admin's decision, audited; every
/// instance applies it at once). A challenger scores every filing the tenant's model answers (not AccuNode's
/// routes, nor filings naming their model); its answers are stored, never returned.
#[utoipa::path(tag = "models", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("prediction_type" = String, Path, description = "annual or quarterly")),
    request_body = SetTenantModels, responses((status = 200, body = envelope::Envelope<TenantModels>),
    (status = 403, body = envelope::ErrorBody), (status = 404, body = envelope::ErrorBody),
    (status = 422, body = envelope::ErrorBody)))]
#[put("/tenants/{tenant_id}/models/{prediction_type}")]
#[tracing::instrument(name = "http.models.set_for_tenant", skip_all)]
pub async fn set_for_tenant(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, String)>,
    body: Json<SetTenantModels>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::TenantManage)?;
    let (tenant_id, raw_type) = path.into_inner();
    principal.scope_in_tenant(tenant_id, "tenant")?;
    let prediction_type = prediction_type(&raw_type)?;
    let body = body.into_inner();
    let model = match body.model {
        Some(Some(raw)) => Some(Some(answering_model(&state, &raw, "model", prediction_type)?)),
        other => other.map(|_| None),
    };
    let challenger = match body.challenger {
        Some(Some(raw)) => Some(Some(answering_model(&state, &raw, "challenger", prediction_type)?)),
        other => other.map(|_| None),
    };
    let answer = save_tenant_models(
        &state,
        &principal,
        "tenant_models.update",
        tenant_id,
        prediction_type,
        |before, _| {
            Ok(ModelSettings {
                default_model: model.unwrap_or_else(|| before.default_model.clone()),
                shadow_model: challenger.unwrap_or_else(|| before.shadow_model.clone()),
            })
        },
    )
    .await?;
    Ok(envelope::ok(answer))
}

/// The challenger to promote, named so that a promotion cannot land on a challenger changed meanwhile.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Promote {
    pub challenger: String,
}

/// Promote the tenant's challenger: it answers from now on, and the model it replaces becomes the
/// challenger (so the comparison goes on, and promoting again rolls back). Audited; 409 when the tenant's
/// challenger is not the one named.
#[utoipa::path(tag = "models", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("prediction_type" = String, Path, description = "annual or quarterly")),
    request_body = Promote, responses((status = 200, body = envelope::Envelope<TenantModels>),
    (status = 403, body = envelope::ErrorBody), (status = 404, body = envelope::ErrorBody),
    (status = 409, body = envelope::ErrorBody), (status = 422, body = envelope::ErrorBody)))]
#[post("/tenants/{tenant_id}/models/{prediction_type}/promote")]
#[tracing::instrument(name = "http.models.promote", skip_all)]
pub async fn promote(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<(Uuid, String)>,
    body: Json<Promote>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::TenantManage)?;
    let (tenant_id, raw_type) = path.into_inner();
    principal.scope_in_tenant(tenant_id, "tenant")?;
    let prediction_type = prediction_type(&raw_type)?;
    let named = answering_model(&state, &body.into_inner().challenger, "challenger", prediction_type)?;
    let answer = save_tenant_models(
        &state,
        &principal,
        "tenant_models.promote",
        tenant_id,
        prediction_type,
        |before, current| {
            if before.shadow_model.as_deref() != Some(named.as_str()) {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!(
                        "The tenant's challenger is {}, not {named}.",
                        before.shadow_model.as_deref().unwrap_or("none")
                    ),
                ));
            }
            Ok(ModelSettings {
                default_model: Some(named.clone()),
                shadow_model: Some(current.to_string()),
            })
        },
    )
    .await?;
    Ok(envelope::ok(answer))
}
