//! What enters the pipeline and what comes out of it.

use std::{collections::BTreeMap, fmt, sync::Arc, time::Instant};

use chrono::{DateTime, Utc};
use pdscore_models::{
    PredictionType, RiskLevel, explain::Contribution, registry::ModelId, statement::ReportingPeriod,
    statement::Statement, term::TermStructure,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::Rejected;

/// A filing's content as every ingest path reads it (HTTP body, NATS message, spreadsheet row), validated
/// the same way so that the paths agree on what they score.
#[derive(Debug, Clone, PartialEq)]
pub struct FilingContent {
    pub period: ReportingPeriod,
    pub statement: Option<Statement>,
    /// Ratios sent by the client, by name (they override the ones computed from the statement).
    pub ratios: Option<Map<String, Value>>,
    /// A model asked for by name; `None`: the default of the filing's [`Terms`].
    pub model: Option<ModelId>,
}

/// Ratios a filing may carry at most (the largest feature set has 64).
pub const MAX_RATIOS: usize = 128;

impl FilingContent {
    /// `year` as a number or a four-digit string; `quarter` (`Q1`..`Q4` or 1..4) required for quarterly
    /// filings and ignored for annual ones (AccuNode's annual files carry it as information); at least a
    /// statement or one ratio.
    pub fn parse(
        prediction_type: PredictionType,
        year: &Value,
        quarter: Option<&Value>,
        statement: Option<Value>,
        ratios: Option<Map<String, Value>>,
        model: Option<&str>,
    ) -> Result<Self, Rejected> {
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let year = text(year)
            .ok_or_else(|| Rejected::validation("reporting_year", format!("{year} is not a year")))
            .and_then(|y| {
                ReportingPeriod::parse_year(&y).map_err(|e| Rejected::validation("reporting_year", e.to_string()))
            })?;
        let quarter = match prediction_type {
            PredictionType::Annual => None,
            PredictionType::Quarterly => {
                let raw = quarter.filter(|q| !q.is_null()).ok_or_else(|| {
                    Rejected::validation("reporting_quarter", "a quarterly filing needs its quarter (Q1..Q4)")
                })?;
                let parsed = text(raw)
                    .ok_or_else(|| Rejected::validation("reporting_quarter", format!("{raw} is not a quarter")))
                    .and_then(|q| {
                        ReportingPeriod::parse_quarter(&q)
                            .map_err(|e| Rejected::validation("reporting_quarter", e.to_string()))
                    })?;
                Some(parsed.ok_or_else(|| {
                    Rejected::validation("reporting_quarter", "a quarterly filing needs its quarter (Q1..Q4)")
                })?)
            }
        };
        let statement = statement
            .filter(|s| !s.is_null())
            .map(|s| {
                Statement::from_value(s).map_err(|e| match e {
                    pdscore_models::statement::StatementError::Invalid { field, message } => {
                        let field = if field == "statement" {
                            field
                        } else {
                            format!("statement.{field}")
                        };
                        Rejected::validation(field, message)
                    }
                    empty => Rejected::validation("statement", empty.to_string()),
                })
            })
            .transpose()?;
        let ratios = ratios.filter(|r| !r.is_empty());
        if let Some(r) = &ratios
            && r.len() > MAX_RATIOS
        {
            return Err(Rejected::validation(
                "ratios",
                format!("at most {MAX_RATIOS} ratios per filing"),
            ));
        }
        if statement.is_none() && ratios.is_none() {
            return Err(Rejected::validation("statement", "send a statement, ratios, or both"));
        }
        let model = model
            .map(|m| {
                m.parse::<ModelId>()
                    .map_err(|e| Rejected::validation("model", e.to_string()))
            })
            .transpose()?;
        Ok(Self {
            period: ReportingPeriod { year, quarter },
            statement,
            ratios,
            model,
        })
    }
}

/// The path a filing came by (stored with it, and a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilingSource {
    Http,
    Nats,
    Bulk,
}

