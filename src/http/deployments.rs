//! Hot swap for super_admins: upload a verified model version, activate it for the tenants that chose none
//! (on every instance, without a restart), roll back by activating the version before.

use std::collections::BTreeMap;

use actix_multipart::Multipart;
use actix_web::{HttpRequest, HttpResponse, get, http::header, post, web};
use futures_util::StreamExt;
use pdscore_models::registry::{InvalidModelId, ModelId};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ErrorCode, envelope, field_details, json::Json, request_id};
use crate::{
    auth::{Permission, Principal},
    db::deployments::{self, Activation, Upload},
    deployment::{ActedBy, ActivateError, MAX_UPLOAD_BYTES, UploadError},
    http::AppState,
};

/// The largest manifest entry.
const MAX_ENTRY_BYTES: usize = 64 * 1024;

fn acted_by(principal: &Principal) -> ActedBy {
    ActedBy {
        user_id: principal.user_id,
        request_id: request_id::current().map(|id| id.to_string()),
    }
}

fn malformed(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::BadRequest, format!("Malformed multipart body: {e}"))
}

/// The form: the manifest entry (`entry`) and the files (`file` parts named by their path in the entry).
async fn receive(mut body: Multipart) -> Result<(Value, BTreeMap<String, Vec<u8>>), ApiError> {
    let mut entry: Option<Value> = None;
    let mut files = BTreeMap::new();
    let mut total = 0usize;
    while let Some(field) = body.next().await {
        let mut field = field.map_err(malformed)?;
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = match name.as_str() {
            "entry" if entry.is_none() => None,
            "file" => {
                let path = field
                    .content_disposition()
                    .and_then(|d| d.get_filename())
                    .unwrap_or_default()
                    .to_owned();
                if path.is_empty() || path.len() > 300 || path.chars().any(char::is_control) {
                    return Err(
                        ApiError::validation("Each file part needs its path in the entry as its file name.")
                            .with_details(field_details("file", "a file name of 1 to 300 printable characters")),
                    );
                }
                if files.contains_key(&path) {
                    return Err(ApiError::validation(format!("File {path} is sent twice."))
                        .with_details(field_details("file", "each path once")));
                }
                Some(path)
            }
            other => {
                return Err(
                    ApiError::validation(format!("Unknown or repeated form field {other:?}."))
                        .with_details(field_details(other, "expected one entry and file parts")),
                );
            }
        };
        let limit = if file_name.is_some() {
            MAX_UPLOAD_BYTES
        } else {
            MAX_ENTRY_BYTES
        };
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk.map_err(malformed)?;
            total += chunk.len();
            if bytes.len() + chunk.len() > limit || total > MAX_UPLOAD_BYTES {
                return Err(ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("The upload is larger than {limit} bytes."),
                )
                .with_details(json!({ "reason": "FILE_TOO_LARGE", "max_bytes": limit })));
            }
            bytes.extend_from_slice(&chunk);
        }
        match file_name {
            Some(path) => {
                files.insert(path, bytes);
            }
            None => {
                let value = serde_json::from_slice(&bytes).map_err(|e| {
                    ApiError::validation(format!("The entry is not JSON: {e}"))
                        .with_details(field_details("entry", "a manifest entry (JSON)"))
                })?;
                entry = Some(value);
            }
        }
    }
    let entry = entry.ok_or_else(|| {
        ApiError::validation("The form has no entry.").with_details(field_details("entry", "required"))
    })?;
    Ok((entry, files))
}

/// Upload a model version (super_admin; multipart: `entry`, its manifest entry as in
/// `models/artifacts/manifest.json`, and one `file` part per file it lists, the card included, each named by
/// its path). It is verified — every checksum, the parameters, that they read the entry's feature set, its
/// term-structure partners, and a self-test on the card's `reference_rows` (each PD within 1e-9) — then
/// stored and loaded on every instance. It answers no filing until it is activated (or chosen by a tenant, or
/// named by a filing). 409 when the version exists; 422 naming what failed.
#[utoipa::path(tag = "models", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", content = String, description = "entry, file…"),
    responses((status = 201, body = envelope::Envelope<Upload>), (status = 403, body = envelope::ErrorBody),
    (status = 409, body = envelope::ErrorBody), (status = 413, body = envelope::ErrorBody),
    (status = 415, body = envelope::ErrorBody), (status = 422, body = envelope::ErrorBody)))]
#[post("/models")]
#[tracing::instrument(name = "http.deployments.upload", skip_all)]
pub async fn upload(
    state: web::Data<AppState>,
    principal: Principal,
    request: HttpRequest,
    body: Multipart,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::SystemManage)?;
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    if !multipart {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "Send the model as multipart/form-data: an entry and its files.",
        ));
    }
    let (entry, files) = receive(body).await?;
    match state.deployment.upload(entry, files, &acted_by(&principal)).await {
        Ok(upload) => Ok(envelope::created(upload)),
        Err(e @ UploadError::Exists(_)) => Err(ApiError::new(ErrorCode::Conflict, e.to_string())),
        Err(UploadError::Database(e)) => Err(e.into()),
        Err(e @ UploadError::Failed(_)) => Err(ApiError::internal(e)),
        Err(e) => Err(ApiError::validation(format!("The model was refused: {e}."))
            .with_details(json!({ "reason": "MODEL_REFUSED", "message": e.to_string() }))),
    }
}

/// The model to activate.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Activate {
    #[schema(example = "annual/polish-gbdt@2")]
    pub model: String,
}

/// Activate a deployed one-year model (super_admin): from now on it answers its prediction type for every
/// tenant that chose no model of its own, on every instance, without a restart; filings in flight finish on
/// the model they started with, and each prediction names its version. Audited; `previous` names the model
/// it replaces, and activating that one is the rollback.
#[utoipa::path(tag = "models", security(("bearer" = [])), request_body = Activate,
    responses((status = 201, body = envelope::Envelope<Activation>), (status = 403, body = envelope::ErrorBody),
    (status = 422, body = envelope::ErrorBody)))]
#[post("/models/activations")]
#[tracing::instrument(name = "http.deployments.activate", skip_all)]
pub async fn activate(
    state: web::Data<AppState>,
    principal: Principal,
    body: Json<Activate>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::SystemManage)?;
    let model: ModelId = body.model.trim().parse().map_err(|e: InvalidModelId| {
        ApiError::validation(e.to_string()).with_details(field_details("model", "name@version"))
    })?;
    match state.deployment.activate(&model, &acted_by(&principal)).await {
        Ok(activation) => Ok(envelope::created(activation)),
        Err(ActivateError::Database(e)) => Err(e.into()),
        Err(e) => {
            Err(ApiError::validation(e.to_string()).with_details(field_details("model", "a deployed one-year model")))
        }
    }
}

/// The activations, newest first (the first of each type answers): which model answered when, and who
/// switched it.
#[utoipa::path(tag = "models", security(("bearer" = [])),
    responses((status = 200, body = envelope::Envelope<Vec<Activation>>)))]
#[get("/models/activations")]
#[tracing::instrument(name = "http.deployments.activations", skip_all)]
pub async fn activations(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::PredictionRead)?;
    let mut conn = state.db.acquire().await?;
    Ok(envelope::ok(deployments::activations(&mut conn, 100).await?))
}
