//! Gradient-boosted trees served as a Burn tensor program, with exact additive reason codes.
//!
//! * **Spec** ([`TreeEnsembleSpec`]): the fitted trees as trained (split feature, threshold, children, leaf
//!   values) plus, per split, the share of training rows *with the feature reported* that went left. Platt
//!   calibration maps the raw logit to the PD.
//! * **Unknown is marginalised**: a feature the statement cannot give (`None`) follows both sides of a
//!   split, weighted by that share — the tree's expectation over firms that did report it. An absent
//!   line item therefore never reads as the data set's missingness, and its contribution is exactly 0.
//! * **Tensor program**: every tree is padded to a perfect tree of the ensemble's depth (a short branch
//!   continues through pass-through splits that always go left). A tree that reads only features the row
//!   reports is walked: all such trees of all rows move at once as flat `[rows * trees]` vectors, one level
//!   per step (select each node's feature and threshold, then the row's value, compare, move to the child),
//!   and the reached leaves' values are summed — or, with reason codes, a one-hot of the reached leaves times
//!   `[leaf value | path contributions]` gives the logit and every feature's contribution in one product.
//!   A tree that reads a feature the row does not report weighs every leaf instead: one selection reads
//!   each split's feature, one comparison gives each split's probability of going left (1 or 0, the share
//!   when the feature is unknown), a product down the levels gives each leaf's weight, and the same matrix
//!   product follows. An optional line item is read by one tree of its own, so a statement without it
//!   weighs one tree and walks the others.
//!   Values and thresholds are compared in `f64`, as the trees were fitted and are evaluated: in `f32` a
//!   served ratio within a rounding of a threshold (a ratio computed from a statement next to the data
//!   value the split was placed at) went the other way. Only one-dimensional selections, a scatter,
//!   contiguous element-wise operations and matrix products, on chunks of rows whose arrays stay within
//!   4 MB: Burn's NdArray backend runs those at memory speed, where a two-dimensional gather or selection,
//!   or an operation on a strided view, walks a dynamic-rank index per element (measured: 5–10× slower).
//! * **Reason codes** are path contributions (Saabas): each split on the way to a leaf adds
//!   `E[child] - E[node]` to its feature, where `E` is the share-weighted expected value of a subtree. They
//!   add up exactly to `logit - baseline_logit`, the baseline being the ensemble's expected logit.

use std::collections::BTreeMap;

use burn::tensor::{DType, Device, IndexingUpdateOp, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::{explain::Contribution, network::Calibration, output::ModelOutput};

/// One node of a fitted tree; children are indices into the tree's node list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Node {
    Leaf {
        /// Raw-logit value (the learning rate already applied).
        value: f64,
    },
    Split {
        feature: usize,
        /// Goes left when `value < threshold`.
        threshold: f64,
        left: usize,
        right: usize,
        /// Share of the training rows reaching this split with the feature reported that went left.
        left_share: f64,
    },
}

/// Everything a tree ensemble needs to score and explain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeEnsembleSpec {
    pub feature_names: Vec<String>,
    pub feature_labels: Vec<String>,
    /// Raw logit before any tree.
    pub base_score: f64,
    /// Node 0 is each tree's root.
    pub trees: Vec<Vec<Node>>,
    pub calibration: Calibration,
}

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("the tree ensemble is invalid: {0}")]
    Spec(String),
    #[error("inference failed: {0}")]
    Inference(String),
}

/// The most elements of one of the program's per-batch arrays (512 Ki: 4 MB of `f64`).
const ARRAY_ELEMENTS: usize = 1 << 19;

/// A tree ensemble laid out for the tensor program.
#[derive(Debug)]
pub struct TreeModel {
    spec: TreeEnsembleSpec,
    device: Device,
    depth: usize,
    /// The walk's tables, flat and tree-major (heap order within a tree): `[trees * splits]` feature read
    /// and threshold, `[trees * leaves]` leaf values.
    features: Tensor<1, Int>,
    thresholds: Tensor<1>,
    leaf_values: Tensor<1>,
    /// `[trees * leaves, 1 + features]`: each leaf's value and path contributions.
    explained: Tensor<2>,
    /// Every tree's leaf-weight tables ([`Weighing`]).
    weighing: Weighing,
    /// Expected raw logit: `base_score + Σ E[root]`.
    baseline_raw: f64,
    /// Per feature, the trees with a split on it: a row that does not report the feature weighs those trees'
    /// leaves and walks the others (a row reporting every feature some split reads walks every tree).
    readers: Vec<Vec<usize>>,
}

