//! Bulk scoring jobs: uploaded spreadsheets kept in the JetStream Object Store until their job ends
//! ([`store`]), and the runner that claims unfinished jobs (new, or interrupted by a crash or restart — on any
//! instance) and runs each as a [`BulkJob`] actor.
//!
//! One instance runs a job at a time: the runner holds a PostgreSQL advisory lock on the job for as long as
//! it runs it, on a connection of its own; if the instance dies, the connection closes and the lock with it,
//! so another instance (or the restarted one) resumes the job at once from its last committed row, reading
//! the file from the store. On the same connection it holds one of the tenant's slots
//! (`bulk.max_running_jobs_per_tenant` for the fleet), so that one tenant's jobs never take every runner.

pub mod file;
pub mod replay;
pub mod store;
pub mod upload;

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix::{Actor, Addr};
use futures_util::{FutureExt, future::BoxFuture};
use pdscore_actors::{
    Pipeline, PredictionType, StoreError, Terms,
    bulk_job::{BulkConfig, BulkJob, BulkStore, Cancel, CompanyRow, JobEnd, JobSpec, Progress},
};
use sqlx::PgPool;
use tokio::{sync::Notify, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    configuration::{BulkSettings, Settings},
    db::bulk_jobs::{self, PgBulkStore, Runnable},
    fleet::{Change, Changes},
    messaging::Messaging,
};
use file::{FileFormat, FileRows, XlsxLimits};
use store::{FetchError, UploadStore};

/// Where uploads arrive and what they may weigh.
#[derive(Debug, Clone)]
pub struct Storage {
    /// Scratch space (uploads arriving, files of running jobs).
    pub dir: PathBuf,
    pub max_upload_bytes: u64,
    /// What the tenant's unfinished jobs' files may weigh together.
    pub max_stored_bytes_per_tenant: u64,
    pub xlsx: XlsxLimits,
}

impl Storage {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            dir: settings.storage.dir.clone(),
            max_upload_bytes: settings.storage.max_upload_bytes,
            max_stored_bytes_per_tenant: settings.bulk.max_stored_bytes_per_tenant,
            xlsx: XlsxLimits {
                max_uncompressed_bytes: settings.bulk.max_xlsx_uncompressed_bytes,
                max_ratio: settings.bulk.max_xlsx_compression_ratio,
            },
        }
    }

    /// A job's file in the upload store (what the job row records as its `storage_path`).
    pub fn object_name(tenant_id: Uuid, job_id: Uuid, format: FileFormat) -> String {
        format!("{tenant_id}/{job_id}.{}", format.as_str())
    }
}

/// How long an object no unfinished job names is kept (seen so at two sweeps this far apart).
const ORPHAN_AGE: Duration = Duration::from_secs(600);

/// Objects of the store seen without an unfinished job, and when first.
#[derive(Default)]
struct Orphans {
    seen: HashMap<String, std::time::Instant>,
    last: Option<std::time::Instant>,
}

