//! The trained PD networks: piecewise-linear encoding of each ratio, a small MLP ensemble, Platt calibration,
//! and integrated-gradients explanations.
//!
//! * **Encoding** ([`Encoder`], fitted on training data only): each feature is cut at its training
//!   quantiles into up to `T` bins; a value becomes `T` numbers in [0, 1] — 1 for bins wholly below it, its
//!   relative position in its own bin, 0 above (piecewise-linear encoding, Gorishniy et al., NeurIPS 2022) —
//!   plus a missing indicator. Outliers saturate instead of dominating, and missing is explicit.
//! * **Network** ([`Ensemble`]): `K` MLPs (ReLU) whose logits are averaged.
//! * **Calibration**: `p = σ(a·z + b)`, with `a`, `b` fitted on out-of-fold predictions.
//! * **Explanations**: integrated gradients on the encoded input along the straight line from the baseline
//!   (the encoding of the training medians, no value missing) to the row, `m` steps (trapezoidal rule).
//!   Each feature's contribution is the sum over its encoded inputs, in calibrated-logit units, so the
//!   contributions add up to `logit − baseline_logit` up to the quadrature error.

use burn::{
    module::{Module, ModuleMapper, Param, ParamId},
    nn::{Initializer, Linear, LinearConfig, Relu},
    store::ModuleRecord,
    tensor::{Bytes, Device, Tensor, TensorData},
};
use serde::{Deserialize, Serialize};

use crate::explain::Contribution;

/// Per-feature quantile edges and the explanation baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Encoder {
    /// `edges[j]`: strictly increasing cut points of feature j (`len - 1` bins; fewer than 2 edges: the
    /// feature only contributes its missing indicator).
    pub edges: Vec<Vec<f64>>,
    /// Training median of each feature (the explanation baseline).
    pub medians: Vec<f64>,
}

impl Encoder {
    /// Fits quantile edges (`bins` bins per feature) and medians on `rows`.
    pub fn fit(rows: &[Vec<Option<f64>>], bins: usize) -> Self {
        let n_features = rows.first().map_or(0, Vec::len);
        let mut edges = Vec::with_capacity(n_features);
        let mut medians = Vec::with_capacity(n_features);
        for j in 0..n_features {
            let mut values: Vec<f64> = rows.iter().filter_map(|r| r[j]).filter(|v| v.is_finite()).collect();
            values.sort_by(f64::total_cmp);
            let quantile = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
            let mut cuts: Vec<f64> = if values.is_empty() {
                Vec::new()
            } else {
                (0..=bins).map(|k| quantile(k as f64 / bins as f64)).collect()
            };
            cuts.dedup();
            medians.push(if values.is_empty() { 0.0 } else { quantile(0.5) });
            edges.push(if cuts.len() >= 2 { cuts } else { Vec::new() });
        }
        Self { edges, medians }
    }

    /// Encoded width of each feature (bins + missing indicator).
    fn feature_width(&self, j: usize) -> usize {
        self.edges[j].len().saturating_sub(1) + 1
    }

    pub fn width(&self) -> usize {
        (0..self.edges.len()).map(|j| self.feature_width(j)).sum()
    }

    pub fn n_features(&self) -> usize {
        self.edges.len()
    }

    /// Appends the encoding of `row` to `out`.
    pub fn encode_into(&self, row: &[Option<f64>], out: &mut Vec<f32>) {
        for (j, edges) in self.edges.iter().enumerate() {
            let value = row.get(j).copied().flatten().filter(|v| !v.is_nan());
            for window in edges.windows(2) {
                let position = match value {
                    Some(x) => ((x - window[0]) / (window[1] - window[0])).clamp(0.0, 1.0),
                    None => 0.0,
                };
                out.push(position as f32);
            }
            out.push(if value.is_some() { 0.0 } else { 1.0 });
        }
    }

    /// Encodes rows into a flat row-major matrix `[rows, width]`.
    pub fn encode(&self, rows: &[Vec<Option<f64>>]) -> Vec<f32> {
        let mut out = Vec::with_capacity(rows.len() * self.width());
        for row in rows {
            self.encode_into(row, &mut out);
        }
        out
    }

    /// The encoding of the baseline company (every feature at its training median).
    pub fn baseline(&self) -> Vec<f32> {
        let row: Vec<Option<f64>> = self.medians.iter().copied().map(Some).collect();
        self.encode(&[row])
    }
}

/// One multi-layer perceptron producing a logit.
#[derive(Module, Debug)]
pub struct Mlp {
    hidden: Vec<Linear>,
    out: Linear,
    activation: Relu,
}

