//! Regenerates every committed artifact in `models/artifacts/`: the AccuNode scorecards from the reference
//! parameters, and the trained PD networks (1-year from `5year.arff`, 5-year from `1year.arff`) with their
//! model cards. Deterministic: the same inputs give the same files.
//!
//! `cargo run -p pdscore-models --release --features train --bin train [-- --data DIR --reference FILE --out DIR]`

use std::{collections::BTreeMap, path::PathBuf, process::ExitCode};

use pdscore_models::{
    PredictionType,
    dataset::Dataset,
    features::{FeatureSet, POLISH_DEPARTURES},
    network::NetworkSpec,
    registry::{ModelId, ModelKind},
    train::{
        artifacts::{self, ArtifactWriter, DATA_CITATION, ModelCard},
        boost::{self, BoostConfig},
        experiment::{self, Candidate, HORIZONS, Horizon},
        fit::{self, FitConfig},
    },
    trees::TreeEnsembleSpec,
};
use serde_json::json;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut data_dir = experiment::default_data_dir();
    let mut reference = data_dir.join("../../reference/accunode_scorecards.json");
    let mut out = pdscore_models::committed_artifacts_dir();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--data", Some(dir)) => data_dir = PathBuf::from(dir),
            ("--reference", Some(file)) => reference = PathBuf::from(file),
            ("--out", Some(dir)) => out = PathBuf::from(dir),
            _ => return Err("usage: train [--data DIR] [--reference FILE] [--out DIR]".into()),
        }
    }
    let mut writer = ArtifactWriter::new(&out)?;

    let reference: serde_json::Value = serde_json::from_slice(&std::fs::read(&reference)?)?;
    for (prediction_type, spec) in artifacts::scorecards_from_reference(&reference)? {
        writer.add_scorecard(&artifacts::scorecard_card(prediction_type, &reference), &spec)?;
    }

    let config = FitConfig::network();
    // The 5-year model first, so the 1-year model's entry can name it as its term-structure partner.
    for horizon in HORIZONS.iter().rev() {
        let data = Dataset::load(&data_dir.join(horizon.file))?;
        eprintln!("{}: {} rows, {} bankrupt", horizon.file, data.len(), data.positives());
        let results = experiment::run(&data, &experiment::candidates(config.clone()));
        let network = &results[0].0;
        let calibration = experiment::final_calibration(network, &data.labels);
        let epochs = experiment::final_epochs(network);
        eprintln!("  final fit on all rows: {epochs} epochs, calibration {calibration:?}");
        let (spec, ensemble) =
            fit::fit(&data, &config, experiment::SEED, Some(epochs)).into_polish_network(&config, calibration, 16);
        let id: ModelId = horizon.id.parse()?;
        let card = network_card(
            id.clone(),
            horizon.horizon_years,
            horizon.file,
            &data,
            &config,
            epochs,
            &spec,
            results,
        );
        let term_structure = if horizon.horizon_years == 1 {
            BTreeMap::from([("5y".to_owned(), HORIZONS[1].id.parse::<ModelId>()?)])
        } else {
            BTreeMap::new()
        };
        writer.add_network(&card, &spec, &ensemble, term_structure)?;
    }
    // The gradient-boosted trees: the 5-year partner first, as above.
    for horizon in TREE_HORIZONS.iter().rev() {
        let data = Dataset::load(&data_dir.join(horizon.file))?;
        eprintln!(
            "{} (trees): {} rows, {} bankrupt",
            horizon.file,
            data.len(),
            data.positives()
        );
        let candidate = Candidate::Trees {
            name: "polish-gbdt (boosted trees, unknown marginalised)".into(),
            grid: boost::grid(),
        };
        let results = experiment::run_repeated(&data, &candidate, REPEATS);
        let mut metrics = vec![experiment::repeated_metrics(&results, &data)];
        for m in &metrics {
            eprintln!("  {:<56} ROC-AUC {:.4} ± {:.4}", m.model, m.roc_auc_mean, m.roc_auc_sd);
        }
        // The comparison models of the network's card, on the first repetition's folds.
        metrics.extend(
            experiment::run(&data, &experiment::candidates(config.clone())[1..])
                .into_iter()
                .map(|(_, m)| m),
        );
        let rows = boost::served_rows(&data);
        let all: Vec<usize> = (0..data.len()).collect();
        let grid = boost::grid();
        let (model, chosen) = experiment::fit_selected(&rows, &data.labels, &all, &grid, experiment::SEED);
        let mut spec = model.spec().clone();
        spec.calibration = experiment::final_calibration(&results[0], &data.labels);
        eprintln!(
            "  final fit on all rows: {} trees, depth {}, calibration {:?}",
            spec.trees.len(),
            chosen.max_depth,
            spec.calibration
        );
        let id: ModelId = horizon.id.parse()?;
        let card = trees_card(id, horizon, &data, chosen, &spec, metrics);
        let term_structure = if horizon.horizon_years == 1 {
            BTreeMap::from([("5y".to_owned(), TREE_HORIZONS[1].id.parse::<ModelId>()?)])
        } else {
            BTreeMap::new()
        };
        writer.add_trees(&card, &spec, term_structure)?;
    }
    let manifest = writer.finish()?;
    eprintln!("wrote {}", manifest.display());
    Ok(())
}

