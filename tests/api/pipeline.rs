//! The scoring pipeline end to end: HTTP and NATS ingest, bad input, alerts, supervision, fairness.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull};
use futures_util::StreamExt;
use pdscore::auth::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, eventually, spawn_app, spawn_app_with, tallied_and_counted};

/// Ratios of the annual AccuNode scorecard: PD 1.93 % (LOW under AccuNode's scheme) and 4.12 % (MEDIUM).
pub fn safe() -> Value {
    json!({ "long_term_debt_to_total_capital": 10, "total_debt_to_ebitda": 1.0, "net_income_margin": 10,
            "ebit_to_interest_expense": 10, "return_on_assets": 12 })
}
pub fn risky() -> Value {
    json!({ "long_term_debt_to_total_capital": 70, "total_debt_to_ebitda": 6, "net_income_margin": -1,
            "ebit_to_interest_expense": 1, "return_on_assets": -2 })
}

/// A filing message (schema 1).
pub fn message(filing_id: &str, symbol: &str, year: u16, ratios: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schema_version": 1, "filing_id": filing_id, "company_symbol": symbol,
        "reporting_year": year, "ratios": ratios
    }))
    .unwrap()
}

pub async fn publish(js: &jetstream::Context, subject: String, payload: Vec<u8>) {
    js.publish(subject, payload.into()).await.unwrap().await.unwrap();
}

/// The first `count` dead letters of the namespace (waiting up to 10 s for each), as (code, reason); each
/// names its original subject.
pub async fn dead_letters(
    js: &jetstream::Context,
    ns: &pdscore_nats::Namespace,
    count: usize,
) -> Vec<(String, String)> {
    let dead = js
        .get_stream(ns.stream_name("DEAD_LETTERS"))
        .await
        .unwrap()
        .create_consumer(pull::Config::default())
        .await
        .unwrap();
    // `batch` waits for the messages (`fetch` returns what is there already): dead letters are published while
    // ingest goes on with the next messages.
    let mut messages = dead
        .batch()
        .max_messages(count)
        .expires(Duration::from_secs(10))
        .messages()
        .await
        .unwrap();
    let mut letters = Vec::new();
    while letters.len() < count {
        let Some(Ok(m)) = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .unwrap()
        else {
            break;
        };
        let headers = m.headers.clone().unwrap();
        assert!(headers.get("Pdscore-Original-Subject").is_some());
        let reason = headers
            .get("Pdscore-Reason")
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default();
        assert!(!reason.is_empty());
        letters.push((headers.get("Pdscore-Reason-Code").unwrap().as_str().to_owned(), reason));
    }
    letters
}

pub async fn company_id(app: &TestApp, token: &str, symbol: &str) -> Uuid {
    let (_, list) = app
        .call("GET", &format!("/api/v1/companies?q={symbol}"), Some(token), None)
        .await;
    list["data"]["items"][0]["id"].as_str().unwrap().parse().unwrap()
}

async fn predictions_of(app: &TestApp, key: impl Into<String>) -> Option<Value> {
    let key = key.into();
    let id: Option<Uuid> = sqlx::query_scalar(
        "SELECT p.id FROM predictions p JOIN filings f ON f.tenant_id = p.tenant_id AND f.id = p.filing_id
         WHERE f.idempotency_key = $1 AND NOT p.is_shadow",
    )
    .bind(&key)
    .fetch_optional(&app.db)
    .await
    .unwrap();
    id.map(|id| json!(id))
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.db).await.unwrap()
}

/// A company created through the API in `organization` (as a tenant admin): its id.
async fn create_company(app: &TestApp, admin: &str, organization: &str, symbol: &str, name: &str) -> String {
    let path = format!("/api/v1/organizations/{organization}/companies");
    let (status, body) = app
        .call(
            "POST",
            &path,
            Some(admin),
            Some(&json!({ "symbol": symbol, "name": name })),
        )
        .await;
    assert_eq!(status, 201, "{body:#}");
    body["data"]["id"].as_str().unwrap().to_owned()
}

