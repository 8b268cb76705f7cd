//! Gradient-boosted trees served as a Burn tensor program, with exact additive reason codes.
//!
//! * **Spec** ([`TreeEnsembleSpec`]): the fitted trees as trained (split feature, threshold, children, leaf
//!   values) plus, per split, the share of training rows *with the feature reported* that went left. Platt
//!   calibration maps the raw logit to the PD.
//! * **Unknown is marginalised**: a feature the statement cannot give (`None`) follows both sides of a
//!   split, weighted by that share — the tree's expectation over firms that did report it. An absent
//!   line item therefore never reads as the data set's missingness, and its contribution is exactly 0.
//! * **Tensor program**: every tree is padded to a perfect tree of the ensemble's depth (a short branch
//!   continues through pass-through splits that always go left). One gather reads each split's feature for
//!   every row, one comparison gives each split's probability of going left (1 or 0, the share when the
//!   feature is unknown), a product down the levels gives each leaf's weight, and one matrix product with
//!   `[leaf value | path contributions]` gives the raw logit and, optionally, every feature's contribution.
//!   A row that reports every feature the splits read needs no weights: the same comparison gives every
//!   split's direction, one gather per level moves each tree's node to its child, and the reached leaves'
//!   rows of `[leaf value | path contributions]` are gathered and summed (same numbers, one leaf per tree).
//! * **Reason codes** are path contributions (Saabas): each split on the way to a leaf adds
//!   `E[child] - E[node]` to its feature, where `E` is the share-weighted expected value of a subtree. They
//!   add up exactly to `logit - baseline_logit`, the baseline being the ensemble's expected logit.

use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::{explain::Contribution, network::Calibration, registry::ModelOutput};

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

/// A tree ensemble laid out for the tensor program.
#[derive(Debug)]
pub struct TreeModel {
    spec: TreeEnsembleSpec,
    device: Device,
    depth: usize,
    /// Per padded split (tree-major, heap order): feature read, threshold, left share when unknown.
    features: Tensor<1, Int>,
    thresholds: Tensor<2>,
    shares: Tensor<2>,
    /// `[trees * leaves, 1]` leaf values; `[trees * leaves, 1 + features]` with path contributions.
    values: Tensor<2>,
    explained: Tensor<2>,
    /// Expected raw logit: `base_score + Σ E[root]`.
    baseline_raw: f64,
    /// The features some split reads: a row reporting all of them takes the walk ([`TreeModel::walked`]).
    read: Vec<usize>,
    /// `[1, trees]`: each tree's first split, and its first leaf, in the padded layout.
    split_base: Tensor<2, Int>,
    leaf_base: Tensor<2, Int>,
}

