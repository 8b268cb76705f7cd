//! Bulk jobs: upload → live progress → results and errors reports, for both types and both formats; bad
//! files refused with their reason; cancel; resume after `kill -9` of the service midway.

use std::time::{Duration, Instant};

use pdscore::auth::Role;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    helpers::{Isolation, TestApp, closed_port, eventually, spawn_app, spawn_app_with},
    pipeline::{dead_letters, message, publish, safe},
};

pub const ANNUAL_HEADER: &str = "company_symbol,company_name,market_cap,sector,reporting_year,reporting_quarter,\
    long_term_debt_to_total_capital,total_debt_to_ebitda,net_income_margin,ebit_to_interest_expense,return_on_assets";

/// An AccuNode annual file: `companies` × `years` rows with varied ratios (blank and NM cells included).
pub fn annual_csv(companies: usize, years: usize) -> String {
    let mut csv = format!("{ANNUAL_HEADER}\n");
    for c in 0..companies {
        for y in 0..years {
            let k = (c * 7 + y * 3) % 20;
            let margin = if k == 3 {
                "NM".to_owned()
            } else {
                format!("{}", k as f64 - 4.0)
            };
            let coverage = if k == 5 { String::new() } else { format!("{}", 1 + k) };
            csv.push_str(&format!(
                "C{c:05},Company {c},{},Industrials,{},Q4,{},{},{margin},{coverage},{}\n",
                1000 * (c + 1),
                2000 + y,
                10 + 3 * k,
                0.5 + k as f64 / 3.0,
                k as f64 - 6.0
            ));
        }
    }
    csv
}

/// Submits a file to `POST /bulk-jobs` (which must accept it); returns the job's id.
pub async fn submit(app: &TestApp, token: &str, file_name: &str, bytes: Vec<u8>, prediction_type: &str) -> String {
    let (status, answer) = upload(
        app,
        token,
        "/api/v1/bulk-jobs",
        file_name,
        bytes,
        &[("type", prediction_type)],
    )
    .await;
    assert_eq!(status, 202, "{answer:#}");
    assert_eq!(answer["data"]["status"], "queued");
    answer["data"]["id"].as_str().unwrap().to_owned()
}

pub async fn upload(
    app: &TestApp,
    token: &str,
    path: &str,
    file_name: &str,
    bytes: Vec<u8>,
    fields: &[(&str, &str)],
) -> (u16, Value) {
    let mut form = reqwest::multipart::Form::new();
    for (name, value) in fields {
        form = form.text(name.to_string(), value.to_string());
    }
    form = form.part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_owned()),
    );
    let response = app
        .client
        .post(format!("{}{path}", app.address))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Submits `csv` as an annual bulk job to the service at `base`; the job's id.
pub async fn submit_to(client: &reqwest::Client, base: &str, token: &str, csv: String) -> Uuid {
    let form = reqwest::multipart::Form::new().text("type", "annual").part(
        "file",
        reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("big.csv"),
    );
    let answer: Value = client
        .post(format!("{base}/api/v1/bulk-jobs"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["data"]["id"].as_str().expect("a job").parse().unwrap()
}

/// An access token of `user` from the service process at `base`, once it answers.
pub async fn signed_in(client: &reqwest::Client, base: &str, user: &pdscore::accounts::DemoUser) -> String {
    eventually("the service to start", Duration::from_secs(60), || async {
        let answer = client
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({ "email": user.email, "password": user.password }))
            .send()
            .await
            .ok()?;
        let body: Value = answer.json().await.ok()?;
        body["data"]["access_token"].as_str().map(str::to_owned)
    })
    .await
}

/// Job `id` processed all its `total` rows, each succeeded, with exactly one filing and one prediction.
pub async fn assert_every_row_scored_once(db: &PgPool, id: Uuid, total: i64) {
    let (processed, succeeded, failed): (i64, i64, i64) =
        sqlx::query_as("SELECT processed_rows, succeeded_rows, failed_rows FROM bulk_jobs WHERE id = $1")
            .bind(id)
            .fetch_one(db)
            .await
            .unwrap();
    assert_eq!((processed, succeeded, failed), (total, total, 0));
    let (filings, rows, predictions): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT f.bulk_row),
                (SELECT count(*) FROM predictions p JOIN filings g ON g.tenant_id = p.tenant_id AND g.id = p.filing_id
                 WHERE g.bulk_job_id = $1)
         FROM filings f WHERE f.bulk_job_id = $1",
    )
    .bind(id)
    .fetch_one(db)
    .await
    .unwrap();
    assert_eq!(
        (filings, rows, predictions),
        (total, total, total),
        "every row scored exactly once"
    );
}

