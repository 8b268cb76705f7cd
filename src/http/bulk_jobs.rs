//! Bulk scoring jobs: upload a CSV/XLSX (202 with the job), follow it (JSON, Server-Sent Events), read its
//! results and failed rows as CSV, cancel it. AccuNode's own routes answer the same way.

use std::sync::Arc;

use actix_multipart::Multipart;
use actix_web::{HttpResponse, get, http::StatusCode, post, web};
use futures_util::{StreamExt, TryStreamExt, stream};
use pdscore_actors::PredictionType;
use pdscore_models::registry::{InvalidModelId, ModelId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use uuid::Uuid;

use super::{ApiError, ErrorCode, audit_entry, envelope, field_details, page, snapshot};
use crate::{
    auth::{Permission, Principal},
    bulk::{
        Storage,
        file::{FileError, FileFormat, expected_columns},
        store,
        upload::{self, Upload, UploadError},
    },
    db::{
        audit,
        bulk_jobs::{self, BulkJob},
        pagination::{PageRequest, Paginated},
    },
    http::AppState,
};

/// A job with its progress and where to follow it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobView {
    #[serde(flatten)]
    pub job: BulkJob,
    /// Processed share of the rows, 0 to 100.
    pub progress_percent: f64,
    #[schema(value_type = Object)]
    pub links: Value,
}

impl From<BulkJob> for JobView {
    fn from(job: BulkJob) -> Self {
        let base = format!("/api/v1/bulk-jobs/{}", job.id);
        // A replay's results are its migrations.
        let outcome = match job.kind.as_str() {
            "replay" => format!("/api/v1/replays/{}", job.id),
            _ => format!("{base}/results"),
        };
        Self {
            progress_percent: (job.percent() * 10.0).round() / 10.0,
            links: json!({
                "self": base,
                "events": format!("{base}/events"),
                "results": outcome,
                "errors": format!("{base}/errors"),
                "cancel": format!("{base}/cancel"),
            }),
            job,
        }
    }
}

fn file_error(e: FileError) -> ApiError {
    let code = if e.is_too_large() {
        ErrorCode::PayloadTooLarge
    } else {
        ErrorCode::ValidationError
    };
    let mut details = json!({ "reason": e.code });
    if !e.columns.is_empty() {
        details["columns"] = json!(e.columns);
    }
    if !e.expected.is_empty() {
        details["expected"] = json!(e.expected);
    }
    ApiError::new(code, e.message).with_details(details)
}

/// The form's fields other than the file.
#[derive(Default)]
struct Form {
    prediction_type: Option<String>,
    organization_id: Option<String>,
    model: Option<String>,
}

impl Form {
    fn prediction_type(&self) -> Result<PredictionType, ApiError> {
        match self.prediction_type.as_deref() {
            Some(raw) => Ok(pdscore_actors::domain::prediction_type(raw)?),
            None => Err(ApiError::validation("type is required (annual or quarterly).")
                .with_details(field_details("type", "annual or quarterly"))),
        }
    }

    /// The form's organization, else the caller's own.
    fn organization_id(&self, principal: &Principal) -> Result<Uuid, ApiError> {
        let named = match self.organization_id.as_deref().map(str::trim) {
            Some(raw) => Some(raw.parse::<Uuid>().map_err(|_| {
                ApiError::validation("organization_id must be a UUID.")
                    .with_details(field_details("organization_id", "a UUID"))
            })?),
            None => None,
        };
        named.or(principal.organization_id).ok_or_else(|| {
            ApiError::validation("organization_id is required for accounts without an organization")
                .with_details(field_details("organization_id", "required"))
        })
    }

    /// A registered model, when one is named.
    fn model(&self, state: &AppState) -> Result<Option<ModelId>, ApiError> {
        let Some(raw) = self.model.as_deref().map(str::trim).filter(|m| !m.is_empty()) else {
            return Ok(None);
        };
        let parsed: ModelId = raw.parse().map_err(|e: InvalidModelId| {
            ApiError::validation(e.to_string()).with_details(field_details("model", "name@version"))
        })?;
        if state.pipeline.registry().current().get(&parsed).is_none() {
            return Err(ApiError::validation(format!("No model {parsed}."))
                .with_details(field_details("model", "a registered model")));
        }
        Ok(Some(parsed))
    }
}

