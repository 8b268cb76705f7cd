//! Management flows: CRUD with validation, pagination, filtering and sorting; scoping rules beyond the
//! matrix; the audit trail; bad input never reaching a 500.

use pdscore::auth::Role;
use serde_json::{Value, json};

use crate::helpers::{Demo, TestApp, spawn_app};

async fn demo_app() -> (TestApp, Demo) {
    let app = spawn_app().await;
    let demo = app.demo().await;
    (app, demo)
}

fn items(answer: &Value) -> Vec<Value> {
    answer["data"]["items"].as_array().unwrap().clone()
}

#[actix_web::test]
async fn companies_are_paginated_sorted_and_searchable() {
    let (app, demo) = demo_app().await;
    let token = demo.token(Role::OrgMember);
    let org = demo.setup.organization_id;
    for (symbol, name, sector) in [("ZETA", "Zeta Steel", "Materials"), ("ALFA", "Alfa Foods", "Staples")] {
        let body = json!({ "symbol": symbol, "name": name, "sector": sector });
        let (status, answer) = app
            .call(
                "POST",
                &format!("/api/v1/organizations/{org}/companies"),
                Some(token),
                Some(&body),
            )
            .await;
        assert_eq!(status, 201, "{answer:#}");
    }
    let (_, page1) = app
        .call("GET", "/api/v1/companies?per_page=2&sort=symbol", Some(token), None)
        .await;
    assert_eq!(page1["data"]["total"], 5);
    assert_eq!(page1["data"]["total_pages"], 3);
    let symbols: Vec<_> = items(&page1).iter().map(|c| c["symbol"].clone()).collect();
    assert_eq!(symbols, [json!("ACME"), json!("ALFA")]);
    let (_, page3) = app
        .call(
            "GET",
            "/api/v1/companies?per_page=2&page=3&sort=-symbol",
            Some(token),
            None,
        )
        .await;
    assert_eq!(items(&page3)[0]["symbol"], "ACME");
    let (_, found) = app.call("GET", "/api/v1/companies?q=steel", Some(token), None).await;
    assert_eq!(items(&found).len(), 1);
    let (_, found) = app.call("GET", "/api/v1/companies?q=gl", Some(token), None).await;
    assert_eq!(items(&found)[0]["symbol"], "GLOBEX", "symbol prefix");
    let (_, found) = app
        .call("GET", "/api/v1/companies?sector=materials", Some(token), None)
        .await;
    assert_eq!(items(&found).len(), 1);
    let (_, none) = app.call("GET", "/api/v1/companies?q=%25", Some(token), None).await;
    assert_eq!(items(&none).len(), 0, "LIKE metacharacters are literal");
    for bad in [
        "sort=password_hash",
        "sort=symbol;DROP",
        "per_page=0",
        "per_page=1000",
        "page=-1",
        "unknown=1",
    ] {
        let (status, answer) = app
            .call("GET", &format!("/api/v1/companies?{bad}"), Some(token), None)
            .await;
        assert_eq!(status, 422, "{bad}: {answer:#}");
        assert_eq!(answer["error"]["code"], "VALIDATION_ERROR");
    }
}

#[actix_web::test]
async fn a_user_sees_only_assigned_companies_until_assigned_more() {
    let (app, demo) = demo_app().await;
    let viewer = demo.token(Role::User);
    let (_, visible) = app.call("GET", "/api/v1/companies", Some(viewer), None).await;
    let symbols: Vec<_> = items(&visible).iter().map(|c| c["symbol"].clone()).collect();
    assert_eq!(symbols, [json!("ACME")]);
    let (_, all) = app
        .call(
            "GET",
            "/api/v1/companies?q=globex",
            Some(demo.token(Role::OrgMember)),
            None,
        )
        .await;
    let globex = items(&all)[0]["id"].as_str().unwrap().to_owned();
    let (_, me) = app.call("GET", "/api/v1/auth/me", Some(viewer), None).await;
    let viewer_id = me["data"]["user"]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/companies/{globex}/assignments/{viewer_id}");
    let (status, answer) = app.call("PUT", &path, Some(demo.token(Role::OrgMember)), None).await;
    assert_eq!(status, 200, "{answer:#}");
    assert_eq!(answer["data"][0]["email"], "viewer@demo.example.com");
    let (_, visible) = app.call("GET", "/api/v1/companies", Some(viewer), None).await;
    assert_eq!(visible["data"]["total"], 2);
}

