//! Hostile input: each case was reproduced against a release build (issue 24) and answered with a 5xx, a
//! stall or an abort of the process. Each one now gets a stable code, fails alone, and the service goes on.

use std::{io::Write, time::Duration};

use pdscore::auth::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    bulk::{ANNUAL_HEADER, annual_csv, finished, text, upload},
    helpers::{data, eventually, id, spawn_app, spawn_app_with},
    pipeline::{company_id, dead_letters, message, publish, safe},
};

fn assert_control_character(what: &str, (status, answer): (u16, Value)) {
    assert_eq!(status, 422, "{what}: {answer:#}");
    assert_eq!(answer["error"]["code"], "VALIDATION_ERROR", "{what}");
    assert_eq!(
        answer["error"]["details"]["reason"], "CONTROL_CHARACTER",
        "{what}: {answer:#}"
    );
}

#[actix_web::test]
async fn a_control_character_is_refused_by_every_http_decoder_with_a_stable_code() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let token = demo.token(Role::OrgMember).to_owned();
    let (_, list) = app.call("GET", "/api/v1/companies", Some(&token), None).await;
    let company = list["data"]["items"][0]["id"].as_str().unwrap().to_owned();

    // Was a 500 (PostgreSQL refused the e-mail).
    let login = json!({ "email": "member\u{0}@demo.example.com", "password": "x" });
    assert_control_character(
        "login",
        app.call("POST", "/api/v1/auth/login", None, Some(&login)).await,
    );
    let filing = json!({ "type": "annual", "reporting_year": 2024, "ratios": safe(), "filing_id": "p\u{0}1" });
    assert_control_character(
        "filing_id",
        app.call(
            "POST",
            &format!("/api/v1/companies/{company}/predictions"),
            Some(&token),
            Some(&filing),
        )
        .await,
    );
    let ratio_name = json!({ "type": "annual", "reporting_year": 2024, "ratios": { "return\u{7f}on_assets": 1 } });
    assert_control_character(
        "a ratio's name",
        app.call(
            "POST",
            &format!("/api/v1/companies/{company}/predictions"),
            Some(&token),
            Some(&ratio_name),
        )
        .await,
    );
    let company_body = json!({ "symbol": "NULCO", "name": "Nul\u{0}Co" });
    assert_control_character(
        "company name",
        app.call(
            "POST",
            &format!("/api/v1/organizations/{}/companies", demo.setup.organization_id),
            Some(demo.token(Role::OrgAdmin)),
            Some(&company_body),
        )
        .await,
    );
    assert_control_character(
        "query string",
        app.call("GET", "/api/v1/companies?q=AC%00ME", Some(&token), None).await,
    );

    // Text that only looks like an escape is text; the service is still up and scoring.
    let fine = json!({ "type": "annual", "reporting_year": 2024, "ratios": safe(), "filing_id": "literal \\u0000" });
    let (status, answer) = app
        .call(
            "POST",
            &format!("/api/v1/companies/{company}/predictions"),
            Some(&token),
            Some(&fine),
        )
        .await;
    assert_eq!(status, 201, "{answer:#}");
    assert_eq!(app.health().await.0, 200);
}

/// Runs an annual CSV as a bulk job to its end: the job's id, and its status, succeeded and failed rows.
async fn annual_job(
    app: &crate::helpers::TestApp,
    token: &str,
    name: &str,
    csv: String,
) -> (String, (Option<String>, Option<i64>, Option<i64>)) {
    let (status, answer) = upload(
        app,
        token,
        "/api/v1/bulk-jobs",
        name,
        csv.into_bytes(),
        &[("type", "annual")],
    )
    .await;
    assert_eq!(status, 202, "{answer:#}");
    let job = answer["data"]["id"].as_str().unwrap().to_owned();
    let done = finished(app, token, &job).await;
    let counts = (
        done["status"].as_str().map(str::to_owned),
        done["succeeded_rows"].as_i64(),
        done["failed_rows"].as_i64(),
    );
    (job, counts)
}