/// A second organization of the tenant, "Second book" (as a tenant admin): its id.
async fn second_organization(app: &TestApp, admin: &str, tenant: Uuid) -> String {
    let path = format!("/api/v1/tenants/{tenant}/organizations");
    let (status, body) = app
        .call("POST", &path, Some(admin), Some(&json!({ "name": "Second book" })))
        .await;
    assert_eq!(status, 201, "{body:#}");
    body["data"]["id"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn http_and_nats_paths_give_identical_predictions() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let token = demo.token(Role::OrgMember);
    let acme = company_id(&app, token, "ACME").await;
    let (js, ns) = app.jetstream().await;
    let statement = json!({ "total_assets": 1200.0, "total_liabilities": 700.0, "sales": 900.0, "ebit": 80.0,
                            "net_profit": 35.0, "interest_expense": 12.0, "depreciation": 20.0,
                            "long_term_liabilities": 300.0, "total_debt": 450.0, "equity": 500.0 });

    for (n, (kind, extra)) in [
        ("annual", json!({ "ratios": { "net_income_margin": "NM" } })),
        ("quarterly", json!({ "reporting_quarter": "Q2" })),
    ]
    .into_iter()
    .enumerate()
    {
        let mut body = json!({ "reporting_year": 2024, "statement": statement });
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let mut nats_body = body.clone();
        nats_body["schema_version"] = json!(1);
        nats_body["filing_id"] = json!(format!("nats-{n}"));
        nats_body["company_symbol"] = json!("acme");
        publish(
            &js,
            ns.filings(&demo.setup.tenant_slug, kind),
            serde_json::to_vec(&nats_body).unwrap(),
        )
        .await;
        body["type"] = json!(kind);
        body["filing_id"] = json!(format!("http-{n}"));
        let (status, http) = app
            .call(
                "POST",
                &format!("/api/v1/companies/{acme}/predictions"),
                Some(token),
                Some(&body),
            )
            .await;
        assert_eq!(status, 201, "{http:#}");

        let nats_id = eventually("the NATS filing's prediction", Duration::from_secs(20), || {
            predictions_of(&app, format!("nats-{n}"))
        })
        .await;
        let (_, nats) = app
            .call(
                "GET",
                &format!("/api/v1/predictions/{}", nats_id.as_str().unwrap()),
                Some(token),
                None,
            )
            .await;
        let (http, nats) = (&http["data"], &nats["data"]);
        assert_eq!(nats["source"], "nats");
        assert_eq!(http["source"], "http");
        for field in [
            "probability",
            "risk_level",
            "implied_rating",
            "confidence",
            "contributions",
            "inputs",
            "model",
            "term_structure",
            "period_year",
            "period_quarter",
            "prediction_type",
        ] {
            assert_eq!(http[field], nats[field], "{kind}: {field} differs");
        }
        assert!(http["probability"].as_f64().unwrap() > 0.0);
    }
}

#[actix_web::test]
async fn bad_filings_end_in_dead_letters_with_their_reason_and_nothing_is_lost() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let (js, ns) = app.jetstream().await;
    let tenant = demo.setup.tenant_slug.clone();
    let annual = ns.filings(&tenant, "annual");
    let cases: Vec<(&str, String, Vec<u8>)> =
        vec![
        ("INVALID_MESSAGE", annual.clone(), b"\x00\x9f\x92\x96 not json".to_vec()),
        ("UNSUPPORTED_SCHEMA_VERSION", annual.clone(), br#"{"schema_version":7,"company_symbol":"ACME"}"#.to_vec()),
        (
            "PAYLOAD_TOO_LARGE",
            annual.clone(),
            format!(r#"{{"schema_version":1,"pad":"{}"}}"#, "x".repeat(300_000)).into_bytes(),
        ),
        (
            "VALIDATION_ERROR",
            annual.clone(),
            br#"{"schema_version":1,"company_symbol":"ACME","reporting_year":2024,"statement":{"total_assets":"NaN"}}"#
                .to_vec(),
        ),
        (
            "VALIDATION_ERROR",
            annual.clone(),
            br#"{"schema_version":1,"company_symbol":"ACME","reporting_year":2024,"ratios":{"made_up":1}}"#.to_vec(),
        ),
        ("UNKNOWN_COMPANY", annual.clone(), message("m-1", "NOPE", 2024, safe())),
        ("UNKNOWN_TENANT", ns.filings("nobody", "annual"), message("m-2", "ACME", 2024, safe())),
        ("INVALID_SUBJECT", ns.subject(&format!("filings.{tenant}.monthly")), message("m-3", "ACME", 2024, safe())),
        // PostgreSQL cannot store U+0000: such a filing was Nak'ed forever, failing every batch it joined.
        ("CONTROL_CHARACTER", annual.clone(), message("p\u{0}1", "ACME", 2024, safe())),
        ("CONTROL_CHARACTER", annual.clone(), message("m-4", "AC\u{0}ME", 2024, safe())),
        (
            "CONTROL_CHARACTER",
            ns.filings(&tenant, "quarterly"),
            serde_json::to_vec(&json!({ "schema_version": 1, "filing_id": "m-5", "company_symbol": "ACME",
                "reporting_year": 2024, "reporting_quarter": "Q1\u{0}", "ratios": { "sga_margin": 9 } }))
            .unwrap(),
        ),
    ];
    for (_, subject, payload) in &cases {
        publish(&js, subject.clone(), payload.clone()).await;
    }
    // A good filing after the bad ones is scored: the consumer is not stuck.
    publish(&js, annual, message("good", "ACME", 2024, safe())).await;
    eventually("the good filing", Duration::from_secs(20), || {
        predictions_of(&app, "good")
    })
    .await;

    // Some may land after the good filing was scored.
    let mut codes: Vec<String> = dead_letters(&js, &ns, cases.len())
        .await
        .into_iter()
        .map(|(code, _)| code)
        .collect();
    let mut expected: Vec<String> = cases.iter().map(|(c, _, _)| c.to_string()).collect();
    expected.sort();
    codes.sort();
    assert_eq!(codes, expected);

    // Every message was answered: nothing waits for redelivery.
    let mut consumer: jetstream::consumer::Consumer<pull::Config> = js
        .get_stream(ns.stream_name("FILINGS"))
        .await
        .unwrap()
        .get_consumer("scoring")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = consumer.info().await.unwrap().clone();
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "messages left unanswered: {info:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let info = consumer.info().await.unwrap().clone();
    assert_eq!(info.num_redelivered, 0, "no bad message is delivered twice");
    assert_eq!(
        info.config.max_deliver,
        pdscore_nats::ingest::consumer_max_deliver(app.settings.pipeline.ingest_max_deliver),
        "deliveries are bounded"
    );
    assert_eq!(app.health().await.0, 200);
}

#[actix_web::test]
async fn companies_looked_up_together_are_each_found_unknown_or_ambiguous_as_alone() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let admin = demo.token(Role::TenantAdmin).to_owned();
    let tenant = demo.setup.tenant_id;
    // 40 companies of the demo organization, and ACME in a second organization too.
    let organization = demo.setup.organization_id.to_string();
    for i in 0..40 {
        create_company(
            &app,
            &admin,
            &organization,
            &format!("LK{i:02}"),
            &format!("Lookup {i}"),
        )
        .await;
    }
    let second = second_organization(&app, &admin, tenant).await;
    create_company(&app, &admin, &second, "ACME", "Acme (second book)").await;

    // All published at once, so that their lookups meet in the directory's queries: the 40, an unknown symbol,
    // ACME without an organization (in two) and ACME in each of its organizations.
    let (js, ns) = app.jetstream().await;
    let subject = ns.filings(&demo.setup.tenant_slug, "annual");
    let in_organization = |key: &str, organization: &str| {
        serde_json::to_vec(&json!({
            "schema_version": 1, "filing_id": key, "company_symbol": "ACME", "organization_id": organization,
            "reporting_year": 2024, "ratios": safe()
        }))
        .unwrap()
    };
    let mut payloads: Vec<Vec<u8>> = (0..40)
        .map(|i| message(&format!("lk-{i}"), &format!("LK{i:02}"), 2024, safe()))
        .collect();
    payloads.push(message("lk-unknown", "NOSUCH", 2024, safe()));
    payloads.push(message("lk-ambiguous", "ACME", 2024, safe()));
    payloads.push(in_organization("lk-acme-demo", &demo.setup.organization_id.to_string()));
    payloads.push(in_organization("lk-acme-second", &second));
    let acks =
        futures_util::future::join_all(payloads.into_iter().map(|p| js.publish(subject.clone(), p.into()))).await;
    for ack in acks {
        ack.unwrap().await.unwrap();
    }

    let mut letters: Vec<String> = dead_letters(&js, &ns, 2)
        .await
        .into_iter()
        .map(|(code, _)| code)
        .collect();
    letters.sort();
    assert_eq!(letters, ["AMBIGUOUS_COMPANY", "UNKNOWN_COMPANY"]);
    let scored = eventually("the 42 filings of found companies", Duration::from_secs(30), || async {
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT f.idempotency_key, c.symbol, c.organization_id::text FROM filings f
             JOIN companies c ON c.tenant_id = f.tenant_id AND c.id = f.company_id
             WHERE f.idempotency_key LIKE 'lk-%' ORDER BY f.idempotency_key",
        )
        .fetch_all(&app.db)
        .await
        .unwrap();
        (rows.len() >= 42).then_some(rows)
    })
    .await;
    assert_eq!(scored.len(), 42, "{scored:?}");
    for (key, symbol, organization) in &scored {
        match key.as_str() {
            "lk-acme-demo" => assert_eq!(
                (symbol.as_str(), organization.clone()),
                ("ACME", demo.setup.organization_id.to_string())
            ),
            "lk-acme-second" => assert_eq!((symbol.as_str(), organization.as_str()), ("ACME", second.as_str())),
            other => assert_eq!(
                format!("lk-{}", symbol.trim_start_matches("LK").parse::<u32>().unwrap()),
                *other
            ),
        }
    }
}

