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
    fn reasons_are_the_largest_positive_contributions() {
        let all = [c("a", 0.1), c("b", -0.5), c("c", 0.7), c("d", 0.0), c("e", 0.3)];
        let top: Vec<&str> = top_reasons(&all, 2).iter().map(|c| c.feature.as_str()).collect();
        assert_eq!(top, vec!["c", "e"]);
    }
}