#[actix_web::test]
async fn a_bulk_row_with_a_control_character_fails_alone_and_the_job_completes() {
    let app = spawn_app_with(|s| s.bulk.chunk_rows = 100).await;
    let demo = app.demo().await;
    let token = demo.token(Role::OrgMember).to_owned();
    // Row 301 of 400, as reproduced: the job stayed `processing` with 0 rows committed, holding a slot forever.
    let mut rows: Vec<String> = annual_csv(80, 5).lines().map(str::to_owned).collect();
    rows[301] = rows[301].replacen("Company", "Com\u{0}pany", 1);
    // A name a spreadsheet would run as a formula: written as text in the results file.
    for row in &mut rows[1..=5] {
        *row = row.replacen("Company 0", r#""=HYPERLINK(""http://x.example"",""x"")""#, 1);
    }
    let csv = rows.join("\n") + "\n";
    let (job, counts) = annual_job(&app, &token, "nul.csv", csv).await;
    assert_eq!(counts, (Some("completed".into()), Some(399), Some(1)));
    let (_, errors) = text(&app, &token, &format!("/api/v1/bulk-jobs/{job}/errors")).await;
    let lines: Vec<&str> = errors.lines().collect();
    assert_eq!(lines.len(), 2, "{errors}");
    assert!(lines[1].starts_with("301,CONTROL_CHARACTER,"), "{errors}");
    assert!(lines[1].contains("Com\u{fffd}pany"), "kept printable: {errors}");
    let (_, results) = text(&app, &token, &format!("/api/v1/bulk-jobs/{job}/results")).await;
    let first = results.lines().nth(1).unwrap();
    assert!(
        first.contains(r#""'=HYPERLINK(""http://x.example"",""x"")""#),
        "{first}"
    );
}

#[actix_web::test]
async fn an_idempotency_key_names_one_filing_of_one_organization_and_source() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let admin = demo.token(Role::TenantAdmin).to_owned();
    let member_a = demo.token(Role::OrgMember).to_owned();
    let tenant = demo.setup.tenant_id;
    let (_, list) = app.call("GET", "/api/v1/companies", Some(&member_a), None).await;
    let companies: Vec<Uuid> = list["data"]["items"].as_array().unwrap().iter().map(id).collect();
    let (company_a, other_a) = (companies[0], companies[1]);
    let org_b = id(&data(
        &app,
        "POST",
        &format!("/api/v1/tenants/{tenant}/organizations"),
        &admin,
        json!({ "name": "B" }),
    )
    .await);
    let company_b = id(&data(
        &app,
        "POST",
        &format!("/api/v1/organizations/{org_b}/companies"),
        &admin,
        json!({ "symbol": "BEE", "name": "Bee" }),
    )
    .await);
    data(
        &app,
        "POST",
        &format!("/api/v1/tenants/{tenant}/users"),
        &admin,
        json!({ "email": "member@b.example.com", "role": "org_member", "organization_id": org_b,
                "password": "violet-quartz-harbor-7319" }),
    )
    .await;
    let member_b = app.login("member@b.example.com", "violet-quartz-harbor-7319").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let post = |token: String, company: Uuid, year: u16| {
        let app = &app;
        async move {
            let body = json!({ "type": "annual", "reporting_year": year, "ratios": safe(), "filing_id": "K" });
            app.call(
                "POST",
                &format!("/api/v1/companies/{company}/predictions"),
                Some(&token),
                Some(&body),
            )
            .await
        }
    };

    let (status, first) = post(member_a.clone(), company_a, 2024).await;
    assert_eq!(status, 201, "{first:#}");
    // Was a 500, and B's filing never scored: another organization's key is not this one's business.
    let (status, b) = post(member_b, company_b, 2024).await;
    assert_eq!(status, 201, "{b:#}");
    assert_eq!(b["data"]["company_id"], json!(company_b));
    assert_ne!(b["data"]["id"], first["data"]["id"]);
    // Was 200 with company A's prediction: the key names A's filing, not one of another company.
    let (status, conflict) = post(admin.clone(), other_a, 2024).await;
    assert_eq!(status, 409, "{conflict:#}");
    assert_eq!(conflict["error"]["code"], "CONFLICT");
    assert!(
        conflict["error"]["message"].as_str().unwrap().contains("\"K\""),
        "{conflict:#}"
    );
    // Another content under the key is not the same filing either; the same is.
    let (status, _) = post(admin.clone(), company_a, 2025).await;
    assert_eq!(status, 409);
    let (status, again) = post(admin, company_a, 2024).await;
    assert_eq!((status, &again["data"]["id"]), (200, &first["data"]["id"]));
}

/// A real workbook (one header row) whose shared-strings table is made to declare `unique_count` strings.
fn workbook_declaring(unique_count: &str) -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    for (column, name) in ["company_symbol", "company_name", "reporting_year", "return_on_assets"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, column as u16, *name).unwrap();
    }
    let original = book.save_to_buffer().unwrap();
    let mut source = zip::ZipArchive::new(std::io::Cursor::new(original)).unwrap();
    let mut patched = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..source.len() {
        let mut part = source.by_index(i).unwrap();
        let name = part.name().unwrap().into_owned();
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut part, &mut text).unwrap();
        if name == "xl/sharedStrings.xml" {
            let xml = String::from_utf8(text).unwrap();
            let start = xml.find("uniqueCount=\"").unwrap() + "uniqueCount=\"".len();
            let end = start + xml[start..].find('"').unwrap();
            text = format!("{}{unique_count}{}", &xml[..start], &xml[end..]).into_bytes();
        }
        patched
            .start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        patched.write_all(&text).unwrap();
    }
    patched.finish().unwrap().into_inner()
}