#[actix_web::test]
async fn roles_cannot_be_raised_above_the_granters_own() {
    let (app, demo) = demo_app().await;
    let tenant = demo.setup.tenant_id;
    let org = demo.setup.organization_id;
    let org_admin = demo.token(Role::OrgAdmin);
    let create =
        |role: &str| json!({ "email": format!("new-{role}@demo.example.com"), "role": role, "organization_id": org });
    let (status, _) = app
        .call(
            "POST",
            &format!("/api/v1/tenants/{tenant}/users"),
            Some(org_admin),
            Some(&create("tenant_admin")),
        )
        .await;
    assert_eq!(status, 403);
    let (status, answer) = app
        .call(
            "POST",
            &format!("/api/v1/tenants/{tenant}/users"),
            Some(org_admin),
            Some(&create("org_member")),
        )
        .await;
    assert_eq!(status, 201, "{answer:#}");
    let generated = answer["data"]["initial_password"].as_str().unwrap();
    assert_eq!(generated.len(), 24);
    app.login("new-org_member@demo.example.com", generated).await;
    let member_id = answer["data"]["user"]["id"].as_str().unwrap();

    let promote = json!({ "role": "tenant_admin" });
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/api/v1/users/{member_id}"),
            Some(org_admin),
            Some(&promote),
        )
        .await;
    assert_eq!(status, 403);
    let (_, admin) = app
        .call("GET", "/api/v1/auth/me", Some(demo.token(Role::TenantAdmin)), None)
        .await;
    let admin_id = admin["data"]["user"]["id"].as_str().unwrap();
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/api/v1/users/{admin_id}"),
            Some(org_admin),
            Some(&json!({ "full_name": "x" })),
        )
        .await;
    assert_eq!(status, 403, "an org admin cannot manage a tenant admin");
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/api/v1/users/{admin_id}"),
            Some(demo.token(Role::TenantAdmin)),
            Some(&json!({ "role": "user" })),
        )
        .await;
    assert_eq!(status, 403, "nobody demotes themself");
    let (status, answer) = app
        .call(
            "POST",
            &format!("/api/v1/tenants/{tenant}/users"),
            Some(demo.token(Role::TenantAdmin)),
            Some(&json!({ "email": "root2@demo.example.com", "role": "super_admin" })),
        )
        .await;
    assert_eq!(status, 422, "{answer:#}");
    let (status, answer) = app
        .call(
            "POST",
            &format!("/api/v1/tenants/{tenant}/users"),
            Some(demo.token(Role::TenantAdmin)),
            Some(&json!({ "email": "x@demo.example.com", "role": "user" })),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(answer["error"]["details"]["field"], "organization_id");
}

