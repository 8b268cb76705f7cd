//! Population stability: how far the distribution of a model's inputs and of its PDs has moved from a
//! reference — the model's training sample, or a past window of the same tenant's predictions.
//!
//! Each series (the PD, then every input feature) is cut into bins by fixed edges: `(-∞, e₀)`, `[e₀, e₁)`,
//! …, `[eₖ₋₁, +∞)`, and one more bin for missing values (an absent line item is a population shift too).
//! The population stability index of an actual distribution `a` against an expected one `e` is
//! `PSI = Σᵢ (aᵢ − eᵢ) · ln(aᵢ / eᵢ)`, each share floored at [`SHARE_FLOOR`] so an empty bin gives a large
//! but finite term. The usual reading: below 0.10 stable, 0.10–0.25 a moderate shift worth watching, above
//! 0.25 a significant shift (the model is scoring a population it was not built on).
//!
//! Where the edges come from:
//! - a trained model's card carries a `training_profile` ([`Profile::from_sample`]): the deciles of each
//!   series over the training sample as the service computes it (the served features of the statements
//!   behind the data rows, and the model's own PDs on them), and the sample's share in each bin;
//! - a model without a training sample (AccuNode's scorecards) is binned on its own bins for each feature
//!   (the characteristic analysis scorecard builders use) and on the master scale's grades for the PD; it
//!   has no training shares, so only the comparison with a past window is possible.

use serde::{Deserialize, Serialize};

use crate::{
    registry::{LoadedModel, Model},
    risk::MASTER_SCALE,
};

/// Smallest share a bin counts with in [`psi`].
pub const SHARE_FLOOR: f64 = 1e-4;

/// The name of the PD series in a profile.
pub const PD_SERIES: &str = "pd";

/// How a model's training sample is distributed, as stored in its card (`training_profile`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// What the sample is, in words.
    pub sample: String,
    /// Rows in the sample.
    pub rows: u64,
    /// The PD first, then the features in the model's order.
    pub series: Vec<Series>,
}

/// One series' bins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub name: String,
    /// Increasing interior cut points: `edges.len() + 1` value bins, then the missing bin.
    pub edges: Vec<f64>,
    /// The reference sample's share in each bin (missing last), summing to 1; `None` when there is no
    /// training sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Vec<f64>>,
}

impl Series {
    /// Bins, the missing bin included.
    pub fn bins(&self) -> usize {
        self.edges.len() + 2
    }

    /// The bin of `value`: the number of edges at or below it; missing (or not finite) is the last bin.
    pub fn bin(&self, value: Option<f64>) -> usize {
        match value {
            Some(v) if v.is_finite() => self.edges.partition_point(|e| *e <= v),
            _ => self.edges.len() + 1,
        }
    }

    /// Counts of `values` per bin.
    pub fn count(&self, values: impl IntoIterator<Item = Option<f64>>) -> Vec<u64> {
        let mut counts = vec![0; self.bins()];
        for value in values {
            counts[self.bin(value)] += 1;
        }
        counts
    }
}

/// The interior cut points at the deciles of `values` (missing ones ignored), ties merged: a value
/// that fills several deciles gets one bin.
pub fn decile_edges(values: &[Option<f64>]) -> Vec<f64> {
    let mut present: Vec<f64> = values.iter().flatten().copied().filter(|v| v.is_finite()).collect();
    present.sort_by(f64::total_cmp);
    let mut edges: Vec<f64> = Vec::new();
    if present.is_empty() {
        return edges;
    }
    for k in 1..10 {
        let edge = present[k * present.len() / 10];
        // An edge at the smallest value would leave the first bin empty by construction.
        if edge > present[0] && edges.last().is_none_or(|last| edge > *last) {
            edges.push(edge);
        }
    }
    edges
}

/// Shares of `counts` (all zero when they are).
pub fn shares(counts: &[u64]) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    counts
        .iter()
        .map(|&c| if total == 0 { 0.0 } else { c as f64 / total as f64 })
        .collect()
}

/// The population stability index of `actual` against `expected` (shares of the same bins), each share
/// floored at [`SHARE_FLOOR`]. `None` when the bins differ in number.
pub fn psi(expected: &[f64], actual: &[f64]) -> Option<f64> {
    if expected.len() != actual.len() || expected.is_empty() {
        return None;
    }
    Some(
        expected
            .iter()
            .zip(actual)
            .map(|(&e, &a)| {
                let (e, a) = (e.max(SHARE_FLOOR), a.max(SHARE_FLOOR));
                (a - e) * (a / e).ln()
            })
            .sum(),
    )
}

impl Profile {
    /// The profile of a sample: `rows` of features named `names` (in order) and the model's `pds` on them.
    pub fn from_sample(sample: String, names: &[&str], rows: &[Vec<Option<f64>>], pds: &[f64]) -> Self {
        let mut series = Vec::with_capacity(names.len() + 1);
        let pd_values: Vec<Option<f64>> = pds.iter().map(|&p| Some(p)).collect();
        series.push(Self::sample_series(PD_SERIES, &pd_values));
        for (j, name) in names.iter().enumerate() {
            let column: Vec<Option<f64>> = rows.iter().map(|r| r.get(j).copied().flatten()).collect();
            series.push(Self::sample_series(name, &column));
        }
        Self {
            sample,
            rows: rows.len() as u64,
            series,
        }
    }

