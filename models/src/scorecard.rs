//! AccuNode's binned logistic scorecards on Burn tensors, reproducing the original's probabilities bit for
//! bit (`../shared/reference/accunode_scorecards.json`, `semantics`).
//!
//! For each feature, a value takes the default rate of the **first** bin with `low < x <= high` (plain
//! IEEE-754 comparisons; `null` bounds are ±∞); a missing value (NaN) takes the feature's missing rate; a
//! value in no bin (`x <= the first finite low`, `x > a finite top`, `-inf`) takes the first bin's rate.
//! Then `z = ((((0 + c0·r0) + c1·r1) + …) + intercept`, one multiplication and one addition at a time in
//! feature order, and `p = 1 / (1 + exp(-z))` in f64.
//!
//! Explanations are exact: feature j contributes `c_j · (r_j − min_rate_j)` logits against the baseline
//! company that sits in every feature's lowest-rate bin; the contributions add up to `z − z_baseline`.

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::explain::Contribution;

/// One bin: `low < x <= high`; `None` bounds are -∞ / +∞.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// Historical default rate of the bin.
    pub rate: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScorecardFeature {
    /// API name (`long_term_debt_to_total_capital`).
    pub name: String,
    /// Words for reason codes (`long-term debt / total capital`).
    pub label: String,
    /// `"%"` or `"x"`.
    pub unit: String,
    pub bins: Vec<Bin>,
    pub missing_rate: f64,
}

/// The parameters of one scorecard, as stored in its artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScorecardSpec {
    pub features: Vec<ScorecardFeature>,
    pub coefficients: Vec<f64>,
    pub intercept: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid scorecard: {0}")]
pub struct InvalidScorecard(pub String);

/// How a value was binned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOutcome {
    /// In bin `index` (0-based).
    Bin(usize),
    /// Missing: the missing rate applies.
    Missing,
    /// In no bin: the first bin's rate applies.
    Outside,
}

/// A scorecard ready to score batches.
#[derive(Debug, Clone)]
pub struct Scorecard {
    spec: ScorecardSpec,
    device: Device,
    /// Per feature: `[1, K]` lows (-∞ for open), highs (+∞ for open), rates, and bin codes 1..=K.
    lows: Vec<Tensor<2>>,
    highs: Vec<Tensor<2>>,
    rates: Vec<Tensor<2>>,
    codes: Vec<Tensor<2, Int>>,
}

/// One scored row.
#[derive(Debug, Clone, PartialEq)]
pub struct ScorecardOutput {
    pub pd: f64,
    pub logit: f64,
    /// Logit of the baseline company (lowest-rate bin everywhere).
    pub baseline_logit: f64,
    pub rates: Vec<f64>,
    pub outcomes: Vec<BinOutcome>,
    pub contributions: Vec<Contribution>,
}

impl Scorecard {
    pub fn new(spec: ScorecardSpec, device: &Device) -> Result<Self, InvalidScorecard> {
        validate(&spec)?;
        let row = |values: Vec<f64>| {
            let k = values.len();
            Tensor::<2>::from_data(TensorData::new(values, [1, k]), (device, DType::F64))
        };
        let (mut lows, mut highs, mut rates, mut codes) = (vec![], vec![], vec![], vec![]);
        for feature in &spec.features {
            let k = feature.bins.len();
            lows.push(row(feature
                .bins
                .iter()
                .map(|b| b.low.unwrap_or(f64::NEG_INFINITY))
                .collect()));
            highs.push(row(feature
                .bins
                .iter()
                .map(|b| b.high.unwrap_or(f64::INFINITY))
                .collect()));
            rates.push(row(feature.bins.iter().map(|b| b.rate).collect()));
            let code: Vec<i64> = (1..=k as i64).collect();
            codes.push(Tensor::<2, Int>::from_data(TensorData::new(code, [1, k]), device));
        }
        Ok(Self {
            spec,
            device: device.clone(),
            lows,
            highs,
            rates,
            codes,
        })
    }

    pub fn spec(&self) -> &ScorecardSpec {
        &self.spec
    }

