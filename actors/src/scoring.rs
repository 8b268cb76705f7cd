//! From filings to scores with the registry's models: the model pool workers' whole job, as plain functions.
//!
//! Rows are grouped by model so each model scores one batch (a network's forward pass is far cheaper per
//! row on a batch). A filing fails alone (unknown model, a ratio that is not a number): the others of its
//! batch are scored.

use std::collections::BTreeMap;

use pdscore_models::{
    PredictionType,
    output::ModelOutput,
    registry::{LoadedModel, ModelId, Registry, ScoreError, TermError},
    risk::{RiskScheme, implied_rating},
    statement::Statement,
};
use serde_json::{Map, Value};
use uuid::Uuid;

/// A filing's primary score and, when the tenant runs one, its shadow score.
pub type FilingScores = Result<(ModelScore, Option<ModelScore>), Rejected>;

/// Rows for one model: (filing index, input row).
type ModelRows = BTreeMap<(ModelId, Terms), Vec<(usize, Vec<Option<f64>>)>>;

/// The AccuNode scorecard of a prediction type: the default model of AccuNode's routes.
pub fn accunode_scorecard(prediction_type: PredictionType) -> ModelId {
    ModelId {
        name: format!("{prediction_type}/accunode-scorecard"),
        version: 1,
    }
}

use crate::{
    error::{RejectCode, Rejected},
    events,
    filing::{Filing, ModelScore, Scores, Terms},
    policy::TenantPolicy,
};

/// The model of a filing that names none. On AccuNode's routes, its scorecard. Otherwise the tenant's
/// default — unless the filing sends ratios that model does not read while AccuNode's scorecard does:
/// ratios are one model's inputs, so AccuNode's ratios (its clients' habit) are scored by its scorecard.
fn default_model(registry: &Registry, default: &ModelId, filing: &Filing) -> ModelId {
    let scorecard = accunode_scorecard(filing.prediction_type);
    match (filing.terms, &filing.content.ratios) {
        (Terms::Accunode, _) => scorecard,
        (Terms::Product, Some(ratios)) if !ratios.is_empty() => {
            let reads = |id: &ModelId| registry.get(id).is_some_and(|m| m.entry.feature_set.reads(ratios));
            if !reads(default) && reads(&scorecard) {
                scorecard
            } else {
                default.clone()
            }
        }
        (Terms::Product, _) => default.clone(),
    }
}

/// AccuNode's confidence: distance of the PD from a coin toss, at least 0.5.
pub fn confidence(pd: f64) -> f64 {
    ((pd - 0.5).abs() * 2.0).max(0.5)
}

/// The primary and shadow scores of each filing (borrowing them, so a caller that guards against a panic
/// keeps its filings).
pub fn score_rows(registry: &Registry, policy: &TenantPolicy, filings: &[Filing]) -> Vec<FilingScores> {
    let mut results: Vec<Option<FilingScores>> = vec![None; filings.len()];
    // Which model answers each filing, and its input row.
    let mut groups = ModelRows::new();
    let mut shadows = ModelRows::new();
    for (index, filing) in filings.iter().enumerate() {
        let choice = policy.models(Input::of(filing).prediction_type);
        let id = filing
            .content
            .model
            .clone()
            .unwrap_or_else(|| default_model(registry, &choice.default, filing));
        match model_input(registry, &id, filing) {
            Ok(row) => groups.entry((id, filing.terms)).or_default().push((index, row)),
            Err(rejected) => results[index] = Some(Err(rejected)),
        }
        // The shadow scores what the tenant's default would have; a shadow that cannot read the filing is
        // skipped.
        if let Some(shadow) = choice
            .shadow
            .as_ref()
            .filter(|_| filing.content.model.is_none() && filing.terms == Terms::Product)
            && let Ok(row) = model_input(registry, shadow, filing)
        {
            shadows
                .entry((shadow.clone(), Terms::Product))
                .or_default()
                .push((index, row));
        }
    }

    let mut primary: Vec<Option<ModelScore>> = vec![None; filings.len()];
    for ((id, terms), rows) in groups {
        let model = registry.get(&id).expect("model_input checked the id");
        match score_group(registry, &model, policy, terms, &rows) {
            Ok(scores) => {
                for ((index, _), score) in rows.iter().zip(scores) {
                    primary[*index] = Some(score);
                }
            }
            Err(rejected) => {
                for (index, _) in &rows {
                    results[*index] = Some(Err(rejected.clone()));
                }
            }
        }
    }
    let mut shadow: Vec<Option<ModelScore>> = vec![None; filings.len()];
    for ((id, terms), rows) in shadows {
        let model = registry.get(&id).expect("model_input checked the id");
        match score_group(registry, &model, policy, terms, &rows) {
            Ok(scores) => {
                for ((index, _), score) in rows.iter().zip(scores) {
                    shadow[*index] = Some(score);
                }
            }
            Err(rejected) => tracing::warn!(model = %id, error = %rejected, "shadow model failed; skipped"),
        }
    }

    (0..filings.len())
        .map(|index| match results[index].take() {
            Some(Err(rejected)) => Err(rejected),
            _ => {
                let trailing = filings[index].trailing.as_ref().map(|t| t.quarters);
                let basis = |mut score: ModelScore| {
                    score.trailing_quarters = trailing;
                    score
                };
                Ok((
                    basis(primary[index].take().expect("every filing is scored or rejected")),
                    shadow[index].take().map(basis),
                ))
            }
        })
        .collect()
}

