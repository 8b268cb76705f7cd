//! The portfolio: the companies a caller may see, each with its current risk — the latest prediction of its
//! latest reporting period (annual or quarterly, whichever was scored last) and the move since the
//! period before.

use chrono::{DateTime, Utc};
use pdscore_actors::RiskLevel;
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    companies::{BindFilter, COLUMNS, Company, CompanyFilter, FILTER, IN_SCOPE},
    pagination::Page,
};
use crate::auth::Scope;

/// The portfolio's sorts: the company list's, and by latest PD (unscored companies last either way).
pub const SORTS: [(&str, &str); 6] = [
    ("symbol", "symbol"),
    ("name", "lower(name)"),
    ("sector", "sector"),
    ("market_cap", "market_cap"),
    ("created_at", "created_at"),
    ("probability", "latest_probability"),
];

/// A company's current risk.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LatestRisk {
    pub prediction_id: Uuid,
    /// `annual` or `quarterly`.
    pub prediction_type: String,
    pub period_year: i16,
    pub period_quarter: Option<i16>,
    pub probability: f64,
    /// `low`, `medium`, `high` or `critical`.
    pub risk_level: String,
    pub implied_rating: Option<String>,
    /// `name@version` of the model that answered.
    pub model: String,
    pub created_at: DateTime<Utc>,
}

/// Which way the PD moved since the previous reporting period of the same type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Trend {
    /// Riskier.
    Up,
    Down,
    Flat,
}

impl Trend {
    /// Moves under a hundredth of a percentage point of PD count as flat.
    const FLAT_BELOW: f64 = 1e-4;

