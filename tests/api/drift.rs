//! Drift: a tenant's population moves away from the past window and from the training sample; the monitor's
//! PSIs are checked against an independent computation on the stored predictions, the drift alert reaches NATS
//! and the SSE stream once, and is resolved when the population comes back.

use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use pdscore::auth::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    helpers::{TestApp, base_settings, data, eventually, id, spawn_app_with},
    validation::statement,
};

const MODEL: &str = "annual/polish-gbdt@1";
const PER_WINDOW: i64 = 60;

/// `PER_WINDOW` filings of ten companies over six years each, from the statements `first..first + 10`.
async fn score(app: &TestApp, token: &str, organization: Uuid, tag: &str, first: i64, years: std::ops::Range<u16>) {
    for c in 0..10 {
        let company = id(&data(
            app,
            "POST",
            &format!("/api/v1/organizations/{organization}/companies"),
            token,
            json!({ "symbol": format!("DR{tag}{c}"), "name": format!("Drift {tag} {c}") }),
        )
        .await);
        for year in years.clone() {
            data(
                app,
                "POST",
                &format!("/api/v1/companies/{company}/predictions"),
                token,
                json!({ "type": "annual", "reporting_year": year, "statement": statement(first + c),
                        "model": MODEL, "filing_id": format!("dr-{tag}-{c}-{year}") }),
            )
            .await;
        }
    }
}

/// The bin of a value from first principles: how many edges are at or below it; missing last.
fn bin(edges: &[f64], value: Option<f64>) -> usize {
    match value {
        Some(v) => edges.iter().filter(|e| **e <= v).count(),
        None => edges.len() + 1,
    }
}

fn shares(edges: &[f64], values: &[Option<f64>]) -> Vec<f64> {
    let mut counts = vec![0.0; edges.len() + 2];
    for v in values {
        counts[bin(edges, *v)] += 1.0;
    }
    counts.iter().map(|c| c / values.len() as f64).collect()
}

/// Σ (a − e)·ln(a/e), shares floored at 1e-4.
fn psi(expected: &[f64], actual: &[f64]) -> f64 {
    expected
        .iter()
        .zip(actual)
        .map(|(e, a)| {
            let (e, a) = (e.max(1e-4), a.max(1e-4));
            (a - e) * (a / e).ln()
        })
        .sum()
}

/// Every stored answering prediction of the tenant: (created within the last day, PD, inputs).
async fn stored(app: &TestApp, tenant: Uuid) -> Vec<(bool, f64, Value)> {
    sqlx::query_as("SELECT created_at > now() - interval '1 day', probability, inputs FROM predictions WHERE tenant_id = $1 AND NOT is_shadow")
        .bind(tenant)
        .fetch_all(&app.db)
        .await
        .unwrap()
}

/// The model card's training profile.
fn training_profile() -> Value {
    let card = base_settings().models.dir.join("annual/polish-gbdt-v1.card.json");
    let card: Value = serde_json::from_slice(&std::fs::read(card).unwrap()).unwrap();
    card["training_profile"].clone()
}

/// Checks every series of the report against the PSI computed here from the stored rows.
fn check_against_first_principles(report: &Value, rows: &[(bool, f64, Value)]) {
    let profile = training_profile();
    let series = report["latest"]["series"].as_array().unwrap();
    assert_eq!(series.len(), 65, "the PD and the 64 features");
    for (measured, reference) in series.iter().zip(profile["series"].as_array().unwrap()) {
        let name = reference["name"].as_str().unwrap();
        assert_eq!(measured["name"], name);
        let edges: Vec<f64> = serde_json::from_value(reference["edges"].clone()).unwrap();
        let value = |pd: f64, inputs: &Value| if name == "pd" { Some(pd) } else { inputs[name].as_f64() };
        let values = |current: bool| -> Vec<Option<f64>> {
            rows.iter()
                .filter(|r| r.0 == current)
                .map(|(_, pd, inputs)| value(*pd, inputs))
                .collect()
        };
        let (now, before) = (shares(&edges, &values(true)), shares(&edges, &values(false)));
        let expected: Vec<f64> = serde_json::from_value(reference["expected"].clone()).unwrap();
        let close = |got: &Value, want: f64| (got.as_f64().unwrap() - want).abs() < 1e-9;
        assert!(
            close(&measured["psi_past"], psi(&before, &now)),
            "{name}: {measured} vs {}",
            psi(&before, &now)
        );
        assert!(
            close(&measured["psi_training"], psi(&expected, &now)),
            "{name}: {measured}"
        );
    }
}