/// A field's text, bounded.
async fn text_field(field: &mut actix_multipart::Field) -> Result<String, ApiError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("Malformed multipart body: {e}")))?;
        bytes.extend_from_slice(&chunk);
        if bytes.len() > 1024 {
            return Err(ApiError::validation("A form field is longer than 1024 bytes."));
        }
    }
    String::from_utf8(bytes).map_err(|_| ApiError::validation("A form field is not UTF-8 text."))
}

/// Reads the multipart body: the file is streamed to `path` (at most `limit` bytes); returns the form's
/// other fields, the file's name and size.
async fn receive(mut body: Multipart, path: &std::path::Path, limit: u64) -> Result<(Form, String, u64), ApiError> {
    let mut form = Form::default();
    let mut file: Option<(String, u64)> = None;
    while let Some(field) = body.next().await {
        let mut field =
            field.map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("Malformed multipart body: {e}")))?;
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" if file.is_none() => {
                let file_name = field
                    .content_disposition()
                    .and_then(|d| d.get_filename())
                    .unwrap_or("upload")
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(255)
                    .collect::<String>();
                if let Some(parent) = path.parent() {
                    tokio::fs::create_dir_all(parent).await.map_err(ApiError::internal)?;
                }
                let created = tokio::fs::File::create(path).await.map_err(ApiError::internal)?;
                let mut out = tokio::io::BufWriter::new(created);
                let mut size: u64 = 0;
                while let Some(chunk) = field.next().await {
                    let chunk = chunk
                        .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("Malformed multipart body: {e}")))?;
                    size += chunk.len() as u64;
                    if size > limit {
                        return Err(ApiError::new(
                            ErrorCode::PayloadTooLarge,
                            format!("The file is larger than {limit} bytes."),
                        )
                        .with_details(json!({ "reason": "FILE_TOO_LARGE", "max_bytes": limit })));
                    }
                    out.write_all(&chunk).await.map_err(ApiError::internal)?;
                }
                out.flush().await.map_err(ApiError::internal)?;
                file = Some((file_name, size));
            }
            "type" => form.prediction_type = Some(text_field(&mut field).await?),
            "organization_id" => form.organization_id = Some(text_field(&mut field).await?),
            "model" => form.model = Some(text_field(&mut field).await?),
            other => {
                return Err(ApiError::validation(format!("Unknown form field {other:?}."))
                    .with_details(field_details(other, "expected file, type, organization_id, model")));
            }
        }
    }
    let (file_name, size) = file
        .ok_or_else(|| ApiError::validation("The form has no file.").with_details(field_details("file", "required")))?;
    Ok((form, file_name, size))
}

/// Takes an upload: receives the file into the storage, reads the form, and hands both to the use case
/// ([`upload::accept`]), which checks the file and records the job (queued).
async fn submit(
    state: &AppState,
    principal: &Principal,
    body: Multipart,
    fixed_type: Option<PredictionType>,
) -> Result<JobView, ApiError> {
    principal.authorize(Permission::PredictionManage)?;
    let storage = state.bulk.storage();
    let id = Uuid::now_v7();
    let incoming = storage.dir.join("incoming").join(format!("{id}.part"));
    let taken = async {
        let (form, file_name, size) = receive(body, &incoming, storage.max_upload_bytes).await?;
        let upload = Upload {
            id,
            incoming: &incoming,
            file_name,
            size,
            prediction_type: match fixed_type {
                Some(t) => t,
                None => form.prediction_type()?,
            },
            organization_id: form.organization_id(principal)?,
            model: form.model(state)?,
            accunode_terms: fixed_type.is_some(),
            by: principal,
            request_id: super::request_id::current().map(|id| id.to_string()),
        };
        upload::accept(&state.db, &state.bulk, upload)
            .await
            .map_err(upload_error)
    }
    .await;
    // Whatever happened, the received file is gone (an accepted one is in the upload store).
    store::remove_local(&incoming);
    Ok(taken?.into())
}

