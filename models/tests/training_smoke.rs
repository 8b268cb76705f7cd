//! A fast end-to-end run of the training pipeline on a small subset of the real data (the full training is
//! `--bin train`): cross-validation, determinism, artifacts, and loading them back through the registry.
#![cfg(feature = "train")]

use std::collections::BTreeMap;

use pdscore_models::{
    cpu,
    dataset::Dataset,
    features::FeatureSet,
    network::Calibration,
    registry::{ModelId, Registry, RegistryError},
    train::{
        artifacts::{self, ArtifactWriter, ModelCard},
        cv,
        experiment::{self, Candidate},
        fit::{self, FitConfig},
    },
};

fn small_config() -> FitConfig {
    FitConfig {
        bins: 8,
        hidden: vec![16],
        members: 2,
        max_epochs: 6,
        patience: 3,
        batch_size: 64,
        ..FitConfig::network()
    }
}

/// Every positive and a stratified share of the negatives of `5year.arff`: ~1,200 rows.
fn subset() -> Dataset {
    let data = Dataset::load(&experiment::default_data_dir().join("5year.arff")).expect("the shared data set");
    let folds = cv::stratified_folds(&data.labels, 5, 1);
    data.subset(&folds[0])
}

#[test]
fn cross_validation_learns_and_is_deterministic() {
    let data = subset();
    let folds = cv::stratified_folds(&data.labels, 3, experiment::SEED);
    let candidate = Candidate::Network {
        name: "smoke".into(),
        config: small_config(),
    };

    let first = experiment::cross_validate(&data, &folds, &candidate);
    let second = experiment::cross_validate(&data, &folds, &candidate);

    let metrics = experiment::metrics(&first, &data.labels);
    assert!(metrics.roc_auc_pooled > 0.75, "{metrics:?}");
    assert!(metrics.brier < 0.1, "{metrics:?}");
    assert_eq!(first.raw, second.raw, "training must be deterministic");
    let altman = experiment::cross_validate(&data, &folds, &Candidate::AltmanZ);
    assert!(experiment::metrics(&altman, &data.labels).roc_auc_pooled > 0.5);
}

fn write_artifacts(dir: &std::path::Path) {
    let reference: serde_json::Value = serde_json::from_slice(
        &std::fs::read(experiment::default_data_dir().join("../../reference/accunode_scorecards.json")).unwrap(),
    )
    .unwrap();
    let mut writer = ArtifactWriter::new(dir).unwrap();
    for (prediction_type, spec) in artifacts::scorecards_from_reference(&reference).unwrap() {
        writer
            .add_scorecard(&artifacts::scorecard_card(prediction_type, &reference), &spec)
            .unwrap();
    }
    let data = subset();
    let config = small_config();
    let (spec, ensemble) = fit::fit(&data, &config, 1, Some(2)).into_polish_network(&config, Calibration::IDENTITY, 8);
    let mut card: ModelCard = artifacts::scorecard_card(pdscore_models::PredictionType::Annual, &reference);
    card.id = "annual/smoke-mlp@1".parse::<ModelId>().unwrap();
    card.kind = pdscore_models::registry::ModelKind::Network;
    card.feature_set = FeatureSet::Polish;
    writer.add_network(&card, &spec, &ensemble, BTreeMap::new()).unwrap();
    writer.finish().unwrap();
}

