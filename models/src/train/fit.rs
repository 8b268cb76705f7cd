//! The training loop: class-weighted binary cross-entropy, Adam, mini-batches, early stopping on a
//! stratified hold-out, one member of the ensemble per seed. Deterministic for a seed (each member's
//! initial weights and batch order come from generators seeded with it, and members are trained one after
//! another on one thread), also while other fits run in the same process.

use burn::{
    module::Module,
    optim::{AdamConfig, GradientsParams, decay::WeightDecayConfig},
    tensor::{Device, Tensor, TensorData, activation::log_sigmoid},
};
use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};
use serde::{Deserialize, Serialize};

use crate::{
    dataset::Dataset,
    features::{POLISH, POLISH_LABELS},
    network::{Calibration, Encoder, Ensemble, Mlp, NetworkSpec},
    train::{cv, metrics},
};

/// Hyper-parameters of a network (or, with no hidden layer, of a logistic regression).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitConfig {
    /// Quantile bins per feature in the piecewise-linear encoding.
    pub bins: usize,
    pub hidden: Vec<usize>,
    pub members: usize,
    pub max_epochs: usize,
    /// Epochs without a better hold-out AUC before stopping.
    pub patience: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// Share of the training rows held out for early stopping.
    pub holdout_fraction: f64,
}

impl FitConfig {
    /// The production network.
    pub fn network() -> Self {
        Self {
            bins: 16,
            hidden: vec![128, 32],
            members: 5,
            max_epochs: 60,
            patience: 8,
            batch_size: 128,
            learning_rate: 1e-3,
            weight_decay: 1e-4,
            holdout_fraction: 0.1,
        }
    }

    /// The logistic-regression baseline on the same encoding.
    pub fn logistic() -> Self {
        Self {
            hidden: vec![],
            members: 1,
            learning_rate: 3e-3,
            ..Self::network()
        }
    }
}

/// A fitted encoder and ensemble, and the epoch each member stopped at.
pub struct Fitted {
    pub encoder: Encoder,
    pub ensemble: Ensemble,
    pub epochs: Vec<usize>,
}

impl Fitted {
    /// The artifact spec of a network on the 64 Polish attributes, and its weights.
    pub fn into_polish_network(
        self,
        config: &FitConfig,
        calibration: Calibration,
        ig_steps: usize,
    ) -> (NetworkSpec, Ensemble) {
        let spec = NetworkSpec {
            feature_names: POLISH.clone(),
            feature_labels: POLISH_LABELS.iter().map(|s| s.to_string()).collect(),
            encoder: self.encoder,
            hidden: config.hidden.clone(),
            members: config.members,
            calibration,
            ig_steps,
        };
        (spec, self.ensemble)
    }
}

/// Fits on `train`. With `fixed_epochs`, trains every member that long on all rows (no hold-out);
/// otherwise early-stops each member on a stratified hold-out.
pub fn fit(train: &Dataset, config: &FitConfig, seed: u64, fixed_epochs: Option<usize>) -> Fitted {
    let encoder = Encoder::fit(&train.rows, config.bins);
    let encoded = encoder.encode(&train.rows);
    let width = encoder.width();
    let all: Vec<usize> = (0..train.len()).collect();
    let (fit_rows, holdout) = match fixed_epochs {
        Some(_) => (all, Vec::new()),
        None => cv::stratified_split(&all, &train.labels, config.holdout_fraction, seed ^ 0x5eed),
    };
    let plain = crate::cpu();
    let autodiff = plain.clone().autodiff();
    let mut members = Vec::with_capacity(config.members);
    let mut epochs = Vec::with_capacity(config.members);
    for member in 0..config.members {
        let member_seed = seed.wrapping_mul(1000).wrapping_add(member as u64);
        let (model, stopped) = fit_member(
            &encoded,
            width,
            &train.labels,
            &fit_rows,
            &holdout,
            config,
            member_seed,
            fixed_epochs,
            &autodiff,
            &plain,
        );
        members.push(model);
        epochs.push(stopped);
    }
    Fitted {
        encoder,
        ensemble: Ensemble { members },
        epochs,
    }
}