#[actix_web::test]
async fn a_population_that_moves_raises_one_drift_alert_on_nats_and_sse_and_it_resolves_when_it_comes_back() {
    let app = spawn_app_with(|s| s.drift.min_rows = 50).await;
    let demo = app.demo().await;
    let (admin, tenant) = (demo.token(Role::TenantAdmin).to_owned(), demo.setup.tenant_id);
    let organization = demo.setup.organization_id;

    // Nothing measured yet: the report says so.
    let report = data(&app, "GET", "/api/v1/drift", &admin, Value::Null).await;
    assert_eq!(
        (report["model"].clone(), report["latest"].clone()),
        (Value::Null, Value::Null)
    );

    // Forty days ago: sound companies. Now: the same number of distressed ones.
    score(&app, &admin, organization, "P", 0, 2010..2016).await;
    sqlx::query("UPDATE predictions SET created_at = created_at - interval '40 days' WHERE tenant_id = $1")
        .bind(tenant)
        .execute(&app.db)
        .await
        .unwrap();
    score(&app, &admin, organization, "C", 20, 2016..2022).await;

    // Subscribers: NATS and the tenant admin's SSE stream.
    let client = async_nats::connect(pdscore_test_nats_url(&app)).await.unwrap();
    let namespace = app.settings.nats.namespace().unwrap();
    let mut nats = client
        .subscribe(namespace.drift_alerts(&demo.setup.tenant_slug))
        .await
        .unwrap();
    client.flush().await.unwrap();
    let mut sse = app
        .client
        .get(format!("{}/api/v1/alerts/stream", app.address))
        .bearer_auth(&admin)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);

    let pass = app.drift.pass(Utc::now()).await.unwrap();
    assert!(pass.snapshots >= 1 && pass.raised == 2, "{pass:?}");

    let report = data(
        &app,
        "GET",
        &format!("/api/v1/drift?model={MODEL}"),
        &admin,
        Value::Null,
    )
    .await;
    assert_eq!(report["model"], MODEL);
    assert_eq!(report["models"], json!([MODEL]));
    assert_eq!(
        (
            report["latest"]["current_rows"].as_i64(),
            report["latest"]["past_rows"].as_i64()
        ),
        (Some(PER_WINDOW), Some(PER_WINDOW))
    );
    assert!(report["training_sample"].as_str().unwrap().starts_with("5year.arff"));
    let rows = stored(&app, tenant).await;
    assert_eq!(rows.len() as i64, 2 * PER_WINDOW);
    check_against_first_principles(&report, &rows);
    let pd = &report["latest"]["series"][0];
    assert!(pd["psi_past"].as_f64().unwrap() > 0.25, "{pd}");
    assert_eq!(
        pd["bins"]["current"].as_array().unwrap().len(),
        pd["bins"]["edges"].as_array().unwrap().len() + 2
    );

    // One alert per reference, open, listing the PD among the series that moved.
    let alerts = report["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    let past = alerts.iter().find(|a| a["reference"] == "past").unwrap();
    assert!(past["resolved_at"].is_null() && !past["published_at"].is_null());
    assert!(past["series"].as_array().unwrap().iter().any(|s| s["name"] == "pd"));

    // Both alerts on NATS and on the SSE stream.
    let mut on_nats = Vec::new();
    for _ in 0..2 {
        let message = tokio::time::timeout(Duration::from_secs(10), nats.next())
            .await
            .unwrap()
            .unwrap();
        let alert: Value = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(
            (alert["kind"].as_str(), alert["model"].as_str()),
            (Some("drift"), Some(MODEL))
        );
        on_nats.push(alert["id"].as_str().unwrap().to_owned());
    }
    let ids: Vec<&str> = alerts.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert!(on_nats.iter().all(|id| ids.contains(&id.as_str())));
    let mut text = String::new();
    while text.matches("event: drift").count() < 2 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), sse.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        on_nats
            .iter()
            .all(|id| text.contains(&format!("id: {id}\nevent: drift"))),
        "{text}"
    );

    // A second pass: still drifted, no second alert.
    let again = app.drift.pass(Utc::now()).await.unwrap();
    assert_eq!((again.raised, again.resolved), (0, 0));

    // The gauges: the tenant's PSIs of the model.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let gauge = metrics
        .lines()
        .find(|l| {
            l.starts_with("pdscore_drift_psi{")
                && l.contains(&format!("tenant=\"{}\"", demo.setup.tenant_slug))
                && l.contains("reference=\"past\"")
                && l.contains("series=\"pd\"")
        })
        .unwrap_or_else(|| panic!("no PD gauge in {metrics}"));
    let value: f64 = gauge.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((value - pd["psi_past"].as_f64().unwrap()).abs() < 1e-9, "{gauge}");

    // The population comes back: the distressed companies' predictions are withdrawn and sound ones come
    // in. The alert against the past window is resolved.
    sqlx::query("DELETE FROM predictions WHERE tenant_id = $1 AND created_at > now() - interval '1 day'")
        .bind(tenant)
        .execute(&app.db)
        .await
        .unwrap();
    score(&app, &admin, organization, "R", 0, 2016..2022).await;
    let back = app.drift.pass(Utc::now()).await.unwrap();
    let report = data(&app, "GET", "/api/v1/drift", &admin, Value::Null).await;
    assert!(back.resolved >= 1, "{back:?}");
    check_against_first_principles(&report, &stored(&app, tenant).await);
    let past = report["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["reference"] == "past")
        .unwrap()
        .clone();
    assert!(!past["resolved_at"].is_null(), "{past}");
    // One snapshot per hour (two if the test ran across the hour).
    assert!((1..=2).contains(&report["history"].as_array().unwrap().len()));
}