#[actix_web::test]
async fn bad_http_filings_get_a_4xx_with_a_stable_code() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let token = demo.token(Role::OrgMember);
    let acme = company_id(&app, token, "ACME").await;
    let path = format!("/api/v1/companies/{acme}/predictions");
    let cases = [
        (
            json!({ "type": "monthly", "reporting_year": 2024, "ratios": safe() }),
            422,
            "type",
        ),
        (
            json!({ "type": "annual", "reporting_year": "MMXXIV", "ratios": safe() }),
            422,
            "reporting_year",
        ),
        (
            json!({ "type": "quarterly", "reporting_year": 2024, "ratios": safe() }),
            422,
            "reporting_quarter",
        ),
        (json!({ "type": "annual", "reporting_year": 2024 }), 422, "statement"),
        (
            json!({ "type": "annual", "reporting_year": 2024, "statement": { "total_assets": "NaN" } }),
            422,
            "statement.total_assets",
        ),
        (
            json!({ "type": "annual", "reporting_year": 2024, "statement": { "total_assets": 1e300 } }),
            422,
            "statement.total_assets",
        ),
        (
            json!({ "type": "annual", "reporting_year": 2024, "ratios": { "made_up": 1 } }),
            422,
            "ratios.made_up",
        ),
        (
            json!({ "type": "annual", "reporting_year": 2024, "ratios": { "return_on_assets": [1] } }),
            422,
            "ratios.return_on_assets",
        ),
        (
            json!({ "type": "annual", "reporting_year": 2024, "ratios": safe(), "model": "annual/nope@1" }),
            422,
            "model",
        ),
        (
            json!({ "type": "annual", "reporting_year": 2024, "ratios": safe(), "model": "quarterly/accunode-scorecard@1" }),
            422,
            "model",
        ),
        (
            json!({ "type": "annual", "reporting_year": 2024, "ratios": safe(), "surprise": true }),
            422,
            "",
        ),
    ];
    for (body, status, field) in cases {
        let (got, answer) = app.call("POST", &path, Some(token), Some(&body)).await;
        assert_eq!(got, status, "{body}: {answer:#}");
        assert_eq!(answer["error"]["code"], "VALIDATION_ERROR", "{body}: {answer:#}");
        if !field.is_empty() {
            assert_eq!(answer["error"]["details"]["field"], field, "{body}: {answer:#}");
        }
    }
    let huge = json!({ "type": "annual", "reporting_year": 2024, "ratios": safe(), "filing_id": "x".repeat(2 << 20) });
    assert_eq!(app.call("POST", &path, Some(token), Some(&huge)).await.0, 413);
    let garbage = app
        .client
        .post(format!("{}{path}", app.address))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(vec![0xff, 0x00, 0x12])
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
    let unknown = format!("/api/v1/companies/{}/predictions", Uuid::now_v7());
    let (status, answer) = app
        .call(
            "POST",
            &unknown,
            Some(token),
            Some(&json!({ "type": "annual", "reporting_year": 2024, "ratios": safe() })),
        )
        .await;
    assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("NOT_FOUND")));
    assert_eq!(
        count(&app, "SELECT count(*) FROM filings").await,
        0,
        "refused filings leave nothing behind"
    );

    // AccuNode's endpoint: the same company and period twice is a conflict; the first answer stands.
    let body = json!({ "company_symbol": "ACME", "company_name": "Acme", "reporting_year": "2024",
                       "reporting_quarter": "Q4", "long_term_debt_to_total_capital": "N/A", "return_on_assets": 4.2 });
    let (first, created) = app
        .call("POST", "/api/v1/predictions/annual", Some(token), Some(&body))
        .await;
    assert_eq!(first, 201, "{created:#}");
    assert_eq!(created["data"]["company_symbol"], "ACME");
    let (again, conflict) = app
        .call("POST", "/api/v1/predictions/annual", Some(token), Some(&body))
        .await;
    assert_eq!((again, conflict["error"]["code"].as_str()), (409, Some("CONFLICT")));
    assert_eq!(conflict["error"]["details"]["prediction_id"], created["data"]["id"]);
    let (status, answer) = app
        .call(
            "POST",
            "/api/v1/predictions/quarterly",
            Some(token),
            Some(&json!({
            "company_symbol": "NEWCO", "company_name": "New Co", "reporting_year": 2024, "sga_margin": "x" })),
        )
        .await;
    assert_eq!(
        (status, answer["error"]["details"]["field"].as_str()),
        (422, Some("reporting_quarter"))
    );
}

#[actix_web::test]
async fn the_same_filing_twice_is_scored_once() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let token = demo.token(Role::OrgMember);
    let acme = company_id(&app, token, "ACME").await;
    let path = format!("/api/v1/companies/{acme}/predictions");
    let body = json!({ "type": "annual", "reporting_year": 2024, "ratios": risky(), "filing_id": "same" });
    let (first, a) = app.call("POST", &path, Some(token), Some(&body)).await;
    let (second, b) = app.call("POST", &path, Some(token), Some(&body)).await;
    assert_eq!((first, second), (201, 200));
    assert_eq!(a["data"]["id"], b["data"]["id"]);
    // A feed's keys are its own: the same key over NATS is another filing, scored once however often sent.
    let (js, ns) = app.jetstream().await;
    for (key, year) in [("same", 2024), ("same", 2024), ("after", 2025)] {
        publish(
            &js,
            ns.filings(&demo.setup.tenant_slug, "annual"),
            message(key, "ACME", year, risky()),
        )
        .await;
    }
    eventually("the later filing", Duration::from_secs(20), || {
        predictions_of(&app, "after")
    })
    .await;
    let by_source: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT f.source::text, f.idempotency_key, count(*) FROM predictions p
         JOIN filings f ON f.tenant_id = p.tenant_id AND f.id = p.filing_id
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        by_source,
        [
            ("http".to_owned(), "same".to_owned(), 1),
            ("nats".to_owned(), "after".to_owned(), 1),
            ("nats".to_owned(), "same".to_owned(), 1)
        ]
    );
}

#[actix_web::test]
async fn subscribers_get_exactly_one_alert_per_risk_change() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let admin = demo.token(Role::TenantAdmin).to_owned();
    let tenant_id = demo.setup.tenant_id;
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/api/v1/tenants/{tenant_id}"),
            Some(&admin),
            Some(&json!({ "risk_thresholds": { "scheme": "accunode" } })),
        )
        .await;
    assert_eq!(status, 200);
    let (js, ns) = app.jetstream().await;

    // Subscribers: NATS (the ALERTS stream) and SSE, as the organization admin and as a user of another
    // company (who must see nothing).
    let alerts_stream = js.get_stream(ns.stream_name("ALERTS")).await.unwrap();
    let sse = app
        .client
        .get(format!("{}/api/v1/alerts/stream", app.address))
        .bearer_auth(demo.token(Role::OrgAdmin))
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    let mut sse = sse;

    let subject = ns.filings(&demo.setup.tenant_slug, "annual");
    let script = [
        ("f2019", 2019, safe()),
        ("f2020", 2020, safe()),
        ("f2021", 2021, risky()), // LOW → MEDIUM: alert
        ("f2022", 2022, risky()),
        ("f2023", 2023, safe()),  // MEDIUM → LOW: alert
        ("f2018", 2018, risky()), // late, for an earlier period: no alert
        ("f2021", 2021, risky()), // redelivered: no alert
    ];
    for (key, year, ratios) in script {
        publish(&js, subject.clone(), message(key, "GLOBEX", year, ratios)).await;
        eventually(key, Duration::from_secs(20), || predictions_of(&app, key)).await;
    }
    let (_, stored) = app.call("GET", "/api/v1/alerts", Some(&admin), None).await;
    let stored = stored["data"]["items"].as_array().unwrap().clone();
    assert_eq!(stored.len(), 2, "{stored:#?}");
    assert_eq!(
        (
            stored[1]["period_year"].as_i64(),
            stored[1]["new_level"].as_str(),
            stored[1]["reason"].as_str()
        ),
        (Some(2021), Some("medium"), Some("level_changed"))
    );
    assert_eq!(
        (stored[0]["period_year"].as_i64(), stored[0]["new_level"].as_str()),
        (Some(2023), Some("low"))
    );

    let mut nats_alerts = Vec::new();
    let consumer = alerts_stream.create_consumer(pull::Config::default()).await.unwrap();
    // The two alerts, waited for (they are published after the commit is answered), then whatever else is
    // there already: nothing.
    let mut received = Vec::new();
    let mut expected = consumer
        .batch()
        .max_messages(2)
        .expires(Duration::from_secs(10))
        .messages()
        .await
        .unwrap();
    while let Some(Ok(m)) = expected.next().await {
        received.push(m);
    }
    let mut more = consumer.fetch().max_messages(10).messages().await.unwrap();
    while let Some(Ok(m)) = more.next().await {
        received.push(m);
    }
    for m in received {
        let alert: Value = serde_json::from_slice(&m.payload).unwrap();
        nats_alerts.push(alert["period_year"].as_i64().unwrap());
        assert!(
            m.subject
                .starts_with(&ns.subject(&format!("alerts.{}.", demo.setup.tenant_slug)))
        );
    }
    assert_eq!(nats_alerts, vec![2021, 2023]);
    // The stream acknowledged both: they are marked published (with the marks of their second), and the
    // outbox leaves them alone.
    eventually("the alerts marked published", Duration::from_secs(20), || async {
        let unmarked: i64 =
            sqlx::query_scalar("SELECT count(*) FROM alerts WHERE tenant_id = $1 AND published_at IS NULL")
                .bind(tenant_id)
                .fetch_one(&app.db)
                .await
                .unwrap();
        (unmarked == 0).then_some(())
    })
    .await;

    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while text.matches("event: alert").count() < 2 && Instant::now() < deadline {
        if let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_secs(1), sse.chunk()).await {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    // Nothing more arrives.
    if let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_secs(2), sse.chunk()).await {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(text.matches("event: alert").count(), 2, "{text}");
    assert!(text.contains("\"period_year\":2021") && text.contains("\"period_year\":2023"));

    // The `user` account sees only ACME (assigned); GLOBEX's alerts are not theirs.
    let (_, mine) = app
        .call("GET", "/api/v1/alerts", Some(demo.token(Role::User)), None)
        .await;
    assert_eq!(mine["data"]["items"], json!([]));
}