pub async fn finished(app: &TestApp, token: &str, id: &str) -> Value {
    eventually("the job to finish", Duration::from_secs(120), || async {
        let (_, job) = app
            .call("GET", &format!("/api/v1/bulk-jobs/{id}"), Some(token), None)
            .await;
        let status = job["data"]["status"].as_str().unwrap_or_default().to_owned();
        ["completed", "failed", "cancelled"]
            .contains(&status.as_str())
            .then(|| job["data"].clone())
    })
    .await
}

pub async fn text(app: &TestApp, token: &str, path: &str) -> (u16, String) {
    let response = app
        .client
        .get(format!("{}{path}", app.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn csv_rows(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

#[actix_web::test]
async fn a_csv_upload_is_scored_with_live_progress_results_and_an_error_report() {
    let app = spawn_app_with(|s| s.bulk.chunk_rows = 40).await;
    let demo = app.demo().await;
    let token = demo.token(Role::OrgMember).to_owned();
    let mut csv = annual_csv(40, 5);
    // A repeated key, two malformed rows and a blank line: each fails alone (the blank is skipped).
    csv.push_str("C00000,Company 0,1000,Industrials,2000,Q4,10,1,1,1,1\n");
    csv.push_str("BAD1,Bad,1000,,20x1,,10,1,1,1,1\n");
    csv.push('\n');
    csv.push_str("BAD2,Bad,lots,,2021,,10,1,1,1,1\n");
    let id = submit(&app, &token, "portfolio.csv", csv.into_bytes(), "annual").await;

    // Live progress: events until `done`, the last at 100 %.
    let response = app
        .client
        .get(format!("{}/api/v1/bulk-jobs/{id}/events", app.address))
        .bearer_auth(&token)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let stream = response.text().await.unwrap();
    let events: Vec<Value> = stream
        .split("\n\n")
        .filter_map(|frame| frame.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(stream.contains("event: done"), "{stream}");
    let last = events.last().unwrap();
    assert_eq!(last["status"], "completed");
    assert_eq!(last["progress_percent"], 100.0);

    let job = finished(&app, &token, &id).await;
    assert_eq!(job["total_rows"], 203, "{job:#}");
    assert_eq!(job["processed_rows"], 203);
    assert_eq!(job["succeeded_rows"], 200);
    assert_eq!(job["failed_rows"], 3);

    let (status, results) = text(&app, &token, &format!("/api/v1/bulk-jobs/{id}/results")).await;
    assert_eq!(status, 200);
    let results = csv_rows(&results);
    assert_eq!(results.len(), 201);
    assert_eq!(results[0][0], "row_number");
    assert_eq!(results[1][..2], ["1".to_owned(), "C00000".to_owned()]);
    let (status, errors) = text(&app, &token, &format!("/api/v1/bulk-jobs/{id}/errors")).await;
    assert_eq!(status, 200);
    let errors = csv_rows(&errors);
    assert_eq!(errors.len(), 4, "{errors:?}");
    let header: Vec<&str> = ["row_number", "code", "reason"]
        .into_iter()
        .chain(ANNUAL_HEADER.split(',').map(str::trim))
        .collect();
    assert_eq!(errors[0], header, "the file's own columns, in its order");
    assert_eq!(errors[1][..2], ["201".to_owned(), "DUPLICATE_ROW".to_owned()]);
    assert!(errors[1][2].contains("repeats row 1"), "{:?}", errors[1]);
    assert_eq!(errors[2][0], "202");
    assert!(errors[2][2].starts_with("reporting_year"), "{:?}", errors[2]);
    assert_eq!(errors[2][3], "BAD1", "the row's own cells follow");
    assert_eq!(errors[3][0], "203", "a blank CSV line is not a row");
    assert!(errors[3][2].starts_with("market_cap"), "{:?}", errors[3]);

    // One row of the job scores exactly as a single AccuNode prediction of the same ratios.
    let row = &results[1];
    let (status, single) = app
        .call(
            "POST",
            "/api/v1/predictions/annual",
            Some(&token),
            Some(
                &json!({ "company_symbol": "SINGLE", "company_name": "Single", "reporting_year": 2000,
                "long_term_debt_to_total_capital": "10", "total_debt_to_ebitda": "0.5", "net_income_margin": "-4",
                "ebit_to_interest_expense": "1", "return_on_assets": "-6" }),
            ),
        )
        .await;
    assert_eq!(status, 201, "{single:#}");
    assert_eq!(row[5], single["data"]["probability"].as_f64().unwrap().to_string());

    // Companies were created once each; every scored row is a `bulk` filing of this job, once.
    let companies: i64 = sqlx::query_scalar("SELECT count(*) FROM companies WHERE symbol LIKE 'C0%'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(companies, 40);
    let (filings, distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT bulk_row) FROM filings WHERE bulk_job_id = $1 AND source = 'bulk'",
    )
    .bind(id.parse::<Uuid>().unwrap())
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!((filings, distinct), (200, 200));
    assert!(
        std::fs::read_dir(app.settings.storage.dir.join(demo.setup.tenant_id.to_string()))
            .map(|d| d.count() == 0)
            .unwrap_or(true),
        "the upload is removed once the job ends"
    );

    // Another tenant's user cannot see the job.
    let (_, list) = app.call("GET", "/api/v1/bulk-jobs", Some(&token), None).await;
    assert_eq!(list["data"]["total"], 1);
}

/// A quarterly workbook in AccuNode's quarterly column order.
fn quarterly_xlsx(rows: usize) -> Vec<u8> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    let header = [
        "company_symbol",
        "company_name",
        "sector",
        "market_cap",
        "reporting_year",
        "reporting_quarter",
        "total_debt_to_ebitda",
        "sga_margin",
        "long_term_debt_to_total_capital",
        "return_on_capital",
    ];
    for (c, h) in header.iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    for r in 0..rows {
        let row = (r + 1) as u32;
        sheet.write_string(row, 0, format!("Q{:03}", r / 4)).unwrap();
        sheet.write_string(row, 1, format!("Quarterly {}", r / 4)).unwrap();
        sheet.write_string(row, 2, "Energy").unwrap();
        sheet.write_number(row, 3, 5e6).unwrap();
        sheet.write_number(row, 4, 2023.0).unwrap();
        sheet.write_string(row, 5, format!("Q{}", r % 4 + 1)).unwrap();
        sheet.write_number(row, 6, 1.0 + (r % 7) as f64).unwrap();
        if r % 5 != 0 {
            sheet.write_number(row, 7, 12.5).unwrap();
        }
        sheet.write_number(row, 8, 30.0).unwrap();
        sheet.write_string(row, 9, if r % 9 == 0 { "NM" } else { "8" }).unwrap();
    }
    workbook.save_to_buffer().unwrap()
}

#[actix_web::test]
async fn an_xlsx_upload_through_accunodes_route_is_scored() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let token = demo.token(Role::OrgAdmin).to_owned();
    let (status, answer) = upload(
        &app,
        &token,
        "/api/v1/predictions/quarterly/bulk-upload-async",
        "quarterly.xlsx",
        quarterly_xlsx(120),
        &[],
    )
    .await;
    assert_eq!(status, 202, "{answer:#}");
    let id = answer["data"]["job_id"].as_str().unwrap().to_owned();
    let status_url = answer["data"]["status_url"].as_str().unwrap().to_owned();
    let job = eventually("the job to complete", Duration::from_secs(60), || async {
        let (_, job) = app.call("GET", &status_url, Some(&token), None).await;
        (job["data"]["status"] == "completed").then(|| job["data"].clone())
    })
    .await;
    assert_eq!(job["total_rows"], 120);
    assert_eq!(job["succeeded_rows"], 120, "{job:#}");
    assert_eq!(job["prediction_type"], "quarterly");
    assert_eq!(job["file_format"], "xlsx");
    let (_, results) = text(&app, &token, &format!("/api/v1/bulk-jobs/{id}/results")).await;
    let results = csv_rows(&results);
    assert_eq!(results.len(), 121);
    assert_eq!(results[1][1], "Q000");
    assert_eq!(results[1][4], "Q1");
    assert!(results[1][5].parse::<f64>().unwrap() > 0.0);
}

#[actix_web::test]
async fn bad_files_are_refused_with_their_reason_and_leave_nothing_behind() {
    let app = spawn_app_with(|s| {
        s.storage.max_upload_bytes = 1024 * 1024;
        s.bulk.max_xlsx_uncompressed_bytes = 1024 * 1024;
    })
    .await;
    let demo = app.demo().await;
    let token = demo.token(Role::OrgMember).to_owned();
    let annual = [("type", "annual")];
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "missing columns",
            "a.csv",
            b"company_symbol,total_debt_to_ebitda\nX,1\n".to_vec(),
            422,
            "MISSING_COLUMNS",
        ),
        (
            "unknown columns",
            "a.csv",
            b"company_symbol,company_name,reporting_year,ebitdaa\nX,X,2020,1\n".to_vec(),
            422,
            "UNKNOWN_COLUMNS",
        ),
        ("empty file", "a.csv", Vec::new(), 422, "EMPTY_FILE"),
        ("header only, blank", "a.csv", b"\n\n".to_vec(), 422, "EMPTY_FILE"),
        (
            "binary garbage",
            "a.csv",
            (0..4096).map(|i| (i * 7 % 256) as u8).collect(),
            422,
            "NOT_A_SPREADSHEET",
        ),
        ("fake xlsx", "a.xlsx", b"not a zip".to_vec(), 422, "NOT_A_SPREADSHEET"),
        (
            "damaged zip",
            "a.xlsx",
            b"PK\x03\x04garbage".to_vec(),
            422,
            "NOT_A_SPREADSHEET",
        ),
        (
            "too large",
            "a.csv",
            annual_csv(2000, 10).into_bytes(),
            413,
            "FILE_TOO_LARGE",
        ),
        (
            "expands too much",
            "a.xlsx",
            quarterly_xlsx(20_000),
            413,
            "XLSX_TOO_LARGE",
        ),
    ];
    for (what, name, bytes, status, reason) in cases {
        let (got, answer) = upload(&app, &token, "/api/v1/bulk-jobs", name, bytes, &annual).await;
        assert_eq!(got, status, "{what}: {answer:#}");
        assert_eq!(answer["error"]["details"]["reason"], reason, "{what}: {answer:#}");
    }
    let (status, missing) = upload(
        &app,
        &token,
        "/api/v1/bulk-jobs",
        "a.csv",
        b"company_symbol\nX\n".to_vec(),
        &annual,
    )
    .await;
    assert_eq!(status, 422);
    let expected = missing["error"]["details"]["expected"].as_array().unwrap();
    assert!(expected.contains(&json!("return_on_assets")) && expected.contains(&json!("total_assets")));
    assert_eq!(
        missing["error"]["details"]["columns"],
        json!(["company_name", "reporting_year"])
    );

    let good = annual_csv(1, 1).into_bytes();
    let (status, answer) = upload(
        &app,
        &token,
        "/api/v1/bulk-jobs",
        "a.csv",
        good.clone(),
        &[("type", "monthly")],
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("VALIDATION_ERROR"))
    );
    let (status, _) = upload(&app, &token, "/api/v1/bulk-jobs", "a.csv", good.clone(), &[]).await;
    assert_eq!(status, 422, "type is required");
    let (status, _) = upload(
        &app,
        &token,
        "/api/v1/bulk-jobs",
        "a.csv",
        good,
        &[("type", "annual"), ("model", "annual/nope@9")],
    )
    .await;
    assert_eq!(status, 422, "unknown model");
    let no_file = reqwest::multipart::Form::new().text("type", "annual");
    let response = app
        .client
        .post(format!("{}/api/v1/bulk-jobs", app.address))
        .bearer_auth(&token)
        .multipart(no_file)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let viewer = demo.token(Role::User).to_owned();
    let (status, _) = upload(
        &app,
        &viewer,
        "/api/v1/bulk-jobs",
        "a.csv",
        annual_csv(1, 1).into_bytes(),
        &annual,
    )
    .await;
    assert_eq!(status, 403, "a read-only role cannot submit jobs");

    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM bulk_jobs")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(jobs, 0);
    let left: Vec<_> = walk(&app.settings.storage.dir);
    assert!(left.is_empty(), "files left behind: {left:?}");
}

pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|e| {
            let path = e.path();
            if path.is_dir() { walk(&path) } else { vec![path] }
        })
        .collect()
}

#[actix_web::test]
async fn jobs_are_cancelled_queued_or_running() {
    // No job slot: a job stays queued until cancelled.
    let app = spawn_app_with(|s| s.bulk.max_running_jobs = 0).await;
    let demo = app.demo().await;
    let token = demo.token(Role::OrgMember).to_owned();
    let id = submit(&app, &token, "a.csv", annual_csv(2, 2).into_bytes(), "annual").await;
    let (status, cancelled) = app
        .call("POST", &format!("/api/v1/bulk-jobs/{id}/cancel"), Some(&token), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(cancelled["data"]["status"], "cancelled");
    assert_eq!(cancelled["data"]["processed_rows"], 0);
    let other = demo.token(Role::TenantAdmin).to_owned();
    let (status, _) = app
        .call(
            "POST",
            &format!("/api/v1/bulk-jobs/{}/cancel", Uuid::now_v7()),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(status, 404);
    drop(app);

    // Running: small chunks, cancelled once it has made progress.
    let app = spawn_app_with(|s| {
        s.bulk.chunk_rows = 50;
        s.bulk.chunks_in_flight = 1;
    })
    .await;
    let demo = app.demo().await;
    let token = demo.token(Role::OrgMember).to_owned();
    let id = submit(&app, &token, "a.csv", annual_csv(400, 50).into_bytes(), "annual").await;
    eventually("progress", Duration::from_secs(60), || async {
        let (_, job) = app
            .call("GET", &format!("/api/v1/bulk-jobs/{id}"), Some(&token), None)
            .await;
        (job["data"]["processed_rows"].as_i64().unwrap_or(0) > 0).then_some(())
    })
    .await;
    let (status, _) = app
        .call("POST", &format!("/api/v1/bulk-jobs/{id}/cancel"), Some(&token), None)
        .await;
    assert_eq!(status, 200);
    let job = finished(&app, &token, &id).await;
    assert_eq!(job["status"], "cancelled");
    let processed = job["processed_rows"].as_i64().unwrap();
    assert!(processed < 20_000, "stopped early: {processed}");
    let scored: i64 = sqlx::query_scalar("SELECT count(*) FROM filings WHERE bulk_job_id = $1")
        .bind(id.parse::<Uuid>().unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(
        scored,
        job["succeeded_rows"].as_i64().unwrap(),
        "every committed row is counted"
    );
}

#[actix_web::test]
async fn a_job_resumes_after_kill_9_without_losing_or_repeating_a_row() {
    const COMPANIES: usize = 1000;
    const YEARS: usize = 30;
    let isolation = Isolation::new();
    isolation.migrate();
    let db = PgPool::connect(&isolation.database_url).await.unwrap();
    let demo = pdscore::accounts::demo_setup(&db).await.unwrap();
    let analyst = demo.user(Role::OrgMember).clone();
    let port = closed_port().await;
    let mut service = isolation.serve(
        port,
        "pdscore-bulk-crash-1.log",
        &[("PDSCORE__PIPELINE__INGEST_ENABLED", "false")],
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let token = signed_in(&client, &base, &analyst).await;
    let id = submit_to(&client, &base, &token, annual_csv(COMPANIES, YEARS)).await;
    let total = (COMPANIES * YEARS) as i64;
    let progress = |db: PgPool| async move {
        sqlx::query_as::<_, (i64, String)>("SELECT processed_rows, status::text FROM bulk_jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&db)
            .await
            .unwrap()
    };
    eventually("a third of the rows", Duration::from_secs(120), || async {
        (progress(db.clone()).await.0 >= total / 3).then_some(())
    })
    .await;
    service.kill().unwrap();
    service.wait().unwrap();
    let at_kill = progress(db.clone()).await;
    assert_eq!(at_kill.1, "processing");
    assert!(at_kill.0 < total, "killed midway: {at_kill:?}");

    let started = Instant::now();
    let mut service = isolation.serve(
        port,
        "pdscore-bulk-crash-2.log",
        &[("PDSCORE__PIPELINE__INGEST_ENABLED", "false")],
    );
    eventually(
        "the job to complete after the restart",
        Duration::from_secs(180),
        || async { (progress(db.clone()).await.1 == "completed").then_some(()) },
    )
    .await;
    eprintln!(
        "bulk job resumed at {} of {total} rows, completed {:.1} s after the restart",
        at_kill.0,
        started.elapsed().as_secs_f64()
    );
    service.kill().unwrap();
    service.wait().unwrap();

    assert_every_row_scored_once(&db, id, total).await;
    db.close().await;
}

#[actix_web::test]
async fn an_annual_workbook_and_a_quarterly_csv_of_statements_are_scored() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let token = demo.token(Role::OrgMember).to_owned();

    // Annual, XLSX: AccuNode's annual columns, the year typed as a number and as text.
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    for (c, h) in ANNUAL_HEADER.split(',').enumerate() {
        sheet.write_string(0, c as u16, h.trim()).unwrap();
    }
    for r in 1..=30u32 {
        sheet.write_string(r, 0, format!("X{r:02}")).unwrap();
        sheet.write_string(r, 1, format!("Workbook {r}")).unwrap();
        if r % 2 == 0 {
            sheet.write_number(r, 4, 2022.0).unwrap();
        } else {
            sheet.write_string(r, 4, "2022").unwrap();
        }
        for c in 6..11u16 {
            sheet.write_number(r, c, f64::from(r) + f64::from(c)).unwrap();
        }
    }
    let id = submit(
        &app,
        &token,
        "annual.xlsx",
        workbook.save_to_buffer().unwrap(),
        "annual",
    )
    .await;
    let job = finished(&app, &token, &id).await;
    assert_eq!(
        (job["status"].as_str(), job["succeeded_rows"].as_i64()),
        (Some("completed"), Some(30)),
        "{job:#}"
    );

    // Quarterly, CSV of statement line items (the ratios are computed from them).
    let mut csv = "company_symbol,company_name,reporting_year,reporting_quarter,total_assets,total_liabilities,\
        long_term_debt,total_debt,equity,sales,sga_expenses,ebit,ebitda,net_profit,interest_expense\n"
        .to_owned();
    for q in 1..=4 {
        csv.push_str(&format!(
            "STMT,Statements Inc,2023,Q{q},1000,600,200,300,400,250,40,30,45,{},8\n",
            10 + q
        ));
    }
    let id = submit(&app, &token, "q.csv", csv.into_bytes(), "quarterly").await;
    let job = finished(&app, &token, &id).await;
    assert_eq!(
        (job["status"].as_str(), job["succeeded_rows"].as_i64()),
        (Some("completed"), Some(4)),
        "{job:#}"
    );
    let (_, results) = text(&app, &token, &format!("/api/v1/bulk-jobs/{id}/results")).await;
    let results = csv_rows(&results);
    assert_eq!(results.len(), 5);
    assert_eq!(results[4][4], "Q4");
    let statement: Value = sqlx::query_scalar("SELECT statement FROM filings WHERE bulk_job_id = $1 AND bulk_row = 1")
        .bind(id.parse::<Uuid>().unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(statement["total_assets"], 1000.0);
}

/// A tenant cannot fill the upload store (its unfinished jobs' files have a quota) nor take every runner (one
/// job of it runs at a time here), so another tenant's job runs while its big one does.
#[actix_web::test]
async fn a_tenant_can_neither_fill_the_upload_store_nor_hold_every_runner() {
    let big = annual_csv(1000, 30).into_bytes();
    let small = annual_csv(5, 2).into_bytes();
    let quota = (big.len() + small.len() + 10) as u64;
    let app = spawn_app_with(|s| {
        s.bulk.max_stored_bytes_per_tenant = quota;
        s.bulk.max_running_jobs = 2;
        s.bulk.max_running_jobs_per_tenant = 1;
        s.bulk.chunk_rows = 100;
        s.bulk.chunks_in_flight = 1;
    })
    .await;
    let demo = app.demo().await;
    let token = demo.token(Role::OrgMember).to_owned();
    let a_big = submit(&app, &token, "big.csv", big, "annual").await;
    let a_small = submit(&app, &token, "small.csv", small.clone(), "annual").await;
    let (status, refused) = upload(
        &app,
        &token,
        "/api/v1/bulk-jobs",
        "third.csv",
        small.clone(),
        &[("type", "annual")],
    )
    .await;
    assert_eq!(status, 413, "{refused:#}");
    assert_eq!(refused["error"]["details"]["reason"], "TENANT_STORAGE_QUOTA");
    assert_eq!(refused["error"]["details"]["max_bytes"], quota);

    let sa = demo.token(Role::SuperAdmin).to_owned();
    let tenant_b = app.second_tenant(&sa, "BCO").await;
    let b_org: Uuid = sqlx::query_scalar("SELECT id FROM organizations WHERE name = 'B1'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let (status, answer) = upload(
        &app,
        &tenant_b.admin_token,
        "/api/v1/bulk-jobs",
        "b.csv",
        small.clone(),
        &[("type", "annual"), ("organization_id", &b_org.to_string())],
    )
    .await;
    assert_eq!(status, 202, "{answer:#}");
    let b_job: Uuid = answer["data"]["id"].as_str().unwrap().parse().unwrap();

    // While A's big job runs, A's small one waits and B's runs to its end.
    let status_of = |id: Uuid| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT status::text FROM bulk_jobs WHERE id = $1")
                .bind(id)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    let (a_big, a_small): (Uuid, Uuid) = (a_big.parse().unwrap(), a_small.parse().unwrap());
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut b_done_while_a_ran = false;
    loop {
        let (big, small, b) = (status_of(a_big).await, status_of(a_small).await, status_of(b_job).await);
        assert!(
            !(big == "processing" && small == "processing"),
            "two of A's jobs ran at once"
        );
        if big == "processing" && small == "queued" && b == "completed" {
            b_done_while_a_ran = true;
        }
        if big == "completed" && small == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "A's jobs did not finish: {big}, {small}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(b_done_while_a_ran, "B's job did not run beside A's big one");
    // A's files left the store with its jobs: the quota has room again.
    submit(&app, &token, "third.csv", small, "annual").await;
}

/// A file the upload store gives back damaged (its digest differs from the one stored with it) fails its job
/// with the reason, once, and the tenant's next job runs.
#[actix_web::test]
async fn a_job_whose_file_is_damaged_in_the_store_fails_alone() {
    let app = spawn_app_with(|s| {
        s.bulk.max_running_jobs_per_tenant = 1;
        s.bulk.chunk_rows = 100;
        s.bulk.chunks_in_flight = 1;
    })
    .await;
    let demo = app.demo().await;
    let token = demo.token(Role::OrgMember).to_owned();
    // The first job holds the tenant's only slot while the second's stored digest is altered.
    let first = submit(&app, &token, "big.csv", annual_csv(1000, 10).into_bytes(), "annual").await;
    let damaged = submit(&app, &token, "small.csv", annual_csv(5, 2).into_bytes(), "annual").await;
    let (js, ns) = app.jetstream().await;
    let bucket = js.get_object_store(ns.uploads_bucket()).await.unwrap();
    let name = format!("{}/{damaged}.csv", demo.setup.tenant_id);
    let mut info = bucket.info(&name).await.unwrap();
    info.digest = Some("SHA-256=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_owned());
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE, &name);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Rollup", "sub");
    js.publish_with_headers(
        format!("$O.{}.M.{encoded}", ns.uploads_bucket()),
        headers,
        serde_json::to_vec(&info).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let third = submit(&app, &token, "third.csv", annual_csv(5, 2).into_bytes(), "annual").await;

    let job = finished(&app, &token, &damaged).await;
    assert_eq!(job["status"], "failed");
    let message = job["error_message"].as_str().unwrap_or_default();
    assert!(message.contains("damaged"), "{job:#}");
    assert_eq!(finished(&app, &token, &first).await["status"], "completed");
    assert_eq!(finished(&app, &token, &third).await["status"], "completed");
    // The damaged file left the store with its job.
    assert!(bucket.get(&name).await.is_err());
}

#[actix_web::test]
async fn a_company_a_job_creates_is_found_at_once_by_the_ingest_that_looked_for_it_before() {
    // The ingest keeps what it found for a symbol (here: nothing) for an hour: only the job's announcement of the
    // company it created can end that copy.
    let app = spawn_app_with(|s| s.pipeline.lookup_ttl_ms = 3_600_000).await;
    let demo = app.demo().await;
    let token = demo.token(Role::OrgMember).to_owned();
    let (js, ns) = app.jetstream().await;
    let subject = ns.filings(&demo.setup.tenant_slug, "annual");
    publish(&js, subject.clone(), message("before-job", "C00000", 2010, safe())).await;
    let letters = dead_letters(&js, &ns, 1).await;
    assert_eq!(
        letters.first().map(|l| l.0.as_str()),
        Some("UNKNOWN_COMPANY"),
        "{letters:?}"
    );

    let id = submit(&app, &token, "one.csv", annual_csv(1, 1).into_bytes(), "annual").await;
    let job = finished(&app, &token, &id).await;
    assert_eq!(job["status"], "completed", "{job:#}");

    publish(&js, subject, message("after-job", "C00000", 2011, safe())).await;
    let scored: i64 = eventually(
        "the filing after the job to be scored",
        Duration::from_secs(30),
        || async {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM filings f JOIN companies c ON c.tenant_id = f.tenant_id AND c.id = f.company_id
             WHERE f.idempotency_key = 'after-job' AND c.symbol = 'C00000'",
            )
            .fetch_one(&app.db)
            .await
            .unwrap();
            (n > 0).then_some(n)
        },
    )
    .await;
    assert_eq!(scored, 1);
    // Nothing else went to the dead letters (the filing was not refused and then retried).
    let mut dead = js.get_stream(ns.stream_name("DEAD_LETTERS")).await.unwrap();
    assert_eq!(dead.info().await.unwrap().state.messages, 1);
}