#[actix_web::test]
async fn every_mutation_is_audited_with_its_request_id_and_scoped_on_read() {
    let (app, demo) = demo_app().await;
    let org = demo.setup.organization_id;
    let response = app
        .client
        .post(format!("{}/api/v1/organizations/{org}/companies", app.address))
        .bearer_auth(demo.token(Role::OrgMember))
        .header("x-request-id", "audit-trail-check-1")
        .json(&json!({ "symbol": "AUD", "name": "Audited Ltd" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let company: Value = response.json().await.unwrap();
    let id = company["data"]["id"].as_str().unwrap();
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/api/v1/companies/{id}"),
            Some(demo.token(Role::OrgMember)),
            Some(&json!({ "name": "Audited plc" })),
        )
        .await;
    assert_eq!(status, 200);

    let (status, trail) = app
        .call(
            "GET",
            &format!("/api/v1/audit?target_id={id}"),
            Some(demo.token(Role::OrgAdmin)),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let rows = items(&trail);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["action"], "company.update");
    assert_eq!(rows[0]["before"]["name"], "Audited Ltd");
    assert_eq!(rows[0]["after"]["name"], "Audited plc");
    assert_eq!(rows[1]["action"], "company.create");
    assert_eq!(rows[1]["request_id"], "audit-trail-check-1");

    // Cursor pagination, newest first.
    let (_, first) = app
        .call(
            "GET",
            "/api/v1/audit?per_page=2",
            Some(demo.token(Role::TenantAdmin)),
            None,
        )
        .await;
    let cursor = first["data"]["next_cursor"].as_str().unwrap();
    let (_, second) = app
        .call(
            "GET",
            &format!("/api/v1/audit?per_page=2&cursor={cursor}"),
            Some(demo.token(Role::TenantAdmin)),
            None,
        )
        .await;
    assert!(items(&second)[0]["id"].as_str().unwrap() < cursor);
}

#[actix_web::test]
async fn a_failed_mutation_leaves_no_audit_row() {
    let (app, demo) = demo_app().await;
    let org = demo.setup.organization_id;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let duplicate = json!({ "symbol": "acme", "name": "Second Acme" });
    let (status, answer) = app
        .call(
            "POST",
            &format!("/api/v1/organizations/{org}/companies"),
            Some(demo.token(Role::OrgMember)),
            Some(&duplicate),
        )
        .await;
    assert_eq!(status, 409, "{answer:#}");
    assert_eq!(answer["error"]["code"], "CONFLICT");
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(before, after);
}

#[actix_web::test]
async fn an_organization_with_members_cannot_be_deleted() {
    let (app, demo) = demo_app().await;
    let org = demo.setup.organization_id;
    let (status, answer) = app
        .call(
            "DELETE",
            &format!("/api/v1/organizations/{org}"),
            Some(demo.token(Role::TenantAdmin)),
            None,
        )
        .await;
    assert_eq!(status, 409);
    assert!(answer["error"]["message"].as_str().unwrap().contains("users"));
}

#[actix_web::test]
async fn bad_input_gets_a_4xx_with_a_stable_code_never_a_500() {
    let (app, demo) = demo_app().await;
    let token = demo.token(Role::TenantAdmin);
    let org = demo.setup.organization_id;
    let companies = format!("/api/v1/organizations/{org}/companies");
    let cases: Vec<(&str, String, Value, u16, &str)> = vec![
        (
            "wrong type",
            companies.clone(),
            json!({ "symbol": 42, "name": "x" }),
            422,
            "VALIDATION_ERROR",
        ),
        (
            "unknown field",
            companies.clone(),
            json!({ "symbol": "OK", "name": "x", "is_admin": true }),
            422,
            "VALIDATION_ERROR",
        ),
        (
            "missing field",
            companies.clone(),
            json!({ "symbol": "OK" }),
            422,
            "VALIDATION_ERROR",
        ),
        (
            "very long string",
            companies.clone(),
            json!({ "symbol": "OK", "name": "n".repeat(100_000) }),
            422,
            "VALIDATION_ERROR",
        ),
        (
            "SQL in a symbol",
            companies.clone(),
            json!({ "symbol": "X'); DROP TABLE companies;--", "name": "x" }),
            422,
            "VALIDATION_ERROR",
        ),
        (
            "negative market cap",
            companies.clone(),
            json!({ "symbol": "NEG", "name": "x", "market_cap": -1 }),
            422,
            "VALIDATION_ERROR",
        ),
        (
            "control characters",
            companies.clone(),
            json!({ "symbol": "CTL", "name": "a\u{0}b" }),
            422,
            "VALIDATION_ERROR",
        ),
        ("not JSON", companies.clone(), Value::Null, 400, "BAD_REQUEST"),
        (
            "invalid uuid in path",
            "/api/v1/organizations/not-a-uuid/companies".into(),
            json!({}),
            404,
            "NOT_FOUND",
        ),
        (
            "bad e-mail",
            format!("/api/v1/tenants/{}/users", demo.setup.tenant_id),
            json!({ "email": "' OR 1=1 --", "role": "user", "organization_id": org }),
            422,
            "VALIDATION_ERROR",
        ),
        (
            "unknown role",
            format!("/api/v1/tenants/{}/users", demo.setup.tenant_id),
            json!({ "email": "r@demo.example.com", "role": "root" }),
            422,
            "VALIDATION_ERROR",
        ),
        (
            "bad risk scheme",
            format!("/api/v1/tenants/{}", demo.setup.tenant_id),
            json!({ "risk_thresholds": { "scheme": "thresholds", "low_max": 0.5, "medium_max": 0.1 } }),
            422,
            "VALIDATION_ERROR",
        ),
        (
            "base rate of 100 %",
            format!("/api/v1/tenants/{}", demo.setup.tenant_id),
            json!({ "base_rate": 1.0 }),
            422,
            "VALIDATION_ERROR",
        ),
        (
            "base rate as text",
            format!("/api/v1/tenants/{}", demo.setup.tenant_id),
            json!({ "base_rate": "2%" }),
            422,
            "VALIDATION_ERROR",
        ),
    ];
    for (what, path, body, status, code) in cases {
        let method = if path.ends_with(&demo.setup.tenant_id.to_string()) {
            "PATCH"
        } else {
            "POST"
        };
        let response = if body.is_null() {
            app.client
                .post(format!("{}{path}", app.address))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body("{\"symbol\": ")
                .send()
                .await
                .unwrap()
        } else {
            app.send(method, &path, Some(token), Some(&body)).await
        };
        let got = response.status().as_u16();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            (got, answer["error"]["code"].as_str().unwrap()),
            (status, code),
            "{what}: {answer:#}"
        );
    }
    // SQL metacharacters where text is free are stored literally.
    let body = json!({ "symbol": "QUOTE", "name": "O'Brien & Sons; DROP TABLE companies;--" });
    let (status, answer) = app.call("POST", &companies, Some(token), Some(&body)).await;
    assert_eq!(status, 201);
    assert_eq!(answer["data"]["name"], "O'Brien & Sons; DROP TABLE companies;--");
    // An oversized body is refused before parsing.
    let huge = json!({ "symbol": "BIG", "name": "x".repeat(2 * 1024 * 1024) });
    let (status, answer) = app.call("POST", &companies, Some(token), Some(&huge)).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (413, Some("PAYLOAD_TOO_LARGE"))
    );
    // A huge login body too.
    let login = json!({ "email": "a".repeat(5000), "password": "p" });
    let (status, _) = app.call("POST", "/api/v1/auth/login", None, Some(&login)).await;
    assert_eq!(status, 422);
}

#[actix_web::test]
async fn the_openapi_document_and_the_docs_page_are_served_offline() {
    let app = spawn_app().await;
    let (status, document) = app.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    assert!(document["paths"]["/api/v1/companies/{company_id}"]["patch"].is_object());
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());
    // Every operation has an id of its own (clients generated from the document name methods by them).
    let mut ids: Vec<&str> = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    ids.sort_unstable();
    let repeated: Vec<&str> = ids.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
    assert!(repeated.is_empty(), "operationIds repeat: {repeated:?}");
    assert!(
        ids.contains(&"companies_get") && ids.contains(&"tenants_get"),
        "{ids:?}"
    );
    let page = app.get("/api/v1/docs/").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger"), "{html}");
    let bundle = app.get("/api/v1/docs/swagger-ui-bundle.js").await;
    assert_eq!(bundle.status(), 200, "assets are in the binary");
    // A known path with an unsupported method: 405 with Allow.
    let response = app.send("PUT", "/api/v1/companies", None, None).await;
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET, HEAD");
}