impl Orphans {
    fn due(&self) -> bool {
        self.last.is_none_or(|last| last.elapsed() >= ORPHAN_AGE / 2)
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
    /// Where the companies a job creates are announced.
    changes: Changes,
    storage: Storage,
    uploads: UploadStore,
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
        messaging: &Messaging,
        changes: Changes,
        shutdown: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let runner = Self {
            inner: Arc::new(Inner {
                db,
                pipeline,
                changes,
                storage: Storage::from_settings(settings),
                uploads: UploadStore::new(messaging, &settings.storage.dir),
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

    pub fn uploads(&self) -> &UploadStore {
        &self.inner.uploads
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
        let mut orphans = Orphans::default();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.inner.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
            if orphans.due() {
                self.sweep(&mut orphans).await;
            }
            let free = self.inner.settings.max_running_jobs.saturating_sub(self.lock().len());
            if free == 0 {
                continue;
            }
            let per_tenant = self.inner.settings.max_running_jobs_per_tenant as i64;
            let jobs = match bulk_jobs::unfinished(&self.inner.db, per_tenant, 100).await {
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

    /// Deletes the store's objects that no unfinished job names, once they have been seen so twice
    /// [`ORPHAN_AGE`] apart (an upload is put before its job is recorded): what a crash between the two, or a
    /// failed delete, left behind.
    async fn sweep(&self, orphans: &mut Orphans) {
        let names = match self.inner.uploads.names().await {
            Ok(names) => names,
            Err(error) => return tracing::debug!(%error, "cannot list the upload store"),
        };
        let named: Vec<(Option<Uuid>, String)> = names.into_iter().map(|n| (store::job_of(&n), n)).collect();
        let ids: Vec<Uuid> = named.iter().filter_map(|(job, _)| *job).collect();
        let live: std::collections::HashSet<Uuid> = match bulk_jobs::unfinished_among(&self.inner.db, &ids).await {
            Ok(live) => live.into_iter().collect(),
            Err(error) => return tracing::debug!(%error, "cannot check the uploads' jobs"),
        };
        let now = std::time::Instant::now();
        let mut seen = HashMap::new();
        for (job, name) in named {
            if job.is_some_and(|id| live.contains(&id)) {
                continue;
            }
            let first = orphans.seen.get(&name).copied().unwrap_or(now);
            if now.duration_since(first) >= ORPHAN_AGE {
                tracing::info!(name, "deleting an upload no unfinished job names");
                self.inner.uploads.delete(&name).await;
            } else {
                seen.insert(name, first);
            }
        }
        orphans.seen = seen;
        orphans.last = Some(now);
    }

    /// Takes a job if no other instance has it and starts it; `false` if it is taken or already over.
    async fn claim(&self, job: Runnable) -> Result<bool, sqlx::Error> {
        // A connection of its own, closed (not returned to the pool) when the job ends: the lock goes with it.
        let mut conn = self.inner.db.acquire().await?.detach();
        if !bulk_jobs::try_lock(&mut conn, job.id).await? {
            return Ok(false);
        }
        // The tenant runs as many jobs as it may already (here or elsewhere): this one waits its turn.
        let slots = self.inner.settings.max_running_jobs_per_tenant;
        if !bulk_jobs::try_take_tenant_slot(&mut conn, job.tenant_id, slots).await? {
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
        let uploads = &self.inner.uploads;
        let object = job.storage_path.clone();
        let finish = |end: JobEnd| {
            let object = object.clone();
            async move {
                if let Err(e) = bulk_jobs::finish(db, job.tenant_id, job.id, &end).await {
                    tracing::error!(error = %e, job_id = %job.id, "cannot record the end of a bulk job");
                    return;
                }
                tracing::info!(job_id = %job.id, ?end, "bulk job ended");
                if let Some(object) = &object {
                    uploads.delete(object).await;
                }
            }
        };
        if job.cancel_requested_at.is_some() {
            return finish(JobEnd::Cancelled).await;
        }
        if job.kind == "replay" {
            // Interrupted (the instance stopping), it stays `processing` and is resumed after its last
            // recorded filing.
            let end = replay::run(db, &self.inner.pipeline, &job, self.inner.settings.chunk_rows).await;
            return finish(end).await;
        }
        let (Some(object), Ok(prediction_type), Some(format), Some(organization_id)) = (
            object.clone(),
            job.prediction_type.parse::<PredictionType>(),
            job.file_format.as_deref().and_then(FileFormat::parse),
            job.organization_id,
        ) else {
            return finish(JobEnd::Failed("the job's file is gone".into())).await;
        };
        // Removed from this instance's disk when `staged` is dropped, however the job ends here.
        let staged = match uploads.fetch(&object).await {
            Ok(staged) => staged,
            Err(FetchError::Missing) => return finish(JobEnd::Failed("the job's file is gone".into())).await,
            Err(e @ FetchError::Damaged(_)) => return finish(JobEnd::Failed(e.to_string())).await,
            Err(e @ FetchError::Unavailable(_)) => {
                tracing::warn!(error = %e, job_id = %job.id, "cannot read a bulk job's file; it will be tried again");
                return;
            }
        };
        let limits = self.inner.storage.xlsx;
        let total = job.total_rows;
        let path = staged.path().to_owned();
        let opened = tokio::task::spawn_blocking(move || {
            let total = match total {
                Some(total) => total,
                None => FileRows::open(&path, format, prediction_type, limits)?
                    .count()
                    .map_err(|e| file::FileError::new("UNREADABLE_FILE", e.0))? as i64,
            };
            FileRows::open(&path, format, prediction_type, limits).map(|rows| (rows, total))
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
            organization_id,
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
        let store = Arc::new(AnnouncingStore {
            inner: PgBulkStore::new(db.clone(), job.created_by),
            changes: self.inner.changes.clone(),
        });
        let (actor, ended) = BulkJob::new(spec, config, Box::new(rows), store, self.inner.pipeline.clone());
        self.lock().insert(job.id, Some(actor.start()));
        match ended.await {
            Ok(end) => finish(end).await,
            // The instance is stopping: the job stays `processing` and resumes after the restart (here or on
            // another instance, from the store).
            Err(_) => tracing::info!(job_id = %job.id, "bulk job interrupted"),
        }
    }
}

/// A job's store, with the companies it creates announced to the fleet: a symbol some instance looked up before
/// the job created it (and kept as unknown) is found at once, here and on every instance.
struct AnnouncingStore {
    inner: PgBulkStore,
    changes: Changes,
}

/// Companies created at once beyond which the tenant's every kept lookup is dropped, not one symbol's at a time.
const ANNOUNCED_ONE_BY_ONE: usize = 16;

impl BulkStore for AnnouncingStore {
    fn companies(
        &self,
        job: &JobSpec,
        companies: Vec<CompanyRow>,
    ) -> BoxFuture<'static, Result<HashMap<String, Uuid>, StoreError>> {
        let resolving = self.inner.resolve(job, companies);
        let (changes, tenant_id, organization_id) = (self.changes.clone(), job.tenant_id, job.organization_id);
        async move {
            let resolved = resolving.await?;
            if resolved.created.len() > ANNOUNCED_ONE_BY_ONE {
                changes.announce(Change::Companies { tenant_id }).await;
            } else {
                for symbol in resolved.created {
                    changes
                        .announce(Change::CompanyAdded {
                            tenant_id,
                            organization_id,
                            symbol,
                        })
                        .await;
                }
            }
            Ok(resolved.ids)
        }
        .boxed()
    }

    fn progress(&self, job: &JobSpec, progress: Progress) -> BoxFuture<'static, Result<bool, StoreError>> {
        self.inner.progress(job, progress)
    }
}
