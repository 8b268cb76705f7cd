//! Realised credit events: recorded once per company, kind and date, audited, listed, imported from CSV, and
//! invisible to another tenant.

use pdscore::auth::Role;
use serde_json::{Value, json};

use crate::{helpers::spawn_app, pipeline::company_id};

#[actix_web::test]
async fn a_credit_event_is_recorded_once_audited_listed_and_kept_in_its_tenant() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let analyst = demo.token(Role::OrgMember).to_owned();
    let acme = company_id(&app, &analyst, "ACME").await;
    let path = format!("/api/v1/companies/{acme}/outcomes");
    let event = json!({ "event": "default", "event_date": "2024-03-31", "source": "court register",
                        "note": "missed the March coupon" });
    let (status, first) = app.call("POST", &path, Some(&analyst), Some(&event)).await;
    assert_eq!(status, 201, "{first:#}");
    assert_eq!(first["data"]["event"], "default");
    assert_eq!(first["data"]["event_date"], "2024-03-31");
    assert_eq!(first["data"]["company_symbol"], "ACME");
    assert_eq!(first["data"]["channel"], "api");
    // The same event again (another source says so too): the one on file, nothing written.
    let again = json!({ "event": "DEFAULT", "event_date": "2024-03-31", "source": "rating agency" });
    let (status, second) = app.call("POST", &path, Some(&analyst), Some(&again)).await;
    assert_eq!(status, 200, "{second:#}");
    assert_eq!(second["data"]["id"], first["data"]["id"]);
    assert_eq!(second["data"]["source"], "court register");

    for (body, field) in [
        (
            json!({ "event": "late", "event_date": "2024-03-31", "source": "x" }),
            "event",
        ),
        (
            json!({ "event": "default", "event_date": "31/03/2024", "source": "x" }),
            "event_date",
        ),
        (
            json!({ "event": "default", "event_date": "2024-02-30", "source": "x" }),
            "event_date",
        ),
        (
            json!({ "event": "default", "event_date": "2024-03-31", "source": "  " }),
            "source",
        ),
    ] {
        let (status, answer) = app.call("POST", &path, Some(&analyst), Some(&body)).await;
        assert_eq!(status, 422, "{body}: {answer:#}");
        assert_eq!(answer["error"]["details"]["field"], field, "{answer:#}");
    }
    let (status, _) = app
        .call(
            "POST",
            &path,
            Some(&analyst),
            Some(&json!({ "event": "default", "event_date": "2024-03-31",
                                                             "source": "a\u{0}b" })),
        )
        .await;
    assert_eq!(status, 422);

    let (status, list) = app.call("GET", &path, Some(&analyst), None).await;
    assert_eq!(status, 200);
    assert_eq!(list["data"]["total"], 1, "{list:#}");
    assert_eq!(list["data"]["items"][0]["id"], first["data"]["id"]);
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'outcome.record'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(audited, 1, "recorded once, audited once");

    // A read-only account sees its assigned company's events and records none.
    let viewer = demo.token(Role::User).to_owned();
    let (status, _) = app.call("GET", &path, Some(&viewer), None).await;
    assert_eq!(status, 200);
    let (status, _) = app.call("POST", &path, Some(&viewer), Some(&event)).await;
    assert_eq!(status, 403);
    // Another tenant cannot tell the company exists.
    let sa = demo.token(Role::SuperAdmin).to_owned();
    let other = app.second_tenant(&sa, "BCO").await;
    for (method, body) in [("GET", None), ("POST", Some(&event))] {
        let (status, answer) = app.call(method, &path, Some(&other.admin_token), body).await;
        assert_eq!(status, 404, "{method}: {answer:#}");
    }
}

