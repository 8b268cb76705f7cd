//! Bulk jobs: the job rows (status, counts, the last committed row), their failed rows, the reports, and
//! the store a running job records its progress through (the `BulkStore` port).

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Utc};
use futures_util::{FutureExt, future::BoxFuture};
use pdscore_actors::{
    PredictionType, StoreError,
    bulk_job::{CompanyRow, JobEnd, JobSpec, Progress},
};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{BindScope, pagination::Page};
use crate::auth::Scope;

/// A bulk job as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct BulkJob {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// `null` for a replay of a whole tenant's filings.
    pub organization_id: Option<Uuid>,
    /// `upload` (a file's rows) or `replay` (stored filings re-scored with another model).
    pub kind: String,
    pub created_by: Option<Uuid>,
    /// `annual` or `quarterly`.
    pub prediction_type: String,
    /// `queued`, `processing`, `completed`, `failed` or `cancelled`.
    pub status: String,
    pub file_name: String,
    /// `csv` or `xlsx`; `null` for a replay.
    pub file_format: Option<String>,
    pub file_size: i64,
    #[schema(value_type = Object)]
    pub options: Value,
    /// Data rows in the file (blank rows excluded); known once the job starts.
    pub total_rows: Option<i64>,
    pub processed_rows: i64,
    pub succeeded_rows: i64,
    pub failed_rows: i64,
    /// Rows up to this one (1 = the row after the header) are committed or failed.
    pub last_committed_row: i64,
    pub error_message: Option<String>,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

impl BulkJob {
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "completed" | "failed" | "cancelled")
    }

    /// Processed share of the rows, 0 to 100 (100 once finished).
    pub fn percent(&self) -> f64 {
        match self.total_rows {
            _ if self.status == "completed" => 100.0,
            Some(total) if total > 0 => (self.processed_rows as f64 * 100.0 / total as f64).min(100.0),
            _ => 0.0,
        }
    }
}

const COLUMNS: &str =
    "j.id, j.tenant_id, j.organization_id, j.kind, j.created_by, j.prediction_type::text AS prediction_type,
    j.status::text AS status, j.file_name, j.file_format::text AS file_format, j.file_size, j.options, j.total_rows,
    j.processed_rows, j.succeeded_rows, j.failed_rows, j.last_committed_row, j.error_message, j.cancel_requested_at,
    j.created_at, j.started_at, j.finished_at, j.updated_at";

/// The scope's condition on jobs: tenant ($1), organization ($2); an account limited to assigned companies
/// ($3) sees the jobs it submitted.
const IN_SCOPE: &str = "($1::uuid IS NULL OR j.tenant_id = $1) AND ($2::uuid IS NULL OR j.organization_id = $2)
    AND ($3::uuid IS NULL OR j.created_by = $3)";

pub struct NewBulkJob<'a> {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub organization_id: Uuid,
    pub created_by: Option<Uuid>,
    pub prediction_type: PredictionType,
    pub file_name: &'a str,
    pub file_format: &'a str,
    pub storage_path: &'a str,
    pub file_size: i64,
    pub options: Value,
}

#[tracing::instrument(name = "db.bulk_jobs.insert", level = "debug", skip_all)]
pub async fn insert(conn: &mut PgConnection, new: &NewBulkJob<'_>) -> sqlx::Result<BulkJob> {
    sqlx::query_as(&format!(
        "INSERT INTO bulk_jobs AS j (id, tenant_id, organization_id, created_by, prediction_type, file_name,
                                     file_format, storage_path, file_size, options)
         VALUES ($1, $2, $3, $4, $5::prediction_type, $6, $7::bulk_file_format, $8, $9, $10) RETURNING {COLUMNS}"
    ))
    .bind(new.id)
    .bind(new.tenant_id)
    .bind(new.organization_id)
    .bind(new.created_by)
    .bind(new.prediction_type.as_str())
    .bind(new.file_name)
    .bind(new.file_format)
    .bind(new.storage_path)
    .bind(new.file_size)
    .bind(&new.options)
    .fetch_one(conn)
    .await
}

#[tracing::instrument(name = "db.bulk_jobs.find", level = "debug", skip_all)]
pub async fn find(conn: &mut PgConnection, scope: &Scope, id: Uuid) -> sqlx::Result<Option<BulkJob>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bulk_jobs j WHERE {IN_SCOPE} AND j.id = $4"
    ))
    .bind_scope(scope)
    .bind(id)
    .fetch_optional(conn)
    .await
}

