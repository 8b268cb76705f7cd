//! From model PDs to what a portfolio sees: the base-rate (prior) adjustment and the cumulative PD curve.
//!
//! * **Base rate.** A model's PD carries the default rate of the sample it was trained on (the Polish data
//!   over-samples bankruptcies: 6.9 % of the 5year rows). A portfolio with another one-year default rate
//!   `π` gets the prior-shifted PD `logit(p') = logit(p) - logit(π_sample) + logit(π)` (Saerens et al.,
//!   *Neural Computation* 14, 2002): the ranking is unchanged, the level follows the portfolio.
//! * **Term structure.** The 1-year PD and the 5-year model's PD are two models; their curve is built so
//!   that it is monotone by construction: year 1 defaults at the 1-year PD, years 2–5 at the 5-year
//!   model's average annual hazard `h = 1 - (1 - p5)^(1/5)`, so `PD(t) = 1 - (1 - p1)(1 - h)^(t-1)`:
//!   `PD(1) = p1 ≤ PD(2) ≤ … ≤ PD(5) ≤ 1`, and `PD(5) = p5` exactly when the two agree on a flat hazard.
//!   The 5-year PD is first shifted to the portfolio's five-year base rate `1 - (1 - π)^5` (a flat
//!   portfolio hazard: the two samples' own rates, 6.9 % and 3.9 %, are artefacts of how each was drawn).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `ln(p / (1 - p))`, with `p` kept inside (0, 1).
fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    (p / (1.0 - p)).ln()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// The PD `p` of a model calibrated to `sample_rate`, for a portfolio whose base rate is `target_rate`.
pub fn rebase(p: f64, sample_rate: f64, target_rate: f64) -> f64 {
    if sample_rate == target_rate {
        return p;
    }
    sigmoid(logit(p) - logit(sample_rate) + logit(target_rate))
}

/// The five-year cumulative base rate of a portfolio with a flat one-year rate.
pub fn five_year_rate(one_year_rate: f64) -> f64 {
    1.0 - (1.0 - one_year_rate).powi(5)
}

/// A cumulative PD curve over years 1–5 and the annualised (conditional) hazard of each year. As JSON:
/// `{"cumulative": {"1y": …, …, "5y": …}, "annual_hazard": {"1y": …, …, "5y": …}}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(into = "ByHorizon")]
pub struct TermStructure {
    /// `cumulative[t - 1]` = probability of default within `t` years.
    pub cumulative: [f64; 5],
    /// `hazard[t - 1]` = probability of defaulting in year `t` having survived the years before it.
    pub hazard: [f64; 5],
}

impl TermStructure {
    /// The curve from a 1-year PD and a 5-year PD (both for the same portfolio base rate).
    pub fn from_horizons(pd_1y: f64, pd_5y: f64) -> Self {
        let p1 = pd_1y.clamp(0.0, 1.0);
        let later = 1.0 - (1.0 - pd_5y.clamp(0.0, 1.0)).powf(0.2);
        let mut hazard = [later; 5];
        hazard[0] = p1;
        let mut cumulative = [p1; 5];
        let mut survival = 1.0 - p1;
        for t in 1..5 {
            survival *= 1.0 - hazard[t];
            // `max`: rounding of 1 - survival must not undo the order the hazards guarantee.
            cumulative[t] = (1.0 - survival).max(cumulative[t - 1]);
        }
        Self { cumulative, hazard }
    }
}

/// [`TermStructure`] keyed by horizon, as stored and answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ByHorizon {
    pub cumulative: BTreeMap<String, f64>,
    pub annual_hazard: BTreeMap<String, f64>,
}

impl From<TermStructure> for ByHorizon {
    fn from(t: TermStructure) -> Self {
        let by_year = |values: [f64; 5]| {
            values
                .iter()
                .enumerate()
                .map(|(year, p)| (format!("{}y", year + 1), *p))
                .collect()
        };
        Self {
            cumulative: by_year(t.cumulative),
            annual_hazard: by_year(t.hazard),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_curve_meets_both_models_when_they_agree() {
        let p5 = 0.2;
        let flat = 1.0 - (1.0f64 - p5).powf(0.2);
        let curve = TermStructure::from_horizons(flat, p5);
        assert!((curve.cumulative[4] - p5).abs() < 1e-12);
        assert!(curve.hazard.iter().all(|h| (h - flat).abs() < 1e-12));
        // A distressed firm the 5-year model ranks lower: year 1 carries the risk, the curve still rises.
        let curve = TermStructure::from_horizons(0.3, 0.1);
        assert_eq!(curve.cumulative[0], 0.3);
        assert!(curve.cumulative[4] > 0.3 && curve.cumulative[4] < 0.4);
        let json = serde_json::to_value(curve).unwrap();
        assert_eq!(json["cumulative"]["1y"], 0.3);
        assert_eq!(json["annual_hazard"]["1y"], 0.3);
        assert_eq!(json["cumulative"].as_object().unwrap().len(), 5);
    }

    #[test]
    fn rebasing_moves_the_level_and_keeps_the_order() {
        assert_eq!(rebase(0.1, 0.07, 0.07), 0.1);
        let (a, b) = (rebase(0.05, 0.0694, 0.02), rebase(0.2, 0.0694, 0.02));
        assert!(a < 0.05 && b < 0.2 && a < b);
        // The sample's own base rate maps to the target.
        assert!((rebase(0.0694, 0.0694, 0.02) - 0.02).abs() < 1e-12);
        assert!((five_year_rate(0.02) - 0.096_079_2).abs() < 1e-6);
    }

    proptest! {
        #[test]
        fn the_curve_is_monotone_and_bounded(p1 in 0.0f64..=1.0, p5 in 0.0f64..=1.0) {
            let curve = TermStructure::from_horizons(p1, p5);
            prop_assert_eq!(curve.cumulative[0], p1);
            for w in curve.cumulative.windows(2) {
                prop_assert!(w[0] <= w[1] + 1e-15);
            }
            prop_assert!(curve.cumulative[4] <= 1.0);
            prop_assert!(curve.hazard.iter().all(|h| (0.0..=1.0).contains(h)));
        }
    }
}