/// The leaf weights' tables of some trees, level-major (level, split of the level, tree): `[splits * trees]`
/// feature read, `[splits * trees, 1]` threshold and left share when unknown; `[1 | 1 + features, leaves *
/// trees]` the leaves' values (and contributions) as rows, leaf-major.
#[derive(Debug)]
struct Weighing {
    trees: usize,
    features: Tensor<1, Int>,
    thresholds: Tensor<2>,
    shares: Tensor<2>,
    values_rows: Tensor<2>,
    explained_rows: Tensor<2>,
}

impl Weighing {
    fn rows(&self, explain: bool) -> &Tensor<2> {
        if explain {
            &self.explained_rows
        } else {
            &self.values_rows
        }
    }

    /// The tables of the trees `subset` (indices into these tables' trees), in their order.
    fn subset(&self, subset: &[usize], depth: usize) -> Self {
        let index = |outer: usize| {
            let at: Vec<i64> = (0..outer)
                .flat_map(|s| subset.iter().map(move |&t| (s * self.trees + t) as i64))
                .collect();
            let len = at.len();
            Tensor::<1, Int>::from_data(TensorData::new(at, [len]), &self.features.device())
        };
        let splits = index((1 << depth) - 1);
        let leaves = index(1 << depth);
        Self {
            trees: subset.len(),
            features: self.features.clone().select(0, splits.clone()),
            thresholds: self.thresholds.clone().select(0, splits.clone()),
            shares: self.shares.clone().select(0, splits),
            values_rows: self.values_rows.clone().select(1, leaves.clone()),
            explained_rows: self.explained_rows.clone().select(1, leaves),
        }
    }
}

/// A tree padded to a perfect binary tree of `depth`: splits in heap order, then leaves.
struct Padded {
    features: Vec<i64>,
    thresholds: Vec<f64>,
    shares: Vec<f32>,
    /// Per leaf: value and path contribution per feature.
    leaves: Vec<(f64, Vec<f64>)>,
}

impl TreeModel {
    pub fn new(spec: TreeEnsembleSpec, device: &Device) -> Result<Self, TreeError> {
        let n_features = spec.feature_names.len();
        if spec.feature_labels.len() != n_features || n_features == 0 {
            return Err(TreeError::Spec("feature names and labels disagree".into()));
        }
        if spec.trees.is_empty() || !spec.base_score.is_finite() {
            return Err(TreeError::Spec("no trees, or a non-finite base score".into()));
        }
        let mut depth = 0;
        for (t, tree) in spec.trees.iter().enumerate() {
            depth = depth.max(check_tree(tree, n_features).map_err(|e| TreeError::Spec(format!("tree {t}: {e}")))?);
        }
        let depth = depth.max(1);
        let leaves = 1usize << depth;
        let splits = leaves - 1;
        let (mut features, mut thresholds, mut shares) = (Vec::new(), Vec::new(), Vec::new());
        let mut values = Vec::with_capacity(spec.trees.len() * leaves);
        let mut explained = Vec::with_capacity(spec.trees.len() * leaves * (1 + n_features));
        let mut baseline_raw = spec.base_score;
        for tree in &spec.trees {
            let expected = expectations(tree);
            baseline_raw += expected[0];
            let padded = pad(tree, &expected, depth, n_features);
            debug_assert_eq!((padded.features.len(), padded.leaves.len()), (splits, leaves));
            features.extend(padded.features);
            thresholds.extend(padded.thresholds);
            shares.extend(padded.shares);
            for (value, contributions) in padded.leaves {
                values.push(value as f32);
                explained.push(value as f32);
                explained.extend(contributions.iter().map(|c| *c as f32));
            }
        }
        let n = features.len();
        let rows = values.len();
        let trees = spec.trees.len();
        // The leaf weights' order: level by level, position by position, tree by tree (see `positions`).
        let level_major: Vec<usize> = (0..depth)
            .flat_map(|level| {
                let first = (1usize << level) - 1;
                positions(level)
                    .into_iter()
                    .flat_map(move |k| (0..trees).map(move |t| t * splits + first + k))
            })
            .collect();
        let level_features: Vec<i64> = level_major.iter().map(|&i| features[i]).collect();
        let level_thresholds: Vec<f64> = level_major.iter().map(|&i| thresholds[i]).collect();
        let level_shares: Vec<f32> = level_major.iter().map(|&i| shares[i]).collect();
        let width = 1 + n_features;
        let leaf_order: Vec<usize> = positions(depth)
            .into_iter()
            .flat_map(|k| (0..trees).map(move |t| t * leaves + k))
            .collect();
        let explained_rows: Vec<f32> = (0..width)
            .flat_map(|j| leaf_order.iter().map(move |&leaf| (leaf, j)))
            .map(|(leaf, j)| explained[leaf * width + j])
            .collect();
        let values_rows: Vec<f32> = leaf_order.iter().map(|&leaf| values[leaf]).collect();
        let mut readers = vec![Vec::new(); n_features];
        for (t, tree) in spec.trees.iter().enumerate() {
            for node in tree {
                if let Node::Split { feature, .. } = node
                    && readers[*feature].last() != Some(&t)
                {
                    readers[*feature].push(t);
                }
            }
        }
        Ok(Self {
            readers,
            features: Tensor::from_data(TensorData::new(features, [n]), device),
            thresholds: Tensor::from_data(TensorData::new(thresholds, [n]), (device, DType::F64)),
            leaf_values: Tensor::from_data(TensorData::new(values, [rows]), device),
            explained: Tensor::from_data(TensorData::new(explained, [rows, width]), device),
            weighing: Weighing {
                trees,
                features: Tensor::from_data(TensorData::new(level_features, [n]), device),
                thresholds: Tensor::from_data(TensorData::new(level_thresholds, [n, 1]), (device, DType::F64)),
                shares: Tensor::from_data(TensorData::new(level_shares, [n, 1]), device),
                values_rows: Tensor::from_data(TensorData::new(values_rows, [1, rows]), device),
                explained_rows: Tensor::from_data(TensorData::new(explained_rows, [width, rows]), device),
            },
            device: device.clone(),
            depth,
            baseline_raw,
            spec,
        })
    }

