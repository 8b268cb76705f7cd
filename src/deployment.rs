//! Model deployments without a restart (hot swap): a super_admin uploads a model version, it is verified
//! and stored in PostgreSQL, and every instance loads it; activating a version makes it answer the tenants
//! that chose no model of their own, on every instance. Rollback is the activation of the version before.
//!
//! An instance applies the deployed state in one order — load the versions it lacks into a new registry, put
//! that registry in place, then switch the default models, then drop the tenants' policies — so a policy
//! never names a model the instance has not loaded: no filing is refused or lost during a swap, a batch in
//! progress finishes on the registry it started with, and each prediction names the version that scored it.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use anyhow::Context;
use pdscore_actors::{DefaultModels, Pipeline, model_pool::SharedRegistry};
use pdscore_models::{
    PredictionType,
    registry::{ArtifactFile, LoadedModel, ManifestEntry, ModelId, RegistryError, sha256_hex},
};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    db::{
        audit::{self, Actor, AuditEntry},
        deployments::{self, Activation, NewUpload, StoredFile, Upload},
    },
    fleet::{Change, Changes},
};

/// The largest upload (all files together).
pub const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

/// How often an instance checks the deployed state without being told.
const SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// Where error messages say an uploaded file is.
const UPLOAD_DIR: &str = "upload";

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the manifest entry is not valid: {0}")]
    Entry(String),
    #[error("file {0} is listed in the entry but was not sent")]
    MissingFile(String),
    #[error("file {0} was sent but the entry does not list it")]
    UnexpectedFile(String),
    /// A checksum, the parameters, the feature set, the term structure or the self-test.
    #[error(transparent)]
    Verification(#[from] RegistryError),
    #[error("{0} is deployed already; upload a new version")]
    Exists(ModelId),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("the model could not be verified: {0}")]
    Failed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    #[error("{0} is not a deployed model")]
    Unknown(ModelId),
    #[error("{0} cannot answer filings: {1}")]
    NotAnswering(ModelId, String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Who acted, for the audit trail.
pub struct ActedBy {
    pub user_id: Uuid,
    pub request_id: Option<String>,
}

/// This instance's end of the deployed models.
#[derive(Clone)]
pub struct Deployment {
    db: PgPool,
    registry: Arc<SharedRegistry>,
    default_models: Arc<DefaultModels>,
    /// The configured defaults (what answers before any activation).
    configured: Arc<DefaultModels>,
    pipeline: Pipeline,
    changes: Changes,
    /// One synchronization at a time.
    syncing: Arc<Mutex<()>>,
}

impl Deployment {
    /// Follows the fleet's model changes (a synchronization each).
    pub fn new(
        db: PgPool,
        pipeline: Pipeline,
        default_models: Arc<DefaultModels>,
        configured: DefaultModels,
        changes: Changes,
    ) -> Self {
        let deployment = Self {
            db,
            registry: pipeline.registry().clone(),
            default_models,
            configured: Arc::new(configured),
            pipeline,
            changes: changes.clone(),
            syncing: Arc::default(),
        };
        let follower = deployment.clone();
        changes.on_change(move |change| {
            if matches!(change, Change::Models | Change::Everything) {
                let follower = follower.clone();
                tokio::spawn(async move {
                    if let Err(error) = follower.sync().await {
                        tracing::error!(error = %format!("{error:#}"), "cannot load the deployed models; retrying on the next change");
                    }
                });
            }
        });
        deployment
    }

    /// Brings this instance to the deployed state: loads the uploaded versions it lacks, then applies the
    /// current activations (an activated version it cannot load leaves the default as it was, logged).
    pub async fn sync(&self) -> anyhow::Result<()> {
        let _one_at_a_time = self.syncing.lock().await;
        let mut conn = self.db.acquire().await?;
        let current = self.registry.current();
        let mut loaded = Vec::new();
        for upload in deployments::uploads(&mut conn).await? {
            let id: ModelId = upload.id.parse().context("a stored model id")?;
            if current.get(&id).is_some() {
                continue;
            }
            let Some((entry, files)) = deployments::upload_parts(&mut conn, &upload.id).await? else {
                continue;
            };
            let entry: ManifestEntry = serde_json::from_value(entry).context("a stored manifest entry")?;
            let model = tokio::task::spawn_blocking(move || build(entry, files)).await??;
            tracing::info!(model = %id, "deployed model loaded");
            loaded.push(Arc::new(model));
        }
        let mut changed = !loaded.is_empty();
        if changed {
            self.registry.replace(current.with(loaded)?);
        }
        let registry = self.registry.current();
        let activations = deployments::current_activations(&mut conn).await?;
        for prediction_type in PredictionType::ALL {
            let activated = activations
                .iter()
                .find(|a| a.prediction_type == prediction_type.as_str())
                .and_then(|a| a.model.parse::<ModelId>().ok());
            let model = match activated {
                Some(model) if registry.get(&model).is_some() => model,
                Some(model) => {
                    tracing::error!(%model, "the activated model is not loaded here; the default stays");
                    continue;
                }
                None => self.configured.get(prediction_type),
            };
            if self.default_models.get(prediction_type) != model {
                self.default_models.set(prediction_type, model);
                changed = true;
            }
        }
        if changed {
            self.pipeline.invalidate_policy(None);
        }
        Ok(())
    }

    /// Synchronizes every `SYNC_INTERVAL` until `shutdown`: a change this instance missed (it started while
    /// PostgreSQL was down, or a message was lost) is applied within the interval.
    pub async fn keep_synced(self, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(SYNC_INTERVAL);
        interval.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = interval.tick() => {}
            }
            if let Err(error) = self.sync().await {
                tracing::warn!(error = %format!("{error:#}"), "cannot check the deployed models");
            }
        }
    }

    /// Verifies `entry` with `files` (path → bytes), stores it, and deploys it on every instance (this one
    /// before returning).
    pub async fn upload(
        &self,
        entry: Value,
        mut files: BTreeMap<String, Vec<u8>>,
        by: &ActedBy,
    ) -> Result<Upload, UploadError> {
        let entry: ManifestEntry = serde_json::from_value(entry).map_err(|e| UploadError::Entry(e.to_string()))?;
        let listed: Vec<&ArtifactFile> = entry.files.iter().chain([&entry.card]).collect();
        let mut stored = Vec::new();
        for file in &listed {
            let content = files
                .remove(&file.path)
                .ok_or_else(|| UploadError::MissingFile(file.path.clone()))?;
            stored.push(StoredFile {
                path: file.path.clone(),
                sha256: file.sha256.to_ascii_lowercase(),
                content,
            });
        }
        if let Some(extra) = files.into_keys().next() {
            return Err(UploadError::UnexpectedFile(extra));
        }
        let id = entry.id.clone();
        if self.registry.current().get(&id).is_some() {
            return Err(UploadError::Exists(id));
        }
        let entry_json = serde_json::to_value(&entry).map_err(|e| UploadError::Failed(e.to_string()))?;
        let (model, stored) = tokio::task::spawn_blocking(move || {
            let model = build(entry, stored.clone())?;
            Ok::<_, UploadError>((model, stored))
        })
        .await
        .map_err(|e| UploadError::Failed(e.to_string()))??;
        self.registry.current().check_partners(&model.entry)?;
        let reference_rows = model.self_test()?;
        // A training profile, when the card has one, must fit the model (drift is measured against it).
        pdscore_models::drift::Profile::of_model(&model).map_err(|message| RegistryError::Inconsistent {
            id: model.entry.id.clone(),
            message,
        })?;
        let mut tx = self.db.begin().await?;
        let new = NewUpload {
            id: &id.to_string(),
            prediction_type: model.entry.prediction_type.as_str(),
            entry: &entry_json,
            reference_rows: i32::try_from(reference_rows).unwrap_or(i32::MAX),
            uploaded_by: Some(by.user_id),
            files: &stored,
        };
        if !deployments::insert_upload(&mut tx, &new).await? {
            return Err(UploadError::Exists(id));
        }
        audit::record(
            &mut tx,
            AuditEntry {
                tenant_id: None,
                organization_id: None,
                actor: Actor::User(by.user_id),
                action: "model.upload",
                target_type: "model",
                target_id: Some(id.to_string()),
                before: None,
                after: Some(json!({ "entry": entry_json, "reference_rows": reference_rows })),
                request_id: by.request_id.clone(),
            },
        )
        .await?;
        tx.commit().await?;
        self.deploy().await;
        let mut conn = self.db.acquire().await?;
        let upload = deployments::uploads(&mut conn)
            .await?
            .into_iter()
            .find(|u| u.id == id.to_string())
            .ok_or_else(|| UploadError::Failed("the stored upload is gone".into()))?;
        Ok(upload)
    }

    /// Makes `model` answer its prediction type for tenants that chose none, on every instance (this one
    /// before returning).
    pub async fn activate(&self, model: &ModelId, by: &ActedBy) -> Result<Activation, ActivateError> {
        let loaded = self
            .registry
            .current()
            .get(model)
            .ok_or_else(|| ActivateError::Unknown(model.clone()))?;
        if loaded.entry.horizon_years != 1 {
            return Err(ActivateError::NotAnswering(
                model.clone(),
                format!(
                    "it gives a {}-year PD; filings are answered with a one-year PD",
                    loaded.entry.horizon_years
                ),
            ));
        }
        let prediction_type = loaded.entry.prediction_type;
        let mut tx = self.db.begin().await?;
        let activation = deployments::activate(
            &mut tx,
            prediction_type.as_str(),
            &model.to_string(),
            &self.configured.get(prediction_type).to_string(),
            Some(by.user_id),
        )
        .await?;
        audit::record(
            &mut tx,
            AuditEntry {
                tenant_id: None,
                organization_id: None,
                actor: Actor::User(by.user_id),
                action: "model.activate",
                target_type: "model",
                target_id: Some(model.to_string()),
                before: activation.previous.as_ref().map(|p| json!({ "model": p })),
                after: Some(json!({ "model": activation.model, "prediction_type": activation.prediction_type })),
                request_id: by.request_id.clone(),
            },
        )
        .await?;
        tx.commit().await?;
        self.deploy().await;
        Ok(activation)
    }

    /// Applies the deployed state here, then tells the other instances.
    async fn deploy(&self) {
        if let Err(error) = self.sync().await {
            tracing::error!(error = %format!("{error:#}"), "cannot apply the deployed models here");
        }
        self.changes.announce(Change::Models).await;
    }
}

/// A model from its stored files (checksums verified).
fn build(entry: ManifestEntry, files: Vec<StoredFile>) -> Result<LoadedModel, RegistryError> {
    let dir = Path::new(UPLOAD_DIR);
    let read = |file: &ArtifactFile| {
        let stored = files
            .iter()
            .find(|f| f.path == file.path)
            .ok_or_else(|| RegistryError::Read {
                path: dir.join(&file.path),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not uploaded"),
            })?;
        let actual = sha256_hex(&stored.content);
        if !actual.eq_ignore_ascii_case(&file.sha256) {
            return Err(RegistryError::Checksum {
                path: dir.join(&file.path),
                expected: file.sha256.clone(),
                actual,
            });
        }
        Ok(stored.content.clone())
    };
    LoadedModel::from_files(entry, dir, read, &pdscore_models::cpu())
}
