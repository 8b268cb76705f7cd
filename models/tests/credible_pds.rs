//! PDs a credit analyst can trust: a healthy company's statement scored by the committed default model and
//! its 5-year partner, the way the service scores them. The curve rises (PD 1y ≤ … ≤ PD 5y); leaving out one
//! optional line item (previous sales, financial expenses) moves a PD by at most 2×, both at most 3×; the
//! same firm without debt costs is no riskier.

use pdscore_models::{
    cpu,
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

#[test]
fn the_healthy_company_of_the_issue_gets_a_rising_curve_and_stable_pds() {
    let registry = registry();
    let model = registry.get(&MODEL.parse().unwrap()).expect("the default model");
    let complete = healthy();
    let no_growth = Statement {
        previous_sales: None,
        ..healthy()
    };
    let no_expenses = Statement {
        financial_expenses: None,
        ..healthy()
    };
    let neither = Statement {
        previous_sales: None,
        financial_expenses: None,
        ..healthy()
    };
    let debt_free = Statement {
        interest_expense: Some(0.0),
        financial_expenses: Some(0.0),
        ..healthy()
    };
    let scored = score(
        &registry,
        &model,
        &[complete, no_growth, no_expenses, neither, debt_free],
    );
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
        assert!(s.one_year <= s.five_year, "{name}");
    }
    for (i, limit) in [(1, 2.0), (2, 2.0), (3, 3.0)] {
        for (a, b) in [
            (scored[0].one_year, scored[i].one_year),
            (scored[0].five_year, scored[i].five_year),
        ] {
            assert!(ratio(a, b) <= limit, "row {i}: {a} vs {b}");
        }
    }
    assert!(scored[4].one_year <= scored[0].one_year, "debt-free is riskier");
}
