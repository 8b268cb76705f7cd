//! Adds the training profile (the distribution of every input and of the PD over the training sample, for
//! drift monitoring) to the cards of the committed models, without retraining; `train` does the same at its
//! end.
//!
//! `cargo run -p pdscore-models --release --features train --bin profile [-- --data DIR --out DIR]`

use std::{path::PathBuf, process::ExitCode};

use pdscore_models::train::{artifacts, experiment};

fn main() -> ExitCode {
    let mut data_dir = experiment::default_data_dir();
    let mut out = pdscore_models::committed_artifacts_dir();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--data", Some(dir)) => data_dir = PathBuf::from(dir),
            ("--out", Some(dir)) => out = PathBuf::from(dir),
            _ => {
                eprintln!("usage: profile [--data DIR] [--out DIR]");
                return ExitCode::FAILURE;
            }
        }
    }
    match artifacts::add_training_profiles(&out, &data_dir) {
        Ok(profiled) => {
            eprintln!("training profiles added to {profiled:?}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