#[actix_web::test]
async fn failed_actors_are_restarted_and_their_filings_still_scored() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let token = demo.token(Role::OrgMember).to_owned();
    let acme = company_id(&app, &token, "ACME").await;
    app.pipeline.faults().fail_tenant_actors(2);
    app.pipeline.faults().fail_model_workers(2);

    let requests = (0..40).map(|i| {
        let (app, token) = (&app, token.clone());
        async move {
            let body = json!({ "type": "annual", "reporting_year": 1990 + i, "ratios": safe() });
            app.call(
                "POST",
                &format!("/api/v1/companies/{acme}/predictions"),
                Some(&token),
                Some(&body),
            )
            .await
            .0
        }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    assert_eq!(count(&app, "SELECT count(*) FROM predictions").await, 40);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for restarted in [
        "pdscore_tenant_actor_restarts_total 2",
        "pdscore_model_worker_restarts_total 2",
    ] {
        assert!(metrics.contains(restarted), "{restarted} missing");
    }
}

/// p99 of a tenant's sequential HTTP predictions, in seconds.
/// B's latency samples per phase of the fairness test (its p99 is the third-slowest).
/// Scores `n` filings of tenant B's company over HTTP, one after the other; each must be committed (201).
async fn score_b(app: &TestApp, token: &str, company: Uuid, n: usize, year: &mut i32) {
    for _ in 0..n {
        *year += 1;
        let body = json!({ "type": "annual", "reporting_year": 1900 + (*year % 300), "ratios": safe(),
                           "filing_id": format!("b-{year}") });
        let (status, answer) = app
            .call(
                "POST",
                &format!("/api/v1/companies/{company}/predictions"),
                Some(token),
                Some(&body),
            )
            .await;
        assert_eq!(status, 201, "B's filing {year} while A floods: {answer:#}");
    }
}

/// Fairness as properties, not latencies (those are the benchmark's): while A publishes at 10× its limit, A is
/// admitted no faster than its token bucket allows, every one of B's filings is committed at its first try
/// (never refused, never failed), B is never rate limited, and A's excess is delayed, not lost.
#[actix_web::test]
async fn a_flooding_tenant_is_held_to_its_limit_without_refusing_another_or_losing_filings() {
    let app = spawn_app_with(|s| s.auth.login_attempts_per_address = 1000).await;
    let demo = app.demo().await;
    let sa = demo.token(Role::SuperAdmin).to_owned();
    // Tenant A (demo) may score 100 filings/s; tenant B is another tenant with the default limit.
    let (rate, burst) = (100_u32, 100_u32);
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/api/v1/tenants/{}", demo.setup.tenant_id),
            Some(&sa),
            Some(&json!({ "rate_limit_per_second": rate, "rate_limit_burst": burst })),
        )
        .await;
    assert_eq!(status, 200);
    let tenant_b = app.second_tenant(&sa, "BCO").await;
    let (tb, b_company) = (tenant_b.admin_token, tenant_b.company_id);
    let mut year = 0;

    // A publishes 5,500 filings at 1,000/s from a thread of its own, as a separate publisher would, while B keeps
    // scoring over HTTP.
    let ns = app.settings.nats.namespace().unwrap();
    let subject = ns.filings(&demo.setup.tenant_slug, "annual");
    let url = secrecy::ExposeSecret::expose_secret(&app.settings.nats.url).to_owned();
    let flood_started = Instant::now();
    let flood = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let js = jetstream::new(async_nats::connect(url).await.unwrap());
                let started = Instant::now();
                for i in 0..5500u32 {
                    let payload = message(&format!("a-{i}"), "ACME", 1900 + (i % 300) as u16, safe());
                    js.publish(subject.clone(), payload.into())
                        .await
                        .unwrap()
                        .await
                        .unwrap();
                    let due = Duration::from_micros(u64::from(i) * 1_000);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        tokio::time::sleep(wait).await;
                    }
                }
            })
    });
    score_b(&app, &tb, b_company, 200, &mut year).await;
    // What A got through while B scored: at most its bucket's burst plus its rate over the time elapsed
    // (a slower machine admits less, never more).
    let a_committed = count(&app, "SELECT count(*) FROM filings WHERE idempotency_key LIKE 'a-%'").await;
    let allowed = f64::from(burst) + f64::from(rate) * flood_started.elapsed().as_secs_f64();
    assert!(
        (a_committed as f64) <= allowed,
        "A committed {a_committed} filings; its bucket allows {allowed:.0}"
    );
    flood.join().unwrap();
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("pdscore_rate_limited_total") && l.contains("tenant=\"tenant-b\"")),
        "B was never rate limited"
    );

    // A's excess was delayed (Nak with delay), not lost: every filing is scored, once.
    let scored = eventually("all of A's filings", Duration::from_secs(120), || async {
        let n = count(&app, "SELECT count(*) FROM filings WHERE idempotency_key LIKE 'a-%'").await;
        (n == 5500).then_some(n)
    })
    .await;
    assert_eq!(scored, 5500);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(&format!(
            "pdscore_rate_limited_total{{source=\"nats\",tenant=\"{}\"}}",
            demo.setup.tenant_slug
        )) || metrics.contains(&format!(
            "pdscore_rate_limited_total{{tenant=\"{}\",source=\"nats\"}}",
            demo.setup.tenant_slug
        )),
        "A was rate limited"
    );

    // Over HTTP, A's excess gets 429 with Retry-After.
    let token = demo.token(Role::OrgMember).to_owned();
    let acme = company_id(&app, &token, "ACME").await;
    let burst = (0..300).map(|i| {
        let (app, token) = (&app, token.clone());
        async move {
            let body = json!({ "type": "annual", "reporting_year": 1900 + i % 300, "ratios": safe() });
            app.send(
                "POST",
                &format!("/api/v1/companies/{acme}/predictions"),
                Some(&token),
                Some(&body),
            )
            .await
        }
    });
    let answers = futures_util::future::join_all(burst).await;
    let limited: Vec<_> = answers.iter().filter(|r| r.status() == 429).collect();
    assert!(!limited.is_empty());
    assert!(limited.iter().all(|r| r.headers().get("retry-after").is_some()));
}

