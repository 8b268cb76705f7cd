//! The evaluation protocol shared by `train` and `evaluate`: stratified 10-fold cross-validation on the
//! same folds for every model, cross-fitted Platt calibration of the out-of-fold scores, and the metrics
//! that go into the model cards.

use serde::{Deserialize, Serialize};

use crate::{
    dataset::Dataset,
    network::Calibration,
    train::{
        boost::{self, BoostConfig},
        cv,
        fit::{self, FitConfig},
        metrics::{self, ReliabilityBin},
        platt,
    },
    trees::{TreeEnsembleSpec, TreeModel},
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
    /// Gradient-boosted trees on the served features. With several configurations, each outer fold picks
    /// one on a hold-out of its own training rows ([`fit_selected`]; nested: nothing is chosen on the rows
    /// that score it).
    /// Held-out rows are scored as the service does: an unknown feature marginalised over the training
    /// rows that reported it.
    Trees { name: String, grid: Vec<BoostConfig> },
    /// Research, never served: the same trees fitted and scored with the data's missingness readable
    /// (`boost::missingness_readable_scores`), the published benchmarks' setting.
    TreesReadingMissingness { name: String, config: BoostConfig },
}

impl Candidate {
    pub fn name(&self) -> &str {
        match self {
            Self::Network { name, .. } => name,
            Self::AltmanZ => "altman_z2",
            Self::Trees { name, .. } | Self::TreesReadingMissingness { name, .. } => name,
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
    /// Early-stopping epochs of every member in every fold (networks), or trees per fold.
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
    /// Reliability by decile of the calibrated PD (held out), and its largest |predicted - observed|.
    #[serde(default)]
    pub reliability_deciles: Vec<ReliabilityBin>,
    #[serde(default)]
    pub max_decile_gap: f64,
    /// Repetitions of the k-fold cross-validation (each with its own folds).
    #[serde(default = "one")]
    pub repeats: usize,
}

fn one() -> usize {
    1
}

pub fn folds(data: &Dataset) -> Vec<Vec<usize>> {
    cv::stratified_folds(&data.labels, FOLDS, SEED)
}

/// Cross-validates `candidate` on `folds`.
pub fn cross_validate(data: &Dataset, folds: &[Vec<usize>], candidate: &Candidate) -> CvResult {
    let mut raw = vec![0.0; data.len()];
    let mut epochs = Vec::new();
    // The trees learn from the served features, the same for every fold.
    let served = matches!(
        candidate,
        Candidate::Trees { .. } | Candidate::TreesReadingMissingness { .. }
    )
    .then(|| boost::served_rows(data))
    .unwrap_or_default();
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
            Candidate::Trees { grid, .. } => {
                let rows = &served;
                let train = cv::complement(folds, i);
                let seed = SEED + i as u64;
                let (model, config) = fit_selected(rows, &data.labels, &train, grid, seed);
                for &row in test {
                    raw[row] = model.walk(&rows[row]);
                }
                eprintln!(
                    "    fold {}/{}: {} trees of depth ≤ {}",
                    i + 1,
                    folds.len(),
                    model.spec().trees.len(),
                    config.max_depth
                );
                epochs.push(model.spec().trees.len());
            }
            Candidate::TreesReadingMissingness { config, .. } => {
                let train = cv::complement(folds, i);
                let scores =
                    boost::missingness_readable_scores(&served, &data.labels, &train, test, config, SEED + i as u64);
                for (&row, score) in test.iter().zip(scores) {
                    raw[row] = score;
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

fn trees_model(spec: TreeEnsembleSpec) -> TreeModel {
    TreeModel::new(spec, &crate::cpu()).expect("a fitted ensemble is valid")
}

/// The ensemble of `grid` that scores best (ROC-AUC, served semantics) on the hold-out that early-stops
/// it: each configuration is fitted on `indices` less a stratified hold-out of them (the same for all),
/// so the choice never sees rows outside `indices`. Returns the chosen fit and its configuration.
pub fn fit_selected<'a>(
    rows: &[Vec<Option<f64>>],
    labels: &[u8],
    indices: &[usize],
    grid: &'a [BoostConfig],
    seed: u64,
) -> (TreeModel, &'a BoostConfig) {
    let mut best: Option<(f64, TreeModel, &BoostConfig)> = None;
    let mut aucs = Vec::new();
    for config in grid {
        let (_, holdout) = cv::stratified_split(indices, labels, config.holdout_fraction, seed);
        let model = trees_model(boost::fit(rows, labels, indices, config, seed));
        let scores: Vec<f64> = holdout.iter().map(|&i| model.walk(&rows[i])).collect();
        let local: Vec<u8> = holdout.iter().map(|&i| labels[i]).collect();
        let auc = metrics::roc_auc(&scores, &local).unwrap_or(0.0);
        aucs.push((auc * 1e4).round() / 1e4);
        if best.as_ref().is_none_or(|(b, _, _)| auc > *b) {
            best = Some((auc, model, config));
        }
    }
    if grid.len() > 1 {
        eprintln!("      hold-out AUCs {aucs:?}");
    }
    let (_, model, config) = best.expect("a non-empty grid");
    (model, config)
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
    let deciles: Vec<ReliabilityBin> = metrics::reliability_deciles(&result.calibrated, labels)
        .into_iter()
        .map(|b| ReliabilityBin {
            lower: round(b.lower),
            upper: round(b.upper),
            mean_predicted: round(b.mean_predicted),
            observed_rate: round(b.observed_rate),
            ..b
        })
        .collect();
    let max_decile_gap = round(
        deciles
            .iter()
            .map(|b| (b.mean_predicted - b.observed_rate).abs())
            .fold(0.0, f64::max),
    );
    Metrics {
        reliability_deciles: deciles,
        max_decile_gap,
        repeats: 1,
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

/// `repeats` repetitions of the cross-validation, each on its own folds (seeds `SEED + r`):
/// Their metrics ([`repeated_metrics`]): ROC-AUC mean ± sd over every fold of every repetition; the pooled
/// figures are means over repetitions; the reliability tables are the first repetition's.
pub fn run_repeated(data: &Dataset, candidate: &Candidate, repeats: usize) -> Vec<CvResult> {
    (0..repeats as u64)
        .map(|r| {
            let folds = cv::stratified_folds(&data.labels, FOLDS, SEED + 7919 * r);
            cross_validate(data, &folds, candidate)
        })
        .collect()
}

/// The metrics of repeated cross-validation results (see [`run_repeated`]).
pub fn repeated_metrics(results: &[CvResult], data: &Dataset) -> Metrics {
    let repeats = results.len();
    let each: Vec<Metrics> = results.iter().map(|r| metrics(r, &data.labels)).collect();
    let all_folds: Vec<f64> = results.iter().flat_map(|r| r.fold_aucs.clone()).collect();
    let (mean, sd) = metrics::mean_sd(&all_folds);
    let average = |f: fn(&Metrics) -> f64| round(each.iter().map(f).sum::<f64>() / each.len() as f64);
    Metrics {
        roc_auc_mean: round(mean),
        roc_auc_sd: round(sd),
        roc_auc_pooled: average(|m| m.roc_auc_pooled),
        pr_auc: average(|m| m.pr_auc),
        brier: average(|m| m.brier),
        ks: average(|m| m.ks),
        max_decile_gap: each.iter().map(|m| m.max_decile_gap).fold(0.0, f64::max),
        repeats,
        ..each[0].clone()
    }
}

/// The ROC-AUC of the pooled out-of-fold scores on `rows` only, averaged over the repetitions.
pub fn pooled_auc_on(results: &[CvResult], labels: &[u8], rows: &[usize]) -> f64 {
    let each: Vec<f64> = results
        .iter()
        .map(|r| {
            let scores: Vec<f64> = rows.iter().map(|&i| r.raw[i]).collect();
            let labels: Vec<u8> = rows.iter().map(|&i| labels[i]).collect();
            metrics::roc_auc(&scores, &labels).unwrap_or(f64::NAN)
        })
        .collect();
    round(each.iter().sum::<f64>() / each.len() as f64)
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
        id: "annual/polish-gbdt@1",
        horizon_years: 1,
    },
    Horizon {
        file: "1year.arff",
        id: "annual-5y/polish-gbdt@1",
        horizon_years: 5,
    },
];

/// Repetitions of the 10-fold cross-validation of the trained trees.
pub const REPEATS: usize = 5;

/// The name of the trained trees in the cards.
pub const TREES: &str = "polish-gbdt (boosted trees, unknown marginalised)";

/// The evaluation in a trained model's card: the trees (nested selection on [`boost::grid`], repeated
/// cross-validation) first, then the same trees reading the data's missingness (what that signal is
/// worth), then the comparison models (logistic regression on the piecewise-linear encoding with its
/// missing indicators, Altman's Z'') on the first repetition's folds. Returns the trees' results too.
pub fn evaluate_trees(data: &Dataset) -> (Vec<CvResult>, Vec<Metrics>) {
    let candidate = Candidate::Trees {
        name: TREES.into(),
        grid: boost::grid(),
    };
    let results = run_repeated(data, &candidate, REPEATS);
    let reading = Candidate::TreesReadingMissingness {
        name: "same trees reading the data's missingness (not served)".into(),
        config: BoostConfig::polish(),
    };
    let mut metrics = vec![
        repeated_metrics(&results, data),
        repeated_metrics(&run_repeated(data, &reading, REPEATS), data),
    ];
    metrics.extend(
        run(data, &candidates(FitConfig::network())[1..])
            .into_iter()
            .map(|(_, m)| m),
    );
    (results, metrics)
}

/// The network first, then its comparison models, all on the same folds (research: `evaluate --config`).
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
    crate::train_data_dir()
}
