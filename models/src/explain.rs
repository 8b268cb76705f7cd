//! Explanations: per-feature contributions in logit units against a model's documented baseline, and the
//! reason codes people read.

use serde::{Deserialize, Serialize};

/// One feature's part in a prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    pub feature: String,
    /// The input value (`None`: missing).
    pub value: Option<f64>,
    /// Logit points this feature adds (positive: riskier) relative to the model's baseline. The
    /// contributions of a prediction add up to `logit - baseline_logit`.
    pub logit: f64,
    /// Plain-words reason.
    pub reason: String,
}

/// A contribution's plain-words reason: `"{label} = {value} raises the PD (+0.123 logit vs. the {baseline})"`,
/// or `"{label} not reported: lowers the PD (…)"` without a value. The value is rounded to 4 decimals and the
/// logit to 3, then printed shortest (ryu): a fixed-precision `{:.4}` costs ~400 ns a number, and every
/// prediction has one reason per feature.
pub fn reason(label: &str, value: Option<f64>, logit: f64, baseline: &str) -> String {
    let mut numbers = ryu::Buffer::new();
    let mut text = String::with_capacity(label.len() + baseline.len() + 64);
    text.push_str(label);
    match value {
        Some(v) => {
            text.push_str(" = ");
            text.push_str(shortest(&mut numbers, v, 1e4));
            text.push(' ');
        }
        None => text.push_str(" not reported: "),
    }
    text.push_str(if logit > 0.0 { "raises" } else { "lowers" });
    text.push_str(" the PD (");
    let logit = shortest(&mut numbers, logit, 1e3);
    if !logit.starts_with('-') {
        text.push('+');
    }
    text.push_str(logit);
    text.push_str(" logit vs. the ");
    text.push_str(baseline);
    text.push(')');
    text
}

/// `v` rounded to `1 / scale` and printed shortest; `-0` prints as `0`, and non-finite values as ryu does.
fn shortest(buffer: &mut ryu::Buffer, v: f64, scale: f64) -> &str {
    let rounded = if v.abs() < 1e12 { (v * scale).round() / scale } else { v };
    buffer.format(if rounded == 0.0 { 0.0 } else { rounded })
}

/// The `n` contributions that raise the risk most, riskiest first (ties keep feature order).
pub fn top_reasons(contributions: &[Contribution], n: usize) -> Vec<&Contribution> {
    let mut ranked: Vec<&Contribution> = contributions.iter().filter(|c| c.logit > 0.0).collect();
    ranked.sort_by(|a, b| b.logit.total_cmp(&a.logit));
    ranked.truncate(n);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(feature: &str, logit: f64) -> Contribution {
        Contribution {
            feature: feature.into(),
            value: None,
            logit,
            reason: String::new(),
        }
    }

    #[test]
    fn a_reason_rounds_its_numbers_and_says_the_direction() {
        assert_eq!(
            reason("ROA", Some(0.123456), 0.43219, "average company"),
            "ROA = 0.1235 raises the PD (+0.432 logit vs. the average company)"
        );
        assert_eq!(
            reason("Cover", Some(1e7), -0.00004, "median company"),
            "Cover = 10000000.0 lowers the PD (+0.0 logit vs. the median company)"
        );
        assert_eq!(
            reason("Cover", None, -1.23456, "median company"),
            "Cover not reported: lowers the PD (-1.235 logit vs. the median company)"
        );
    }

    #[test]
    fn reasons_are_the_largest_positive_contributions() {
        let all = [c("a", 0.1), c("b", -0.5), c("c", 0.7), c("d", 0.0), c("e", 0.3)];
        let top: Vec<&str> = top_reasons(&all, 2).iter().map(|c| c.feature.as_str()).collect();
        assert_eq!(top, vec!["c", "e"]);
    }
}