#[test]
fn artifacts_load_back_through_the_registry_and_tampering_is_caught() {
    let dir = std::env::temp_dir().join(format!("pdscore-artifacts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    write_artifacts(&dir);

    let registry = Registry::load(&dir, &cpu()).unwrap();
    assert_eq!(registry.len(), 3);
    let network = registry.get(&"annual/smoke-mlp@1".parse().unwrap()).unwrap();
    let rows = subset().rows[..4].to_vec();
    let outputs = network.score_batch(&rows).unwrap();
    assert!(
        outputs
            .iter()
            .all(|o| (0.0..=1.0).contains(&o.pd) && o.contributions.len() == 64)
    );
    let card = registry.get(&"annual/accunode-scorecard@1".parse().unwrap()).unwrap();
    assert!(
        card.score_batch(&rows).is_err(),
        "a 64-wide row is refused by a 5-feature scorecard"
    );

    // One changed byte in a parameter file: the registry names the file and refuses to load.
    let spec = dir.join("annual/accunode-scorecard-v1.json");
    let mut bytes = std::fs::read(&spec).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    std::fs::write(&spec, &bytes).unwrap();
    let err = Registry::load(&dir, &cpu()).unwrap_err();
    assert!(matches!(err, RegistryError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("accunode-scorecard-v1.json"), "{err}");

    std::fs::remove_file(dir.join("annual/smoke-mlp-v1.bpk")).unwrap();
    std::fs::write(&spec, {
        let mut b = bytes;
        b[last] ^= 1;
        b
    })
    .unwrap();
    let err = Registry::load(&dir, &cpu()).unwrap_err();
    assert!(
        matches!(err, RegistryError::Read { .. }) && err.to_string().contains("smoke-mlp-v1.bpk"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn boosted_trees_read_each_optional_item_through_bounded_trees_of_its_own_and_are_deterministic() {
    use pdscore_models::{
        train::boost::{self, BoostConfig, OPTIONAL_ITEMS, UNREAD},
        trees::{Node, tree_value},
    };
    let data = subset();
    let rows = boost::served_rows(&data);
    let all: Vec<usize> = (0..data.len()).collect();
    let config = BoostConfig {
        max_trees: 80,
        learning_rate: 0.1,
        patience: 20,
        ..BoostConfig::polish()
    };
    let spec = boost::fit(&rows, &data.labels, &all, &config, 7);
    assert_eq!(spec, boost::fit(&rows, &data.labels, &all, &config, 7), "deterministic");
    let (items, main): (Vec<&Vec<Node>>, Vec<&Vec<Node>>) =
        spec.trees.iter().partition(|t| boost::item_of(t).is_some());
    let features: Vec<usize> = OPTIONAL_ITEMS
        .iter()
        .flat_map(|o| o.features.iter().map(|f| f.feature))
        .collect();
    assert_eq!(items.len(), features.len(), "one tree per item feature");
    let fenced: Vec<usize> = features.iter().copied().chain(UNREAD).collect();
    // Every leaf below a split on a feature that may only lower the PD: no riskier on its right.
    fn leaves(tree: &[Node], k: usize) -> Vec<f64> {
        match &tree[k] {
            Node::Leaf { value } => vec![*value],
            Node::Split { left, right, .. } => [leaves(tree, *left), leaves(tree, *right)].concat(),
        }
    }
    for tree in main {
        for node in tree {
            if let Node::Split {
                feature, left, right, ..
            } = node
            {
                assert!(!fenced.contains(feature), "a main tree reads feature {feature}");
                if config.decreasing.contains(feature) {
                    let most = leaves(tree, *right).into_iter().fold(f64::NEG_INFINITY, f64::max);
                    let least = leaves(tree, *left).into_iter().fold(f64::INFINITY, f64::min);
                    assert!(most <= least, "feature {feature}: {most} right of {least}");
                }
            }
        }
    }
    // Per item, the largest move of its trees together: within its bound on every row.
    for item in OPTIONAL_ITEMS {
        let own: Vec<&&Vec<Node>> = items
            .iter()
            .filter(|t| boost::item_of(t).unwrap().0.item == item.item)
            .collect();
        let mut widest = 0.0f64;
        for row in &rows {
            let mut unknown = row.clone();
            for f in item.features {
                unknown[f.feature] = None;
            }
            let moved: f64 = own.iter().map(|t| tree_value(t, row) - tree_value(t, &unknown)).sum();
            assert!(moved.abs() <= item.bound + 1e-9, "{}: {moved}", item.item);
            widest = widest.max(moved.abs());
        }
        assert!(widest > 0.05, "{}: the item says something ({widest})", item.item);
    }
    // More interest cover never raises the PD.
    let cover = items
        .iter()
        .find(|t| boost::item_of(t).unwrap().1.decreasing)
        .expect("the cover's tree");
    let feature = boost::item_of(cover).unwrap().1.feature;
    let mut values: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| r[feature])
        .map(|x| {
            let mut row = vec![None; 64];
            row[feature] = Some(x);
            (x, tree_value(cover, &row))
        })
        .collect();
    values.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(
        values.windows(2).all(|w| w[1].1 <= w[0].1),
        "the cover's tree is monotone"
    );
    let bounds: f64 = OPTIONAL_ITEMS.iter().map(|o| o.bound).sum();
    assert!((bounds - 3f64.ln()).abs() < 1e-12 && OPTIONAL_ITEMS.iter().all(|o| o.bound <= 2f64.ln() + 1e-15));
}
