//! The model registry: named, versioned models loaded from `models/artifacts/`, checksums verified.
//!
//! `artifacts/manifest.json` lists every model with its files and their SHA-256. Loading fails with an
//! error naming the file when one is missing, altered or malformed, so a bad deployment is refused at start
//! (or at reload, leaving the running registry in place) instead of scoring with the wrong parameters.
//!
//! [`LoadedModel::score_batch`] is the one scoring entry point: rows of features in, PDs and contributions
//! out. It is synchronous and CPU-bound, meant for the model pool's `SyncArbiter` worker threads.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
    sync::Arc,
};

use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    PredictionType,
    features::FeatureSet,
    network::{NetworkError, NetworkModel},
    output::ModelOutput,
    scorecard::{Scorecard, ScorecardSpec},
    term::{self, TermStructure},
    trees::TreeModel,
};

/// `family/name@version`, e.g. `annual/accunode-scorecard@1`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ModelId {
    pub name: String,
    pub version: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid model id {0:?}: expected name@version, e.g. annual/accunode-scorecard@1")]
pub struct InvalidModelId(pub String);

impl FromStr for ModelId {
    type Err = InvalidModelId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidModelId(s.to_owned());
        let (name, version) = s.rsplit_once('@').ok_or_else(invalid)?;
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '/' | '-' | '_'));
        let version: u32 = version.parse().map_err(|_| invalid())?;
        if !name_ok || version == 0 {
            return Err(invalid());
        }
        Ok(Self {
            name: name.to_owned(),
            version,
        })
    }
}

impl TryFrom<String> for ModelId {
    type Error = InvalidModelId;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ModelId> for String {
    fn from(id: ModelId) -> Self {
        id.to_string()
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Scorecard,
    Network,
    /// Gradient-boosted trees (`trees::TreeEnsembleSpec` JSON).
    Trees,
}

/// One file of an artifact and its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactFile {
    /// Relative to the artifacts directory.
    pub path: String,
    pub sha256: String,
}

/// A model's entry in `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    pub id: ModelId,
    pub kind: ModelKind,
    pub prediction_type: PredictionType,
    /// The PD horizon in years (1: default within 12 months).
    pub horizon_years: u8,
    pub feature_set: FeatureSet,
    pub description: String,
    /// The parameters (scorecard JSON, or network spec JSON + Burn record).
    pub files: Vec<ArtifactFile>,
    /// Model card (JSON), shown by the API.
    pub card: ArtifactFile,
    /// Models giving the PD at other horizons from the same features, by horizon (`"5y"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub term_structure: BTreeMap<String, ModelId>,
    /// The default rate of the sample the model was calibrated on (its PDs carry it); `None` when unknown
    /// (AccuNode's scorecards). A tenant's base rate shifts PDs from it (`term::rebase`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_default_rate: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub models: Vec<ManifestEntry>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{path}: cannot be read: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: checksum mismatch (manifest says {expected}, file has {actual}); the artifact was altered or is incomplete"
    )]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{path}: malformed: {message}")]
    Malformed { path: PathBuf, message: String },
    #[error("{id}: {message}")]
    Inconsistent { id: ModelId, message: String },
}

/// How far a model's PD on a reference row of its card may be from the card's (float rounding only).
pub const REFERENCE_TOLERANCE: f64 = 1e-9;

/// The parameters of one model, ready to score (boxed: both hold tensors and are a few hundred bytes).
#[derive(Debug)]
pub enum Model {
    Scorecard(Box<Scorecard>),
    Network(Box<NetworkModel>),
    Trees(Box<TreeModel>),
}

/// Why a term structure could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TermError {
    #[error("term-structure model {0} is not loaded")]
    Partner(ModelId),
    #[error(transparent)]
    Score(ScoreError),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScoreError {
    #[error("row {row} has {got} features; {model} reads {expected}")]
    Width {
        model: ModelId,
        row: usize,
        got: usize,
        expected: usize,
    },
    #[error("{0}")]
    Inference(String),
}

#[derive(Debug)]
pub struct LoadedModel {
    pub entry: ManifestEntry,
    pub model: Model,
    pub card: serde_json::Value,
}

impl LoadedModel {
    pub fn id(&self) -> &ModelId {
        &self.entry.id
    }