/// The AccuNode routes keep the companies they find by symbol for a few seconds: a rename or a deletion
/// through the API is followed at once, and the kept company never serves another tenant's request.
#[actix_web::test]
async fn accunode_symbols_follow_renames_and_deletions_and_stay_in_their_tenant() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let token = demo.token(Role::OrgMember);
    let score = |year: u16, organization: Option<Uuid>| {
        let mut body = json!({ "company_symbol": "KEPT", "company_name": "Kept Co", "reporting_year": year,
                               "return_on_assets": 4.2 });
        if let Some(id) = organization {
            body["organization_id"] = json!(id);
        }
        body
    };
    let company_of = |answer: &Value| -> Uuid { answer["data"]["company_id"].as_str().unwrap().parse().unwrap() };

    let (status, first) = app
        .call(
            "POST",
            "/api/v1/predictions/annual",
            Some(token),
            Some(&score(2020, None)),
        )
        .await;
    assert_eq!(status, 201, "{first:#}");
    let kept = company_of(&first);
    let (status, again) = app
        .call(
            "POST",
            "/api/v1/predictions/annual",
            Some(token),
            Some(&score(2021, None)),
        )
        .await;
    assert_eq!((status, company_of(&again)), (201, kept));

    // Renamed: the symbol names a new company.
    let path = format!("/api/v1/companies/{kept}");
    let (status, renamed) = app
        .call("PATCH", &path, Some(token), Some(&json!({ "symbol": "RENAMED" })))
        .await;
    assert_eq!(status, 200, "{renamed:#}");
    let (status, after_rename) = app
        .call(
            "POST",
            "/api/v1/predictions/annual",
            Some(token),
            Some(&score(2022, None)),
        )
        .await;
    assert_eq!(status, 201, "{after_rename:#}");
    let second = company_of(&after_rename);
    assert_ne!(second, kept, "the renamed company kept the old symbol");
    assert_eq!(after_rename["data"]["company_symbol"], "KEPT");

    // Deleted: the symbol names a new company again.
    let (status, _) = app
        .call("DELETE", &format!("/api/v1/companies/{second}"), Some(token), None)
        .await;
    assert_eq!(status, 200);
    let (status, after_delete) = app
        .call(
            "POST",
            "/api/v1/predictions/annual",
            Some(token),
            Some(&score(2023, None)),
        )
        .await;
    assert_eq!(status, 201, "{after_delete:#}");
    assert!(![kept, second].contains(&company_of(&after_delete)));
    // The deleted company's filings and predictions went with it.
    for table in ["filings", "predictions"] {
        let sql = format!("SELECT count(*) FROM {table} WHERE company_id = '{second}'");
        assert_eq!(count(&app, &sql).await, 0, "{table} of a deleted company");
    }

    // Another tenant naming the demo organization finds neither it nor its kept company.
    let sa = demo.token(Role::SuperAdmin).to_owned();
    let tenant_b = app.second_tenant(&sa, "BCO").await;
    let (status, refused) = app
        .call(
            "POST",
            "/api/v1/predictions/annual",
            Some(&tenant_b.admin_token),
            Some(&score(2024, Some(demo.setup.organization_id))),
        )
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (404, Some("NOT_FOUND")),
        "{refused:#}"
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM predictions WHERE period_year = 2024").await,
        0
    );
}

/// A company the AccuNode route has not seen is created by its filing's transaction. Eight requests for the
/// same new company and year at once: one company, one prediction (201), the others answered as that
/// prediction (409), whichever request's transaction created the company.
#[actix_web::test]
async fn a_new_company_is_created_once_with_its_first_filing() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let token = demo.token(Role::OrgMember).to_owned();
    let body = json!({ "company_symbol": "FRESH", "company_name": "Fresh Co", "sector": "Energy",
                       "market_cap": 5.0e8, "reporting_year": 2024, "return_on_assets": 4.2 });
    let requests = (0..8).map(|_| app.call("POST", "/api/v1/predictions/annual", Some(&token), Some(&body)));
    let answers = futures_util::future::join_all(requests).await;
    let mut statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409], "{answers:#?}");
    let created = answers.iter().find(|(status, _)| *status == 201).unwrap();
    let company = created.1["data"]["company_id"].as_str().unwrap().to_owned();
    let prediction = created.1["data"]["id"].clone();
    for (_, answer) in answers.iter().filter(|(status, _)| *status == 409) {
        assert_eq!(answer["error"]["details"]["prediction_id"], prediction, "{answer:#}");
    }
    let (companies, name, sector, created_by_member): (i64, String, Option<String>, bool) = sqlx::query_as(
        "SELECT count(*) OVER (), name, sector, created_by IS NOT NULL FROM companies WHERE symbol = 'FRESH'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        (companies, name.as_str(), sector.as_deref(), created_by_member),
        (1, "Fresh Co", Some("Energy"), true)
    );
    let sql = format!("SELECT count(*) FROM predictions WHERE company_id = '{company}'");
    assert_eq!(count(&app, &sql).await, 1);
    // The portfolio counts it, with its risk.
    let (status, portfolio) = app.call("GET", "/api/v1/portfolio?q=FRESH", Some(&token), None).await;
    assert_eq!(status, 200, "{portfolio:#}");
    assert_eq!(portfolio["data"]["items"][0]["latest"]["prediction_id"], prediction);
}