    pub fn from_json(json: &[u8], device: &Device) -> Result<Self, TreeError> {
        let spec: TreeEnsembleSpec = serde_json::from_slice(json).map_err(|e| TreeError::Spec(e.to_string()))?;
        Self::new(spec, device)
    }

    pub fn spec(&self) -> &TreeEnsembleSpec {
        &self.spec
    }

    pub fn feature_names(&self) -> &[String] {
        &self.spec.feature_names
    }

    /// The padded depth of the tensor program.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The rows as the program reads them, an unknown feature as NaN: `[rows * features]` row by row, or
    /// (`by_feature`) `[features * rows]` feature by feature.
    fn input(&self, rows: &[&Vec<Option<f64>>], by_feature: bool) -> Tensor<1> {
        let n_features = self.spec.feature_names.len();
        let value = |i: usize, j: usize| rows[i].get(j).copied().flatten().map_or(f64::NAN, finite);
        let flat: Vec<f64> = if by_feature {
            (0..n_features)
                .flat_map(|j| (0..rows.len()).map(move |i| value(i, j)))
                .collect()
        } else {
            (0..rows.len())
                .flat_map(|i| (0..n_features).map(move |j| value(i, j)))
                .collect()
        };
        Tensor::from_data(
            TensorData::new(flat, [rows.len() * n_features]),
            (&self.device, DType::F64),
        )
    }

    /// Leaf weights `[leaves * trees, rows]` (leaves in [`positions`] order), every array laid out with the
    /// rows innermost and each level's nodes outermost, so that no operation strides: one selection reads
    /// each split's feature, one comparison gives its probability of going left (the share when the feature
    /// is unknown), and level by level each node's weight is split between its children, the left children
    /// of a level first.
    fn leaf_weights(&self, tables: &Weighing, rows: &[&Vec<Option<f64>>]) -> Tensor<2> {
        let n = rows.len();
        let trees = tables.trees;
        let x = self.input(rows, true).reshape([self.spec.feature_names.len(), n]);
        let read = x.select(0, tables.features.clone());
        let unknown = read.clone().is_nan().float();
        // A comparison with NaN is false: known splits give 1 or 0, unknown ones 0 plus their share.
        let go_left = read.lower(tables.thresholds.clone()).float() + unknown.mul(tables.shares.clone());
        let mut weights = Tensor::<3>::ones([1, trees, n], &self.device);
        for level in 0..self.depth {
            let width = 1usize << level;
            let left = go_left
                .clone()
                .narrow(0, trees * (width - 1), trees * width)
                .reshape([width, trees, n]);
            let right = left.clone().neg().add_scalar(1.0);
            weights = Tensor::cat(vec![weights.clone().mul(left), weights.mul(right)], 0);
        }
        weights.reshape([trees << self.depth, n])
    }

