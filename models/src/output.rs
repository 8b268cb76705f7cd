//! What every model kind says about one row: its own module, so that the models (which produce it) and the
//! registry (which serves them) both depend on it and not on each other.

use crate::explain::Contribution;

/// What a model says about one row.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOutput {
    pub pd: f64,
    pub logit: f64,
    pub baseline_logit: f64,
    pub contributions: Vec<Contribution>,
}