impl Mlp {
    /// Random initial weights, reproducible for `seed`. Burn draws them from its backend's process-wide
    /// generator, so seeding it and drawing happen under one lock: fits running at the same time (tests,
    /// experiments on several threads) cannot interleave their draws.
    pub fn seeded(width: usize, hidden: &[usize], device: &Device, seed: u64) -> Self {
        static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = INIT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        device.seed(seed);
        Self::build(width, hidden, device, None)
    }

    /// Zero weights of the right shapes, to load a record into; draws nothing from the generator.
    pub fn shaped(width: usize, hidden: &[usize], device: &Device) -> Self {
        Self::build(width, hidden, device, Some(Initializer::Zeros))
    }

    fn build(width: usize, hidden: &[usize], device: &Device, initializer: Option<Initializer>) -> Self {
        let linear = |d_in, d_out| {
            let config = LinearConfig::new(d_in, d_out);
            match &initializer {
                Some(initializer) => config.with_initializer(initializer.clone()),
                None => config,
            }
            .init(device)
        };
        let mut layers = Vec::with_capacity(hidden.len());
        let mut d = width;
        for &h in hidden {
            layers.push(linear(d, h));
            d = h;
        }
        Self {
            hidden: layers,
            out: linear(d, 1),
            activation: Relu::new(),
        }
    }

    /// `[n, width]` → logits `[n, 1]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let mut x = x;
        for layer in &self.hidden {
            x = self.activation.forward(layer.forward(x));
        }
        self.out.forward(x)
    }
}

/// Several MLPs whose logits are averaged.
#[derive(Module, Debug)]
pub struct Ensemble {
    pub members: Vec<Mlp>,
}

impl Ensemble {
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let k = self.members.len() as f64;
        let sum = self
            .members
            .iter()
            .map(|m| m.forward(x.clone()))
            .reduce(|a, b| a.add(b))
            .expect("an ensemble has members");
        sum.div_scalar(k)
    }
}

/// Platt scaling of the raw logit: `σ(a·z + b)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub a: f64,
    pub b: f64,
}

impl Calibration {
    pub const IDENTITY: Self = Self { a: 1.0, b: 0.0 };

    pub fn logit(&self, raw: f64) -> f64 {
        self.a * raw + self.b
    }

    pub fn probability(&self, raw: f64) -> f64 {
        1.0 / (1.0 + (-self.logit(raw)).exp())
    }
}

/// Everything about a network except its weights (stored as JSON beside the Burn record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    pub feature_names: Vec<String>,
    /// Human words per feature, for reason codes.
    pub feature_labels: Vec<String>,
    pub encoder: Encoder,
    pub hidden: Vec<usize>,
    pub members: usize,
    pub calibration: Calibration,
    /// Integrated-gradients steps per explanation.
    pub ig_steps: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("the network spec is invalid: {0}")]
    Spec(String),
    #[error("the Burn record does not match the spec: {0}")]
    Record(String),
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("integrated gradients failed: {0}")]
    Explanation(String),
}

/// Gives parameters the ids 1, 2, 3, … in traversal order.
struct SequentialParamIds(u64);

impl ModuleMapper for SequentialParamIds {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (_, tensor, _) = param.consume();
        self.0 += 1;
        Param::initialized(ParamId::from(self.0), tensor)
    }
}

/// A loaded network ready to score.
#[derive(Debug)]
pub struct NetworkModel {
    spec: NetworkSpec,
    ensemble: Ensemble,
    device: Device,
    baseline: Vec<f32>,
    baseline_raw: f64,
}

impl NetworkModel {
    pub fn new(spec: NetworkSpec, ensemble: Ensemble, device: &Device) -> Result<Self, NetworkError> {
        let n = spec.feature_names.len();
        if spec.encoder.n_features() != n || spec.feature_labels.len() != n || spec.encoder.medians.len() != n {
            return Err(NetworkError::Spec("feature names, labels and encoder disagree".into()));
        }
        let edges_ok = spec
            .encoder
            .edges
            .iter()
            .all(|e| e.iter().all(|x| x.is_finite()) && e.windows(2).all(|w| w[0] < w[1]));
        if !edges_ok || spec.encoder.medians.iter().any(|m| !m.is_finite()) {
            return Err(NetworkError::Spec(
                "encoder edges must be finite and strictly increasing".into(),
            ));
        }
        if spec.members == 0 || ensemble.members.len() != spec.members || spec.ig_steps == 0 {
            return Err(NetworkError::Spec(
                "members and ig_steps must be positive and match the record".into(),
            ));
        }
        let baseline = spec.encoder.baseline();
        let mut model = Self {
            spec,
            ensemble: ensemble.valid(),
            device: device.clone(),
            baseline,
            baseline_raw: 0.0,
        };
        model.baseline_raw = model
            .raw_logits(&model.baseline.clone(), 1)?
            .first()
            .copied()
            .ok_or_else(|| NetworkError::Inference("no logit for the baseline".into()))?;
        Ok(model)
    }

