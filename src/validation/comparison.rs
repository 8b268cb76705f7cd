//! Champion against challenger: how often they agree on the same filings, how far their PDs differ, and
//! how each does against the same credit events.

use std::collections::BTreeSet;

use pdscore_models::risk::MASTER_SCALE;
use serde::Serialize;

use super::backtest::{self, Measures, Observation, quantile};

/// One filing as both models scored it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub level: String,
    pub challenger_level: String,
    pub rating: Option<String>,
    pub challenger_rating: Option<String>,
    pub pd: f64,
    pub challenger_pd: f64,
}

/// Risk levels, lowest first: the rows (the model's) and columns (the challenger's) of [`Agreement::levels`].
pub const LEVELS: [&str; 4] = ["low", "medium", "high", "critical"];

/// The distribution of the challenger's PD minus the model's.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Delta {
    pub mean: f64,
    pub p10: f64,
    pub p50: f64,
    pub p90: f64,
    /// Mean absolute difference.
    pub mean_absolute: f64,
}

/// How the two models' answers on the same filings compare.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Agreement {
    /// Filings scored by both.
    pub filings: u64,
    /// Share of filings given the same risk level (`null` without filings).
    pub level_agreement: Option<f64>,
    /// Counts by the model's level (rows) and the challenger's (columns), in [`LEVELS`] order.
    pub levels: Vec<Vec<u64>>,
    /// Share of filings given the same implied rating, and within one grade of it.
    pub rating_agreement: Option<f64>,
    pub within_one_grade: Option<f64>,
    /// The rating migration matrix: counts by the model's implied rating (rows) and the challenger's
    /// (columns), both in the order of `grades` (the master scale, best first).
    pub grades: Vec<&'static str>,
    pub ratings: Vec<Vec<u64>>,
    /// Filings the challenger rates better (a higher grade) than the model, and worse.
    pub upgrades: u64,
    pub downgrades: u64,
    /// Challenger PD − model PD.
    pub pd_delta: Option<Delta>,
}

fn grade_index(rating: Option<&str>) -> Option<usize> {
    MASTER_SCALE.iter().position(|g| Some(g.grade) == rating)
}

/// Agreement of levels and grades and the PD deltas over `pairs`.
pub fn agreement(pairs: &[Pair]) -> Agreement {
    let n = pairs.len();
    let share = |count: usize| (n > 0).then(|| count as f64 / n as f64);
    let mut levels = vec![vec![0u64; LEVELS.len()]; LEVELS.len()];
    for pair in pairs {
        let row = LEVELS.iter().position(|l| *l == pair.level);
        let column = LEVELS.iter().position(|l| *l == pair.challenger_level);
        if let (Some(row), Some(column)) = (row, column) {
            levels[row][column] += 1;
        }
    }
    let same_level = pairs.iter().filter(|p| p.level == p.challenger_level).count();
    let grades: Vec<(Option<usize>, Option<usize>)> = pairs
        .iter()
        .map(|p| {
            (
                grade_index(p.rating.as_deref()),
                grade_index(p.challenger_rating.as_deref()),
            )
        })
        .collect();
    let mut ratings = vec![vec![0u64; MASTER_SCALE.len()]; MASTER_SCALE.len()];
    let (mut upgrades, mut downgrades) = (0, 0);
    for (from, to) in &grades {
        if let (Some(from), Some(to)) = (from, to) {
            ratings[*from][*to] += 1;
            upgrades += u64::from(to < from);
            downgrades += u64::from(to > from);
        }
    }
    let same_grade = grades.iter().filter(|(a, b)| a.is_some() && a == b).count();
    let near_grade = grades
        .iter()
        .filter(|g| matches!(g, (Some(a), Some(b)) if a.abs_diff(*b) <= 1))
        .count();
    let mut deltas: Vec<f64> = pairs.iter().map(|p| p.challenger_pd - p.pd).collect();
    deltas.sort_by(f64::total_cmp);
    let pd_delta = (n > 0).then(|| Delta {
        mean: deltas.iter().sum::<f64>() / n as f64,
        p10: quantile(&deltas, 0.1),
        p50: quantile(&deltas, 0.5),
        p90: quantile(&deltas, 0.9),
        mean_absolute: deltas.iter().map(|d| d.abs()).sum::<f64>() / n as f64,
    });
    Agreement {
        filings: n as u64,
        level_agreement: share(same_level),
        levels,
        rating_agreement: share(same_grade),
        within_one_grade: share(near_grade),
        grades: MASTER_SCALE.iter().map(|g| g.grade).collect(),
        ratings,
        upgrades,
        downgrades,
        pd_delta,
    }
}

/// Both models back-tested on the same observations: the company-periods both scored.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SideBySide {
    pub model: Measures,
    pub challenger: Measures,
}

/// Back-tests of the model's and the challenger's observations, restricted to the company-periods both have.
pub fn side_by_side(
    model: &[Observation],
    challenger: &[Observation],
    horizon_years: u8,
    today: chrono::NaiveDate,
) -> SideBySide {
    let key = |o: &Observation| (o.company_id, o.period.clone());
    let theirs: BTreeSet<_> = challenger.iter().map(key).collect();
    let ours: BTreeSet<_> = model.iter().map(key).collect();
    let common = |observations: &[Observation], other: &BTreeSet<(uuid::Uuid, String)>| -> Vec<Observation> {
        observations
            .iter()
            .filter(|o| other.contains(&key(o)))
            .cloned()
            .collect()
    };
    SideBySide {
        model: backtest::evaluate(&common(model, &theirs), horizon_years, today).measures,
        challenger: backtest::evaluate(&common(challenger, &ours), horizon_years, today).measures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(level: &str, other: &str, rating: &str, other_rating: &str, pd: f64, other_pd: f64) -> Pair {
        Pair {
            level: level.into(),
            challenger_level: other.into(),
            rating: Some(rating.into()),
            challenger_rating: Some(other_rating.into()),
            pd,
            challenger_pd: other_pd,
        }
    }

    #[test]
    fn agreement_counts_levels_grades_and_deltas() {
        let pairs = [
            pair("low", "low", "BBB", "BBB", 0.002, 0.003),
            pair("low", "medium", "BBB", "BB", 0.003, 0.01),
            pair("high", "critical", "B", "CCC/C", 0.05, 0.3),
            pair("medium", "medium", "BB", "A", 0.01, 0.001),
        ];
        let a = agreement(&pairs);
        assert_eq!(a.filings, 4);
        assert_eq!(a.level_agreement, Some(0.5));
        assert_eq!(a.levels[0], vec![1, 1, 0, 0]);
        assert_eq!(a.levels[2][3], 1);
        assert_eq!(a.rating_agreement, Some(0.25));
        // BBB→BB and B→CCC/C are one grade apart; BB→A two.
        assert_eq!(a.within_one_grade, Some(0.75));
        // BBB→BB and B→CCC/C are downgrades, BB→A an upgrade.
        assert_eq!((a.upgrades, a.downgrades), (1, 2));
        assert_eq!(a.ratings[3][3], 1, "BBB stays BBB once");
        assert_eq!(a.ratings.iter().flatten().sum::<u64>(), 4);
        let delta = a.pd_delta.unwrap();
        assert!((delta.mean - (0.001 + 0.007 + 0.25 - 0.009) / 4.0).abs() < 1e-12);
        assert_eq!(delta.p90, 0.25);
        assert_eq!(agreement(&[]).level_agreement, None);
    }
}
