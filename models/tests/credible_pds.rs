//! PDs a credit analyst can trust: a healthy company's statement scored by the committed default model and
//! its 5-year partner, the way the service scores them. The curve rises (PD 1y ≤ … ≤ PD 5y); leaving out one
//! optional line item (previous sales, financial expenses) moves a PD by at most 2×, both at most 3×; the
//! same firm without debt costs is no riskier. The same properties are checked on the statements behind a
//! sample of the data's own rows.

use pdscore_models::{
    cpu,
    dataset::{Dataset, polish_statement},
    features::FeatureSet,
    registry::{LoadedModel, Registry},
    statement::Statement,
};

const MODEL: &str = "annual/polish-gbdt@1";

struct Scored {
    one_year: f64,
    five_year: f64,
}

fn score(registry: &Registry, model: &LoadedModel, statements: &[Statement]) -> Vec<Scored> {
    // The tensor program's leaf weights grow with the batch: score in service-sized batches.
    if statements.len() > 512 {
        return statements.chunks(512).flat_map(|c| score(registry, model, c)).collect();
    }
    let rows: Vec<Vec<Option<f64>>> = statements
        .iter()
        .map(|s| FeatureSet::Polish.from_statement(s))
        .collect();
    let outputs = model.score_batch(&rows).expect("the model scores");
    let pds = model.portfolio_pds(&outputs, None);
    let curves = registry
        .term_structures(model, &pds, &rows, None)
        .expect("the partner scores")
        .expect("the default model has a 5-year partner");
    outputs
        .iter()
        .zip(curves)
        .map(|(o, curve)| {
            assert_eq!(curve.cumulative[0], o.pd);
            for w in curve.cumulative.windows(2) {
                assert!(w[0] <= w[1], "{:?}", curve.cumulative);
            }
            Scored {
                one_year: o.pd,
                five_year: curve.cumulative[4],
            }
        })
        .collect()
}

fn ratio(a: f64, b: f64) -> f64 {
    a.max(b) / a.min(b)
}

fn registry() -> Registry {
    Registry::load(&pdscore_models::committed_artifacts_dir(), &cpu()).expect("the committed artifacts load")
}

/// A healthy company with every line item (thousands): total assets 1,000, equity 450, sales 1,200, net
/// profit 60, interest 20, financial expenses 25.
fn healthy() -> Statement {
    Statement {
        total_assets: Some(1000.0),
        current_assets: Some(450.0),
        cash: Some(80.0),
        short_term_securities: Some(20.0),
        receivables: Some(200.0),
        inventories: Some(150.0),
        fixed_assets: Some(550.0),
        total_liabilities: Some(550.0),
        current_liabilities: Some(300.0),
        long_term_liabilities: Some(250.0),
        long_term_debt: Some(200.0),
        total_debt: Some(350.0),
        equity: Some(450.0),
        share_capital: Some(100.0),
        retained_earnings: Some(250.0),
        sales: Some(1200.0),
        previous_sales: Some(1100.0),
        cost_of_products_sold: Some(900.0),
        gross_profit: Some(300.0),
        gross_profit_3y: Some(220.0),
        profit_on_sales: Some(110.0),
        operating_expenses: Some(1100.0),
        sga_expenses: Some(150.0),
        total_costs: Some(1120.0),
        depreciation: Some(40.0),
        ebit: Some(100.0),
        ebitda: Some(140.0),
        profit_on_operating_activities: Some(105.0),
        interest_expense: Some(20.0),
        financial_expenses: Some(25.0),
        extraordinary_items: Some(0.0),
        net_profit: Some(60.0),
        ..Statement::default()
    }
}

/// A statement and its variants: without previous sales, without financial expenses, without both, and
/// the same firm without debt costs: interest and financial expenses 0, its profit before tax (when
/// reported; else derived from EBIT) higher by the financial expenses saved, nothing else changed.
fn variants(complete: &Statement) -> [Statement; 5] {
    [
        complete.clone(),
        Statement {
            previous_sales: None,
            ..complete.clone()
        },
        Statement {
            financial_expenses: None,
            ..complete.clone()
        },
        Statement {
            previous_sales: None,
            financial_expenses: None,
            ..complete.clone()
        },
        Statement {
            interest_expense: Some(0.0),
            financial_expenses: Some(0.0),
            profit_before_tax: complete
                .profit_before_tax
                .map(|p| p + complete.financial_expenses_or_interest().unwrap_or(0.0)),
            ..complete.clone()
        },
    ]
}

/// Checks the properties on the scored variants of one statement (see [`variants`]); returns the largest
/// ratio seen for a single missing item and for both.
fn check(name: &str, scored: &[Scored]) -> (f64, f64) {
    let (mut single, mut both) = (1.0f64, 1.0f64);
    for s in scored {
        assert!(s.one_year <= s.five_year, "{name}: PD 1y above PD 5y");
    }
    for (i, limit) in [(1, 2.0), (2, 2.0), (3, 3.0)] {
        for (a, b) in [
            (scored[0].one_year, scored[i].one_year),
            (scored[0].five_year, scored[i].five_year),
        ] {
            let r = ratio(a, b);
            assert!(r <= limit, "{name}, variant {i}: PD {a} vs {b} ({r:.2}x)");
            if i == 3 {
                both = both.max(r);
            } else {
                single = single.max(r);
            }
        }
    }
    // No riskier, up to the tensor program's `f32` sums (a firm whose debt costs move no split gets the
    // same leaves, summed in another rounding).
    let no_riskier = |debt_free: f64, complete: f64| debt_free <= complete * (1.0 + 1e-6);
    assert!(
        no_riskier(scored[4].one_year, scored[0].one_year),
        "{name}: debt-free is riskier (1y): {} vs {}",
        scored[4].one_year,
        scored[0].one_year
    );
    assert!(
        no_riskier(scored[4].five_year, scored[0].five_year),
        "{name}: debt-free is riskier (5y): {} vs {}",
        scored[4].five_year,
        scored[0].five_year
    );
    (single, both)
}

