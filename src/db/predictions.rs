//! Filings, predictions and risk-change alerts: the pipeline's store ([`PgPredictionStore`], the
//! `PredictionStore` port) and the read queries of the API.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Utc};
use futures_util::{FutureExt, future::BoxFuture};
use pdscore_actors::{
    Alert, AlertReason, Committed, ModelChoice, PredictionStore, RiskLevel, Scores, StoreError, TenantPolicy,
    ports::CommitResult,
};
use pdscore_models::{registry::ModelId, risk::RiskScheme};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{companies::IN_SCOPE, pagination::Page};
use crate::{auth::Scope, configuration::PipelineSettings};

/// The pipeline's store on PostgreSQL.
pub struct PgPredictionStore {
    pool: PgPool,
    /// Defaults for tenants that set no limit, scheme or model of their own.
    defaults: Arc<PipelineSettings>,
}

impl PgPredictionStore {
    pub fn new(pool: PgPool, defaults: Arc<PipelineSettings>) -> Self {
        Self { pool, defaults }
    }
}

impl PredictionStore for PgPredictionStore {
    fn commit(&self, batch: Vec<Scores>) -> BoxFuture<'static, Result<Vec<CommitResult>, StoreError>> {
        let pool = self.pool.clone();
        async move {
            // A deadlock or serialization failure between two writers is retried; anything else is reported.
            let mut attempt = 0;
            loop {
                match commit_batch(&pool, &batch).await {
                    Ok(results) => return Ok(results),
                    Err(sqlx::Error::Database(e))
                        if attempt < 3 && matches!(e.code().as_deref(), Some("40P01" | "40001")) =>
                    {
                        attempt += 1;
                        tracing::warn!(error = %e, attempt, "commit conflict; retrying");
                    }
                    Err(e) => return Err(StoreError(format!("failed to commit predictions: {e}"))),
                }
            }
        }
        .boxed()
    }

    fn tenant_policy(&self, tenant_id: Uuid) -> BoxFuture<'static, Result<Option<TenantPolicy>, StoreError>> {
        let (pool, defaults) = (self.pool.clone(), self.defaults.clone());
        async move {
            tenant_policy(&pool, &defaults, tenant_id)
                .await
                .map_err(|e| StoreError(format!("failed to read the tenant's policy: {e}")))
        }
        .boxed()
    }
}

#[derive(sqlx::FromRow)]
struct TenantRow {
    slug: String,
    is_active: bool,
    rate_limit_per_second: Option<i32>,
    rate_limit_burst: Option<i32>,
    risk_thresholds: Option<Value>,
    alert_pd_change: Option<f64>,
}

async fn tenant_policy(
    pool: &PgPool,
    defaults: &PipelineSettings,
    tenant_id: Uuid,
) -> Result<Option<TenantPolicy>, sqlx::Error> {
    let Some(tenant) = sqlx::query_as::<_, TenantRow>(
        "SELECT slug, is_active, rate_limit_per_second, rate_limit_burst, risk_thresholds, alert_pd_change
         FROM tenants WHERE id = $1",
    )
    .bind(tenant_id)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let settings: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT prediction_type::text, default_model, shadow_model FROM tenant_model_settings WHERE tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_all(pool)
    .await?;
    let choice = |prediction_type: &str, default: &ModelId| {
        let row = settings.iter().find(|(t, _, _)| t == prediction_type);
        ModelChoice {
            default: row
                .and_then(|(_, d, _)| d.parse().ok())
                .unwrap_or_else(|| default.clone()),
            shadow: row.and_then(|(_, _, s)| s.as_deref()?.parse().ok()),
        }
    };
    // A scheme that no longer parses falls back to the default rather than stopping the tenant's scoring.
    let risk_scheme = tenant
        .risk_thresholds
        .and_then(|v| serde_json::from_value::<RiskScheme>(v).ok())
        .unwrap_or_default();
    Ok(Some(TenantPolicy {
        tenant_id,
        slug: tenant.slug,
        active: tenant.is_active,
        rate_per_second: tenant
            .rate_limit_per_second
            .map_or(defaults.default_rate_per_second, f64::from),
        burst: tenant
            .rate_limit_burst
            .map_or(defaults.default_burst, |b| b.max(1) as u32),
        risk_scheme,
        alert_pd_change: tenant.alert_pd_change.unwrap_or(defaults.default_alert_pd_change),
        annual: choice("annual", &defaults.annual_model),
        quarterly: choice("quarterly", &defaults.quarterly_model),
    }))
}

