//! Models uploaded at run time and the service-wide activations: what every instance loads and answers with.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

/// An uploaded model version as listed.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Upload {
    pub id: String,
    pub prediction_type: String,
    pub reference_rows: i32,
    pub uploaded_by: Option<Uuid>,
    pub uploaded_at: DateTime<Utc>,
}

/// A file of an upload, as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredFile {
    pub path: String,
    pub sha256: String,
    pub content: Vec<u8>,
}

/// A verified upload to store.
pub struct NewUpload<'a> {
    pub id: &'a str,
    pub prediction_type: &'a str,
    pub entry: &'a Value,
    pub reference_rows: i32,
    pub uploaded_by: Option<Uuid>,
    pub files: &'a [StoredFile],
}

/// Stores a verified version with its files; `false` when that version was uploaded already (nothing written).
#[tracing::instrument(name = "db.deployments.insert_upload", level = "debug", skip_all)]
pub async fn insert_upload(conn: &mut PgConnection, upload: &NewUpload<'_>) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO model_uploads (id, prediction_type, entry, reference_rows, uploaded_by)
         VALUES ($1, $2::prediction_type, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
    )
    .bind(upload.id)
    .bind(upload.prediction_type)
    .bind(Json(upload.entry))
    .bind(upload.reference_rows)
    .bind(upload.uploaded_by)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        return Ok(false);
    }
    for file in upload.files {
        sqlx::query("INSERT INTO model_files (model_id, path, sha256, content) VALUES ($1, $2, $3, $4)")
            .bind(upload.id)
            .bind(&file.path)
            .bind(&file.sha256)
            .bind(&file.content)
            .execute(&mut *conn)
            .await?;
    }
    Ok(true)
}

/// Every uploaded version, oldest first.
#[tracing::instrument(name = "db.deployments.uploads", level = "debug", skip_all)]
pub async fn uploads(conn: &mut PgConnection) -> sqlx::Result<Vec<Upload>> {
    sqlx::query_as(
        "SELECT id, prediction_type::text, reference_rows, uploaded_by, uploaded_at FROM model_uploads
         ORDER BY uploaded_at, id",
    )
    .fetch_all(conn)
    .await
}

/// An upload's manifest entry and files.
#[tracing::instrument(name = "db.deployments.upload_parts", level = "debug", skip_all)]
pub async fn upload_parts(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<(Value, Vec<StoredFile>)>> {
    let Some(entry): Option<Json<Value>> = sqlx::query_scalar("SELECT entry FROM model_uploads WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let files = sqlx::query_as("SELECT path, sha256, content FROM model_files WHERE model_id = $1 ORDER BY path")
        .bind(id)
        .fetch_all(conn)
        .await?;
    Ok(Some((entry.0, files)))
}

/// An activation of a model for a prediction type.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Activation {
    pub id: Uuid,
    pub prediction_type: String,
    pub model: String,
    /// The model answering before (a rollback activates it again).
    pub previous: Option<String>,
    pub activated_by: Option<Uuid>,
    pub activated_at: DateTime<Utc>,
}

const ACTIVATION_COLUMNS: &str = "id, prediction_type::text, model, previous, activated_by, activated_at";

/// The latest activation of each prediction type.
#[tracing::instrument(name = "db.deployments.current_activations", level = "debug", skip_all)]
pub async fn current_activations(conn: &mut PgConnection) -> sqlx::Result<Vec<Activation>> {
    sqlx::query_as(&format!(
        "SELECT DISTINCT ON (prediction_type) {ACTIVATION_COLUMNS} FROM model_activations
         ORDER BY prediction_type, activated_at DESC, id DESC"
    ))
    .fetch_all(conn)
    .await
}

/// Activations, newest first (at most `limit`).
#[tracing::instrument(name = "db.deployments.activations", level = "debug", skip_all)]
pub async fn activations(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<Activation>> {
    sqlx::query_as(&format!(
        "SELECT {ACTIVATION_COLUMNS} FROM model_activations ORDER BY activated_at DESC, id DESC LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Records an activation; activations of one type are serialized (a transaction-scoped advisory lock), so
/// `previous` is the model that was answering.
#[tracing::instrument(name = "db.deployments.activate", level = "debug", skip_all)]
pub async fn activate(
    conn: &mut PgConnection,
    prediction_type: &str,
    model: &str,
    configured: &str,
    activated_by: Option<Uuid>,
) -> sqlx::Result<Activation> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('model_activations'), hashtext($1))")
        .bind(prediction_type)
        .execute(&mut *conn)
        .await?;
    let previous: Option<String> = sqlx::query_scalar(
        "SELECT model FROM model_activations WHERE prediction_type = $1::prediction_type
         ORDER BY activated_at DESC, id DESC LIMIT 1",
    )
    .bind(prediction_type)
    .fetch_optional(&mut *conn)
    .await?;
    sqlx::query_as(&format!(
        "INSERT INTO model_activations (id, prediction_type, model, previous, activated_by)
         VALUES ($1, $2::prediction_type, $3, $4, $5) RETURNING {ACTIVATION_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(prediction_type)
    .bind(model)
    .bind(previous.unwrap_or_else(|| configured.to_owned()))
    .bind(activated_by)
    .fetch_one(conn)
    .await
}
