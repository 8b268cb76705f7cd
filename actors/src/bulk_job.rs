//! `BulkJob`: runs one uploaded file through the pipeline, chunk by chunk, and records its progress.
//!
//! The file is read row by row from a [`RowSource`] (on a blocking thread) in chunks; each chunk's companies
//! are found or created by symbol, its filings scored and committed as one batch through the tenant's actor
//! ([`Pipeline::score_chunk`]), then its outcome (counts, failed rows with their reasons, the last row) is
//! recorded through the [`BulkStore`] port. Up to `chunks_in_flight` chunks are scored at once; outcomes are
//! recorded in file order, so "the last committed row" is always a prefix of the file.
//!
//! Exactly once: a row's filing has the idempotency key `bulk:<job>:<row>`. After a crash the job resumes
//! after its last recorded row; rows committed but not yet recorded are submitted again and come back as
//! duplicates of themselves (counted once, never scored twice). Rows repeating an earlier row's company and
//! period are failed as duplicates (AccuNode's files may repeat a key), also across a resume: rows up to the
//! resume point are read again for their keys only.

use std::{
    collections::{HashMap, hash_map::DefaultHasher},
    hash::{Hash, Hasher},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use actix::{Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, WrapFuture};
use futures_util::{StreamExt, future::BoxFuture, stream::FuturesOrdered};
use pdscore_models::{PredictionType, registry::ModelId};
use serde_json::Value;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::{
    error::PipelineError,
    error::{RejectCode, Rejected},
    events,
    filing::{Filing, FilingContent, FilingSource, Terms},
    pipeline::Pipeline,
    ports::StoreError,
};

/// A company as a file row names it (validated by the reader).
#[derive(Debug, Clone, PartialEq)]
pub struct CompanyRow {
    /// Normalized (the key companies are found by).
    pub symbol: String,
    pub name: String,
    pub sector: Option<String>,
    pub market_cap: Option<f64>,
}

/// A row that reads as a filing.
#[derive(Debug, Clone)]
pub struct RowFiling {
    pub company: CompanyRow,
    pub content: FilingContent,
}

/// One data row of a file (`row` is 1-based, header excluded).
#[derive(Debug, Clone)]
pub struct BulkRow {
    pub row: i64,
    pub filing: Result<RowFiling, Rejected>,
    /// The row as read (column → cell), kept with the filing and in the error report.
    pub raw: Value,
}

/// The file cannot be read any further.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// The rows of a file, in order. Reading is blocking (files); the job calls it on a blocking thread.
pub trait RowSource: Send + 'static {
    /// The next rows, at most `max`; empty at the end of the file.
    fn next_rows(&mut self, max: usize) -> Result<Vec<BulkRow>, SourceError>;
}

/// A row that failed, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    pub row: i64,
    pub code: RejectCode,
    pub message: String,
    pub raw: Value,
}

/// A chunk's outcome, recorded in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    /// Every row up to this one is committed or failed.
    pub last_row: i64,
    pub succeeded: u64,
    pub failed: u64,
    pub errors: Vec<RowError>,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEnd {
    Completed,
    Cancelled,
    Failed(String),
}

/// The job being run.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub job_id: Uuid,
    pub tenant_id: Uuid,
    pub organization_id: Uuid,
    pub prediction_type: PredictionType,
    /// A model asked for by name; `None`: the default of `terms`.
    pub model: Option<ModelId>,
    pub terms: Terms,
    /// Rows up to this one were recorded by an earlier run.
    pub resume_after: i64,
}

/// What a bulk job needs from the service's database.
pub trait BulkStore: Send + Sync + 'static {
    /// The ids of these companies in the job's organization, created if new; by symbol.
    fn companies(
        &self,
        job: &JobSpec,
        companies: Vec<CompanyRow>,
    ) -> BoxFuture<'static, Result<HashMap<String, Uuid>, StoreError>>;

    /// Records a chunk's outcome (in one transaction); returns whether a cancel has been requested.
    fn progress(&self, job: &JobSpec, progress: Progress) -> BoxFuture<'static, Result<bool, StoreError>>;
}

