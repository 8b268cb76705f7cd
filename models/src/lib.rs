//! Everything that turns a company's financial statement into a probability of default (PD).
//!
//! Pure computation: no network, no database; the only I/O is reading model artifacts.
//!
//! What this crate owns:
//! - [`kinds`]: the vocabulary shared with the rest of the service (prediction types, risk levels);
//! - [`statement`]: the canonical line items of a period and the reporting period;
//! - [`features`]: the ratios each model reads, computed from a statement or sent directly, with explicit
//!   "missing" rules;
//! - [`scorecard`], [`network`], [`trees`]: the model kinds, each scoring a batch of feature rows into
//!   [`output::ModelOutput`]s (PD, logit, reason codes); [`explain`]: the reason codes' texts;
//! - [`registry`]: the named, versioned models loaded from `artifacts/`, and what the service asks of them
//!   (score, PD only, the term structure with [`term`]);
//! - [`risk`]: risk-level schemes and the implied-rating master scale;
//! - [`dataset`]: the Polish bankruptcy data (ARFF) the trained models learn from;
//! - [`drift`]: population stability of a model's inputs and PDs against its training sample or a past window;
//! - `train` (feature `train`): cross-validation, metrics, training and evaluation, behind a cargo feature
//!   so the service binary never compiles Burn's autodiff and optimizers.

pub mod dataset;
pub mod drift;
pub mod explain;
pub mod features;
pub mod kinds;
pub mod metrics;
pub mod network;
pub mod output;
pub mod registry;
pub mod risk;
pub mod scorecard;
pub mod statement;
pub mod term;
#[cfg(feature = "train")]
pub mod train;
pub mod trees;

pub use kinds::{PredictionType, RiskLevel, UnknownKind};

/// The CPU device every model runs on (Burn's NdArray backend).
pub fn cpu() -> burn::tensor::Device {
    // NdArray is deprecated in favour of Flex since Burn 0.22; it is the backend this product standardised
    // on (burn-ndarray) and stays behind this one function, so switching is a one-line change.
    #[allow(deprecated)]
    burn::tensor::Device::ndarray()
}

/// A tensor's values as `f64` (the models compute in `f32`); the error says why they cannot be read.
pub(crate) fn values_f64<const D: usize>(tensor: burn::tensor::Tensor<D>) -> Result<Vec<f64>, String> {
    tensor.into_data().try_to_vec_as::<f64>().map_err(|e| format!("{e:?}"))
}

/// The committed artifacts directory (`models/artifacts`), for tools and tests run from the repository.
pub fn committed_artifacts_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts")
}

/// The Polish bankruptcy data beside the repository (`../shared/data/polish_bankruptcy`), for training and
/// for the tests that check the features against it.
pub fn train_data_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/polish_bankruptcy")
}
