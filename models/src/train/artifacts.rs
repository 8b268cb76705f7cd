//! Writing the artifacts the registry loads: parameter files, model cards (JSON + Markdown) and the
//! manifest with every file's SHA-256.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{
    PredictionType,
    dataset::Dataset,
    drift::Profile,
    features::FeatureSet,
    network::{Ensemble, NetworkModel, NetworkSpec},
    registry::{ArtifactFile, Manifest, ManifestEntry, ModelId, ModelKind, Registry, sha256_hex},
    scorecard::{Bin, ScorecardFeature, ScorecardSpec},
    train::{boost, experiment::Metrics},
    trees::TreeEnsembleSpec,
};

/// The data set citation every card of a trained model carries (CC BY 4.0 requires attribution).
pub const DATA_CITATION: &str = "Polish companies bankruptcy data, UCI Machine Learning Repository, dataset 365 \
(https://archive.ics.uci.edu/dataset/365/polish+companies+bankruptcy+data), CC BY 4.0. Zięba, M., Tomczak, S. K., \
& Tomczak, J. M. (2016). Ensemble boosted trees with synthetic features generation in application to bankruptcy \
prediction. Expert Systems with Applications, 58, 93-101. doi:10.1016/j.eswa.2016.04.001";

/// A model card: what the model is for, what it was trained and evaluated on, and where it fails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub id: ModelId,
    pub title: String,
    pub kind: ModelKind,
    pub prediction_type: PredictionType,
    pub horizon_years: u8,
    pub feature_set: FeatureSet,
    pub summary: String,
    pub intended_use: String,
    pub limitations: Vec<String>,
    pub data: Value,
    pub training: Value,
    /// Evaluation protocol in words.
    pub evaluation_protocol: String,
    /// This model's metrics first, then the comparison models'.
    pub metrics: Vec<Metrics>,
    pub reproduce: String,
}

impl ModelCard {
    pub fn to_markdown(&self) -> String {
        let mut md = format!("# Model card: `{}`\n\n{}\n\n{}\n\n", self.id, self.title, self.summary);
        md += &format!(
            "| | |\n|---|---|\n| kind | {:?} |\n| prediction type | {} |\n| horizon | {} year(s) |\n| features | {:?} |\n\n",
            self.kind, self.prediction_type, self.horizon_years, self.feature_set
        );
        md += &format!("## Intended use\n\n{}\n\n## Limitations\n\n", self.intended_use);
        for limit in &self.limitations {
            md += &format!("- {limit}\n");
        }
        md += &format!(
            "\n## Data\n\n```json\n{}\n```\n\n## Training\n\n```json\n{}\n```\n\n",
            serde_json::to_string_pretty(&self.data).unwrap_or_default(),
            serde_json::to_string_pretty(&self.training).unwrap_or_default()
        );
        md += &format!("## Evaluation\n\n{}\n\n", self.evaluation_protocol);
        if !self.metrics.is_empty() {
            md += "| model | ROC-AUC (mean ± sd over folds) | pooled ROC-AUC | PR-AUC | Brier | KS |\n|---|---|---|---|---|---|\n";
            for m in &self.metrics {
                md += &format!(
                    "| {} | {:.4} ± {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |\n",
                    m.model, m.roc_auc_mean, m.roc_auc_sd, m.roc_auc_pooled, m.pr_auc, m.brier, m.ks
                );
            }
            let own = &self.metrics[0];
            md += &format!(
                "\nReliability of `{}` (out-of-fold, calibrated):\n\n| PD bin | rows | mean predicted | observed default rate |\n|---|---|---|---|\n",
                own.model
            );
            for bin in &own.reliability {
                md += &format!(
                    "| {:.2}–{:.2} | {} | {:.4} | {:.4} |\n",
                    bin.lower, bin.upper, bin.count, bin.mean_predicted, bin.observed_rate
                );
            }
            if !own.reliability_deciles.is_empty() {
                md += &format!(
                    "\nBy decile of the PD (largest gap {:.2} percentage points):\n\n| decile | PDs | rows | mean predicted | observed default rate |\n|---|---|---|---|---|\n",
                    100.0 * own.max_decile_gap
                );
                for (d, bin) in own.reliability_deciles.iter().enumerate() {
                    md += &format!(
                        "| {} | {:.4}–{:.4} | {} | {:.4} | {:.4} |\n",
                        d + 1,
                        bin.lower,
                        bin.upper,
                        bin.count,
                        bin.mean_predicted,
                        bin.observed_rate
                    );
                }
            }
        }
        md += &format!("\n## Reproduce\n\n`{}`\n", self.reproduce);
        md
    }
}

