//! A company's current risk, kept in a row of its own (`company_risk.risk`, with `probability` and `level`
//! beside it for the portfolio's sort and filter) by the commit that scores it, under the company's row lock:
//! the portfolio reads one row per company of its page instead of probing the history of every company.
//!
//! Per prediction type the state holds the latest prediction — by reporting period, then creation time, then
//! id (ids are UUIDv7: ordered by creation), the order the history is read in — and the prediction of the
//! period before it. The current risk is the latest of the two types' latest predictions, whichever was scored
//! last. Shadow (challenger, replay) predictions never enter it. Migration 20261209000001 built the state of
//! the companies scored before it from their history with the same rules.

use chrono::{DateTime, Utc};
use pdscore_actors::{PredictionType, RiskLevel};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A prediction's place in its company's history of one type: (year, quarter or 0), creation time, id.
type HistoryKey = ((i16, i16), DateTime<Utc>, Uuid);

/// A company's risk state (`company_risk.risk`): what each type of prediction last said.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompanyRisk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annual: Option<TypeRisk>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarterly: Option<TypeRisk>,
}

/// The latest prediction of one type and the one of the reporting period before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeRisk {
    pub latest: Scored,
    #[serde(default)]
    pub previous: Option<Prior>,
}

/// A prediction as the portfolio shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub id: Uuid,
    pub year: i16,
    pub quarter: Option<i16>,
    pub probability: f64,
    pub level: RiskLevel,
    #[serde(default)]
    pub rating: Option<String>,
    /// `name@version`.
    pub model: String,
    pub created_at: DateTime<Utc>,
}

/// The prediction of the period before the latest: what the trend is measured from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prior {
    pub id: Uuid,
    pub year: i16,
    pub quarter: Option<i16>,
    pub probability: f64,
    pub created_at: DateTime<Utc>,
}

impl Scored {
    pub fn period(&self) -> (i16, i16) {
        (self.year, self.quarter.unwrap_or(0))
    }

    fn key(&self) -> HistoryKey {
        (self.period(), self.created_at, self.id)
    }

    fn prior(&self) -> Prior {
        Prior {
            id: self.id,
            year: self.year,
            quarter: self.quarter,
            probability: self.probability,
            created_at: self.created_at,
        }
    }
}

impl Prior {
    fn key(&self) -> HistoryKey {
        ((self.year, self.quarter.unwrap_or(0)), self.created_at, self.id)
    }
}

impl CompanyRisk {
    fn slot(&mut self, kind: PredictionType) -> &mut Option<TypeRisk> {
        match kind {
            PredictionType::Annual => &mut self.annual,
            PredictionType::Quarterly => &mut self.quarterly,
        }
    }

    /// The latest prediction of this type.
    pub fn latest(&self, kind: PredictionType) -> Option<&Scored> {
        match kind {
            PredictionType::Annual => self.annual.as_ref(),
            PredictionType::Quarterly => self.quarterly.as_ref(),
        }
        .map(|t| &t.latest)
    }

    /// Takes a new prediction of this type into the state, wherever it falls in the history: a later period
    /// (or the same period scored again) becomes the latest, pushing the latest back to previous when the
    /// period moved on; an earlier period can only become the previous one.
    pub fn apply(&mut self, kind: PredictionType, new: Scored) {
        let slot = self.slot(kind);
        let Some(state) = slot else {
            *slot = Some(TypeRisk {
                latest: new,
                previous: None,
            });
            return;
        };
        if new.key() > state.latest.key() {
            if new.period() > state.latest.period() {
                state.previous = Some(state.latest.prior());
            }
            state.latest = new;
        } else if new.period() < state.latest.period() && state.previous.as_ref().is_none_or(|p| new.key() > p.key()) {
            state.previous = Some(new.prior());
        }
    }