/// Repetitions of the 10-fold cross-validation in the trees' cards.
const REPEATS: usize = 5;

/// The trained tree ensembles, by horizon: the same files as the networks.
const TREE_HORIZONS: [Horizon; 2] = [
    Horizon {
        file: "5year.arff",
        id: "annual/polish-gbdt@1",
        horizon_years: 1,
    },
    Horizon {
        file: "1year.arff",
        id: "annual-5y/polish-gbdt@1",
        horizon_years: 5,
    },
];

fn trees_card(
    id: ModelId,
    horizon: &Horizon,
    data: &Dataset,
    config: &BoostConfig,
    spec: &TreeEnsembleSpec,
    metrics: Vec<experiment::Metrics>,
) -> ModelCard {
    let horizon_years = horizon.horizon_years;
    ModelCard {
        title: format!("{horizon_years}-year PD from the 64 Polish ratios: gradient-boosted trees"),
        kind: ModelKind::Trees,
        prediction_type: PredictionType::Annual,
        horizon_years,
        feature_set: FeatureSet::Polish,
        summary: format!(
            "Gradient-boosted trees (forust-ml, log-loss, depth ≤ {}, learning rate {}, early-stopped on a \
             stratified hold-out, configuration chosen on that hold-out) on the 64 ratios as the service computes them from a statement: every training \
             row is the served feature vector of the statement behind a data row. More interest cover never raises \
             the PD (monotone constraint); zero financial expenses are a large cover, not a missing value. A ratio \
             the statement cannot give is unknown: it follows both sides of each split, weighted by the training \
             rows that reported it, so it moves nothing (the trees are fitted with missing values at the training \
             medians: no split learns missingness). Platt scaling of out-of-fold scores gives the PD; \
             reason codes are exact additive path contributions in logit space. Served as a Burn tensor program.",
            config.max_depth, config.learning_rate
        ),
        intended_use: format!(
            "Ranking and monitoring the {horizon_years}-year default risk of small and medium non-financial \
             companies from their annual statements, as one input to a credit analyst's judgement."
        ),
        limitations: vec![
            "Trained on Polish manufacturing companies (EMIS data; bankrupt firms 2000-2012, operating firms \
             2007-2013): other countries, sectors, sizes and years can behave differently."
                .into(),
            format!(
                "The PD carries the sample's default rate ({:.2} %): set the tenant's base rate to shift it to a \
                 portfolio's (prior shift, `term::rebase`).",
                100.0 * data.positives() as f64 / data.len() as f64
            ),
            "Two attributes depend on the currency unit (log total assets, working capital): statements must be in \
             thousands of the reporting currency."
                .into(),
            "Missing values in the data are informative (a missing sales growth is 300x more frequent among \
             bankrupt firms); the model never learns that (it is fitted with missing values at the training \
             medians) and an absent item is unknown, so held-out missing values are scored as unknown too: the \
             published benchmarks, which let their models read missingness, are not handicapped that way."
                .into(),
            "Explanations are attributions of the model's logit, not causes of default.".into(),
        ],
        data: json!({
            "file": horizon.file,
            "rows": data.len(),
            "bankrupt": data.positives(),
            "citation": DATA_CITATION,
            "license": "CC BY 4.0",
            "departures_from_the_uci_text": POLISH_DEPARTURES
                .iter()
                .map(|(attribute, text, served, evidence)| json!({
                    "attribute": attribute, "uci_text": text, "served_as": served, "evidence": evidence,
                }))
                .collect::<Vec<_>>(),
        }),
        training: json!({
            "config": config,
            "grid": boost::grid(),
            "seed": experiment::SEED,
            "trees": spec.trees.len(),
            "calibration": spec.calibration,
            "explanations": { "method": "path contributions (Saabas), exact and additive", "baseline": "the ensemble's expected logit" },
        }),
        evaluation_protocol: format!(
            "Stratified {}-fold cross-validation repeated {} times (folds seeded {} + 7919·r). In every outer fold, \
             the configuration (among the grid) and the number of trees (early stopping) are chosen on a \
             stratified 10 % hold-out of that fold's training rows only: nothing is tuned on the rows that \
             score it. Out-of-fold PDs use Platt scaling fitted on the other folds. ROC-AUC mean ± sd over \
             all {} folds; pooled ROC-AUC, PR-AUC, Brier and KS are means over repetitions; reliability tables \
             (fixed bins and deciles) are the first repetition's. Held-out missing values are scored as the \
             service scores an absent item: unknown, marginalised. Published anchors for 5year (hold-out ROC-AUC): XGBoost 0.961, CatBoost 0.961, best \
             ensemble 0.963 (Expert Systems 2024, doi:10.1111/exsy.13599); Zięba et al. 2016 (EXGB) 0.959 on \
             5year and 0.944 on 1year (10-fold).",
            experiment::FOLDS,
            REPEATS,
            experiment::SEED,
            experiment::FOLDS * REPEATS
        ),
        metrics,
        reproduce: "cargo run -p pdscore-models --release --features train --bin train".into(),
        id,
    }
}