fn upload_error(e: UploadError) -> ApiError {
    match e {
        UploadError::OrganizationNotFound => ApiError::not_found("organization"),
        UploadError::File(e) => file_error(e),
        UploadError::Database(e) => e.into(),
        UploadError::Storage(e) => ApiError::internal(e),
        UploadError::QuotaExceeded { stored, max } => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!(
                "The tenant's unfinished bulk jobs hold {stored} bytes; with this file they would pass its {max} \
                 bytes. Try again when some of them have finished."
            ),
        )
        .with_details(json!({ "reason": "TENANT_STORAGE_QUOTA", "stored_bytes": stored, "max_bytes": max })),
    }
}

/// Upload a CSV or XLSX file of filings to score (multipart: `file`, `type` = annual|quarterly, optional
/// `organization_id`, `model`). 202 with the job; 422 with `details.reason` (and `details.expected`, the
/// accepted columns) when the file cannot be a job; 413 when it is too large.
#[utoipa::path(tag = "bulk-jobs", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", content = String, description = "file, type, organization_id, model"),
    responses((status = 202, body = envelope::Envelope<JobView>), (status = 413, body = envelope::ErrorBody),
    (status = 422, body = envelope::ErrorBody)))]
#[post("/bulk-jobs")]
#[tracing::instrument(name = "http.bulk_jobs.create", skip_all)]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    body: Multipart,
) -> Result<HttpResponse, ApiError> {
    let job = submit(&state, &principal, body, None).await?;
    Ok(envelope::with_status(StatusCode::ACCEPTED, job))
}

/// AccuNode's answer to an asynchronous upload.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccunodeJob {
    pub job_id: Uuid,
    pub status: String,
    pub message: String,
    pub status_url: String,
}

async fn accunode_submit(
    state: &AppState,
    principal: &Principal,
    body: Multipart,
    prediction_type: PredictionType,
) -> Result<HttpResponse, ApiError> {
    let job = submit(state, principal, body, Some(prediction_type)).await?;
    Ok(envelope::with_status(
        StatusCode::ACCEPTED,
        AccunodeJob {
            job_id: job.job.id,
            status: job.job.status.clone(),
            message: format!("Bulk {prediction_type} prediction job queued."),
            status_url: format!("/api/v1/predictions/jobs/{}/status", job.job.id),
        },
    ))
}

/// AccuNode-compatible asynchronous annual upload (multipart `file`).
#[utoipa::path(tag = "bulk-jobs", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", content = String, description = "file, organization_id"),
    responses((status = 202, body = envelope::Envelope<AccunodeJob>), (status = 422, body = envelope::ErrorBody)))]
#[post("/predictions/annual/bulk-upload-async")]
#[tracing::instrument(name = "http.bulk_jobs.accunode_annual", skip_all)]
pub async fn accunode_annual(
    state: web::Data<AppState>,
    principal: Principal,
    body: Multipart,
) -> Result<HttpResponse, ApiError> {
    accunode_submit(&state, &principal, body, PredictionType::Annual).await
}

/// AccuNode-compatible asynchronous quarterly upload (multipart `file`).
#[utoipa::path(tag = "bulk-jobs", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", content = String, description = "file, organization_id"),
    responses((status = 202, body = envelope::Envelope<AccunodeJob>), (status = 422, body = envelope::ErrorBody)))]
#[post("/predictions/quarterly/bulk-upload-async")]
#[tracing::instrument(name = "http.bulk_jobs.accunode_quarterly", skip_all)]
pub async fn accunode_quarterly(
    state: web::Data<AppState>,
    principal: Principal,
    body: Multipart,
) -> Result<HttpResponse, ApiError> {
    accunode_submit(&state, &principal, body, PredictionType::Quarterly).await
}

