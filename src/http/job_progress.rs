//! The bulk jobs that live progress streams follow on this instance, each read by one task (see
//! [`JobProgress`]); the streams themselves are in [`super::bulk_jobs`].

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::watch;
use uuid::Uuid;

use super::ApiError;
use crate::db::bulk_jobs::{self, BulkJob};

/// How often a followed job is read.
const PROGRESS_POLL: Duration = Duration::from_millis(250);

/// Bulk jobs followed by live streams on this instance: each is read every 250 ms by one task while at least
/// one stream follows it, and the streams share what it read (the job's progress is in PostgreSQL, written by
/// whichever instance runs it). So 100 browsers on one job cost one query per 250 ms, not 100.
#[derive(Clone, Default)]
pub struct JobProgress(Arc<Mutex<HashMap<Uuid, ProgressFeed>>>);

type ProgressFeed = Arc<watch::Sender<Arc<BulkJob>>>;

impl JobProgress {
    /// The job's state as it changes, starting from `job` (read when the stream opened). The channel closes
    /// when the job is finished or gone.
    pub fn follow(&self, db: &sqlx::PgPool, job: &BulkJob) -> watch::Receiver<Arc<BulkJob>> {
        let mut feeds = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(feed) = feeds.get(&job.id) {
            return feed.subscribe();
        }
        let (feed, receiver) = watch::channel(Arc::new(job.clone()));
        let feed = Arc::new(feed);
        feeds.insert(job.id, feed.clone());
        let (registry, db, tenant_id, job_id) = (self.clone(), db.clone(), job.tenant_id, job.id);
        tokio::spawn(async move {
            let scope = crate::auth::Scope::service(tenant_id);
            loop {
                tokio::time::sleep(PROGRESS_POLL).await;
                let read = match db.acquire().await {
                    Ok(mut conn) => bulk_jobs::find(&mut conn, &scope, job_id).await.map_err(ApiError::from),
                    Err(e) => Err(e.into()),
                };
                // Decided under the lock, so that a stream subscribing meanwhile is either counted or finds no
                // feed (and starts a new one). A failed read is tried again at the next tick; a job gone or
                // finished, or no stream left, ends the feed.
                let mut feeds = registry.0.lock().unwrap_or_else(|e| e.into_inner());
                let over = match read {
                    _ if feed.receiver_count() == 0 => true,
                    Ok(None) => true,
                    Ok(Some(current)) => {
                        let finished = current.is_finished();
                        feed.send_if_modified(|last| {
                            let changed = last.updated_at != current.updated_at || last.status != current.status;
                            if changed {
                                *last = Arc::new(current);
                            }
                            changed
                        });
                        finished
                    }
                    Err(_) => false,
                };
                if over {
                    feeds.remove(&job_id);
                    return;
                }
            }
        });
        receiver
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn every_stream_of_a_job_follows_one_reading_of_it() {
        let db = sqlx::PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").unwrap();
        let now = chrono::Utc::now();
        let job = BulkJob {
            id: Uuid::now_v7(),
            tenant_id: Uuid::now_v7(),
            organization_id: Some(Uuid::now_v7()),
            kind: "upload".into(),
            created_by: None,
            prediction_type: "annual".into(),
            status: "processing".into(),
            file_name: "a.csv".into(),
            file_format: Some("csv".into()),
            file_size: 1,
            options: json!({}),
            total_rows: Some(10),
            processed_rows: 1,
            succeeded_rows: 1,
            failed_rows: 0,
            last_committed_row: 1,
            error_message: None,
            cancel_requested_at: None,
            created_at: now,
            started_at: Some(now),
            finished_at: None,
            updated_at: now,
        };
        let progress = JobProgress::default();
        let followers: Vec<_> = (0..10).map(|_| progress.follow(&db, &job)).collect();
        let feeds = progress.0.lock().unwrap();
        assert_eq!(feeds.len(), 1, "one reader for the job");
        assert_eq!(feeds[&job.id].receiver_count(), followers.len());
    }
}
