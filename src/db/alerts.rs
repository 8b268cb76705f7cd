//! Risk-change alerts in PostgreSQL: written in the commit that found them (the outbox), read by the API,
//! and marked once the ALERTS stream has them. The publisher and the outbox's re-publication are in
//! `crate::pipeline`; alerts reach live subscribers (SSE) back from the ALERTS stream, so that every instance
//! sees every instance's alerts.

use chrono::{DateTime, Utc};
use pdscore_actors::{Alert, AlertReason, RiskLevel};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{BindScope, companies::IN_SCOPE, pagination::Cursor};
use crate::auth::Scope;

/// Writes the alerts a commit found, in its transaction: the outbox the publisher empties after the commit.
#[tracing::instrument(name = "db.alerts.insert", level = "debug", skip_all)]
pub(super) async fn insert(conn: &mut PgConnection, alerts: &[Alert]) -> Result<(), sqlx::Error> {
    if alerts.is_empty() {
        return Ok(());
    }
    let text = |f: fn(&Alert) -> &'static str| alerts.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO alerts (id, tenant_id, organization_id, company_id, prediction_id, previous_prediction_id,
                             prediction_type, period_year, period_quarter, previous_level, new_level,
                             previous_probability, new_probability, reason, created_at)
         SELECT id, tenant_id, organization_id, company_id, prediction_id, previous_id, kind::prediction_type, year,
                quarter, previous_level::risk_level, new_level::risk_level, previous_probability, new_probability,
                reason, created_at
         FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::uuid[], $7::text[], $8::int2[],
                     $9::int2[], $10::text[], $11::text[], $12::float8[], $13::float8[], $14::text[],
                     $15::timestamptz[])
              AS t(id, tenant_id, organization_id, company_id, prediction_id, previous_id, kind, year, quarter,
                   previous_level, new_level, previous_probability, new_probability, reason, created_at)",
    )
    .bind(alerts.iter().map(|a| a.id).collect::<Vec<_>>())
    .bind(alerts.iter().map(|a| a.tenant_id).collect::<Vec<_>>())
    .bind(alerts.iter().map(|a| a.organization_id).collect::<Vec<_>>())
    .bind(alerts.iter().map(|a| a.company_id).collect::<Vec<_>>())
    .bind(alerts.iter().map(|a| a.prediction_id).collect::<Vec<_>>())
    .bind(alerts.iter().map(|a| a.previous_prediction_id).collect::<Vec<_>>())
    .bind(text(|a| a.prediction_type.as_str()))
    .bind(
        alerts
            .iter()
            .map(|a| i16::try_from(a.period_year).unwrap_or(i16::MAX))
            .collect::<Vec<_>>(),
    )
    .bind(
        alerts
            .iter()
            .map(|a| a.period_quarter.map(i16::from))
            .collect::<Vec<_>>(),
    )
    .bind(
        alerts
            .iter()
            .map(|a| a.previous_level.map(RiskLevel::as_str))
            .collect::<Vec<_>>(),
    )
    .bind(text(|a| a.new_level.as_str()))
    .bind(alerts.iter().map(|a| a.previous_probability).collect::<Vec<_>>())
    .bind(alerts.iter().map(|a| a.new_probability).collect::<Vec<_>>())
    .bind(text(|a| a.reason.as_str()))
    .bind(alerts.iter().map(|a| a.created_at).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
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
#[tracing::instrument(name = "db.alerts.list", level = "debug", skip_all)]
pub async fn list(
    conn: &mut PgConnection,
    scope: &Scope,
    company_id: Option<Uuid>,
    cursor: Cursor,
) -> sqlx::Result<Vec<AlertRecord>> {
    sqlx::query_as(&format!(
        "SELECT {ALERT_COLUMNS}
         FROM alerts a JOIN companies c ON c.tenant_id = a.tenant_id AND c.id = a.company_id
         WHERE {IN_SCOPE} AND ($4::uuid IS NULL OR a.company_id = $4) AND ($5::uuid IS NULL OR a.id < $5)
         ORDER BY a.id DESC LIMIT $6"
    ))
    .bind_scope(scope)
    .bind(company_id)
    .bind(cursor.before)
    .bind(cursor.limit())
    .fetch_all(conn)
    .await
}

/// Alerts committed but not yet on the ALERTS stream, older than `min_age_secs` (the publisher that
/// committed them may still be at it), oldest first.
#[tracing::instrument(name = "db.alerts.unpublished", level = "debug", skip_all)]
pub async fn unpublished(pool: &PgPool, min_age_secs: f64, limit: i64) -> sqlx::Result<Vec<Alert>> {
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
#[tracing::instrument(name = "db.alerts.mark_published", level = "debug", skip_all)]
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
