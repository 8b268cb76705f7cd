//! Everything that turns a company's financial statement into a probability of default (PD).
//!
//! Pure computation: no network, no database; the only I/O is reading model artifacts.
//!
//! What this crate owns:
//! - [`kinds`]: the vocabulary shared with the rest of the service — the prediction types (annual, quarterly)
//!   and the risk levels a PD maps to;
//! - the statement schema, feature engineering, the AccuNode scorecards, the trained Burn models, the model
//!   registry and the explanations (the models issue), with training and evaluation binaries behind the
//!   `train` feature so that the service binary never compiles Burn's training stack.

pub mod kinds;

pub use kinds::{PredictionType, RiskLevel, UnknownKind};