    /// The current risk: the latest prediction of the type scored last, and the PD of the period before it.
    pub fn current(&self) -> Option<(PredictionType, &Scored, Option<f64>)> {
        let annual = self.annual.as_ref().map(|t| (PredictionType::Annual, t));
        let quarterly = self.quarterly.as_ref().map(|t| (PredictionType::Quarterly, t));
        [annual, quarterly]
            .into_iter()
            .flatten()
            .max_by_key(|(_, t)| (t.latest.created_at, t.latest.id))
            .map(|(kind, t)| (kind, &t.latest, t.previous.as_ref().map(|p| p.probability)))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn scored(year: i16, quarter: Option<i16>, second: i64, probability: f64) -> Scored {
        Scored {
            id: Uuid::now_v7(),
            year,
            quarter,
            probability,
            level: RiskLevel::Low,
            rating: Some("BBB".into()),
            model: "annual/m@1".into(),
            created_at: Utc.timestamp_opt(1_800_000_000 + second, 0).unwrap(),
        }
    }

    /// The state's answer the way the history would be read: the latest row by (period, created, id) and
    /// the latest row of an earlier period.
    fn from_history(rows: &[Scored]) -> Option<(Uuid, Option<Uuid>)> {
        let latest = rows.iter().max_by_key(|r| r.key())?;
        let previous = rows
            .iter()
            .filter(|r| r.period() < latest.period())
            .max_by_key(|r| r.key());
        Some((latest.id, previous.map(|p| p.id)))
    }

    #[test]
    fn any_arrival_order_gives_the_state_the_history_gives() {
        // Periods out of order, the same period scored again, late filings for old periods, equal timestamps.
        let rows = vec![
            scored(2020, None, 0, 0.01),
            scored(2022, None, 1, 0.02),
            scored(2021, None, 2, 0.03),
            scored(2022, None, 3, 0.04),
            scored(2019, None, 4, 0.05),
            scored(2021, None, 4, 0.06),
            scored(2023, None, 5, 0.07),
            scored(2022, None, 6, 0.08),
        ];
        for prefix in 1..=rows.len() {
            let mut risk = CompanyRisk::default();
            for row in &rows[..prefix] {
                risk.apply(PredictionType::Annual, row.clone());
            }
            let state = risk.annual.as_ref().unwrap();
            let got = (state.latest.id, state.previous.as_ref().map(|p| p.id));
            assert_eq!(Some(got), from_history(&rows[..prefix]), "after {prefix} rows");
        }
        // And in reverse arrival order.
        let mut risk = CompanyRisk::default();
        for row in rows.iter().rev() {
            risk.apply(PredictionType::Annual, row.clone());
        }
        let state = risk.annual.as_ref().unwrap();
        assert_eq!(
            Some((state.latest.id, state.previous.as_ref().map(|p| p.id))),
            from_history(&rows)
        );
    }

    #[test]
    fn the_current_risk_is_the_type_scored_last_with_its_own_previous_period() {
        let mut risk = CompanyRisk::default();
        assert!(risk.current().is_none());
        risk.apply(PredictionType::Annual, scored(2021, None, 0, 0.01));
        risk.apply(PredictionType::Annual, scored(2022, None, 1, 0.02));
        risk.apply(PredictionType::Quarterly, scored(2023, Some(1), 2, 0.30));
        let (kind, latest, previous) = risk.current().unwrap();
        assert_eq!(
            (kind, latest.probability, previous),
            (PredictionType::Quarterly, 0.30, None)
        );
        // A late annual filing for an old year is scored last but is not the annual latest: the annual
        // latest (2022) was created before the quarter, so the quarter stays current.
        risk.apply(PredictionType::Annual, scored(2020, None, 3, 0.5));
        assert_eq!(risk.current().unwrap().1.probability, 0.30);
        risk.apply(PredictionType::Annual, scored(2023, None, 4, 0.04));
        let (kind, latest, previous) = risk.current().unwrap();
        assert_eq!(
            (kind, latest.probability, previous),
            (PredictionType::Annual, 0.04, Some(0.02))
        );
    }

    #[test]
    fn the_state_reads_back_what_it_wrote() {
        let mut risk = CompanyRisk::default();
        risk.apply(PredictionType::Quarterly, scored(2023, Some(2), 0, 0.2));
        risk.apply(PredictionType::Quarterly, scored(2023, Some(3), 1, 0.3));
        let json = serde_json::to_value(&risk).unwrap();
        assert!(json.get("annual").is_none());
        assert_eq!(serde_json::from_value::<CompanyRisk>(json).unwrap(), risk);
    }
}
