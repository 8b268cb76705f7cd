//! Point-in-time replays: 10,000 stored filings re-scored with another model as a bulk job, their rating
//! migrations reported, and nothing of the filings' answers, alerts or portfolio changed; a replay cancelled
//! midway, and one resumed after `kill -9`, each filing scored once.

use std::{collections::HashMap, time::Duration};

use pdscore::auth::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    bulk::{finished, signed_in, submit, submit_to},
    helpers::{Isolation, TestApp, closed_port, eventually, spawn_app_with},
};

/// `companies` × `years` annual statements of varying health, as a bulk file.
fn statements_csv(companies: usize, years: usize) -> String {
    let mut csv = String::from(
        "company_symbol,company_name,reporting_year,total_assets,current_assets,total_liabilities,\
         current_liabilities,equity,sales,ebit,net_profit,interest_expense,financial_expenses,retained_earnings\n",
    );
    for c in 0..companies {
        for y in 0..years {
            let k = ((c * 7 + y * 3) % 30) as f64;
            let equity = 450.0 - 25.0 * k;
            csv.push_str(&format!(
                "R{c:05},Replay {c},{},1000,450,{},{},{equity},{},{},{},{},{},{}\n",
                2018 + y,
                1000.0 - equity,
                300.0 + 10.0 * k,
                1200.0 - 10.0 * k,
                100.0 - 8.0 * k,
                60.0 - 8.0 * k,
                20.0 + k,
                25.0 + k,
                250.0 - 25.0 * k,
            ));
        }
    }
    csv
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.db).await.unwrap()
}