    pub fn feature_names(&self) -> Vec<&str> {
        self.spec.features.iter().map(|f| f.name.as_str()).collect()
    }

    /// Scores a batch of rows (`None` = missing), each with one value per feature in order.
    pub fn score(&self, rows: &[Vec<Option<f64>>]) -> Vec<ScorecardOutput> {
        let n = rows.len();
        if n == 0 {
            return Vec::new();
        }
        let nf = self.spec.features.len();
        let mut z = Tensor::<2>::zeros([n, 1], (&self.device, DType::F64));
        let mut rate_columns = Vec::with_capacity(nf);
        let mut code_columns = Vec::with_capacity(nf);
        for (j, feature) in self.spec.features.iter().enumerate() {
            let column: Vec<f64> = rows
                .iter()
                .map(|r| r.get(j).copied().flatten().unwrap_or(f64::NAN))
                .collect();
            let x = Tensor::<2>::from_data(TensorData::new(column, [n, 1]), (&self.device, DType::F64));
            let (rate, code) = self.bin(j, feature, x);
            // Separate multiply and add, in feature order: the original's exact floating-point sequence.
            z = z.add(rate.clone().mul_scalar(self.spec.coefficients[j]));
            rate_columns.push(read_f64(rate));
            code_columns.push(read_i64(code));
        }
        let z = z.add_scalar(self.spec.intercept);
        let p = z.clone().neg().exp().add_scalar(1.0).recip();
        let (z, p) = (read_f64(z), read_f64(p));

        let minimums: Vec<f64> = self.spec.features.iter().map(min_rate).collect();
        let baseline_logit = self.baseline_logit(&minimums);
        (0..n)
            .map(|i| {
                let rates: Vec<f64> = rate_columns.iter().map(|c| c[i]).collect();
                let outcomes: Vec<BinOutcome> = (0..nf)
                    .map(|j| match code_columns[j][i] {
                        -1 => BinOutcome::Missing,
                        0 => BinOutcome::Outside,
                        k => BinOutcome::Bin(k as usize - 1),
                    })
                    .collect();
                let contributions = (0..nf)
                    .map(|j| {
                        self.contribution(j, rows[i].get(j).copied().flatten(), rates[j], minimums[j], outcomes[j])
                    })
                    .collect();
                ScorecardOutput {
                    pd: p[i],
                    logit: z[i],
                    baseline_logit,
                    rates,
                    outcomes,
                    contributions,
                }
            })
            .collect()
    }

    /// `[n,1]` rates and bin codes (k+1 for bin k, 0 outside every bin, -1 missing) of feature `j`.
    fn bin(&self, j: usize, feature: &ScorecardFeature, x: Tensor<2>) -> (Tensor<2>, Tensor<2, Int>) {
        let [n, _] = x.dims();
        let k = feature.bins.len();
        let missing = x.clone().is_nan();
        let wide = x.expand([n, k]);
        let in_bin = wide
            .clone()
            .greater(self.lows[j].clone().expand([n, k]))
            .bool_and(wide.lower_equal(self.highs[j].clone().expand([n, k])));
        // Bins are validated disjoint, so at most one bin matches and these sums add one term to zeros.
        let rate = in_bin
            .clone()
            .float()
            .cast(DType::F64)
            .mul(self.rates[j].clone().expand([n, k]))
            .sum_dim(1);
        let code = in_bin.int().mul(self.codes[j].clone().expand([n, k])).sum_dim(1);
        let outside = code.clone().equal_elem(0);
        let rate = rate
            .mask_fill(outside, feature.bins[0].rate)
            .mask_fill(missing.clone(), feature.missing_rate);
        let code = code.mask_fill(missing, -1);
        (rate, code)
    }

    fn baseline_logit(&self, minimums: &[f64]) -> f64 {
        let mut z = 0.0;
        for (c, r) in self.spec.coefficients.iter().zip(minimums) {
            z += c * r;
        }
        z + self.spec.intercept
    }

