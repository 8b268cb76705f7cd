//! Training and evaluation (feature `train`): stratified cross-validation, the training loop, Platt
//! calibration, the metrics, the comparison models and the artifacts they produce.

pub mod artifacts;
pub mod boost;
pub mod cv;
pub mod experiment;
pub mod fit;
/// The metrics live beside the models (the service's back-tests use them too); trained models report them.
pub use crate::metrics;
pub mod platt;