#[actix_web::test]
async fn a_replay_of_ten_thousand_stored_filings_reports_its_migrations_and_changes_no_answer() {
    let app = spawn_app_with(|s| s.bulk.chunk_rows = 1000).await;
    let demo = app.demo().await;
    let analyst = demo.token(Role::OrgMember).to_owned();
    let scorecard = "annual/accunode-scorecard@1";

    // 10,000 statements on file, answered by the tenant's model.
    let id = submit(
        &app,
        &analyst,
        "statements.csv",
        statements_csv(2500, 4).into_bytes(),
        "annual",
    )
    .await;
    let job = finished(&app, &analyst, &id).await;
    assert_eq!(
        (job["status"].as_str(), job["succeeded_rows"].as_i64()),
        (Some("completed"), Some(10_000)),
        "{job:#}"
    );
    let before = (
        count(&app, "SELECT count(*) FROM filings").await,
        count(&app, "SELECT count(*) FROM predictions WHERE NOT is_shadow").await,
        count(&app, "SELECT count(*) FROM alerts").await,
    );
    let answers: HashMap<String, (String, f64)> = sqlx::query_as::<_, (String, String, f64)>(
        "SELECT filing_id::text, model_name || '@' || model_version, probability FROM predictions WHERE NOT is_shadow",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
    .into_iter()
    .map(|(filing, model, pd)| (filing, (model, pd)))
    .collect();

    // Refused: a model that cannot answer; another organization's filings; a read-only account.
    for (body, status) in [
        (json!({ "model": "annual-5y/polish-gbdt@1" }), 422),
        (json!({ "model": "annual/nothing@1" }), 422),
        (
            json!({ "model": scorecard, "organization_id": uuid::Uuid::now_v7() }),
            404,
        ),
    ] {
        let (got, answer) = app.call("POST", "/api/v1/replays", Some(&analyst), Some(&body)).await;
        assert_eq!(got, status, "{body}: {answer:#}");
    }
    let (status, _) = app
        .call(
            "POST",
            "/api/v1/replays",
            Some(demo.token(Role::User)),
            Some(&json!({ "model": scorecard })),
        )
        .await;
    assert_eq!(status, 403);

    // The organization's filings, re-scored by the scorecard.
    let (status, created) = app
        .call(
            "POST",
            "/api/v1/replays",
            Some(&analyst),
            Some(&json!({ "model": scorecard })),
        )
        .await;
    assert_eq!(status, 202, "{created:#}");
    assert_eq!(created["data"]["kind"], "replay");
    let replay = created["data"]["id"].as_str().unwrap().to_owned();
    let job = finished(&app, &analyst, &replay).await;
    assert_eq!(job["status"], "completed", "{job:#}");
    assert_eq!(job["total_rows"], 10_000);
    assert_eq!(job["processed_rows"], 10_000);
    let succeeded = job["succeeded_rows"].as_i64().unwrap();
    assert_eq!(succeeded + job["failed_rows"].as_i64().unwrap(), 10_000);
    assert!(succeeded > 9_000, "{job:#}");

    // Nothing the filings were answered changed: no filing, answer or alert added.
    let after = (
        count(&app, "SELECT count(*) FROM filings").await,
        count(&app, "SELECT count(*) FROM predictions WHERE NOT is_shadow").await,
        count(&app, "SELECT count(*) FROM alerts").await,
    );
    assert_eq!(after, before);
    let replayed: Vec<(String, String, f64)> = sqlx::query_as(
        "SELECT filing_id::text, implied_rating, probability FROM predictions
         WHERE is_shadow AND model_name = 'annual/accunode-scorecard' AND model_version = 1",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(replayed.len() as i64, succeeded);

    // The migrations, checked here from the table: answer against replay, filing by filing.
    let (status, report) = app
        .call("GET", &format!("/api/v1/replays/{replay}"), Some(&analyst), None)
        .await;
    assert_eq!(status, 200, "{report:#}");
    let migrations = &report["data"]["migrations"];
    assert_eq!(migrations["filings"], succeeded);
    let ratings: Vec<Vec<i64>> = serde_json::from_value(migrations["ratings"].clone()).unwrap();
    assert_eq!(ratings.iter().flatten().sum::<i64>(), succeeded);
    let grades: Vec<String> = serde_json::from_value(migrations["grades"].clone()).unwrap();
    let answer_grades: HashMap<String, String> = sqlx::query_as::<_, (String, String)>(
        "SELECT filing_id::text, implied_rating FROM predictions WHERE NOT is_shadow",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let mut expected = vec![vec![0i64; grades.len()]; grades.len()];
    let mut mean_delta = 0.0;
    for (filing, rating, pd) in &replayed {
        let from = grades.iter().position(|g| *g == answer_grades[filing]).unwrap();
        let to = grades.iter().position(|g| g == rating).unwrap();
        expected[from][to] += 1;
        mean_delta += pd - answers[filing].1;
    }
    assert_eq!(ratings, expected);
    let (up, down): (i64, i64) = (
        (0..grades.len())
            .flat_map(|f| (0..f).map(move |t| (f, t)))
            .map(|(f, t)| expected[f][t])
            .sum(),
        (0..grades.len())
            .flat_map(|f| (f + 1..grades.len()).map(move |t| (f, t)))
            .map(|(f, t)| expected[f][t])
            .sum(),
    );
    assert_eq!(
        (migrations["upgrades"].as_i64(), migrations["downgrades"].as_i64()),
        (Some(up), Some(down))
    );
    let reported: f64 = migrations["pd_delta"]["mean"].as_f64().unwrap();
    assert!((reported - mean_delta / succeeded as f64).abs() < 1e-9, "{reported}");
    assert!(answers.values().all(|(model, _)| model == "annual/polish-gbdt@1"));

    // The replay's predictions are the scorecard's record in the back-tests.
    let (_, backtest) = app
        .call(
            "GET",
            &format!("/api/v1/backtests?model={scorecard}"),
            Some(&analyst),
            None,
        )
        .await;
    assert_eq!(backtest["data"]["by_period"].as_array().map(Vec::len), Some(4));

    // Again: nothing is scored twice (the second replay finds every filing scored by the scorecard).
    let (_, again) = app
        .call(
            "POST",
            "/api/v1/replays",
            Some(&analyst),
            Some(&json!({ "model": scorecard })),
        )
        .await;
    let again_id = again["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(finished(&app, &analyst, &again_id).await["status"], "completed");
    let total: i64 = count(&app, "SELECT count(*) FROM predictions WHERE is_shadow").await;
    assert_eq!(total, succeeded);
    let (_, second) = app
        .call("GET", &format!("/api/v1/replays/{again_id}"), Some(&analyst), None)
        .await;
    assert_eq!(second["data"]["migrations"]["ratings"], migrations["ratings"]);
    let _: Value = second;
}

/// The replay's counts and status, and the scorecard's stored answers (each filing's at most once: the table's
/// key), as (processed, succeeded, status, stored).
async fn replay_state(db: &sqlx::PgPool, id: Uuid) -> (i64, i64, String, i64) {
    let (processed, succeeded, status): (i64, i64, String) = sqlx::query_as(
        "SELECT processed_rows, succeeded_rows, status::text FROM bulk_jobs WHERE id = $1 AND kind = 'replay'",
    )
    .bind(id)
    .fetch_one(db)
    .await
    .unwrap();
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM predictions WHERE is_shadow AND model_name = 'annual/accunode-scorecard'",
    )
    .fetch_one(db)
    .await
    .unwrap();
    (processed, succeeded, status, stored)
}

#[actix_web::test]
async fn a_replay_cancelled_midway_keeps_what_it_scored_and_the_next_one_scores_the_rest() {
    const FILINGS: i64 = 2_000;
    let app = spawn_app_with(|s| {
        s.bulk.chunk_rows = 10;
        s.bulk.chunks_in_flight = 1;
    })
    .await;
    let demo = app.demo().await;
    let analyst = demo.token(Role::OrgMember).to_owned();
    let id = submit(
        &app,
        &analyst,
        "statements.csv",
        statements_csv(500, 4).into_bytes(),
        "annual",
    )
    .await;
    assert_eq!(finished(&app, &analyst, &id).await["succeeded_rows"], FILINGS);

    let body = json!({ "model": "annual/accunode-scorecard@1" });
    let (status, created) = app.call("POST", "/api/v1/replays", Some(&analyst), Some(&body)).await;
    assert_eq!(status, 202, "{created:#}");
    let replay: Uuid = created["data"]["id"].as_str().unwrap().parse().unwrap();
    eventually("the replay's progress", Duration::from_secs(60), || async {
        (replay_state(&app.db, replay).await.0 > 0).then_some(())
    })
    .await;
    let (status, _) = app
        .call(
            "POST",
            &format!("/api/v1/bulk-jobs/{replay}/cancel"),
            Some(&analyst),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let job = finished(&app, &analyst, &replay.to_string()).await;
    assert_eq!(job["status"], "cancelled", "{job:#}");
    let (processed, succeeded, _, stored) = replay_state(&app.db, replay).await;
    assert!(processed < FILINGS, "stopped midway: {processed}");
    assert_eq!(stored, succeeded, "what the replay counted is what it stored");

    // The next replay goes over every filing; the ones scored before stay as they were, once each.
    let (_, created) = app.call("POST", "/api/v1/replays", Some(&analyst), Some(&body)).await;
    let again: Uuid = created["data"]["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        finished(&app, &analyst, &again.to_string()).await["status"],
        "completed"
    );
    let (processed, succeeded, _, stored) = replay_state(&app.db, again).await;
    assert_eq!(processed, FILINGS);
    assert_eq!(stored, succeeded);
}

#[actix_web::test]
async fn a_replay_resumes_after_kill_9_after_its_last_recorded_filing() {
    const FILINGS: i64 = 6_000;
    let isolation = Isolation::new();
    isolation.migrate();
    let db = sqlx::PgPool::connect(&isolation.database_url).await.unwrap();
    let demo = pdscore::accounts::demo_setup(&db).await.unwrap();
    let analyst = demo.user(Role::OrgMember).clone();
    let port = closed_port().await;
    let env = [
        ("PDSCORE__PIPELINE__INGEST_ENABLED", "false"),
        ("PDSCORE__BULK__CHUNK_ROWS", "10"),
    ];
    let mut service = isolation.serve(port, "pdscore-replay-crash-1.log", &env);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let token = signed_in(&client, &base, &analyst).await;
    let upload = submit_to(&client, &base, &token, statements_csv(1_500, 4)).await;
    let on_file = eventually("the statements to be on file", Duration::from_secs(180), || async {
        let (status, succeeded): (String, i64) =
            sqlx::query_as("SELECT status::text, succeeded_rows FROM bulk_jobs WHERE id = $1")
                .bind(upload)
                .fetch_one(&db)
                .await
                .unwrap();
        (status == "completed").then_some(succeeded)
    })
    .await;
    assert_eq!(on_file, FILINGS);

    let created: Value = client
        .post(format!("{base}/api/v1/replays"))
        .bearer_auth(&token)
        .json(&json!({ "model": "annual/accunode-scorecard@1" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let replay: Uuid = created["data"]["id"].as_str().expect("a replay").parse().unwrap();
    eventually("a third of the filings", Duration::from_secs(120), || async {
        (replay_state(&db, replay).await.0 >= FILINGS / 3).then_some(())
    })
    .await;
    service.kill().unwrap();
    service.wait().unwrap();
    let at_kill = replay_state(&db, replay).await;
    assert_eq!(at_kill.2, "processing");
    assert!(at_kill.0 < FILINGS, "killed midway: {at_kill:?}");

    let mut service = isolation.serve(port, "pdscore-replay-crash-2.log", &env);
    let done = eventually(
        "the replay to complete after the restart",
        Duration::from_secs(180),
        || async {
            let state = replay_state(&db, replay).await;
            (state.2 == "completed").then_some(state)
        },
    )
    .await;
    service.kill().unwrap();
    service.wait().unwrap();
    eprintln!("replay resumed at {} of {FILINGS} filings: {done:?}", at_kill.0);
    // Every filing once: none skipped (processed), none scored again after the restart (a chunk scored twice
    // would be counted twice but stored once).
    assert_eq!(done.0, FILINGS);
    assert_eq!(done.1, done.3);
    db.close().await;
}