    /// The words for each feature (reason codes, reports), in the model's order.
    pub fn feature_labels(&self) -> Vec<&str> {
        match &self.model {
            Model::Scorecard(card) => card.spec().features.iter().map(|f| f.label.as_str()).collect(),
            Model::Network(network) => network.spec().feature_labels.iter().map(String::as_str).collect(),
            Model::Trees(trees) => trees.spec().feature_labels.iter().map(String::as_str).collect(),
        }
    }

    /// Builds the model of `entry` from its files, as `read` gives them (checksums verified by `read`); `dir`
    /// names them in errors. Its parameters must read the entry's feature set.
    pub fn from_files(
        entry: ManifestEntry,
        dir: &Path,
        read: impl Fn(&ArtifactFile) -> Result<Vec<u8>, RegistryError>,
        device: &Device,
    ) -> Result<Self, RegistryError> {
        let files = entry.files.iter().map(&read).collect::<Result<Vec<_>, _>>()?;
        let card_path = dir.join(&entry.card.path);
        let card: serde_json::Value = parse_json(&card_path, &read(&entry.card)?)?;
        let malformed = |index: usize, message: String| RegistryError::Malformed {
            path: dir.join(&entry.files[index].path),
            message,
        };
        let model = match entry.kind {
            ModelKind::Scorecard => {
                let [spec] = files.as_slice() else {
                    return Err(inconsistent(&entry, "a scorecard has exactly one file"));
                };
                let spec: ScorecardSpec = parse_json(&dir.join(&entry.files[0].path), spec)?;
                let card = Scorecard::new(spec, device).map_err(|e| malformed(0, e.to_string()))?;
                Model::Scorecard(Box::new(card))
            }
            ModelKind::Network => {
                let [spec, record] = files.as_slice() else {
                    return Err(inconsistent(&entry, "a network has a spec file and a record file"));
                };
                let network =
                    NetworkModel::from_bytes(spec, record, device).map_err(|e| malformed(1, e.to_string()))?;
                Model::Network(Box::new(network))
            }
            ModelKind::Trees => {
                let [spec] = files.as_slice() else {
                    return Err(inconsistent(&entry, "a tree ensemble has exactly one file"));
                };
                let trees = TreeModel::from_json(spec, device).map_err(|e| malformed(0, e.to_string()))?;
                Model::Trees(Box::new(trees))
            }
        };
        let names = match &model {
            Model::Scorecard(card) => card.feature_names().iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            Model::Network(network) => network.feature_names().to_vec(),
            Model::Trees(trees) => trees.feature_names().to_vec(),
        };
        if names != entry.feature_set.names() {
            return Err(inconsistent(
                &entry,
                "its parameters do not read the manifest's feature set",
            ));
        }
        Ok(Self { entry, model, card })
    }