fn pdscore_test_nats_url(app: &TestApp) -> String {
    use secrecy::ExposeSecret;
    app.settings.nats.url.expose_secret().to_owned()
}

#[actix_web::test]
async fn drift_is_for_the_accounts_that_see_the_whole_tenant_and_its_query_is_checked() {
    let app = spawn_app_with(|_| {}).await;
    let demo = app.demo().await;
    for role in [Role::OrgAdmin, Role::OrgMember, Role::User] {
        let (status, answer) = app.call("GET", "/api/v1/drift", Some(demo.token(role)), None).await;
        assert_eq!(status, 403, "{role:?}: {answer}");
    }
    let admin = demo.token(Role::TenantAdmin);
    for query in ["hours=0", "hours=100000", "model=nonsense", "week=1"] {
        let (status, answer) = app
            .call("GET", &format!("/api/v1/drift?{query}"), Some(admin), None)
            .await;
        assert_eq!(status, 422, "{query}: {answer}");
    }
}

#[actix_web::test]
async fn the_monitor_measures_on_its_own_every_few_seconds() {
    let app = spawn_app_with(|s| {
        s.drift.every_secs = 1;
        s.drift.min_rows = 10;
    })
    .await;
    let demo = app.demo().await;
    let admin = demo.token(Role::TenantAdmin).to_owned();
    score(&app, &admin, demo.setup.organization_id, "L", 0, 2020..2022).await;
    let report = eventually("a drift snapshot", Duration::from_secs(30), || async {
        let report = data(&app, "GET", "/api/v1/drift", &admin, Value::Null).await;
        (report["latest"]["current_rows"].as_i64() == Some(20)).then_some(report)
    })
    .await;
    assert_eq!(report["model"], MODEL);
    // The training reference is measured (20 rows ≥ 10); the past window is empty.
    let pd = &report["latest"]["series"][0];
    assert!(pd["psi_training"].is_f64() && pd["psi_past"].is_null(), "{pd}");
}

#[actix_web::test]
async fn a_tenant_measured_by_one_instance_is_skipped_by_the_others_for_half_an_interval() {
    // Every hour: the timer does not fire during the test, the passes below stand for two instances'.
    let app = spawn_app_with(|s| s.drift.every_secs = 3600).await;
    app.demo().await;
    let first = app.drift.pass(Utc::now()).await.unwrap();
    assert!(first.tenants >= 1, "{first:?}");
    let second = app.drift.pass(Utc::now()).await.unwrap();
    assert_eq!(second.tenants, 0, "{second:?}");
    // Half an interval later, it is due again.
    let later = app
        .drift
        .pass(Utc::now() + chrono::TimeDelta::minutes(31))
        .await
        .unwrap();
    assert_eq!(later.tenants, first.tenants, "{later:?}");
}
