//! Platt scaling: a one-feature logistic regression of the outcome on the raw logit, fitted by Newton's
//! method with step halving (with a small ridge so that separable data cannot send the slope to infinity).

use crate::network::Calibration;

pub fn fit(raw_logits: &[f64], labels: &[u8]) -> Calibration {
    let (mut a, mut b) = (1.0f64, 0.0f64);
    const RIDGE: f64 = 1e-6;
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (RIDGE * (a - 1.0), 0.0, RIDGE, 0.0, 0.0);
        for (&z, &y) in raw_logits.iter().zip(labels) {
            let p = 1.0 / (1.0 + (-(a * z + b)).exp());
            let r = p - f64::from(y);
            let w = (p * (1.0 - p)).max(1e-12);
            ga += r * z;
            gb += r;
            haa += w * z * z;
            hab += w * z;
            hbb += w;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-18 {
            break;
        }
        let (da, db) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
        let current = loss(raw_logits, labels, a, b);
        let mut step = 1.0;
        while step > 1e-8 && loss(raw_logits, labels, a - step * da, b - step * db) > current {
            step /= 2.0;
        }
        a -= step * da;
        b -= step * db;
        if (step * da).abs() < 1e-10 && (step * db).abs() < 1e-10 {
            break;
        }
    }
    Calibration { a, b }
}

/// Negative log-likelihood plus the ridge, computed stably.
fn loss(raw_logits: &[f64], labels: &[u8], a: f64, b: f64) -> f64 {
    let nll: f64 = raw_logits
        .iter()
        .zip(labels)
        .map(|(&z, &y)| {
            let t = a * z + b;
            // log(1 + e^t) - y·t
            t.max(0.0) + (-t.abs()).exp().ln_1p() - f64::from(y) * t
        })
        .sum();
    nll + 0.5e-6 * (a - 1.0).powi(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_known_calibration() {
        // Outcomes drawn (deterministically) from p = σ(0.5 z - 1).
        let truth = Calibration { a: 0.5, b: -1.0 };
        let mut logits = Vec::new();
        let mut labels = Vec::new();
        for i in 0..4000 {
            let z = -6.0 + 12.0 * (i as f64 / 4000.0);
            let p = truth.probability(z);
            // Low-discrepancy threshold instead of random draws.
            let u = (i as f64 * 0.618_033_988_75).fract();
            logits.push(z);
            labels.push(u8::from(u < p));
        }
        let fitted = fit(&logits, &labels);
        assert!(
            (fitted.a - 0.5).abs() < 0.05 && (fitted.b + 1.0).abs() < 0.1,
            "{fitted:?}"
        );
    }
}
