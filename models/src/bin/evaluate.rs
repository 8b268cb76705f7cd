//! Cross-validates the trained PD models (gradient-boosted trees, repeated nested cross-validation) and
//! their comparison models on the Polish bankruptcy data, and checks the result against the committed model
//! cards.
//!
//! `cargo run -p pdscore-models --release --features train --bin evaluate [-- --data DIR --artifacts DIR]`
//!
//! Research options: `--file 5year.arff` evaluates one file; `--config '{"bins":32,…}'` cross-validates a
//! PLE + MLP network (a full `FitConfig` in JSON) with the comparison models instead, without the cards.
//! `--trees '[{BoostConfig},…]'` cross-validates only gradient-boosted trees on that grid (nested selection
//! when it has several), scored as the service does (unknown marginalised), `--repeats N` times.
//! `--complete` cross-validates the served trees (those of `--trees`, if given), the same trees reading the
//! data's missingness and the logistic regression (`--repeats N` times, on the same folds) and reports each one's ROC-AUC on all rows and
//! on the rows that report every attribute: where no item is missing, what is reading missingness worth?

use std::{path::PathBuf, process::ExitCode};

use pdscore_models::{
    dataset::Dataset,
    train::{
        artifacts::ModelCard,
        boost::BoostConfig,
        experiment::{self, Candidate, HORIZONS},
        fit::FitConfig,
    },
};

fn main() -> ExitCode {
    let mut data_dir = experiment::default_data_dir();
    let mut artifacts = pdscore_models::committed_artifacts_dir();
    let mut only: Option<String> = None;
    let mut network: Option<FitConfig> = None;
    let mut trees: Option<Vec<BoostConfig>> = None;
    let mut repeats = 1;
    let mut complete = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--complete" {
            complete = true;
            continue;
        }
        match (arg.as_str(), args.next()) {
            ("--data", Some(dir)) => data_dir = PathBuf::from(dir),
            ("--artifacts", Some(dir)) => artifacts = PathBuf::from(dir),
            ("--file", Some(file)) => only = Some(file),
            ("--trees", Some(json)) => match serde_json::from_str(&json) {
                Ok(grid) => trees = Some(grid),
                Err(e) => {
                    eprintln!("--trees: {e}");
                    return ExitCode::FAILURE;
                }
            },
            ("--repeats", Some(n)) => match n.parse() {
                Ok(n) if n > 0 => repeats = n,
                _ => {
                    eprintln!("--repeats: a positive number");
                    return ExitCode::FAILURE;
                }
            },
            ("--config", Some(json)) => match serde_json::from_str(&json) {
                Ok(c) => network = Some(c),
                Err(e) => {
                    eprintln!("--config: {e}");
                    return ExitCode::FAILURE;
                }
            },
            _ => {
                eprintln!(
                    "usage: evaluate [--data DIR] [--artifacts DIR] [--file NAME] [--config JSON | --trees JSON | \
                     --complete] [--repeats N]"
                );
                return ExitCode::FAILURE;
            }
        }
    }
    let mut reproduced = true;
    for horizon in HORIZONS.iter().filter(|h| only.as_deref().is_none_or(|f| f == h.file)) {
        let data = match Dataset::load(&data_dir.join(horizon.file)) {
            Ok(data) => data,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        eprintln!(
            "{} → {}-year PD ({} rows, {} bankrupt), stratified {}-fold CV:",
            horizon.file,
            horizon.horizon_years,
            data.len(),
            data.positives(),
            experiment::FOLDS
        );
        if complete {
            compare_on_complete_rows(&data, repeats, trees.clone());
            continue;
        }
        if let Some(grid) = &trees {
            let candidate = Candidate::Trees {
                name: "trees".into(),
                grid: grid.clone(),
            };
            let started = std::time::Instant::now();
            let metrics = experiment::repeated_metrics(&experiment::run_repeated(&data, &candidate, repeats), &data);
            eprintln!(
                "  {:<24} ROC-AUC {:.4} ± {:.4}  pooled {:.4}  PR-AUC {:.4}  Brier {:.4}  decile gap {:.4}  ({:.0} s)",
                metrics.model,
                metrics.roc_auc_mean,
                metrics.roc_auc_sd,
                metrics.roc_auc_pooled,
                metrics.pr_auc,
                metrics.brier,
                metrics.max_decile_gap,
                started.elapsed().as_secs_f64()
            );
            println!("{}", serde_json::to_string_pretty(&metrics).expect("metrics serialize"));
            continue;
        }
        if let Some(config) = &network {
            let results = experiment::run(&data, &experiment::candidates(config.clone()));
            let metrics: Vec<_> = results.into_iter().map(|(_, m)| m).collect();
            println!("{}", serde_json::to_string_pretty(&metrics).expect("metrics serialize"));
            continue;
        }
        let (_, metrics) = experiment::evaluate_trees(&data);
        println!("{}", serde_json::to_string_pretty(&metrics).expect("metrics serialize"));
        let card_path = artifacts.join(format!("{}-v1.card.json", horizon.id.trim_end_matches("@1")));
        match std::fs::read(&card_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<ModelCard>(&b).ok())
        {
            Some(card) if card.metrics == metrics => {
                eprintln!("  = {} (committed card reproduced)", card_path.display())
            }
            Some(_) => {
                eprintln!(
                    "  ≠ {}: the metrics differ from the committed card",
                    card_path.display()
                );
                reproduced = false;
            }
            None => {
                eprintln!("  ? {}: no committed card to compare with", card_path.display());
                reproduced = false;
            }
        }
    }
    if reproduced {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Each comparison model's ROC-AUC (pooled out of fold) on all rows and on the rows reporting every attribute.
/// The served trees are those of `grid` (`--trees`), else the committed configurations'.
fn compare_on_complete_rows(data: &Dataset, repeats: usize, grid: Option<Vec<BoostConfig>>) {
    let complete: Vec<usize> = (0..data.len())
        .filter(|&i| data.rows[i].iter().all(Option::is_some))
        .collect();
    let bankrupt = complete.iter().filter(|&&i| data.labels[i] == 1).count();
    eprintln!(
        "  rows reporting every attribute: {} ({bankrupt} bankrupt); {repeats} repetition(s)",
        complete.len()
    );
    let all: Vec<usize> = (0..data.len()).collect();
    let candidates = [
        Candidate::Trees {
            name: experiment::TREES.into(),
            grid: grid.unwrap_or_else(pdscore_models::train::boost::grid),
        },
        Candidate::TreesReadingMissingness {
            name: "same trees reading the data's missingness".into(),
            config: BoostConfig::polish(),
        },
        Candidate::Network {
            name: "logistic regression (PLE, missing indicators)".into(),
            config: FitConfig::logistic(),
        },
    ];
    for candidate in &candidates {
        let results = experiment::run_repeated(data, candidate, repeats);
        println!(
            "{:<52} all rows {:.4}   complete rows {:.4}",
            candidate.name(),
            experiment::pooled_auc_on(&results, &data.labels, &all),
            experiment::pooled_auc_on(&results, &data.labels, &complete)
        );
    }
}