/// Sizes of a job's run.
#[derive(Debug, Clone)]
pub struct BulkConfig {
    pub chunk_rows: usize,
    pub chunks_in_flight: usize,
    /// Longest wait between retries while a dependency is down.
    pub max_backoff: Duration,
}

impl Default for BulkConfig {
    fn default() -> Self {
        Self {
            chunk_rows: 1000,
            chunks_in_flight: 2,
            max_backoff: Duration::from_secs(10),
        }
    }
}

/// Stop as soon as possible (what is in flight is still recorded).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Cancel;

pub struct BulkJob {
    spec: JobSpec,
    config: BulkConfig,
    source: Option<Box<dyn RowSource>>,
    store: Arc<dyn BulkStore>,
    pipeline: Pipeline,
    cancel: Arc<AtomicBool>,
    ended: Option<oneshot::Sender<JobEnd>>,
}

impl BulkJob {
    /// The receiver gets how the job ended (it stops itself then).
    pub fn new(
        spec: JobSpec,
        config: BulkConfig,
        source: Box<dyn RowSource>,
        store: Arc<dyn BulkStore>,
        pipeline: Pipeline,
    ) -> (Self, oneshot::Receiver<JobEnd>) {
        let (ended, end) = oneshot::channel();
        let job = Self {
            spec,
            config,
            source: Some(source),
            store,
            pipeline,
            cancel: Arc::default(),
            ended: Some(ended),
        };
        (job, end)
    }
}

impl Actor for BulkJob {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(source) = self.source.take() else {
            return ctx.stop();
        };
        let run = Run {
            spec: self.spec.clone(),
            config: self.config.clone(),
            store: self.store.clone(),
            pipeline: self.pipeline.clone(),
            cancel: self.cancel.clone(),
            companies: HashMap::new(),
        };
        ctx.spawn(run.run(source).into_actor(self).map(|end, actor, ctx| {
            if let Some(ended) = actor.ended.take() {
                let _ = ended.send(end);
            }
            ctx.stop();
        }));
    }
}

impl Handler<Cancel> for BulkJob {
    type Result = ();

    fn handle(&mut self, _: Cancel, _: &mut Self::Context) {
        self.cancel.store(true, Ordering::SeqCst);
    }
}

/// Companies remembered by a run at most (then forgotten and asked for again).
const MAX_CACHED_COMPANIES: usize = 200_000;

struct Run {
    spec: JobSpec,
    config: BulkConfig,
    store: Arc<dyn BulkStore>,
    pipeline: Pipeline,
    cancel: Arc<AtomicBool>,
    /// Company ids by symbol, found so far.
    companies: HashMap<String, Uuid>,
}

/// A chunk ready to score: its rows' filings, and the rows that failed already.
struct Chunk {
    last_row: i64,
    filings: Vec<Filing>,
    errors: Vec<RowError>,
}

impl Run {
    async fn run(mut self, source: Box<dyn RowSource>) -> JobEnd {
        let mut source = Some(source);
        // First row of each (company, period) key seen so far, by the key's hash.
        let mut seen: HashMap<u64, i64> = HashMap::new();
        let mut in_flight = FuturesOrdered::new();
        let mut end = JobEnd::Completed;
        loop {
            if self.cancel.load(Ordering::SeqCst) {
                end = JobEnd::Cancelled;
                break;
            }
            let Some(mut reader) = source.take() else { break };
            let max = self.config.chunk_rows;
            let read = tokio::task::spawn_blocking(move || {
                let rows = reader.next_rows(max);
                (reader, rows)
            })
            .await;
            let rows = match read {
                Ok((reader, Ok(rows))) if !rows.is_empty() => {
                    source = Some(reader);
                    rows
                }
                Ok((_, Ok(_))) => break,
                Ok((_, Err(e))) => {
                    end = JobEnd::Failed(format!("the file cannot be read: {e}"));
                    break;
                }
                Err(e) => {
                    end = JobEnd::Failed(format!("the file reader failed: {e}"));
                    break;
                }
            };
            let chunk = match self.prepare(rows, &mut seen).await {
                Ok(chunk) => chunk,
                Err(stop) => {
                    end = stop;
                    break;
                }
            };
            in_flight.push_back(score(
                self.pipeline.clone(),
                self.spec.tenant_id,
                chunk,
                self.config.clone(),
            ));
            while in_flight.len() >= self.config.chunks_in_flight.max(1) {
                let Some(outcome) = in_flight.next().await else { break };
                if let Err(e) = self.record(outcome).await {
                    end = e;
                    break;
                }
            }
            if end != JobEnd::Completed {
                break;
            }
        }
        // What is in flight is committed (or failed) whatever happens next: record it.
        while let Some(outcome) = in_flight.next().await {
            if let Err(e) = self.record(outcome).await
                && end == JobEnd::Completed
            {
                end = e;
            }
        }
        if end == JobEnd::Completed && self.cancel.load(Ordering::SeqCst) {
            end = JobEnd::Cancelled;
        }
        end
    }