    /// Rows go down one path per tree, all trees of all rows at once as flat `[rows * trees]` vectors. Per
    /// level, the node's feature and threshold are selected, then the row's value of that feature; one
    /// comparison moves every node to its child. The reached leaves' values summed over the trees give the
    /// raw logit; with `explain`, a one-hot of the reached leaves times `explained` gives `[value |
    /// contributions]` — without the weights of the leaves not reached. The trees `skipped` (those reading a
    /// feature the rows do not report, whose path means nothing) add nothing.
    fn walked(&self, rows: &[&Vec<Option<f64>>], explain: bool, skipped: &[usize]) -> Result<Vec<f64>, TreeError> {
        let n = rows.len();
        let trees = self.spec.trees.len();
        let n_features = self.spec.feature_names.len();
        let splits = (1i64 << self.depth) - 1;
        let flat = |f: &dyn Fn(usize, i64) -> i64| {
            let v: Vec<i64> = (0..n).flat_map(|i| (0..trees as i64).map(move |t| f(i, t))).collect();
            Tensor::<1, Int>::from_data(TensorData::new(v, [n * trees]), &self.device)
        };
        let split_base = flat(&|_, t| t * splits);
        let row_base = flat(&|i, _| (i * n_features) as i64);
        let x = self.input(rows, false);
        let mut node = Tensor::<1, Int>::zeros([n * trees], &self.device);
        for _ in 0..self.depth {
            let at = node.clone() + split_base.clone();
            let feature = self.features.clone().select(0, at.clone());
            let value = x.clone().select(0, feature + row_base.clone());
            let threshold = self.thresholds.clone().select(0, at);
            node = node.mul_scalar(2).add_scalar(1) + value.greater_equal(threshold).int();
        }
        let leaves = splits + 1;
        // Each tree's weight: 1, or 0 for the trees skipped.
        let mut kept = vec![1.0f32; trees];
        for &t in skipped {
            kept[t] = 0.0;
        }
        let out = if explain {
            // One-hot of the reached leaves, then one product with `[leaf value | path contributions]`.
            let leaf = (node + flat(&|_, t| t * leaves - splits)).reshape([n, trees]);
            let hits: Vec<f32> = (0..n).flat_map(|_| kept.iter().copied()).collect();
            let hits = Tensor::<2>::from_data(TensorData::new(hits, [n, trees]), &self.device);
            let reached = Tensor::<2>::zeros([n, trees * leaves as usize], &self.device).scatter(
                1,
                leaf,
                hits,
                IndexingUpdateOp::Add,
            );
            reached.matmul(self.explained.clone())
        } else {
            let leaf = node + flat(&|_, t| t * leaves - splits);
            let reached = self.leaf_values.clone().select(0, leaf).reshape([n, trees]);
            if skipped.is_empty() {
                reached.sum_dim(1)
            } else {
                let kept = Tensor::<2>::from_data(TensorData::new(kept, [1, trees]), &self.device);
                reached.mul(kept).sum_dim(1)
            }
        };
        crate::values_f64(out).map_err(TreeError::Inference)
    }

    /// The trees with a split on a feature `row` does not report (sorted).
    fn unknown_to(&self, row: &[Option<f64>]) -> Vec<usize> {
        let mut trees: Vec<usize> = self
            .readers
            .iter()
            .enumerate()
            .filter(|(j, _)| row.get(*j).copied().flatten().is_none())
            .flat_map(|(_, trees)| trees.iter().copied())
            .collect();
        trees.sort_unstable();
        trees.dedup();
        trees
    }

