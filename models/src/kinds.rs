//! Prediction types and risk levels: the names every layer (API, database, NATS subjects) agrees on.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A name that is not one of the known values of a kind.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown {kind} {value:?}; expected one of: {expected}")]
pub struct UnknownKind {
    pub kind: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// Which statement a prediction is made from: a fiscal year or a quarter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PredictionType {
    Annual,
    Quarterly,
}

impl PredictionType {
    pub const ALL: [Self; 2] = [Self::Annual, Self::Quarterly];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Annual => "annual",
            Self::Quarterly => "quarterly",
        }
    }
}

impl fmt::Display for PredictionType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PredictionType {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownKind {
                kind: "prediction type",
                value: s.to_owned(),
                expected: "annual, quarterly",
            })
    }
}

/// The risk band a PD falls in. Ordered from least to most risky, so `a < b` means "b is riskier".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskLevel {
    Low,
    Medium,
    High,
    Critical,
}

impl RiskLevel {
    pub const ALL: [Self; 4] = [Self::Low, Self::Medium, Self::High, Self::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

impl fmt::Display for RiskLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RiskLevel {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownKind {
                kind: "risk level",
                value: s.to_owned(),
                expected: "low, medium, high, critical",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_json() {
        for t in PredictionType::ALL {
            assert_eq!(t.as_str().parse::<PredictionType>().unwrap(), t);
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{t}\""));
        }
        for l in RiskLevel::ALL {
            assert_eq!(l.to_string().to_uppercase().parse::<RiskLevel>().unwrap(), l);
            assert_eq!(serde_json::to_string(&l).unwrap(), format!("\"{l}\""));
        }
    }

    #[test]
    fn unknown_names_say_what_is_expected() {
        let err = "monthly".parse::<PredictionType>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown prediction type \"monthly\"; expected one of: annual, quarterly"
        );
    }

    #[test]
    fn risk_levels_are_ordered_by_risk() {
        assert!(RiskLevel::Low < RiskLevel::Medium && RiskLevel::High < RiskLevel::Critical);
    }
}