impl FilingSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Nats => "nats",
            Self::Bulk => "bulk",
        }
    }
}

/// Whose conventions a filing is answered in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Terms {
    /// The product's: the tenant's default model and risk scheme.
    #[default]
    Product,
    /// AccuNode's, on its own routes: its scorecard for the prediction type unless a model is named, and
    /// its risk scheme (2 / 5 / 15 %), so that its clients see the PDs and levels they saw before.
    Accunode,
}

/// One company's statement for one period, validated and attached to its tenant, organization and company.
#[derive(Debug, Clone)]
pub struct Filing {
    pub tenant_id: Uuid,
    pub organization_id: Uuid,
    pub company_id: Uuid,
    /// Unique per organization and source: a second filing with the same key is the same filing (redelivery,
    /// client retry) when it says the same for the same company ([`Filing::content_digest`]), else a conflict.
    pub idempotency_key: String,
    pub source: FilingSource,
    pub prediction_type: PredictionType,
    /// What it says (period, statement, ratios, model asked for), as every ingest path decodes it.
    pub content: FilingContent,
    pub terms: Terms,
    /// The payload as received, kept with the filing for audit and replay.
    pub raw: Value,
    /// The bulk job and row this filing comes from.
    pub bulk: Option<(Uuid, i64)>,
    /// When the filing entered the service, for end-to-end latency.
    pub received_at: Instant,
    /// The trailing twelve months it is scored on, when it is a quarterly statement whose three quarters
    /// before are on file (set by the pipeline, see [`Filing::wants_trailing`]; never part of its content).
    pub trailing: Option<Arc<Trailing>>,
    /// Its company when it does not exist yet: created as `company_id` by the transaction that writes the
    /// filing.
    pub new_company: Option<Arc<NewCompany>>,
}

/// A company a filing names that was not found when it arrived. The commit that writes the filing creates it
/// (under the filing's `company_id`) in the same transaction, so a new company costs no transaction of its
/// own. If its symbol has been taken meanwhile (a concurrent filing for the same new company), nothing is
/// created and the filing is answered as its company gone: the caller finds the company and files again.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCompany {
    pub symbol: String,
    pub name: String,
    pub sector: Option<String>,
    pub market_cap: Option<f64>,
    /// The user account whose filing created it.
    pub created_by: Option<Uuid>,
}

/// The trailing twelve months a quarterly statement is scored on: the four latest quarters on file and
/// their statement (`Statement::trailing_twelve_months`), scored by the tenant's annual model.
#[derive(Debug, Clone, PartialEq)]
pub struct Trailing {
    /// Oldest first; the filing's own quarter last.
    pub quarters: [ReportingPeriod; 4],
    pub statement: Statement,
}

impl Trailing {
    /// The four quarters' statements (oldest first, the filing's own last) as one trailing year.
    pub fn of(quarters: [ReportingPeriod; 4], statements: &[Statement; 4]) -> Self {
        Self {
            quarters,
            statement: Statement::trailing_twelve_months(statements),
        }
    }
}

impl Filing {
    /// Whether the pipeline looks for the three quarters before this one: a quarterly statement (without
    /// ratios, which are one model's inputs) on the product's terms, no model named. With them on file it
    /// is scored on trailing twelve months by the tenant's annual model; else by its quarterly model.
    pub fn wants_trailing(&self) -> bool {
        self.prediction_type == PredictionType::Quarterly
            && self.terms == Terms::Product
            && self.content.model.is_none()
            && self.content.statement.is_some()
            && self.content.ratios.is_none()
    }

    /// SHA-256 of what the filing says: its type, period, statement, ratios (by name, in name order) and model.
    /// Two filings under one key are one filing only if their digests agree.
    pub fn content_digest(&self) -> [u8; 32] {
        use sha2::Digest;
        let said = &self.content;
        let ratios: Option<BTreeMap<&String, &Value>> = said.ratios.as_ref().map(|r| r.iter().collect());
        let content = (
            self.prediction_type.as_str(),
            said.period.year,
            said.period.quarter,
            &said.statement,
            ratios,
            said.model.as_ref().map(ToString::to_string),
        );
        // Serializing plain data into memory cannot fail.
        let bytes = serde_json::to_vec(&content).unwrap_or_default();
        sha2::Sha256::digest(bytes).into()
    }

