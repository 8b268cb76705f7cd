//! The evaluation protocol shared by `train` and `evaluate`: stratified 10-fold cross-validation on the
//! same folds for every model, cross-fitted Platt calibration of the out-of-fold scores, and the metrics
//! that go into the model cards.

use serde::{Deserialize, Serialize};

use crate::{
    dataset::Dataset,
    network::Calibration,
    train::{
        cv,
        fit::{self, FitConfig},
        metrics::{self, ReliabilityBin},
        platt,
    },
};

/// The seed of the folds and of every fit: the experiment is deterministic.
pub const SEED: u64 = 20_240_601;
pub const FOLDS: usize = 10;

/// A model under evaluation.
#[derive(Debug, Clone)]
pub enum Candidate {
    /// A Burn network (or logistic regression) on the piecewise-linear encoding.
    Network { name: String, config: FitConfig },
    /// Altman's Z'' (6.56·Attr3 + 3.26·Attr6 + 6.72·Attr7 + 1.05·Attr8), lower is riskier; a missing term
    /// counts as 0.
    AltmanZ,
}

impl Candidate {
    pub fn name(&self) -> &str {
        match self {
            Self::Network { name, .. } => name,
            Self::AltmanZ => "altman_z2",
        }
    }
}

/// Out-of-fold results of one candidate.
#[derive(Debug, Clone)]
pub struct CvResult {
    pub name: String,
    /// Raw scores (logits; higher is riskier), out of fold.
    pub raw: Vec<f64>,
    /// Probabilities after cross-fitted Platt calibration, out of fold.
    pub calibrated: Vec<f64>,
    pub fold_aucs: Vec<f64>,
    /// Early-stopping epochs of every member in every fold (networks only).
    pub epochs: Vec<usize>,
}

/// The metrics a model card reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub model: String,
    pub roc_auc_mean: f64,
    pub roc_auc_sd: f64,
    /// ROC-AUC of the pooled out-of-fold scores.
    pub roc_auc_pooled: f64,
    pub pr_auc: f64,
    pub brier: f64,
    pub ks: f64,
    pub reliability: Vec<ReliabilityBin>,
}

pub fn folds(data: &Dataset) -> Vec<Vec<usize>> {
    cv::stratified_folds(&data.labels, FOLDS, SEED)
}

/// Cross-validates `candidate` on `folds`.
pub fn cross_validate(data: &Dataset, folds: &[Vec<usize>], candidate: &Candidate) -> CvResult {
    let mut raw = vec![0.0; data.len()];
    let mut epochs = Vec::new();
    for (i, test) in folds.iter().enumerate() {
        match candidate {
            Candidate::Network { config, .. } => {
                let train = data.subset(&cv::complement(folds, i));
                let fitted = fit::fit(&train, config, SEED + i as u64, None);
                let test_rows = data.subset(test);
                let encoded = fitted.encoder.encode(&test_rows.rows);
                let width = fitted.encoder.width();
                let local: Vec<usize> = (0..test.len()).collect();
                let device = crate::cpu();
                let mut sum = vec![0.0; test.len()];
                for member in &fitted.ensemble.members {
                    for (s, z) in sum
                        .iter_mut()
                        .zip(fit::logits(member, &encoded, width, &local, &device))
                    {
                        *s += z;
                    }
                }
                let k = fitted.ensemble.members.len() as f64;
                for (&row, s) in test.iter().zip(sum) {
                    raw[row] = s / k;
                }
                eprintln!(
                    "    fold {}/{}: members stopped at epochs {:?}",
                    i + 1,
                    folds.len(),
                    fitted.epochs
                );
                epochs.extend(fitted.epochs);
            }
            Candidate::AltmanZ => {
                for &row in test {
                    raw[row] = -altman_z2(&data.rows[row]);
                }
            }
        }
    }
    let calibrated = cross_fitted_calibration(&raw, &data.labels, folds);
    let fold_aucs = folds
        .iter()
        .map(|fold| {
            let scores: Vec<f64> = fold.iter().map(|&i| raw[i]).collect();
            let labels: Vec<u8> = fold.iter().map(|&i| data.labels[i]).collect();
            metrics::roc_auc(&scores, &labels).unwrap_or(f64::NAN)
        })
        .collect();
    CvResult {
        name: candidate.name().to_owned(),
        raw,
        calibrated,
        fold_aucs,
        epochs,
    }
}

