//! Back-tests: a portfolio scored over several periods, its recorded credit events, and the service's report
//! checked against an independent computation on the same rows.

use std::collections::HashMap;

use chrono::{Months, NaiveDate, Utc};
use pdscore::auth::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, data, id, spawn_app};

/// A statement whose health falls with `i` (0: sound, 29: loss-making with negative equity).
pub fn statement(i: i64) -> Value {
    let equity = 450 - 25 * i;
    json!({ "total_assets": 1000, "current_assets": 450, "cash": 80 - 2 * i, "receivables": 200, "inventories": 150,
            "fixed_assets": 550, "total_liabilities": 1000 - equity, "current_liabilities": 300 + 10 * i,
            "long_term_liabilities": 700 - equity - 10 * i, "equity": equity, "share_capital": 100,
            "retained_earnings": 250 - 25 * i, "sales": 1200 - 10 * i, "previous_sales": 1100,
            "cost_of_products_sold": 900, "profit_on_sales": 110 - 8 * i, "operating_expenses": 1100,
            "total_costs": 1120, "depreciation": 40, "ebit": 100 - 8 * i, "profit_on_operating_activities": 105 - 8 * i,
            "interest_expense": 20 + i, "financial_expenses": 25 + i, "net_profit": 60 - 8 * i })
}

/// Credit events by company index.
const EVENTS: [(i64, &str); 7] = [
    (29, "2021-06-30"),
    (27, "2022-09-30"),
    (25, "2023-05-31"),
    (22, "2023-01-15"),
    (18, "2022-02-01"),
    (10, "2025-06-30"),
    (3, "2023-11-30"),
];

pub const COMPANIES: i64 = 30;

/// Thirty companies of the demo organization scored for 2020–2022 (and one for 2026, whose horizon is
/// open), with their credit events recorded; their ids by index.
pub async fn scored_portfolio(app: &TestApp, token: &str, organization: Uuid) -> Vec<Uuid> {
    let mut companies = Vec::new();
    for i in 0..COMPANIES {
        let company = id(&data(
            app,
            "POST",
            &format!("/api/v1/organizations/{organization}/companies"),
            token,
            json!({ "symbol": format!("BT{i:02}"), "name": format!("Backtest {i}") }),
        )
        .await);
        let years: &[u16] = if i == 0 {
            &[2020, 2021, 2022, 2026]
        } else {
            &[2020, 2021, 2022]
        };
        for year in years {
            data(
                app,
                "POST",
                &format!("/api/v1/companies/{company}/predictions"),
                token,
                json!({ "type": "annual", "reporting_year": year, "statement": statement(i),
                        "filing_id": format!("bt-{i}-{year}") }),
            )
            .await;
        }
        companies.push(company);
    }
    for (i, date) in EVENTS {
        data(
            app,
            "POST",
            &format!("/api/v1/companies/{}/outcomes", companies[i as usize]),
            token,
            json!({ "event": "default", "event_date": date, "source": "court register" }),
        )
        .await;
    }
    companies
}

/// One company-period as the test reads it straight from the table.
struct Row {
    company: Uuid,
    year: i32,
    pd_1y: f64,
    pd_5y: f64,
    rating: String,
}

async fn rows(app: &TestApp, model: &str) -> Vec<Row> {
    let (name, version) = model.rsplit_once('@').unwrap();
    let rows: Vec<(Uuid, i16, f64, Value, String)> = sqlx::query_as(
        "SELECT company_id, period_year, probability, term_structure, implied_rating FROM predictions
         WHERE model_name = $1 AND model_version = $2 AND prediction_type = 'annual'",
    )
    .bind(name)
    .bind(version.parse::<i32>().unwrap())
    .fetch_all(&app.db)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(company, year, pd_1y, curve, rating)| Row {
            company,
            year: i32::from(year),
            pd_1y,
            pd_5y: curve["cumulative"]["5y"].as_f64().unwrap(),
            rating,
        })
        .collect()
}

/// (PD, defaulted) of each observation at `horizon`, from first principles: anchored at 31 December of the
/// reporting year; out if the company's event came on or before it, or if the horizon ends after today.
fn observations<'a>(
    rows: &'a [Row],
    events: &HashMap<Uuid, NaiveDate>,
    horizon: u32,
    today: NaiveDate,
) -> Vec<(f64, bool, &'a str)> {
    rows.iter()
        .filter_map(|row| {
            let as_of = NaiveDate::from_ymd_opt(row.year, 12, 31).unwrap();
            let end = as_of + Months::new(12 * horizon);
            let event = events.get(&row.company);
            if event.is_some_and(|e| *e <= as_of) || end > today {
                return None;
            }
            let pd = if horizon == 1 { row.pd_1y } else { row.pd_5y };
            Some((pd, event.is_some_and(|e| *e <= end), row.rating.as_str()))
        })
        .collect()
}