#[actix_web::test]
async fn a_workbook_declaring_an_absurd_count_is_refused_and_the_service_keeps_serving() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let token = demo.token(Role::OrgMember).to_owned();
    let upload = |bytes: Vec<u8>| {
        let (app, token) = (&app, token.clone());
        async move {
            upload(
                app,
                &token,
                "/api/v1/bulk-jobs",
                "book.xlsx",
                bytes,
                &[("type", "annual")],
            )
            .await
        }
    };
    // The reproduced file (1 KB): the process aborted reserving 240,000,000,000,000,000 bytes.
    for _ in 0..3 {
        let (status, answer) = upload(workbook_declaring("10000000000000000")).await;
        assert_eq!(status, 422, "{answer:#}");
        assert_eq!(answer["error"]["details"]["reason"], "NOT_A_SPREADSHEET");
    }
    assert_eq!(app.health().await.0, 200);
    // The same workbook with its true count is read (its header is checked, then the job queued).
    let (status, answer) = upload(workbook_declaring("4")).await;
    assert_eq!(status, 202, "{answer:#}");
}

/// Reads a live stream until a frame holds `needle`, for at most `within`; the text read.
async fn read_until(stream: &mut reqwest::Response, needle: &str, within: Duration) -> String {
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + within;
    while !text.contains(needle) {
        match tokio::time::timeout_at(deadline, stream.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(_) => break,
            Err(_) => panic!("no {needle:?} within {within:?}; read: {text}"),
        }
    }
    text
}