    /// The key of a filing sent without one: its company and what it says, so that the same statement sent
    /// again is the same filing, and nothing else is.
    pub fn content_key(&self) -> String {
        use std::fmt::Write;
        let mut key = format!("content:{}:", self.company_id);
        for byte in self.content_digest() {
            let _ = write!(key, "{byte:02x}");
        }
        key
    }
}

/// What one model says about a filing, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelScore {
    pub model: ModelId,
    pub probability: f64,
    /// The cumulative PD curve and annual hazards over 1–5 years, when the model has a 5-year partner.
    pub term_structure: Option<TermStructure>,
    pub risk_level: RiskLevel,
    pub implied_rating: &'static str,
    pub confidence: f64,
    /// Most influential first.
    pub contributions: Vec<Contribution>,
    /// The model's inputs as scored (name → value; `null` missing).
    pub inputs: Map<String, Value>,
    /// The four quarters (oldest first) whose trailing twelve months were scored, for a quarterly statement
    /// scored so ([`Trailing`]); `None`: the filing's own period.
    pub trailing_quarters: Option<[ReportingPeriod; 4]>,
}

impl ModelScore {
    /// What the score's flows cover, as a prediction states it: `null` for the filing's own period, else
    /// `{"flows": "trailing_twelve_months", "quarters": ["2025-Q3", …, "2026-Q2"]}`.
    pub fn basis(&self) -> Option<Value> {
        self.trailing_quarters.map(|quarters| {
            serde_json::json!({
                "flows": "trailing_twelve_months",
                "quarters": quarters.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })
        })
    }
}

/// A scored filing: the answer (primary) and, when the tenant runs one, the shadow model's score.
#[derive(Debug, Clone)]
pub struct Scores {
    pub filing: Filing,
    /// The prediction's id, chosen before the write so that a retried commit cannot create a second row.
    pub prediction_id: Uuid,
    pub primary: ModelScore,
    pub shadow: Option<ModelScore>,
    /// Relative PD move that raises an alert without a level change (the tenant's setting).
    pub alert_pd_change: f64,
}

/// The outcome of a committed filing.
#[derive(Debug, Clone, PartialEq)]
pub enum Committed {
    /// Stored now, as `stored` says (so that a caller can answer without reading it back).
    Created { prediction_id: Uuid, stored: Box<Stored> },
    /// This filing (same idempotency key) was stored before: nothing written, here is its prediction.
    Duplicate { prediction_id: Uuid },
}

/// What a new prediction's commit wrote beyond the filing and its score.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub filing_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub score: ModelScore,
    /// Raised when the company's risk changed.
    pub alert: Option<Alert>,
}

impl Committed {
    pub fn prediction_id(&self) -> Uuid {
        match self {
            Self::Created { prediction_id, .. } | Self::Duplicate { prediction_id } => *prediction_id,
        }
    }
}

/// Why an alert was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertReason {
    /// The risk level differs from the previous period's.
    LevelChanged,
    /// Same level, but the PD moved by more than the tenant's relative threshold.
    PdMoved,
}

impl AlertReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LevelChanged => "level_changed",
            Self::PdMoved => "pd_moved",
        }
    }
}

impl fmt::Display for AlertReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A company's risk changed. This is also the JSON published on `alerts.<tenant>.<company>` (schema 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub schema_version: u32,
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The tenant's slug, as in the subject.
    pub tenant_slug: String,
    pub organization_id: Uuid,
    pub company_id: Uuid,
    pub company_symbol: String,
    pub prediction_id: Uuid,
    pub previous_prediction_id: Option<Uuid>,
    pub prediction_type: PredictionType,
    pub period_year: u16,
    pub period_quarter: Option<u8>,
    pub previous_level: Option<RiskLevel>,
    pub new_level: RiskLevel,
    pub previous_probability: Option<f64>,
    pub new_probability: f64,
    pub reason: AlertReason,
    pub created_at: DateTime<Utc>,
}