async fn find(state: &AppState, principal: &Principal, id: Uuid) -> Result<BulkJob, ApiError> {
    principal.authorize(Permission::PredictionRead)?;
    let mut conn = state.db.acquire().await?;
    bulk_jobs::find(&mut conn, &principal.scope(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("bulk job"))
}

/// A job, with its progress.
#[utoipa::path(tag = "bulk-jobs", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = envelope::Envelope<JobView>), (status = 404, body = envelope::ErrorBody)))]
#[get("/bulk-jobs/{id}")]
#[tracing::instrument(name = "http.bulk_jobs.get", skip_all)]
pub async fn get(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let job = find(&state, &principal, id.into_inner()).await?;
    Ok(envelope::ok(JobView::from(job)))
}

/// AccuNode-compatible job status.
#[utoipa::path(tag = "bulk-jobs", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = envelope::Envelope<JobView>), (status = 404, body = envelope::ErrorBody)))]
#[get("/predictions/jobs/{id}/status")]
#[tracing::instrument(name = "http.bulk_jobs.accunode_status", skip_all)]
pub async fn accunode_status(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let job = find(&state, &principal, id.into_inner()).await?;
    Ok(envelope::ok(JobView::from(job)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// Only jobs in this status.
    pub status: Option<String>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

const STATUSES: [&str; 5] = ["queued", "processing", "completed", "failed", "cancelled"];

/// The caller's jobs (their organization's; all of the tenant's for tenant admins), newest first.
#[utoipa::path(tag = "bulk-jobs", security(("bearer" = [])), params(JobQuery),
    responses((status = 200, body = envelope::Envelope<Paginated<JobView>>)))]
#[get("/bulk-jobs")]
#[tracing::instrument(name = "http.bulk_jobs.list", skip_all)]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    query: web::Query<JobQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::PredictionRead)?;
    let query = query.into_inner();
    if let Some(status) = &query.status
        && !STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::validation(format!("Unknown status {status:?}."))
            .with_details(field_details("status", &STATUSES.join(", "))));
    }
    let page = page(PageRequest {
        page: query.page,
        per_page: query.per_page,
    })?;
    let mut conn = state.db.acquire().await?;
    let (jobs, total) = bulk_jobs::list(&mut conn, &principal.scope(), query.status.as_deref(), page).await?;
    let jobs: Vec<JobView> = jobs.into_iter().map(JobView::from).collect();
    Ok(envelope::ok(Paginated::new(jobs, page, total)))
}

/// Cancels a job: at once if queued; a running job stops after the chunks in flight (they are committed and
/// counted). 200 with the job; a finished job is left as it is.
#[utoipa::path(tag = "bulk-jobs", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = envelope::Envelope<JobView>), (status = 404, body = envelope::ErrorBody)))]
#[post("/bulk-jobs/{id}/cancel")]
#[tracing::instrument(name = "http.bulk_jobs.cancel", skip_all)]
pub async fn cancel(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::PredictionManage)?;
    let id = id.into_inner();
    let mut tx = state.db.begin().await?;
    let job = bulk_jobs::request_cancel(&mut tx, &principal.scope(), id)
        .await?
        .ok_or_else(|| ApiError::not_found("bulk job"))?;
    let mut entry = audit_entry(
        &principal,
        "bulk_job.cancel",
        "bulk_job",
        job.id,
        Some(job.tenant_id),
        job.organization_id,
    );
    entry.after = snapshot(&job);
    audit::record(&mut tx, entry).await?;
    tx.commit().await?;
    state.bulk.cancel(id);
    // Cancelled before any instance took it: no runner will end it, so its file goes now.
    if job.status == "cancelled"
        && let Some(format) = job.file_format.as_deref().and_then(FileFormat::parse)
    {
        let object = Storage::object_name(job.tenant_id, job.id, format);
        state.bulk.uploads().delete(&object).await;
    }
    Ok(envelope::ok(JobView::from(job)))
}

/// Live progress as Server-Sent Events: `event: progress` with the job JSON whenever it changes, then
/// `event: done` once it is finished (the stream ends); a keep-alive comment every 15 s. Every stream of a job
/// follows one reading of it ([`JobProgress`](super::job_progress::JobProgress)); a stream ends (`event: end`) within a few seconds of its
/// session ending, and open streams are capped per user and instance (`RATE_LIMITED`).
#[utoipa::path(tag = "bulk-jobs", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, description = "text/event-stream of progress", content_type = "text/event-stream", body = String),
    (status = 404, body = envelope::ErrorBody), (status = 429, body = envelope::ErrorBody)))]
#[get("/bulk-jobs/{id}/events")]
#[tracing::instrument(name = "http.bulk_jobs.events", skip_all)]
pub async fn events(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let job = find(&state, &principal, id.into_inner()).await?;
    let (db, job_progress) = (state.db.clone(), state.job_progress.clone());
    // Counted (or refused) before anything is started for the stream.
    let liveness = super::live::Liveness::open(state, principal, false)?;
    let follower = Follower {
        progress: job_progress.follow(&db, &job),
        sent: None,
        ended: false,
        liveness,
    };
    Ok(super::live::event_stream(follower))
}