#[tracing::instrument(name = "db.bulk_jobs.list", level = "debug", skip_all)]
pub async fn list(
    conn: &mut PgConnection,
    scope: &Scope,
    status: Option<&str>,
    page: Page,
) -> sqlx::Result<(Vec<BulkJob>, i64)> {
    let condition = format!("{IN_SCOPE} AND ($4::text IS NULL OR j.status::text = $4)");
    let total = sqlx::query_scalar(&format!("SELECT count(*) FROM bulk_jobs j WHERE {condition}"))
        .bind_scope(scope)
        .bind(status)
        .fetch_one(&mut *conn)
        .await?;
    let items = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bulk_jobs j WHERE {condition} ORDER BY j.created_at DESC, j.id DESC LIMIT $5 OFFSET $6"
    ))
    .bind_scope(scope)
    .bind(status)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(conn)
    .await?;
    Ok((items, total))
}

/// Asks a job to stop: a queued job is cancelled at once; a running one stops after its chunks in flight
/// (whichever instance runs it sees the request when it records progress). `None`: not in scope.
#[tracing::instrument(name = "db.bulk_jobs.request_cancel", level = "debug", skip_all)]
pub async fn request_cancel(conn: &mut PgConnection, scope: &Scope, id: Uuid) -> sqlx::Result<Option<BulkJob>> {
    sqlx::query(&format!(
        "UPDATE bulk_jobs j SET cancel_requested_at = coalesce(j.cancel_requested_at, now()),
             status = CASE WHEN j.status = 'queued' THEN 'cancelled'::bulk_job_status ELSE j.status END,
             finished_at = CASE WHEN j.status = 'queued' THEN now() ELSE j.finished_at END
         WHERE {IN_SCOPE} AND j.id = $4 AND j.status IN ('queued', 'processing')"
    ))
    .bind_scope(scope)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    find(conn, scope, id).await
}

/// A job to run (or resume), as the runner sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Runnable {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub organization_id: Option<Uuid>,
    pub kind: String,
    pub created_by: Option<Uuid>,
    pub prediction_type: String,
    pub status: String,
    pub file_format: Option<String>,
    pub storage_path: Option<String>,
    pub options: Value,
    pub total_rows: Option<i64>,
    pub last_committed_row: i64,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    /// A replay's last recorded filing.
    pub resume_after_filing: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

const RUNNABLE: &str = "id, tenant_id, organization_id, kind, created_by, prediction_type::text AS prediction_type,
    status::text AS status, file_format::text AS file_format, storage_path, options, total_rows, last_committed_row,
    cancel_requested_at, resume_after_filing, created_at";

/// Unfinished jobs, oldest first, at most `per_tenant` of each tenant (its oldest): a tenant with a thousand
/// queued jobs does not hide the next tenant's.
#[tracing::instrument(name = "db.bulk_jobs.unfinished", level = "debug", skip_all)]
pub async fn unfinished(pool: &PgPool, per_tenant: i64, limit: i64) -> sqlx::Result<Vec<Runnable>> {
    sqlx::query_as(&format!(
        "SELECT {RUNNABLE} FROM (
             SELECT *, row_number() OVER (PARTITION BY tenant_id ORDER BY created_at) AS tenant_rank
             FROM bulk_jobs WHERE status IN ('queued', 'processing')
         ) jobs
         WHERE tenant_rank <= $1 ORDER BY created_at LIMIT $2"
    ))
    .bind(per_tenant)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Which of `ids` are jobs not yet ended.
#[tracing::instrument(name = "db.bulk_jobs.unfinished_among", level = "debug", skip_all)]
pub async fn unfinished_among(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT id FROM bulk_jobs WHERE id = ANY($1) AND status IN ('queued', 'processing')")
        .bind(ids)
        .fetch_all(pool)
        .await
}

