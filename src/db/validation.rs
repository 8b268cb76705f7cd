//! What the model-validation reports read: each company's prediction by one model per reporting period, with
//! the credit events around it.

use chrono::NaiveDate;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{BindScope, companies::IN_SCOPE};
use crate::auth::Scope;

/// Whose predictions, by which model, for which periods.
#[derive(Debug, Clone)]
pub struct ObservationQuery {
    pub tenant_id: Uuid,
    pub organization_id: Option<Uuid>,
    pub model_name: String,
    pub model_version: u32,
    pub prediction_type: &'static str,
    /// Period ends from … to (inclusive).
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// `1` reads the one-year PD; `2..=5` the cumulative PD of the prediction's term structure.
    pub horizon_years: u8,
    /// The most observations read; one more tells the caller the window is too wide.
    pub limit: i64,
}

/// One row per company and reporting period: its latest prediction by the model (a re-scored statement
/// counts once), anchored at the statement's period end (a filing's own, else the end of its year or quarter).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ObservationRow {
    pub company_id: Uuid,
    pub as_of: NaiveDate,
    pub period_year: i16,
    pub period_quarter: Option<i16>,
    pub probability: f64,
    pub pd: Option<f64>,
    pub implied_rating: Option<String>,
    pub next_event: Option<NaiveDate>,
    pub defaulted_before: bool,
}

/// A prediction's anchor: its statement's period end (`f`: the filing, `p`: the prediction).
const AS_OF: &str = "COALESCE(f.period_end,
    CASE WHEN p.period_quarter IS NULL THEN make_date(p.period_year::int, 12, 31)
         ELSE (make_date(p.period_year::int, p.period_quarter::int * 3, 1) + interval '1 month' - interval '1 day')::date
    END)";

/// The observations of `query` in the caller's scope, ordered by company and period end.
#[tracing::instrument(name = "db.validation.observations", level = "debug", skip_all)]
pub async fn observations(
    conn: &mut PgConnection,
    scope: &Scope,
    query: &ObservationQuery,
) -> sqlx::Result<Vec<ObservationRow>> {
    sqlx::query_as(&format!(
        "WITH latest AS (
             SELECT DISTINCT ON (p.company_id, p.period_year, p.period_quarter)
                    p.company_id, p.period_year, p.period_quarter, p.probability, p.implied_rating,
                    CASE WHEN $10 = 1 THEN p.probability
                         ELSE (p.term_structure -> 'cumulative' ->> ($10::text || 'y'))::float8 END AS pd,
                    {AS_OF} AS as_of
             FROM predictions p
             JOIN companies c ON c.tenant_id = p.tenant_id AND c.id = p.company_id
             JOIN filings f ON f.tenant_id = p.tenant_id AND f.company_id = p.company_id AND f.id = p.filing_id
             WHERE {IN_SCOPE} AND p.tenant_id = $4 AND p.model_name = $5 AND p.model_version = $6
               AND p.prediction_type = $7::prediction_type AND ($11::uuid IS NULL OR p.organization_id = $11)
             ORDER BY p.company_id, p.period_year, p.period_quarter, p.created_at DESC
         )
         SELECT l.company_id, l.as_of, l.period_year, l.period_quarter, l.probability, l.pd, l.implied_rating,
                (SELECT min(e.event_date) FROM outcomes e
                 WHERE e.tenant_id = $4 AND e.company_id = l.company_id AND e.event_date > l.as_of) AS next_event,
                EXISTS (SELECT 1 FROM outcomes e
                        WHERE e.tenant_id = $4 AND e.company_id = l.company_id AND e.event_date <= l.as_of)
                    AS defaulted_before
         FROM latest l
         WHERE l.as_of BETWEEN $8 AND $9
         ORDER BY l.company_id, l.as_of
         LIMIT $12"
    ))
    .bind_scope(scope)
    .bind(query.tenant_id)
    .bind(&query.model_name)
    .bind(i32::try_from(query.model_version).unwrap_or(i32::MAX))
    .bind(query.prediction_type)
    .bind(query.from)
    .bind(query.to)
    .bind(i32::from(query.horizon_years))
    .bind(query.organization_id)
    .bind(query.limit)
    .fetch_all(conn)
    .await
}

/// One filing scored by both models of a comparison.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PairRow {
    pub level: String,
    pub challenger_level: String,
    pub rating: Option<String>,
    pub challenger_rating: Option<String>,
    pub probability: f64,
    pub challenger_probability: f64,
}

/// The filings of `query`'s window scored by its model and by `challenger` (name, version): both answers.
#[tracing::instrument(name = "db.validation.pairs", level = "debug", skip_all)]
pub async fn pairs(
    conn: &mut PgConnection,
    scope: &Scope,
    query: &ObservationQuery,
    challenger: (&str, u32),
) -> sqlx::Result<Vec<PairRow>> {
    sqlx::query_as(&format!(
        "SELECT p.risk_level::text AS level, q.risk_level::text AS challenger_level, p.implied_rating AS rating,
                q.implied_rating AS challenger_rating, p.probability, q.probability AS challenger_probability
         FROM predictions p
         JOIN predictions q ON q.tenant_id = p.tenant_id AND q.filing_id = p.filing_id
         JOIN companies c ON c.tenant_id = p.tenant_id AND c.id = p.company_id
         JOIN filings f ON f.tenant_id = p.tenant_id AND f.company_id = p.company_id AND f.id = p.filing_id
         WHERE {IN_SCOPE} AND p.tenant_id = $4 AND p.model_name = $5 AND p.model_version = $6
           AND p.prediction_type = $7::prediction_type AND ($10::uuid IS NULL OR p.organization_id = $10)
           AND q.model_name = $11 AND q.model_version = $12
           AND {AS_OF} BETWEEN $8 AND $9
         LIMIT $13"
    ))
    .bind_scope(scope)
    .bind(query.tenant_id)
    .bind(&query.model_name)
    .bind(i32::try_from(query.model_version).unwrap_or(i32::MAX))
    .bind(query.prediction_type)
    .bind(query.from)
    .bind(query.to)
    .bind(query.organization_id)
    .bind(challenger.0)
    .bind(i32::try_from(challenger.1).unwrap_or(i32::MAX))
    .bind(query.limit)
    .fetch_all(conn)
    .await
}