/// A tree padded to a perfect binary tree of `depth`: splits in heap order, then leaves.
struct Padded {
    features: Vec<i64>,
    thresholds: Vec<f32>,
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
        let mut read: Vec<usize> = spec
            .trees
            .iter()
            .flatten()
            .filter_map(|node| match node {
                Node::Split { feature, .. } => Some(*feature),
                Node::Leaf { .. } => None,
            })
            .collect();
        read.sort_unstable();
        read.dedup();
        let trees = spec.trees.len();
        let base = |per_tree: usize| {
            let starts: Vec<i64> = (0..trees).map(|t| (t * per_tree) as i64).collect();
            Tensor::from_data(TensorData::new(starts, [1, trees]), device)
        };
        let (split_base, leaf_base) = (base(splits), base(leaves));
        Ok(Self {
            read,
            split_base,
            leaf_base,
            features: Tensor::from_data(TensorData::new(features, [n]), device),
            thresholds: Tensor::from_data(TensorData::new(thresholds, [1, n]), device),
            shares: Tensor::from_data(TensorData::new(shares, [1, n]), device),
            values: Tensor::from_data(TensorData::new(values, [rows, 1]), device),
            explained: Tensor::from_data(TensorData::new(explained, [rows, 1 + n_features]), device),
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

    /// Leaf weights `[n, trees * leaves]` of the rows.
    /// `[n, features]`: the rows as the program reads them, an unknown feature as NaN.
    fn input(&self, rows: &[&Vec<Option<f64>>]) -> Tensor<2> {
        let n_features = self.spec.feature_names.len();
        let flat: Vec<f32> = rows
            .iter()
            .flat_map(|r| (0..n_features).map(|j| r.get(j).copied().flatten().map_or(f32::NAN, finite_f32)))
            .collect();
        Tensor::from_data(TensorData::new(flat, [rows.len(), n_features]), &self.device)
    }

    fn leaf_weights(&self, rows: &[&Vec<Option<f64>>]) -> Tensor<2> {
        let n = rows.len();
        let x = self.input(rows);
        let splits = self.thresholds.dims()[1];
        let trees = self.spec.trees.len();
        let per_tree = (1usize << self.depth) - 1;
        let read = x.select(1, self.features.clone());
        let unknown = read.clone().is_nan();
        let go_left = read
            .lower(self.thresholds.clone().expand([n, splits]))
            .float()
            .mask_where(unknown, self.shares.clone().expand([n, splits]))
            .reshape([n, trees, per_tree]);
        let mut weights = Tensor::<3>::ones([n, trees, 1], &self.device);
        for level in 0..self.depth {
            let width = 1usize << level;
            let left = go_left.clone().narrow(2, width - 1, width);
            let right = left.clone().neg().add_scalar(1.0);
            let children: Tensor<4> = Tensor::stack(vec![weights.clone().mul(left), weights.mul(right)], 3);
            weights = children.reshape([n, trees, 2 * width]);
        }
        weights.reshape([n, trees << self.depth])
    }

    /// Rows reporting every feature a split reads go down one path per tree: one comparison gives every
    /// split's direction, a gather per level moves each tree's node to its child, and a gather of the
    /// reached leaves' rows of `values` summed over the trees gives the result — without the weights of the
    /// leaves not reached. Each row's `[value | …]` of `values` (`[trees * leaves, width]`).
    fn walked(&self, rows: &[&Vec<Option<f64>>], values: &Tensor<2>) -> Result<Vec<f64>, TreeError> {
        let n = rows.len();
        let trees = self.spec.trees.len();
        let width = values.dims()[1];
        let splits = self.thresholds.dims()[1];
        let right = self
            .input(rows)
            .select(1, self.features.clone())
            .greater_equal(self.thresholds.clone().expand([n, splits]))
            .int();
        let mut node = Tensor::<2, Int>::zeros([n, trees], &self.device);
        for _ in 0..self.depth {
            let taken = right
                .clone()
                .gather(1, node.clone() + self.split_base.clone().expand([n, trees]));
            node = node.mul_scalar(2).add_scalar(1) + taken;
        }
        let per_tree = (1i64 << self.depth) - 1;
        let leaf = node.sub_scalar(per_tree) + self.leaf_base.clone().expand([n, trees]);
        let reached = values.clone().select(0, leaf.reshape([n * trees]));
        let summed = reached.reshape([n, trees, width]).sum_dim(1);
        crate::values_f64(summed).map_err(TreeError::Inference)
    }

    /// Each row's `[value | …]` of `values`: by the walk ([`TreeModel::walked`]) for the rows that report
    /// every feature read, by the leaf weights (unknown features marginalised) for the others.
    fn logits(&self, rows: &[Vec<Option<f64>>], values: &Tensor<2>) -> Result<Vec<f64>, TreeError> {
        let width = values.dims()[1];
        let (known, partial): (Vec<usize>, Vec<usize>) =
            (0..rows.len()).partition(|&i| self.read.iter().all(|&j| rows[i].get(j).copied().flatten().is_some()));
        let mut out = vec![0.0; rows.len() * width];
        if !known.is_empty() {
            let walked = self.walked(&known.iter().map(|&i| &rows[i]).collect::<Vec<_>>(), values)?;
            for (&i, chunk) in known.iter().zip(walked.chunks_exact(width)) {
                out[i * width..(i + 1) * width].copy_from_slice(chunk);
            }
        }
        if !partial.is_empty() {
            let others: Vec<&Vec<Option<f64>>> = partial.iter().map(|&i| &rows[i]).collect();
            let weighted =
                crate::values_f64(self.leaf_weights(&others).matmul(values.clone())).map_err(TreeError::Inference)?;
            for (&i, chunk) in partial.iter().zip(weighted.chunks_exact(width)) {
                out[i * width..(i + 1) * width].copy_from_slice(chunk);
            }
        }
        Ok(out)
    }

    /// Calibrated PDs only: the fast path.
    pub fn predict(&self, rows: &[Vec<Option<f64>>]) -> Result<Vec<f64>, TreeError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let raw = self.logits(rows, &self.values)?;
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
        let out = self.logits(rows, &self.explained)?;
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
                let direction = if logit > 0.0 { "raises" } else { "lowers" };
                let reason = match value {
                    Some(v) => {
                        format!("{label} = {v:.4} {direction} the PD ({logit:+.3} logit vs. the average company)")
                    }
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

/// A value as the tensor program reads it: infinities become the largest finite `f32`, so that a
/// pass-through split (threshold +∞) always goes left.
fn finite_f32(v: f64) -> f32 {
    (v as f32).clamp(-f32::MAX, f32::MAX)
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
        thresholds: vec![f32::INFINITY; splits],
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
                padded.thresholds[slot] = *threshold as f32;
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