/// Takes one of the tenant's `slots` for running a job, on this connection (held until it closes, like the
/// job's own lock): `false` when every slot is held, by this instance or another. Two-key advisory locks, apart
/// from the jobs' one-key locks.
#[tracing::instrument(name = "db.bulk_jobs.try_take_tenant_slot", level = "debug", skip_all)]
pub async fn try_take_tenant_slot(conn: &mut PgConnection, tenant_id: Uuid, slots: usize) -> sqlx::Result<bool> {
    for slot in 0..i32::try_from(slots).unwrap_or(i32::MAX) {
        let taken: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('pdscore-bulk-tenant:' || $1::text), $2)")
                .bind(tenant_id)
                .bind(slot)
                .fetch_one(&mut *conn)
                .await?;
        if taken {
            return Ok(true);
        }
    }
    Ok(false)
}

/// [`stored_bytes`], with the tenant's uploads serialized until the end of the transaction (so that two
/// uploads cannot both fit the last free bytes of its quota).
#[tracing::instrument(name = "db.bulk_jobs.stored_bytes_locked", level = "debug", skip_all)]
pub async fn stored_bytes_locked(conn: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('pdscore-bulk-quota:' || $1::text), 0)")
        .bind(tenant_id)
        .execute(&mut *conn)
        .await?;
    stored_bytes(conn, tenant_id).await
}

/// The bytes of the tenant's unfinished jobs' files.
#[tracing::instrument(name = "db.bulk_jobs.stored_bytes", level = "debug", skip_all)]
pub async fn stored_bytes(conn: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT coalesce(sum(file_size), 0)::bigint FROM bulk_jobs
         WHERE tenant_id = $1 AND status IN ('queued', 'processing')",
    )
    .bind(tenant_id)
    .fetch_one(conn)
    .await
}

/// The advisory-lock key of a job: held by the instance running it for as long as its connection lives,
/// so a crashed instance's jobs are free at once.
fn lock_key(id: Uuid) -> i64 {
    let bytes = id.as_u128();
    (bytes as i64) ^ ((bytes >> 64) as i64)
}

/// Takes the job's lock on this connection; `false` if another instance holds it.
#[tracing::instrument(name = "db.bulk_jobs.try_lock", level = "debug", skip_all)]
pub async fn try_lock(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(lock_key(id))
        .fetch_one(conn)
        .await
}