async fn import(app: &crate::helpers::TestApp, token: &str, content_type: &str, body: &str) -> (u16, Value) {
    let response = app
        .client
        .post(format!("{}/api/v1/outcomes/import", app.address))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[actix_web::test]
async fn a_csv_of_credit_events_is_imported_row_by_row() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let analyst = demo.token(Role::OrgMember).to_owned();
    let csv = "company_symbol,event,event_date,source,note\n\
               ACME,default,2024-01-15,servicing,\n\
               globex,bankruptcy,2023-06-30,court register,chapter 11\n\
               NOSUCH,default,2024-01-15,servicing,\n\
               ACME,default,15/01/2024,servicing,\n\
               ,,,,\n\
               ACME,default,2024-01-15,another source,\n";
    let (status, answer) = import(&app, &analyst, "text/csv", csv).await;
    assert_eq!(status, 200, "{answer:#}");
    let report = &answer["data"];
    assert_eq!(report["recorded"], 2, "{report:#}");
    assert_eq!(report["already_recorded"], 1, "{report:#}");
    let failed: Vec<(i64, String)> = report["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["row"].as_i64().unwrap(),
                f["field"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(failed, [(4, "company_symbol".to_owned()), (5, "event_date".to_owned())]);
    let channels: Vec<String> = sqlx::query_scalar("SELECT channel FROM outcomes ORDER BY event_date")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(channels, ["csv", "csv"]);

    let (status, answer) = import(&app, &analyst, "text/csv", "company_symbol,event\nACME,default\n").await;
    assert_eq!(status, 422, "{answer:#}");
    assert_eq!(answer["error"]["details"]["reason"], "INVALID_FILE");
    let (status, _) = import(&app, &analyst, "application/json", csv).await;
    assert_eq!(status, 415);
    let (status, _) = import(&app, demo.token(Role::User), "text/csv", csv).await;
    assert_eq!(status, 403);
}

#[actix_web::test]
async fn credit_events_over_nats_are_recorded_once_and_bad_ones_end_in_dead_letters_with_their_reason() {
    let app = crate::helpers::spawn_app().await;
    let demo = app.demo().await;
    let analyst = demo.token(Role::OrgMember).to_owned();
    let acme = company_id(&app, &analyst, "ACME").await;
    let (js, ns) = app.jetstream().await;
    let subject = ns.outcomes(&demo.setup.tenant_slug);
    let event = json!({ "company_symbol": "acme", "event": "bankruptcy", "event_date": "2023-06-30",
                        "source": "court register" });
    // Twice (two upstream systems saying so): recorded once.
    for _ in 0..2 {
        crate::pipeline::publish(&js, subject.clone(), serde_json::to_vec(&event).unwrap()).await;
    }
    for (payload, _) in [
        (
            json!({ "company_symbol": "NOPE", "event": "default", "event_date": "2023-06-30", "source": "x" }),
            "UNKNOWN_COMPANY",
        ),
        (
            json!({ "company_symbol": "ACME", "event": "late", "event_date": "2023-06-30", "source": "x" }),
            "VALIDATION_ERROR",
        ),
        (
            json!({ "company_symbol": "ACME", "event": "default", "event_date": "2023-06-30", "source": "x", "extra": 1 }),
            "INVALID_MESSAGE",
        ),
        (
            json!({ "company_symbol": "ACME", "event": "default", "event_date": "2023-06-30", "source": "a\u{0}b" }),
            "CONTROL_CHARACTER",
        ),
    ] {
        crate::pipeline::publish(&js, subject.clone(), serde_json::to_vec(&payload).unwrap()).await;
    }
    crate::pipeline::publish(&js, ns.outcomes("no-such-tenant"), serde_json::to_vec(&event).unwrap()).await;
    let mut letters: Vec<String> = crate::pipeline::dead_letters(&js, &ns, 5)
        .await
        .into_iter()
        .map(|(code, _)| code)
        .collect();
    letters.sort();
    assert_eq!(
        letters,
        [
            "CONTROL_CHARACTER",
            "INVALID_MESSAGE",
            "UNKNOWN_COMPANY",
            "UNKNOWN_TENANT",
            "VALIDATION_ERROR"
        ]
    );
    let path = format!("/api/v1/companies/{acme}/outcomes");
    let listed = crate::helpers::eventually("the event recorded", std::time::Duration::from_secs(10), || async {
        let (_, list) = app.call("GET", &path, Some(&analyst), None).await;
        (list["data"]["total"] == 1).then_some(list)
    })
    .await;
    assert_eq!(listed["data"]["items"][0]["channel"], "nats");
    assert_eq!(listed["data"]["items"][0]["event"], "bankruptcy");
    let audited: Vec<String> = sqlx::query_scalar("SELECT actor_kind FROM audit_log WHERE action = 'outcome.record'")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(audited, ["nats"], "recorded once, audited once, by NATS");
}
