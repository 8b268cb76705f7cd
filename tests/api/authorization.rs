//! The authorization matrix: every route of the OpenAPI document (the route table) × every role, no token,
//! a forged, an expired and a revoked token, across tenants and organizations. A route missing from the
//! matrix, or a matrix row for a route that does not exist, fails the test.

use std::collections::BTreeSet;

use pdscore::{
    auth::{Role, keys},
    db::{
        companies::{self, NewCompany},
        organizations,
    },
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    auth::{claims_of, sign},
    helpers::{SIGNING_KEY, data, id, spawn_app_with},
};

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Role(Role),
    NoToken,
    Forged,
    Expired,
    Revoked,
}

const CALLERS: [Caller; 9] = [
    Caller::Role(Role::SuperAdmin),
    Caller::Role(Role::TenantAdmin),
    Caller::Role(Role::OrgAdmin),
    Caller::Role(Role::OrgMember),
    Caller::Role(Role::User),
    Caller::NoToken,
    Caller::Forged,
    Caller::Expired,
    Caller::Revoked,
];

/// What the request is about.
enum Target {
    Path(String),
    /// A company created for this cell in an organization (for DELETE).
    FreshCompany {
        tenant: Uuid,
        organization: Uuid,
    },
    /// An empty organization created for this cell (for DELETE).
    FreshOrganization {
        tenant: Uuid,
    },
}