    pub fn between(previous: f64, latest: f64) -> Self {
        match latest - previous {
            d if d.abs() < Self::FLAT_BELOW => Self::Flat,
            d if d > 0.0 => Self::Up,
            _ => Self::Down,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PortfolioItem {
    pub company: Company,
    /// `null` until the company's first prediction.
    pub latest: Option<LatestRisk>,
    /// The PD of the previous reporting period of the latest prediction's type.
    pub previous_probability: Option<f64>,
    pub trend: Option<Trend>,
}

#[derive(sqlx::FromRow)]
struct Row {
    #[sqlx(flatten)]
    company: Company,
    latest_id: Option<Uuid>,
    latest_type: Option<String>,
    latest_year: Option<i16>,
    latest_quarter: Option<i16>,
    latest_probability: Option<f64>,
    latest_level: Option<String>,
    latest_rating: Option<String>,
    latest_model: Option<String>,
    latest_created_at: Option<DateTime<Utc>>,
    previous_probability: Option<f64>,
}

impl From<Row> for PortfolioItem {
    fn from(row: Row) -> Self {
        let latest = match (row.latest_id, row.latest_type, row.latest_year, row.latest_probability) {
            (Some(prediction_id), Some(prediction_type), Some(period_year), Some(probability)) => Some(LatestRisk {
                prediction_id,
                prediction_type,
                period_year,
                period_quarter: row.latest_quarter,
                probability,
                risk_level: row.latest_level.unwrap_or_default(),
                implied_rating: row.latest_rating,
                model: row.latest_model.unwrap_or_default(),
                created_at: row.latest_created_at.unwrap_or_default(),
            }),
            _ => None,
        };
        let trend = latest
            .as_ref()
            .zip(row.previous_probability)
            .map(|(l, previous)| Trend::between(previous, l.probability));
        Self {
            company: row.company,
            latest,
            previous_probability: row.previous_probability,
            trend,
        }
    }
}

/// The latest prediction of each type by reporting period (the history index gives each in one probe), and
/// the one scored last of the two. Ties (rows of one transaction share its `created_at`) go to the later id:
/// ids are UUIDv7, ordered by creation.
const LATEST: &str = "
    LEFT JOIN LATERAL (
        SELECT * FROM (
            (SELECT p.id, p.prediction_type, p.period_year, p.period_quarter, p.probability, p.risk_level,
                    p.implied_rating, p.model_name || '@' || p.model_version AS model, p.created_at
             FROM predictions p
             WHERE p.tenant_id = c.tenant_id AND p.company_id = c.id AND p.prediction_type = 'annual' AND NOT p.is_shadow
             ORDER BY p.period_year DESC, p.period_quarter DESC, p.created_at DESC, p.id DESC LIMIT 1)
            UNION ALL
            (SELECT p.id, p.prediction_type, p.period_year, p.period_quarter, p.probability, p.risk_level,
                    p.implied_rating, p.model_name || '@' || p.model_version, p.created_at
             FROM predictions p
             WHERE p.tenant_id = c.tenant_id AND p.company_id = c.id AND p.prediction_type = 'quarterly' AND NOT p.is_shadow
             ORDER BY p.period_year DESC, p.period_quarter DESC, p.created_at DESC, p.id DESC LIMIT 1)
        ) latest ORDER BY created_at DESC, id DESC LIMIT 1
    ) l ON true";

/// The PD of the reporting period before the latest prediction's, of the same type.
const PREVIOUS: &str = "
    LEFT JOIN LATERAL (
        SELECT p.probability FROM predictions p
        WHERE p.tenant_id = c.tenant_id AND p.company_id = c.id AND p.prediction_type = l.prediction_type
          AND NOT p.is_shadow
          AND (p.period_year, coalesce(p.period_quarter, 0)) < (l.period_year, coalesce(l.period_quarter, 0))
        ORDER BY p.period_year DESC, p.period_quarter DESC, p.created_at DESC, p.id DESC LIMIT 1
    ) prev ON true";

/// One page of the caller's portfolio, and how many companies match; `risk_level` keeps the companies whose
/// current risk is that level.
#[tracing::instrument(name = "db.portfolio.list", level = "debug", skip_all)]
pub async fn list(
    conn: &mut PgConnection,
    scope: &Scope,
    filter: &CompanyFilter,
    risk_level: Option<RiskLevel>,
    order_by: &str,
    page: Page,
) -> sqlx::Result<(Vec<PortfolioItem>, i64)> {
    let level = risk_level.map(RiskLevel::as_str);
    let condition = format!("{IN_SCOPE} AND {FILTER} AND ($8::text IS NULL OR l.risk_level::text = $8)");
    // The count needs the latest predictions only to filter by their level (`$8` is bound either way).
    let count = match level {
        Some(_) => format!("SELECT count(*) FROM companies c {LATEST} WHERE {condition}"),
        None => format!("SELECT count(*) FROM companies c WHERE {IN_SCOPE} AND {FILTER} AND $8::text IS NULL"),
    };
    let total = sqlx::query_scalar(&count)
        .bind_filter(scope, filter)
        .bind(level)
        .fetch_one(&mut *conn)
        .await?;
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT * FROM (
             SELECT {COLUMNS}, l.id AS latest_id, l.prediction_type::text AS latest_type, l.period_year AS latest_year,
                    l.period_quarter AS latest_quarter, l.probability AS latest_probability,
                    l.risk_level::text AS latest_level, l.implied_rating AS latest_rating, l.model AS latest_model,
                    l.created_at AS latest_created_at, prev.probability AS previous_probability
             FROM companies c {LATEST} {PREVIOUS}
             WHERE {condition}
         ) portfolio
         ORDER BY {order_by} LIMIT $9 OFFSET $10"
    ))
    .bind_filter(scope, filter)
    .bind(level)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(conn)
    .await?;
    Ok((rows.into_iter().map(PortfolioItem::from).collect(), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trend_is_the_direction_of_the_pd_move_and_flat_under_a_basis_point() {
        assert_eq!(Trend::between(0.02, 0.05), Trend::Up);
        assert_eq!(Trend::between(0.05, 0.02), Trend::Down);
        assert_eq!(Trend::between(0.05, 0.05 + 5e-5), Trend::Flat);
        assert_eq!(Trend::between(0.05, 0.05 - 5e-5), Trend::Flat);
    }
}