fn rows_tensor(encoded: &[f32], width: usize, rows: &[usize], device: &Device) -> Tensor<2> {
    let mut data = Vec::with_capacity(rows.len() * width);
    for &i in rows {
        data.extend_from_slice(&encoded[i * width..(i + 1) * width]);
    }
    Tensor::<2>::from_data(TensorData::new(data, [rows.len(), width]), device)
}

fn column(values: Vec<f32>, device: &Device) -> Tensor<2> {
    let n = values.len();
    Tensor::<2>::from_data(TensorData::new(values, [n, 1]), device)
}

/// Raw logits of `model` on `rows`.
pub fn logits(model: &Mlp, encoded: &[f32], width: usize, rows: &[usize], device: &Device) -> Vec<f64> {
    if rows.is_empty() {
        return Vec::new();
    }
    model
        .forward(rows_tensor(encoded, width, rows, device))
        .into_data()
        .try_to_vec_as::<f64>()
        .expect("logits convert to f64")
}

#[allow(clippy::too_many_arguments)]
fn fit_member(
    encoded: &[f32],
    width: usize,
    labels: &[u8],
    fit_rows: &[usize],
    holdout: &[usize],
    config: &FitConfig,
    seed: u64,
    fixed_epochs: Option<usize>,
    autodiff: &Device,
    plain: &Device,
) -> (Mlp, usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model = Mlp::seeded(width, &config.hidden, autodiff, seed);
    let mut optimizer = AdamConfig::new()
        .with_weight_decay(Some(WeightDecayConfig::new(config.weight_decay as f32)))
        .init();
    // Class weights: positives weigh as much, in total, as negatives.
    let positives = fit_rows.iter().filter(|&&i| labels[i] == 1).count().max(1) as f32;
    let negatives = (fit_rows.len() as f32 - positives).max(1.0);
    let positive_weight = negatives / positives;
    let holdout_labels: Vec<u8> = holdout.iter().map(|&i| labels[i]).collect();

    let epochs = fixed_epochs.unwrap_or(config.max_epochs);
    let mut best = (f64::NEG_INFINITY, model.valid(), 0usize);
    let mut order = fit_rows.to_vec();
    for epoch in 1..=epochs {
        order.shuffle(&mut rng);
        for batch in order.chunks(config.batch_size) {
            let x = rows_tensor(encoded, width, batch, autodiff);
            let y: Vec<f32> = batch.iter().map(|&i| f32::from(labels[i])).collect();
            let w: Vec<f32> = batch
                .iter()
                .map(|&i| if labels[i] == 1 { positive_weight } else { 1.0 })
                .collect();
            let total_weight: f32 = w.iter().sum();
            let (y, w) = (column(y, autodiff), column(w, autodiff));
            let z = model.forward(x);
            // Binary cross-entropy with logits: (1 - y)·z − log σ(z), weighted.
            let loss = y
                .neg()
                .add_scalar(1.0)
                .mul(z.clone())
                .sub(log_sigmoid(z))
                .mul(w)
                .sum()
                .div_scalar(total_weight);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(config.learning_rate, model, grads);
        }
        if fixed_epochs.is_some() {
            continue;
        }
        let candidate = model.valid();
        let scores = logits(&candidate, encoded, width, holdout, plain);
        let auc = metrics::roc_auc(&scores, &holdout_labels).unwrap_or(0.5);
        if auc > best.0 {
            best = (auc, candidate, epoch);
        } else if epoch - best.2 >= config.patience {
            break;
        }
    }
    match fixed_epochs {
        Some(epochs) => (model.valid(), epochs),
        None => (best.1, best.2),
    }
}
