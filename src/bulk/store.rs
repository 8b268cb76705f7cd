//! Uploads kept in the JetStream Object Store until their job ends, so that any instance runs or resumes any
//! job: the receiving instance's disk holds a file only while it arrives, and the running instance's while it
//! reads it (XLSX needs random access); neither is state. Files go in and out in chunks (128 KiB), never whole
//! in memory, with the store's SHA-256 digest checked on the way out. Where NATS is clustered, the bucket's
//! replicas (`nats.replicas`) keep an upload through the loss of a server.

use std::path::{Path, PathBuf};

use async_nats::jetstream::{
    self,
    object_store::{self, ObjectStore},
    stream::StorageType,
};
use tokio::sync::OnceCell;

use crate::messaging::Messaging;

/// Why an upload could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Not in the store (deleted, or never put): the job cannot run.
    #[error("the job's file is not in the upload store")]
    Missing,
    /// The store or the local disk failed: the job is tried again later.
    #[error("the upload store is unavailable: {0}")]
    Unavailable(String),
    /// What the store gave back is not what was put (its SHA-256 digest differs): the job cannot run.
    #[error("the job's file is damaged in the upload store ({0})")]
    Damaged(String),
}

/// The uploads' bucket, created on first use.
pub struct UploadStore {
    jetstream: jetstream::Context,
    bucket_name: String,
    replicas: usize,
    /// Where files are read back to while their job runs.
    staging: PathBuf,
    bucket: OnceCell<ObjectStore>,
}

impl UploadStore {
    pub fn new(messaging: &Messaging, scratch: &Path) -> Self {
        Self {
            jetstream: messaging.jetstream.clone(),
            bucket_name: messaging.namespace.uploads_bucket(),
            replicas: messaging.replicas.max(1),
            staging: scratch.join("staging"),
            bucket: OnceCell::new(),
        }
    }

    async fn bucket(&self) -> Result<&ObjectStore, String> {
        self.bucket
            .get_or_try_init(|| async {
                if let Ok(bucket) = self.jetstream.get_object_store(&self.bucket_name).await {
                    return Ok(bucket);
                }
                self.jetstream
                    .create_object_store(object_store::Config {
                        bucket: self.bucket_name.clone(),
                        description: Some("pdscore: bulk uploads until their job ends".into()),
                        storage: StorageType::File,
                        num_replicas: self.replicas,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| format!("cannot open the upload store {}: {e}", self.bucket_name))
            })
            .await
    }

    /// Streams the file at `path` into the store under `name`.
    pub async fn put(&self, name: &str, path: &Path) -> std::io::Result<()> {
        let bucket = self.bucket().await.map_err(std::io::Error::other)?;
        let mut file = tokio::fs::File::open(path).await?;
        bucket
            .put(name, &mut file)
            .await
            .map_err(|e| std::io::Error::other(format!("cannot store the upload: {e}")))?;
        Ok(())
    }

    /// Reads `name` back into the staging directory (removed when the [`Staged`] copy is dropped).
    pub async fn fetch(&self, name: &str) -> Result<Staged, FetchError> {
        let bucket = self.bucket().await.map_err(FetchError::Unavailable)?;
        let mut object = bucket.get(name).await.map_err(|e| match e.kind() {
            object_store::GetErrorKind::NotFound => FetchError::Missing,
            _ => FetchError::Unavailable(e.to_string()),
        })?;
        let local_error = |e: std::io::Error| FetchError::Unavailable(format!("cannot stage the upload: {e}"));
        tokio::fs::create_dir_all(&self.staging).await.map_err(local_error)?;
        let staged = Staged(self.staging.join(staged_name(name)));
        let mut file = tokio::fs::File::create(&staged.0).await.map_err(local_error)?;
        let copied = tokio::io::copy(&mut object, &mut file).await;
        let synced = match copied {
            Ok(_) => file.sync_all().await,
            Err(e) => Err(e),
        };
        match synced {
            Ok(()) => Ok(staged),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(FetchError::Damaged(e.to_string())),
            Err(e) => Err(FetchError::Unavailable(format!("cannot read the upload back: {e}"))),
        }
    }

    /// Deletes `name` from the store (its job ended, or it was never recorded); one already gone is fine.
    pub async fn delete(&self, name: &str) {
        let deleted = match self.bucket().await {
            Ok(bucket) => match bucket.delete(name).await {
                Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
                other => other.map_err(|e| e.to_string()),
            },
            Err(e) => Err(e),
        };
        if let Err(error) = deleted {
            tracing::warn!(%error, name, "cannot delete an upload from the store");
        }
    }

    /// The names of the objects in the store.
    pub async fn names(&self) -> Result<Vec<String>, String> {
        use futures_util::StreamExt;
        let bucket = self.bucket().await?;
        let mut list = bucket.list().await.map_err(|e| e.to_string())?;
        let mut names = Vec::new();
        while let Some(info) = list.next().await {
            let info = info.map_err(|e| e.to_string())?;
            if !info.deleted {
                names.push(info.name);
            }
        }
        Ok(names)
    }
}

/// The job an object belongs to (`<tenant>/<job>.<format>`).
pub fn job_of(name: &str) -> Option<uuid::Uuid> {
    staged_name(name).split_once('.')?.0.parse().ok()
}

/// A file name for the staged copy of object `name` (`<tenant>/<job>.<format>`): its last segment.
fn staged_name(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// A job's file read back from the store, on this instance's disk until dropped (whichever way its job ends:
/// finished, failed, or interrupted to be resumed elsewhere).
pub struct Staged(PathBuf);

impl Staged {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        remove_local(&self.0);
    }
}

/// Removes a local file; one already gone is fine.
pub fn remove_local(path: &Path) {
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, path = %path.display(), "cannot remove a local copy of an upload");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_staged_copy_is_named_after_its_job() {
        let job = uuid::Uuid::new_v4();
        let name = format!("{}/{job}.csv", uuid::Uuid::new_v4());
        assert_eq!(staged_name(&name), format!("{job}.csv"));
        assert_eq!(job_of(&name), Some(job));
        assert_eq!(job_of("elsewhere/notes.txt"), None);
    }
}
