//! Taking an upload as a bulk job: the file, already received into the scratch directory, is checked (format,
//! header, an XLSX's expanded size) on the blocking pool, streamed into the upload store, and the job recorded
//! (queued) with its audit row in one transaction, within the tenant's storage quota; then the runner is woken.
//! The HTTP layer reads the multipart form into an [`Upload`] and answers [`UploadError`]s with their codes.

use std::path::Path;

use pdscore_actors::PredictionType;
use pdscore_models::registry::ModelId;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    BulkRunner, Storage,
    file::{self, FileError, FileFormat, FileRows},
};
use crate::{
    auth::Principal,
    db::{
        audit::{self, Actor, AuditEntry},
        bulk_jobs::{self, BulkJob, NewBulkJob},
        organizations,
    },
};

/// A received file and what its form said, validated.
pub struct Upload<'a> {
    pub id: Uuid,
    /// Where the file was received (removed by the caller whatever happens; an accepted file is copied to the
    /// upload store).
    pub incoming: &'a Path,
    /// The client's name of the file, without control characters.
    pub file_name: String,
    pub size: u64,
    pub prediction_type: PredictionType,
    pub organization_id: Uuid,
    /// A registered model asked for; `None`: the tenant's.
    pub model: Option<ModelId>,
    /// Answered in AccuNode's terms (its upload routes).
    pub accunode_terms: bool,
    pub by: &'a Principal,
    /// The request's id, for the audit row.
    pub request_id: Option<String>,
}

/// Why an upload was not taken.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// Not an organization the caller may see.
    #[error("organization not found")]
    OrganizationNotFound,
    /// The file cannot be a job (format, header, size).
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The storage failed (disk full, permissions, the upload store unreachable).
    #[error("the upload could not be stored: {0}")]
    Storage(#[from] std::io::Error),
    /// The tenant's unfinished jobs' files weigh `stored` bytes; with this one they would pass `max`.
    #[error("the tenant's storage quota would be exceeded")]
    QuotaExceeded { stored: u64, max: u64 },
}

/// Records the job for `upload` (queued) and wakes the runner.
#[tracing::instrument(name = "bulk.upload.accept", skip_all, fields(job_id = %upload.id))]
pub async fn accept(db: &PgPool, runner: &BulkRunner, upload: Upload<'_>) -> Result<BulkJob, UploadError> {
    let storage = runner.storage();
    let max_stored = storage.max_stored_bytes_per_tenant;
    let organization = {
        let mut conn = db.acquire().await?;
        organizations::find(&mut conn, &upload.by.scope(), upload.organization_id)
            .await?
            .ok_or(UploadError::OrganizationNotFound)?
    };
    let format = check(storage, upload.incoming, &upload.file_name, upload.prediction_type).await?;
    // Before the file is streamed into the store (checked again under the tenant's lock when recorded).
    let stored = bulk_jobs::stored_bytes(&mut *db.acquire().await?, organization.tenant_id).await?;
    within_quota(stored, upload.size, max_stored)?;

    let object = Storage::object_name(organization.tenant_id, upload.id, format);
    runner.uploads().put(&object, upload.incoming).await?;
    let recorded = record(db, &upload, &organization, format, &object, max_stored).await;
    if recorded.is_err() {
        runner.uploads().delete(&object).await;
    }
    let job = recorded?;
    runner.wake();
    Ok(job)
}

/// Refuses a file of `size` bytes when the tenant's unfinished jobs' files, `stored` bytes, leave no room for it.
fn within_quota(stored: i64, size: u64, max: u64) -> Result<(), UploadError> {
    let stored = u64::try_from(stored).unwrap_or(0);
    if stored.saturating_add(size) > max {
        return Err(UploadError::QuotaExceeded { stored, max });
    }
    Ok(())
}

/// The file's format, once its format, header and (XLSX) expanded size are acceptable; on the blocking pool.
async fn check(
    storage: &Storage,
    path: &Path,
    file_name: &str,
    prediction_type: PredictionType,
) -> Result<FileFormat, UploadError> {
    let (path, file_name, limits) = (path.to_owned(), file_name.to_owned(), storage.xlsx);
    let checked = tokio::task::spawn_blocking(move || {
        let head = file::head(&path, 8192).map_err(|e| FileError::new("UNREADABLE_FILE", e.to_string()))?;
        let format = FileFormat::detect(&file_name, &head)?;
        FileRows::open(&path, format, prediction_type, limits)?;
        Ok::<_, FileError>(format)
    })
    .await
    .map_err(|e| UploadError::Storage(std::io::Error::other(e)))?;
    Ok(checked?)
}

/// The job's row and its audit row, in one transaction.
async fn record(
    db: &PgPool,
    upload: &Upload<'_>,
    organization: &organizations::Organization,
    format: FileFormat,
    object: &str,
    max_stored: u64,
) -> Result<BulkJob, UploadError> {
    let mut tx = db.begin().await?;
    let stored = bulk_jobs::stored_bytes_locked(&mut tx, organization.tenant_id).await?;
    within_quota(stored, upload.size, max_stored)?;
    let job = bulk_jobs::insert(
        &mut tx,
        &NewBulkJob {
            id: upload.id,
            tenant_id: organization.tenant_id,
            organization_id: organization.id,
            created_by: upload.by.tenant_id.map(|_| upload.by.user_id),
            prediction_type: upload.prediction_type,
            file_name: &upload.file_name,
            file_format: format.as_str(),
            storage_path: object,
            file_size: i64::try_from(upload.size).unwrap_or(i64::MAX),
            options: json!({
                "model": upload.model.as_ref().map(ToString::to_string),
                "terms": if upload.accunode_terms { "accunode" } else { "product" },
            }),
        },
    )
    .await?;
    audit::record(
        &mut tx,
        AuditEntry {
            tenant_id: Some(job.tenant_id),
            organization_id: job.organization_id,
            actor: Actor::User(upload.by.user_id),
            action: "bulk_job.create",
            target_type: "bulk_job",
            target_id: Some(job.id.to_string()),
            before: None,
            after: serde_json::to_value(&job).ok(),
            request_id: upload.request_id.clone(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(job)
}