/// One live progress stream's state.
struct Follower {
    progress: watch::Receiver<Arc<BulkJob>>,
    /// The `updated_at` of the last progress sent.
    sent: Option<chrono::DateTime<chrono::Utc>>,
    liveness: super::live::Liveness,
    /// The last frame (`done` or `end`) was sent.
    ended: bool,
}

impl super::live::Frames for Follower {
    async fn next_frame(&mut self) -> Option<String> {
        if self.ended {
            return None;
        }
        loop {
            if let Some(super::live::Standing::Ended(reason)) = self.liveness.recheck_if_due().await {
                self.ended = true;
                return Some(super::live::end_frame(reason));
            }
            let current = self.progress.borrow_and_update().clone();
            if self.sent.is_none_or(|at| at != current.updated_at) || current.is_finished() {
                self.sent = Some(current.updated_at);
                self.liveness.sent();
                let kind = if current.is_finished() {
                    self.ended = true;
                    "done"
                } else {
                    "progress"
                };
                let id = current.id;
                let data = serde_json::to_string(&JobView::from((*current).clone())).ok()?;
                return Some(format!("id: {id}\nevent: {kind}\ndata: {data}\n\n"));
            }
            match tokio::time::timeout(self.liveness.wait(), self.progress.changed()).await {
                Ok(Ok(())) => continue,
                // The job is gone (deleted with its tenant or organization).
                Ok(Err(_)) => return None,
                Err(_) => match self.liveness.keep_alive_due() {
                    Some(frame) => return Some(frame),
                    None => continue,
                },
            }
        }
    }
}

/// Rows of a report read per page, so a million-row report streams in bounded memory.
const REPORT_PAGE: i64 = 2000;

/// A CSV download streamed page by page: `page(after)` gives the rows after a row number (with each row's
/// number), `write` turns one into CSV cells.
fn csv_download<R, F, Fut>(
    file_name: String,
    header: Vec<String>,
    page: F,
    write: impl Fn(&R) -> Vec<String> + 'static,
) -> HttpResponse
where
    R: 'static,
    F: Fn(i64) -> Fut + 'static,
    Fut: std::future::Future<Output = sqlx::Result<Vec<(i64, R)>>> + 'static,
{
    let head = csv_line(&header);
    let write = std::rc::Rc::new(write);
    let pages = stream::unfold((Some(0_i64), page, write), |(after, page, write)| async move {
        let after = after?;
        let rows = match page(after).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "report page failed");
                return Some((
                    Err(actix_web::error::ErrorInternalServerError("report failed")),
                    (None, page, write),
                ));
            }
        };
        let next = if rows.len() as i64 == REPORT_PAGE {
            rows.last().map(|(n, _)| *n)
        } else {
            None
        };
        let mut out = Vec::new();
        for (_, row) in &rows {
            out.extend_from_slice(&csv_line(&write(row)));
        }
        Some((Ok::<_, actix_web::Error>(web::Bytes::from(out)), (next, page, write)))
    });
    let body = stream::once(async move { Ok::<_, actix_web::Error>(web::Bytes::from(head)) })
        .chain(pages.try_filter(|b| std::future::ready(!b.is_empty())));
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("Content-Disposition", format!("attachment; filename=\"{file_name}\"")))
        .streaming(body)
}

fn csv_line(cells: &[String]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    // Writing to memory cannot fail.
    let _ = writer.write_record(cells.iter().map(|c| inert_cell(c).into_owned()));
    writer.into_inner().unwrap_or_default()
}

/// A cell a spreadsheet will not run: text that starts like a formula (`= + - @`, a tab or a carriage return)
/// gets a leading `'`, which spreadsheets read as "text" (a company named `=HYPERLINK(…)` is shown, not
/// followed). Numbers keep their sign, so that the errors file can be fixed and uploaded again.
fn inert_cell(cell: &str) -> std::borrow::Cow<'_, str> {
    let formula_like = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if formula_like && !cell.parse::<f64>().is_ok_and(f64::is_finite) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// The failed rows as CSV: `row_number, code, reason`, then the row's own cells under the file's columns
/// (AccuNode's order first), so the rows can be fixed and uploaded again.
#[utoipa::path(tag = "bulk-jobs", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, description = "CSV of the failed rows", content_type = "text/csv", body = String),
    (status = 404, body = envelope::ErrorBody)))]