/// AccuNode requests sent at once look their companies up together (with scopes of two roles in one round):
/// each finds its own company as it would alone, a new symbol is created once, and a company of another
/// organization stays invisible to a member of the first.
#[actix_web::test]
async fn accunode_requests_at_once_find_their_companies_as_alone() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let admin = demo.token(Role::TenantAdmin).to_owned();
    let member = demo.token(Role::OrgMember).to_owned();
    let tenant = demo.setup.tenant_id;
    let organization = demo.setup.organization_id;
    let mut known = Vec::new();
    for i in 0..30 {
        known.push(
            create_company(
                &app,
                &admin,
                &organization.to_string(),
                &format!("AT{i:02}"),
                &format!("At once {i}"),
            )
            .await,
        );
    }
    let second = second_organization(&app, &admin, tenant).await;
    let other = create_company(&app, &admin, &second, "OTHER", "Other book's company").await;
    let before: i64 = count(&app, "SELECT count(*) FROM companies").await;

    let filing = |symbol: &str, organization: Option<&str>| {
        let mut body = json!({ "company_symbol": symbol, "company_name": format!("Company {symbol}"),
                               "reporting_year": 2024, "return_on_assets": 4.2 });
        if let Some(organization) = organization {
            body["organization_id"] = json!(organization);
        }
        body
    };
    let mut requests: Vec<(&str, Value)> = (0..30)
        .map(|i| (member.as_str(), filing(&format!("AT{i:02}"), None)))
        .collect();
    requests.extend((0..10).map(|i| (member.as_str(), filing(&format!("NEW{i:02}"), None))));
    requests.push((member.as_str(), filing("OTHER", Some(&second))));
    requests.push((admin.as_str(), filing("OTHER", Some(&second))));
    let answers = futures_util::future::join_all(
        requests
            .iter()
            .map(|(token, body)| app.call("POST", "/api/v1/predictions/annual", Some(*token), Some(body))),
    )
    .await;

    for (i, (status, answer)) in answers[..30].iter().enumerate() {
        assert_eq!(*status, 201, "AT{i:02}: {answer:#}");
        assert_eq!(answer["data"]["company_id"], json!(known[i]), "AT{i:02}: {answer:#}");
    }
    for (i, (status, answer)) in answers[30..40].iter().enumerate() {
        assert_eq!(*status, 201, "NEW{i:02}: {answer:#}");
    }
    let (status, answer) = &answers[40];
    assert_eq!(
        *status, 404,
        "a member does not see another organization's company: {answer:#}"
    );
    let (status, answer) = &answers[41];
    assert_eq!(*status, 201, "{answer:#}");
    assert_eq!(answer["data"]["company_id"], json!(other), "{answer:#}");
    // Only the ten new symbols were created, each once.
    assert_eq!(count(&app, "SELECT count(*) FROM companies").await, before + 10);
    let created = "SELECT count(DISTINCT symbol) FROM companies WHERE symbol LIKE 'NEW%'";
    assert_eq!(count(&app, created).await, 10);
}

/// A tenant filing for new companies grows `companies` by one per filing: the store has it analyzed as it grows
/// (every 1,000 companies created, if it has doubled), not only every 20,000 filings — else the plans of the
/// lookups by symbol stay those of a table of a few rows while it grows (sequential scans).
#[actix_web::test]
async fn companies_created_with_their_filings_are_analyzed_as_they_grow() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let token = demo.token(Role::OrgMember).to_owned();
    // 1,120 filings at once, beyond the tenant's default rate limit: lifted before its first filing.
    sqlx::query("UPDATE tenants SET rate_limit_per_second = 100000, rate_limit_burst = 100000 WHERE id = $1")
        .bind(demo.setup.tenant_id)
        .execute(&app.db)
        .await
        .unwrap();
    let analyzed = "SELECT reltuples::int8 FROM pg_class WHERE oid = 'companies'::regclass";
    assert!(count(&app, analyzed).await < 1_000);
    let (client, token) = (&app, token.as_str());
    for chunk in 0..70 {
        let requests = (0..16).map(|i| {
            let symbol = format!("GROW{chunk:02}X{i:02}");
            let body = json!({ "company_symbol": symbol, "company_name": format!("Growing {symbol}"),
                               "reporting_year": 2024, "return_on_assets": 4.2 });
            async move {
                client
                    .call("POST", "/api/v1/predictions/annual", Some(token), Some(&body))
                    .await
            }
        });
        for (status, answer) in futures_util::future::join_all(requests).await {
            assert_eq!(status, 201, "{answer:#}");
        }
    }
    // 1,120 created: the store's check after the 1,000th found no statistics (or a table doubled) and analyzed.
    eventually("companies analyzed", Duration::from_secs(30), || async {
        (count(&app, analyzed).await >= 1_000).then_some(())
    })
    .await;
}

