//! From a PD to what people act on: a risk level and an implied rating grade.

use serde::{Deserialize, Serialize};

use crate::kinds::RiskLevel;

/// How PDs map to risk levels. Tenants choose one (stored with the tenant); [`RiskScheme::MasterScale`]
/// is the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "snake_case")]
pub enum RiskScheme {
    /// The product's default, the implied rating's bands ([`MASTER_SCALE`]): LOW for investment grade
    /// (AAA–BBB, PD ≤ 0.33 %), MEDIUM for BB (≤ 1.47 %), HIGH for B (≤ 9.44 %), CRITICAL for CCC/C. A
    /// level never disagrees with the rating shown beside it.
    #[default]
    MasterScale,
    /// The first product's bands: LOW ≤ 0.20 < MEDIUM ≤ 0.50 < HIGH (coarse: a B-rated firm is LOW).
    Seed,
    /// AccuNode's rule, bit for bit: with `pct = p * 100`, `pct > 15` CRITICAL, `pct >= 5` HIGH,
    /// `pct >= 2` MEDIUM, else LOW.
    Accunode,
    /// Upper bounds (inclusive) of LOW, MEDIUM and, if given, HIGH; above the last bound is the next level.
    Thresholds {
        low_max: f64,
        medium_max: f64,
        high_max: Option<f64>,
    },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("risk thresholds must be increasing probabilities in (0, 1): {0}")]
pub struct InvalidThresholds(pub String);

impl RiskScheme {
    pub fn level(&self, pd: f64) -> RiskLevel {
        match *self {
            Self::MasterScale => Self::level_of_grade(implied_rating(pd)),
            Self::Seed => Self::by_bounds(pd, 0.20, 0.50, None),
            Self::Accunode => {
                let pct = pd * 100.0;
                if pct > 15.0 {
                    RiskLevel::Critical
                } else if pct >= 5.0 {
                    RiskLevel::High
                } else if pct >= 2.0 {
                    RiskLevel::Medium
                } else {
                    RiskLevel::Low
                }
            }
            Self::Thresholds {
                low_max,
                medium_max,
                high_max,
            } => Self::by_bounds(pd, low_max, medium_max, high_max),
        }
    }

    /// The level of an implied-rating grade under [`RiskScheme::MasterScale`].
    pub fn level_of_grade(grade: &str) -> RiskLevel {
        match grade {
            "AAA" | "AA" | "A" | "BBB" => RiskLevel::Low,
            "BB" => RiskLevel::Medium,
            "B" => RiskLevel::High,
            _ => RiskLevel::Critical,
        }
    }

    fn by_bounds(pd: f64, low_max: f64, medium_max: f64, high_max: Option<f64>) -> RiskLevel {
        if pd <= low_max {
            RiskLevel::Low
        } else if pd <= medium_max {
            RiskLevel::Medium
        } else if high_max.is_none_or(|h| pd <= h) {
            RiskLevel::High
        } else {
            RiskLevel::Critical
        }
    }

    /// Checks a tenant-supplied scheme.
    pub fn validate(&self) -> Result<(), InvalidThresholds> {
        if let Self::Thresholds {
            low_max,
            medium_max,
            high_max,
        } = *self
        {
            let bounds: Vec<f64> = [Some(low_max), Some(medium_max), high_max]
                .into_iter()
                .flatten()
                .collect();
            let in_range = bounds.iter().all(|b| *b > 0.0 && *b < 1.0);
            let increasing = bounds.windows(2).all(|w| w[0] < w[1]);
            if !(in_range && increasing) {
                return Err(InvalidThresholds(format!("{bounds:?}")));
            }
        }
        Ok(())
    }
}

/// One grade of the PD master scale.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Grade {
    pub grade: &'static str,
    /// The grade's representative one-year PD.
    pub anchor_pd: f64,
    /// PDs up to this bound (inclusive) get this grade or a better one.
    pub upper_pd: f64,
}

