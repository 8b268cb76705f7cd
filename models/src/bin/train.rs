//! Regenerates every committed artifact in `models/artifacts/`: the AccuNode scorecards from the reference
//! parameters, and the trained gradient-boosted trees (1-year from `5year.arff`, 5-year from `1year.arff`)
//! with their model cards. Deterministic: the same inputs give the same files.
//!
//! `cargo run -p pdscore-models --release --features train --bin train [-- --data DIR --reference FILE --out DIR]`

use std::{collections::BTreeMap, path::PathBuf, process::ExitCode};

use pdscore_models::{
    PredictionType,
    dataset::Dataset,
    features::{FeatureSet, POLISH_DEPARTURES},
    registry::{ModelId, ModelKind},
    train::{
        artifacts::{self, ArtifactWriter, DATA_CITATION, ModelCard},
        boost::{self, BoostConfig},
        experiment::{self, HORIZONS, Horizon},
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

    // The gradient-boosted trees, the 5-year model first, so the 1-year model's entry can name it as its
    // term-structure partner. (The PLE + MLP networks of earlier versions are retired: their missing
    // indicators read an absent item as the data set's missingness.)
    for horizon in HORIZONS.iter().rev() {
        let data = Dataset::load(&data_dir.join(horizon.file))?;
        eprintln!(
            "{} (trees): {} rows, {} bankrupt",
            horizon.file,
            data.len(),
            data.positives()
        );
        let (results, metrics) = experiment::evaluate_trees(&data);
        for m in &metrics {
            eprintln!("  {:<56} ROC-AUC {:.4} ± {:.4}", m.model, m.roc_auc_mean, m.roc_auc_sd);
        }
        let rows = boost::served_rows(&data);
        let all: Vec<usize> = (0..data.len()).collect();
        let grid = boost::grid();
        let (model, chosen) = experiment::fit_selected(&rows, &data.labels, &all, &grid, experiment::SEED);
        let mut spec = model.spec().clone();
        spec.calibration = experiment::final_calibration(&results[0], &data.labels);
        // The optional items' bound holds for the calibrated logit the service serves.
        let factor = 1.0 / spec.calibration.a;
        boost::bound_items(&mut spec, factor);
        eprintln!(
            "  final fit on all rows: {} trees, depth {}, calibration {:?}",
            spec.trees.len(),
            chosen.max_depth,
            spec.calibration
        );
        let id: ModelId = horizon.id.parse()?;
        let card = trees_card(id, horizon, &data, chosen, &spec, metrics);
        let term_structure = if horizon.horizon_years == 1 {
            BTreeMap::from([("5y".to_owned(), HORIZONS[1].id.parse::<ModelId>()?)])
        } else {
            BTreeMap::new()
        };
        writer.add_trees(&card, &spec, term_structure)?;
    }
    let manifest = writer.finish()?;
    let profiled = artifacts::add_training_profiles(&out, &data_dir)?;
    eprintln!("wrote {} (training profiles of {profiled:?})", manifest.display());
    Ok(())
}

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
             row is the served feature vector of the statement behind a data row. The two optional line items \
             (previous sales, financial expenses) give features (sales growth; interest cover, and the profit with \
             financial expenses added back) each read by one tree of its own, clipped so that knowing previous sales \
             moves the PD by at most 1.5×, financial expenses 2×, both 3×; more interest cover never raises the PD \
             (monotone); zero financial expenses are the largest cover, not a missing value; Attr31, which adds the \
             interest to a profit, and Attr15, 365 / Attr16 with a jump where the profit crosses zero, are not read. A ratio \
             the statement cannot give is unknown: it follows both sides of each split, weighted by the training \
             rows that reported it, so it moves nothing (the trees are fitted with missing values drawn from the \
             rows that report the feature: no split learns missingness). Platt scaling of out-of-fold scores gives the PD; \
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
             bankrupt firms); the model never learns that (it is fitted with missing values drawn from the \
             rows that report the feature) and an absent item is unknown, so held-out missing values are scored as unknown too: the \
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
             service scores an absent item: unknown, marginalised. The second row fits and scores the same trees \
             with the data's missingness readable (never served): the gap is what reading \"not reported\" as a \
             signal is worth on this data, and it is the published benchmarks' setting; the logistic regression \
             reads it too, through its missing indicators. Published anchors for 5year (hold-out ROC-AUC): XGBoost 0.961, CatBoost 0.961, best \
             ensemble 0.963 (Expert Systems 2024, doi:10.1111/exsy.13599); Zięba et al. 2016 (EXGB) 0.959 on \
             5year and 0.944 on 1year (10-fold).",
            experiment::FOLDS,
            experiment::REPEATS,
            experiment::SEED,
            experiment::FOLDS * experiment::REPEATS
        ),
        metrics,
        reproduce: "cargo run -p pdscore-models --release --features train --bin train".into(),
        id,
    }
}
