//! Replays: bulk jobs that re-score stored filings with another model version (their rows in `bulk_jobs`,
//! `kind = 'replay'`), the filings they read, and the migrations between the answers and the replay.

use chrono::{DateTime, Utc};
use pdscore_actors::PredictionType;
use serde_json::{Map, Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{bulk_jobs::BulkJob, validation::PairRow};

/// A replay to record (queued).
pub struct NewReplay<'a> {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// `None`: every organization of the tenant.
    pub organization_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub prediction_type: PredictionType,
    pub model: &'a str,
}

#[tracing::instrument(name = "db.replays.insert", level = "debug", skip_all)]
pub async fn insert(conn: &mut PgConnection, new: &NewReplay<'_>) -> sqlx::Result<BulkJob> {
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO bulk_jobs (id, tenant_id, organization_id, kind, created_by, prediction_type, file_name,
                                file_size, options)
         VALUES ($1, $2, $3, 'replay', $4, $5::prediction_type, $6, 0, $7) RETURNING id",
    )
    .bind(new.id)
    .bind(new.tenant_id)
    .bind(new.organization_id)
    .bind(new.created_by)
    .bind(new.prediction_type.as_str())
    .bind(format!("replay with {}", new.model))
    .bind(json!({ "model": new.model, "company_id": new.company_id }))
    .fetch_one(&mut *conn)
    .await?;
    super::bulk_jobs::find(conn, &crate::auth::Scope::service(new.tenant_id), id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

/// What a replay reads: its tenant's filings of its type (in its organization, or of its company) received
/// before the replay was asked for.
#[derive(Debug, Clone, Copy)]
pub struct Selection {
    pub tenant_id: Uuid,
    pub organization_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    pub prediction_type: PredictionType,
    pub received_by: DateTime<Utc>,
}

const SELECTED: &str = "f.tenant_id = $1 AND f.prediction_type = $2::prediction_type AND f.received_at <= $3
    AND ($4::uuid IS NULL OR c.organization_id = $4) AND ($5::uuid IS NULL OR f.company_id = $5)";

/// A stored filing to score again.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredFiling {
    pub id: Uuid,
    pub company_id: Uuid,
    pub organization_id: Uuid,
    pub period_year: i16,
    pub period_quarter: Option<i16>,
    pub statement: Option<Value>,
    pub ratios: Option<sqlx::types::Json<Map<String, Value>>>,
}

/// How many filings the selection holds.
#[tracing::instrument(name = "db.replays.count", level = "debug", skip_all)]
pub async fn count(pool: &PgPool, selection: &Selection) -> sqlx::Result<i64> {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM filings f JOIN companies c ON c.tenant_id = f.tenant_id AND c.id = f.company_id
         WHERE {SELECTED}"
    ))
    .bind(selection.tenant_id)
    .bind(selection.prediction_type.as_str())
    .bind(selection.received_by)
    .bind(selection.organization_id)
    .bind(selection.company_id)
    .fetch_one(pool)
    .await
}

/// The selection's next filings after `after` (in id order), at most `limit`.
#[tracing::instrument(name = "db.replays.page", level = "debug", skip_all)]
pub async fn page(
    pool: &PgPool,
    selection: &Selection,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<StoredFiling>> {
    sqlx::query_as(&format!(
        "SELECT f.id, f.company_id, c.organization_id, f.period_year, f.period_quarter, f.statement, f.ratios
         FROM filings f JOIN companies c ON c.tenant_id = f.tenant_id AND c.id = f.company_id
         WHERE {SELECTED} AND ($6::uuid IS NULL OR f.id > $6)
         ORDER BY f.id LIMIT $7"
    ))
    .bind(selection.tenant_id)
    .bind(selection.prediction_type.as_str())
    .bind(selection.received_by)
    .bind(selection.organization_id)
    .bind(selection.company_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// A chunk's outcome, recorded with its predictions in one transaction.
pub struct ChunkOutcome {
    pub processed: i64,
    pub succeeded: i64,
    /// Filings that could not be scored: (row, code, message, filing id).
    pub errors: Vec<(i64, &'static str, String, Uuid)>,
    pub last_row: i64,
    pub last_filing: Uuid,
}

/// Records a chunk's counts, failures and resume point; `true` when a cancel was asked for.
#[tracing::instrument(name = "db.replays.record", level = "debug", skip_all)]
pub async fn record(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    job_id: Uuid,
    outcome: &ChunkOutcome,
) -> sqlx::Result<bool> {
    for (row, code, message, filing) in &outcome.errors {
        sqlx::query(
            "INSERT INTO bulk_job_errors (tenant_id, job_id, row_number, code, message, raw)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(tenant_id)
        .bind(job_id)
        .bind(row)
        .bind(code)
        .bind(message)
        .bind(json!({ "filing_id": filing }))
        .execute(&mut *conn)
        .await?;
    }
    let cancel: Option<DateTime<Utc>> = sqlx::query_scalar(
        "UPDATE bulk_jobs SET processed_rows = processed_rows + $3, succeeded_rows = succeeded_rows + $4,
                              failed_rows = failed_rows + $5, last_committed_row = $6, resume_after_filing = $7
         WHERE tenant_id = $1 AND id = $2 RETURNING cancel_requested_at",
    )
    .bind(tenant_id)
    .bind(job_id)
    .bind(outcome.processed)
    .bind(outcome.succeeded)
    .bind(outcome.errors.len() as i64)
    .bind(outcome.last_row)
    .bind(outcome.last_filing)
    .fetch_one(conn)
    .await?;
    Ok(cancel.is_some())
}

/// The replayed filings (up to the replay's resume point) with their answer and the replay model's score.
#[tracing::instrument(name = "db.replays.pairs", level = "debug", skip_all)]
pub async fn pairs(
    conn: &mut PgConnection,
    selection: &Selection,
    model: (&str, u32),
    through: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<PairRow>> {
    let Some(through) = through else { return Ok(Vec::new()) };
    sqlx::query_as(&format!(
        "SELECT p.risk_level::text AS level, q.risk_level::text AS challenger_level, p.implied_rating AS rating,
                q.implied_rating AS challenger_rating, p.probability, q.probability AS challenger_probability
         FROM filings f
         JOIN companies c ON c.tenant_id = f.tenant_id AND c.id = f.company_id
         JOIN predictions p ON p.tenant_id = f.tenant_id AND p.filing_id = f.id AND NOT p.is_shadow
         JOIN predictions q ON q.tenant_id = f.tenant_id AND q.filing_id = f.id
                           AND q.model_name = $6 AND q.model_version = $7
         WHERE {SELECTED} AND f.id <= $8
         LIMIT $9"
    ))
    .bind(selection.tenant_id)
    .bind(selection.prediction_type.as_str())
    .bind(selection.received_by)
    .bind(selection.organization_id)
    .bind(selection.company_id)
    .bind(model.0)
    .bind(i32::try_from(model.1).unwrap_or(i32::MAX))
    .bind(through)
    .bind(limit)
    .fetch_all(conn)
    .await
}