/// The implied-rating master scale, S&P-style letter grades.
///
/// Anchors are the long-run average one-year default rates of S&P-rated corporates per rating category
/// (S&P Global Ratings, *Annual Global Corporate Default and Rating Transition Study*, 1981 onwards,
/// rounded; AAA, where no default was observed, is floored at 0.01 %). Each boundary is the geometric
/// mean of the two adjacent anchors, the usual construction of a master scale on a log-PD axis. The grade
/// is an *implied* rating for orientation — not a rating, and not S&P's.
pub const MASTER_SCALE: [Grade; 7] = [
    Grade {
        grade: "AAA",
        anchor_pd: 0.0001,
        upper_pd: 0.000_141_4,
    },
    Grade {
        grade: "AA",
        anchor_pd: 0.0002,
        upper_pd: 0.000_346_4,
    },
    Grade {
        grade: "A",
        anchor_pd: 0.0006,
        upper_pd: 0.001_01,
    },
    Grade {
        grade: "BBB",
        anchor_pd: 0.0017,
        upper_pd: 0.003_324,
    },
    Grade {
        grade: "BB",
        anchor_pd: 0.0065,
        upper_pd: 0.014_65,
    },
    Grade {
        grade: "B",
        anchor_pd: 0.033,
        upper_pd: 0.094_39,
    },
    Grade {
        grade: "CCC/C",
        anchor_pd: 0.27,
        upper_pd: 1.0,
    },
];

/// The implied rating of a one-year PD.
pub fn implied_rating(pd: f64) -> &'static str {
    MASTER_SCALE
        .iter()
        .find(|g| pd <= g.upper_pd)
        .map_or("CCC/C", |g| g.grade)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_scheme_has_inclusive_upper_bounds() {
        let s = RiskScheme::Seed;
        assert_eq!(s.level(0.0), RiskLevel::Low);
        assert_eq!(s.level(0.20), RiskLevel::Low);
        assert_eq!(s.level(0.200_000_1), RiskLevel::Medium);
        assert_eq!(s.level(0.50), RiskLevel::Medium);
        assert_eq!(s.level(0.51), RiskLevel::High);
        assert_eq!(s.level(1.0), RiskLevel::High);
    }

    #[test]
    fn the_default_scheme_follows_the_implied_rating() {
        let s = RiskScheme::default();
        assert_eq!(s, RiskScheme::MasterScale);
        for grade in MASTER_SCALE {
            assert_eq!(
                s.level(grade.anchor_pd),
                RiskScheme::level_of_grade(grade.grade),
                "{}",
                grade.grade
            );
        }
        assert_eq!(s.level(0.003), RiskLevel::Low);
        assert_eq!(s.level(0.01), RiskLevel::Medium);
        assert_eq!(s.level(0.04), RiskLevel::High);
        assert_eq!(s.level(0.2), RiskLevel::Critical);
        let json: RiskScheme = serde_json::from_str(r#"{"scheme":"master_scale"}"#).unwrap();
        assert_eq!(json, RiskScheme::MasterScale);
    }

    #[test]
    fn the_accunode_scheme_compares_percentages_like_the_original() {
        let s = RiskScheme::Accunode;
        assert_eq!(s.level(0.0199), RiskLevel::Low);
        assert_eq!(s.level(0.02), RiskLevel::Medium);
        assert_eq!(s.level(0.05), RiskLevel::High);
        assert_eq!(s.level(0.15), RiskLevel::High);
        assert_eq!(s.level(0.1500001), RiskLevel::Critical);
    }

    #[test]
    fn custom_thresholds_are_validated() {
        let ok = RiskScheme::Thresholds {
            low_max: 0.01,
            medium_max: 0.05,
            high_max: Some(0.2),
        };
        assert!(ok.validate().is_ok());
        assert_eq!(ok.level(0.3), RiskLevel::Critical);
        let bad = RiskScheme::Thresholds {
            low_max: 0.05,
            medium_max: 0.01,
            high_max: None,
        };
        assert!(bad.validate().is_err());
        let json: RiskScheme = serde_json::from_str(r#"{"scheme":"accunode"}"#).unwrap();
        assert_eq!(json, RiskScheme::Accunode);
    }

    #[test]
    fn the_master_scale_is_monotone_and_its_boundaries_are_geometric_means() {
        for pair in MASTER_SCALE.windows(2) {
            assert!(pair[0].anchor_pd < pair[1].anchor_pd);
            let mean = (pair[0].anchor_pd * pair[1].anchor_pd).sqrt();
            assert!((pair[0].upper_pd - mean).abs() / mean < 0.01, "{}", pair[0].grade);
        }
        assert_eq!(implied_rating(0.0), "AAA");
        assert_eq!(implied_rating(0.0017), "BBB");
        assert_eq!(implied_rating(0.04), "B");
        assert_eq!(implied_rating(0.5), "CCC/C");
        assert_eq!(implied_rating(1.0), "CCC/C");
    }
}
