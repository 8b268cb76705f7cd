//! The model registry as deployed: each model's identity, inputs and model card (data, metrics, limits).

use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, web};
use pdscore_models::registry::LoadedModel;
use serde::Serialize;
use serde_json::Value;

use super::{ApiError, envelope};
use crate::{
    auth::{Permission, Principal},
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
