//! Gradient-boosted trees (forust-ml, deterministic for a seed and any thread count), fitted on the served
//! features of the statements behind the data's rows, early-stopped on a stratified hold-out, and turned
//! into the [`TreeEnsembleSpec`] the service scores.
//!
//! **Missingness is never learned.** The data's missing values are informative (a missing sales growth is
//! 300× more frequent among bankrupt firms), but a client that does not send an item is not that firm. So
//! the trees are fitted on rows whose missing values are drawn from the rows that report the feature
//! (seeded): no split can tell "missing" apart, and each split's share of rows going left is counted on
//! the rows that reported its feature. Serving then marginalises an unknown feature over those rows (`trees` module).

use std::collections::HashMap;

use forust_ml::{
    GradientBooster, Matrix,
    constraints::{Constraint, ConstraintMap},
    metric::Metric,
    objective::ObjectiveType,
    sampler::SampleMethod,
};
use serde::{Deserialize, Serialize};

use crate::{
    dataset::{Dataset, polish_statement},
    features::{POLISH, POLISH_LABELS, polish_attributes},
    network::Calibration,
    train::cv,
    trees::{Node, TreeEnsembleSpec},
};

/// Hyper-parameters of a boosted ensemble.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoostConfig {
    /// Upper bound on trees; early stopping picks the number.
    pub max_trees: usize,
    pub learning_rate: f32,
    pub max_depth: usize,
    /// Minimum hessian sum in a leaf (XGBoost's min_child_weight).
    pub min_leaf_weight: f32,
    pub l2: f32,
    /// Row share per tree.
    pub subsample: f32,
    /// Feature share per tree.
    pub colsample: f64,
    /// Trees without a better hold-out log-loss before stopping.
    pub patience: usize,
    /// Share of the training rows held out for early stopping.
    pub holdout_fraction: f64,
    /// Features (0-based) whose rise may only lower the PD: profit before tax over assets, liabilities
    /// or sales, and interest cover. A firm without debt costs has more of each and nothing else changes,
    /// so having no debt never makes a firm riskier.
    pub decreasing: Vec<usize>,
    /// Features whose rise may only raise the PD: years of profit needed to repay the liabilities.
    #[serde(default)]
    pub increasing: Vec<usize>,
}

impl BoostConfig {
    pub fn polish() -> Self {
        Self {
            max_trees: 1500,
            learning_rate: 0.03,
            max_depth: 4,
            min_leaf_weight: 1.0,
            l2: 1.0,
            subsample: 0.8,
            colsample: 0.5,
            patience: 100,
            holdout_fraction: 0.1,
            // Attr7, Attr12, Attr13, Attr14, Attr16, Attr18, Attr19, Attr27, Attr31.
            decreasing: vec![6, 11, 12, 13, 15, 17, 18, 26, 30],
            // Attr15 (total liabilities * 365) / (profit before tax + depreciation).
            increasing: vec![14],
        }
    }
}

/// The configurations nested cross-validation chooses among: depth and learning rate.
pub fn grid() -> Vec<BoostConfig> {
    vec![
        BoostConfig::polish(),
        BoostConfig {
            max_depth: 3,
            ..BoostConfig::polish()
        },
        BoostConfig {
            max_depth: 5,
            learning_rate: 0.02,
            ..BoostConfig::polish()
        },
    ]
}

/// The rows a model learns from: the served features of the statement behind each data row
/// (`dataset::polish_statement`), so training reads exactly what serving computes.
pub fn served_rows(data: &Dataset) -> Vec<Vec<Option<f64>>> {
    data.rows
        .iter()
        .map(|row| polish_attributes(&polish_statement(row)).to_vec())
        .collect()
}

/// The rows at `indices`, column-major, each missing value replaced by the value of a random row (of
/// `indices`, seeded) that reports the feature: the fitted trees see the feature's own distribution where it
/// is missing, so no split can single out "missing" (as a fixed fill value would let it).
fn imputed(rows: &[Vec<Option<f64>>], indices: &[usize], seed: u64) -> Vec<f64> {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    let width = rows.first().map_or(0, Vec::len);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(width * indices.len());
    for column in (0..width).map(|j| indices.iter().map(move |&i| rows[i][j])) {
        let reported: Vec<f64> = column.clone().flatten().collect();
        out.extend(column.map(|value| match value {
            Some(v) => v,
            None if reported.is_empty() => 0.0,
            None => reported[rng.random_range(0..reported.len())],
        }));
    }
    out
}