    /// Scores the model card's reference rows (`reference_rows: [{"features": [..], "pd": ..}]`, features in
    /// the model's order, `null` for missing) and checks each PD within `REFERENCE_TOLERANCE`: the model
    /// computes here what it computed where it was trained. The number of rows checked; a card without
    /// reference rows fails.
    pub fn self_test(&self) -> Result<usize, RegistryError> {
        #[derive(Deserialize)]
        struct Reference {
            features: Vec<Option<f64>>,
            pd: f64,
        }
        let fail = |message: String| inconsistent(&self.entry, &message);
        let rows: Vec<Reference> = self
            .card
            .get("reference_rows")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| fail(format!("the card's reference_rows are malformed: {e}")))?
            .unwrap_or_default();
        if rows.is_empty() {
            return Err(fail("the card has no reference_rows to check the model against".into()));
        }
        let features: Vec<Vec<Option<f64>>> = rows.iter().map(|r| r.features.clone()).collect();
        let scored = self.score_batch(&features).map_err(|e| fail(e.to_string()))?;
        for (i, (row, output)) in rows.iter().zip(&scored).enumerate() {
            // NaN on either side fails too.
            let within = (output.pd - row.pd).abs() <= REFERENCE_TOLERANCE;
            if !within {
                return Err(fail(format!(
                    "reference row {i}: the card says PD {}, the model gives {}",
                    row.pd, output.pd
                )));
            }
        }
        Ok(rows.len())
    }

    /// The PDs of `outputs` for a portfolio whose one-year default rate is `base_rate` (prior shift from
    /// the model's sample rate, [`term::rebase`]); unchanged without a base rate or when the sample rate is
    /// unknown.
    pub fn portfolio_pds(&self, outputs: &[ModelOutput], base_rate: Option<f64>) -> Vec<f64> {
        outputs.iter().map(|o| self.portfolio_pd(o.pd, base_rate)).collect()
    }

    /// One PD of the model for a portfolio whose one-year default rate is `base_rate` (see
    /// [`Self::portfolio_pds`]); increasing in `pd`.
    pub fn portfolio_pd(&self, pd: f64, base_rate: Option<f64>) -> f64 {
        match (self.entry.sample_default_rate, base_rate) {
            (Some(sample), Some(target)) => term::rebase(pd, sample, target),
            _ => pd,
        }
    }

    fn check_width(&self, rows: &[Vec<Option<f64>>]) -> Result<(), ScoreError> {
        let expected = self.entry.feature_set.len();
        match rows.iter().enumerate().find(|(_, r)| r.len() != expected) {
            Some((row, r)) => Err(ScoreError::Width {
                model: self.entry.id.clone(),
                row,
                got: r.len(),
                expected,
            }),
            None => Ok(()),
        }
    }

    /// Scores rows of features (in the model's feature-set order; `None` = missing).
    pub fn score_batch(&self, rows: &[Vec<Option<f64>>]) -> Result<Vec<ModelOutput>, ScoreError> {
        self.check_width(rows)?;
        match &self.model {
            Model::Scorecard(card) => Ok(card
                .score(rows)
                .into_iter()
                .map(|o| ModelOutput {
                    pd: o.pd,
                    logit: o.logit,
                    baseline_logit: o.baseline_logit,
                    contributions: o.contributions,
                })
                .collect()),
            Model::Network(network) => network
                .score(rows)
                .map_err(|e: NetworkError| ScoreError::Inference(e.to_string())),
            Model::Trees(trees) => trees.score(rows).map_err(|e| ScoreError::Inference(e.to_string())),
        }
    }

    /// PDs only, without explanations (term-structure partners, shadow comparisons): the fast path where
    /// the model has one.
    pub fn predict_batch(&self, rows: &[Vec<Option<f64>>]) -> Result<Vec<f64>, ScoreError> {
        self.check_width(rows)?;
        match &self.model {
            Model::Network(network) => network.predict(rows).map_err(|e| ScoreError::Inference(e.to_string())),
            Model::Trees(trees) => trees.predict(rows).map_err(|e| ScoreError::Inference(e.to_string())),
            Model::Scorecard(_) => Ok(self.score_batch(rows)?.into_iter().map(|o| o.pd).collect()),
        }
    }
}

/// Every model of a deployment, by id.
#[derive(Debug, Default)]
pub struct Registry {
    models: BTreeMap<ModelId, Arc<LoadedModel>>,
}

impl Registry {
    /// Loads every model listed in `dir/manifest.json`, verifying each file's checksum.
    pub fn load(dir: &Path, device: &Device) -> Result<Self, RegistryError> {
        let manifest_path = dir.join("manifest.json");
        let manifest: Manifest = parse_json(&manifest_path, &read(&manifest_path)?)?;
        let mut models = BTreeMap::new();
        for entry in manifest.models {
            let model = LoadedModel::from_files(entry, dir, |file| read_verified(dir, file), device)?;
            if models.contains_key(model.id()) {
                return Err(inconsistent(&model.entry, "listed twice in the manifest"));
            }
            models.insert(model.id().clone(), Arc::new(model));
        }
        let registry = Self { models };
        for model in registry.models.values() {
            registry.check_partners(&model.entry)?;
        }
        Ok(registry)
    }

    /// This registry with `extra` models added (those already in it are kept as they are: a loaded version
    /// never changes). Each one's term-structure partners must be in the result.
    pub fn with(&self, extra: impl IntoIterator<Item = Arc<LoadedModel>>) -> Result<Self, RegistryError> {
        let mut models = self.models.clone();
        let mut added = Vec::new();
        for model in extra {
            if !models.contains_key(model.id()) {
                added.push(model.id().clone());
                models.insert(model.id().clone(), model);
            }
        }
        let registry = Self { models };
        for id in &added {
            registry.check_partners(&registry.models[id].entry)?;
        }
        Ok(registry)
    }

