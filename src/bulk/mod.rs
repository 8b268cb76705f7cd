//! Bulk scoring jobs: uploaded spreadsheets kept in the file storage until their job ends, and the runner
//! that claims unfinished jobs (new, or interrupted by a crash or restart — on any instance) and runs each
//! as a [`BulkJob`] actor.
//!
//! One instance runs a job at a time: the runner holds a PostgreSQL advisory lock on the job for as long as
//! it runs it, on a connection of its own; if the instance dies, the connection closes and the lock with it,
//! so another instance (or the restarted one) resumes the job at once from its last committed row.

pub mod file;
pub mod upload;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use actix::{Actor, Addr};
use pdscore_actors::{
    Pipeline, PredictionType, Terms,
    bulk_job::{BulkConfig, BulkJob, Cancel, JobEnd, JobSpec},
};
use sqlx::PgPool;
use tokio::{sync::Notify, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    configuration::{BulkSettings, Settings},
    db::bulk_jobs::{self, PgBulkStore, Runnable},
};
use file::{FileFormat, FileRows, XlsxLimits};

/// Where uploads live and what they may weigh.
#[derive(Debug, Clone)]
pub struct Storage {
    pub dir: PathBuf,
    pub max_upload_bytes: u64,
    pub xlsx: XlsxLimits,
}

impl Storage {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            dir: settings.storage.dir.clone(),
            max_upload_bytes: settings.storage.max_upload_bytes,
            xlsx: XlsxLimits {
                max_uncompressed_bytes: settings.bulk.max_xlsx_uncompressed_bytes,
                max_ratio: settings.bulk.max_xlsx_compression_ratio,
            },
        }
    }

    /// A job's file, relative to the storage directory (what the job row records).
    pub fn relative_path(tenant_id: Uuid, job_id: Uuid, format: FileFormat) -> String {
        format!("{tenant_id}/{job_id}.{}", format.as_str())
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    /// Removes a file; one already gone is fine.
    pub fn remove(path: &Path) {
        if let Err(e) = std::fs::remove_file(path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, path = %path.display(), "cannot remove an upload");
        }
    }
}

/// Runs bulk jobs; cheap to clone.
#[derive(Clone)]
pub struct BulkRunner {
    inner: Arc<Inner>,
}

struct Inner {
    db: PgPool,
    pipeline: Pipeline,
    storage: Storage,
    settings: BulkSettings,
    /// Jobs claimed by this instance, with their actor once started (a job counts against
    /// `max_running_jobs` from its claim, while its rows are counted).
    running: Mutex<HashMap<Uuid, Option<Addr<BulkJob>>>>,
    /// Rung when a job is submitted or one ends, so the runner looks for work at once.
    wake: Notify,
}

impl BulkRunner {
    /// Starts the runner on an actix arbiter of its own (the jobs' actors live there); it stops on
    /// `shutdown`, leaving running jobs to be resumed.
    pub fn start(
        settings: &Settings,
        db: PgPool,
        pipeline: Pipeline,
        shutdown: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let runner = Self {
            inner: Arc::new(Inner {
                db,
                pipeline,
                storage: Storage::from_settings(settings),
                settings: settings.bulk.clone(),
                running: Mutex::default(),
                wake: Notify::new(),
            }),
        };
        let task = crate::pipeline::on_own_arbiter(runner.clone().run(shutdown));
        (runner, task)
    }

    pub fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// A job was submitted: look for work now.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Stops a job if it runs here (the request is also in its row, for any other instance).
    pub fn cancel(&self, job_id: Uuid) {
        if let Some(Some(job)) = self.lock().get(&job_id) {
            job.do_send(Cancel);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Option<Addr<BulkJob>>>> {
        self.inner.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn run(self, shutdown: CancellationToken) {
        let poll = Duration::from_millis(self.inner.settings.poll_interval_ms.max(50));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
            let free = self.inner.settings.max_running_jobs.saturating_sub(self.lock().len());
            if free == 0 {
                continue;
            }
            let jobs = match bulk_jobs::unfinished(&self.inner.db, 100).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot look for bulk jobs");
                    continue;
                }
            };
            let mut started = 0;
            for job in jobs {
                if started == free {
                    break;
                }
                if self.lock().contains_key(&job.id) {
                    continue;
                }
                match self.claim(job).await {
                    Ok(true) => started += 1,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot claim a bulk job"),
                }
            }
        }
        // Running jobs stop with the arbiter; their rows stay `processing` and are resumed after restart.
        tracing::info!(running = self.lock().len(), "bulk runner stopped");
    }

