//! The portfolio: the companies a caller may see, each with its current risk — the latest prediction of its
//! latest reporting period (annual or quarterly, whichever was scored last) and the move since the
//! period before.

use chrono::{DateTime, Utc};
use pdscore_actors::RiskLevel;
use serde::Serialize;
use sqlx::{FromRow, PgConnection, Row as _, postgres::PgRow, types::Json};
use uuid::Uuid;

use super::{
    companies::{BindFilter, COLUMNS, Company, CompanyFilter, conjunction, filtered},
    company_risk::CompanyRisk,
    pagination::Page,
};
use crate::auth::Scope;

/// The portfolio's sorts: the company list's, and by latest PD (unscored companies last either way).
pub const SORTS: [(&str, &str); 6] = [
    ("symbol", "c.symbol"),
    ("name", "lower(c.name)"),
    ("sector", "c.sector"),
    ("market_cap", "c.market_cap"),
    ("created_at", "c.created_at"),
    ("probability", "r.probability"),
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
    risk: Option<Json<CompanyRisk>>,
}

impl From<Row> for PortfolioItem {
    fn from(row: Row) -> Self {
        let risk = row.risk.map(|r| r.0).unwrap_or_default();
        let current = risk.current();
        let latest = current.map(|(kind, l, _)| LatestRisk {
            prediction_id: l.id,
            prediction_type: kind.as_str().to_owned(),
            period_year: l.year,
            period_quarter: l.quarter,
            probability: l.probability,
            risk_level: l.level.as_str().to_owned(),
            implied_rating: l.rating.clone(),
            model: l.model.clone(),
            created_at: l.created_at,
        });
        let previous_probability = current.and_then(|(_, _, previous)| previous);
        let trend = latest
            .as_ref()
            .zip(previous_probability)
            .map(|(l, previous)| Trend::between(previous, l.probability));
        Self {
            company: row.company,
            latest,
            previous_probability,
            trend,
        }
    }
}

/// Each company's risk row (every company has one).
const RISK: &str = "JOIN company_risk r ON r.tenant_id = c.tenant_id AND r.company_id = c.id";

/// Folds a tenant's tallies into one row per (organization, level) once a reader finds more than this many.
const FOLD_ABOVE: i64 = 256;

/// A row of the page's statement: the total (and, when it is the tallies' sum, how many tally rows were summed)
/// beside each company of the page; one row without a company when the page is empty.
struct PageRow {
    total: i64,
    tally_rows: i64,
    item: Option<Row>,
}

impl<'r> FromRow<'r, PgRow> for PageRow {
    fn from_row(row: &'r PgRow) -> sqlx::Result<Self> {
        let item = match row.try_get::<Option<Uuid>, _>("id")? {
            Some(_) => Some(Row::from_row(row)?),
            None => None,
        };
        Ok(Self {
            total: row.try_get("total")?,
            tally_rows: row.try_get("tally_rows")?,
            item,
        })
    }
}

/// One page of the caller's portfolio, and how many companies match; `risk_level` keeps the companies whose
/// current risk is that level. Each company's risk is a row of `company_risk` (see [`super::company_risk`]):
/// the page is read in the order of an index where one matches (riskiest first: `company_risk_org`,
/// `company_risk_tenant`), and the total, for a tenant's scope without a text or sector filter, is the sum of
/// the tenant's tallies (`portfolio_tally`), not a count of its companies. Total and page in one statement
/// (one round trip); the tallies are folded after it when the reader found them long.
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
    // The organization tested again on the risk rows, so that their index can lead the riskiest-first read.
    let condition = format!(
        "{} AND {}",
        filtered(scope, filter),
        conjunction([
            (scope.organization().is_some(), "r.organization_id = $2"),
            (filter.organization_id.is_some(), "r.organization_id = $4"),
            (level.is_some(), "r.level::text = $8"),
        ])
    );
    // The tallies' parameters are the page's: tenant $1, the scope's organization $2, the filter's $4, level $8.
    let tallied = scope
        .tenant()
        .filter(|_| scope.assigned_to().is_none() && filter.q.is_none() && filter.sector.is_none());
    let total = match tallied {
        Some(_) => format!(
            "SELECT coalesce(sum(t.delta), 0)::int8 AS total, count(*) AS tally_rows FROM portfolio_tally t WHERE {}",
            conjunction([
                (true, "t.tenant_id = $1"),
                (scope.organization().is_some(), "t.organization_id = $2"),
                (filter.organization_id.is_some(), "t.organization_id = $4"),
                (level.is_some(), "t.risk_level::text = $8"),
            ])
        ),
        None => format!("SELECT count(*) AS total, 0::int8 AS tally_rows FROM companies c {RISK} WHERE {condition}"),
    };
    // One statement per shape (see `filtered`), prepared once per connection: its cached plan for the caller's
    // organization reads the riskiest page in the order of `company_risk_org`.
    let rows: Vec<PageRow> = sqlx::query_as(&format!(
        "WITH total AS ({total})
         SELECT total.total, total.tally_rows, page.*
         FROM total LEFT JOIN LATERAL (
             SELECT {COLUMNS}, r.risk FROM companies c {RISK} WHERE {condition} ORDER BY {order_by} {}
         ) AS page ON TRUE",
        page.literal()
    ))
    .bind_filter(scope, filter)
    .bind(level)
    .fetch_all(&mut *conn)
    .await?;
    let (total, tally_rows) = rows.first().map_or((0, 0), |r| (r.total, r.tally_rows));
    if let Some(tenant) = tallied
        && tally_rows > FOLD_ABOVE
    {
        fold_tallies(conn, tenant).await?;
    }
    let items = rows
        .into_iter()
        .filter_map(|r| r.item.map(PortfolioItem::from))
        .collect();
    Ok((items, total))
}

/// Folds the tallies of every tenant that has more than a few rows per organization and level (see
/// [`fold_tallies`]), in one statement.
#[tracing::instrument(name = "db.portfolio.fold_all_tallies", level = "debug", skip_all)]
pub async fn fold_all_tallies(pool: &sqlx::PgPool) -> sqlx::Result<()> {
    sqlx::query(
        "WITH long AS (SELECT tenant_id FROM portfolio_tally GROUP BY tenant_id
                       HAVING count(*) > 2 * count(DISTINCT (organization_id, risk_level))),
              gone AS (DELETE FROM portfolio_tally t USING long WHERE t.tenant_id = long.tenant_id
                       RETURNING t.tenant_id, t.organization_id, t.risk_level, t.delta)
         INSERT INTO portfolio_tally (tenant_id, organization_id, risk_level, delta)
         SELECT tenant_id, organization_id, risk_level, sum(delta) FROM gone
         GROUP BY tenant_id, organization_id, risk_level HAVING sum(delta) <> 0",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Replaces a tenant's tallies by their sums. Rows written meanwhile by transactions not yet committed are not
/// seen by the deletion and stay; two folds at once delete each row once (the second waits for the first).
#[tracing::instrument(name = "db.portfolio.fold_tallies", level = "debug", skip_all)]
pub async fn fold_tallies(conn: &mut PgConnection, tenant: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "WITH gone AS (DELETE FROM portfolio_tally WHERE tenant_id = $1
                       RETURNING organization_id, risk_level, delta)
         INSERT INTO portfolio_tally (tenant_id, organization_id, risk_level, delta)
         SELECT $1, organization_id, risk_level, sum(delta) FROM gone
         GROUP BY organization_id, risk_level HAVING sum(delta) <> 0",
    )
    .bind(tenant)
    .execute(conn)
    .await?;
    Ok(())
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