#[test]
fn the_statements_behind_the_datas_rows_keep_the_properties() {
    let registry = registry();
    let model = registry.get(&MODEL.parse().unwrap()).expect("the default model");
    let data = Dataset::load(&pdscore_models::train_data_dir().join("5year.arff")).expect("the data loads");
    // Every fourth row whose statement reports both optional items and has debt costs (financial expenses
    // above 0: the data has a few negative ones, which no firm saves by having no debt).
    let statements: Vec<(usize, Statement)> = data
        .rows
        .iter()
        .enumerate()
        .step_by(4)
        .map(|(i, row)| (i, polish_statement(row)))
        .filter(|(_, s)| s.previous_sales.is_some() && s.financial_expenses.is_some_and(|f| f > 0.0))
        .collect();
    assert!(statements.len() > 1000, "{} statements", statements.len());
    let bankrupt = statements.iter().filter(|(i, _)| data.labels[*i] == 1).count();
    assert!(bankrupt > 30, "{bankrupt} bankrupt firms in the sample");
    let all: Vec<Statement> = statements.iter().flat_map(|(_, s)| variants(s)).collect();
    let scored = score(&registry, &model, &all);
    let (mut single, mut both) = (1.0f64, 1.0f64);
    for ((i, _), scored) in statements.iter().zip(scored.chunks_exact(5)) {
        let (s, b) = check(&format!("row {}", i + 1), scored);
        single = single.max(s);
        both = both.max(b);
    }
    eprintln!(
        "{} statements ({bankrupt} bankrupt): one item missing moves a PD by at most {single:.3}x, both by {both:.3}x",
        statements.len()
    );
}

#[test]
fn the_healthy_company_of_the_issue_gets_a_rising_curve_and_stable_pds() {
    let registry = registry();
    let model = registry.get(&MODEL.parse().unwrap()).expect("the default model");
    let scored = score(&registry, &model, &variants(&healthy()));
    for (name, s) in [
        "complete",
        "no previous sales",
        "no financial expenses",
        "neither",
        "debt-free",
    ]
    .iter()
    .zip(&scored)
    {
        eprintln!(
            "{name:<22} PD 1y {:.4} %  PD 5y {:.4} %",
            100.0 * s.one_year,
            100.0 * s.five_year
        );
    }
    check("the healthy company", &scored);
}

/// The tensor program serves what the trees say: on the statements behind every eighth row of 5year.arff —
/// their [`variants`], and each with a third of its line items dropped —
/// both committed tree models' PDs (with reasons and without) equal walking their trees in `f64`, in one
/// batch mixing rows that walk one path with rows that weigh every leaf, and the reasons add up.
#[test]
fn the_tensor_program_scores_real_statements_as_the_trees_walk() {
    let registry = registry();
    let data = Dataset::load(&pdscore_models::train_data_dir().join("5year.arff")).expect("the data loads");
    let mut statements = Vec::new();
    for (i, row) in data.rows.iter().enumerate().step_by(8) {
        let complete = polish_statement(row);
        let mut thinned = serde_json::to_value(&complete).expect("a statement serialises");
        let fields = thinned.as_object_mut().expect("an object");
        let dropped: Vec<String> = fields.keys().skip(i % 3).step_by(3).cloned().collect();
        for key in dropped {
            fields.remove(&key);
        }
        let thinned: Statement = serde_json::from_value(thinned).expect("a statement deserialises");
        statements.extend(variants(&complete));
        statements.push(thinned);
    }
    let mut checked = 0;
    for model in registry.models() {
        let pdscore_models::registry::Model::Trees(trees) = &model.model else {
            continue;
        };
        let calibration = trees.spec().calibration;
        for chunk in statements.chunks(256) {
            let rows: Vec<Vec<Option<f64>>> = chunk.iter().map(|s| FeatureSet::Polish.from_statement(s)).collect();
            let fast = model.predict_batch(&rows).expect("predicts");
            let explained = model.score_batch(&rows).expect("scores");
            for (k, row) in rows.iter().enumerate() {
                let walked = calibration.probability(trees.walk(row));
                let tolerance = 1e-5 * walked.max(1e-3);
                assert!(
                    (fast[k] - walked).abs() < tolerance,
                    "{}: {} vs {walked}",
                    model.id(),
                    fast[k]
                );
                assert!((explained[k].pd - walked).abs() < tolerance, "{}", model.id());
                let sum: f64 = explained[k].contributions.iter().map(|c| c.logit).sum();
                let gap = explained[k].logit - explained[k].baseline_logit;
                assert!((sum - gap).abs() < 1e-3, "{}: reasons {sum} vs {gap}", model.id());
                checked += 1;
            }
        }
    }
    assert!(checked > 2 * 6 * 700, "{checked} rows checked");
}
