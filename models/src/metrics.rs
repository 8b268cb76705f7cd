//! Discrimination and calibration metrics of probability forecasts against 0/1 outcomes: the model cards'
//! (training) and the back-tests' (predictions served, against recorded credit events).

use serde::Serialize;

/// ROC-AUC: the probability that a random positive scores above a random negative (ties count half).
/// `None` when either class is absent.
pub fn roc_auc(scores: &[f64], labels: &[u8]) -> Option<f64> {
    let ranks = average_ranks(scores);
    let positives = labels.iter().filter(|&&l| l == 1).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let rank_sum: f64 = ranks.iter().zip(labels).filter(|(_, l)| **l == 1).map(|(r, _)| r).sum();
    let p = positives as f64;
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64))
}

/// Row indices sorted by score (ascending, or descending), split into runs of equal scores.
fn tied_runs(scores: &[f64], descending: bool) -> (Vec<usize>, Vec<std::ops::Range<usize>>) {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| {
        let ascending = scores[a].total_cmp(&scores[b]);
        if descending { ascending.reverse() } else { ascending }
    });
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=order.len() {
        if i == order.len() || scores[order[i]] != scores[order[start]] {
            runs.push(start..i);
            start = i;
        }
    }
    (order, runs)
}

/// 1-based ranks with ties given their average rank.
fn average_ranks(scores: &[f64]) -> Vec<f64> {
    let (order, runs) = tied_runs(scores, false);
    let mut ranks = vec![0.0; scores.len()];
    for run in runs {
        let rank = (run.start + run.end - 1) as f64 / 2.0 + 1.0;
        for &k in &order[run] {
            ranks[k] = rank;
        }
    }
    ranks
}

/// PR-AUC as average precision: the mean of the precision at each positive, scores descending (ties
/// processed as one block).
pub fn average_precision(scores: &[f64], labels: &[u8]) -> Option<f64> {
    let positives = labels.iter().filter(|&&l| l == 1).count();
    if positives == 0 {
        return None;
    }
    let (order, runs) = tied_runs(scores, true);
    let (mut true_pos, mut seen, mut ap, mut previous_recall) = (0usize, 0usize, 0.0, 0.0);
    for run in runs {
        for &k in &order[run] {
            seen += 1;
            true_pos += usize::from(labels[k] == 1);
        }
        let recall = true_pos as f64 / positives as f64;
        let precision = true_pos as f64 / seen as f64;
        ap += (recall - previous_recall) * precision;
        previous_recall = recall;
    }
    Some(ap)
}

/// The ROC curve: (false-positive rate, true-positive rate) from (0, 0) to (1, 1), one point per distinct score
/// (descending: a threshold lowered past each run of equal scores). `None` when either class is absent.
pub fn roc_curve(scores: &[f64], labels: &[u8]) -> Option<Vec<(f64, f64)>> {
    let positives = labels.iter().filter(|&&l| l == 1).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    let (order, runs) = tied_runs(scores, true);
    let (mut true_pos, mut false_pos) = (0.0, 0.0);
    let mut points = vec![(0.0, 0.0)];
    for run in runs {
        for &k in &order[run] {
            if labels[k] == 1 {
                true_pos += 1.0;
            } else {
                false_pos += 1.0;
            }
        }
        points.push((false_pos / negatives, true_pos / positives));
    }
    Some(points)
}

/// The Jeffreys test of a rating grade's PD, as supervisors ask for it (the ECB's instructions for reporting the
/// validation of internal models): with `defaults` among `obligors` whose mean PD is `pd`, the p-value is the
/// Beta(defaults + ½, obligors − defaults + ½) distribution function at `pd` — small when the realised default
/// rate is well above the PD (the PD underestimates the risk). `None` without obligors, or for a PD outside
/// [0, 1] or defaults above obligors.
pub fn jeffreys_p_value(defaults: u64, obligors: u64, pd: f64) -> Option<f64> {
    use statrs::distribution::{Beta, ContinuousCDF};
    if obligors == 0 || defaults > obligors || !(0.0..=1.0).contains(&pd) {
        return None;
    }
    let beta = Beta::new(defaults as f64 + 0.5, (obligors - defaults) as f64 + 0.5).ok()?;
    Some(beta.cdf(pd))
}