/// The previous prediction of a company's type at or before a period, and whether a later period exists.
#[derive(sqlx::FromRow)]
struct Neighbours {
    later: bool,
    id: Option<Uuid>,
    risk_level: Option<String>,
    probability: Option<f64>,
}

/// One transaction for the whole batch (see [`PredictionStore::commit`]).
async fn commit_batch(pool: &PgPool, batch: &[Scores]) -> Result<Vec<CommitResult>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Lock the companies in one global order, so concurrent batches never deadlock and risk-change decisions
    // for one company are serialized across instances.
    let mut keys: Vec<(Uuid, Uuid)> = batch
        .iter()
        .map(|s| (s.filing.tenant_id, s.filing.company_id))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let (tenants, companies): (Vec<Uuid>, Vec<Uuid>) = keys.into_iter().unzip();
    let symbols: HashMap<(Uuid, Uuid), (String, String)> = sqlx::query_as::<_, (Uuid, Uuid, String, String)>(
        "SELECT c.tenant_id, c.id, c.symbol, t.slug FROM companies c
         JOIN unnest($1::uuid[], $2::uuid[]) AS k(tenant_id, id) ON c.tenant_id = k.tenant_id AND c.id = k.id
         JOIN tenants t ON t.id = c.tenant_id
         ORDER BY c.tenant_id, c.id FOR UPDATE OF c",
    )
    .bind(&tenants)
    .bind(&companies)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|(t, c, symbol, slug)| ((t, c), (symbol, slug)))
    .collect();

    let mut results = Vec::with_capacity(batch.len());
    for scores in batch {
        let f = &scores.filing;
        let Some((symbol, slug)) = symbols.get(&(f.tenant_id, f.company_id)) else {
            results.push(CommitResult::CompanyGone);
            continue;
        };
        let filing_id = Uuid::now_v7();
        let inserted: Option<Uuid> = sqlx::query_scalar(
            "INSERT INTO filings (id, tenant_id, company_id, idempotency_key, source, prediction_type, period_year,
                                  period_quarter, statement, ratios, raw, bulk_job_id, bulk_row)
             VALUES ($1, $2, $3, $4, $5::filing_source, $6::prediction_type, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING id",
        )
        .bind(filing_id)
        .bind(f.tenant_id)
        .bind(f.company_id)
        .bind(&f.idempotency_key)
        .bind(f.source.as_str())
        .bind(f.prediction_type.as_str())
        .bind(i16::try_from(f.period.year).unwrap_or(i16::MAX))
        .bind(f.period.quarter.map(i16::from))
        .bind(
            f.statement
                .as_ref()
                .map(|s| serde_json::to_value(s).unwrap_or(Value::Null)),
        )
        .bind(f.ratios.as_ref().map(|r| Value::Object(r.clone())))
        .bind(&f.raw)
        .bind(f.bulk.map(|(job, _)| job))
        .bind(f.bulk.map(|(_, row)| row))
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_none() {
            let existing: Uuid = sqlx::query_scalar(
                "SELECT p.id FROM filings f
                 JOIN predictions p ON p.tenant_id = f.tenant_id AND p.filing_id = f.id AND NOT p.is_shadow
                 WHERE f.tenant_id = $1 AND f.idempotency_key = $2",
            )
            .bind(f.tenant_id)
            .bind(&f.idempotency_key)
            .fetch_one(&mut *tx)
            .await?;
            results.push(CommitResult::Committed(Box::new(Committed::Duplicate {
                prediction_id: existing,
            })));
            continue;
        }

        let quarter = i16::from(f.period.quarter.unwrap_or(0));
        let neighbours: Neighbours = sqlx::query_as(
            "SELECT l.later, p.id, p.risk_level::text AS risk_level, p.probability
             FROM (SELECT EXISTS (SELECT 1 FROM predictions
                                  WHERE tenant_id = $1 AND company_id = $2 AND prediction_type = $3::prediction_type
                                    AND NOT is_shadow
                                    AND (period_year, coalesce(period_quarter, 0)) > ($4, $5)) AS later) l
             LEFT JOIN LATERAL (
                 SELECT id, risk_level, probability FROM predictions
                 WHERE tenant_id = $1 AND company_id = $2 AND prediction_type = $3::prediction_type AND NOT is_shadow
                   AND (period_year, coalesce(period_quarter, 0)) <= ($4, $5)
                 ORDER BY period_year DESC, coalesce(period_quarter, 0) DESC, id DESC LIMIT 1) p ON true",
        )
        .bind(f.tenant_id)
        .bind(f.company_id)
        .bind(f.prediction_type.as_str())
        .bind(i16::try_from(f.period.year).unwrap_or(i16::MAX))
        .bind(quarter)
        .fetch_one(&mut *tx)
        .await?;

        insert_prediction(&mut tx, scores, filing_id, scores.prediction_id, &scores.primary, false).await?;
        if let Some(shadow) = &scores.shadow {
            insert_prediction(&mut tx, scores, filing_id, Uuid::now_v7(), shadow, true).await?;
        }

        // Only a prediction for the company's latest period changes its current risk; a late filing for an
        // earlier period is stored without an alert.
        let previous = match neighbours {
            Neighbours {
                later: false,
                id: Some(id),
                risk_level: Some(level),
                probability: Some(probability),
            } => level.parse::<RiskLevel>().ok().map(|level| (id, level, probability)),
            _ => None,
        };
        let alert = match previous {
            Some((previous_id, previous_level, previous_probability)) => Alert::decide(
                previous_level,
                previous_probability,
                scores.primary.risk_level,
                scores.primary.probability,
                scores.alert_pd_change,
            )
            .map(|reason| Alert {
                schema_version: Alert::SCHEMA_VERSION,
                id: Uuid::now_v7(),
                tenant_id: f.tenant_id,
                tenant_slug: slug.clone(),
                organization_id: f.organization_id,
                company_id: f.company_id,
                company_symbol: symbol.clone(),
                prediction_id: scores.prediction_id,
                previous_prediction_id: Some(previous_id),
                prediction_type: f.prediction_type,
                period_year: f.period.year,
                period_quarter: f.period.quarter,
                previous_level: Some(previous_level),
                new_level: scores.primary.risk_level,
                previous_probability: Some(previous_probability),
                new_probability: scores.primary.probability,
                reason,
                created_at: Utc::now(),
            }),
            None => None,
        };
        if let Some(alert) = &alert {
            insert_alert(&mut tx, alert).await?;
        }
        results.push(CommitResult::Committed(Box::new(Committed::Created {
            prediction_id: scores.prediction_id,
            alert,
        })));
    }
    tx.commit().await?;
    Ok(results)
}

