//! Replays, run by the bulk runner: the job's selection of stored filings (received before it was asked for),
//! page by page in id order, scored with the replay's model and stored beside their answers; each page's
//! predictions and progress are recorded in one transaction, so a replay resumes after its last recorded
//! filing (on any instance) and writes nothing twice.

use std::{sync::Arc, time::Duration};

use pdscore_actors::{
    Filing, FilingContent, FilingSource, Pipeline, PipelineError, PredictionType, Scores, StoreError, Terms,
    bulk_job::JobEnd,
};
use pdscore_models::{
    registry::ModelId,
    statement::{ReportingPeriod, Statement},
};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::db::{
    bulk_jobs::{self, Runnable},
    predictions,
    replays::{self, ChunkOutcome, Selection, StoredFiling},
};

/// The longest wait between tries while a dependency is down.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What a replay job reads and with which model.
pub fn selection(job: &Runnable) -> Option<(Selection, ModelId)> {
    let model = job.options.get("model")?.as_str()?.parse().ok()?;
    let company_id = job
        .options
        .get("company_id")
        .and_then(Value::as_str)
        .and_then(|id| id.parse().ok());
    let selection = Selection {
        tenant_id: job.tenant_id,
        organization_id: job.organization_id,
        company_id,
        prediction_type: job.prediction_type.parse::<PredictionType>().ok()?,
        received_by: job.created_at,
    };
    Some((selection, model))
}

/// Runs a claimed replay to its end.
pub async fn run(db: &PgPool, pipeline: &Pipeline, job: &Runnable, chunk_rows: usize) -> JobEnd {
    match replay(db, pipeline, job, chunk_rows).await {
        Ok(end) | Err(end) => end,
    }
}

async fn replay(db: &PgPool, pipeline: &Pipeline, job: &Runnable, chunk_rows: usize) -> Result<JobEnd, JobEnd> {
    let Some((selection, model)) = selection(job) else {
        return Ok(JobEnd::Failed("the replay names no model or type".into()));
    };
    let total = match job.total_rows {
        Some(total) => total,
        None => retry(|| replays::count(db, &selection)).await?,
    };
    retry(|| bulk_jobs::start(db, job.tenant_id, job.id, total)).await?;
    let (mut after, mut row) = (job.resume_after_filing, job.last_committed_row);
    loop {
        let page = retry(|| replays::page(db, &selection, after, chunk_rows.max(1) as i64)).await?;
        let Some(last) = page.last() else {
            return Ok(JobEnd::Completed);
        };
        let last_filing = last.id;
        let mut outcome = ChunkOutcome {
            processed: page.len() as i64,
            succeeded: 0,
            errors: Vec::new(),
            last_row: row + page.len() as i64,
            last_filing,
        };
        let mut filings = Vec::with_capacity(page.len());
        let mut ids = Vec::with_capacity(page.len());
        for (i, stored) in page.into_iter().enumerate() {
            let (id, this_row) = (stored.id, row + 1 + i as i64);
            match filing(job, stored, &model) {
                Some(filing) => {
                    filings.push(filing);
                    ids.push((this_row, id));
                }
                None => outcome.errors.push((
                    this_row,
                    "UNREADABLE_FILING",
                    "the stored filing cannot be read as a filing".into(),
                    id,
                )),
            }
        }
        let scored = loop {
            match pipeline.score_only(job.tenant_id, filings.clone()).await {
                Ok(scored) => break scored,
                Err(PipelineError::Unavailable(reason)) => {
                    tracing::warn!(job_id = %job.id, %reason, "replay waiting for the pipeline");
                    tokio::time::sleep(MAX_BACKOFF / 5).await;
                }
                Err(e) => return Ok(JobEnd::Failed(e.to_string())),
            }
        };
        let mut succeeded: Vec<(Uuid, Scores)> = Vec::new();
        for ((this_row, id), result) in ids.into_iter().zip(scored) {
            match result {
                Ok(scores) => succeeded.push((id, scores)),
                Err(rejected) => outcome
                    .errors
                    .push((this_row, rejected.code.as_str(), rejected.message, id)),
            }
        }
        outcome.errors.sort_by_key(|e| e.0);
        outcome.succeeded = succeeded.len() as i64;
        let succeeded = Arc::new(succeeded);
        let cancelled = retry(|| {
            let (succeeded, outcome) = (succeeded.clone(), &outcome);
            async move {
                let mut tx = db.begin().await?;
                predictions::insert_replayed(&mut tx, &succeeded).await?;
                let cancelled = replays::record(&mut tx, job.tenant_id, job.id, outcome).await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(cancelled)
            }
        })
        .await?;
        if cancelled {
            return Ok(JobEnd::Cancelled);
        }
        (after, row) = (Some(last_filing), outcome.last_row);
    }
}

/// A stored filing as the replay scores it: with the replay's model named.
fn filing(job: &Runnable, stored: StoredFiling, model: &ModelId) -> Option<Filing> {
    let statement: Option<Statement> = match stored.statement {
        Some(value) => Some(serde_json::from_value(value).ok()?),
        None => None,
    };
    let prediction_type = job.prediction_type.parse::<PredictionType>().ok()?;
    Some(Filing {
        tenant_id: job.tenant_id,
        organization_id: stored.organization_id,
        company_id: stored.company_id,
        idempotency_key: format!("replay:{}:{}", job.id, stored.id),
        source: FilingSource::Bulk,
        prediction_type,
        content: FilingContent {
            period: ReportingPeriod {
                year: u16::try_from(stored.period_year).ok()?,
                quarter: stored.period_quarter.and_then(|q| u8::try_from(q).ok()),
            },
            statement,
            ratios: stored.ratios.map(|r| r.0),
            model: Some(model.clone()),
        },
        terms: Terms::Product,
        raw: Value::Null,
        bulk: None,
        received_at: std::time::Instant::now(),
        trailing: None,
        new_company: None,
    })
}

/// Runs `attempt` until it succeeds, waiting longer after each failure (up to [`MAX_BACKOFF`]): the database
/// being down pauses a replay, never fails it. What the database refuses (bad data, a limit) ends the replay.
async fn retry<T, F, Fut>(mut attempt: F) -> Result<T, JobEnd>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut wait = Duration::from_millis(200);
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) => match crate::db::store_error("replay", error) {
                StoreError::Refused(reason) => return Err(JobEnd::Failed(reason)),
                StoreError::Unavailable(reason) => {
                    tracing::warn!(%reason, "replay waiting for the database");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_BACKOFF);
                }
            },
        }
    }
}