enum Body {
    None,
    Json(Value),
    /// A body with a value unique to the cell (slugs, e-mails, symbols).
    Unique(Box<dyn Fn(&str) -> Value>),
    /// A bulk upload (multipart) of a one-row annual CSV into this organization.
    Upload(Uuid),
    /// A `text/csv` body.
    Csv(&'static str),
}

struct Row {
    method: &'static str,
    /// The route as the OpenAPI document names it.
    route: &'static str,
    target: Target,
    body: Body,
    /// Expected status for super_admin, tenant_admin, org_admin, org_member, user. Bad or missing tokens
    /// always get 401 on protected routes.
    expect: [u16; 5],
    /// Public routes answer the same whoever calls.
    public: bool,
    /// Use a fresh session of the caller (the route ends it).
    fresh_session: bool,
    /// The route streams (SSE): only the status and, on errors, the body are read.
    streaming: bool,
}

fn row(method: &'static str, route: &'static str, path: String, expect: [u16; 5]) -> Row {
    Row {
        method,
        route,
        target: Target::Path(path),
        body: Body::None,
        expect,
        public: false,
        fresh_session: false,
        streaming: false,
    }
}

impl Row {
    fn body(mut self, body: Value) -> Self {
        self.body = Body::Json(body);
        self
    }
    fn unique(mut self, body: impl Fn(&str) -> Value + 'static) -> Self {
        self.body = Body::Unique(Box::new(body));
        self
    }
    fn csv(mut self, text: &'static str) -> Self {
        self.body = Body::Csv(text);
        self
    }
    fn upload(mut self, organization_id: Uuid) -> Self {
        self.body = Body::Upload(organization_id);
        self
    }
    fn target(mut self, target: Target) -> Self {
        self.target = target;
        self
    }
    fn public(mut self) -> Self {
        self.public = true;
        self
    }
    fn fresh_session(mut self) -> Self {
        self.fresh_session = true;
        self
    }
    fn streaming(mut self) -> Self {
        self.streaming = true;
        self
    }
}

/// Two tenants: the demo tenant A (organizations A1 with every role, and A2) and tenant B (organization B1).
struct World {
    tenant_a: Uuid,
    org_a1: Uuid,
    org_a2: Uuid,
    tenant_b: Uuid,
    org_b1: Uuid,
    /// ACME, assigned to the demo `user`.
    assigned: Uuid,
    /// GLOBEX, in A1, not assigned.
    unassigned: Uuid,
    company_a2: Uuid,
    company_b1: Uuid,
    /// A prediction of ACME (A1) and one of B1's company.
    prediction_a1: Uuid,
    prediction_b1: Uuid,
    /// Finished bulk jobs: one submitted by the analyst in A1, one in B1.
    job_a1: Uuid,
    /// Finished replays: of A1 (by the analyst), of the whole tenant A, of B1.
    replay_a1: Uuid,
    replay_a: Uuid,
    replay_b1: Uuid,
    job_b1: Uuid,
    viewer: Uuid,
    analyst: Uuid,
    member_a2: Uuid,
    admin_b: Uuid,
    user_b1: Uuid,
}

#[actix_web::test]
async fn every_route_answers_every_caller_as_the_role_table_says() {
    let app = spawn_app_with(|s| s.auth.login_attempts_per_address = 10_000).await;
    let demo = app.demo().await;
    let sa = demo.token(Role::SuperAdmin).to_owned();
    let ta = demo.token(Role::TenantAdmin).to_owned();
    let tenant_a = demo.setup.tenant_id;
    let org_a1 = demo.setup.organization_id;

    let created = data(
        &app,
        "POST",
        "/api/v1/tenants",
        &sa,
        json!({
            "slug": "tenant-b", "name": "Tenant B",
            "admin": { "email": "admin@b.example.com", "password": "second tenant secret pass" }
        }),
    )
    .await;
    let tenant_b = id(&created["tenant"]);
    let admin_b = id(&created["admin"]);
    let tb = app.login("admin@b.example.com", "second tenant secret pass").await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let org_b1 = id(&data(
        &app,
        "POST",
        &format!("/api/v1/tenants/{tenant_b}/organizations"),
        &tb,
        json!({ "name": "B1" }),
    )
    .await);
    let company_b1 = id(&data(
        &app,
        "POST",
        &format!("/api/v1/organizations/{org_b1}/companies"),
        &tb,
        json!({ "symbol": "BONE", "name": "B One" }),
    )
    .await);
    let user_b1 = id(&data(
        &app,
        "POST",
        &format!("/api/v1/tenants/{tenant_b}/users"),
        &tb,
        json!({
            "email": "user@b.example.com", "role": "user", "organization_id": org_b1
        }),
    )
    .await["user"]);
    let org_a2 = id(&data(
        &app,
        "POST",
        &format!("/api/v1/tenants/{tenant_a}/organizations"),
        &ta,
        json!({ "name": "A2" }),
    )
    .await);
    let company_a2 = id(&data(
        &app,
        "POST",
        &format!("/api/v1/organizations/{org_a2}/companies"),
        &ta,
        json!({ "symbol": "ATWO", "name": "A Two" }),
    )
    .await);
    let member_a2 = id(&data(
        &app,
        "POST",
        &format!("/api/v1/tenants/{tenant_a}/users"),
        &ta,
        json!({
            "email": "member@a2.example.com", "role": "org_member", "organization_id": org_a2
        }),
    )
    .await["user"]);
    let (_, companies) = app.call("GET", "/api/v1/companies?per_page=200", Some(&sa), None).await;
    let company = |symbol: &str| {
        companies["data"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["symbol"] == symbol)
            .map(id)
            .unwrap()
    };
    let filing = json!({ "type": "annual", "reporting_year": 2024, "ratios": { "total_debt_to_ebitda": 2.0 } });
    let prediction_a1 = id(&data(
        &app,
        "POST",
        &format!("/api/v1/companies/{}/predictions", company("ACME")),
        &sa,
        filing.clone(),
    )
    .await);
    let prediction_b1 = id(&data(
        &app,
        "POST",
        &format!("/api/v1/companies/{company_b1}/predictions"),
        &sa,
        filing,
    )
    .await);
    let analyst = claims_of(demo.token(Role::OrgMember)).sub;
    let mut jobs = Vec::new();
    for (tenant, organization, by) in [(tenant_a, org_a1, Some(analyst)), (tenant_b, org_b1, None)] {
        let job = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO bulk_jobs (id, tenant_id, organization_id, created_by, prediction_type, status, file_name,
                                    file_format, file_size, total_rows, finished_at)
             VALUES ($1, $2, $3, $4, 'annual', 'completed', 'done.csv', 'csv', 10, 0, now())",
        )
        .bind(job)
        .bind(tenant)
        .bind(organization)
        .bind(by)
        .execute(&app.db)
        .await
        .unwrap();
        jobs.push(job);
    }
    let mut replays = Vec::new();
    for (tenant, organization, by) in [
        (tenant_a, Some(org_a1), Some(analyst)),
        (tenant_a, None, None),
        (tenant_b, Some(org_b1), None),
    ] {
        let replay = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO bulk_jobs (id, tenant_id, organization_id, kind, created_by, prediction_type, status, file_name,
                                    file_size, total_rows, finished_at, options)
             VALUES ($1, $2, $3, 'replay', $4, 'annual', 'completed', 'replay', 0, 0, now(),
                     '{\"model\": \"annual/accunode-scorecard@1\"}')",
        )
        .bind(replay)
        .bind(tenant)
        .bind(organization)
        .bind(by)
        .execute(&app.db)
        .await
        .unwrap();
        replays.push(replay);
    }
    let world = World {
        job_a1: jobs[0],
        replay_a1: replays[0],
        replay_a: replays[1],
        replay_b1: replays[2],
        job_b1: jobs[1],
        tenant_a,
        org_a1,
        org_a2,
        tenant_b,
        org_b1,
        assigned: company("ACME"),
        unassigned: company("GLOBEX"),
        company_a2,
        company_b1,
        prediction_a1,
        prediction_b1,
        viewer: claims_of(demo.token(Role::User)).sub,
        analyst,
        member_a2,
        admin_b,
        user_b1,
    };
    let rows = matrix(&world);

    // The matrix covers the route table exactly.
    let (_, document) = app.call("GET", "/api/v1/openapi.json", None, None).await;
    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let tested: BTreeSet<(String, String)> = rows.iter().map(|r| (r.method.to_owned(), r.route.to_owned())).collect();
    let untested: Vec<_> = documented.difference(&tested).collect();
    let unknown: Vec<_> = tested.difference(&documented).collect();
    assert!(
        untested.is_empty(),
        "routes missing from the authorization matrix: {untested:?}"
    );
    assert!(
        unknown.is_empty(),
        "matrix rows for routes that do not exist: {unknown:?}"
    );

    // Bad tokens: forged (a key not ours), expired (our key), revoked (a session that logged out).
    let member_claims = claims_of(demo.token(Role::OrgMember));
    let forged = sign(&member_claims, &keys::generate_private_key_pem().unwrap());
    let now = chrono::Utc::now().timestamp();
    let expired = sign(
        &pdscore::auth::tokens::Claims {
            iat: now - 3600,
            exp: now - 300,
            ..member_claims
        },
        &SIGNING_KEY.1,
    );
    let analyst = demo.setup.user(Role::OrgMember);
    let revoked = app.login(&analyst.email, &analyst.password).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.call("POST", "/api/v1/auth/logout", Some(&revoked), None).await.0,
        200
    );

    let mut failures = Vec::new();
    let mut cells = 0;
    for (n, row) in rows.iter().enumerate() {
        for (column, caller) in CALLERS.iter().enumerate() {
            let token = match caller {
                Caller::Role(role) if row.fresh_session => {
                    let user = demo.setup.user(*role);
                    Some(
                        app.login(&user.email, &user.password).await["access_token"]
                            .as_str()
                            .unwrap()
                            .to_owned(),
                    )
                }
                Caller::Role(role) => Some(demo.token(*role).to_owned()),
                Caller::NoToken => None,
                Caller::Forged => Some(forged.clone()),
                Caller::Expired => Some(expired.clone()),
                Caller::Revoked => Some(revoked.clone()),
            };
            let path = match &row.target {
                Target::Path(path) => path.clone(),
                Target::FreshCompany { tenant, organization } => {
                    let mut conn = app.db.acquire().await.unwrap();
                    let symbol = format!("F{n}X{column}");
                    let company = companies::insert(
                        &mut conn,
                        &NewCompany {
                            tenant_id: *tenant,
                            organization_id: *organization,
                            symbol: &symbol,
                            name: "Fresh",
                            sector: None,
                            market_cap: None,
                            created_by: None,
                        },
                    )
                    .await
                    .unwrap();
                    format!("/api/v1/companies/{}", company.id)
                }
                Target::FreshOrganization { tenant } => {
                    let mut conn = app.db.acquire().await.unwrap();
                    let organization = organizations::insert(&mut conn, *tenant, &format!("Fresh {n} {column}"), None)
                        .await
                        .unwrap();
                    format!("/api/v1/organizations/{}", organization.id)
                }
            };
            let body = match &row.body {
                Body::None => None,
                Body::Json(value) => Some(value.clone()),
                Body::Unique(make) => Some(make(&format!("m{n}c{column}"))),
                Body::Upload(_) | Body::Csv(_) => None,
            };
            let expected = match caller {
                _ if row.public => row.expect[0],
                Caller::Role(role) => row.expect[Role::ALL.iter().position(|r| r == role).unwrap()],
                _ => 401,
            };
            let (status, answer) = if let Body::Upload(organization) = &row.body {
                let csv =
                    format!("company_symbol,company_name,reporting_year,return_on_assets\nU{n}C{column},U,2024,3\n");
                let form = reqwest::multipart::Form::new()
                    .text("type", "annual")
                    .text("organization_id", organization.to_string())
                    .part(
                        "file",
                        reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("one.csv"),
                    );
                let mut request = app.client.post(format!("{}{path}", app.address)).multipart(form);
                if let Some(token) = token.as_deref() {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            } else if let Body::Csv(text) = &row.body {
                let mut request = app
                    .client
                    .post(format!("{}{path}", app.address))
                    .header("content-type", "text/csv")
                    .body(*text);
                if let Some(token) = token.as_deref() {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            } else if row.streaming {
                let response = app.send(row.method, &path, token.as_deref(), body.as_ref()).await;
                let status = response.status().as_u16();
                let answer = if status < 400 {
                    json!({ "success": true })
                } else {
                    response.json().await.unwrap_or(Value::Null)
                };
                (status, answer)
            } else {
                app.call(row.method, &path, token.as_deref(), body.as_ref()).await
            };
            cells += 1;
            // Every answer is an envelope with a stable error code, except the bare documents of public
            // operational routes (Prometheus text, JWKS).
            let code_ok = match answer.get("success") {
                Some(success) => *success == (status < 400) && (status < 400 || answer["error"]["code"].is_string()),
                None => status < 400 && row.public,
            };
            if status != expected || !code_ok {
                failures.push(format!(
                    "{} {path} as {caller:?}: expected {expected}, got {status} {}",
                    row.method,
                    answer.get("error").unwrap_or(&Value::Null)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cells wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cells >= 500, "{cells} cells");
}

/// A credit event on a day of its own for each cell (`m<row>c<column>`), so that each records one.
fn outcome(cell: &str) -> Value {
    let (row, column) = cell[1..].split_once('c').expect("m<row>c<column>");
    let day = row.parse::<i64>().unwrap() * 10 + column.parse::<i64>().unwrap();
    let date = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap() + chrono::Duration::days(day);
    json!({ "event": "default", "event_date": date.to_string(), "source": "servicing" })
}

fn matrix(w: &World) -> Vec<Row> {
    let (ta, tb) = (w.tenant_a, w.tenant_b);
    let (a1, a2, b1) = (w.org_a1, w.org_a2, w.org_b1);
    let all = [200, 200, 200, 200, 200];
    vec![
        // Operations and sign-in: public.
        row("GET", "/health", "/health".into(), all).public(),
        row("GET", "/health/live", "/health/live".into(), all).public(),
        row("GET", "/metrics", "/metrics".into(), all).public(),
        row("GET", "/.well-known/jwks.json", "/.well-known/jwks.json".into(), all).public(),
        row("POST", "/api/v1/auth/login", "/api/v1/auth/login".into(), [401; 5])
            .body(json!({ "email": "viewer@demo.example.com", "password": "wrong password here" }))
            .public(),
        row("POST", "/api/v1/auth/refresh", "/api/v1/auth/refresh".into(), [401; 5])
            .body(json!({ "refresh_token": "pdr_not-a-real-token" }))
            .public(),
        // The caller's own account.
        row("GET", "/api/v1/auth/me", "/api/v1/auth/me".into(), all),
        // Tenants.
        row(
            "GET",
            "/api/v1/tenants",
            "/api/v1/tenants".into(),
            [200, 403, 403, 403, 403],
        ),
        row(
            "POST",
            "/api/v1/tenants",
            "/api/v1/tenants".into(),
            [201, 403, 403, 403, 403],
        )
        .unique(|u| json!({ "slug": format!("t-{u}"), "name": "New tenant" })),
        row(
            "GET",
            "/api/v1/tenants/{tenant_id}",
            format!("/api/v1/tenants/{ta}"),
            [200, 200, 403, 403, 403],
        ),
        row(
            "GET",
            "/api/v1/tenants/{tenant_id}",
            format!("/api/v1/tenants/{tb}"),
            [200, 404, 403, 403, 403],
        ),
        row(
            "PATCH",
            "/api/v1/tenants/{tenant_id}",
            format!("/api/v1/tenants/{ta}"),
            [200, 200, 403, 403, 403],
        )
        .body(json!({ "name": "Demo Bank" })),
        row(
            "PATCH",
            "/api/v1/tenants/{tenant_id}",
            format!("/api/v1/tenants/{tb}"),
            [200, 404, 403, 403, 403],
        )
        .body(json!({ "alert_pd_change": 0.3 })),
        row(
            "PATCH",
            "/api/v1/tenants/{tenant_id}",
            format!("/api/v1/tenants/{ta}"),
            [200, 403, 403, 403, 403],
        )
        .body(json!({ "rate_limit_per_second": 50 })),
        // Deployed models: uploaded and activated by a super_admin; the activations read by whoever reads
        // predictions. (The uploads themselves: `deployments::a_model_is_verified_*`.)
        row("POST", "/api/v1/models", "/api/v1/models".into(), [415, 403, 403, 403, 403])
            .body(json!({ "entry": "not multipart" })),
        row(
            "POST",
            "/api/v1/models/activations",
            "/api/v1/models/activations".into(),
            [422, 403, 403, 403, 403],
        )
        .body(json!({ "model": "annual-5y/polish-gbdt@1" })),
        row("GET", "/api/v1/models/activations", "/api/v1/models/activations".into(), all),
        // A tenant's models: read by those who read predictions, chosen (and promoted) by its admin.
        row("GET", "/api/v1/tenants/{tenant_id}/models", format!("/api/v1/tenants/{ta}/models"), all),
        row(
            "GET",
            "/api/v1/tenants/{tenant_id}/models",
            format!("/api/v1/tenants/{tb}/models"),
            [200, 404, 404, 404, 404],
        ),
        row(
            "PUT",
            "/api/v1/tenants/{tenant_id}/models/{prediction_type}",
            format!("/api/v1/tenants/{ta}/models/annual"),
            [200, 200, 403, 403, 403],
        )
        .body(json!({ "challenger": null })),
        row(
            "PUT",
            "/api/v1/tenants/{tenant_id}/models/{prediction_type}",
            format!("/api/v1/tenants/{tb}/models/annual"),
            [200, 404, 403, 403, 403],
        )
        .body(json!({ "challenger": null })),
        // No challenger is set: a promotion finds none to promote.
        row(
            "POST",
            "/api/v1/tenants/{tenant_id}/models/{prediction_type}/promote",
            format!("/api/v1/tenants/{ta}/models/annual/promote"),
            [409, 409, 403, 403, 403],
        )
        .body(json!({ "challenger": "annual/accunode-scorecard@1" })),
        row(
            "POST",
            "/api/v1/tenants/{tenant_id}/models/{prediction_type}/promote",
            format!("/api/v1/tenants/{tb}/models/annual/promote"),
            [409, 404, 403, 403, 403],
        )
        .body(json!({ "challenger": "annual/accunode-scorecard@1" })),
        // Organizations.
        row(
            "GET",
            "/api/v1/tenants/{tenant_id}/organizations",
            format!("/api/v1/tenants/{ta}/organizations"),
            [200, 200, 200, 200, 403],
        ),
        row(
            "GET",
            "/api/v1/tenants/{tenant_id}/organizations",
            format!("/api/v1/tenants/{tb}/organizations"),
            [200, 404, 404, 404, 403],
        ),
        row(
            "POST",
            "/api/v1/tenants/{tenant_id}/organizations",
            format!("/api/v1/tenants/{ta}/organizations"),
            [201, 201, 403, 403, 403],
        )
        .unique(|u| json!({ "name": format!("Org {u}") })),
        row(
            "POST",
            "/api/v1/tenants/{tenant_id}/organizations",
            format!("/api/v1/tenants/{tb}/organizations"),
            [201, 404, 403, 403, 403],
        )
        .unique(|u| json!({ "name": format!("Org {u}") })),
        row(
            "GET",
            "/api/v1/organizations/{organization_id}",
            format!("/api/v1/organizations/{a1}"),
            [200, 200, 200, 200, 403],
        ),
        row(
            "GET",
            "/api/v1/organizations/{organization_id}",
            format!("/api/v1/organizations/{a2}"),
            [200, 200, 404, 404, 403],
        ),
        row(
            "GET",
            "/api/v1/organizations/{organization_id}",
            format!("/api/v1/organizations/{b1}"),
            [200, 404, 404, 404, 403],
        ),
        row(
            "PATCH",
            "/api/v1/organizations/{organization_id}",
            format!("/api/v1/organizations/{a1}"),
            [200, 200, 200, 403, 403],
        )
        .body(json!({ "description": "Corporate credit" })),
        row(
            "PATCH",
            "/api/v1/organizations/{organization_id}",
            format!("/api/v1/organizations/{a2}"),
            [200, 200, 404, 403, 403],
        )
        .body(json!({ "description": "Second desk" })),
        row(
            "PATCH",
            "/api/v1/organizations/{organization_id}",
            format!("/api/v1/organizations/{b1}"),
            [200, 404, 404, 403, 403],
        )
        .body(json!({ "description": "B desk" })),
        row(
            "DELETE",
            "/api/v1/organizations/{organization_id}",
            String::new(),
            [200, 200, 403, 403, 403],
        )
        .target(Target::FreshOrganization { tenant: ta }),
        row(
            "DELETE",
            "/api/v1/organizations/{organization_id}",
            String::new(),
            [200, 404, 403, 403, 403],
        )
        .target(Target::FreshOrganization { tenant: tb }),
        // Users.
        row(
            "GET",
            "/api/v1/tenants/{tenant_id}/users",
            format!("/api/v1/tenants/{ta}/users"),
            [200, 200, 200, 403, 403],
        ),
        row(
            "GET",
            "/api/v1/tenants/{tenant_id}/users",
            format!("/api/v1/tenants/{tb}/users"),
            [200, 404, 404, 403, 403],
        ),
        row(
            "POST",
            "/api/v1/tenants/{tenant_id}/users",
            format!("/api/v1/tenants/{ta}/users"),
            [201, 201, 201, 403, 403],
        )
        .unique(move |u| json!({ "email": format!("{u}@a.example.com"), "role": "user", "organization_id": a1 })),
        row(
            "POST",
            "/api/v1/tenants/{tenant_id}/users",
            format!("/api/v1/tenants/{ta}/users"),
            [201, 201, 422, 403, 403],
        )
        .unique(move |u| json!({ "email": format!("{u}@a2.example.com"), "role": "user", "organization_id": a2 })),
        row(
            "POST",
            "/api/v1/tenants/{tenant_id}/users",
            format!("/api/v1/tenants/{ta}/users"),
            [201, 201, 403, 403, 403],
        )
        .unique(|u| json!({ "email": format!("{u}@admins.example.com"), "role": "tenant_admin" })),
        row(
            "POST",
            "/api/v1/tenants/{tenant_id}/users",
            format!("/api/v1/tenants/{tb}/users"),
            [201, 404, 404, 403, 403],
        )
        .unique(|u| json!({ "email": format!("{u}@b.example.com"), "role": "tenant_admin" })),
        row(
            "GET",
            "/api/v1/users/{user_id}",
            format!("/api/v1/users/{}", w.analyst),
            [200, 200, 200, 403, 403],
        ),
        row(
            "GET",
            "/api/v1/users/{user_id}",
            format!("/api/v1/users/{}", w.member_a2),
            [200, 200, 404, 403, 403],
        ),
        row(
            "GET",
            "/api/v1/users/{user_id}",
            format!("/api/v1/users/{}", w.admin_b),
            [200, 404, 404, 403, 403],
        ),
        row(
            "PATCH",
            "/api/v1/users/{user_id}",
            format!("/api/v1/users/{}", w.viewer),
            [200, 200, 200, 403, 403],
        )
        .body(json!({ "full_name": "Demo Viewer" })),
        row(
            "PATCH",
            "/api/v1/users/{user_id}",
            format!("/api/v1/users/{}", w.member_a2),
            [200, 200, 404, 403, 403],
        )
        .body(json!({ "full_name": "A2 Member" })),
        row(
            "PATCH",
            "/api/v1/users/{user_id}",
            format!("/api/v1/users/{}", w.admin_b),
            [200, 404, 404, 403, 403],
        )
        .body(json!({ "full_name": "B Admin" })),
        // Companies.
        row("GET", "/api/v1/companies", "/api/v1/companies".into(), all),
        row("GET", "/api/v1/portfolio", "/api/v1/portfolio".into(), all),
        row(
            "GET",
            "/api/v1/organizations/{organization_id}/companies",
            format!("/api/v1/organizations/{a1}/companies"),
            all,
        ),
        row(
            "GET",
            "/api/v1/organizations/{organization_id}/companies",
            format!("/api/v1/organizations/{a2}/companies"),
            [200, 200, 404, 404, 404],
        ),
        row(
            "GET",
            "/api/v1/organizations/{organization_id}/companies",
            format!("/api/v1/organizations/{b1}/companies"),
            [200, 404, 404, 404, 404],
        ),
        row(
            "POST",
            "/api/v1/organizations/{organization_id}/companies",
            format!("/api/v1/organizations/{a1}/companies"),
            [201, 201, 201, 201, 403],
        )
        .unique(|u| json!({ "symbol": u, "name": "New company" })),
        row(
            "POST",
            "/api/v1/organizations/{organization_id}/companies",
            format!("/api/v1/organizations/{a2}/companies"),
            [201, 201, 404, 404, 403],
        )
        .unique(|u| json!({ "symbol": u, "name": "New company" })),
        row(
            "POST",
            "/api/v1/organizations/{organization_id}/companies",
            format!("/api/v1/organizations/{b1}/companies"),
            [201, 404, 404, 404, 403],
        )
        .unique(|u| json!({ "symbol": u, "name": "New company" })),
        row(
            "GET",
            "/api/v1/companies/{company_id}",
            format!("/api/v1/companies/{}", w.assigned),
            all,
        ),
        row(
            "GET",
            "/api/v1/companies/{company_id}",
            format!("/api/v1/companies/{}", w.unassigned),
            [200, 200, 200, 200, 404],
        ),
        row(
            "GET",
            "/api/v1/companies/{company_id}",
            format!("/api/v1/companies/{}", w.company_a2),
            [200, 200, 404, 404, 404],
        ),
        row(
            "GET",
            "/api/v1/companies/{company_id}",
            format!("/api/v1/companies/{}", w.company_b1),
            [200, 404, 404, 404, 404],
        ),
        row(
            "PATCH",
            "/api/v1/companies/{company_id}",
            format!("/api/v1/companies/{}", w.assigned),
            [200, 200, 200, 200, 403],
        )
        .body(json!({ "sector": "Industrials" })),
        row(
            "PATCH",
            "/api/v1/companies/{company_id}",
            format!("/api/v1/companies/{}", w.company_a2),
            [200, 200, 404, 404, 403],
        )
        .body(json!({ "market_cap": 1000000 })),
        row(
            "PATCH",
            "/api/v1/companies/{company_id}",
            format!("/api/v1/companies/{}", w.company_b1),
            [200, 404, 404, 404, 403],
        )
        .body(json!({ "market_cap": null })),
        row(
            "DELETE",
            "/api/v1/companies/{company_id}",
            String::new(),
            [200, 200, 200, 200, 403],
        )
        .target(Target::FreshCompany {
            tenant: ta,
            organization: a1,
        }),
        row(
            "DELETE",
            "/api/v1/companies/{company_id}",
            String::new(),
            [200, 200, 404, 404, 403],
        )
        .target(Target::FreshCompany {
            tenant: ta,
            organization: a2,
        }),
        row(
            "DELETE",
            "/api/v1/companies/{company_id}",
            String::new(),
            [200, 404, 404, 404, 403],
        )
        .target(Target::FreshCompany {
            tenant: tb,
            organization: b1,
        }),
        row(
            "GET",
            "/api/v1/companies/{company_id}/assignments",
            format!("/api/v1/companies/{}/assignments", w.assigned),
            [200, 200, 200, 200, 403],
        ),
        row(
            "GET",
            "/api/v1/companies/{company_id}/assignments",
            format!("/api/v1/companies/{}/assignments", w.company_b1),
            [200, 404, 404, 404, 403],
        ),
        row(
            "PUT",
            "/api/v1/companies/{company_id}/assignments/{user_id}",
            format!("/api/v1/companies/{}/assignments/{}", w.assigned, w.viewer),
            [200, 200, 200, 200, 403],
        ),
        row(
            "PUT",
            "/api/v1/companies/{company_id}/assignments/{user_id}",
            format!("/api/v1/companies/{}/assignments/{}", w.company_b1, w.user_b1),
            [200, 404, 404, 404, 403],
        ),
        row(
            "DELETE",
            "/api/v1/companies/{company_id}/assignments/{user_id}",
            format!("/api/v1/companies/{}/assignments/{}", w.unassigned, w.viewer),
            [200, 200, 200, 200, 403],
        ),
        row(
            "DELETE",
            "/api/v1/companies/{company_id}/assignments/{user_id}",
            format!("/api/v1/companies/{}/assignments/{}", w.company_b1, w.user_b1),
            [200, 404, 404, 404, 403],
        ),
        // Predictions.
        row(
            "POST",
            "/api/v1/companies/{company_id}/predictions",
            format!("/api/v1/companies/{}/predictions", w.assigned),
            [201, 201, 201, 201, 403],
        )
        .unique(|u| json!({ "type": "annual", "reporting_year": 2023, "filing_id": u, "ratios": { "return_on_assets": 3 } })),
        row(
            "POST",
            "/api/v1/companies/{company_id}/predictions",
            format!("/api/v1/companies/{}/predictions", w.company_a2),
            [201, 201, 404, 404, 403],
        )
        .unique(|u| json!({ "type": "quarterly", "reporting_year": 2023, "reporting_quarter": "Q1", "filing_id": u, "ratios": { "sga_margin": 9 } })),
        row(
            "POST",
            "/api/v1/companies/{company_id}/predictions",
            format!("/api/v1/companies/{}/predictions", w.company_b1),
            [201, 404, 404, 404, 403],
        )
        .unique(|u| json!({ "type": "annual", "reporting_year": 2023, "filing_id": u, "ratios": { "return_on_assets": 3 } })),
        row(
            "GET",
            "/api/v1/companies/{company_id}/predictions",
            format!("/api/v1/companies/{}/predictions", w.assigned),
            all,
        ),
        row(
            "GET",
            "/api/v1/companies/{company_id}/predictions",
            format!("/api/v1/companies/{}/predictions", w.unassigned),
            [200, 200, 200, 200, 404],
        ),
        row(
            "GET",
            "/api/v1/companies/{company_id}/predictions",
            format!("/api/v1/companies/{}/predictions", w.company_b1),
            [200, 404, 404, 404, 404],
        ),
        row(
            "GET",
            "/api/v1/predictions/{prediction_id}",
            format!("/api/v1/predictions/{}", w.prediction_a1),
            all,
        ),
        row(
            "GET",
            "/api/v1/predictions/{prediction_id}",
            format!("/api/v1/predictions/{}", w.prediction_b1),
            [200, 404, 404, 404, 404],
        ),
        row(
            "POST",
            "/api/v1/predictions/annual",
            "/api/v1/predictions/annual".into(),
            [201, 201, 201, 201, 403],
        )
        .unique(move |u| json!({ "company_symbol": u, "company_name": "Via AccuNode", "reporting_year": 2024,
            "organization_id": a1, "return_on_assets": "NM" })),
        row(
            "POST",
            "/api/v1/predictions/annual",
            "/api/v1/predictions/annual".into(),
            [201, 404, 404, 404, 403],
        )
        .unique(move |u| json!({ "company_symbol": u, "company_name": "Via AccuNode", "reporting_year": 2024,
            "organization_id": b1, "return_on_assets": 1.5 })),
        row(
            "POST",
            "/api/v1/predictions/quarterly",
            "/api/v1/predictions/quarterly".into(),
            [201, 201, 201, 201, 403],
        )
        .unique(move |u| json!({ "company_symbol": u, "company_name": "Via AccuNode", "reporting_year": 2024,
            "reporting_quarter": "Q3", "organization_id": a1, "sga_margin": 12.5 })),
        // Bulk jobs.
        // Credit events: recorded by those who score, read by those who read predictions.
        row(
            "POST",
            "/api/v1/companies/{company_id}/outcomes",
            format!("/api/v1/companies/{}/outcomes", w.assigned),
            [201, 201, 201, 201, 403],
        )
        .unique(outcome),
        row(
            "POST",
            "/api/v1/companies/{company_id}/outcomes",
            format!("/api/v1/companies/{}/outcomes", w.company_a2),
            [201, 201, 404, 404, 403],
        )
        .unique(outcome),
        row(
            "POST",
            "/api/v1/companies/{company_id}/outcomes",
            format!("/api/v1/companies/{}/outcomes", w.company_b1),
            [201, 404, 404, 404, 403],
        )
        .unique(outcome),
        row(
            "GET",
            "/api/v1/companies/{company_id}/outcomes",
            format!("/api/v1/companies/{}/outcomes", w.assigned),
            all,
        ),
        row(
            "GET",
            "/api/v1/companies/{company_id}/outcomes",
            format!("/api/v1/companies/{}/outcomes", w.unassigned),
            [200, 200, 200, 200, 404],
        ),
        row(
            "GET",
            "/api/v1/companies/{company_id}/outcomes",
            format!("/api/v1/companies/{}/outcomes", w.company_b1),
            [200, 404, 404, 404, 404],
        ),
        row(
            "POST",
            "/api/v1/outcomes/import",
            format!("/api/v1/outcomes/import?organization_id={a1}"),
            [200, 200, 200, 200, 403],
        )
        .csv("company_symbol,event,event_date,source\nACME,default,2001-02-03,servicing\n"),
        row(
            "POST",
            "/api/v1/outcomes/import",
            format!("/api/v1/outcomes/import?organization_id={b1}"),
            [200, 404, 404, 404, 403],
        )
        .csv("company_symbol,event,event_date,source\nACME,default,2001-02-03,servicing\n"),
        // Back-tests: whoever reads predictions, over what they may see; another tenant's or organization's
        // is not theirs to know about.
        row("GET", "/api/v1/backtests", format!("/api/v1/backtests?tenant_id={}", w.tenant_a), all),
        row(
            "GET",
            "/api/v1/backtests",
            format!("/api/v1/backtests?tenant_id={}", w.tenant_b),
            [200, 404, 404, 404, 404],
        ),
        row(
            "GET",
            "/api/v1/backtests",
            format!("/api/v1/backtests?tenant_id={}&organization_id={}", w.tenant_a, w.org_a2),
            [200, 200, 404, 404, 404],
        ),
        row(
            "GET",
            "/api/v1/comparisons",
            format!("/api/v1/comparisons?tenant_id={}&challenger=annual/accunode-scorecard@1", w.tenant_a),
            all,
        ),
        row(
            "GET",
            "/api/v1/comparisons",
            format!("/api/v1/comparisons?tenant_id={}&challenger=annual/accunode-scorecard@1", w.tenant_b),
            [200, 404, 404, 404, 404],
        ),
        // Drift: measured over the whole tenant, for the accounts that see the whole tenant.
        row(
            "GET",
            "/api/v1/drift",
            format!("/api/v1/drift?tenant_id={}", w.tenant_a),
            [200, 200, 403, 403, 403],
        ),
        row(
            "GET",
            "/api/v1/drift",
            format!("/api/v1/drift?tenant_id={}", w.tenant_b),
            [200, 404, 403, 403, 403],
        ),
        row("POST", "/api/v1/bulk-jobs", "/api/v1/bulk-jobs".into(), [202, 202, 202, 202, 403]).upload(w.org_a1),
        row("POST", "/api/v1/bulk-jobs", "/api/v1/bulk-jobs".into(), [202, 404, 404, 404, 403]).upload(w.org_b1),
        row(
            "POST",
            "/api/v1/predictions/annual/bulk-upload-async",
            "/api/v1/predictions/annual/bulk-upload-async".into(),
            [202, 202, 202, 202, 403],
        )
        .upload(w.org_a1),
        row(
            "POST",
            "/api/v1/predictions/quarterly/bulk-upload-async",
            "/api/v1/predictions/quarterly/bulk-upload-async".into(),
            [422, 404, 404, 404, 403],
        )
        .upload(w.org_b1),
        row("GET", "/api/v1/bulk-jobs", "/api/v1/bulk-jobs".into(), all),
        // Replays: asked for by those who score, in their scope; read like bulk jobs.
        row("POST", "/api/v1/replays", "/api/v1/replays".into(), [202, 202, 202, 202, 403])
            .body(json!({ "model": "annual/accunode-scorecard@1", "tenant_id": w.tenant_a })),
        row("POST", "/api/v1/replays", "/api/v1/replays".into(), [202, 404, 404, 404, 403]).body(
            json!({ "model": "annual/accunode-scorecard@1", "tenant_id": w.tenant_b, "organization_id": w.org_b1 }),
        ),
        row("GET", "/api/v1/replays/{id}", format!("/api/v1/replays/{}", w.replay_a1), [200, 200, 200, 200, 404]),
        row("GET", "/api/v1/replays/{id}", format!("/api/v1/replays/{}", w.replay_a), [200, 200, 404, 404, 404]),
        row("GET", "/api/v1/replays/{id}", format!("/api/v1/replays/{}", w.replay_b1), [200, 404, 404, 404, 404]),
        row("GET", "/api/v1/replays/{id}", format!("/api/v1/replays/{}", w.job_a1), [404, 404, 404, 404, 404]),
        row("GET", "/api/v1/bulk-jobs/{id}", format!("/api/v1/bulk-jobs/{}", w.job_a1), [200, 200, 200, 200, 404]),
        row("GET", "/api/v1/bulk-jobs/{id}", format!("/api/v1/bulk-jobs/{}", w.job_b1), [200, 404, 404, 404, 404]),
        row(
            "GET",
            "/api/v1/predictions/jobs/{id}/status",
            format!("/api/v1/predictions/jobs/{}/status", w.job_a1),
            [200, 200, 200, 200, 404],
        ),
        row(
            "GET",
            "/api/v1/bulk-jobs/{id}/events",
            format!("/api/v1/bulk-jobs/{}/events", w.job_b1),
            [200, 404, 404, 404, 404],
        )
        .streaming(),
        row(
            "GET",
            "/api/v1/bulk-jobs/{id}/results",
            format!("/api/v1/bulk-jobs/{}/results", w.job_a1),
            [200, 200, 200, 200, 404],
        )
        .streaming(),
        row(
            "GET",
            "/api/v1/bulk-jobs/{id}/errors",
            format!("/api/v1/bulk-jobs/{}/errors", w.job_b1),
            [200, 404, 404, 404, 404],
        )
        .streaming(),
        row(
            "POST",
            "/api/v1/bulk-jobs/{id}/cancel",
            format!("/api/v1/bulk-jobs/{}/cancel", w.job_a1),
            [200, 200, 200, 200, 403],
        ),
        // Alerts.
        row("GET", "/api/v1/models", "/api/v1/models".into(), all),
        row("GET", "/api/v1/alerts", "/api/v1/alerts".into(), all),
        row("GET", "/api/v1/alerts/stream", "/api/v1/alerts/stream".into(), all).streaming(),
        // Audit.
        row(
            "GET",
            "/api/v1/audit",
            "/api/v1/audit".into(),
            [200, 200, 200, 403, 403],
        ),
        row(
            "GET",
            "/api/v1/audit",
            format!("/api/v1/audit?tenant_id={tb}"),
            [200, 404, 404, 403, 403],
        ),
        // Sessions last: change-password ends other sessions, logout-all ends all of them.
        row("POST", "/api/v1/auth/logout", "/api/v1/auth/logout".into(), all).fresh_session(),
        row(
            "POST",
            "/api/v1/auth/change-password",
            "/api/v1/auth/change-password".into(),
            [422; 5],
        )
        .body(json!({ "current_password": "certainly not it", "new_password": "whatever it may be" })),
        row("POST", "/api/v1/auth/logout-all", "/api/v1/auth/logout-all".into(), all).fresh_session(),
    ]
}