/// The one-sided binomial test of a rating grade's PD: the probability of at least `defaults` defaults among
/// `obligors` independent ones each defaulting with probability `pd` — small when the grade's PD is too low.
pub fn binomial_p_value(defaults: u64, obligors: u64, pd: f64) -> Option<f64> {
    use statrs::distribution::{Binomial, DiscreteCDF};
    if obligors == 0 || defaults > obligors || !(0.0..=1.0).contains(&pd) {
        return None;
    }
    if defaults == 0 {
        return Some(1.0);
    }
    let binomial = Binomial::new(pd, obligors).ok()?;
    Some(binomial.sf(defaults - 1))
}

/// Mean squared error of the probabilities.
pub fn brier(probabilities: &[f64], labels: &[u8]) -> f64 {
    let n = probabilities.len().max(1) as f64;
    probabilities
        .iter()
        .zip(labels)
        .map(|(p, &l)| (p - f64::from(l)).powi(2))
        .sum::<f64>()
        / n
}

/// Kolmogorov–Smirnov statistic: the largest gap between the score distributions of the two classes.
pub fn ks(scores: &[f64], labels: &[u8]) -> Option<f64> {
    let positives = labels.iter().filter(|&&l| l == 1).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    let (order, runs) = tied_runs(scores, false);
    let (mut cum_pos, mut cum_neg, mut best) = (0.0, 0.0, 0.0f64);
    for run in runs {
        for &k in &order[run] {
            if labels[k] == 1 {
                cum_pos += 1.0;
            } else {
                cum_neg += 1.0;
            }
        }
        best = best.max((cum_pos / positives - cum_neg / negatives).abs());
    }
    Some(best)
}

/// One bin of a reliability table.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    pub mean_predicted: f64,
    pub observed_rate: f64,
}

/// Reliability (calibration) table over the given probability bin edges; empty bins are left out.
pub fn reliability(probabilities: &[f64], labels: &[u8], edges: &[f64]) -> Vec<ReliabilityBin> {
    edges
        .windows(2)
        .enumerate()
        .filter_map(|(i, w)| {
            let (lower, upper) = (w[0], w[1]);
            let last = i + 2 == edges.len();
            let members: Vec<(f64, u8)> = probabilities
                .iter()
                .zip(labels)
                .filter(|(p, _)| **p >= lower && (**p < upper || (last && **p <= upper)))
                .map(|(p, l)| (*p, *l))
                .collect();
            (!members.is_empty()).then(|| {
                let n = members.len() as f64;
                ReliabilityBin {
                    lower,
                    upper,
                    count: members.len(),
                    mean_predicted: members.iter().map(|(p, _)| p).sum::<f64>() / n,
                    observed_rate: members.iter().map(|(_, l)| f64::from(*l)).sum::<f64>() / n,
                }
            })
        })
        .collect()
}

/// Reliability by decile of the predicted probability (ten bins of equal count, ties kept together in the
/// lower bin); `lower`/`upper` are the smallest and largest prediction in the bin.
pub fn reliability_deciles(probabilities: &[f64], labels: &[u8]) -> Vec<ReliabilityBin> {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]));
    let n = order.len();
    let mut start = 0;
    (0..10)
        .filter_map(|d| {
            // A bin ends at its decile's rank, or past it while the next prediction ties with its last: equal
            // predictions never straddle two bins, whatever the rows' order.
            let mut end = ((d + 1) * n / 10).max(start);
            while end > start && end < n && probabilities[order[end]] == probabilities[order[end - 1]] {
                end += 1;
            }
            let members = &order[start..end];
            start = end;
            (!members.is_empty()).then(|| {
                let count = members.len() as f64;
                ReliabilityBin {
                    lower: probabilities[members[0]],
                    upper: probabilities[members[members.len() - 1]],
                    count: members.len(),
                    mean_predicted: members.iter().map(|&i| probabilities[i]).sum::<f64>() / count,
                    observed_rate: members.iter().map(|&i| f64::from(labels[i])).sum::<f64>() / count,
                }
            })
        })
        .collect()
}

/// The bin edges used in every model card's reliability table.
pub const RELIABILITY_EDGES: [f64; 9] = [0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0];

