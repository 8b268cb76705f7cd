//! Drift monitoring's tables: hourly bin counts of each tenant's answering predictions, the PSI snapshots
//! computed from them, and the drift alerts (an outbox: published after commit, again until published).

use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use serde_json::Value;
use sqlx::{PgConnection, PgPool, types::Json};
use uuid::Uuid;

/// A tenant the monitor visits.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MonitoredTenant {
    pub id: Uuid,
    pub slug: String,
    pub base_rate: Option<f64>,
}

pub async fn tenants(db: &PgPool) -> sqlx::Result<Vec<MonitoredTenant>> {
    sqlx::query_as("SELECT id, slug, base_rate FROM tenants ORDER BY id")
        .fetch_all(db)
        .await
}

/// Takes the tenant's drift lock for the transaction; `false` when another instance holds it (it is doing
/// this tenant's pass).
pub async fn try_lock(tx: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended('pdscore.drift:' || $1::text, 0))")
        .bind(tenant_id)
        .fetch_one(tx)
        .await
}

/// A tenant's progress: up to which hour its counts are final, and when its last pass ran.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct Progress {
    pub counted_through: DateTime<Utc>,
    pub passed_at: Option<DateTime<Utc>>,
}

/// The tenant's progress (`None`: never counted).
pub async fn progress(tx: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<Option<Progress>> {
    sqlx::query_as("SELECT counted_through, passed_at FROM drift_progress WHERE tenant_id = $1")
        .bind(tenant_id)
        .fetch_optional(tx)
        .await
}

/// Records a pass at `passed_at` that counted through `counted_through`.
pub async fn set_progress(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    counted_through: DateTime<Utc>,
    passed_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO drift_progress (tenant_id, counted_through, passed_at) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id) DO UPDATE SET counted_through = EXCLUDED.counted_through,
                                                passed_at = EXCLUDED.passed_at",
    )
    .bind(tenant_id)
    .bind(counted_through)
    .bind(passed_at)
    .execute(tx)
    .await?;
    Ok(())
}

/// One answering prediction as the monitor bins it.
#[derive(Debug, sqlx::FromRow)]
pub struct PredictionPoint {
    pub model_name: String,
    pub model_version: i32,
    pub hour: DateTime<Utc>,
    pub probability: f64,
    pub inputs: Json<serde_json::Map<String, Value>>,
}

/// The tenant's answering (not shadow) predictions created from `from` on, streamed: a range of
/// `predictions_org_created` per organization.
pub fn predictions_since<'c>(
    tx: &'c mut PgConnection,
    tenant_id: Uuid,
    from: DateTime<Utc>,
) -> BoxStream<'c, sqlx::Result<PredictionPoint>> {
    sqlx::query_as(
        "SELECT p.model_name, p.model_version, date_trunc('hour', p.created_at) AS hour, p.probability, p.inputs
         FROM organizations o
         JOIN predictions p ON p.tenant_id = o.tenant_id AND p.organization_id = o.id AND p.created_at >= $2
         WHERE o.tenant_id = $1 AND NOT p.is_shadow",
    )
    .bind(tenant_id)
    .bind(from)
    .fetch(tx)
}

/// One model's counts over one hour: `{"pd": [..], "<feature>": [..]}`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct HourCounts {
    pub model_name: String,
    pub model_version: i32,
    pub hour: DateTime<Utc>,
    pub rows: i64,
    pub counts: Json<std::collections::BTreeMap<String, Vec<i64>>>,
}

/// Replaces the tenant's counts from `from` on by `counts`.
pub async fn replace_counts(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    from: DateTime<Utc>,
    counts: &[HourCounts],
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM drift_counts WHERE tenant_id = $1 AND hour >= $2")
        .bind(tenant_id)
        .bind(from)
        .execute(&mut *tx)
        .await?;
    if counts.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO drift_counts (tenant_id, model_name, model_version, hour, rows, counts)
         SELECT $1, * FROM UNNEST($2::text[], $3::int[], $4::timestamptz[], $5::bigint[], $6::jsonb[])",
    )
    .bind(tenant_id)
    .bind(counts.iter().map(|c| c.model_name.clone()).collect::<Vec<_>>())
    .bind(counts.iter().map(|c| c.model_version).collect::<Vec<_>>())
    .bind(counts.iter().map(|c| c.hour).collect::<Vec<_>>())
    .bind(counts.iter().map(|c| c.rows).collect::<Vec<_>>())
    .bind(counts.iter().map(|c| c.counts.clone()).collect::<Vec<_>>())
    .execute(tx)
    .await?;
    Ok(())
}

/// The tenant's counts of every model from `from` on.
pub async fn counts_since(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    from: DateTime<Utc>,
) -> sqlx::Result<Vec<HourCounts>> {
    sqlx::query_as(
        "SELECT model_name, model_version, hour, rows, counts FROM drift_counts
         WHERE tenant_id = $1 AND hour >= $2 ORDER BY model_name, model_version, hour",
    )
    .bind(tenant_id)
    .bind(from)
    .fetch_all(tx)
    .await
}