/// Reads the job again under its lock (another instance may have finished it meanwhile).
#[tracing::instrument(name = "db.bulk_jobs.runnable", level = "debug", skip_all)]
pub async fn runnable(conn: &mut PgConnection, tenant_id: Uuid, id: Uuid) -> sqlx::Result<Option<Runnable>> {
    sqlx::query_as(&format!(
        "SELECT {RUNNABLE} FROM bulk_jobs WHERE tenant_id = $1 AND id = $2 AND status IN ('queued', 'processing')"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// A job as the runner sees it, finished or not.
#[tracing::instrument(name = "db.bulk_jobs.runnable_any", level = "debug", skip_all)]
pub async fn runnable_any(conn: &mut PgConnection, tenant_id: Uuid, id: Uuid) -> sqlx::Result<Option<Runnable>> {
    sqlx::query_as(&format!(
        "SELECT {RUNNABLE} FROM bulk_jobs WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The job starts (or resumes) processing with this many rows.
#[tracing::instrument(name = "db.bulk_jobs.start", level = "debug", skip_all)]
pub async fn start(pool: &PgPool, tenant_id: Uuid, id: Uuid, total_rows: i64) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE bulk_jobs SET status = 'processing', total_rows = $3, started_at = coalesce(started_at, now())
         WHERE tenant_id = $1 AND id = $2 AND status IN ('queued', 'processing')",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(total_rows)
    .execute(pool)
    .await?;
    Ok(())
}

#[tracing::instrument(name = "db.bulk_jobs.finish", level = "debug", skip_all)]
pub async fn finish(pool: &PgPool, tenant_id: Uuid, id: Uuid, end: &JobEnd) -> sqlx::Result<()> {
    let (status, message) = match end {
        JobEnd::Completed => ("completed", None),
        JobEnd::Cancelled => ("cancelled", None),
        JobEnd::Failed(message) => ("failed", Some(message.as_str())),
    };
    sqlx::query(
        "UPDATE bulk_jobs SET status = $3::bulk_job_status, error_message = $4, finished_at = now(),
                              storage_path = NULL
         WHERE tenant_id = $1 AND id = $2 AND status IN ('queued', 'processing')",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(status)
    .bind(message)
    .execute(pool)
    .await?;
    Ok(())
}

/// A failed row, as the errors report lists it.
#[derive(Debug, sqlx::FromRow)]
pub struct ErrorRow {
    pub row_number: i64,
    pub code: String,
    pub message: String,
    pub raw: Option<Value>,
}

/// The cells of one failed row (its keys are the file's columns), if any row failed with its cells.
#[tracing::instrument(name = "db.bulk_jobs.sample_error_row", level = "debug", skip_all)]
pub async fn sample_error_row(pool: &PgPool, tenant_id: Uuid, id: Uuid) -> sqlx::Result<Option<Value>> {
    sqlx::query_scalar(
        "SELECT raw FROM bulk_job_errors WHERE tenant_id = $1 AND job_id = $2 AND jsonb_typeof(raw) = 'object'
         ORDER BY row_number LIMIT 1",
    )
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Failed rows after `after`, in row order (a page of the report).
#[tracing::instrument(name = "db.bulk_jobs.errors_page", level = "debug", skip_all)]
pub async fn errors_page(
    pool: &PgPool,
    tenant_id: Uuid,
    id: Uuid,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<(i64, ErrorRow)>> {
    let rows: Vec<ErrorRow> = sqlx::query_as(
        "SELECT row_number, code, message, raw FROM bulk_job_errors
         WHERE tenant_id = $1 AND job_id = $2 AND row_number > $3 ORDER BY row_number LIMIT $4",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.row_number, r)).collect())
}

/// A scored row, as the results report lists it.
#[derive(Debug, sqlx::FromRow)]
pub struct ResultRow {
    pub row_number: i64,
    pub company_symbol: String,
    pub company_name: String,
    pub period_year: i16,
    pub period_quarter: Option<i16>,
    pub probability: f64,
    pub risk_level: String,
    pub implied_rating: Option<String>,
    pub confidence: Option<f64>,
    pub model: String,
    pub prediction_id: Uuid,
    pub company_id: Uuid,
}

/// Scored rows after `after`, in row order (a page of the report).
#[tracing::instrument(name = "db.bulk_jobs.results_page", level = "debug", skip_all)]
pub async fn results_page(
    pool: &PgPool,
    tenant_id: Uuid,
    id: Uuid,
    after: i64,
    limit: i64,
) -> sqlx::Result<Vec<(i64, ResultRow)>> {
    let rows: Vec<ResultRow> = sqlx::query_as(
        "SELECT f.bulk_row AS row_number, c.symbol AS company_symbol, c.name AS company_name, p.period_year,
                p.period_quarter, p.probability, p.risk_level::text AS risk_level, p.implied_rating, p.confidence,
                p.model_name || '@' || p.model_version AS model, p.id AS prediction_id, c.id AS company_id
         FROM filings f
         JOIN predictions p ON p.tenant_id = f.tenant_id AND p.filing_id = f.id AND NOT p.is_shadow
         JOIN companies c ON c.tenant_id = f.tenant_id AND c.id = f.company_id
         WHERE f.tenant_id = $1 AND f.bulk_job_id = $2 AND f.bulk_row > $3 ORDER BY f.bulk_row LIMIT $4",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.row_number, r)).collect())
}

/// A job's companies by symbol, and the symbols the lookup created.
pub struct ResolvedCompanies {
    pub ids: HashMap<String, Uuid>,
    pub created: Vec<String>,
}

/// What a running bulk job reads and writes in PostgreSQL (the `BulkStore` port, with the companies it creates
/// announced to the fleet, is `crate::bulk`'s).
pub struct PgBulkStore {
    pool: PgPool,
    /// Who submitted the job (companies it creates are theirs).
    created_by: Option<Uuid>,
    new_companies: Arc<super::Growth>,
    committed_rows: Arc<super::Growth>,
}

impl PgBulkStore {
    pub fn new(pool: PgPool, created_by: Option<Uuid>) -> Self {
        Self {
            pool,
            created_by,
            new_companies: Arc::new(super::Growth::new(1_000)),
            committed_rows: Arc::new(super::Growth::new(20_000)),
        }
    }

    /// The ids of these companies in the job's organization, created if new; by symbol, with the ones created.
    pub fn resolve(
        &self,
        job: &JobSpec,
        companies: Vec<CompanyRow>,
    ) -> BoxFuture<'static, Result<ResolvedCompanies, StoreError>> {
        let (pool, created_by, tenant_id, organization_id) =
            (self.pool.clone(), self.created_by, job.tenant_id, job.organization_id);
        let growth = self.new_companies.clone();
        async move {
            let symbols: Vec<&str> = companies.iter().map(|c| c.symbol.as_str()).collect();
            let created: Vec<String> = sqlx::query_scalar(
                "INSERT INTO companies (id, tenant_id, organization_id, symbol, name, sector, market_cap, created_by)
                 SELECT id, $2, $3, symbol, name, sector, market_cap, $4
                 FROM unnest($1::uuid[], $5::text[], $6::text[], $7::text[], $8::float8[])
                      AS t(id, symbol, name, sector, market_cap)
                 ON CONFLICT (tenant_id, organization_id, symbol) DO NOTHING
                 RETURNING symbol",
            )
            .bind(companies.iter().map(|_| Uuid::now_v7()).collect::<Vec<_>>())
            .bind(tenant_id)
            .bind(organization_id)
            .bind(created_by)
            .bind(&symbols)
            .bind(companies.iter().map(|c| c.name.as_str()).collect::<Vec<_>>())
            .bind(companies.iter().map(|c| c.sector.as_deref()).collect::<Vec<_>>())
            .bind(companies.iter().map(|c| c.market_cap).collect::<Vec<_>>())
            .fetch_all(&pool)
            .await
            .map_err(store_error)?;
            if growth.grew(created.len() as u64) {
                super::analyze(&pool, &[super::Analyzed::Companies]).await;
            }
            let found: Vec<(String, Uuid)> = sqlx::query_as(
                "SELECT symbol, id FROM companies WHERE tenant_id = $1 AND organization_id = $2 AND symbol = ANY($3)",
            )
            .bind(tenant_id)
            .bind(organization_id)
            .bind(&symbols)
            .fetch_all(&pool)
            .await
            .map_err(store_error)?;
            Ok(ResolvedCompanies {
                ids: found.into_iter().collect(),
                created,
            })
        }
        .boxed()
    }

    /// Records a chunk's outcome (in one transaction); returns whether a cancel has been requested.
    pub fn progress(&self, job: &JobSpec, progress: Progress) -> BoxFuture<'static, Result<bool, StoreError>> {
        let (pool, tenant_id, job_id) = (self.pool.clone(), job.tenant_id, job.job_id);
        let growth = self.committed_rows.clone();
        async move {
            if growth.grew(progress.succeeded) {
                super::analyze(&pool, &[super::Analyzed::Filings, super::Analyzed::Predictions]).await;
            }
            let mut tx = pool.begin().await.map_err(store_error)?;
            if !progress.errors.is_empty() {
                let errors = &progress.errors;
                sqlx::query(
                    "INSERT INTO bulk_job_errors (tenant_id, job_id, row_number, code, message, raw)
                     SELECT $1, $2, row_number, code, message, raw
                     FROM unnest($3::int8[], $4::text[], $5::text[], $6::jsonb[]) AS t(row_number, code, message, raw)
                     ON CONFLICT DO NOTHING",
                )
                .bind(tenant_id)
                .bind(job_id)
                .bind(errors.iter().map(|e| e.row).collect::<Vec<_>>())
                .bind(errors.iter().map(|e| e.code.as_str()).collect::<Vec<_>>())
                .bind(errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>())
                .bind(errors.iter().map(|e| &e.raw).collect::<Vec<_>>())
                .execute(&mut *tx)
                .await
                .map_err(store_error)?;
            }
            // Recorded once: a chunk already recorded (the same last row) changes nothing.
            let cancel: Option<bool> = sqlx::query_scalar(
                "UPDATE bulk_jobs SET processed_rows = processed_rows + $3 + $4, succeeded_rows = succeeded_rows + $3,
                                      failed_rows = failed_rows + $4, last_committed_row = $5
                 WHERE tenant_id = $1 AND id = $2 AND last_committed_row < $5
                 RETURNING cancel_requested_at IS NOT NULL",
            )
            .bind(tenant_id)
            .bind(job_id)
            .bind(progress.succeeded as i64)
            .bind(progress.failed as i64)
            .bind(progress.last_row)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
            tx.commit().await.map_err(store_error)?;
            Ok(cancel.unwrap_or(false))
        }
        .boxed()
    }
}

fn store_error(e: sqlx::Error) -> StoreError {
    super::store_error("bulk job store", e)
}