/// A booster fitted on `indices` of `rows` (a stratified hold-out of them early-stops it) and the matrix it
/// was fitted on. `readable`: missing values stay missing, so the trees learn where they go (the data's
/// missingness as a signal: research only, see [`missingness_readable_scores`]); else they are drawn from
/// the reporting rows.
fn booster(
    rows: &[Vec<Option<f64>>],
    labels: &[u8],
    indices: &[usize],
    config: &BoostConfig,
    seed: u64,
    readable: bool,
) -> (GradientBooster, Vec<usize>, Vec<f64>) {
    let (train, holdout) = cv::stratified_split(indices, labels, config.holdout_fraction, seed);
    let width = rows.first().map_or(0, Vec::len);
    let y = |ix: &[usize]| ix.iter().map(|&i| f64::from(labels[i])).collect::<Vec<_>>();
    let matrix = |ix: &[usize], seed: u64| {
        if readable {
            column_major(rows, ix)
        } else {
            imputed(rows, ix, seed)
        }
    };
    let (x_train, y_train) = (matrix(&train, seed), y(&train));
    let (x_holdout, y_holdout) = (matrix(&holdout, seed ^ 0x5eed), y(&holdout));
    let (w_train, w_holdout) = (vec![1.0; train.len()], vec![1.0; holdout.len()]);
    let constraints: ConstraintMap = config
        .decreasing
        .iter()
        .map(|&j| (j, Constraint::Negative))
        .chain(config.increasing.iter().map(|&j| (j, Constraint::Positive)))
        .collect::<HashMap<_, _>>();
    let mut booster = GradientBooster::default()
        .set_objective_type(ObjectiveType::LogLoss)
        .set_iterations(config.max_trees)
        .set_learning_rate(config.learning_rate)
        .set_max_depth(config.max_depth)
        .set_min_leaf_weight(config.min_leaf_weight)
        .set_l2(config.l2)
        .set_sample_method(SampleMethod::Random)
        .set_subsample(config.subsample)
        .set_colsample_bytree(config.colsample)
        .set_seed(seed)
        .set_monotone_constraints(Some(constraints))
        .set_evaluation_metric(Some(Metric::LogLoss))
        .set_early_stopping_rounds(Some(config.patience))
        .set_num_threads(Some(2));
    booster
        .fit(
            &Matrix::new(&x_train, train.len(), width),
            &y_train,
            &w_train,
            Some(vec![(
                Matrix::new(&x_holdout, holdout.len(), width),
                &y_holdout,
                &w_holdout,
            )]),
        )
        .expect("forust fits finite data");
    (booster, train, x_train)
}

/// The rows at `indices`, column-major, missing values as NaN (forust's missing).
fn column_major(rows: &[Vec<Option<f64>>], indices: &[usize]) -> Vec<f64> {
    let width = rows.first().map_or(0, Vec::len);
    (0..width)
        .flat_map(|j| indices.iter().map(move |&i| rows[i][j].unwrap_or(f64::NAN)))
        .collect()
}

/// Research, never served: the raw scores of `test` from trees fitted on `train` *with* the data's
/// missingness readable (missing values stay missing; held-out ones take the side the training data's
/// took), as the published benchmarks fit them. The gap to the served model is what that signal is worth.
pub fn missingness_readable_scores(
    rows: &[Vec<Option<f64>>],
    labels: &[u8],
    train: &[usize],
    test: &[usize],
    config: &BoostConfig,
    seed: u64,
) -> Vec<f64> {
    let (booster, _, _) = booster(rows, labels, train, config, seed, true);
    let width = rows.first().map_or(0, Vec::len);
    booster.predict(&Matrix::new(&column_major(rows, test), test.len(), width), false)
}

/// Fits on `indices` of `rows` (missing values drawn from the reporting rows): the served ensemble.
pub fn fit(
    rows: &[Vec<Option<f64>>],
    labels: &[u8],
    indices: &[usize],
    config: &BoostConfig,
    seed: u64,
) -> TreeEnsembleSpec {
    let (booster, train, x_train) = booster(rows, labels, indices, config, seed, false);
    let used = booster.prediction_iteration.unwrap_or(booster.trees.len());
    let trees = booster.trees[..used]
        .iter()
        .map(|tree| {
            let mut nodes: Vec<Node> = tree
                .nodes
                .iter()
                .map(|n| {
                    if n.is_leaf {
                        Node::Leaf {
                            value: f64::from(n.weight_value),
                        }
                    } else {
                        Node::Split {
                            feature: n.split_feature,
                            threshold: n.split_value,
                            left: n.left_child,
                            right: n.right_child,
                            left_share: 0.5,
                        }
                    }
                })
                .collect();
            set_left_shares(&mut nodes, rows, &train, &x_train);
            nodes
        })
        .collect();
    TreeEnsembleSpec {
        feature_names: POLISH.clone(),
        feature_labels: POLISH_LABELS.iter().map(|s| (*s).to_owned()).collect(),
        base_score: booster.base_score,
        trees,
        calibration: Calibration::IDENTITY,
    }
}

/// Each split's share of the training rows reaching it, with its feature reported, that went left (rows
/// reach a split as they were fitted, `imputed` being the column-major matrix they were fitted on). 0.5
/// where no such row reached it.
fn set_left_shares(nodes: &mut [Node], rows: &[Vec<Option<f64>>], train: &[usize], imputed: &[f64]) {
    let n = train.len();
    let mut counts = vec![(0usize, 0usize); nodes.len()];
    for (r, &i) in train.iter().enumerate() {
        let mut k = 0;
        while let Node::Split {
            feature,
            threshold,
            left,
            right,
            ..
        } = &nodes[k]
        {
            let go_left = imputed[feature * n + r] < *threshold;
            if rows[i][*feature].is_some() {
                if go_left {
                    counts[k].0 += 1;
                } else {
                    counts[k].1 += 1;
                }
            }
            k = if go_left { *left } else { *right };
        }
    }
    for (node, (l, r)) in nodes.iter_mut().zip(counts) {
        if let Node::Split { left_share, .. } = node {
            *left_share = if l + r == 0 { 0.5 } else { l as f64 / (l + r) as f64 };
        }
    }
}