    /// Builds from the spec JSON and the Burn record bytes of an artifact.
    pub fn from_bytes(spec_json: &[u8], record: &[u8], device: &Device) -> Result<Self, NetworkError> {
        let spec: NetworkSpec = serde_json::from_slice(spec_json).map_err(|e| NetworkError::Spec(e.to_string()))?;
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(record.to_vec()))
            .map_err(|e| NetworkError::Record(format!("{e:?}")))?;
        let ensemble = Self::empty_ensemble(&spec, device)
            .try_load_record(record)
            .map_err(|e| NetworkError::Record(format!("{e:?}")))?;
        Self::new(spec, ensemble, device)
    }

    /// An ensemble with the spec's shapes (weights to be loaded).
    pub fn empty_ensemble(spec: &NetworkSpec, device: &Device) -> Ensemble {
        let width = spec.encoder.width();
        Ensemble {
            members: (0..spec.members)
                .map(|_| Mlp::shaped(width, &spec.hidden, device))
                .collect(),
        }
    }

    /// The Burn record of the weights, as stored in the artifact. Parameter ids (random in Burn) are
    /// renumbered in traversal order first, so the same weights always give the same bytes.
    pub fn record_bytes(ensemble: &Ensemble) -> Result<Vec<u8>, NetworkError> {
        let bytes = ensemble
            .clone()
            .map(&mut SequentialParamIds(0))
            .into_record()
            .into_bytes()
            .map_err(|e| NetworkError::Record(format!("{e:?}")))?;
        Ok(bytes.to_vec())
    }

    pub fn spec(&self) -> &NetworkSpec {
        &self.spec
    }

    pub fn feature_names(&self) -> &[String] {
        &self.spec.feature_names
    }

    fn raw_logits(&self, encoded: &[f32], n: usize) -> Result<Vec<f64>, NetworkError> {
        let width = self.spec.encoder.width();
        let x = Tensor::<2>::from_data(TensorData::new(encoded.to_vec(), [n, width]), &self.device);
        crate::values_f64(self.ensemble.forward(x)).map_err(NetworkError::Inference)
    }

    /// Calibrated PDs only (no explanations): the fast path.
    pub fn predict(&self, rows: &[Vec<Option<f64>>]) -> Result<Vec<f64>, NetworkError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let encoded = self.spec.encoder.encode(rows);
        Ok(self
            .raw_logits(&encoded, rows.len())?
            .into_iter()
            .map(|z| self.spec.calibration.probability(z))
            .collect())
    }

    /// PDs with integrated-gradients contributions.
    pub fn score(&self, rows: &[Vec<Option<f64>>]) -> Result<Vec<crate::output::ModelOutput>, NetworkError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let encoded = self.spec.encoder.encode(rows);
        let raw = self.raw_logits(&encoded, rows.len())?;
        let width = self.spec.encoder.width();
        let attributions = self.integrated_gradients(&encoded, rows.len())?;
        let calibration = self.spec.calibration;
        Ok(rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let per_input = &attributions[i * width..(i + 1) * width];
                let contributions = self.group(row, per_input);
                crate::output::ModelOutput {
                    pd: calibration.probability(raw[i]),
                    logit: calibration.logit(raw[i]),
                    baseline_logit: calibration.logit(self.baseline_raw),
                    contributions,
                }
            })
            .collect())
    }

    /// Integrated gradients of the raw logit for each encoded input of each row, `[n * width]`.
    fn integrated_gradients(&self, encoded: &[f32], n: usize) -> Result<Vec<f64>, NetworkError> {
        let width = self.spec.encoder.width();
        let m = self.spec.ig_steps;
        // Path points α = 0, 1/m, …, 1 for every row, stacked: [(m + 1) * n, width].
        let mut path = Vec::with_capacity((m + 1) * n * width);
        for k in 0..=m {
            let alpha = k as f32 / m as f32;
            for i in 0..n {
                let x = &encoded[i * width..(i + 1) * width];
                path.extend(x.iter().zip(&self.baseline).map(|(x, b)| b + alpha * (x - b)));
            }
        }
        let autodiff = self.device.clone().autodiff();
        let input = Tensor::<2>::from_data(TensorData::new(path, [(m + 1) * n, width]), &autodiff).require_grad();
        let model = self.ensemble.clone().fork(&autodiff).freeze();
        let grads = model.forward(input.clone()).sum().backward();
        let gradient: Vec<f64> = input
            .grad(&grads)
            .ok_or_else(|| NetworkError::Explanation("no gradient for the input".into()))?
            .into_data()
            .try_to_vec_as::<f64>()
            .map_err(|e| NetworkError::Explanation(format!("{e:?}")))?;
        let mut attributions = vec![0.0; n * width];
        for i in 0..n {
            for d in 0..width {
                // Trapezoidal rule over the path.
                let mut integral = 0.0;
                for k in 0..=m {
                    let weight = if k == 0 || k == m { 0.5 } else { 1.0 };
                    integral += weight * gradient[(k * n + i) * width + d];
                }
                let delta = f64::from(encoded[i * width + d]) - f64::from(self.baseline[d]);
                attributions[i * width + d] = integral / m as f64 * delta;
            }
        }
        Ok(attributions)
    }

    /// Sums the encoded inputs' attributions per feature, in calibrated-logit units, with a reason each.
    fn group(&self, row: &[Option<f64>], per_input: &[f64]) -> Vec<Contribution> {
        let a = self.spec.calibration.a;
        let mut offset = 0;
        (0..self.spec.encoder.n_features())
            .map(|j| {
                let width = self.spec.encoder.feature_width(j);
                let logit = a * per_input[offset..offset + width].iter().sum::<f64>();
                offset += width;
                let label = &self.spec.feature_labels[j];
                let value = row.get(j).copied().flatten();
                let reason = crate::explain::reason(label, value, logit, "median company");
                Contribution {
                    feature: self.spec.feature_names[j].clone(),
                    value,
                    logit,
                    reason,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Vec<Option<f64>>> {
        (0..50)
            .map(|i| {
                vec![
                    Some(i as f64),
                    if i % 5 == 0 { None } else { Some((i * i) as f64) },
                    Some(1.0),
                ]
            })
            .collect()
    }

    #[test]
    fn the_encoder_is_piecewise_linear_with_missing_indicators() {
        let encoder = Encoder::fit(&rows(), 4);
        assert_eq!(encoder.edges[0].len(), 5);
        assert!(encoder.edges[2].is_empty(), "a constant feature has no bins");
        assert_eq!(encoder.width(), 5 + 5 + 1);
        let encoded = encoder.encode(&[vec![Some(-100.0), None, Some(1.0)], vec![Some(1e9), Some(0.0), None]]);
        assert_eq!(&encoded[0..5], &[0.0, 0.0, 0.0, 0.0, 0.0]); // below every bin, present
        assert_eq!(&encoded[5..10], &[0.0, 0.0, 0.0, 0.0, 1.0]); // missing
        assert_eq!(&encoded[11..15], &[1.0, 1.0, 1.0, 1.0]); // saturates above the top edge
        assert_eq!(encoded[21], 1.0); // constant feature missing
    }

    #[test]
    fn contributions_add_up_to_the_logit_difference() {
        let device = crate::cpu();
        let encoder = Encoder::fit(&rows(), 4);
        let spec = NetworkSpec {
            feature_names: vec!["a".into(), "b".into(), "c".into()],
            feature_labels: vec!["A".into(), "B".into(), "C".into()],
            hidden: vec![8, 4],
            members: 2,
            calibration: Calibration { a: 0.8, b: -1.0 },
            ig_steps: 64,
            encoder,
        };
        let build = || Ensemble {
            members: (0..2)
                .map(|seed| Mlp::seeded(spec.encoder.width(), &spec.hidden, &device, seed))
                .collect(),
        };
        let bytes = NetworkModel::record_bytes(&build()).unwrap();
        let spec_json = serde_json::to_vec(&spec).unwrap();
        let model = NetworkModel::from_bytes(&spec_json, &bytes, &device).unwrap();
        let out = model
            .score(&[vec![Some(3.0), Some(1000.0), None], vec![Some(40.0), None, Some(1.0)]])
            .unwrap();
        for o in &out {
            let sum: f64 = o.contributions.iter().map(|c| c.logit).sum();
            let delta = o.logit - o.baseline_logit;
            assert!(
                (sum - delta).abs() < 0.01 * delta.abs().max(0.05),
                "sum {sum} vs delta {delta}"
            );
            assert!((0.0..=1.0).contains(&o.pd));
        }
        // The record round-trips (the same weights give the same predictions), and the same weights
        // always give the same bytes, whatever ids Burn drew for the parameters.
        assert_eq!(NetworkModel::record_bytes(&build()).unwrap(), bytes);
        let again = NetworkModel::from_bytes(&spec_json, &bytes, &device).unwrap();
        assert_eq!(
            again.predict(&rows()[..3]).unwrap(),
            model.predict(&rows()[..3]).unwrap()
        );
    }
}
