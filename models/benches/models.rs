//! Feature engineering and batch inference of every registered model, as predictions per second.
//!
//! `cargo bench -p pdscore-models --bench models` (one core: `taskset -c 0 cargo bench -p pdscore-models --bench
//! models`)

use std::time::Duration;

// The service's allocator: the tensor program's arrays are allocated per batch, and glibc's malloc returns
// large ones to the kernel, so that each batch pays page faults the service does not.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pdscore_models::{
    features::FeatureSet,
    registry::{Model, Registry},
    statement::Statement,
};

/// A plausible statement (thousands), varied per row so that rows fall into different bins.
fn statement(i: usize) -> Statement {
    let k = 1.0 + (i % 97) as f64 / 50.0;
    Statement {
        total_assets: Some(1000.0 * k),
        current_assets: Some(400.0),
        cash: Some(50.0 * k),
        receivables: Some(150.0),
        inventories: Some(100.0),
        fixed_assets: Some(600.0 * k),
        total_liabilities: Some(600.0),
        current_liabilities: Some(250.0 * k),
        long_term_liabilities: Some(350.0),
        long_term_debt: Some(300.0 * k),
        total_debt: Some(400.0),
        equity: Some(400.0 * k),
        share_capital: Some(100.0),
        retained_earnings: Some(200.0 * k - 250.0),
        sales: Some(2000.0),
        previous_sales: Some(1600.0 * k),
        cost_of_products_sold: Some(1500.0),
        gross_profit: Some(500.0 / k),
        profit_before_tax: Some(120.0 / k),
        gross_profit_3y: Some(1400.0),
        profit_on_sales: Some(300.0),
        operating_expenses: Some(1800.0),
        sga_expenses: Some(300.0 * k),
        total_costs: Some(1900.0),
        depreciation: Some(50.0),
        ebit: Some(150.0 / k),
        profit_on_operating_activities: Some(140.0),
        interest_expense: Some(30.0 * k),
        financial_expenses: Some(35.0),
        net_profit: Some(90.0 - 20.0 * k),
        ..Default::default()
    }
}

fn feature_engineering(c: &mut Criterion) {
    let statements: Vec<Statement> = (0..1024).map(statement).collect();
    let mut group = c.benchmark_group("features");
    group.throughput(Throughput::Elements(statements.len() as u64));
    for set in [
        FeatureSet::AccunodeAnnual,
        FeatureSet::AccunodeQuarterly,
        FeatureSet::Polish,
    ] {
        group.bench_function(format!("{set:?}"), |b| {
            b.iter(|| statements.iter().map(|s| set.from_statement(s)).collect::<Vec<_>>())
        });
    }
    group.finish();
}

fn inference(c: &mut Criterion) {
    let device = pdscore_models::cpu();
    let registry =
        Registry::load(&pdscore_models::committed_artifacts_dir(), &device).expect("the committed artifacts load");
    let mut group = c.benchmark_group("inference");
    group.measurement_time(Duration::from_secs(4)).sample_size(20);
    for model in registry.models() {
        let set = model.entry.feature_set;
        for batch in [1usize, 256, 1024] {
            let rows: Vec<Vec<Option<f64>>> = (0..batch).map(|i| set.from_statement(&statement(i))).collect();
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(BenchmarkId::new(model.id().to_string(), batch), &rows, |b, rows| {
                b.iter(|| model.score_batch(rows).expect("scores"))
            });
            // Networks and trees explain every row (integrated gradients, path contributions); their PD alone
            // (term-structure partners, shadows) is cheaper.
            if !matches!(model.model, Model::Scorecard(_)) {
                let id = format!("{} (PD only)", model.id());
                group.bench_with_input(BenchmarkId::new(id, batch), &rows, |b, rows| {
                    b.iter(|| model.predict_batch(rows).expect("predicts"))
                });
            }
            // A statement without previous sales: its trees marginalise the unknown growth, weighing every
            // leaf instead of walking one path.
            if let Model::Trees(_) = &model.model {
                let partial: Vec<Vec<Option<f64>>> = (0..batch)
                    .map(|i| {
                        let statement = Statement {
                            previous_sales: None,
                            ..statement(i)
                        };
                        set.from_statement(&statement)
                    })
                    .collect();
                let id = format!("{} (no previous sales)", model.id());
                group.bench_with_input(BenchmarkId::new(id, batch), &partial, |b, rows| {
                    b.iter(|| model.score_batch(rows).expect("scores"))
                });
                let id = format!("{} (no previous sales, PD only)", model.id());
                group.bench_with_input(BenchmarkId::new(id, batch), &partial, |b, rows| {
                    b.iter(|| model.predict_batch(rows).expect("predicts"))
                });
            }
            // The reference the tensor program is tested against, walking each tree in plain `f64`: what one
            // core does without tensors (raw logits, no calibration or reasons).
            if let Model::Trees(trees) = &model.model {
                let id = format!("{} (f64 walk, reference)", model.id());
                group.bench_with_input(BenchmarkId::new(id, batch), &rows, |b, rows| {
                    b.iter(|| rows.iter().map(|r| trees.walk(r)).collect::<Vec<_>>())
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, feature_engineering, inference);
criterion_main!(benches);
