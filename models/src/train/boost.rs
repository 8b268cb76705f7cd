//! Gradient-boosted trees (forust-ml, deterministic for a seed and any thread count), fitted on the served
//! features of the statements behind the data's rows, early-stopped on a stratified hold-out, and turned
//! into the [`TreeEnsembleSpec`] the service scores.
//!
//! **Missingness is never learned.** The data's missing values are informative (a missing sales growth is
//! 300× more frequent among bankrupt firms), but a client that does not send an item is not that firm. So
//! the trees are fitted on rows whose missing values are drawn from the rows that report the feature
//! (seeded): no split can tell "missing" apart, and each split's share of rows going left is counted on
//! the rows that reported its feature. Serving then marginalises an unknown feature over those rows (`trees` module).
//!
//! **An optional line item moves a PD by a bounded factor.** A statement may leave out its previous year's
//! sales or its financial expenses ([`OPTIONAL_ITEMS`]). Each feature computed from one (sales growth;
//! interest cover, and the profit with financial expenses added back) is read by one tree of its own only,
//! fitted on top of the other trees (which never read it) and clipped around its own expectation
//! ([`trees::clip_around_expectation`]): knowing previous sales moves the logit by at most ln 1.5 against
//! not knowing them, financial expenses by ln 2, so the PD by at most 1.5× and 2×, and 3× with both.
//! `Attr31`, which adds the interest (or the financial expenses) to a profit, is not read ([`UNREAD`]).

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
    trees::{self, Node, TreeEnsembleSpec},
};

/// A line item a statement may leave out, and the features computed from it. Each feature is read by one
/// tree of its own only, and the item's trees together move the logit by at most its `bound`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptionalItem {
    /// The statement's field.
    pub item: &'static str,
    pub features: &'static [ItemFeature],
    /// The largest move of the raw logit by the item (known against unknown): its trees share it.
    pub bound: f64,
}

/// A feature computed from an optional item, and how its tree reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ItemFeature {
    /// 0-based.
    pub feature: usize,
    /// Share of the item's bound.
    pub share: f64,
    /// More of the feature may only lower the PD.
    pub decreasing: bool,
}

/// The optional line items: previous sales give `Attr21` (sales growth); financial expenses give `Attr27`
/// (interest cover; more cover never raises the PD) and `Attr11` ((profit before tax + extraordinary items +
/// financial expenses) / total assets). Previous sales may move the PD by 1.5× at most, financial expenses by 2×, both by 3×.
pub const OPTIONAL_ITEMS: [OptionalItem; 2] = [
    OptionalItem {
        item: "previous_sales",
        features: &[ItemFeature {
            feature: 20,
            share: 1.0,
            decreasing: false,
        }],
        bound: SALES_BOUND,
    },
    OptionalItem {
        item: "financial_expenses",
        features: &[
            ItemFeature {
                feature: 26,
                share: 0.5,
                decreasing: true,
            },
            ItemFeature {
                feature: 10,
                share: 0.5,
                decreasing: false,
            },
        ],
        bound: EXPENSES_BOUND,
    },
];

/// ln 1.5 and ln 2: their sum is ln 3.
const SALES_BOUND: f64 = 0.405_465_108_108_164_4;
const EXPENSES_BOUND: f64 = std::f64::consts::LN_2;

/// Features no tree reads. `Attr31` ((profit before tax + interest) / sales, the interest falling back to
/// the financial expenses) would carry the financial expenses past their bound. `Attr15` ((total liabilities
/// × 365) / (profit before tax + depreciation)) is `365 / Attr16`, which is read: its jump from large negative
/// to large positive values where the profit crosses zero would let more profit raise the PD.
pub const UNREAD: [usize; 2] = [14, 30];

/// The features computed from optional items: no tree but their own reads them.
fn item_features() -> impl Iterator<Item = usize> {
    OPTIONAL_ITEMS.iter().flat_map(|o| o.features.iter().map(|f| f.feature))
}