/// Mean and sample standard deviation.
pub fn mean_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_pairs_and_half_ties() {
        assert_eq!(roc_auc(&[0.1, 0.4, 0.35, 0.8], &[0, 0, 1, 1]), Some(0.75));
        assert_eq!(roc_auc(&[0.5, 0.5], &[0, 1]), Some(0.5));
        assert_eq!(roc_auc(&[0.1, 0.2], &[1, 1]), None);
    }

    #[test]
    fn the_roc_curve_steps_through_each_score_and_its_area_is_the_auc() {
        let (scores, labels) = ([0.1, 0.4, 0.35, 0.8, 0.4], [0, 0, 1, 1, 1]);
        let curve = roc_curve(&scores, &labels).unwrap();
        // Descending: 0.8 (1), 0.4 (one of each class, tied), 0.35 (1), 0.1 (0).
        assert_eq!(
            curve,
            [(0.0, 0.0), (0.0, 1.0 / 3.0), (0.5, 2.0 / 3.0), (0.5, 1.0), (1.0, 1.0)]
        );
        let area: f64 = curve
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
            .sum();
        assert!((area - roc_auc(&scores, &labels).unwrap()).abs() < 1e-12);
        assert_eq!(roc_curve(&[0.2], &[1]), None);
    }

    #[test]
    fn the_grade_tests_match_closed_forms() {
        // One obligor, no default: Beta(1/2, 3/2), whose distribution function is (2/π)(asin √x + √(x(1−x))).
        let x: f64 = 0.25;
        let closed = 2.0 / std::f64::consts::PI * (x.sqrt().asin() + (x * (1.0 - x)).sqrt());
        assert!((jeffreys_p_value(0, 1, x).unwrap() - closed).abs() < 1e-9);
        // More defaults than the PD explains: a small p-value; as many as it explains: near one half.
        assert!(jeffreys_p_value(10, 100, 0.02).unwrap() < 0.001);
        assert!((jeffreys_p_value(20, 1000, 0.02).unwrap() - 0.5).abs() < 0.05);
        // Two obligors at 1/2: P(X ≥ 1) = 3/4, P(X ≥ 2) = 1/4; none observed is no evidence at all.
        assert!((binomial_p_value(1, 2, 0.5).unwrap() - 0.75).abs() < 1e-12);
        assert!((binomial_p_value(2, 2, 0.5).unwrap() - 0.25).abs() < 1e-12);
        assert_eq!(binomial_p_value(0, 50, 0.1), Some(1.0));
        assert_eq!(jeffreys_p_value(1, 0, 0.1), None);
        assert_eq!(binomial_p_value(3, 2, 0.1), None);
        assert_eq!(jeffreys_p_value(0, 10, 1.5), None);
    }

    #[test]
    fn average_precision_matches_a_hand_computation() {
        // Descending: 0.8(1) 0.4(0) 0.35(1) 0.1(0): AP = 0.5*1 + 0.5*(2/3).
        let ap = average_precision(&[0.1, 0.4, 0.35, 0.8], &[0, 0, 1, 1]).unwrap();
        assert!((ap - (0.5 + 1.0 / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn brier_ks_and_reliability() {
        assert!((brier(&[0.0, 1.0, 0.5], &[0, 1, 1]) - 0.25 / 3.0).abs() < 1e-12);
        assert_eq!(ks(&[0.1, 0.2, 0.8, 0.9], &[0, 0, 1, 1]), Some(1.0));
        let table = reliability(&[0.005, 0.015, 0.9, 1.0], &[0, 1, 1, 1], &RELIABILITY_EDGES);
        assert_eq!(table.len(), 3);
        assert_eq!(table[2].count, 2);
        assert_eq!(table[1].observed_rate, 1.0);
        let probabilities: Vec<f64> = (0..100).map(|i| f64::from(i) / 100.0).collect();
        let labels: Vec<u8> = (0..100).map(|i| u8::from(i >= 90)).collect();
        let deciles = reliability_deciles(&probabilities, &labels);
        assert_eq!(deciles.len(), 10);
        assert!(deciles.iter().all(|b| b.count == 10));
        assert_eq!((deciles[9].observed_rate, deciles[8].observed_rate), (1.0, 0.0));
        assert!((deciles[0].mean_predicted - 0.045).abs() < 1e-12);
        // Ties stay in one bin: 15 equal predictions fill the first bin beyond its decile.
        let tied: Vec<f64> = (0..100)
            .map(|i| if i < 15 { 0.0 } else { f64::from(i) / 100.0 })
            .collect();
        let deciles = reliability_deciles(&tied, &labels);
        assert_eq!(deciles[0].count, 15);
        assert_eq!((deciles[0].lower, deciles[0].upper, deciles[1].lower), (0.0, 0.0, 0.15));
        assert_eq!(deciles.iter().map(|b| b.count).sum::<usize>(), 100);
        let (m, sd) = mean_sd(&[1.0, 3.0]);
        assert_eq!((m, sd), (2.0, 2f64.sqrt()));
    }
}