#[allow(clippy::too_many_arguments)]
fn network_card(
    id: ModelId,
    horizon_years: u8,
    file: &str,
    data: &Dataset,
    config: &FitConfig,
    epochs: usize,
    spec: &NetworkSpec,
    results: Vec<(experiment::CvResult, experiment::Metrics)>,
) -> ModelCard {
    ModelCard {
        title: format!("{horizon_years}-year PD from the 64 Polish ratios: piecewise-linear encoding + MLP ensemble"),
        kind: ModelKind::Network,
        prediction_type: PredictionType::Annual,
        horizon_years,
        feature_set: FeatureSet::Polish,
        summary: format!(
            "Each of the 64 ratios is encoded piecewise-linearly on {} training quantiles with a missing indicator; \
             {} MLPs ({:?} hidden ReLU units) trained with class-weighted cross-entropy and Adam average their \
             logits; Platt scaling fitted on out-of-fold predictions turns the logit into a PD. Explanations are \
             integrated gradients against the median company.",
            config.bins, config.members, config.hidden
        ),
        intended_use: format!(
            "Ranking and monitoring the {horizon_years}-year default risk of small and medium non-financial \
             companies from their annual statements, as one input to a credit analyst's judgement."
        ),
        limitations: vec![
            "Trained on Polish manufacturing companies (EMIS data; bankrupt firms 2000-2012, operating firms \
             2007-2013): other countries, sectors, sizes and years can behave differently."
                .into(),
            "The PD is calibrated to the data set's bankruptcy rate, not to a portfolio's: rescale to your base rate \
             before using it for provisioning or pricing."
                .into(),
            "Two attributes depend on the currency unit (log total assets, working capital): statements must be in \
             thousands of the reporting currency, and the size effect learned in PLN may not transfer."
                .into(),
            "Rows cannot be linked across years in the data, so the model sees one year of ratios, never a trend."
                .into(),
            "Explanations are attributions of the model's logit, not causes of default.".into(),
        ],
        data: json!({
            "file": file,
            "rows": data.len(),
            "bankrupt": data.positives(),
            "citation": DATA_CITATION,
            "license": "CC BY 4.0",
            "meaning": if horizon_years == 1 {
                "5year.arff: ratios from the 5th year of the forecasting period; label = bankrupt within 1 year"
            } else {
                "1year.arff: ratios from the 1st year of the forecasting period; label = bankrupt within 5 years"
            },
        }),
        training: json!({
            "config": config,
            "seed": experiment::SEED,
            "final_epochs": epochs,
            "calibration": spec.calibration,
            "explanations": { "method": "integrated gradients", "baseline": "training medians, nothing missing", "steps": spec.ig_steps },
        }),
        evaluation_protocol: format!(
            "Stratified {}-fold cross-validation (seed {}), the same folds for every model. Each fold's model is \
             fitted on the other nine folds only (encoding quantiles, early stopping on a 10 % stratified hold-out \
             of them); out-of-fold scores are calibrated by Platt scaling fitted on the other folds' out-of-fold \
             scores. ROC-AUC mean ± sd over folds, pooled ROC-AUC, PR-AUC (average precision) and KS on the raw \
             scores; Brier score and the reliability table on the calibrated PDs. Published anchors for 5year \
             (hold-out AUC): XGBoost 0.961, CatBoost 0.961, best ensemble 0.963 (Expert Systems 2024, \
             doi:10.1111/exsy.13599).",
            experiment::FOLDS,
            experiment::SEED
        ),
        metrics: results.into_iter().map(|(_, m)| m).collect(),
        reproduce: "cargo run -p pdscore-models --release --features train --bin train  (check: --bin evaluate)".into(),
        id,
    }
}