/// Quantile bins of an optional item's feature, and the L2 penalty of the leaf values (in hessian units).
const ITEM_BINS: usize = 16;
const ITEM_L2: f64 = 10.0;

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
    /// Features (0-based) whose rise may only lower the PD: profit before tax (with depreciation) over
    /// assets, liabilities or sales. A firm without debt costs has more of each (its profit before tax is
    /// higher by the costs saved), the largest interest cover (its own monotone tree) and nothing else
    /// changes, so having no debt never makes a firm riskier.
    pub decreasing: Vec<usize>,
    /// Features whose rise may only raise the PD (none by default).
    #[serde(default)]
    pub increasing: Vec<usize>,
    /// Features no tree reads ([`UNREAD`]).
    #[serde(default = "unread")]
    pub unread: Vec<usize>,
    /// The optional items read through their own bounded trees only ([`OPTIONAL_ITEMS`]); `false`: research,
    /// the trees read them like any feature (their effect unbounded).
    #[serde(default = "yes")]
    pub bounded_items: bool,
}

fn unread() -> Vec<usize> {
    UNREAD.to_vec()
}

fn yes() -> bool {
    true
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
            // Attr7, Attr12, Attr13, Attr14, Attr16, Attr18, Attr19 (Attr27 is an optional item's: its
            // own tree is monotone).
            decreasing: vec![6, 11, 12, 13, 15, 17, 18],
            increasing: Vec::new(),
            unread: unread(),
            bounded_items: true,
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
            let mut x = imputed(rows, ix, seed);
            // A constant column offers no split: the optional items' features and the unread ones.
            let items = item_features().filter(|_| config.bounded_items);
            for j in items.chain(config.unread.iter().copied()) {
                x[j * ix.len()..(j + 1) * ix.len()].fill(0.0);
            }
            x
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

/// Fits on `indices` of `rows` (missing values drawn from the reporting rows): the served ensemble, its
/// last trees those of the optional items ([`item_trees`]).
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
            enforce_monotone(&mut nodes, &config.decreasing, &config.increasing);
            nodes
        })
        .collect();
    let mut spec = TreeEnsembleSpec {
        feature_names: POLISH.clone(),
        feature_labels: POLISH_LABELS.iter().map(|s| (*s).to_owned()).collect(),
        base_score: booster.base_score,
        trees,
        calibration: Calibration::IDENTITY,
    };
    if config.bounded_items {
        let items = item_trees(&spec, rows, labels, indices);
        spec.trees.extend(items);
    }
    spec
}

/// One tree per feature of each optional item ([`OPTIONAL_ITEMS`]), fitted by Newton steps on top of the
/// ensemble `main` and the other items' trees (two rounds of backfitting): a step function over quantile
/// bins of the rows (of `indices`) that report the feature, monotone where it says so (pooled adjacent
/// violators), clipped to its share of the item's bound around its expectation.
/// Rows that do not report the feature count its expectation, as serving does.
fn item_trees(main: &TreeEnsembleSpec, rows: &[Vec<Option<f64>>], labels: &[u8], indices: &[usize]) -> Vec<Vec<Node>> {
    let main_margin: Vec<f64> = indices
        .iter()
        .map(|&i| main.base_score + main.trees.iter().map(|t| trees::tree_value(t, &rows[i])).sum::<f64>())
        .collect();
    let components: Vec<(ItemFeature, f64)> = OPTIONAL_ITEMS
        .iter()
        .flat_map(|item| item.features.iter().map(|f| (*f, f.share * item.bound)))
        .collect();
    let mut fitted: Vec<Option<Vec<Node>>> = vec![None; components.len()];
    let value = |tree: &Option<Vec<Node>>, i: usize| tree.as_ref().map_or(0.0, |t| trees::tree_value(t, &rows[i]));
    for _round in 0..2 {
        for (k, (component, bound)) in components.iter().enumerate() {
            let margin: Vec<f64> = indices
                .iter()
                .zip(&main_margin)
                .map(|(&i, m)| {
                    m + fitted
                        .iter()
                        .enumerate()
                        .filter(|(other, _)| *other != k)
                        .map(|(_, t)| value(t, i))
                        .sum::<f64>()
                })
                .collect();
            fitted[k] = item_tree(rows, labels, indices, &margin, component, *bound);
        }
    }
    fitted.into_iter().flatten().collect()
}