    /// Turns rows into filings: parse failures and repeated keys fail here; rows recorded by an earlier run
    /// only mark their keys. `Err` when cancelled while the companies could not be resolved, or when the store
    /// refuses them.
    async fn prepare(&mut self, rows: Vec<BulkRow>, seen: &mut HashMap<u64, i64>) -> Result<Chunk, JobEnd> {
        let last_row = rows.last().map_or(0, |r| r.row);
        let mut errors = Vec::new();
        let mut ready = Vec::new();
        for row in rows {
            let filing = match row.filing {
                Ok(filing) => filing,
                Err(_) if row.row <= self.spec.resume_after => continue,
                Err(rejected) => {
                    errors.push(RowError::rejected(row.row, rejected, row.raw));
                    continue;
                }
            };
            let key = {
                let mut hasher = DefaultHasher::new();
                (
                    &filing.company.symbol,
                    filing.content.period.year,
                    filing.content.period.quarter,
                )
                    .hash(&mut hasher);
                hasher.finish()
            };
            if let Some(first) = seen.get(&key) {
                if row.row > self.spec.resume_after {
                    errors.push(RowError {
                        row: row.row,
                        code: RejectCode::DuplicateRow,
                        message: format!(
                            "{} {} repeats row {first} (same company and period); not scored",
                            filing.company.symbol, filing.content.period
                        ),
                        raw: row.raw,
                    });
                }
                continue;
            }
            seen.insert(key, row.row);
            if row.row > self.spec.resume_after {
                ready.push((row.row, filing, row.raw));
            }
        }

        let missing: HashMap<String, CompanyRow> = ready
            .iter()
            .filter(|(_, f, _)| !self.companies.contains_key(&f.company.symbol))
            .map(|(_, f, _)| (f.company.symbol.clone(), f.company.clone()))
            .collect();
        if !missing.is_empty() {
            if self.companies.len() + missing.len() > MAX_CACHED_COMPANIES {
                self.companies.clear();
            }
            let missing: Vec<CompanyRow> = missing.into_values().collect();
            let found = retry(
                &self.cancel,
                self.config.max_backoff,
                "resolve the file's companies",
                || self.store.companies(&self.spec, missing.clone()),
            )
            .await?;
            self.companies.extend(found);
        }

        let mut filings = Vec::with_capacity(ready.len());
        for (row, filing, raw) in ready {
            let Some(&company_id) = self.companies.get(&filing.company.symbol) else {
                errors.push(RowError {
                    row,
                    code: RejectCode::NotFound,
                    message: format!("company {} could not be created", filing.company.symbol),
                    raw,
                });
                continue;
            };
            let mut content = filing.content;
            content.model = content.model.or_else(|| self.spec.model.clone());
            filings.push(Filing {
                tenant_id: self.spec.tenant_id,
                organization_id: self.spec.organization_id,
                company_id,
                idempotency_key: format!("bulk:{}:{row}", self.spec.job_id),
                source: FilingSource::Bulk,
                prediction_type: self.spec.prediction_type,
                content,
                terms: self.spec.terms,
                raw,
                bulk: Some((self.spec.job_id, row)),
                received_at: std::time::Instant::now(),
                trailing: None,
                new_company: None,
            });
        }
        Ok(Chunk {
            last_row,
            filings,
            errors,
        })
    }