/// The store's commit on its own, with one batch holding each case a filing can be in: new, its key twice in
/// the batch, a key committed before, a company gone, an earlier period than the company's latest, and two
/// risk changes in a row (the second one's previous prediction is the first, from the same batch).
#[actix_web::test]
async fn one_commit_answers_each_filing_of_its_batch_by_its_case() {
    use pdscore_actors::{Committed, Filing, PredictionStore, ports::CommitResult, scoring};

    let app = spawn_app().await;
    let demo = app.demo().await;
    let acme = company_id(&app, demo.token(Role::OrgMember), "ACME").await;
    let globex = company_id(&app, demo.token(Role::OrgMember), "GLOBEX").await;
    let (tenant_id, organization_id): (Uuid, Uuid) =
        sqlx::query_as("SELECT tenant_id, organization_id FROM companies WHERE id = $1")
            .bind(acme)
            .fetch_one(&app.db)
            .await
            .unwrap();
    let store = pdscore::db::predictions::PgPredictionStore::new(
        app.db.clone(),
        std::sync::Arc::new(app.settings.pipeline.clone()),
        std::sync::Arc::new(app.settings.pipeline.default_models()),
    );
    let policy = store.tenant_policy(tenant_id).await.unwrap().unwrap();
    let registry = pdscore::pipeline::load_registry(&app.settings).unwrap();
    let prefix = &app.settings.nats.prefix;
    let subject = pdscore_nats::Namespace::parse(prefix)
        .unwrap()
        .filings(&demo.setup.tenant_slug, "annual");
    let filing = |key: &str, company: Uuid, year: u16, ratios: Value| -> Filing {
        pdscore_nats::message::decode(prefix, &subject, &message(key, "ACME", year, ratios))
            .ok()
            .unwrap()
            .into_filing(tenant_id, organization_id, company, key.to_owned())
    };
    let commit = |filings: Vec<Filing>| {
        let scores = scoring::score_rows(&registry, &policy, &filings);
        let scored = scoring::attach(&policy, filings, scores)
            .into_iter()
            .map(|s| s.ok().unwrap())
            .collect();
        store.commit(std::sync::Arc::new(scored))
    };
    let created = |result: &CommitResult| match result {
        CommitResult::Committed(c) => match &**c {
            Committed::Created { prediction_id, stored } => (*prediction_id, stored.alert.clone()),
            Committed::Duplicate { .. } => panic!("a duplicate, not a new prediction"),
        },
        other => panic!("{other:?}, not a new prediction"),
    };
    let duplicate = |result: &CommitResult| match result {
        CommitResult::Committed(c) => match &**c {
            Committed::Duplicate { prediction_id } => *prediction_id,
            Committed::Created { .. } => panic!("a new prediction, not a duplicate"),
        },
        other => panic!("{other:?}, not a duplicate"),
    };

    let first = commit(vec![filing("y2023", acme, 2023, safe())]).await.unwrap();
    let (p2023, alert) = created(&first[0]);
    assert!(alert.is_none(), "a company's first prediction is no change");

    let results = commit(vec![
        filing("y2024", acme, 2024, risky()),
        filing("y2024", acme, 2024, risky()),
        filing("y2023", acme, 2023, safe()),
        filing("gone", Uuid::now_v7(), 2024, safe()),
        filing("y2022", acme, 2022, risky()),
        filing("y2025", acme, 2025, safe()),
        filing("y2023", acme, 2023, risky()),
        filing("y2024", globex, 2024, risky()),
    ])
    .await
    .unwrap();
    assert_eq!(results.len(), 8);
    let (p2024, alert) = created(&results[0]);
    let alert = alert.expect("LOW to MEDIUM is a risk change");
    assert_eq!(
        (
            alert.previous_prediction_id,
            alert.organization_id,
            alert.company_symbol.as_str()
        ),
        (Some(p2023), organization_id, "ACME")
    );
    assert_eq!(duplicate(&results[1]), p2024, "the key twice in one batch");
    assert_eq!(duplicate(&results[2]), p2023, "a key committed before");
    assert!(matches!(results[3], CommitResult::CompanyGone));
    let (_, alert) = created(&results[4]);
    assert!(alert.is_none(), "an earlier period does not change the current risk");
    let (p2025, alert) = created(&results[5]);
    assert_eq!(alert.expect("MEDIUM back to LOW").previous_prediction_id, Some(p2024));
    // A key names one filing: another content or another company under it is not a redelivery.
    assert_eq!(
        results[6],
        CommitResult::KeyReused("y2023".into()),
        "same key, other content"
    );
    assert_eq!(
        results[7],
        CommitResult::KeyReused("y2024".into()),
        "same key, other company"
    );

    assert_eq!(count(&app, "SELECT count(*) FROM filings").await, 4);
    let stored: Vec<(Uuid, Uuid)> =
        sqlx::query_as("SELECT id, organization_id FROM predictions WHERE NOT is_shadow ORDER BY period_year")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let p2022 = stored[0].0;
    assert_eq!(stored, [p2022, p2023, p2024, p2025].map(|id| (id, organization_id)));
    let alerts: Vec<(Uuid, Option<Uuid>)> =
        sqlx::query_as("SELECT prediction_id, previous_prediction_id FROM alerts ORDER BY period_year")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(alerts, [(p2024, Some(p2023)), (p2025, Some(p2024))]);

    // Companies new with their filings are created by the batch's write: the second filing of one sees the first
    // as its previous prediction (its alert names the tenant); one whose symbol is taken, or whose organization
    // does not exist, is not created, and its filing is answered as its company gone; one whose filing reuses a
    // key is created without a risk.
    let new = |key: &str, company: Uuid, year: u16, ratios: Value, symbol: &str| {
        let mut filing = filing(key, company, year, ratios);
        filing.new_company = Some(std::sync::Arc::new(pdscore_actors::NewCompany {
            symbol: symbol.to_owned(),
            name: format!("{symbol} Co"),
            sector: None,
            market_cap: None,
            created_by: None,
        }));
        filing
    };
    let (fresh, keyed) = (Uuid::now_v7(), Uuid::now_v7());
    let mut orphan = new("orphan", Uuid::now_v7(), 2024, safe(), "ORPHAN");
    orphan.organization_id = Uuid::now_v7();
    let results = commit(vec![
        new("fresh-2023", fresh, 2023, safe(), "FRESH"),
        new("fresh-2024", fresh, 2024, risky(), "FRESH"),
        new("taken", Uuid::now_v7(), 2024, safe(), "ACME"),
        orphan,
        new("y2023", keyed, 2023, safe(), "KEYED"),
    ])
    .await
    .unwrap();
    let (fresh_2023, alert) = created(&results[0]);
    assert!(alert.is_none(), "a new company's first prediction is no change");
    let (fresh_2024, alert) = created(&results[1]);
    let alert = alert.expect("a risk change in the batch that created the company");
    assert_eq!(
        (
            alert.tenant_slug.as_str(),
            alert.company_symbol.as_str(),
            alert.company_id,
            alert.previous_prediction_id
        ),
        (demo.setup.tenant_slug.as_str(), "FRESH", fresh, Some(fresh_2023))
    );
    assert!(matches!(results[2], CommitResult::CompanyGone), "{:?}", results[2]);
    assert!(matches!(results[3], CommitResult::CompanyGone), "{:?}", results[3]);
    assert_eq!(results[4], CommitResult::KeyReused("y2023".into()));
    let created_companies: Vec<(Uuid, String, Option<Uuid>, Option<String>)> = sqlx::query_as(
        "SELECT c.id, c.symbol, (r.risk -> 'annual' -> 'latest' ->> 'id')::uuid, r.level::text
         FROM companies c JOIN company_risk r ON r.tenant_id = c.tenant_id AND r.company_id = c.id
         WHERE c.symbol IN ('FRESH', 'ORPHAN', 'KEYED') OR c.id = $1
         ORDER BY c.symbol",
    )
    .bind(fresh)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        created_companies,
        [
            (
                fresh,
                "FRESH".to_owned(),
                Some(fresh_2024),
                Some(alert.new_level.as_str().to_owned())
            ),
            (keyed, "KEYED".to_owned(), None, None)
        ]
    );
    // The tallies count each company once, at its level.
    let [tallied, counted] = tallied_and_counted(&app.db).await;
    assert_eq!(tallied, counted);
    assert_eq!(count(&app, "SELECT count(*) FROM filings").await, 6);

    // A value PostgreSQL cannot hold (past every decoder, U+0000 in text) refuses the transaction as such: the
    // writer then commits its filings one by one, so that only this one fails.
    let mut poison = filing("poison", acme, 2026, safe());
    poison.idempotency_key = "poison\u{0}".into();
    let refused = commit(vec![poison]).await;
    assert!(
        matches!(refused, Err(pdscore_actors::StoreError::Refused(_))),
        "{refused:?}"
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM filings").await,
        6,
        "nothing of it was written"
    );

    // The company's history goes with it, also when its tenant is deleted (the tenant's companies go by cascade,
    // and each one's deletion deletes its filings and predictions, which take their alerts).
    sqlx::query("DELETE FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .execute(&app.db)
        .await
        .unwrap();
    for table in ["filings", "predictions", "alerts"] {
        assert_eq!(
            count(&app, &format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table} left behind"
        );
    }
}

/// A healthy company's statement (thousands).
fn healthy_statement() -> Value {
    json!({ "total_assets": 1000, "current_assets": 450, "cash": 80, "receivables": 200, "inventories": 150,
            "fixed_assets": 550, "total_liabilities": 550, "current_liabilities": 300,
            "long_term_liabilities": 250, "equity": 450, "share_capital": 100, "retained_earnings": 250,
            "sales": 1200, "previous_sales": 1100, "cost_of_products_sold": 900, "profit_on_sales": 110,
            "operating_expenses": 1100, "total_costs": 1120, "depreciation": 40, "ebit": 100,
            "profit_on_operating_activities": 105, "interest_expense": 20, "financial_expenses": 25,
            "net_profit": 60 })
}