/// Collects files into `dir` and their entries into the manifest.
pub struct ArtifactWriter {
    dir: PathBuf,
    manifest: Manifest,
}

impl ArtifactWriter {
    pub fn new(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            manifest: Manifest::default(),
        })
    }

    fn write(&self, relative: &str, bytes: &[u8]) -> std::io::Result<ArtifactFile> {
        let path = self.dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes)?;
        Ok(ArtifactFile {
            path: relative.to_owned(),
            sha256: sha256_hex(bytes),
        })
    }

    fn stem(id: &ModelId) -> String {
        format!("{}-v{}", id.name, id.version)
    }

    fn add(
        &mut self,
        card: &ModelCard,
        files: Vec<ArtifactFile>,
        term_structure: BTreeMap<String, ModelId>,
    ) -> std::io::Result<()> {
        let sample_default_rate = card.data["rows"].as_f64().and_then(|rows| {
            let bankrupt = card.data["bankrupt"].as_f64()?;
            Some(bankrupt / rows)
        });
        let stem = Self::stem(&card.id);
        let card_file = self.write(&format!("{stem}.card.json"), &pretty(card))?;
        self.write(&format!("{stem}.card.md"), card.to_markdown().as_bytes())?;
        self.manifest.models.push(ManifestEntry {
            id: card.id.clone(),
            kind: card.kind,
            prediction_type: card.prediction_type,
            horizon_years: card.horizon_years,
            feature_set: card.feature_set,
            description: card.title.clone(),
            files,
            card: card_file,
            term_structure,
            sample_default_rate,
        });
        Ok(())
    }

    pub fn add_scorecard(&mut self, card: &ModelCard, spec: &ScorecardSpec) -> std::io::Result<()> {
        let file = self.write(&format!("{}.json", Self::stem(&card.id)), &pretty(spec))?;
        self.add(card, vec![file], BTreeMap::new())
    }

    pub fn add_network(
        &mut self,
        card: &ModelCard,
        spec: &NetworkSpec,
        ensemble: &Ensemble,
        term_structure: BTreeMap<String, ModelId>,
    ) -> std::io::Result<()> {
        let stem = Self::stem(&card.id);
        let spec_file = self.write(&format!("{stem}.spec.json"), &pretty(spec))?;
        let record = NetworkModel::record_bytes(ensemble).map_err(std::io::Error::other)?;
        let record_file = self.write(&format!("{stem}.bpk"), &record)?;
        self.add(card, vec![spec_file, record_file], term_structure)
    }

    pub fn add_trees(
        &mut self,
        card: &ModelCard,
        spec: &TreeEnsembleSpec,
        term_structure: BTreeMap<String, ModelId>,
    ) -> std::io::Result<()> {
        let file = self.write(&format!("{}.trees.json", Self::stem(&card.id)), &pretty(spec))?;
        self.add(card, vec![file], term_structure)
    }

    /// Writes `manifest.json`; models appear in the order they were added.
    pub fn finish(self) -> std::io::Result<PathBuf> {
        let path = self.dir.join("manifest.json");
        std::fs::write(&path, pretty(&self.manifest))?;
        Ok(path)
    }
}

/// Adds a `training_profile` ([`Profile`]) to the card of every model in `dir` whose card names its data
/// file (`data.file`, read from `data_dir`): the served features of the statements behind the file's rows and
/// the model's PDs on them, so the service can measure drift against the training sample. Rewrites those
/// cards and the manifest's checksums; the ids of the models profiled.
pub fn add_training_profiles(dir: &Path, data_dir: &Path) -> Result<Vec<ModelId>, Box<dyn std::error::Error>> {
    let manifest_path = dir.join("manifest.json");
    let mut manifest: Manifest = serde_json::from_slice(&std::fs::read(&manifest_path)?)?;
    let registry = Registry::load(dir, &crate::cpu())?;
    let mut profiled = Vec::new();
    for entry in &mut manifest.models {
        let model = registry.get(&entry.id).ok_or("a manifest model was not loaded")?;
        let Some(file) = model.card["data"]["file"].as_str() else {
            continue;
        };
        let data = Dataset::load(&data_dir.join(file))?;
        let rows = boost::served_rows(&data);
        let pds = model.predict_batch(&rows)?;
        let sample = format!(
            "{file}: the features the service computes from the statements behind its {} rows, and the model's PDs on them (in sample)",
            data.len()
        );
        let profile = Profile::from_sample(sample, &entry.feature_set.names(), &rows, &pds);
        let mut card = model.card.clone();
        card["training_profile"] = serde_json::to_value(&profile)?;
        let bytes = pretty(&card);
        std::fs::write(dir.join(&entry.card.path), &bytes)?;
        entry.card.sha256 = sha256_hex(&bytes);
        profiled.push(entry.id.clone());
    }
    std::fs::write(&manifest_path, pretty(&manifest))?;
    Ok(profiled)
}