#[actix_web::test]
async fn a_live_stream_ends_with_its_session_and_streams_are_capped_per_user() {
    let app = spawn_app_with(|s| {
        s.application.live_stream_recheck_secs = 1;
        s.application.live_streams_per_user = 2;
    })
    .await;
    let demo = app.demo().await;
    let analyst = demo.setup.user(Role::OrgMember);
    let token = app.login(&analyst.email, &analyst.password).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let open = |path: &'static str| {
        let (app, token) = (&app, token.clone());
        async move {
            app.client
                .get(format!("{}{path}", app.address))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    let mut alerts = open("/api/v1/alerts/stream").await;
    assert_eq!(alerts.status(), 200);
    let second = open("/api/v1/alerts/stream").await;
    assert_eq!(second.status(), 200);
    let third = open("/api/v1/alerts/stream").await;
    assert_eq!(third.status(), 429, "a third stream of one user");
    drop(second);
    let reopened = eventually("a closed stream's place", Duration::from_secs(10), || async {
        let response = open("/api/v1/alerts/stream").await;
        (response.status() == 200).then_some(response)
    })
    .await;

    // Was: a stream opened before logout still delivered the next alert.
    let (status, _) = app.call("POST", "/api/v1/auth/logout", Some(&token), None).await;
    assert_eq!(status, 200);
    let text = read_until(&mut alerts, "event: end", Duration::from_secs(15)).await;
    assert!(text.contains("session has ended"), "{text}");
    assert!(
        alerts.chunk().await.unwrap().is_none(),
        "the stream is closed after its end frame"
    );
    drop(reopened);
}

/// Company symbols outside the one rule (`pdscore_actors::domain::CompanySymbol`): a blank, a letter outside
/// A-Z, SQL, 33 characters.
fn bad_symbols() -> Vec<String> {
    vec![
        "A B".into(),
        "ÄCME".into(),
        "X';DROP TABLE companies;--".into(),
        "S".repeat(33),
    ]
}

/// Filing ids outside the one rule (`pdscore_actors::domain::FilingKey`): empty, 201 characters.
fn bad_filing_ids() -> Vec<String> {
    vec![String::new(), "k".repeat(201)]
}

/// A filing's symbol and id are checked by the same code whichever way it comes: HTTP (AccuNode's route, which
/// names the company by symbol, and the product's, which takes a filing id), NATS, and a bulk file (whose
/// rows have no filing id: a row's key is its job and row number). Each bad value is refused the same way,
/// with `VALIDATION_ERROR` naming the field, and nothing is stored.
#[actix_web::test]
async fn a_bad_symbol_or_filing_id_is_refused_alike_over_http_nats_and_bulk() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let token = demo.token(Role::OrgMember).to_owned();
    let admin = demo.token(Role::OrgAdmin).to_owned();
    let organization = demo.setup.organization_id;
    let acme = company_id(&app, &token, "ACME").await;
    let (js, ns) = app.jetstream().await;
    let annual = ns.filings(&demo.setup.tenant_slug, "annual");

    for symbol in bad_symbols() {
        let accunode = json!({ "company_symbol": symbol, "company_name": "Bad Co", "reporting_year": 2024,
                               "return_on_assets": 4.2 });
        let (status, answer) = app
            .call("POST", "/api/v1/predictions/annual", Some(&token), Some(&accunode))
            .await;
        assert_eq!(
            (
                status,
                answer["error"]["code"].as_str(),
                answer["error"]["details"]["field"].as_str()
            ),
            (422, Some("VALIDATION_ERROR"), Some("symbol")),
            "{symbol:?}: {answer:#}"
        );
        let company = json!({ "symbol": symbol, "name": "Bad Co" });
        let path = format!("/api/v1/organizations/{organization}/companies");
        let (status, answer) = app.call("POST", &path, Some(&admin), Some(&company)).await;
        assert_eq!(
            (status, answer["error"]["details"]["field"].as_str()),
            (422, Some("symbol")),
            "{symbol:?}: {answer:#}"
        );
    }
    for filing_id in bad_filing_ids() {
        let body = json!({ "type": "annual", "reporting_year": 2024, "ratios": safe(), "filing_id": filing_id });
        let path = format!("/api/v1/companies/{acme}/predictions");
        let (status, answer) = app.call("POST", &path, Some(&token), Some(&body)).await;
        assert_eq!(
            (
                status,
                answer["error"]["code"].as_str(),
                answer["error"]["details"]["field"].as_str()
            ),
            (422, Some("VALIDATION_ERROR"), Some("filing_id")),
            "{filing_id:?}: {answer:#}"
        );
    }

    // NATS: each bad message is a dead letter naming the field; a good one after them is scored.
    let mut published = 0;
    for (n, symbol) in bad_symbols().iter().enumerate() {
        publish(&js, annual.clone(), message(&format!("s-{n}"), symbol, 2024, safe())).await;
        published += 1;
    }
    for filing_id in bad_filing_ids() {
        publish(&js, annual.clone(), message(&filing_id, "ACME", 2024, safe())).await;
        published += 1;
    }
    let letters = dead_letters(&js, &ns, published).await;
    assert_eq!(letters.len(), published, "{letters:?}");
    // Ingest answers several messages at once: their dead letters come in any order.
    let mut fields: Vec<&str> = letters
        .iter()
        .map(|(code, reason)| {
            assert_eq!(code, "VALIDATION_ERROR", "{reason}");
            reason.split(':').next().unwrap()
        })
        .collect();
    let mut expected = vec!["symbol"; bad_symbols().len()];
    expected.extend(vec!["filing_id"; bad_filing_ids().len()]);
    fields.sort_unstable();
    expected.sort_unstable();
    assert_eq!(fields, expected, "{letters:?}");

    // Bulk: each row with a bad symbol fails alone, naming the symbol; the good row is scored.
    let mut csv = format!("{ANNUAL_HEADER}\n");
    for symbol in bad_symbols().iter().chain(["GOOD".to_owned()].iter()) {
        csv.push_str(&format!(
            "\"{}\",Bad Co,,,2024,,10,1,10,10,12\n",
            symbol.replace('"', "\"\"")
        ));
    }
    let (job, counts) = annual_job(&app, &token, "symbols.csv", csv).await;
    assert_eq!(
        counts,
        (Some("completed".into()), Some(1), Some(bad_symbols().len() as i64))
    );
    let (_, errors) = text(&app, &token, &format!("/api/v1/bulk-jobs/{job}/errors")).await;
    let rows: Vec<&str> = errors.lines().skip(1).collect();
    assert_eq!(rows.len(), bad_symbols().len(), "{errors}");
    for row in rows {
        assert!(
            row.contains(",VALIDATION_ERROR,") && row.contains("symbol: use 1-32 characters"),
            "{row}"
        );
    }

    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM companies WHERE name = 'Bad Co'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, 1, "only the good row's company exists");
}