    fn sample_series(name: &str, values: &[Option<f64>]) -> Series {
        let mut series = Series {
            name: name.to_owned(),
            edges: decile_edges(values),
            expected: None,
        };
        series.expected = Some(shares(&series.count(values.iter().copied())));
        series
    }

    /// The series a model's drift is measured on: its card's training profile when it has one, else its own
    /// bins (scorecards) and the master scale, without expected shares. `None` for a model with neither.
    pub fn of_model(model: &LoadedModel) -> Result<Option<Self>, String> {
        if let Some(profile) = model.card.get("training_profile") {
            let profile: Self = serde_json::from_value(profile.clone())
                .map_err(|e| format!("{}: the card's training_profile is malformed: {e}", model.id()))?;
            profile
                .check(&model.entry.feature_set.names())
                .map_err(|e| format!("{}: {e}", model.id()))?;
            return Ok(Some(profile));
        }
        let Model::Scorecard(card) = &model.model else {
            return Ok(None);
        };
        let mut series = vec![Series {
            name: PD_SERIES.into(),
            edges: MASTER_SCALE[..MASTER_SCALE.len() - 1]
                .iter()
                .map(|g| g.upper_pd)
                .collect(),
            expected: None,
        }];
        for feature in &card.spec().features {
            let mut edges: Vec<f64> = feature
                .bins
                .iter()
                .flat_map(|b| [b.low, b.high])
                .flatten()
                .filter(|e| e.is_finite())
                .collect();
            edges.sort_by(f64::total_cmp);
            edges.dedup();
            series.push(Series {
                name: feature.name.clone(),
                edges,
                expected: None,
            });
        }
        Ok(Some(Self {
            sample: "none: the model's training sample is not available (bins are the model's own)".into(),
            rows: 0,
            series,
        }))
    }

    /// Whether the profile reads the PD and then exactly `names`, with increasing edges and shares that
    /// match its bins.
    pub fn check(&self, names: &[&str]) -> Result<(), String> {
        let expected_names = std::iter::once(PD_SERIES).chain(names.iter().copied());
        if !self.series.iter().map(|s| s.name.as_str()).eq(expected_names) {
            return Err("the training profile's series are not the PD and the model's features in order".into());
        }
        for s in &self.series {
            if s.edges.iter().any(|e| !e.is_finite()) || s.edges.windows(2).any(|w| w[0] >= w[1]) {
                return Err(format!("the training profile's edges of {} are not increasing", s.name));
            }
            if let Some(shares) = &s.expected {
                let total: f64 = shares.iter().sum();
                if shares.len() != s.bins()
                    || shares.iter().any(|x| !(0.0..=1.0).contains(x))
                    || (total - 1.0).abs() > 1e-6
                {
                    return Err(format!(
                        "the training profile's shares of {} do not fit its bins",
                        s.name
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fall_in_the_bin_of_the_edges_at_or_below_them_and_missing_in_the_last() {
        let s = Series {
            name: "x".into(),
            edges: vec![0.0, 1.0],
            expected: None,
        };
        assert_eq!(s.bins(), 4);
        assert_eq!(s.bin(Some(-0.5)), 0);
        assert_eq!(s.bin(Some(0.0)), 1);
        assert_eq!(s.bin(Some(0.99)), 1);
        assert_eq!(s.bin(Some(1.0)), 2);
        assert_eq!(s.bin(Some(1e300)), 2);
        assert_eq!(s.bin(None), 3);
        assert_eq!(s.bin(Some(f64::NAN)), 3);
        assert_eq!(s.count([Some(-1.0), None, Some(2.0), Some(3.0)]), vec![1, 0, 2, 1]);
    }

    #[test]
    fn psi_is_zero_for_the_same_distribution_and_matches_the_formula_otherwise() {
        assert_eq!(psi(&[0.25, 0.75], &[0.25, 0.75]), Some(0.0));
        let expected = [0.5, 0.3, 0.2];
        let actual = [0.3, 0.3, 0.4];
        let by_hand = (0.3 - 0.5) * (0.3f64 / 0.5).ln() + 0.0 + (0.4 - 0.2) * (0.4f64 / 0.2).ln();
        assert!((psi(&expected, &actual).unwrap() - by_hand).abs() < 1e-15);
        // An empty bin is floored, not infinite.
        let empty = psi(&[0.5, 0.5], &[1.0, 0.0]).unwrap();
        assert!(empty.is_finite() && empty > 2.0);
        assert_eq!(psi(&[1.0], &[0.5, 0.5]), None);
    }

    #[test]
    fn decile_edges_merge_ties_and_ignore_missing_values() {
        let values: Vec<Option<f64>> = (0..100).map(|i| Some(f64::from(i))).chain([None; 50]).collect();
        assert_eq!(
            decile_edges(&values),
            vec![10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0]
        );
        // Half zeros: the zeros are one bin.
        let zeros: Vec<Option<f64>> = (0..100)
            .map(|i| Some(if i < 50 { 0.0 } else { f64::from(i) }))
            .collect();
        assert_eq!(decile_edges(&zeros), vec![50.0, 60.0, 70.0, 80.0, 90.0]);
        assert!(decile_edges(&[None, Some(f64::NAN)]).is_empty());
        let profile = Profile::from_sample("s".into(), &["x"], &[vec![Some(1.0)], vec![None]], &[0.1, 0.2]);
        assert_eq!(profile.series[1].expected.as_deref(), Some(&[0.5, 0.5][..]));
        profile.check(&["x"]).unwrap();
        assert!(profile.check(&["y"]).is_err());
    }
}