    /// Whether `entry`'s term-structure partners are here and read what it reads.
    pub fn check_partners(&self, entry: &ManifestEntry) -> Result<(), RegistryError> {
        for partner in entry.term_structure.values() {
            let compatible = self.models.get(partner).is_some_and(|p| {
                p.entry.feature_set == entry.feature_set && p.entry.prediction_type == entry.prediction_type
            });
            if !compatible {
                return Err(inconsistent(
                    entry,
                    &format!("term structure names {partner}, which is unknown or reads other features"),
                ));
            }
        }
        Ok(())
    }

    pub fn get(&self, id: &ModelId) -> Option<Arc<LoadedModel>> {
        self.models.get(id).cloned()
    }

    /// The cumulative PD curves of `rows`, whose 1-year PDs (for the portfolio) are `one_year`, when
    /// `model` has a 5-year partner (monotone by construction, see [`crate::term`]). The partner's PD is
    /// only a level: it is scored without explanations, and shifted from its sample's default rate to the
    /// five-year rate of the portfolio's one-year rate (`base_rate`, else the 1-year model's sample rate).
    pub fn term_structures(
        &self,
        model: &LoadedModel,
        one_year: &[f64],
        rows: &[Vec<Option<f64>>],
        base_rate: Option<f64>,
    ) -> Result<Option<Vec<TermStructure>>, TermError> {
        let Some(partner_id) = model.entry.term_structure.get("5y") else {
            return Ok(None);
        };
        let partner = self
            .get(partner_id)
            .ok_or_else(|| TermError::Partner(partner_id.clone()))?;
        let five_year = partner.predict_batch(rows).map_err(TermError::Score)?;
        let one_year_rate = base_rate.or(model.entry.sample_default_rate);
        let rebased = |p: f64| match (partner.entry.sample_default_rate, one_year_rate) {
            (Some(sample), Some(rate)) => term::rebase(p, sample, term::five_year_rate(rate)),
            _ => p,
        };
        Ok(Some(
            one_year
                .iter()
                .zip(five_year)
                .map(|(p1, p5)| TermStructure::from_horizons(*p1, rebased(p5)))
                .collect(),
        ))
    }

    pub fn models(&self) -> impl Iterator<Item = &Arc<LoadedModel>> {
        self.models.values()
    }

    pub fn len(&self) -> usize {
        self.models.len()
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

fn inconsistent(entry: &ManifestEntry, message: &str) -> RegistryError {
    RegistryError::Inconsistent {
        id: entry.id.clone(),
        message: message.to_owned(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, RegistryError> {
    std::fs::read(path).map_err(|source| RegistryError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_verified(dir: &Path, file: &ArtifactFile) -> Result<Vec<u8>, RegistryError> {
    let path = dir.join(&file.path);
    let bytes = read(&path)?;
    let actual = sha256_hex(&bytes);
    if !actual.eq_ignore_ascii_case(&file.sha256) {
        return Err(RegistryError::Checksum {
            path,
            expected: file.sha256.clone(),
            actual,
        });
    }
    Ok(bytes)
}

fn parse_json<T: serde::de::DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T, RegistryError> {
    serde_json::from_slice(bytes).map_err(|e| RegistryError::Malformed {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Lower-case hex SHA-256, as stored in the manifest.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_can_move_to_a_model_pool_worker_thread() {
        fn is_send<T: Send>() {}
        is_send::<Registry>();
    }

    #[test]
    fn model_ids_parse_and_print() {
        let id: ModelId = "annual/accunode-scorecard@1".parse().unwrap();
        assert_eq!((id.name.as_str(), id.version), ("annual/accunode-scorecard", 1));
        assert_eq!(id.to_string(), "annual/accunode-scorecard@1");
        for bad in ["annual", "annual@0", "Annual@1", "a@x", "@1", "a b@1"] {
            assert!(bad.parse::<ModelId>().is_err(), "{bad}");
        }
    }
}
