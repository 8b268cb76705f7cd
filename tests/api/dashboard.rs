//! The dashboard: its API (portfolio, models), its assets and headers, and end-to-end journeys in headless
//! Chromium (Debian's `chromium` and `chromedriver`, driven over WebDriver) against the running service with
//! real data. Each journey saves a screenshot of every page at 1366×768 and 390×844 under
//! `target/screenshots/` (not committed).

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator};
use pdscore::auth::Role;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use crate::{
    bulk::annual_csv,
    helpers::{Demo, TestApp, eventually, spawn_app, spawn_app_with, tallied_and_counted},
    pipeline::{message, publish, risky, safe},
};

/// The demo tenant with AccuNode's risk bands, GLOBEX scored for 2019-2022 (LOW, LOW, MEDIUM, MEDIUM: one
/// alert) and ACME for 2022 (LOW).
async fn scored_demo(app: &TestApp) -> Demo {
    let demo = app.demo().await;
    let admin = demo.token(Role::TenantAdmin).to_owned();
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/api/v1/tenants/{}", demo.setup.tenant_id),
            Some(&admin),
            Some(&json!({ "risk_thresholds": { "scheme": "accunode" } })),
        )
        .await;
    assert_eq!(status, 200);
    let history = [
        ("GLOBEX", 2019, safe()),
        ("GLOBEX", 2020, safe()),
        ("GLOBEX", 2021, risky()),
        ("GLOBEX", 2022, risky()),
        ("ACME", 2022, safe()),
    ];
    for (symbol, year, ratios) in history {
        file(app, &demo, symbol, year, ratios).await;
    }
    demo
}

/// Publishes an annual filing of `symbol` to NATS and waits until its prediction is committed.
async fn file(app: &TestApp, demo: &Demo, symbol: &str, year: u16, ratios: Value) {
    file_period(app, demo, symbol, year, None, ratios).await;
}

/// Publishes a filing of `symbol` for `year` (annual) or a quarter of it, and waits until it is scored.
async fn file_period(app: &TestApp, demo: &Demo, symbol: &str, year: u16, quarter: Option<u8>, ratios: Value) {
    let (js, ns) = app.jetstream().await;
    let key = format!("{symbol}-{year}-{quarter:?}");
    let mut filing: Value = serde_json::from_slice(&message(&key, symbol, year, ratios)).unwrap();
    let kind = match quarter {
        Some(q) => {
            filing["reporting_quarter"] = json!(format!("Q{q}"));
            "quarterly"
        }
        None => "annual",
    };
    let subject = ns.filings(&demo.setup.tenant_slug, kind);
    publish(&js, subject, serde_json::to_vec(&filing).unwrap()).await;
    eventually(&key, Duration::from_secs(20), || async {
        let found: Option<Uuid> = sqlx::query_scalar("SELECT id FROM filings WHERE idempotency_key = $1")
            .bind(&key)
            .fetch_optional(&app.db)
            .await
            .unwrap();
        let scored: Option<i64> = match found {
            Some(filing) => sqlx::query_scalar("SELECT count(*) FROM predictions WHERE filing_id = $1")
                .bind(filing)
                .fetch_optional(&app.db)
                .await
                .unwrap(),
            None => None,
        };
        scored.filter(|n| *n > 0)
    })
    .await;
}