#[actix_web::test]
async fn statements_get_the_trees_and_their_curve_the_base_rate_shifts_them_and_accunode_keeps_its_terms() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let token = demo.token(Role::OrgMember);
    let acme = company_id(&app, token, "ACME").await;
    let predict = |year: u16| {
        json!({ "type": "annual", "reporting_year": year, "statement": healthy_statement(),
                "filing_id": format!("curve-{year}") })
    };
    let path = format!("/api/v1/companies/{acme}/predictions");
    let (status, first) = app.call("POST", &path, Some(token), Some(&predict(2023))).await;
    assert_eq!(status, 201, "{first:#}");
    let first = &first["data"];
    assert_eq!(first["model"], "annual/polish-gbdt@1");
    let pd = first["probability"].as_f64().unwrap();
    // The curve starts at the PD and rises; hazards beside it.
    let curve = &first["term_structure"];
    let cumulative: Vec<f64> = (1..=5)
        .map(|t| curve["cumulative"][format!("{t}y")].as_f64().unwrap())
        .collect();
    assert_eq!(cumulative[0], pd);
    assert!(cumulative.windows(2).all(|w| w[0] <= w[1]), "{curve}");
    assert_eq!(curve["annual_hazard"]["1y"].as_f64(), Some(pd));
    // The level is the implied rating's band.
    let level = match first["implied_rating"].as_str().unwrap() {
        "AAA" | "AA" | "A" | "BBB" => "low",
        "BB" => "medium",
        "B" => "high",
        _ => "critical",
    };
    assert_eq!(first["risk_level"], level, "{first:#}");

    // A portfolio base rate of 1 % shifts the PD from the sample's (410 of 5,910 firms) by the prior shift.
    let tenant = format!("/api/v1/tenants/{}", demo.setup.tenant_id);
    let admin = demo.token(Role::TenantAdmin);
    let (status, answer) = app
        .call("PATCH", &tenant, Some(admin), Some(&json!({ "base_rate": 0.01 })))
        .await;
    assert_eq!(
        (status, answer["data"]["base_rate"].as_f64()),
        (200, Some(0.01)),
        "{answer:#}"
    );
    let (_, second) = app.call("POST", &path, Some(token), Some(&predict(2024))).await;
    let shifted = second["data"]["probability"].as_f64().unwrap();
    let logit = |p: f64| (p / (1.0 - p)).ln();
    let expected = 1.0 / (1.0 + (-(logit(pd) - logit(410.0 / 5910.0) + logit(0.01))).exp());
    assert!((shifted - expected).abs() < 1e-9, "{shifted} vs {expected}");
    assert!(shifted < pd);

    // AccuNode's route: its scorecard and its scheme, in capitals, whatever the tenant's settings.
    let body = json!({ "company_symbol": "ACNODE", "company_name": "Via AccuNode", "reporting_year": 2024,
                       "organization_id": demo.setup.organization_id });
    let mut body = body.as_object().unwrap().clone();
    body.extend(risky().as_object().unwrap().clone());
    let (status, accunode) = app
        .call(
            "POST",
            "/api/v1/predictions/annual",
            Some(token),
            Some(&Value::Object(body.clone())),
        )
        .await;
    assert_eq!(status, 201, "{accunode:#}");
    assert_eq!(accunode["data"]["model"], "annual/accunode-scorecard@1");
    // 4.12 %: MEDIUM under AccuNode's 2 / 5 / 15 % scheme (HIGH under the rating's bands).
    assert_eq!(accunode["data"]["risk_level"], "MEDIUM");
    // A model field still selects another one there.
    body.insert("model".into(), json!("annual/polish-gbdt@1"));
    body.insert("reporting_year".into(), json!(2023));
    let (status, other) = app
        .call(
            "POST",
            "/api/v1/predictions/annual",
            Some(token),
            Some(&Value::Object(body)),
        )
        .await;
    // The trees read the Polish ratios, not AccuNode's: refused with the field named.
    assert_eq!(
        (status, other["error"]["code"].as_str()),
        (422, Some("VALIDATION_ERROR")),
        "{other:#}"
    );
}

#[actix_web::test]
async fn a_quarterly_statement_with_its_three_quarters_before_on_file_is_scored_on_twelve_months() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let token = demo.token(Role::OrgMember);
    let acme = company_id(&app, token, "ACME").await;
    let path = format!("/api/v1/companies/{acme}/predictions");
    // A quarter of the healthy company: its balances, a quarter of its flows (each quarter's sales differ).
    let flows = [
        "sales",
        "cost_of_products_sold",
        "profit_on_sales",
        "operating_expenses",
        "total_costs",
        "depreciation",
        "ebit",
        "profit_on_operating_activities",
        "interest_expense",
        "financial_expenses",
        "net_profit",
    ];
    let quarter = |n: f64| -> Value {
        let mut statement = healthy_statement();
        for flow in flows {
            let year = statement[flow].as_f64().unwrap();
            statement[flow] = json!(year / 4.0 + n);
        }
        statement["previous_sales"] = json!(300.0);
        statement["total_assets"] = json!(1000.0 + n);
        statement
    };
    let post = |year: u16, q: u8, body: Value| {
        let mut body = body;
        body["type"] = json!("quarterly");
        body["reporting_year"] = json!(year);
        body["reporting_quarter"] = json!(format!("Q{q}"));
        body["filing_id"] = json!(format!("q-{year}-{q}-{}", body["filing_id"].as_str().unwrap_or("")));
        let (app, path) = (&app, &path);
        async move { app.call("POST", path, Some(token), Some(&body)).await }
    };
    // Three quarters: nothing (or not enough) before them on file, the quarterly scorecard answers.
    for (q, n) in [(2u8, 1.0), (3, 2.0), (4, 3.0)] {
        let (status, answer) = post(2025, q, json!({ "statement": quarter(n) })).await;
        assert_eq!(status, 201, "{answer:#}");
        assert_eq!(answer["data"]["model"], "quarterly/accunode-scorecard@1", "{answer:#}");
        assert_eq!(answer["data"]["basis"], Value::Null);
    }
    // The fourth: its trailing twelve months, scored by the annual model, and said so.
    let (status, answer) = post(2026, 1, json!({ "statement": quarter(4.0) })).await;
    assert_eq!(status, 201, "{answer:#}");
    let ttm = &answer["data"];
    assert_eq!(ttm["model"], "annual/polish-gbdt@1", "{ttm:#}");
    assert_eq!(ttm["prediction_type"], "quarterly");
    assert_eq!(
        ttm["basis"],
        json!({ "flows": "trailing_twelve_months", "quarters": ["2025-Q2", "2025-Q3", "2025-Q4", "2026-Q1"] })
    );
    assert!(ttm["term_structure"]["cumulative"]["5y"].is_number(), "{ttm:#}");
    // The same PD as the trailing year sent as an annual statement: flows summed (a quarter of the year's
    // each, plus 1 + 2 + 3 + 4), the latest quarter's balances, previous sales unknown.
    let mut year = quarter(4.0);
    for flow in flows {
        year[flow] = json!(healthy_statement()[flow].as_f64().unwrap() + 10.0);
    }
    year.as_object_mut().unwrap().remove("previous_sales");
    let (status, annual) = app
        .call(
            "POST",
            &path,
            Some(token),
            Some(&json!({ "type": "annual", "reporting_year": 2026, "statement": year, "filing_id": "ttm-year" })),
        )
        .await;
    assert_eq!(status, 201, "{annual:#}");
    assert_eq!(annual["data"]["probability"], ttm["probability"], "{annual:#}\n{ttm:#}");
    assert_eq!(annual["data"]["inputs"], ttm["inputs"]);
    assert_eq!(annual["data"]["basis"], Value::Null);
    // Read back, the prediction still says what it scored.
    let (_, read) = app
        .call(
            "GET",
            &format!("/api/v1/predictions/{}", ttm["id"].as_str().unwrap()),
            Some(token),
            None,
        )
        .await;
    assert_eq!(read["data"]["basis"], ttm["basis"]);

    // A gap (2026-Q2 not on file): 2026-Q3 falls back to the quarterly scorecard. Ratios, or a model named,
    // are scored as sent.
    let (_, gap) = post(2026, 3, json!({ "statement": quarter(5.0) })).await;
    assert_eq!(gap["data"]["model"], "quarterly/accunode-scorecard@1", "{gap:#}");
    let (_, named) = post(
        2026,
        1,
        json!({ "statement": quarter(4.0), "model": "quarterly/accunode-scorecard@1", "filing_id": "named" }),
    )
    .await;
    assert_eq!(
        (named["data"]["model"].as_str(), &named["data"]["basis"]),
        (Some("quarterly/accunode-scorecard@1"), &Value::Null),
        "{named:#}"
    );
}
