//! The API's reads of stored predictions: one prediction, and a company's history.

use chrono::{DateTime, Utc};
use pdscore_actors::{Filing, RiskLevel, Stored};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    BindScope,
    companies::IN_SCOPE,
    pagination::Page,
    predictions::{contributions_json, term_structure_json, year},
};
use crate::auth::Scope;

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
    /// The cumulative PD curve and the annual hazards over 1–5 years, when the model has a 5-year partner:
    /// `{"cumulative":{"1y":0.021,…,"5y":0.094},"annual_hazard":{"1y":0.021,…,"5y":0.019}}`; monotone by
    /// construction.
    pub term_structure: Option<Value>,
    /// `low`, `medium`, `high` or `critical`, by the tenant's risk scheme.
    pub risk_level: String,
    pub implied_rating: Option<String>,
    pub confidence: Option<f64>,
    /// Per-feature contributions in logit points (reason codes), most influential first.
    pub contributions: Value,
    /// The model's inputs as scored.
    pub inputs: Value,
    /// What the flows scored cover: `null` for the filing's own period; for a quarterly statement scored
    /// on its trailing twelve months (its three quarters before on file), `{"flows":
    /// "trailing_twelve_months", "quarters": ["2025-Q3", "2025-Q4", "2026-Q1", "2026-Q2"]}`.
    pub basis: Option<Value>,
    /// How the filing arrived: `http`, `nats` or `bulk`.
    pub source: String,
    pub created_at: DateTime<Utc>,
}

impl Prediction {
    /// The prediction just committed for `filing` (of the company `symbol`), as [`find`] would read it.
    pub fn committed(filing: &Filing, symbol: &str, prediction_id: Uuid, stored: &Stored) -> Self {
        let score = &stored.score;
        Self {
            id: prediction_id,
            tenant_id: filing.tenant_id,
            organization_id: filing.organization_id,
            company_id: filing.company_id,
            company_symbol: symbol.to_owned(),
            filing_id: stored.filing_id,
            prediction_type: filing.prediction_type.as_str().to_owned(),
            period_year: year(&filing.content.period),
            period_quarter: filing.content.period.quarter.map(i16::from),
            model: format!("{}@{}", score.model.name, score.model.version),
            probability: score.probability,
            term_structure: term_structure_json(score),
            risk_level: score.risk_level.as_str().to_owned(),
            implied_rating: Some(score.implied_rating.to_owned()),
            confidence: Some(score.confidence),
            contributions: contributions_json(score),
            inputs: Value::Object(score.inputs.clone()),
            basis: score.basis(),
            source: filing.source.as_str().to_owned(),
            created_at: stored.created_at,
        }
    }
}

const PREDICTION_COLUMNS: &str = "p.id, p.tenant_id, p.organization_id, p.company_id, c.symbol AS company_symbol,
    p.filing_id, p.prediction_type::text AS prediction_type, p.period_year, p.period_quarter,
    p.model_name || '@' || p.model_version AS model, p.probability, p.term_structure, p.risk_level::text AS risk_level,
    p.implied_rating, p.confidence, p.contributions, p.inputs, p.basis, f.source::text AS source, p.created_at";
const PREDICTION_FROM: &str = "predictions p
    JOIN companies c ON c.tenant_id = p.tenant_id AND c.id = p.company_id
    JOIN filings f ON f.tenant_id = p.tenant_id AND f.id = p.filing_id";

#[tracing::instrument(name = "db.history.find", level = "debug", skip_all)]
pub async fn find(conn: &mut PgConnection, scope: &Scope, id: Uuid) -> sqlx::Result<Option<Prediction>> {
    sqlx::query_as(&format!(
        "SELECT {PREDICTION_COLUMNS} FROM {PREDICTION_FROM} WHERE {IN_SCOPE} AND p.id = $4 AND NOT p.is_shadow"
    ))
    .bind_scope(scope)
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
#[tracing::instrument(name = "db.history.list", level = "debug", skip_all)]
pub async fn list(
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
        .bind_scope(scope)
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
    .bind_scope(scope)
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