    fn contribution(&self, j: usize, value: Option<f64>, rate: f64, minimum: f64, outcome: BinOutcome) -> Contribution {
        let feature = &self.spec.features[j];
        let maximum = feature.bins.iter().map(|b| b.rate).fold(f64::NEG_INFINITY, f64::max);
        let shown = value.map(|v| format_value(v, &feature.unit));
        let rate_pct = rate * 100.0;
        let reason = match (outcome, shown) {
            (BinOutcome::Missing, _) | (_, None) => {
                format!(
                    "{} not reported: the missing-value default rate {rate_pct:.2} % applies",
                    feature.label
                )
            }
            (BinOutcome::Outside, Some(shown)) => format!(
                "{} {shown} is outside every bin: the first bin's default rate {rate_pct:.2} % applies",
                feature.label
            ),
            (BinOutcome::Bin(index), Some(shown)) => {
                let position = if rate >= maximum {
                    "the riskiest bin".to_owned()
                } else if rate <= minimum {
                    "the safest bin".to_owned()
                } else {
                    format!("bin {} of {}", index + 1, feature.bins.len())
                };
                format!(
                    "{} {shown} is in {position} (default rate {rate_pct:.2} %)",
                    feature.label
                )
            }
        };
        Contribution {
            feature: feature.name.clone(),
            value,
            logit: self.spec.coefficients[j] * (rate - minimum),
            reason,
        }
    }
}

/// The feature's lowest bin rate: the baseline company sits in every feature's safest bin. (A missing value
/// may have a lower rate still; its contribution is then negative.)
fn min_rate(feature: &ScorecardFeature) -> f64 {
    feature.bins.iter().map(|b| b.rate).fold(f64::INFINITY, f64::min)
}

fn format_value(value: f64, unit: &str) -> String {
    if unit == "%" {
        format!("{value:.2} %")
    } else {
        format!("{value:.2}{unit}")
    }
}

fn validate(spec: &ScorecardSpec) -> Result<(), InvalidScorecard> {
    let fail = |m: String| Err(InvalidScorecard(m));
    if spec.features.is_empty() || spec.features.len() != spec.coefficients.len() {
        return fail(format!(
            "{} features but {} coefficients",
            spec.features.len(),
            spec.coefficients.len()
        ));
    }
    if !spec.intercept.is_finite() || spec.coefficients.iter().any(|c| !c.is_finite()) {
        return fail("coefficients and intercept must be finite".into());
    }
    for f in &spec.features {
        if f.bins.is_empty() {
            return fail(format!("{}: no bins", f.name));
        }
        let rates_ok = f
            .bins
            .iter()
            .map(|b| b.rate)
            .chain([f.missing_rate])
            .all(|r| (0.0..=1.0).contains(&r));
        if !rates_ok {
            return fail(format!("{}: rates must be probabilities", f.name));
        }
        for b in &f.bins {
            let (low, high) = (b.low.unwrap_or(f64::NEG_INFINITY), b.high.unwrap_or(f64::INFINITY));
            if low.is_nan() || high.is_nan() || low >= high {
                return fail(format!("{}: bin ({low}, {high}] is empty", f.name));
            }
        }
        // Disjoint bins in increasing order make "the first bin that matches" the only bin that matches.
        for pair in f.bins.windows(2) {
            let (previous_high, next_low) = (
                pair[0].high.unwrap_or(f64::INFINITY),
                pair[1].low.unwrap_or(f64::NEG_INFINITY),
            );
            if next_low < previous_high {
                return fail(format!("{}: bins overlap at {next_low}", f.name));
            }
        }
    }
    Ok(())
}

fn read_f64(t: Tensor<2>) -> Vec<f64> {
    t.into_data().try_to_vec::<f64>().expect("scorecard tensors are f64")
}