/// AUC as the share of (defaulter, survivor) pairs the PDs order correctly, ties half.
fn pairwise_auc(observations: &[(f64, bool, &str)]) -> f64 {
    let (mut pairs, mut right) = (0.0, 0.0);
    for (d, _, _) in observations.iter().filter(|o| o.1) {
        for (s, _, _) in observations.iter().filter(|o| !o.1) {
            pairs += 1.0;
            right += if d > s {
                1.0
            } else if d == s {
                0.5
            } else {
                0.0
            };
        }
    }
    right / pairs
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9)
}

fn check(report: &Value, observations: &[(f64, bool, &str)]) {
    let n = observations.len() as f64;
    let defaults = observations.iter().filter(|o| o.1).count();
    assert_eq!(report["measures"]["observations"], observations.len(), "{report:#}");
    assert_eq!(report["measures"]["defaults"], defaults, "{report:#}");
    let auc = pairwise_auc(observations);
    assert!(close(&report["measures"]["roc_auc"], auc), "AUC {auc}: {report:#}");
    assert!(close(&report["measures"]["accuracy_ratio"], 2.0 * auc - 1.0));
    let brier = observations
        .iter()
        .map(|(p, d, _)| (p - f64::from(u8::from(*d))).powi(2))
        .sum::<f64>()
        / n;
    assert!(close(&report["measures"]["brier"], brier), "Brier {brier}");
    let mean_pd = observations.iter().map(|o| o.0).sum::<f64>() / n;
    assert!(close(&report["measures"]["mean_pd"], mean_pd));
    // The reliability table partitions the observations by PD: each bin is exactly the observations whose PD
    // lies within its bounds, with their mean PD and default rate; bins are ordered and about a tenth each.
    let bins = report["measures"]["calibration"].as_array().unwrap();
    let mut covered = 0;
    let mut previous_upper = -1.0;
    for bin in bins {
        let (lower, upper) = (bin["lower"].as_f64().unwrap(), bin["upper"].as_f64().unwrap());
        assert!(lower > previous_upper && lower <= upper, "{bins:#?}");
        previous_upper = upper;
        let members: Vec<&(f64, bool, &str)> = observations.iter().filter(|o| o.0 >= lower && o.0 <= upper).collect();
        let count = members.len() as f64;
        assert_eq!(bin["observations"], members.len(), "{bin}");
        assert!(
            close(&bin["mean_pd"], members.iter().map(|o| o.0).sum::<f64>() / count),
            "{bin}"
        );
        let rate = members.iter().filter(|o| o.1).count() as f64 / count;
        assert!(close(&bin["default_rate"], rate), "{bin}");
        covered += members.len();
    }
    assert_eq!(covered, observations.len());
    // Per grade: its obligors, defaults and mean PD.
    for grade in report["measures"]["grades"].as_array().unwrap() {
        let members: Vec<_> = observations.iter().filter(|o| grade["grade"] == o.2).collect();
        assert_eq!(grade["obligors"], members.len(), "{grade}");
        assert_eq!(grade["defaults"], members.iter().filter(|o| o.1).count(), "{grade}");
        let p = grade["jeffreys_p_value"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&p), "{grade}");
    }
}