    /// Each row's `[value | contributions]` (`explain`) or `[value]`. A tree that reads only features the
    /// row reports is walked ([`TreeModel::walked`]); a tree that reads one it does not report weighs its
    /// leaves (the unknown feature marginalised). Rows are grouped by the trees they weigh: a statement
    /// without previous sales weighs the one tree that reads the sales growth and walks the others. Rows
    /// that would weigh more than half the trees weigh them all.
    fn logits(&self, rows: &[Vec<Option<f64>>], explain: bool) -> Result<Vec<f64>, TreeError> {
        let width = self.weighing.rows(explain).dims()[0];
        let trees = self.spec.trees.len();
        let mut walks: BTreeMap<Vec<usize>, Vec<usize>> = BTreeMap::new();
        let mut weighed = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let unknown = self.unknown_to(row);
            if 2 * unknown.len() > trees {
                weighed.push(i);
            } else {
                walks.entry(unknown).or_default().push(i);
            }
        }
        let mut out = vec![0.0; rows.len() * width];
        // Rows go in chunks whose largest array (a split or leaf per tree and row) stays within a few MB:
        // cache-sized, and below the allocator's threshold for returning memory to the kernel at once
        // (jemalloc's 8 MB), which would make every batch pay page faults on its fresh arrays.
        let per_row = self.leaf_values.dims()[0].max(self.thresholds.dims()[0]);
        let chunk = (ARRAY_ELEMENTS / per_row).max(1);
        let mut place = |indices: &[usize], values: &[f64]| {
            for (&i, row) in indices.iter().zip(values.chunks_exact(width)) {
                for (o, v) in out[i * width..(i + 1) * width].iter_mut().zip(row) {
                    *o += v;
                }
            }
        };
        let weigh = |tables: &Weighing, group: &[&Vec<Option<f64>>]| {
            crate::values_f64(
                tables
                    .rows(explain)
                    .clone()
                    .matmul(self.leaf_weights(tables, group))
                    .transpose(),
            )
            .map_err(TreeError::Inference)
        };
        for (unknown, indices) in &walks {
            let tables = (!unknown.is_empty()).then(|| self.weighing.subset(unknown, self.depth));
            for indices in indices.chunks(chunk) {
                let group: Vec<&Vec<Option<f64>>> = indices.iter().map(|&i| &rows[i]).collect();
                place(indices, &self.walked(&group, explain, unknown)?);
                if let Some(tables) = &tables {
                    place(indices, &weigh(tables, &group)?);
                }
            }
        }
        for indices in weighed.chunks(chunk) {
            let group: Vec<&Vec<Option<f64>>> = indices.iter().map(|&i| &rows[i]).collect();
            place(indices, &weigh(&self.weighing, &group)?);
        }
        Ok(out)
    }

    /// Calibrated PDs only: the fast path.
    pub fn predict(&self, rows: &[Vec<Option<f64>>]) -> Result<Vec<f64>, TreeError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let raw = self.logits(rows, false)?;
        Ok(raw
            .into_iter()
            .map(|z| self.spec.calibration.probability(z + self.spec.base_score))
            .collect())
    }

    /// PDs with every feature's contribution (calibrated-logit units, adding up to
    /// `logit - baseline_logit`).
    pub fn score(&self, rows: &[Vec<Option<f64>>]) -> Result<Vec<ModelOutput>, TreeError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let width = 1 + self.spec.feature_names.len();
        let out = self.logits(rows, true)?;
        let calibration = self.spec.calibration;
        let baseline_logit = calibration.logit(self.baseline_raw);
        Ok(rows
            .iter()
            .zip(out.chunks_exact(width))
            .map(|(row, out)| {
                let raw = out[0] + self.spec.base_score;
                ModelOutput {
                    pd: calibration.probability(raw),
                    logit: calibration.logit(raw),
                    baseline_logit,
                    contributions: self.reasons(row, &out[1..]),
                }
            })
            .collect())
    }

    fn reasons(&self, row: &[Option<f64>], raw: &[f64]) -> Vec<Contribution> {
        let a = self.spec.calibration.a;
        raw.iter()
            .enumerate()
            .map(|(j, c)| {
                let logit = a * c;
                let label = &self.spec.feature_labels[j];
                let value = row.get(j).copied().flatten();
                let reason = match value {
                    Some(_) => crate::explain::reason(label, value, logit, "average company"),
                    None => format!("{label} not reported: unknown, no effect on the PD"),
                };
                Contribution {
                    feature: self.spec.feature_names[j].clone(),
                    value,
                    logit,
                    reason,
                }
            })
            .collect()
    }

    /// The raw logit of one row by walking the trees in `f64`, an unknown feature following both sides of
    /// a split by its share: the reference the tensor program is tested against, and what evaluation scores.
    pub fn walk(&self, row: &[Option<f64>]) -> f64 {
        self.spec.base_score + self.spec.trees.iter().map(|tree| tree_value(tree, row)).sum::<f64>()
    }
}

/// One tree's raw value for `row` in `f64`, an unknown feature following both sides of each split by its
/// share (see [`TreeModel::walk`]).
pub fn tree_value(tree: &[Node], row: &[Option<f64>]) -> f64 {
    fn node_value(tree: &[Node], k: usize, row: &[Option<f64>]) -> f64 {
        match &tree[k] {
            Node::Leaf { value } => *value,
            Node::Split {
                feature,
                threshold,
                left,
                right,
                left_share,
            } => match row.get(*feature).copied().flatten() {
                Some(v) if v < *threshold => node_value(tree, *left, row),
                Some(_) => node_value(tree, *right, row),
                None => left_share * node_value(tree, *left, row) + (1.0 - left_share) * node_value(tree, *right, row),
            },
        }
    }
    node_value(tree, 0, row)
}