/// How many portfolio answers the cache has served (process-wide: tests in parallel only add to it).
async fn cache_hits(app: &TestApp) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .find(|l| l.starts_with("pdscore_portfolio_cache_total{outcome=\"hit\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

fn items(answer: &Value) -> Vec<Value> {
    answer["data"]["items"].as_array().cloned().unwrap_or_default()
}

fn symbols(answer: &Value) -> Vec<String> {
    items(answer)
        .iter()
        .map(|i| i["company"]["symbol"].as_str().unwrap().to_owned())
        .collect()
}

/// The portfolio's read model — each company's risk on its row, kept by the commits that score it — says
/// what the history says (the latest prediction of the latest period, of the type scored last, and the PD of
/// the period before), after filings of both types arriving out of order, late, and the same period scored
/// again, several of one company in one batch; the migration that built the model from the history agrees
/// with the commits; and the tallies count the companies by level.
#[actix_web::test]
async fn the_portfolio_read_model_is_what_the_history_says() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let admin = demo.token(Role::TenantAdmin);
    let quarterly = |sga: f64| {
        json!({ "total_debt_to_ebitda": 2.0, "sga_margin": sga, "long_term_debt_to_total_capital": 30.0,
                "return_on_capital": 5.0 })
    };
    // (symbol, year, quarter, ratios) for three companies, in a fixed shuffled order.
    let mut plan = Vec::new();
    for symbol in ["ACME", "GLOBEX", "INITECH"] {
        for year in 2018..=2023u16 {
            plan.push((symbol, year, None, if year % 3 == 0 { risky() } else { safe() }));
        }
        for (year, quarter) in [(2022, 3), (2022, 4), (2023, 1), (2023, 2)] {
            plan.push((symbol, year, Some(quarter), quarterly(f64::from(quarter) * 17.0)));
        }
        // The same periods scored again, with other ratios.
        plan.push((symbol, 2023, None, risky()));
        plan.push((symbol, 2021, None, risky()));
        plan.push((symbol, 2023, Some(1), quarterly(70.0)));
    }
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    for i in (1..plan.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        plan.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let (js, ns) = app.jetstream().await;
    let filings = plan.len() as i64;
    for (n, (symbol, year, quarter, ratios)) in plan.into_iter().enumerate() {
        let mut filing: Value = serde_json::from_slice(&message(&format!("rm-{n}"), symbol, year, ratios)).unwrap();
        let kind = match quarter {
            Some(q) => {
                filing["reporting_quarter"] = json!(format!("Q{q}"));
                "quarterly"
            }
            None => "annual",
        };
        publish(
            &js,
            ns.filings(&demo.setup.tenant_slug, kind),
            serde_json::to_vec(&filing).unwrap(),
        )
        .await;
    }
    eventually("every filing scored", Duration::from_secs(30), || async {
        let scored: i64 = sqlx::query_scalar("SELECT count(*) FROM predictions WHERE NOT is_shadow")
            .fetch_one(&app.db)
            .await
            .unwrap();
        (scored == filings).then_some(())
    })
    .await;

    // The history's answer, read the way the portfolio read it before it had a model.
    let expected: Vec<(String, Option<Uuid>, Option<f64>)> = sqlx::query_as(
        "SELECT c.symbol, l.id, prev.probability FROM companies c
         LEFT JOIN LATERAL (
             SELECT * FROM (
                 (SELECT id, prediction_type, period_year, period_quarter, created_at FROM predictions p
                  WHERE p.company_id = c.id AND p.prediction_type = 'annual' AND NOT p.is_shadow
                  ORDER BY period_year DESC, period_quarter DESC, created_at DESC, id DESC LIMIT 1)
                 UNION ALL
                 (SELECT id, prediction_type, period_year, period_quarter, created_at FROM predictions p
                  WHERE p.company_id = c.id AND p.prediction_type = 'quarterly' AND NOT p.is_shadow
                  ORDER BY period_year DESC, period_quarter DESC, created_at DESC, id DESC LIMIT 1)
             ) latest ORDER BY created_at DESC, id DESC LIMIT 1) l ON true
         LEFT JOIN LATERAL (
             SELECT probability FROM predictions p
             WHERE p.company_id = c.id AND p.prediction_type = l.prediction_type AND NOT p.is_shadow
               AND (p.period_year, coalesce(p.period_quarter, 0)) < (l.period_year, coalesce(l.period_quarter, 0))
             ORDER BY period_year DESC, period_quarter DESC, created_at DESC, id DESC LIMIT 1) prev ON true
         WHERE c.tenant_id = $1 ORDER BY c.symbol",
    )
    .bind(demo.setup.tenant_id)
    .fetch_all(&app.db)
    .await
    .unwrap();
    let (status, portfolio) = app
        .call("GET", "/api/v1/portfolio?sort=symbol", Some(admin), None)
        .await;
    assert_eq!(status, 200, "{portfolio:#}");
    let served: Vec<(String, Option<Uuid>, Option<f64>)> = items(&portfolio)
        .iter()
        .map(|i| {
            (
                i["company"]["symbol"].as_str().unwrap().to_owned(),
                i["latest"]["prediction_id"].as_str().map(|id| id.parse().unwrap()),
                i["previous_probability"].as_f64(),
            )
        })
        .collect();
    assert_eq!(served, expected);
    assert!(
        expected
            .iter()
            .all(|(_, latest, previous)| latest.is_some() && previous.is_some())
    );

    // The migration's statement that built the model from the history gives what the commits kept.
    let kept: Vec<(Uuid, Value, Option<f64>, Option<String>)> =
        sqlx::query_as("SELECT company_id, risk, probability, level::text FROM company_risk ORDER BY company_id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let migration = include_str!("../../migrations/20261209000001_portfolio_read_model.sql");
    let start = migration.find("WITH ranked AS").unwrap();
    let end = start + migration[start..].find(';').unwrap();
    sqlx::query("UPDATE company_risk SET risk = NULL, probability = NULL, level = NULL")
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query(&migration[start..end]).execute(&app.db).await.unwrap();
    let rebuilt: Vec<(Uuid, Value, Option<f64>, Option<String>)> =
        sqlx::query_as("SELECT company_id, risk, probability, level::text FROM company_risk ORDER BY company_id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let risk = |v: &Value| serde_json::from_value::<pdscore::db::company_risk::CompanyRisk>(v.clone()).unwrap();
    assert_eq!(kept.len(), rebuilt.len());
    for (kept, rebuilt) in kept.iter().zip(&rebuilt) {
        assert_eq!(
            (kept.0, risk(&kept.1), kept.2, &kept.3),
            (rebuilt.0, risk(&rebuilt.1), rebuilt.2, &rebuilt.3)
        );
    }

    // The tallies say how many companies are at each level.
    let [tallied, counted] = tallied_and_counted(&app.db).await;
    assert_eq!(tallied, counted);
    assert_eq!(portfolio["data"]["total"], counted.iter().map(|(_, n)| n).sum::<i64>());
    // Folded, they say the same in one row per organization and level.
    let rows = "SELECT count(*) FROM portfolio_tally";
    let before: i64 = sqlx::query_scalar(rows).fetch_one(&app.db).await.unwrap();
    pdscore::db::portfolio::fold_all_tallies(&app.db).await.unwrap();
    let after: i64 = sqlx::query_scalar(rows).fetch_one(&app.db).await.unwrap();
    assert!(
        after < before && after <= counted.len() as i64,
        "{before} → {after} rows"
    );
    // Another sort: not a cached answer.
    let (_, again) = app
        .call("GET", "/api/v1/portfolio?sort=-symbol", Some(admin), None)
        .await;
    assert_eq!(again["data"]["total"], portfolio["data"]["total"]);
}

#[actix_web::test]
async fn the_portfolio_gives_each_visible_company_its_latest_risk_and_trend() {
    let app = spawn_app().await;
    let demo = scored_demo(&app).await;
    let admin = demo.token(Role::TenantAdmin);

    let (status, riskiest) = app
        .call("GET", "/api/v1/portfolio?sort=-probability", Some(admin), None)
        .await;
    assert_eq!(status, 200, "{riskiest:#}");
    // Unscored companies come last whichever the direction.
    assert_eq!(symbols(&riskiest), ["GLOBEX", "ACME", "INITECH"]);
    let (_, safest) = app
        .call("GET", "/api/v1/portfolio?sort=probability", Some(admin), None)
        .await;
    assert_eq!(symbols(&safest), ["ACME", "GLOBEX", "INITECH"]);
    assert_eq!(riskiest["data"]["total"], 3);

    let globex = &items(&riskiest)[0];
    assert_eq!(globex["latest"]["period_year"], 2022);
    assert_eq!(globex["latest"]["risk_level"], "medium");
    assert_eq!(globex["latest"]["prediction_type"], "annual");
    assert_eq!(globex["latest"]["model"], "annual/accunode-scorecard@1");
    assert!(globex["latest"]["implied_rating"].is_string());
    // 2021 and 2022 have the same ratios: the same PD.
    assert_eq!(globex["trend"], "flat");
    assert_eq!(globex["previous_probability"], globex["latest"]["probability"]);
    let acme = &items(&riskiest)[1];
    assert_eq!(
        (acme["latest"]["risk_level"].as_str(), &acme["trend"]),
        (Some("low"), &Value::Null)
    );
    assert_eq!(items(&riskiest)[2]["latest"], Value::Null);

    // Answers are cached until the tenant's next write: the same question again is answered from Redis...
    let hits = cache_hits(&app).await;
    let (_, again) = app
        .call("GET", "/api/v1/portfolio?sort=-probability", Some(admin), None)
        .await;
    assert_eq!(again["data"], riskiest["data"]);
    assert!(cache_hits(&app).await > hits, "the second answer came from the cache");
    // ...and a write through the API is seen at once.
    let initech = items(&riskiest)[2]["company"]["id"].as_str().unwrap().to_owned();
    let rename = json!({ "name": "Initech Renamed" });
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/api/v1/companies/{initech}"),
            Some(admin),
            Some(&rename),
        )
        .await;
    assert_eq!(status, 200);
    let (_, renamed) = app
        .call("GET", "/api/v1/portfolio?sort=-probability", Some(admin), None)
        .await;
    assert_eq!(items(&renamed)[2]["company"]["name"], "Initech Renamed");

    // A new period (committed by the pipeline) moves the trend, in the cached question too.
    file(&app, &demo, "GLOBEX", 2023, safe()).await;
    let (_, moved) = app
        .call("GET", "/api/v1/portfolio?sort=-probability", Some(admin), None)
        .await;
    let globex = items(&moved)
        .into_iter()
        .find(|i| i["company"]["symbol"] == "GLOBEX")
        .unwrap();
    assert_eq!(
        (globex["latest"]["period_year"].as_i64(), globex["trend"].as_str()),
        (Some(2023), Some("down"))
    );
    let (_, filtered) = app.call("GET", "/api/v1/portfolio?q=glo", Some(admin), None).await;
    assert_eq!(symbols(&filtered), ["GLOBEX"]);
    assert_eq!(items(&filtered)[0]["trend"], "down");

    let (_, low) = app
        .call("GET", "/api/v1/portfolio?risk_level=low", Some(admin), None)
        .await;
    assert_eq!(symbols(&low), ["ACME", "GLOBEX"]);
    assert_eq!(low["data"]["total"], 2);

    // A quarterly filing scored after ACME's annual one becomes its latest; the next quarter has a trend.
    let quarterly = |debt: f64, sga: f64, leverage: f64, roc: f64| {
        json!({ "total_debt_to_ebitda": debt, "sga_margin": sga, "long_term_debt_to_total_capital": leverage,
                "return_on_capital": roc })
    };
    file_period(&app, &demo, "ACME", 2023, Some(1), quarterly(1.0, 10.0, 15.0, 12.0)).await;
    let acme = |answer: &Value| {
        items(answer)
            .into_iter()
            .find(|i| i["company"]["symbol"] == "ACME")
            .unwrap()
    };
    let (_, now) = app.call("GET", "/api/v1/portfolio", Some(admin), None).await;
    let latest = acme(&now);
    assert_eq!(
        (
            &latest["latest"]["prediction_type"],
            &latest["latest"]["period_quarter"],
            &latest["trend"]
        ),
        (&json!("quarterly"), &json!(1), &Value::Null),
        "{latest:#}"
    );
    file_period(&app, &demo, "ACME", 2023, Some(2), quarterly(7.0, 45.0, 75.0, -4.0)).await;
    let (_, now) = app.call("GET", "/api/v1/portfolio", Some(admin), None).await;
    let latest = acme(&now);
    assert_eq!(latest["latest"]["period_quarter"], 2);
    assert_eq!(latest["trend"], "up", "{latest:#}");

    // The `user` account sees only its assigned company.
    let (_, mine) = app
        .call("GET", "/api/v1/portfolio", Some(demo.token(Role::User)), None)
        .await;
    assert_eq!(symbols(&mine), ["ACME"]);

    for bad in ["risk_level=severe", "sort=pd", "per_page=0", "color=red"] {
        let (status, answer) = app
            .call("GET", &format!("/api/v1/portfolio?{bad}"), Some(admin), None)
            .await;
        assert!((400..500).contains(&status), "{bad}: {status} {answer:#}");
        assert!(answer["error"]["code"].is_string(), "{bad}: {answer:#}");
    }
}

#[actix_web::test]
async fn the_models_route_lists_the_registry_with_its_model_cards() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let (status, answer) = app
        .call("GET", "/api/v1/models", Some(demo.token(Role::User)), None)
        .await;
    assert_eq!(status, 200);
    let models = answer["data"].as_array().unwrap();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string("models/artifacts/manifest.json").unwrap()).unwrap();
    assert_eq!(models.len(), manifest["models"].as_array().unwrap().len());
    let trees = models.iter().find(|m| m["id"] == "annual/polish-gbdt@1").unwrap();
    assert_eq!(trees["kind"], "trees");
    assert_eq!(trees["features"].as_array().unwrap().len(), 64);
    assert_eq!(trees["card"]["id"], "annual/polish-gbdt@1");
    assert_eq!(trees["term_structure"]["5y"], "annual-5y/polish-gbdt@1");
    assert!(
        trees["card"]["data"]["citation"]
            .as_str()
            .unwrap()
            .contains("CC BY 4.0")
    );
    assert_eq!(app.get("/api/v1/models").await.status(), 401);
}

#[actix_web::test]
async fn the_dashboard_is_served_from_the_binary_with_a_strict_policy() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let root = client.get(format!("{}/", app.address)).send().await.unwrap();
    assert_eq!(root.status(), 302);
    assert_eq!(root.headers()["location"], "/app/");

    let page = app.get("/app/").await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    // Everything the page loads comes from this origin.
    assert!(html.contains("/app/app.js") && html.contains("/app/app.css"));
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("<script>"));

    for (asset, kind) in [("app.js", "text/javascript"), ("app.css", "text/css")] {
        let response = app.get(&format!("/app/{asset}")).await;
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with(kind));
        let etag = response.headers()["etag"].clone();
        let again = client
            .get(format!("{}/app/{asset}", app.address))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304);
    }
    assert_eq!(app.get("/app/secrets.env").await.status(), 404);
    // A client would normalize `..` away: send it raw.
    let mut socket = tokio::net::TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    socket
        .write_all(b"GET /app/../Cargo.toml HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    assert!(!answer.contains("[workspace]"));
}