fn read_i64(t: Tensor<2, Int>) -> Vec<i64> {
    t.into_data()
        .convert::<i64>()
        .try_to_vec::<i64>()
        .expect("bin codes convert to i64")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-feature card with hand-checkable numbers.
    fn card() -> Scorecard {
        let spec = ScorecardSpec {
            features: vec![
                ScorecardFeature {
                    name: "a".into(),
                    label: "ratio a".into(),
                    unit: "%".into(),
                    bins: vec![
                        Bin {
                            low: Some(0.0),
                            high: Some(10.0),
                            rate: 0.01,
                        },
                        Bin {
                            low: Some(10.0),
                            high: None,
                            rate: 0.05,
                        },
                    ],
                    missing_rate: 0.02,
                },
                ScorecardFeature {
                    name: "b".into(),
                    label: "ratio b".into(),
                    unit: "x".into(),
                    bins: vec![
                        Bin {
                            low: None,
                            high: Some(1.0),
                            rate: 0.04,
                        },
                        Bin {
                            low: Some(1.0),
                            high: Some(5.0),
                            rate: 0.03,
                        },
                    ],
                    missing_rate: 0.025,
                },
            ],
            coefficients: vec![2.0, 3.0],
            intercept: -4.0,
        };
        Scorecard::new(spec, &crate::cpu()).unwrap()
    }

    fn expected(rates: [f64; 2]) -> f64 {
        let z = ((0.0 + 2.0 * rates[0]) + 3.0 * rates[1]) + -4.0;
        1.0 / (1.0 + (-z).exp())
    }

    #[test]
    fn bins_are_low_exclusive_and_high_inclusive() {
        let out = card().score(&[vec![Some(10.0), Some(1.0)], vec![Some(10.000001), Some(1.000001)]]);
        assert_eq!(out[0].rates, vec![0.01, 0.04]);
        assert_eq!(out[0].pd.to_bits(), expected([0.01, 0.04]).to_bits());
        assert_eq!(out[1].rates, vec![0.05, 0.03]);
        assert_eq!(out[1].outcomes, vec![BinOutcome::Bin(1), BinOutcome::Bin(1)]);
    }

    #[test]
    fn missing_values_take_the_missing_rate() {
        let out = card().score(&[vec![None, None]]);
        assert_eq!(out[0].rates, vec![0.02, 0.025]);
        assert_eq!(out[0].outcomes, vec![BinOutcome::Missing, BinOutcome::Missing]);
        assert_eq!(out[0].pd.to_bits(), expected([0.02, 0.025]).to_bits());
    }

    #[test]
    fn values_outside_every_bin_take_the_first_bins_rate() {
        // a <= 0 (first finite low), b > 5 (finite top), and -inf.
        let out = card().score(&[
            vec![Some(0.0), Some(5.5)],
            vec![Some(f64::NEG_INFINITY), Some(f64::INFINITY)],
            vec![Some(f64::INFINITY), Some(f64::NEG_INFINITY)],
        ]);
        assert_eq!(out[0].rates, vec![0.01, 0.04]);
        assert_eq!(out[0].outcomes, vec![BinOutcome::Outside, BinOutcome::Outside]);
        assert_eq!(out[1].rates, vec![0.01, 0.04]);
        // +inf is in an open top bin; -inf is in no bin, not even an open bottom one (-inf > -inf is false).
        assert_eq!(out[2].rates, vec![0.05, 0.04]);
        assert_eq!(out[2].outcomes, vec![BinOutcome::Bin(1), BinOutcome::Outside]);
    }

    #[test]
    fn contributions_add_up_to_the_logit_above_the_baseline() {
        let out = card().score(&[vec![Some(50.0), Some(0.5)]]);
        let o = &out[0];
        let sum: f64 = o.contributions.iter().map(|c| c.logit).sum();
        assert!((sum - (o.logit - o.baseline_logit)).abs() < 1e-15);
        assert!(
            o.contributions[0].reason.contains("riskiest bin"),
            "{}",
            o.contributions[0].reason
        );
        assert_eq!(
            o.contributions[0].reason,
            "ratio a 50.00 % is in the riskiest bin (default rate 5.00 %)"
        );
    }

    #[test]
    fn overlapping_or_inconsistent_specs_are_refused() {
        let mut spec = card().spec().clone();
        spec.features[0].bins[1].low = Some(5.0);
        assert!(Scorecard::new(spec, &crate::cpu()).unwrap_err().0.contains("overlap"));
        let mut spec = card().spec().clone();
        spec.coefficients.pop();
        assert!(Scorecard::new(spec, &crate::cpu()).is_err());
    }

    #[test]
    fn an_empty_batch_scores_to_nothing() {
        assert!(card().score(&[]).is_empty());
    }
}