/// Joins filings with their scores (from [`score_rows`]), giving each prediction its id.
pub fn attach(policy: &TenantPolicy, filings: Vec<Filing>, scores: Vec<FilingScores>) -> Vec<Result<Scores, Rejected>> {
    filings
        .into_iter()
        .zip(scores)
        .map(|(filing, score)| {
            let (primary, shadow) = score?;
            Ok(Scores {
                filing,
                prediction_id: Uuid::now_v7(),
                primary,
                shadow,
                alert_pd_change: policy.alert_pd_change,
            })
        })
        .collect()
}

/// What a filing is scored on: its own statement and ratios, or the trailing twelve months of a quarterly
/// statement ([`Filing::trailing`]) as an annual statement.
struct Input<'a> {
    prediction_type: PredictionType,
    statement: Option<&'a Statement>,
    ratios: Option<&'a Map<String, Value>>,
}

impl<'a> Input<'a> {
    fn of(filing: &'a Filing) -> Self {
        match &filing.trailing {
            Some(trailing) => Self {
                prediction_type: PredictionType::Annual,
                statement: Some(&trailing.statement),
                ratios: None,
            },
            None => Self {
                prediction_type: filing.prediction_type,
                statement: filing.content.statement.as_ref(),
                ratios: filing.content.ratios.as_ref(),
            },
        }
    }
}

/// The model's input row for a filing, after checking the model exists and answers the prediction type it
/// is scored as.
fn model_input(registry: &Registry, id: &ModelId, filing: &Filing) -> Result<Vec<Option<f64>>, Rejected> {
    let input = Input::of(filing);
    let unknown = || Rejected {
        code: RejectCode::UnknownModel,
        message: format!(
            "no {} model {id}; available: {}",
            input.prediction_type,
            registry
                .models()
                .filter(|m| m.entry.prediction_type == input.prediction_type)
                .map(|m| m.id().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        field: Some("model".into()),
    };
    let model = registry.get(id).ok_or_else(unknown)?;
    if model.entry.prediction_type != input.prediction_type {
        return Err(unknown());
    }
    model
        .entry
        .feature_set
        .assemble(input.statement, input.ratios)
        .map_err(|e| {
            let field = match &e {
                pdscore_models::features::FeatureError::NotANumber { field, .. }
                | pdscore_models::features::FeatureError::Unknown { field, .. } => format!("ratios.{field}"),
            };
            Rejected::validation(field, e.to_string())
        })
}

fn score_group(
    registry: &Registry,
    model: &LoadedModel,
    policy: &TenantPolicy,
    terms: Terms,
    rows: &[(usize, Vec<Option<f64>>)],
) -> Result<Vec<ModelScore>, Rejected> {
    let inputs: Vec<Vec<Option<f64>>> = rows.iter().map(|(_, row)| row.clone()).collect();
    let started = std::time::Instant::now();
    let outputs = run(model, &inputs)?;
    events::ModelBatchScored {
        model: model.id(),
        rows: inputs.len(),
        elapsed: started.elapsed(),
    }
    .emit();

    let scheme = match terms {
        Terms::Product => policy.risk_scheme,
        Terms::Accunode => RiskScheme::Accunode,
    };
    let pds = model.portfolio_pds(&outputs, policy.base_rate);
    let curves = registry
        .term_structures(model, &pds, &inputs, policy.base_rate)
        .map_err(|e| match e {
            TermError::Partner(partner) => Rejected {
                code: RejectCode::UnknownModel,
                message: format!("term-structure model {partner} is not loaded"),
                field: None,
            },
            TermError::Score(e) => model_error(e),
        })?;

    let names = model.entry.feature_set.names();
    Ok(outputs
        .into_iter()
        .enumerate()
        .map(|(i, output)| {
            let mut contributions = output.contributions;
            contributions.sort_by(|a, b| b.logit.abs().total_cmp(&a.logit.abs()));
            let pd = pds[i];
            ModelScore {
                model: model.id().clone(),
                probability: pd,
                term_structure: curves.as_ref().map(|c| c[i]),
                risk_level: scheme.level(pd),
                implied_rating: implied_rating(pd),
                confidence: confidence(pd),
                contributions,
                inputs: inputs_json(&names, &inputs[i]),
                trailing_quarters: None,
            }
        })
        .collect())
}

fn run(model: &LoadedModel, inputs: &[Vec<Option<f64>>]) -> Result<Vec<ModelOutput>, Rejected> {
    model.score_batch(inputs).map_err(model_error)
}

fn model_error(e: ScoreError) -> Rejected {
    Rejected {
        code: RejectCode::ModelError,
        message: e.to_string(),
        field: None,
    }
}

/// Inputs as JSON; JSON has no infinities, so those are written as the strings spreadsheets use.
fn inputs_json(names: &[&str], row: &[Option<f64>]) -> Map<String, Value> {
    names
        .iter()
        .zip(row)
        .map(|(name, value)| {
            let value = match value {
                None => Value::Null,
                Some(v) if v.is_finite() => serde_json::json!(v),
                Some(v) if *v > 0.0 => Value::from("inf"),
                Some(_) => Value::from("-inf"),
            };
            ((*name).to_owned(), value)
        })
        .collect()
}