/// Up to `bins` quantile edges of `values` (sorted), strictly increasing, above the smallest value: bin `b`
/// holds the values `v` with `edges[b-1] <= v < edges[b]`.
fn quantile_edges(sorted: &[f64], bins: usize) -> Vec<f64> {
    let mut edges: Vec<f64> = (1..bins).map(|b| sorted[b * sorted.len() / bins]).collect();
    edges.dedup();
    edges.retain(|e| *e > sorted[0]);
    edges
}

fn sorted(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values
}

/// The tree of one item feature on top of `margin` (the raw logit of each row of `indices` without it);
/// `None` when fewer than 100 rows report the feature.
fn item_tree(
    rows: &[Vec<Option<f64>>],
    labels: &[u8],
    indices: &[usize],
    margin: &[f64],
    component: &ItemFeature,
    bound: f64,
) -> Option<Vec<Node>> {
    let reporting: Vec<(f64, f64, f64)> = indices
        .iter()
        .zip(margin)
        .filter_map(|(&i, m)| Some((rows[i][component.feature]?, *m, f64::from(labels[i]))))
        .collect();
    (reporting.len() >= 100).then(|| step_function(component.feature, &reporting, component.decreasing, bound))
}

/// A step function of feature `j` over quantile bins of `rows` (value, margin, label; not empty) fitted by
/// Newton steps, as a tree clipped to `bound` around its expectation.
fn step_function(j: usize, rows: &[(f64, f64, f64)], decreasing: bool, bound: f64) -> Vec<Node> {
    let edges = quantile_edges(&sorted(rows.iter().map(|r| r.0)), ITEM_BINS);
    let bin = |x: f64| edges.partition_point(|e| *e <= x);
    let bins = edges.len() + 1;
    let mut values = vec![0.0; bins];
    let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
    let mut hessians = vec![0.0; bins];
    for _ in 0..8 {
        let mut gradients = vec![0.0; bins];
        hessians.fill(0.0);
        for &(x, m, y) in rows {
            let b = bin(x);
            let p = sigmoid(m + values[b]);
            gradients[b] += y - p;
            hessians[b] += p * (1.0 - p);
        }
        for b in 0..bins {
            values[b] += gradients[b] / (hessians[b] + ITEM_L2);
        }
    }
    if decreasing {
        non_increasing(&mut values, &hessians);
    }
    let mut counts = vec![0usize; bins];
    for &(x, _, _) in rows {
        counts[bin(x)] += 1;
    }
    let mut tree = Vec::with_capacity(2 * bins);
    push_bins(&mut tree, j, &edges, &values, &counts, 0, bins);
    trees::clip_around_expectation(&mut tree, bound);
    tree
}

/// Bins `lo..hi` as a balanced subtree (node first, then its left subtree, then its right one), each split
/// at the edge between its halves, its left share the halves' row counts.
fn push_bins(
    tree: &mut Vec<Node>,
    feature: usize,
    edges: &[f64],
    values: &[f64],
    counts: &[usize],
    lo: usize,
    hi: usize,
) {
    if hi - lo == 1 {
        tree.push(Node::Leaf { value: values[lo] });
        return;
    }
    let mid = (lo + hi) / 2;
    let k = tree.len();
    tree.push(Node::Leaf { value: 0.0 });
    push_bins(tree, feature, edges, values, counts, lo, mid);
    let right = tree.len();
    push_bins(tree, feature, edges, values, counts, mid, hi);
    let (left_rows, all_rows) = (
        counts[lo..mid].iter().sum::<usize>(),
        counts[lo..hi].iter().sum::<usize>(),
    );
    tree[k] = Node::Split {
        feature,
        threshold: edges[mid - 1],
        left: k + 1,
        right,
        left_share: if all_rows == 0 {
            0.5
        } else {
            left_rows as f64 / all_rows as f64
        },
    };
}