async fn insert_prediction(
    conn: &mut PgConnection,
    scores: &Scores,
    filing_id: Uuid,
    id: Uuid,
    score: &pdscore_actors::ModelScore,
    is_shadow: bool,
) -> Result<(), sqlx::Error> {
    let f = &scores.filing;
    sqlx::query(
        "INSERT INTO predictions (id, tenant_id, organization_id, company_id, filing_id, prediction_type, period_year,
                                  period_quarter, model_name, model_version, is_shadow, probability, term_structure,
                                  risk_level, implied_rating, confidence, contributions, inputs)
         VALUES ($1, $2, $3, $4, $5, $6::prediction_type, $7, $8, $9, $10, $11, $12, $13, $14::risk_level, $15, $16,
                 $17, $18)",
    )
    .bind(id)
    .bind(f.tenant_id)
    .bind(f.organization_id)
    .bind(f.company_id)
    .bind(filing_id)
    .bind(f.prediction_type.as_str())
    .bind(i16::try_from(f.period.year).unwrap_or(i16::MAX))
    .bind(f.period.quarter.map(i16::from))
    .bind(&score.model.name)
    .bind(i32::try_from(score.model.version).unwrap_or(i32::MAX))
    .bind(is_shadow)
    .bind(score.probability)
    .bind(score.term_structure.as_ref().map(|t| serde_json::json!(t)))
    .bind(score.risk_level.as_str())
    .bind(score.implied_rating)
    .bind(score.confidence)
    .bind(serde_json::to_value(&score.contributions).unwrap_or_else(|_| Value::Array(vec![])))
    .bind(Value::Object(score.inputs.clone()))
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_alert(conn: &mut PgConnection, alert: &Alert) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO alerts (id, tenant_id, organization_id, company_id, prediction_id, previous_prediction_id,
                             prediction_type, period_year, period_quarter, previous_level, new_level,
                             previous_probability, new_probability, reason, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7::prediction_type, $8, $9, $10::risk_level, $11::risk_level, $12, $13, $14,
                 $15)",
    )
    .bind(alert.id)
    .bind(alert.tenant_id)
    .bind(alert.organization_id)
    .bind(alert.company_id)
    .bind(alert.prediction_id)
    .bind(alert.previous_prediction_id)
    .bind(alert.prediction_type.as_str())
    .bind(i16::try_from(alert.period_year).unwrap_or(i16::MAX))
    .bind(alert.period_quarter.map(i16::from))
    .bind(alert.previous_level.map(RiskLevel::as_str))
    .bind(alert.new_level.as_str())
    .bind(alert.previous_probability)
    .bind(alert.new_probability)
    .bind(alert.reason.as_str())
    .bind(alert.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// A prediction as the API shows it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Prediction {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub organization_id: Uuid,
    pub company_id: Uuid,
    pub company_symbol: String,
    pub filing_id: Uuid,
    /// `annual` or `quarterly`.
    pub prediction_type: String,
    pub period_year: i16,
    pub period_quarter: Option<i16>,
    /// `name@version` of the model that answered.
    pub model: String,
    /// Probability of default at the model's horizon (one year for the default models).
    pub probability: f64,
    /// PD by horizon, e.g. `{"1y":0.021,"5y":0.094}`, when the model gives one.
    pub term_structure: Option<Value>,
    /// `low`, `medium`, `high` or `critical`, by the tenant's risk scheme.
    pub risk_level: String,
    pub implied_rating: Option<String>,
    pub confidence: Option<f64>,
    /// Per-feature contributions in logit points (reason codes), most influential first.
    pub contributions: Value,
    /// The model's inputs as scored.
    pub inputs: Value,
    /// How the filing arrived: `http`, `nats` or `bulk`.
    pub source: String,
    pub created_at: DateTime<Utc>,
}