/// Clips a tree's leaves to `[m - bound, m + bound]`, `m` being the clipped tree's own expectation (the
/// value an unknown row gets, leaves weighted by the product of shares down their path): then no row's
/// value differs from the unknown row's by more than `bound`. Returns `m`.
pub fn clip_around_expectation(tree: &mut [Node], bound: f64) -> f64 {
    let mut weights = vec![0.0; tree.len()];
    weights[0] = 1.0;
    for k in 0..tree.len() {
        if let Node::Split {
            left,
            right,
            left_share,
            ..
        } = tree[k]
        {
            weights[left] = weights[k] * left_share;
            weights[right] = weights[k] * (1.0 - left_share);
        }
    }
    let leaves: Vec<(usize, f64, f64)> = tree
        .iter()
        .enumerate()
        .filter_map(|(k, node)| match node {
            Node::Leaf { value } => Some((k, *value, weights[k])),
            Node::Split { .. } => None,
        })
        .collect();
    let clipped_mean = |m: f64| {
        leaves
            .iter()
            .map(|(_, v, w)| w * v.clamp(m - bound, m + bound))
            .sum::<f64>()
    };
    // clipped_mean(m) - m falls as m rises (its slope is the weight of the clipped leaves minus 1): the fixed
    // point lies between the smallest and the largest leaf.
    let (mut lo, mut hi) = leaves
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, v, _)| {
            (lo.min(*v), hi.max(*v))
        });
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if clipped_mean(mid) > mid {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let m = 0.5 * (lo + hi);
    for (k, value, _) in leaves {
        tree[k] = Node::Leaf {
            value: value.clamp(m - bound, m + bound),
        };
    }
    m
}

/// A value as the tensor program reads it: infinities become the largest finite `f64`, so that a
/// pass-through split (threshold +∞) always goes left.
fn finite(v: f64) -> f64 {
    v.clamp(-f64::MAX, f64::MAX)
}

/// Checks a tree's shape (every node reached once from the root, children after their parent, shares in
/// [0, 1], finite numbers); returns its depth.
fn check_tree(tree: &[Node], n_features: usize) -> Result<usize, String> {
    if tree.is_empty() {
        return Err("no nodes".into());
    }
    let mut reached = vec![false; tree.len()];
    let mut stack = vec![(0usize, 0usize)];
    let mut depth = 0;
    while let Some((k, d)) = stack.pop() {
        if std::mem::replace(&mut reached[k], true) {
            return Err(format!("node {k} is reached twice"));
        }
        depth = depth.max(d);
        if d > 16 {
            return Err("deeper than 16".into());
        }
        match &tree[k] {
            Node::Leaf { value } if value.is_finite() => {}
            Node::Leaf { .. } => return Err(format!("node {k}: non-finite value")),
            Node::Split {
                feature,
                threshold,
                left,
                right,
                left_share,
                ..
            } => {
                let ok = *feature < n_features
                    && !threshold.is_nan()
                    && (0.0..=1.0).contains(left_share)
                    && *left > k
                    && *right > k
                    && *left < tree.len()
                    && *right < tree.len();
                if !ok {
                    return Err(format!("node {k}: invalid split"));
                }
                stack.push((*left, d + 1));
                stack.push((*right, d + 1));
            }
        }
    }
    if reached.iter().any(|r| !r) {
        return Err("unreachable nodes".into());
    }
    Ok(depth)
}

/// The nodes of a perfect tree's level in the leaf weights' order: the root; then the left children of the
/// level above in its order, then its right children. Each entry is the node's index within its level (heap
/// order: node `k` of a level has children `2k` and `2k + 1` in the next).
fn positions(level: usize) -> Vec<usize> {
    (0..level).fold(vec![0], |above, _| {
        let left = above.iter().map(|k| 2 * k);
        let right = above.iter().map(|k| 2 * k + 1);
        left.chain(right).collect()
    })
}

/// Share-weighted expected value of every node's subtree.
pub(crate) fn expectations(tree: &[Node]) -> Vec<f64> {
    let mut expected = vec![0.0; tree.len()];
    // Children come after their parents, so a reverse pass sees children first.
    for k in (0..tree.len()).rev() {
        expected[k] = match &tree[k] {
            Node::Leaf { value } => *value,
            Node::Split {
                left,
                right,
                left_share,
                ..
            } => left_share * expected[*left] + (1.0 - left_share) * expected[*right],
        };
    }
    expected
}