/// Each fold's probabilities from a Platt fit on the other folds' out-of-fold scores.
fn cross_fitted_calibration(raw: &[f64], labels: &[u8], folds: &[Vec<usize>]) -> Vec<f64> {
    let mut calibrated = vec![0.0; raw.len()];
    for (i, fold) in folds.iter().enumerate() {
        let others = cv::complement(folds, i);
        let calibration = platt::fit(
            &others.iter().map(|&j| raw[j]).collect::<Vec<_>>(),
            &others.iter().map(|&j| labels[j]).collect::<Vec<_>>(),
        );
        for &row in fold {
            calibrated[row] = calibration.probability(raw[row]);
        }
    }
    calibrated
}

/// The Platt calibration of a final model, fitted on all out-of-fold scores.
pub fn final_calibration(result: &CvResult, labels: &[u8]) -> Calibration {
    platt::fit(&result.raw, labels)
}

pub fn metrics(result: &CvResult, labels: &[u8]) -> Metrics {
    let (mean, sd) = metrics::mean_sd(&result.fold_aucs);
    Metrics {
        model: result.name.clone(),
        roc_auc_mean: round(mean),
        roc_auc_sd: round(sd),
        roc_auc_pooled: round(metrics::roc_auc(&result.raw, labels).unwrap_or(f64::NAN)),
        pr_auc: round(metrics::average_precision(&result.raw, labels).unwrap_or(f64::NAN)),
        brier: round(metrics::brier(&result.calibrated, labels)),
        ks: round(metrics::ks(&result.raw, labels).unwrap_or(f64::NAN)),
        reliability: metrics::reliability(&result.calibrated, labels, &metrics::RELIABILITY_EDGES)
            .into_iter()
            .map(|b| ReliabilityBin {
                mean_predicted: round(b.mean_predicted),
                observed_rate: round(b.observed_rate),
                ..b
            })
            .collect(),
    }
}

/// Metrics are reported to 4 decimals, so that a re-run compares equal where the computation does.
fn round(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// Altman's Z'' from the Polish attributes (Attr3, Attr6, Attr7, Attr8 are indices 2, 5, 6, 7).
pub fn altman_z2(row: &[Option<f64>]) -> f64 {
    let term = |i: usize| row.get(i).copied().flatten().unwrap_or(0.0);
    6.56 * term(2) + 3.26 * term(5) + 6.72 * term(6) + 1.05 * term(7)
}

/// The median of the members' early-stopping epochs: how long the final model trains on all rows.
pub fn final_epochs(result: &CvResult) -> usize {
    let mut epochs = result.epochs.clone();
    epochs.sort_unstable();
    epochs.get(epochs.len() / 2).copied().unwrap_or(1).max(1)
}

/// One trained horizon: which file, which model id.
#[derive(Debug, Clone, Copy)]
pub struct Horizon {
    pub file: &'static str,
    pub id: &'static str,
    pub horizon_years: u8,
}

/// `5year.arff` (ratios of the last year before the outcome) gives the 1-year PD; `1year.arff` (ratios five
/// years before) gives the 5-year PD.
pub const HORIZONS: [Horizon; 2] = [
    Horizon {
        file: "5year.arff",
        id: "annual/polish-mlp@1",
        horizon_years: 1,
    },
    Horizon {
        file: "1year.arff",
        id: "annual-5y/polish-mlp@1",
        horizon_years: 5,
    },
];

/// The trained network first, then its comparison models, all on the same folds.
pub fn candidates(network: FitConfig) -> Vec<Candidate> {
    vec![
        Candidate::Network {
            name: "polish-mlp (PLE + MLP ensemble)".into(),
            config: network,
        },
        Candidate::Network {
            name: "logistic regression (PLE)".into(),
            config: FitConfig::logistic(),
        },
        Candidate::AltmanZ,
    ]
}

/// Cross-validates every candidate on `data`.
pub fn run(data: &Dataset, candidates: &[Candidate]) -> Vec<(CvResult, Metrics)> {
    let folds = folds(data);
    candidates
        .iter()
        .map(|candidate| {
            let started = std::time::Instant::now();
            let result = cross_validate(data, &folds, candidate);
            let metrics = metrics(&result, &data.labels);
            eprintln!(
                "  {:<34} ROC-AUC {:.4} ± {:.4}  PR-AUC {:.4}  Brier {:.4}  KS {:.4}  ({:.0} s)",
                metrics.model,
                metrics.roc_auc_mean,
                metrics.roc_auc_sd,
                metrics.pr_auc,
                metrics.brier,
                metrics.ks,
                started.elapsed().as_secs_f64()
            );
            (result, metrics)
        })
        .collect()
}

/// The data directory beside the repository (`../shared/data/polish_bankruptcy`).
pub fn default_data_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/polish_bankruptcy")
}