const PREDICTION_COLUMNS: &str = "p.id, p.tenant_id, p.organization_id, p.company_id, c.symbol AS company_symbol,
    p.filing_id, p.prediction_type::text AS prediction_type, p.period_year, p.period_quarter,
    p.model_name || '@' || p.model_version AS model, p.probability, p.term_structure, p.risk_level::text AS risk_level,
    p.implied_rating, p.confidence, p.contributions, p.inputs, f.source::text AS source, p.created_at";
const PREDICTION_FROM: &str = "predictions p
    JOIN companies c ON c.tenant_id = p.tenant_id AND c.id = p.company_id
    JOIN filings f ON f.tenant_id = p.tenant_id AND f.id = p.filing_id";

pub async fn find(conn: &mut PgConnection, scope: &Scope, id: Uuid) -> sqlx::Result<Option<Prediction>> {
    sqlx::query_as(&format!(
        "SELECT {PREDICTION_COLUMNS} FROM {PREDICTION_FROM} WHERE {IN_SCOPE} AND p.id = $4 AND NOT p.is_shadow"
    ))
    .bind(scope.tenant())
    .bind(scope.organization())
    .bind(scope.assigned_to())
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Filters of a company's prediction history.
#[derive(Debug, Default)]
pub struct HistoryFilter {
    pub prediction_type: Option<pdscore_actors::PredictionType>,
    pub from_year: Option<i16>,
    pub to_year: Option<i16>,
    pub risk_level: Option<RiskLevel>,
}

/// A company's predictions, latest reporting period first.
pub async fn history(
    conn: &mut PgConnection,
    scope: &Scope,
    company_id: Uuid,
    filter: &HistoryFilter,
    page: Page,
) -> sqlx::Result<(Vec<Prediction>, i64)> {
    let condition = format!(
        "{IN_SCOPE} AND p.company_id = $4 AND NOT p.is_shadow
         AND ($5::text IS NULL OR p.prediction_type = $5::prediction_type)
         AND ($6::smallint IS NULL OR p.period_year >= $6) AND ($7::smallint IS NULL OR p.period_year <= $7)
         AND ($8::text IS NULL OR p.risk_level = $8::risk_level)"
    );
    let prediction_type = filter.prediction_type.map(|t| t.as_str());
    let level = filter.risk_level.map(RiskLevel::as_str);
    let total = sqlx::query_scalar(&format!("SELECT count(*) FROM {PREDICTION_FROM} WHERE {condition}"))
        .bind(scope.tenant())
        .bind(scope.organization())
        .bind(scope.assigned_to())
        .bind(company_id)
        .bind(prediction_type)
        .bind(filter.from_year)
        .bind(filter.to_year)
        .bind(level)
        .fetch_one(&mut *conn)
        .await?;
    let items = sqlx::query_as(&format!(
        "SELECT {PREDICTION_COLUMNS} FROM {PREDICTION_FROM} WHERE {condition}
         ORDER BY p.period_year DESC, p.period_quarter DESC NULLS LAST, p.id DESC LIMIT $9 OFFSET $10"
    ))
    .bind(scope.tenant())
    .bind(scope.organization())
    .bind(scope.assigned_to())
    .bind(company_id)
    .bind(prediction_type)
    .bind(filter.from_year)
    .bind(filter.to_year)
    .bind(level)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(conn)
    .await?;
    Ok((items, total))
}

/// An alert as the API shows it (the same fields as the NATS message).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AlertRecord {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub organization_id: Uuid,
    pub company_id: Uuid,
    pub company_symbol: String,
    pub prediction_id: Uuid,
    pub previous_prediction_id: Option<Uuid>,
    pub prediction_type: String,
    pub period_year: i16,
    pub period_quarter: Option<i16>,
    pub previous_level: Option<String>,
    pub new_level: String,
    pub previous_probability: Option<f64>,
    pub new_probability: f64,
    /// `level_changed` or `pd_moved`.
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub published_at: Option<DateTime<Utc>>,
}

