//! Model validation: the evidence that a model's PDs still work on a tenant's own portfolio — back-tests
//! against recorded credit events ([`backtest`]), champion against challenger ([`comparison`]), and the
//! population's drift away from what the model was built on ([`drift`]).

pub mod backtest;
pub mod comparison;
pub mod drift;

use chrono::NaiveDate;
use pdscore_models::{PredictionType, registry::ModelId};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use self::{
    backtest::{Evaluation, Observation},
    comparison::{Agreement, Pair, SideBySide},
};
use crate::{
    auth::Scope,
    db::validation::{self as stored, ObservationQuery, ObservationRow, PairRow},
};

/// The most observations one back-test reads (a wider window is refused: narrow it, or split it).
pub const MAX_OBSERVATIONS: usize = 500_000;

/// The longest horizon a back-test reads (the term structures' last point).
pub const MAX_HORIZON_YEARS: u8 = 5;

/// A back-test to run: a tenant's (or one organization's) predictions by one model version, for the
/// statements whose period ends in `from..=to`, at a horizon.
#[derive(Debug, Clone)]
pub struct BacktestRequest {
    pub tenant_id: Uuid,
    pub organization_id: Option<Uuid>,
    pub model: ModelId,
    pub prediction_type: PredictionType,
    pub horizon_years: u8,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// A back-test's answer: what was asked, and what the predictions did against what happened.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Backtest {
    pub tenant_id: Uuid,
    pub organization_id: Option<Uuid>,
    /// The model version whose predictions are scored, primary or challenger alike.
    pub model: String,
    pub prediction_type: String,
    pub horizon_years: u8,
    /// Statements whose period ends in this window are the observations.
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Horizons ending after this day are incomplete (left out).
    pub as_of: NaiveDate,
    #[serde(flatten)]
    pub evaluation: Evaluation,
}

#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    #[error("the window holds more than {MAX_OBSERVATIONS} observations; narrow it")]
    TooWide,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The computation panicked (a defect): an internal error, never a partial report.
    #[error("the back-test failed: {0}")]
    Failed(String),
}

impl From<ObservationRow> for Observation {
    fn from(row: ObservationRow) -> Self {
        Self {
            company_id: row.company_id,
            as_of: row.as_of,
            period: match row.period_quarter {
                Some(quarter) => format!("{}-Q{quarter}", row.period_year),
                None => row.period_year.to_string(),
            },
            probability: row.probability,
            pd: row.pd.filter(|pd| pd.is_finite() && (0.0..=1.0).contains(pd)),
            rating: row.implied_rating,
            next_event: row.next_event,
            defaulted_before: row.defaulted_before,
        }
    }
}

impl BacktestRequest {
    fn query(&self) -> ObservationQuery {
        ObservationQuery {
            tenant_id: self.tenant_id,
            organization_id: self.organization_id,
            model_name: self.model.name.clone(),
            model_version: self.model.version,
            prediction_type: self.prediction_type.as_str(),
            from: self.from,
            to: self.to,
            horizon_years: self.horizon_years,
            limit: MAX_OBSERVATIONS as i64 + 1,
        }
    }
}

/// The observations of a back-test request in the caller's scope.
pub async fn observations(
    db: &PgPool,
    scope: &Scope,
    request: &BacktestRequest,
) -> Result<Vec<Observation>, BacktestError> {
    let mut conn = db.acquire().await?;
    let rows = stored::observations(&mut conn, scope, &request.query()).await?;
    if rows.len() > MAX_OBSERVATIONS {
        return Err(BacktestError::TooWide);
    }
    Ok(rows.into_iter().map(Observation::from).collect())
}

/// Runs a back-test as of `today`.
#[tracing::instrument(name = "validation.backtest", skip_all, fields(model = %request.model))]
pub async fn backtest(
    db: &PgPool,
    scope: &Scope,
    request: &BacktestRequest,
    today: NaiveDate,
) -> Result<Backtest, BacktestError> {
    let observations = observations(db, scope, request).await?;
    // CPU-bound over up to MAX_OBSERVATIONS rows: off the async executor.
    let horizon = request.horizon_years;
    let evaluation = tokio::task::spawn_blocking(move || backtest::evaluate(&observations, horizon, today))
        .await
        .map_err(|e| BacktestError::Failed(e.to_string()))?;
    Ok(Backtest {
        tenant_id: request.tenant_id,
        organization_id: request.organization_id,
        model: request.model.to_string(),
        prediction_type: request.prediction_type.to_string(),
        horizon_years: request.horizon_years,
        from: request.from,
        to: request.to,
        as_of: today,
        evaluation,
    })
}

/// Champion (the request's model) against a challenger, over the request's window.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Comparison {
    pub tenant_id: Uuid,
    pub organization_id: Option<Uuid>,
    pub model: String,
    pub challenger: String,
    pub prediction_type: String,
    pub horizon_years: u8,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub as_of: NaiveDate,
    /// Their answers on the filings both scored.
    pub agreement: Agreement,
    /// Both back-tested on the company-periods both scored, against the same credit events.
    pub backtest: SideBySide,
}

impl From<PairRow> for Pair {
    fn from(row: PairRow) -> Self {
        Self {
            level: row.level,
            challenger_level: row.challenger_level,
            rating: row.rating,
            challenger_rating: row.challenger_rating,
            pd: row.probability,
            challenger_pd: row.challenger_probability,
        }
    }
}

/// Compares the request's model with `challenger` as of `today`.
#[tracing::instrument(name = "validation.compare", skip_all, fields(model = %request.model, %challenger))]
pub async fn compare(
    db: &PgPool,
    scope: &Scope,
    request: &BacktestRequest,
    challenger: &ModelId,
    today: NaiveDate,
) -> Result<Comparison, BacktestError> {
    let pairs: Vec<Pair> = {
        let mut conn = db.acquire().await?;
        let rows = stored::pairs(
            &mut conn,
            scope,
            &request.query(),
            (&challenger.name, challenger.version),
        )
        .await?;
        if rows.len() > MAX_OBSERVATIONS {
            return Err(BacktestError::TooWide);
        }
        rows.into_iter().map(Pair::from).collect()
    };
    let ours = observations(db, scope, request).await?;
    let challenger_request = BacktestRequest {
        model: challenger.clone(),
        ..request.clone()
    };
    let theirs = observations(db, scope, &challenger_request).await?;
    let horizon = request.horizon_years;
    let (agreement, backtest) = tokio::task::spawn_blocking(move || {
        (
            comparison::agreement(&pairs),
            comparison::side_by_side(&ours, &theirs, horizon, today),
        )
    })
    .await
    .map_err(|e| BacktestError::Failed(e.to_string()))?;
    Ok(Comparison {
        tenant_id: request.tenant_id,
        organization_id: request.organization_id,
        model: request.model.to_string(),
        challenger: challenger.to_string(),
        prediction_type: request.prediction_type.to_string(),
        horizon_years: request.horizon_years,
        from: request.from,
        to: request.to,
        as_of: today,
        agreement,
        backtest,
    })
}