#[get("/bulk-jobs/{id}/errors")]
#[tracing::instrument(name = "http.bulk_jobs.errors", skip_all)]
pub async fn errors(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let job = find(&state, &principal, id.into_inner()).await?;
    let prediction_type: PredictionType = job.prediction_type.parse().map_err(ApiError::internal)?;
    // The file's own columns (every row has the header's), in the order of the accepted columns.
    let sample = bulk_jobs::sample_error_row(&state.db, job.tenant_id, job.id).await?;
    let columns: Vec<String> = expected_columns(prediction_type)
        .into_iter()
        .filter(|c| sample.as_ref().is_none_or(|raw| raw.get(c).is_some()))
        .collect();
    let mut header: Vec<String> = ["row_number", "code", "reason"].map(str::to_owned).to_vec();
    header.extend(columns.iter().cloned());
    let (db, tenant_id, job_id) = (state.db.clone(), job.tenant_id, job.id);
    Ok(csv_download(
        format!("{job_id}-errors.csv"),
        header,
        move |after| {
            let db = db.clone();
            async move { bulk_jobs::errors_page(&db, tenant_id, job_id, after, REPORT_PAGE).await }
        },
        move |e: &bulk_jobs::ErrorRow| {
            let mut cells = vec![e.row_number.to_string(), e.code.clone(), e.message.clone()];
            cells.extend(columns.iter().map(|c| {
                e.raw
                    .as_ref()
                    .and_then(|raw| raw.get(c))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            }));
            cells
        },
    ))
}

/// The predictions of a job as CSV, in file order: `row_number, company_symbol, company_name,
/// reporting_year, reporting_quarter, probability, risk_level, implied_rating, confidence, model,
/// prediction_id, company_id`.
#[utoipa::path(tag = "bulk-jobs", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, description = "CSV of the predictions", content_type = "text/csv", body = String),
    (status = 404, body = envelope::ErrorBody)))]
#[get("/bulk-jobs/{id}/results")]
#[tracing::instrument(name = "http.bulk_jobs.results", skip_all)]
pub async fn results(
    state: web::Data<AppState>,
    principal: Principal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let job = find(&state, &principal, id.into_inner()).await?;
    let header = [
        "row_number",
        "company_symbol",
        "company_name",
        "reporting_year",
        "reporting_quarter",
        "probability",
        "risk_level",
        "implied_rating",
        "confidence",
        "model",
        "prediction_id",
        "company_id",
    ]
    .map(str::to_owned)
    .to_vec();
    let (db, tenant_id, job_id) = (state.db.clone(), job.tenant_id, job.id);
    Ok(csv_download(
        format!("{job_id}-results.csv"),
        header,
        move |after| {
            let db = db.clone();
            async move { bulk_jobs::results_page(&db, tenant_id, job_id, after, REPORT_PAGE).await }
        },
        |r: &bulk_jobs::ResultRow| {
            vec![
                r.row_number.to_string(),
                r.company_symbol.clone(),
                r.company_name.clone(),
                r.period_year.to_string(),
                r.period_quarter.map(|q| format!("Q{q}")).unwrap_or_default(),
                r.probability.to_string(),
                r.risk_level.clone(),
                r.implied_rating.clone().unwrap_or_default(),
                r.confidence.map(|c| c.to_string()).unwrap_or_default(),
                r.model.clone(),
                r.prediction_id.to_string(),
                r.company_id.to_string(),
            ]
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_cells_that_a_spreadsheet_would_run_are_written_as_text() {
        let line = |cells: &[&str]| {
            String::from_utf8(csv_line(&cells.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>())).unwrap()
        };
        assert_eq!(
            line(&[
                r#"=HYPERLINK("http://x.example","x")"#,
                "+1+2",
                "@SUM(A1)",
                "-2+3",
                "\tx"
            ]),
            "\"'=HYPERLINK(\"\"http://x.example\"\",\"\"x\"\")\",'+1+2,'@SUM(A1),'-2+3,'\tx\n"
        );
        assert_eq!(
            line(&["-2.5", "+3", "1e-3", "Acme", "", "a=b"]),
            "-2.5,+3,1e-3,Acme,,a=b\n"
        );
    }
}
