//! Realised credit events: record one for a company, list a company's, import a CSV of them.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::{ApiError, ErrorCode, envelope, field_details, json::Json, page, request_id};
use crate::{
    auth::{Permission, Principal},
    db::{
        audit::Actor,
        companies,
        outcomes::{self as stored, Channel, Outcome},
        pagination::{PageRequest, Paginated},
    },
    domain::OutcomeFields,
    http::AppState,
    outcomes::{self, ImportError, ImportReport, RecordedBy},
};

/// A credit event to record.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordOutcome {
    /// `default`, `bankruptcy` or `distressed_exchange`.
    pub event: String,
    /// The day it happened, `YYYY-MM-DD`.
    pub event_date: String,
    /// Where it is known from (a court register, a rating agency, the servicing team).
    pub source: String,
    pub note: Option<String>,
}

fn recorded_by(principal: &Principal) -> RecordedBy {
    RecordedBy {
        actor: Actor::User(principal.user_id),
        request_id: request_id::current().map(|id| id.to_string()),
    }
}

/// Record a realised credit event of a company (a default, a bankruptcy, a distressed exchange): 201, or 200
/// with the event on file when the company's event of that kind on that date was recorded before.
#[utoipa::path(tag = "outcomes", security(("bearer" = [])), params(("company_id" = Uuid, Path)),
    request_body = RecordOutcome, responses((status = 201, body = envelope::Envelope<Outcome>),
    (status = 200, body = envelope::Envelope<Outcome>), (status = 404, body = envelope::ErrorBody),
    (status = 422, body = envelope::ErrorBody)))]
#[post("/companies/{company_id}/outcomes")]
#[tracing::instrument(name = "http.outcomes.record", skip_all)]
pub async fn record(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    body: Json<RecordOutcome>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::PredictionManage)?;
    let body = body.into_inner();
    let fields = OutcomeFields::parse(&body.event, &body.event_date, &body.source, body.note.as_deref())?;
    let company = {
        let mut conn = state.db.acquire().await?;
        companies::find(&mut conn, &principal.scope(), path.into_inner())
            .await?
            .ok_or_else(|| ApiError::not_found("company"))?
    };
    match outcomes::record(&state.db, &company, &fields, Channel::Api, &recorded_by(&principal)).await? {
        Some((outcome, true)) => Ok(envelope::created(outcome)),
        Some((outcome, false)) => Ok(envelope::ok(outcome)),
        None => Err(ApiError::not_found("company")),
    }
}

/// A company's recorded credit events, newest first.
#[utoipa::path(tag = "outcomes", security(("bearer" = [])), params(("company_id" = Uuid, Path), PageRequest),
    responses((status = 200, body = envelope::Envelope<Paginated<Outcome>>), (status = 404, body = envelope::ErrorBody)))]
#[get("/companies/{company_id}/outcomes")]
#[tracing::instrument(name = "http.outcomes.of_company", skip_all)]
pub async fn of_company(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    query: web::Query<PageRequest>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::PredictionRead)?;
    let page = page(query.into_inner())?;
    let scope = principal.scope();
    let mut conn = state.db.acquire().await?;
    let company = companies::find(&mut conn, &scope, path.into_inner())
        .await?
        .ok_or_else(|| ApiError::not_found("company"))?;
    let (items, total) = stored::of_company(&mut conn, &scope, company.id, page).await?;
    Ok(envelope::ok(Paginated::new(items, page, total)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// The organization whose companies the rows name (default: the caller's).
    pub organization_id: Option<Uuid>,
}

/// The largest CSV of events one import takes.
const MAX_IMPORT_BYTES: usize = 2 * 1024 * 1024;

/// Import a CSV of credit events (`text/csv`, UTF-8; columns `company_symbol, event, event_date, source` and an
/// optional `note`; at most 10,000 rows and 2 MiB). Each row is recorded once (a row repeating an event on
/// file counts as `already_recorded`); a bad row fails alone, listed with its line and reason; a file without
/// the columns is refused whole (422).
#[utoipa::path(tag = "outcomes", security(("bearer" = [])), params(ImportQuery),
    request_body(content_type = "text/csv", content = String),
    responses((status = 200, body = envelope::Envelope<ImportReport>), (status = 413, body = envelope::ErrorBody),
    (status = 404, body = envelope::ErrorBody), (status = 422, body = envelope::ErrorBody)))]
#[post("/outcomes/import")]
#[tracing::instrument(name = "http.outcomes.import", skip_all)]
pub async fn import(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<ImportQuery>,
    request: HttpRequest,
    mut body: web::Payload,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::PredictionManage)?;
    let content_type = request
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.trim_start().to_ascii_lowercase().starts_with("text/csv") {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "Send the events as text/csv.",
        ));
    }
    let organization_id = query.organization_id.or(principal.organization_id).ok_or_else(|| {
        ApiError::validation("organization_id is required for accounts without an organization")
            .with_details(field_details("organization_id", "required"))
    })?;
    let scope = principal.scope();
    {
        let mut conn = state.db.acquire().await?;
        crate::db::organizations::find(&mut conn, &scope, organization_id)
            .await?
            .ok_or_else(|| ApiError::not_found("organization"))?;
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("The body cannot be read: {e}")))?;
        if bytes.len() + chunk.len() > MAX_IMPORT_BYTES {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("The file is larger than {MAX_IMPORT_BYTES} bytes."),
            )
            .with_details(json!({ "reason": "FILE_TOO_LARGE", "max_bytes": MAX_IMPORT_BYTES })));
        }
        bytes.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        ApiError::validation("The file is not UTF-8 text.").with_details(json!({ "reason": "NOT_UTF8" }))
    })?;
    if let Some(at) = text.find(|c: char| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(super::json::control_character_error("The file", at));
    }
    let report = outcomes::import_csv(&state.db, &scope, organization_id, &text, &recorded_by(&principal))
        .await
        .map_err(|e| match e {
            ImportError::File(reason) => ApiError::validation(format!("The file cannot be imported: {reason}."))
                .with_details(json!({ "reason": "INVALID_FILE", "expected": outcomes::IMPORT_COLUMNS })),
            ImportError::Database(e) => e.into(),
        })?;
    Ok(envelope::ok(report))
}