fn pretty<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("artifacts serialize");
    bytes.push(b'\n');
    bytes
}

/// AccuNode's scorecards from the reference parameters (`accunode_scorecards.json`).
pub fn scorecards_from_reference(reference: &Value) -> Result<Vec<(PredictionType, ScorecardSpec)>, String> {
    let mut out = Vec::new();
    for (key, prediction_type) in [
        ("annual", PredictionType::Annual),
        ("quarterly", PredictionType::Quarterly),
    ] {
        let model = &reference[key];
        let number = |v: &Value| v.as_f64().ok_or_else(|| format!("{key}: {v} is not a number"));
        let bound = |v: &Value| if v.is_null() { Ok(None) } else { number(v).map(Some) };
        let features = model["features"]
            .as_array()
            .ok_or(format!("{key}: no features"))?
            .iter()
            .map(|f| {
                let name = f["api_field"].as_str().ok_or("api_field")?.to_owned();
                let column = f["source_column"].as_str().ok_or("source_column")?;
                let (label, unit) = match column.strip_suffix(" (%)") {
                    Some(label) => (label.to_owned(), "%"),
                    None if name.ends_with("margin") || name.starts_with("return_on") => (column.to_owned(), "%"),
                    None => (column.to_owned(), "x"),
                };
                let bins = f["bins_low_exclusive_high_inclusive"]
                    .as_array()
                    .ok_or("bins")?
                    .iter()
                    .map(|b| {
                        Ok(Bin {
                            low: bound(&b["low"])?,
                            high: bound(&b["high"])?,
                            rate: number(&b["rate"])?,
                        })
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                Ok(ScorecardFeature {
                    name,
                    label,
                    unit: unit.to_owned(),
                    bins,
                    missing_rate: number(&f["missing_rate"])?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let coefficients = model["coef"]
            .as_array()
            .ok_or(format!("{key}: coef"))?
            .iter()
            .map(number)
            .collect::<Result<Vec<_>, _>>()?;
        out.push((
            prediction_type,
            ScorecardSpec {
                features,
                coefficients,
                intercept: number(&model["intercept"])?,
            },
        ));
    }
    Ok(out)
}

/// The card of an AccuNode scorecard.
pub fn scorecard_card(prediction_type: PredictionType, reference: &Value) -> ModelCard {
    let key = prediction_type.as_str();
    let feature_set = match prediction_type {
        PredictionType::Annual => FeatureSet::AccunodeAnnual,
        PredictionType::Quarterly => FeatureSet::AccunodeQuarterly,
    };
    ModelCard {
        id: format!("{key}/accunode-scorecard@1").parse().expect("a valid id"),
        title: format!("AccuNode {key} scorecard (binned logistic regression), reproduced bit for bit"),
        kind: ModelKind::Scorecard,
        prediction_type,
        horizon_years: 1,
        feature_set,
        summary: "Each ratio is mapped to the historical default rate of its bin; a logistic regression on those \
                  rates gives the PD. Parameters decoded from AccuNode's model files; the scoring rules (bin edges, \
                  missing values, values outside every bin, the order of the sum) follow the original exactly."
            .into(),
        intended_use: "Continuity with AccuNode: clients migrating from it get the same PDs for the same inputs. \
                       Inputs are the ratios in AccuNode's units (percent for margins, returns and capital ratios)."
            .into(),
        limitations: vec![
            "Coarse: the reachable PD range is narrow (AccuNode's own analysis: annual 1.9 %–4.1 %, quarterly \
             1.4 %–1.7 %), so it ranks companies but hardly separates them in absolute terms."
                .into(),
            "Its training data and metrics were not published with the original; no evaluation is possible here \
             (the Polish data lacks these ratios)."
                .into(),
            "Deliberate difference from AccuNode: blank cells and 'NM' are missing values in every path (the \
             original turned blanks into 0 in bulk uploads and failed on 'NM' in quarterly scoring)."
                .into(),
        ],
        data: json!({
            "source": reference["about"],
            "model_file": reference[key]["model_file"],
            "model_sha256": reference[key]["model_sha256"],
            "scoring_info_sha256": reference[key]["scoring_info_sha256"],
            "semantics": reference["semantics"],
            "this_service_decisions": reference["this_service_decisions"],
        }),
        training: json!({ "trained_here": false }),
        evaluation_protocol: "Unit tests check every scoring rule with hand-computed cases and the PD bit for bit."
            .into(),
        metrics: Vec::new(),
        reproduce: "cargo run -p pdscore-models --release --features train --bin train".into(),
    }
}