/// Forgets counts and snapshots older than `before` (beyond every window the monitor reads).
pub async fn prune(tx: &mut PgConnection, tenant_id: Uuid, before: DateTime<Utc>) -> sqlx::Result<()> {
    for table in ["drift_counts", "drift_snapshots"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE tenant_id = $1 AND hour < $2"))
            .bind(tenant_id)
            .bind(before)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// A model's PSIs for a tenant at one pass.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SnapshotRow {
    pub model_name: String,
    pub model_version: i32,
    pub hour: DateTime<Utc>,
    pub computed_at: DateTime<Utc>,
    pub window_hours: i32,
    pub current_rows: i64,
    pub past_rows: i64,
    pub series: Json<Value>,
}

/// Stores a pass's snapshot as its hour's.
pub async fn upsert_snapshot(tx: &mut PgConnection, tenant_id: Uuid, row: &SnapshotRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO drift_snapshots (tenant_id, model_name, model_version, hour, computed_at, window_hours,
                                      current_rows, past_rows, series)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (tenant_id, model_name, model_version, hour) DO UPDATE SET
             computed_at = EXCLUDED.computed_at, window_hours = EXCLUDED.window_hours,
             current_rows = EXCLUDED.current_rows, past_rows = EXCLUDED.past_rows, series = EXCLUDED.series",
    )
    .bind(tenant_id)
    .bind(&row.model_name)
    .bind(row.model_version)
    .bind(row.hour)
    .bind(row.computed_at)
    .bind(row.window_hours)
    .bind(row.current_rows)
    .bind(row.past_rows)
    .bind(&row.series)
    .execute(tx)
    .await?;
    Ok(())
}

/// The tenant's snapshots of a model from `from` on, oldest first.
pub async fn snapshots(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    model: (&str, u32),
    from: DateTime<Utc>,
) -> sqlx::Result<Vec<SnapshotRow>> {
    sqlx::query_as(
        "SELECT model_name, model_version, hour, computed_at, window_hours, current_rows, past_rows, series
         FROM drift_snapshots
         WHERE tenant_id = $1 AND model_name = $2 AND model_version = $3 AND hour >= $4 ORDER BY hour",
    )
    .bind(tenant_id)
    .bind(model.0)
    .bind(i64::from(model.1))
    .bind(from)
    .fetch_all(conn)
    .await
}

/// The models with a snapshot for the tenant, most recently computed first.
pub async fn monitored_models(conn: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<Vec<(String, i32)>> {
    sqlx::query_as(
        "SELECT model_name, model_version FROM drift_snapshots WHERE tenant_id = $1
         GROUP BY model_name, model_version ORDER BY max(computed_at) DESC, model_name, model_version",
    )
    .bind(tenant_id)
    .fetch_all(conn)
    .await
}

/// A drift alert as stored and shown.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DriftAlertRecord {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub model_name: String,
    pub model_version: i32,
    /// `training` or `past`.
    pub reference: String,
    pub threshold: f64,
    /// The series above the threshold when it was raised, largest PSI first: `[{"name", "psi"}]`.
    #[schema(value_type = Vec<Object>)]
    pub series: Json<Value>,
    pub raised_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub published_at: Option<DateTime<Utc>>,
}

const ALERT_COLUMNS: &str =
    "id, tenant_id, model_name, model_version, reference, threshold, series, raised_at, resolved_at, published_at";

/// The open alerts of the tenant.
pub async fn open_alerts(tx: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<Vec<DriftAlertRecord>> {
    sqlx::query_as(&format!(
        "SELECT {ALERT_COLUMNS} FROM drift_alerts WHERE tenant_id = $1 AND resolved_at IS NULL"
    ))
    .bind(tenant_id)
    .fetch_all(tx)
    .await
}

/// Raises an alert unless one is open for the same model and reference; the alert raised.
pub async fn raise(
    tx: &mut PgConnection,
    tenant_id: Uuid,
    model: (&str, u32),
    reference: &str,
    threshold: f64,
    series: Value,
) -> sqlx::Result<Option<DriftAlertRecord>> {
    sqlx::query_as(&format!(
        "INSERT INTO drift_alerts (id, tenant_id, model_name, model_version, reference, threshold, series)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (tenant_id, model_name, model_version, reference) WHERE resolved_at IS NULL DO NOTHING
         RETURNING {ALERT_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(tenant_id)
    .bind(model.0)
    .bind(i64::from(model.1))
    .bind(reference)
    .bind(threshold)
    .bind(Json(series))
    .fetch_optional(tx)
    .await
}

pub async fn resolve(tx: &mut PgConnection, tenant_id: Uuid, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE drift_alerts SET resolved_at = now() WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(id)
        .execute(tx)
        .await?;
    Ok(())
}

/// A drift alert not yet on the stream, with its tenant's slug (the subject's token).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Unpublished {
    #[sqlx(flatten)]
    pub alert: DriftAlertRecord,
    pub tenant_slug: String,
}

/// Every tenant's alerts not yet on the stream, oldest first.
pub async fn unpublished(db: &PgPool) -> sqlx::Result<Vec<Unpublished>> {
    sqlx::query_as(&format!(
        "SELECT a.*, t.slug AS tenant_slug
         FROM (SELECT {ALERT_COLUMNS} FROM drift_alerts WHERE published_at IS NULL) a
         JOIN tenants t ON t.id = a.tenant_id ORDER BY a.raised_at"
    ))
    .fetch_all(db)
    .await
}

pub async fn mark_published(db: &PgPool, tenant_id: Uuid, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE drift_alerts SET published_at = now() WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// The tenant's alerts of a model, newest first (at most `limit`).
pub async fn alerts(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    model: (&str, u32),
    limit: i64,
) -> sqlx::Result<Vec<DriftAlertRecord>> {
    sqlx::query_as(&format!(
        "SELECT {ALERT_COLUMNS} FROM drift_alerts
         WHERE tenant_id = $1 AND model_name = $2 AND model_version = $3 ORDER BY raised_at DESC LIMIT $4"
    ))
    .bind(tenant_id)
    .bind(model.0)
    .bind(i64::from(model.1))
    .bind(limit)
    .fetch_all(conn)
    .await
}