    /// Takes a job if no other instance has it and starts it; `false` if it is taken or already over.
    async fn claim(&self, job: Runnable) -> Result<bool, sqlx::Error> {
        // A connection of its own, closed (not returned to the pool) when the job ends: the lock goes with it.
        let mut conn = self.inner.db.acquire().await?.detach();
        if !bulk_jobs::try_lock(&mut conn, job.id).await? {
            return Ok(false);
        }
        // Finished meanwhile by another instance: dropping the connection releases the lock.
        let Some(job) = bulk_jobs::runnable(&mut conn, job.tenant_id, job.id).await? else {
            return Ok(false);
        };
        self.lock().insert(job.id, None);
        let this = self.clone();
        actix::spawn(async move {
            let id = job.id;
            this.execute(job).await;
            this.lock().remove(&id);
            drop(conn);
            this.wake();
        });
        Ok(true)
    }

    /// Runs a claimed job to its end (or until the instance stops).
    async fn execute(&self, job: Runnable) {
        let db = &self.inner.db;
        let path = job.storage_path.as_deref().map(|p| self.inner.storage.path(p));
        let finish = |end: JobEnd| {
            let path = path.clone();
            async move {
                if let Err(e) = bulk_jobs::finish(db, job.tenant_id, job.id, &end).await {
                    tracing::error!(error = %e, job_id = %job.id, "cannot record the end of a bulk job");
                    return;
                }
                tracing::info!(job_id = %job.id, ?end, "bulk job ended");
                if let Some(path) = &path {
                    Storage::remove(path);
                }
            }
        };
        if job.cancel_requested_at.is_some() {
            return finish(JobEnd::Cancelled).await;
        }
        let (Some(path_buf), Ok(prediction_type), Some(format)) = (
            path.clone(),
            job.prediction_type.parse::<PredictionType>(),
            FileFormat::parse(&job.file_format),
        ) else {
            return finish(JobEnd::Failed("the job's file is gone".into())).await;
        };
        let limits = self.inner.storage.xlsx;
        let total = job.total_rows;
        let opened = tokio::task::spawn_blocking(move || {
            let total = match total {
                Some(total) => total,
                None => FileRows::open(&path_buf, format, prediction_type, limits)?
                    .count()
                    .map_err(|e| file::FileError::new("UNREADABLE_FILE", e.0))? as i64,
            };
            FileRows::open(&path_buf, format, prediction_type, limits).map(|rows| (rows, total))
        })
        .await;
        let (rows, total) = match opened {
            Ok(Ok(opened)) => opened,
            Ok(Err(e)) => {
                return finish(JobEnd::Failed(format!("the file cannot be read: {e}"))).await;
            }
            Err(e) => {
                return finish(JobEnd::Failed(format!("the file reader failed: {e}"))).await;
            }
        };
        if let Err(e) = bulk_jobs::start(db, job.tenant_id, job.id, total).await {
            tracing::warn!(error = %e, job_id = %job.id, "cannot start a bulk job; it will be tried again");
            return;
        }
        let spec = JobSpec {
            job_id: job.id,
            tenant_id: job.tenant_id,
            organization_id: job.organization_id,
            prediction_type,
            model: job
                .options
                .get("model")
                .and_then(|m| m.as_str())
                .and_then(|m| m.parse().ok()),
            terms: match job.options.get("terms").and_then(|t| t.as_str()) {
                Some("accunode") => Terms::Accunode,
                _ => Terms::Product,
            },
            resume_after: job.last_committed_row,
        };
        tracing::info!(job_id = %job.id, total, resume_after = job.last_committed_row, "bulk job running");
        let config = BulkConfig {
            chunk_rows: self.inner.settings.chunk_rows,
            chunks_in_flight: self.inner.settings.chunks_in_flight,
            ..BulkConfig::default()
        };
        let store = Arc::new(PgBulkStore::new(db.clone(), job.created_by));
        let (actor, ended) = BulkJob::new(spec, config, Box::new(rows), store, self.inner.pipeline.clone());
        self.lock().insert(job.id, Some(actor.start()));
        match ended.await {
            Ok(end) => finish(end).await,
            // The instance is stopping: the job stays `processing` and resumes after the restart.
            Err(_) => tracing::info!(job_id = %job.id, "bulk job interrupted"),
        }
    }
}