const ALERT_COLUMNS: &str = "a.id, a.tenant_id, a.organization_id, a.company_id, c.symbol AS company_symbol,
    a.prediction_id, a.previous_prediction_id, a.prediction_type::text AS prediction_type, a.period_year,
    a.period_quarter, a.previous_level::text AS previous_level, a.new_level::text AS new_level, a.previous_probability,
    a.new_probability, a.reason, a.created_at, a.published_at";

/// Alerts in scope, newest first, after the `before` cursor (an alert id).
pub async fn alerts(
    conn: &mut PgConnection,
    scope: &Scope,
    company_id: Option<Uuid>,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<AlertRecord>> {
    sqlx::query_as(&format!(
        "SELECT {ALERT_COLUMNS}
         FROM alerts a JOIN companies c ON c.tenant_id = a.tenant_id AND c.id = a.company_id
         WHERE {IN_SCOPE} AND ($4::uuid IS NULL OR a.company_id = $4) AND ($5::uuid IS NULL OR a.id < $5)
         ORDER BY a.id DESC LIMIT $6"
    ))
    .bind(scope.tenant())
    .bind(scope.organization())
    .bind(scope.assigned_to())
    .bind(company_id)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Alerts committed but not yet on the ALERTS stream, older than `min_age_secs` (the publisher that
/// committed them may still be at it), oldest first.
pub async fn unpublished_alerts(pool: &PgPool, min_age_secs: f64, limit: i64) -> sqlx::Result<Vec<Alert>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        record: AlertRecord,
        tenant_slug: String,
    }
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {ALERT_COLUMNS}, t.slug AS tenant_slug
         FROM alerts a JOIN companies c ON c.tenant_id = a.tenant_id AND c.id = a.company_id
         JOIN tenants t ON t.id = a.tenant_id
         WHERE a.published_at IS NULL AND a.created_at < now() - make_interval(secs => $1)
         ORDER BY a.created_at LIMIT $2"
    ))
    .bind(min_age_secs)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.record.into_alert(r.tenant_slug))
        .collect())
}

impl AlertRecord {
    fn into_alert(self, tenant_slug: String) -> Option<Alert> {
        Some(Alert {
            schema_version: Alert::SCHEMA_VERSION,
            id: self.id,
            tenant_id: self.tenant_id,
            tenant_slug,
            organization_id: self.organization_id,
            company_id: self.company_id,
            company_symbol: self.company_symbol,
            prediction_id: self.prediction_id,
            previous_prediction_id: self.previous_prediction_id,
            prediction_type: self.prediction_type.parse().ok()?,
            period_year: u16::try_from(self.period_year).ok()?,
            period_quarter: self.period_quarter.and_then(|q| u8::try_from(q).ok()),
            previous_level: self.previous_level.and_then(|l| l.parse().ok()),
            new_level: self.new_level.parse().ok()?,
            previous_probability: self.previous_probability,
            new_probability: self.new_probability,
            reason: match self.reason.as_str() {
                "pd_moved" => AlertReason::PdMoved,
                _ => AlertReason::LevelChanged,
            },
            created_at: self.created_at,
        })
    }
}

/// Marks alerts as published on the ALERTS stream.
pub async fn mark_published(pool: &PgPool, alerts: &[(Uuid, Uuid)]) -> sqlx::Result<()> {
    let (tenants, ids): (Vec<Uuid>, Vec<Uuid>) = alerts.iter().copied().unzip();
    sqlx::query(
        "UPDATE alerts a SET published_at = now() FROM unnest($1::uuid[], $2::uuid[]) AS k(tenant_id, id)
         WHERE a.tenant_id = k.tenant_id AND a.id = k.id AND a.published_at IS NULL",
    )
    .bind(&tenants)
    .bind(&ids)
    .execute(pool)
    .await?;
    Ok(())
}