#[actix_web::test]
async fn a_backtest_matches_an_independent_computation_on_the_same_rows() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let analyst = demo.token(Role::OrgMember).to_owned();
    let companies = scored_portfolio(&app, &analyst, demo.setup.organization_id).await;
    let events: HashMap<Uuid, NaiveDate> = EVENTS
        .iter()
        .map(|(i, date)| (companies[*i as usize], date.parse().unwrap()))
        .collect();
    let today = Utc::now().date_naive();
    let model = "annual/polish-gbdt@1";
    let rows = rows(&app, model).await;
    assert_eq!(rows.len(), COMPANIES as usize * 3 + 1);

    // The tenant's default model, one year: every one of 2020–2022's 90 company-years but the 4 in default
    // at their period end (29 in 2021 and 2022, 27 and 18 in 2022); 2026's horizon is open.
    let (status, report) = app.call("GET", "/api/v1/backtests", Some(&analyst), None).await;
    assert_eq!(status, 200, "{report:#}");
    let report = &report["data"];
    assert_eq!(report["model"], model);
    assert_eq!(report["horizon_years"], 1);
    let one_year = observations(&rows, &events, 1, today);
    assert_eq!(one_year.len(), 90 - 4);
    check(report, &one_year);
    assert_eq!(report["excluded"]["defaulted_before"], 4, "{report:#}");
    assert_eq!(report["excluded"]["incomplete"], 1, "{report:#}");
    // Company 18 went from its 2021 grade straight to default before its 2022 statement.
    let migrations = &report["migrations"];
    let total: u64 = migrations["counts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|c| c.as_u64().unwrap())
        .sum();
    // Each company's 2020→2021 and 2021→2022 steps (fewer for those in default), plus the last periods
    // followed by a default within the year.
    assert!(total >= 50, "{migrations:#}");
    let d = migrations["to"]
        .as_array()
        .unwrap()
        .iter()
        .position(|g| g == "D")
        .unwrap();
    let into_default: u64 = migrations["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[d].as_u64().unwrap())
        .sum();
    assert_eq!(
        into_default, 6,
        "29, 27, 18 before their next statement; 25, 22, 3 within the year: {migrations:#}"
    );
    let periods: Vec<&str> = report["by_period"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["period"].as_str().unwrap())
        .collect();
    assert_eq!(periods, ["2020", "2021", "2022", "2026"]);

    // Five years: the 2020 statements have run their course (to 31 December 2025), with every event.
    let (status, report) = app
        .call(
            "GET",
            "/api/v1/backtests?horizon=5&model=annual/polish-gbdt@1",
            Some(&analyst),
            None,
        )
        .await;
    assert_eq!(status, 200, "{report:#}");
    let five_years = observations(&rows, &events, 5, today);
    assert!(five_years.iter().filter(|o| o.1).count() >= 7);
    check(&report["data"], &five_years);

    // A window of periods: 2021 only.
    let (_, report) = app
        .call(
            "GET",
            "/api/v1/backtests?from=2021-01-01&to=2021-12-31",
            Some(&analyst),
            None,
        )
        .await;
    // Company 29 was in default by the end of 2021.
    assert_eq!(report["data"]["measures"]["observations"], 30 - 1, "{report:#}");

    // Bad requests say which field.
    for (query, field) in [
        ("horizon=6", "horizon"),
        ("from=2022-01-01&to=2021-01-01", "from"),
        ("to=yesterday", "to"),
        ("model=gbdt", "model"),
        ("type=monthly", "type"),
    ] {
        let (status, answer) = app
            .call("GET", &format!("/api/v1/backtests?{query}"), Some(&analyst), None)
            .await;
        assert_eq!(status, 422, "{query}: {answer:#}");
        assert_eq!(answer["error"]["details"]["field"], field, "{answer:#}");
    }
    // A read-only account sees only its assigned company's observations (ACME: none scored here).
    let viewer = demo.token(Role::User).to_owned();
    let (status, report) = app.call("GET", "/api/v1/backtests", Some(&viewer), None).await;
    assert_eq!(status, 200);
    assert_eq!(report["data"]["measures"]["observations"], 0);
    assert!(report["data"]["measures"]["roc_auc"].is_null());
}

#[actix_web::test]
async fn a_challenger_set_through_the_api_scores_every_filing_is_compared_and_promoted() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let admin = demo.token(Role::TenantAdmin).to_owned();
    let analyst = demo.token(Role::OrgMember).to_owned();
    let tenant = demo.setup.tenant_id;
    let path = format!("/api/v1/tenants/{tenant}/models/annual");
    let (gbdt, scorecard) = ("annual/polish-gbdt@1", "annual/accunode-scorecard@1");

    // Only a tenant admin chooses; only one-year models of the type; never the model answering.
    let (status, _) = app
        .call("PUT", &path, Some(&analyst), Some(&json!({ "challenger": scorecard })))
        .await;
    assert_eq!(status, 403);
    for (body, field) in [
        (json!({ "challenger": "quarterly/accunode-scorecard@1" }), "challenger"),
        (json!({ "challenger": "annual-5y/polish-gbdt@1" }), "challenger"),
        (json!({ "challenger": "annual/nothing@9" }), "challenger"),
        (json!({ "challenger": gbdt }), "challenger"),
        (json!({ "model": "annual/Bad" }), "model"),
    ] {
        let (status, answer) = app.call("PUT", &path, Some(&admin), Some(&body)).await;
        assert_eq!(status, 422, "{body}: {answer:#}");
        assert_eq!(answer["error"]["details"]["field"], field, "{answer:#}");
    }
    let (status, set) = app
        .call("PUT", &path, Some(&admin), Some(&json!({ "challenger": scorecard })))
        .await;
    assert_eq!(status, 200, "{set:#}");
    assert_eq!(
        set["data"],
        json!({ "prediction_type": "annual", "model": gbdt, "service_default": true, "challenger": scorecard })
    );

    // Every filing is scored by both; the challenger's answer is stored, the model's returned.
    let companies = scored_portfolio(&app, &analyst, demo.setup.organization_id).await;
    let counts: Vec<(String, bool, i64)> = sqlx::query_as(
        "SELECT model_name || '@' || model_version, is_shadow, count(*) FROM predictions
         WHERE prediction_type = 'annual' GROUP BY 1, 2 ORDER BY 1",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let filings = COMPANIES * 3 + 1;
    assert_eq!(
        counts,
        vec![(scorecard.to_owned(), true, filings), (gbdt.to_owned(), false, filings)]
    );

    // The comparison: agreement on the same filings, computed here from the table.
    let (status, comparison) = app.call("GET", "/api/v1/comparisons", Some(&analyst), None).await;
    assert_eq!(status, 200, "{comparison:#}");
    let comparison = &comparison["data"];
    assert_eq!(
        (comparison["model"].as_str(), comparison["challenger"].as_str()),
        (Some(gbdt), Some(scorecard))
    );
    let agreement = &comparison["agreement"];
    assert_eq!(agreement["filings"], filings);
    let (same_level, mean_delta): (i64, f64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE p.risk_level = q.risk_level), avg(q.probability - p.probability)
         FROM predictions p JOIN predictions q ON q.filing_id = p.filing_id AND q.is_shadow
         WHERE NOT p.is_shadow",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(
        close(&agreement["level_agreement"], same_level as f64 / filings as f64),
        "{agreement:#}"
    );
    assert!(close(&agreement["pd_delta"]["mean"], mean_delta), "{agreement:#}");
    let cells: u64 = agreement["levels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|c| c.as_u64().unwrap())
        .sum();
    assert_eq!(cells, filings as u64);
    // Both back-tested on the same company-periods and events.
    let side = &comparison["backtest"];
    assert_eq!(side["model"]["observations"], side["challenger"]["observations"]);
    assert_eq!(side["model"]["defaults"], side["challenger"]["defaults"]);
    assert_eq!(side["model"]["observations"], 86, "{side:#}");
    let (_, alone) = app
        .call(
            "GET",
            &format!("/api/v1/backtests?model={scorecard}"),
            Some(&analyst),
            None,
        )
        .await;
    assert_eq!(alone["data"]["measures"]["roc_auc"], side["challenger"]["roc_auc"]);

    // Promotion names the challenger it promotes; the replaced model becomes the challenger.
    let promote = format!("{path}/promote");
    let (status, answer) = app
        .call("POST", &promote, Some(&admin), Some(&json!({ "challenger": gbdt })))
        .await;
    assert_eq!(status, 409, "{answer:#}");
    let (status, answer) = app
        .call(
            "POST",
            &promote,
            Some(&analyst),
            Some(&json!({ "challenger": scorecard })),
        )
        .await;
    assert_eq!(status, 403, "{answer:#}");
    let (status, promoted) = app
        .call(
            "POST",
            &promote,
            Some(&admin),
            Some(&json!({ "challenger": scorecard })),
        )
        .await;
    assert_eq!(status, 200, "{promoted:#}");
    assert_eq!(promoted["data"]["model"], scorecard);
    assert_eq!(promoted["data"]["challenger"], gbdt);
    assert_eq!(promoted["data"]["service_default"], false);
    let audited: Vec<(String, Value)> =
        sqlx::query_as("SELECT action, after FROM audit_log WHERE target_type = 'tenant_models' ORDER BY created_at")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(audited.len(), 2);
    assert_eq!(audited[1].0, "tenant_models.promote");
    assert_eq!(
        audited[1].1,
        json!({ "default_model": scorecard, "shadow_model": gbdt })
    );
    // The next filing is answered by the promoted model, the former one scoring beside it.
    let answer = data(
        &app,
        "POST",
        &format!("/api/v1/companies/{}/predictions", companies[5]),
        &analyst,
        json!({ "type": "annual", "reporting_year": 2023, "statement": statement(5), "filing_id": "after-promotion" }),
    )
    .await;
    assert_eq!(answer["model"], scorecard);
    let shadow: String = sqlx::query_scalar(
        "SELECT p.model_name || '@' || p.model_version FROM predictions p JOIN filings f ON f.id = p.filing_id
         WHERE f.idempotency_key = 'after-promotion' AND p.is_shadow",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(shadow, gbdt);
    let (_, listed) = app
        .call("GET", &format!("/api/v1/tenants/{tenant}/models"), Some(&analyst), None)
        .await;
    assert_eq!(listed["data"][0]["model"], scorecard, "{listed:#}");
    assert_eq!(listed["data"][1]["prediction_type"], "quarterly");

    // Back to the service default, no challenger: nothing of the tenant's own is left.
    let (status, reset) = app
        .call(
            "PUT",
            &path,
            Some(&admin),
            Some(&json!({ "model": null, "challenger": null })),
        )
        .await;
    assert_eq!(status, 200, "{reset:#}");
    assert_eq!(
        reset["data"],
        json!({ "prediction_type": "annual", "model": gbdt, "service_default": true, "challenger": null })
    );
    let (status, _) = app.call("GET", "/api/v1/comparisons", Some(&analyst), None).await;
    assert_eq!(status, 422, "no challenger to compare with");
}