    /// Records a scored chunk. `Err` ends the job.
    async fn record(&mut self, outcome: Result<Progress, JobEnd>) -> Result<(), JobEnd> {
        let progress = outcome?;
        // Recorded even when a cancel is requested: the rows are committed.
        let never = AtomicBool::new(false);
        let cancelled = retry(&never, self.config.max_backoff, "record progress", || {
            self.store.progress(&self.spec, progress.clone())
        })
        .await?;
        events::BulkRowsDone {
            succeeded: progress.succeeded,
            failed: progress.failed,
        }
        .emit();
        if cancelled {
            self.cancel.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// Scores a chunk until every row is committed or failed for a reason of its own.
async fn score(pipeline: Pipeline, tenant_id: Uuid, chunk: Chunk, config: BulkConfig) -> Result<Progress, JobEnd> {
    let mut progress = Progress {
        last_row: chunk.last_row,
        failed: chunk.errors.len() as u64,
        errors: chunk.errors,
        succeeded: 0,
    };
    let mut todo = chunk.filings;
    let mut backoff = Duration::from_millis(200);
    while !todo.is_empty() {
        // Kept: a row refused for a transient reason is submitted again.
        let filings: Vec<Filing> = todo.clone();
        let results = match pipeline.score_chunk(tenant_id, filings).await {
            Ok(results) => results,
            Err(PipelineError::UnknownTenant) => return Err(JobEnd::Failed("the tenant no longer exists".into())),
            Err(PipelineError::TenantInactive) => return Err(JobEnd::Failed("the tenant is deactivated".into())),
            Err(e) => {
                tracing::warn!(error = %e, "bulk chunk not scored; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(config.max_backoff);
                continue;
            }
        };
        let mut again = Vec::new();
        for (filing, result) in todo.into_iter().zip(results) {
            match result {
                Ok(_) => progress.succeeded += 1,
                Err(PipelineError::Rejected(rejected)) => {
                    progress.failed += 1;
                    let row = filing.bulk.map_or(0, |(_, row)| row);
                    progress.errors.push(RowError::rejected(row, rejected, filing.raw));
                }
                Err(_) => again.push(filing),
            }
        }
        if !again.is_empty() {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(config.max_backoff);
        }
        todo = again;
    }
    progress.errors.sort_by_key(|e| e.row);
    Ok(progress)
}

/// Calls `attempt` until it succeeds, backing off while the store is unavailable; `Cancelled` if `cancel` is
/// set meanwhile, `Failed` if the store refuses what it is given (it would refuse it again: the job ends and
/// frees its slot instead of retrying forever).
async fn retry<T>(
    cancel: &AtomicBool,
    max_backoff: Duration,
    what: &str,
    mut attempt: impl FnMut() -> BoxFuture<'static, Result<T, StoreError>>,
) -> Result<T, JobEnd> {
    let mut backoff = Duration::from_millis(200);
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(StoreError::Refused(reason)) => {
                tracing::error!(%reason, "the store refused the bulk job's data; the job fails");
                return Err(JobEnd::Failed(format!("could not {what}: {reason}")));
            }
            Err(e) => {
                tracing::warn!(error = %e, "bulk job could not {what}; retrying");
                if cancel.load(Ordering::SeqCst) {
                    return Err(JobEnd::Cancelled);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    }
}

impl RowError {
    /// A row the reader or the pipeline refused; the message names the field at fault.
    fn rejected(row: i64, rejected: Rejected, raw: Value) -> Self {
        let message = match rejected.field {
            Some(field) if !rejected.message.starts_with(field.as_str()) => format!("{field}: {}", rejected.message),
            _ => rejected.message,
        };
        Self {
            row,
            code: rejected.code,
            message,
            raw,
        }
    }
}