fn pad(tree: &[Node], expected: &[f64], depth: usize, n_features: usize) -> Padded {
    let splits = (1usize << depth) - 1;
    let mut padded = Padded {
        features: vec![0; splits],
        thresholds: vec![f64::INFINITY; splits],
        shares: vec![1.0; splits],
        leaves: vec![(0.0, vec![0.0; n_features]); 1 << depth],
    };
    // (node in the tree, slot in the perfect tree, level, contributions so far)
    let mut stack = vec![(0usize, 0usize, 0usize, vec![0.0; n_features])];
    while let Some((k, slot, level, path)) = stack.pop() {
        if level == depth {
            let Node::Leaf { value } = tree[k] else {
                unreachable!("check_tree bounds the depth")
            };
            padded.leaves[slot - splits] = (value, path);
            continue;
        }
        match &tree[k] {
            // A leaf above the last level: pass-through splits (always left) down to it.
            Node::Leaf { .. } => stack.push((k, 2 * slot + 1, level + 1, path)),
            Node::Split {
                feature,
                threshold,
                left,
                right,
                left_share,
                ..
            } => {
                padded.features[slot] = *feature as i64;
                padded.thresholds[slot] = *threshold;
                padded.shares[slot] = *left_share as f32;
                for (child, child_slot) in [(*left, 2 * slot + 1), (*right, 2 * slot + 2)] {
                    let mut path = path.clone();
                    path[*feature] += expected[child] - expected[k];
                    stack.push((child, child_slot, level + 1, path));
                }
            }
        }
    }
    padded
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two trees over three features, one of them shallower than the other.
    fn spec() -> TreeEnsembleSpec {
        let split = |feature, threshold, left, right, left_share| Node::Split {
            feature,
            threshold,
            left,
            right,
            left_share,
        };
        let leaf = |value| Node::Leaf { value };
        TreeEnsembleSpec {
            feature_names: vec!["a".into(), "b".into(), "c".into()],
            feature_labels: vec!["A".into(), "B".into(), "C".into()],
            base_score: -2.0,
            trees: vec![
                vec![
                    split(0, 1.0, 1, 2, 0.25),
                    split(1, 5.0, 3, 4, 0.5),
                    leaf(0.3),
                    leaf(-0.2),
                    leaf(0.8),
                ],
                vec![split(2, 0.0, 1, 2, 0.9), leaf(0.1), leaf(-0.4)],
            ],
            calibration: Calibration { a: 0.9, b: 0.1 },
        }
    }

    #[test]
    fn a_clipped_tree_stays_within_its_bound_of_the_unknown_value() {
        let mut tree = spec().trees[0].clone();
        let m = clip_around_expectation(&mut tree, 0.2);
        let unknown = tree_value(&tree, &[None, None, None]);
        assert!((m - unknown).abs() < 1e-12, "{m} vs {unknown}");
        for row in rows() {
            let known = tree_value(&tree, &row);
            assert!((known - unknown).abs() <= 0.2 + 1e-12, "{known} vs {unknown}");
        }
        // Leaves already within the bound are kept.
        let mut tree = spec().trees[1].clone();
        clip_around_expectation(&mut tree, 1.0);
        assert_eq!(tree, spec().trees[1]);
    }

    fn rows() -> Vec<Vec<Option<f64>>> {
        vec![
            vec![Some(0.5), Some(7.0), Some(-1.0)],
            vec![Some(3.0), None, Some(2.0)],
            vec![None, Some(1.0), None],
            vec![None, None, None],
            vec![Some(f64::INFINITY), Some(f64::NEG_INFINITY), Some(0.0)],
        ]
    }

    #[test]
    fn the_tensor_program_agrees_with_walking_the_trees() {
        let model = TreeModel::new(spec(), &crate::cpu()).unwrap();
        assert_eq!(model.depth(), 2);
        let calibration = spec().calibration;
        let fast = model.predict(&rows()).unwrap();
        let explained = model.score(&rows()).unwrap();
        for (i, row) in rows().iter().enumerate() {
            let expected = calibration.probability(model.walk(row));
            assert!((fast[i] - expected).abs() < 1e-6, "row {i}: {} vs {expected}", fast[i]);
            assert!((explained[i].pd - expected).abs() < 1e-6, "row {i}");
        }
        // Row 0: a = 0.5 < 1 → b = 7 ≥ 5 → 0.8; c = -1 < 0 → 0.1.
        assert!((model.walk(&rows()[0]) - (-2.0 + 0.8 + 0.1)).abs() < 1e-12);
        // Row 2: a unknown → ¼ of (b = 1 < 5 → -0.2) + ¾ of 0.3; c unknown → 0.9 · 0.1 + 0.1 · (-0.4).
        let expected = -2.0 + 0.25 * -0.2 + 0.75 * 0.3 + 0.9 * 0.1 + 0.1 * -0.4;
        assert!((model.walk(&rows()[2]) - expected).abs() < 1e-12);
    }

    /// Random trees of uneven depth (up to 5) over five features, and rows with every pattern of unknown
    /// features: the tensor program (both paths, with and without reasons) equals walking the trees.
    #[test]
    fn the_tensor_program_agrees_with_walking_random_trees() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        fn grow(tree: &mut Vec<Node>, depth: usize, next: &mut dyn FnMut() -> f64) -> usize {
            let k = tree.len();
            tree.push(Node::Leaf { value: next() - 0.5 });
            if depth > 0 && next() < 0.8 {
                let feature = (next() * 5.0) as usize;
                let threshold = next() * 2.0 - 1.0;
                let left_share = next();
                let left = grow(tree, depth - 1, next);
                let right = grow(tree, depth - 1, next);
                tree[k] = Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                    left_share,
                };
            }
            k
        }
        let trees: Vec<Vec<Node>> = (0..40)
            .map(|_| {
                let mut tree = Vec::new();
                grow(&mut tree, 5, &mut next);
                tree
            })
            .collect();
        let names: Vec<String> = (0..5).map(|j| format!("f{j}")).collect();
        let spec = TreeEnsembleSpec {
            feature_names: names.clone(),
            feature_labels: names,
            base_score: -1.0,
            trees,
            calibration: Calibration { a: 1.1, b: -0.2 },
        };
        let model = TreeModel::new(spec.clone(), &crate::cpu()).unwrap();
        let rows: Vec<Vec<Option<f64>>> = (0..300)
            .map(|i| {
                (0..5)
                    .map(|j| (i % 7 == 0 || (i >> j) & 3 != 0).then(|| next() * 2.4 - 1.2))
                    .collect()
            })
            .collect();
        let fast = model.predict(&rows).unwrap();
        let explained = model.score(&rows).unwrap();
        for (i, row) in rows.iter().enumerate() {
            let expected = spec.calibration.probability(model.walk(row));
            assert!(
                (fast[i] - expected).abs() < 1e-5,
                "row {i} {row:?}: {} vs {expected}",
                fast[i]
            );
            assert!((explained[i].pd - expected).abs() < 1e-5, "row {i} {row:?}");
        }
    }

    #[test]
    fn contributions_add_up_exactly_and_unknown_features_contribute_nothing() {
        let model = TreeModel::new(spec(), &crate::cpu()).unwrap();
        for (i, out) in model.score(&rows()).unwrap().iter().enumerate() {
            let sum: f64 = out.contributions.iter().map(|c| c.logit).sum();
            assert!((sum - (out.logit - out.baseline_logit)).abs() < 1e-5, "row {i}");
            for c in &out.contributions {
                if c.value.is_none() {
                    assert!(
                        c.logit.abs() < 1e-6,
                        "row {i}: unknown {} contributes {}",
                        c.feature,
                        c.logit
                    );
                    assert!(c.reason.contains("not reported"));
                }
            }
        }
        // Nothing known: the PD is the baseline's.
        let nothing = &model.score(&rows()[3..4]).unwrap()[0];
        assert!((nothing.logit - nothing.baseline_logit).abs() < 1e-6);
    }

    #[test]
    fn malformed_trees_are_refused() {
        let mut cyclic = spec();
        cyclic.trees[1][0] = Node::Split {
            feature: 2,
            threshold: 0.0,
            left: 0,
            right: 2,
            left_share: 0.5,
        };
        assert!(TreeModel::new(cyclic, &crate::cpu()).is_err());
        let mut bad_feature = spec();
        if let Node::Split { feature, .. } = &mut bad_feature.trees[0][0] {
            *feature = 3;
        }
        assert!(TreeModel::new(bad_feature, &crate::cpu()).is_err());
        let mut orphan = spec();
        orphan.trees[1].push(Node::Leaf { value: 1.0 });
        assert!(TreeModel::new(orphan, &crate::cpu()).is_err());
    }
}