/// The header's live-alert stream is connected.
const STREAM_OPEN: &str = "document.querySelector('#stream-state')?.dataset.state === 'open'";

/// The two screen sizes every page is looked at in.
#[derive(Clone, Copy)]
enum Viewport {
    Laptop,
    Phone,
}

impl Viewport {
    fn size(self) -> (u32, u32) {
        match self {
            Self::Laptop => (1366, 768),
            Self::Phone => (390, 844),
        }
    }

    fn name(self) -> String {
        let (w, h) = self.size();
        format!("{w}x{h}")
    }
}

/// A headless Chromium session on the dashboard of `app`, through a chromedriver of its own.
struct Browser {
    client: Client,
    driver: Child,
    profile: PathBuf,
    base: String,
    viewport: Viewport,
    test: &'static str,
}

impl Browser {
    async fn start(app: &TestApp, viewport: Viewport, test: &'static str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; scripts/services.sh --browser installs it)");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        eventually("chromedriver", Duration::from_secs(20), || async {
            http.get(format!("{url}/status")).send().await.ok().map(|_| ())
        })
        .await;
        let profile = std::env::temp_dir().join(format!("pdscore-chromium-{}", Uuid::new_v4().simple()));
        let (width, height) = viewport.size();
        let mut options = json!({
            "binary": "/usr/bin/chromium",
            // No network but loopback: Chromium's own background traffic is switched off.
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-extensions", "--hide-scrollbars",
                format!("--user-data-dir={}", profile.display()),
                format!("--window-size={width},{height}"),
            ],
        });
        // The window's size would include the (invisible) browser frame: emulate the screen instead.
        let phone = matches!(viewport, Viewport::Phone);
        options["mobileEmulation"] = json!({
            "deviceMetrics": { "width": width, "height": height, "pixelRatio": 1.0, "mobile": phone, "touch": phone },
        });
        if phone {
            options["mobileEmulation"]["userAgent"] =
                json!("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Mobile");
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".into(), options);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&url)
            .await
            .expect("a Chromium session");
        let browser = Self {
            client,
            driver,
            profile,
            base: app.address.clone(),
            viewport,
            test,
        };
        browser.client.goto(&format!("{}/app/", browser.base)).await.unwrap();
        let inner = browser.js("return [window.innerWidth, window.innerHeight]").await;
        assert_eq!(inner, json!([width, height]), "the page's viewport");
        browser
    }

    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.expect("script runs")
    }

    /// Polls the JavaScript `condition` (an expression) until it holds; fails with what the page shows.
    async fn until(&self, what: &str, condition: &str) {
        let script = format!("return Boolean({condition})");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.js(&script).await == json!(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let page = self.js("return document.body.innerText").await;
        let errors = self.js("return window.__pdErrors || []").await;
        panic!(
            "{}: waited 30 s for {what} ({condition}); page shows:\n{page}\nerrors: {errors}",
            self.test
        );
    }

    /// Goes to a route of the dashboard (`#/…`) and waits until its page has loaded its data.
    async fn open(&self, route: &str, page: &str) {
        self.js(&format!("location.hash = {}", json!(route))).await;
        self.ready(page).await;
    }

    async fn ready(&self, page: &str) {
        self.until(
            &format!("page {page}"),
            &format!(
                "document.body.dataset.page === '{page}' && document.querySelector('main')?.dataset.ready === 'true'"
            ),
        )
        .await;
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    async fn page_text(&self) -> String {
        self.js("return document.body.innerText")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn sign_in(&self, email: &str, password: &str) {
        self.open("#/login", "login").await;
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.click("#login-submit").await;
        self.ready("portfolio").await;
    }

    /// Saves the page as `target/screenshots/<test>/<viewport>/<name>.png`; the page logged no errors.
    async fn screenshot(&self, name: &str) {
        self.no_errors().await;
        let png = self.client.screenshot().await.unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("target/screenshots")
            .join(self.test)
            .join(self.viewport.name());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Nothing went to the console as an error, no script failed, no policy was violated, and the page shows
    /// no failed request.
    async fn no_errors(&self) {
        let errors = self.js("return window.__pdErrors").await;
        assert_eq!(errors, json!([]), "{}: the page reported errors", self.test);
        let shown = self
            .js(
                "return [...document.querySelectorAll('.error-box, #status[data-kind=\"error\"]')] \
                 .map(e => e.innerText).filter(t => t.trim())",
            )
            .await;
        assert_eq!(shown, json!([]), "{}: the page shows errors", self.test);
    }

    /// Visits every page the signed-in account may see and saves a screenshot of each.
    async fn tour(&self, company: Uuid, admin: bool) {
        self.open("#/portfolio", "portfolio").await;
        self.screenshot("portfolio").await;
        self.open(&format!("#/companies/{company}"), "company").await;
        self.until("the chart", "document.querySelectorAll('#pd-chart .point').length > 0")
            .await;
        self.screenshot("company").await;
        if self
            .js("return document.querySelectorAll('#reasons .reason').length")
            .await
            != json!(0)
        {
            self.js("document.querySelector('#reasons').scrollIntoView()").await;
            self.screenshot("company-reasons").await;
        }
        self.open("#/alerts", "alerts").await;
        self.screenshot("alerts").await;
        self.open("#/bulk", "bulk").await;
        self.screenshot("bulk").await;
        self.open("#/models", "models").await;
        self.screenshot("models").await;
        if admin {
            self.open("#/admin", "admin").await;
            self.screenshot("admin").await;
        }
    }

    /// Ends the browser session (the driver and its profile go with the value).
    async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    /// Also on a failed assertion: no chromedriver or Chromium outlives its test.
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

async fn company_id(app: &TestApp, token: &str, symbol: &str) -> Uuid {
    let (_, found) = app
        .call("GET", &format!("/api/v1/portfolio?q={symbol}"), Some(token), None)
        .await;
    items(&found)[0]["company"]["id"].as_str().unwrap().parse().unwrap()
}

#[actix_web::test]
async fn browser_an_analyst_signs_in_finds_a_company_uploads_a_file_and_sees_a_live_alert() {
    let app = spawn_app_with(|s| s.auth.login_attempts_per_address = 1000).await;
    let demo = scored_demo(&app).await;
    let admin = demo.setup.user(Role::TenantAdmin);
    let globex = company_id(&app, demo.token(Role::TenantAdmin), "GLOBEX").await;
    let browser = Browser::start(&app, Viewport::Laptop, "analyst").await;

    // Sign in; a wrong password is refused on the page.
    browser.open("#/login", "login").await;
    browser.screenshot("login").await;
    browser.fill("#email", &admin.email).await;
    browser.fill("#password", "not the password").await;
    browser.click("#login-submit").await;
    browser
        .until(
            "the refusal",
            "document.querySelector('#login-error')?.innerText.trim().length > 0",
        )
        .await;
    browser.sign_in(&admin.email, &admin.password).await;
    assert!(browser.text("#whoami").await.contains(&admin.email));

    // Find GLOBEX by searching, then open its page.
    browser.fill("#search", "glob").await;
    browser
        .until(
            "GLOBEX alone",
            "document.querySelectorAll('#portfolio tr[data-company-id]').length === 1 \
             && document.querySelector('#portfolio tr[data-company-id] .company-link').innerText.includes('GLOBEX')",
        )
        .await;
    let row = browser.text("#portfolio tr[data-company-id]").await;
    assert!(row.contains("GLOBEX") && row.to_lowercase().contains("medium"), "{row}");
    browser.click("#portfolio tr[data-company-id] .company-link").await;
    browser.ready("company").await;
    assert!(browser.text("#company-title").await.contains("GLOBEX"));
    browser
        .until(
            "four annual points",
            "document.querySelectorAll('#pd-chart .point[data-series=\"annual\"]').length === 4",
        )
        .await;
    browser
        .until(
            "reason codes",
            "document.querySelectorAll('#reasons .reason').length > 0",
        )
        .await;
    assert_eq!(browser.text("#model-id").await, "annual/accunode-scorecard@1");
    assert!(browser.text("#inputs").await.contains("return_on_assets"));

    // Upload an annual CSV and watch the progress bar reach 100 %.
    browser.open("#/bulk", "bulk").await;
    let csv = std::env::temp_dir().join(format!("pdscore-dashboard-{}.csv", Uuid::new_v4().simple()));
    std::fs::write(&csv, annual_csv(40, 3)).unwrap();
    browser
        .find("#upload-file")
        .await
        .send_keys(&csv.display().to_string())
        .await
        .unwrap();
    browser.click("#upload-submit").await;
    browser
        .until(
            "a moving progress bar",
            "document.querySelector('#job-progress')?.value > 0",
        )
        .await;
    browser
        .until(
            "the job's end",
            "document.querySelector('#job-progress').value === 100 && document.querySelector('#results-link')",
        )
        .await;
    assert!(browser.text("#job-status").await.to_lowercase().contains("completed"));
    let _ = std::fs::remove_file(&csv);
    browser.screenshot("bulk-done").await;

    // A filing published to NATS moves GLOBEX back to LOW: the alert appears live, and the header counts it
    // (with the alerts the bulk job's companies raised).
    browser.open("#/alerts", "alerts").await;
    let globex_items =
        "[...document.querySelectorAll('#alert-feed .alert-item')].filter(i => i.innerText.includes('GLOBEX'))";
    assert_eq!(browser.js(&format!("return {globex_items}.length")).await, json!(0));
    browser.until("the live stream", STREAM_OPEN).await;
    file(&app, &demo, "GLOBEX", 2023, safe()).await;
    browser
        .until("the live alert", &format!("{globex_items}.length === 1"))
        .await;
    let alert = browser.js(&format!("return {globex_items}[0].innerText")).await;
    assert!(alert.as_str().unwrap().to_lowercase().contains("low"), "{alert}");
    browser
        .until(
            "the counter",
            "document.querySelector('#alert-count').innerText.trim() \
             === String(document.querySelectorAll('#alert-feed .alert-item').length)",
        )
        .await;
    browser.screenshot("alerts-live").await;

    browser.tour(globex, true).await;

    // Sign out: back to the sign-in page, and the session is gone from the browser and the server.
    let refresh = browser
        .js("return JSON.parse(sessionStorage.getItem('pdscore.session')).refresh_token")
        .await;
    browser.click("#sign-out").await;
    browser.ready("login").await;
    assert_eq!(browser.js("return sessionStorage.length").await, json!(0));
    let (status, _) = app
        .call(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(&json!({ "refresh_token": refresh })),
        )
        .await;
    assert_eq!(status, 401, "the signed-out session still refreshes");
    browser.open("#/portfolio", "login").await;
    browser.no_errors().await;
    browser.close().await;

    // The same pages on a phone.
    let phone = Browser::start(&app, Viewport::Phone, "analyst").await;
    phone.sign_in(&admin.email, &admin.password).await;
    phone.tour(globex, true).await;
    phone.close().await;
}

#[actix_web::test]
async fn browser_a_user_of_another_tenant_sees_none_of_its_data_on_any_page() {
    let app = spawn_app_with(|s| s.auth.login_attempts_per_address = 1000).await;
    let demo = scored_demo(&app).await;
    let admin_a = demo.token(Role::TenantAdmin).to_owned();
    let globex = company_id(&app, &admin_a, "GLOBEX").await;
    // Tenant A also has an alert.
    file(&app, &demo, "GLOBEX", 2023, safe()).await;

    let tenant_b = app.second_tenant(demo.token(Role::SuperAdmin), "BONE").await;
    let bone = tenant_b.company_id;

    // GLOBEX ends 2023 LOW; each viewport raises one more of its alerts: 2024 MEDIUM, then 2025 LOW.
    let mut flip = 2023;
    for viewport in [Viewport::Laptop, Viewport::Phone] {
        let browser = Browser::start(&app, viewport, "isolation").await;
        browser.sign_in(tenant_b.admin_email, tenant_b.admin_password).await;
        let tenant_a_marks = ["GLOBEX", "ACME", "INITECH", "demo.example.com", "Credit Risk"];
        let shows_nothing_of_a = |page: String, at: &str| {
            for mark in tenant_a_marks {
                assert!(!page.contains(mark), "tenant B's {at} page shows {mark}:\n{page}");
            }
        };
        let rows = browser
            .js("return document.querySelectorAll('#portfolio tr[data-company-id]').length")
            .await;
        assert_eq!(rows, json!(1));
        assert!(browser.text("#portfolio").await.contains("BONE"));
        shows_nothing_of_a(browser.page_text().await, "portfolio");
        // A's company by its id: not found, and nothing of it shown.
        browser.open(&format!("#/companies/{globex}"), "company").await;
        browser
            .until("not found", "document.querySelector('#not-found') !== null")
            .await;
        shows_nothing_of_a(browser.page_text().await, "company");
        browser.screenshot("foreign-company").await;
        for (route, page) in [("#/alerts", "alerts"), ("#/bulk", "bulk"), ("#/admin", "admin")] {
            browser.open(route, page).await;
            shows_nothing_of_a(browser.page_text().await, page);
            browser.screenshot(page).await;
        }
        // A risk change in tenant A while B watches its live feed: B's feed and counter stay empty.
        browser.open("#/alerts", "alerts").await;
        browser.until("the live stream", STREAM_OPEN).await;
        flip = if flip == 2024 { 2025 } else { 2024 };
        let ratios = if flip == 2024 { risky() } else { safe() };
        file(&app, &demo, "GLOBEX", flip, ratios).await;
        let raised: i64 = sqlx::query_scalar("SELECT count(*) FROM alerts WHERE period_year = $1")
            .bind(i16::try_from(flip).unwrap())
            .fetch_one(&app.db)
            .await
            .unwrap();
        assert_eq!(raised, 1, "tenant A's alert was raised");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            browser
                .js("return document.querySelectorAll('#alert-feed .alert-item').length")
                .await,
            json!(0)
        );
        assert_eq!(browser.text("#alert-count").await.trim(), "0");
        shows_nothing_of_a(browser.page_text().await, "alerts");
        browser.open(&format!("#/companies/{bone}"), "company").await;
        assert!(browser.text("#company-title").await.contains("BONE"));
        browser.no_errors().await;
        browser.close().await;
    }
}

#[actix_web::test]
async fn browser_a_user_sees_only_what_its_role_allows_and_stays_signed_in_when_its_token_is_refused() {
    let app = spawn_app_with(|s| s.auth.login_attempts_per_address = 1000).await;
    let demo = scored_demo(&app).await;
    let viewer = demo.setup.user(Role::User);
    let globex: Uuid = sqlx::query_scalar("SELECT id FROM companies WHERE symbol = 'GLOBEX'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let browser = Browser::start(&app, Viewport::Laptop, "viewer").await;
    browser.sign_in(&viewer.email, &viewer.password).await;

    // Only the assigned company; no administration, no uploads — in the menus and on the pages.
    let rows = browser
        .js("return [...document.querySelectorAll('#portfolio .company-link')].map(a => a.innerText)")
        .await;
    assert_eq!(rows, json!(["ACME"]));
    assert_eq!(
        browser
            .js("return document.querySelectorAll('a[href=\"#/admin\"]').length")
            .await,
        json!(0)
    );
    browser.open("#/admin", "admin").await;
    browser
        .until("the refusal", "document.querySelector('#admin-forbidden') !== null")
        .await;
    browser.open("#/bulk", "bulk").await;
    assert_eq!(
        browser.js("return document.querySelector('#upload-form')").await,
        Value::Null
    );
    // An unassigned company of the same tenant is not found either.
    browser.open(&format!("#/companies/{globex}"), "company").await;
    browser
        .until("not found", "document.querySelector('#not-found') !== null")
        .await;
    assert!(!browser.page_text().await.contains("GLOBEX"));

    // When the server refuses the access token (expired, or here: no longer valid), the page refreshes the
    // pair once, transparently, and goes on.
    let tokens = "return JSON.parse(sessionStorage.getItem('pdscore.session')).access_token";
    let first = browser.js(tokens).await;
    browser
        .js("const s = JSON.parse(sessionStorage.getItem('pdscore.session')); \
             s.access_token = s.access_token.slice(0, -8) + 'AAAAAAAA'; \
             sessionStorage.setItem('pdscore.session', JSON.stringify(s))")
        .await;
    browser.open("#/alerts", "alerts").await;
    let second = browser.js(tokens).await;
    assert!(
        first.is_string() && second.is_string() && first != second,
        "{first} then {second}"
    );
    browser.open("#/models", "models").await;
    assert!(
        browser
            .js("return document.querySelectorAll('.model-card').length")
            .await
            .as_u64()
            .unwrap()
            >= 3
    );
    browser.no_errors().await;
    browser.close().await;
}

#[actix_web::test]
async fn browser_a_risk_manager_reads_the_backtest_and_the_champion_against_its_challenger() {
    let app = spawn_app_with(|s| s.auth.login_attempts_per_address = 1000).await;
    let demo = app.demo().await;
    let admin = demo.setup.user(Role::TenantAdmin);
    let tenant = demo.setup.tenant_id;
    let (status, _) = app
        .call(
            "PUT",
            &format!("/api/v1/tenants/{tenant}/models/annual"),
            Some(demo.token(Role::TenantAdmin)),
            Some(&json!({ "challenger": "annual/accunode-scorecard@1" })),
        )
        .await;
    assert_eq!(status, 200);
    crate::validation::scored_portfolio(&app, demo.token(Role::OrgMember), demo.setup.organization_id).await;
    let (_, expected) = app
        .call("GET", "/api/v1/backtests", Some(demo.token(Role::TenantAdmin)), None)
        .await;
    let observations = expected["data"]["measures"]["observations"].as_u64().unwrap();

    for viewport in [Viewport::Laptop, Viewport::Phone] {
        let browser = Browser::start(&app, viewport, "validation").await;
        browser.sign_in(&admin.email, &admin.password).await;
        browser.open("#/validation", "validation").await;
        browser
            .until(
                "the ROC curve",
                "document.querySelector('#roc-chart polyline.curve') !== null",
            )
            .await;
        assert_eq!(browser.text("#bt-observations").await, observations.to_string());
        let grades = browser
            .js("return document.querySelectorAll('#grade-tests tbody tr').length")
            .await;
        assert!(grades.as_u64().unwrap() >= 2, "{grades}");
        let points = browser
            .js("return document.querySelectorAll('#reliability-chart circle.bin').length")
            .await;
        assert!(points.as_u64().unwrap() >= 5, "{points}");
        browser.screenshot("backtest").await;
        browser
            .js("document.querySelector('#periods-heading').scrollIntoView()")
            .await;
        browser.screenshot("backtest-periods").await;
        // The challenger beside the model: every filing scored by both.
        assert_eq!(browser.text("#cmp-filings").await, "91");
        browser
            .js("document.querySelector('#comparison-heading').scrollIntoView()")
            .await;
        browser.screenshot("comparison").await;
        // Five years: only the 2020 statements have run their course.
        browser
            .js("const h = document.querySelector('#bt-horizon'); h.value = '5'; h.dispatchEvent(new Event('change'))")
            .await;
        browser.click("#bt-run").await;
        browser
            .until(
                "the five-year back-test",
                "document.querySelector('#backtest-heading')?.innerText.includes('5-year')",
            )
            .await;
        browser.ready("validation").await;
        assert_eq!(browser.text("#bt-observations").await, "30");
        browser.no_errors().await;
        browser.close().await;
    }
}

#[actix_web::test]
async fn browser_a_risk_manager_reads_the_drift_of_the_model_against_its_training_sample_and_the_past() {
    let app = spawn_app_with(|s| {
        s.auth.login_attempts_per_address = 1000;
        s.drift.min_rows = 20;
    })
    .await;
    let demo = app.demo().await;
    let admin = demo.setup.user(Role::TenantAdmin);
    let tenant = demo.setup.tenant_id;
    crate::validation::scored_portfolio(&app, demo.token(Role::OrgMember), demo.setup.organization_id).await;
    // The 2020 statements were scored forty days ago: the past window.
    sqlx::query(
        "UPDATE predictions SET created_at = created_at - interval '40 days' WHERE tenant_id = $1 AND period_year = 2020",
    )
    .bind(tenant)
    .execute(&app.db)
    .await
    .unwrap();
    app.drift.pass(chrono::Utc::now()).await.unwrap();
    let (_, expected) = app
        .call("GET", "/api/v1/drift", Some(demo.token(Role::TenantAdmin)), None)
        .await;
    let open = expected["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["resolved_at"].is_null())
        .count();
    assert_eq!(expected["data"]["latest"]["past_rows"], 30, "{expected:#}");

    for viewport in [Viewport::Laptop, Viewport::Phone] {
        let browser = Browser::start(&app, viewport, "drift").await;
        browser.sign_in(&admin.email, &admin.password).await;
        browser.open("#/drift", "drift").await;
        browser
            .until(
                "the PD distribution",
                "document.querySelectorAll('#drift-distribution rect.bar.current').length > 0",
            )
            .await;
        assert_eq!(browser.text("#drift-open-alerts").await, open.to_string());
        let bars = browser
            .js("return ['expected', 'past', 'current'].map((k) => document.querySelectorAll(`#drift-distribution rect.bar.${k}`).length)")
            .await;
        let bins = expected["data"]["latest"]["series"][0]["bins"]["edges"]
            .as_array()
            .unwrap()
            .len()
            + 2;
        assert_eq!(bars, json!([bins, bins, bins]));
        let rows = browser
            .js("return document.querySelectorAll('#drift-features tbody tr').length")
            .await;
        assert_eq!(rows, json!(65));
        browser.screenshot("drift").await;
        browser
            .js("document.querySelector('#drift-distribution-heading').scrollIntoView()")
            .await;
        browser.screenshot("drift-distribution").await;
        browser
            .js("document.querySelector('#drift-history-heading').scrollIntoView()")
            .await;
        browser.screenshot("drift-history").await;
        browser
            .js("document.querySelector('#drift-features-heading').scrollIntoView()")
            .await;
        browser.screenshot("drift-inputs").await;
        browser.click("#drift-refresh").await;
        browser.ready("drift").await;
        browser.no_errors().await;
        browser.close().await;
    }
}