impl Alert {
    pub const SCHEMA_VERSION: u32 = 1;

    /// The alert a new prediction raises against the previous period's, if any.
    pub fn decide(
        previous_level: RiskLevel,
        previous_probability: f64,
        new_level: RiskLevel,
        new_probability: f64,
        pd_change: f64,
    ) -> Option<AlertReason> {
        if previous_level != new_level {
            return Some(AlertReason::LevelChanged);
        }
        let moved = if previous_probability > 0.0 {
            (new_probability - previous_probability).abs() / previous_probability
        } else if new_probability > 0.0 {
            f64::INFINITY
        } else {
            0.0
        };
        (moved > pd_change).then_some(AlertReason::PdMoved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RiskLevel::*;
    use serde_json::json;

    fn ratios(v: Value) -> Option<Map<String, Value>> {
        v.as_object().cloned()
    }

    #[test]
    fn content_reads_years_and_quarters_as_spreadsheets_write_them() {
        let c = FilingContent::parse(
            PredictionType::Quarterly,
            &json!("2024"),
            Some(&json!("q3")),
            None,
            ratios(json!({"sga_margin": "NM"})),
            None,
        )
        .unwrap();
        assert_eq!(
            c.period,
            ReportingPeriod {
                year: 2024,
                quarter: Some(3)
            }
        );
        let annual = FilingContent::parse(
            PredictionType::Annual,
            &json!(2023),
            Some(&json!("Q4")),
            Some(json!({"total_assets": 10.0})),
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            annual.period.quarter, None,
            "an annual filing's quarter is informational"
        );
    }

    #[test]
    fn content_refusals_name_the_field() {
        let field = |r: Result<FilingContent, Rejected>| r.unwrap_err().field.unwrap();
        let some = ratios(json!({"sga_margin": 1}));
        assert_eq!(
            field(FilingContent::parse(
                PredictionType::Quarterly,
                &json!(2024),
                None,
                None,
                some.clone(),
                None
            )),
            "reporting_quarter"
        );
        assert_eq!(
            field(FilingContent::parse(
                PredictionType::Annual,
                &json!("20x4"),
                None,
                None,
                some.clone(),
                None
            )),
            "reporting_year"
        );
        assert_eq!(
            field(FilingContent::parse(
                PredictionType::Annual,
                &json!(2024),
                None,
                None,
                None,
                None
            )),
            "statement"
        );
        assert_eq!(
            field(FilingContent::parse(
                PredictionType::Annual,
                &json!(2024),
                None,
                Some(json!({"total_assets": "lots"})),
                None,
                None
            )),
            "statement.total_assets"
        );
        assert_eq!(
            field(FilingContent::parse(
                PredictionType::Annual,
                &json!(2024),
                None,
                None,
                some,
                Some("x")
            )),
            "model"
        );
    }

    #[test]
    fn a_level_change_is_an_alert_whatever_the_pd_move() {
        assert_eq!(
            Alert::decide(Low, 0.0199, Medium, 0.0201, 0.25),
            Some(AlertReason::LevelChanged)
        );
    }

    #[test]
    fn a_pd_move_beyond_the_threshold_is_an_alert_within_a_level() {
        assert_eq!(Alert::decide(Low, 0.010, Low, 0.013, 0.25), Some(AlertReason::PdMoved));
        assert_eq!(Alert::decide(Low, 0.010, Low, 0.012, 0.25), None);
        assert_eq!(Alert::decide(Low, 0.010, Low, 0.007, 0.25), Some(AlertReason::PdMoved));
        assert_eq!(Alert::decide(Low, 0.0, Low, 0.0, 0.25), None);
    }
}