/// Weighted isotonic regression (pooled adjacent violators): `values` made non-increasing, each pooled
/// block at its weighted mean.
fn non_increasing(values: &mut [f64], weights: &[f64]) {
    // Blocks of (weighted mean, weight, length).
    let mut blocks: Vec<(f64, f64, usize)> = Vec::with_capacity(values.len());
    for (&v, &w) in values.iter().zip(weights) {
        let mut block = (v, w.max(1e-12), 1);
        while let Some(&(pv, pw, pn)) = blocks.last() {
            if pv >= block.0 {
                break;
            }
            blocks.pop();
            let weight = pw + block.1;
            block = ((pv * pw + block.0 * block.1) / weight, weight, pn + block.2);
        }
        blocks.push(block);
    }
    let mut k = 0;
    for (v, _, n) in blocks {
        values[k..k + n].fill(v);
        k += n;
    }
}

/// Scales the optional items' trees of `spec` by `factor` (at most 1) around their expectations: the
/// training binary passes `1 / a`, `a` being the final calibration's slope, so that the items' bounds hold
/// for the calibrated logit the service serves.
pub fn bound_items(spec: &mut TreeEnsembleSpec, factor: f64) {
    let factor = factor.min(1.0);
    for tree in &mut spec.trees {
        if item_of(tree).is_some() {
            let expected = trees::expectations(tree)[0];
            for node in tree.iter_mut() {
                if let Node::Leaf { value } = node {
                    *value = expected + factor * (*value - expected);
                }
            }
        }
    }
}

/// The optional item and its feature whose tree `tree` is: a tree that reads one item feature only.
pub fn item_of(tree: &[Node]) -> Option<(OptionalItem, ItemFeature)> {
    let read: std::collections::BTreeSet<usize> = tree
        .iter()
        .filter_map(|n| match n {
            Node::Split { feature, .. } => Some(*feature),
            Node::Leaf { .. } => None,
        })
        .collect();
    OPTIONAL_ITEMS.iter().find_map(|item| {
        item.features
            .iter()
            .find(|f| read.len() == 1 && read.contains(&f.feature))
            .map(|f| (*item, *f))
    })
}

/// Makes a tree monotone in its constrained features, which forust's constraints alone do not guarantee
/// (they order a split's two children, not every leaf below them). Top down, a split on a feature whose rise
/// may only lower the PD bounds the leaves of its left subtree from below, and those of its right subtree
/// from above, by the midpoint of the two sides' expectations (within the split's own bounds); the other
/// way round for a feature whose rise may only raise it. Each leaf is clipped into its bounds. A row whose
/// constrained feature rises then moves, at the first split where its path changes, to a side whose every
/// leaf is no riskier, and so does every mixture of paths (unknown features).
fn enforce_monotone(tree: &mut [Node], decreasing: &[usize], increasing: &[usize]) {
    let expected = trees::expectations(tree);
    let mut stack = vec![(0usize, f64::NEG_INFINITY, f64::INFINITY)];
    while let Some((k, lo, hi)) = stack.pop() {
        match tree[k] {
            Node::Leaf { value } => {
                tree[k] = Node::Leaf {
                    value: value.clamp(lo, hi),
                }
            }
            Node::Split {
                feature, left, right, ..
            } => {
                let mid = (0.5 * (expected[left] + expected[right])).clamp(lo, hi);
                let (left_bounds, right_bounds) = if decreasing.contains(&feature) {
                    ((mid, hi), (lo, mid))
                } else if increasing.contains(&feature) {
                    ((lo, mid), (mid, hi))
                } else {
                    ((lo, hi), (lo, hi))
                };
                stack.push((left, left_bounds.0, left_bounds.1));
                stack.push((right, right_bounds.0, right_bounds.1));
            }
        }
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
