//! Three `pdscore serve` processes on one PostgreSQL, one NATS and one Redis (each with a scratch directory of
//! its own) behave as one service: a tenant's rate limit holds for the fleet, a token issued by one works on
//! the others and a logout on one ends it on all, a company renamed through one is found under its new symbol
//! by another's ingest as soon as the change is announced, a bulk job whose instance is killed is finished
//! by another, exactly once, from the upload store, and a model uploaded and activated through one is used by
//! all, with no filing lost or scored twice.

use std::{
    process::Child,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::future::join_all;
use pdscore::{accounts::DemoSetup, auth::Role};
use pdscore_nats::Namespace;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    bulk::{annual_csv, assert_every_row_scored_once, submit_to, walk},
    helpers::{Isolation, base_settings, closed_port, eventually},
    pipeline::{dead_letters, message, safe},
};

/// Three instances of one deployment, with the demo tenant.
struct Fleet {
    name: String,
    urls: Vec<String>,
    children: Vec<Child>,
    client: reqwest::Client,
    db: PgPool,
    demo: DemoSetup,
    // Declared last: dropped after the processes are killed.
    isolation: Isolation,
}

impl Fleet {
    /// Starts `ingest.len()` instances; instance `i` consumes filings from JetStream when `ingest[i]`.
    async fn start(name: &str, ingest: &[bool], env: &[(&str, &str)]) -> Self {
        let isolation = Isolation::new();
        isolation.migrate();
        let db = PgPool::connect(&isolation.database_url).await.unwrap();
        let demo = pdscore::accounts::demo_setup(&db).await.unwrap();
        let mut fleet = Self {
            name: name.to_owned(),
            urls: Vec::new(),
            children: Vec::new(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .pool_idle_timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
            db,
            demo,
            isolation,
        };
        for ingest in ingest {
            fleet.spawn(*ingest, env).await;
        }
        fleet
    }

    /// Starts one more instance, with a scratch directory of its own, and waits until it is healthy; its index.
    async fn spawn(&mut self, ingest: bool, env: &[(&str, &str)]) -> usize {
        let i = self.children.len();
        let port = closed_port().await;
        let scratch = self.scratch(i).display().to_string();
        let mut env = env.to_vec();
        env.push((
            "PDSCORE__PIPELINE__INGEST_ENABLED",
            if ingest { "true" } else { "false" },
        ));
        env.push(("PDSCORE__STORAGE__DIR", &scratch));
        let log = format!("pdscore-fleet-{}-{}-{i}.log", self.name, self.isolation.db_name);
        self.children.push(self.isolation.serve(port, &log, &env));
        let url = format!("http://127.0.0.1:{port}");
        eventually("an instance to be healthy", Duration::from_secs(60), || async {
            let health = self.client.get(format!("{url}/health")).send().await.ok()?;
            (health.status() == 200).then_some(())
        })
        .await;
        self.urls.push(url);
        i
    }

    /// Instance `i`'s own scratch directory (the test's storage directory holds them all).
    fn scratch(&self, i: usize) -> std::path::PathBuf {
        self.isolation.storage_dir.join(format!("instance-{i}"))
    }

    /// A request to instance `i`, answered as (status, body).
    async fn call(
        &self,
        i: usize,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, format!("{}/api/v1{path}", self.urls[i]));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Signs the demo account of `role` in through instance `i`; its access token.
    async fn login(&self, i: usize, role: Role) -> String {
        let user = self.demo.user(role);
        let body = json!({ "email": user.email, "password": user.password });
        let (status, answer) = self.call(i, "POST", "/auth/login", None, Some(&body)).await;
        assert_eq!(status, 200, "{answer:#}");
        answer["data"]["access_token"].as_str().unwrap().to_owned()
    }

    async fn jetstream(&self) -> (async_nats::jetstream::Context, Namespace) {
        let client = async_nats::connect(base_settings().nats.url.expose_secret())
            .await
            .unwrap();
        let ns = Namespace::parse(&self.isolation.nats_prefix).unwrap();
        (async_nats::jetstream::new(client), ns)
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.db).await.unwrap()
    }

    async fn company(&self, symbol: &str) -> Uuid {
        sqlx::query_scalar("SELECT id FROM companies WHERE symbol = $1")
            .bind(symbol)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[actix_web::test]
async fn a_token_from_one_instance_works_on_the_others_and_a_logout_on_one_ends_it_on_all() {
    let fleet = Fleet::start("tokens", &[false, false, false], &[]).await;
    let token = fleet.login(0, Role::OrgMember).await;
    for i in 0..3 {
        let (status, me) = fleet.call(i, "GET", "/auth/me", Some(&token), None).await;
        assert_eq!(status, 200, "instance {i}: {me:#}");
        assert_eq!(
            me["data"]["user"]["email"],
            fleet.demo.user(Role::OrgMember).email.as_str()
        );
    }
    let (status, _) = fleet.call(1, "POST", "/auth/logout", Some(&token), None).await;
    assert_eq!(status, 200);
    // At once: the very next request, on every instance (each had the token verified and kept a moment ago).
    for i in [0, 2, 1] {
        let (status, answer) = fleet.call(i, "GET", "/auth/me", Some(&token), None).await;
        assert_eq!(status, 401, "instance {i} still honours a logged-out token: {answer:#}");
    }
}

#[actix_web::test]
async fn a_company_renamed_through_one_instance_is_found_under_its_new_symbol_by_anothers_ingest() {
    // Only instance 2 consumes filings.
    let fleet = Fleet::start("rename", &[false, false, true], &[]).await;
    let admin = fleet.login(0, Role::TenantAdmin).await;
    let (js, ns) = fleet.jetstream().await;
    let subject = ns.filings(&fleet.demo.tenant_slug, "annual");
    // Instance 2 looks the new symbol up before it exists, and keeps the answer ("no such company").
    js.publish(subject.clone(), message("before", "RENAMED", 2020, safe()).into())
        .await
        .unwrap()
        .await
        .unwrap();
    let letters = dead_letters(&js, &ns, 1).await;
    assert_eq!(
        letters.first().map(|l| l.0.as_str()),
        Some("UNKNOWN_COMPANY"),
        "{letters:?}"
    );

    let globex = fleet.company("GLOBEX").await;
    let (status, answer) = fleet
        .call(
            0,
            "PATCH",
            &format!("/companies/{globex}"),
            Some(&admin),
            Some(&json!({ "symbol": "RENAMED" })),
        )
        .await;
    assert_eq!(status, 200, "{answer:#}");
    let renamed = Instant::now();
    // Filings under the new symbol, one every 20 ms, until instance 2 scores one. Its kept answer would last
    // 10 s (its TTL); the fleet's change ends it as soon as it arrives.
    let mut sent = 0;
    let scored = loop {
        js.publish(
            subject.clone(),
            message(&format!("after-{sent}"), "RENAMED", 2021, safe()).into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
        sent += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let n = fleet
            .count("SELECT count(*) FROM filings WHERE idempotency_key LIKE 'after-%'")
            .await;
        if n > 0 {
            break renamed.elapsed();
        }
        assert!(
            renamed.elapsed() < Duration::from_secs(5),
            "the rename was not seen within 5 s"
        );
    };
    eprintln!("a rename through instance 0 was seen by instance 2's ingest after {scored:?} ({sent} filing(s) sent)");
    // The first filing sent after the rename is the one scored (no kept answer outlived the change).
    let first: i64 = fleet
        .count("SELECT count(*) FROM filings WHERE idempotency_key = 'after-0'")
        .await;
    assert_eq!(
        first, 1,
        "the first filing after the rename was refused as an unknown company"
    );
}

#[actix_web::test]
async fn a_tenant_flooding_three_instances_gets_its_rate_once_and_loses_nothing() {
    const RATE: u32 = 50;
    const BURST: u32 = 10;
    const FLOOD: Duration = Duration::from_secs(20);
    const NATS_FILINGS: usize = 300;
    let fleet = Fleet::start("flood", &[true, true, true], &[]).await;
    let sa = fleet.login(0, Role::SuperAdmin).await;
    let tokens = [
        fleet.login(0, Role::OrgMember).await,
        fleet.login(1, Role::OrgMember).await,
        fleet.login(2, Role::OrgMember).await,
    ];
    let acme = fleet.company("ACME").await;
    // Every instance scores a filing first, so that each holds the tenant's policy (the default limit, far
    // above 50/s) when the new limit is set through instance 0: the others drop theirs on the announced change,
    // not when it expires (pipeline.policy_ttl_ms, 5 s).
    for (i, token) in tokens.iter().enumerate() {
        let body =
            json!({ "type": "annual", "reporting_year": 2000, "ratios": safe(), "filing_id": format!("warm-{i}") });
        let (status, answer) = fleet
            .call(
                i,
                "POST",
                &format!("/companies/{acme}/predictions"),
                Some(token),
                Some(&body),
            )
            .await;
        assert_eq!(status, 201, "{answer:#}");
    }
    let limits = json!({ "rate_limit_per_second": RATE, "rate_limit_burst": BURST });
    let path = format!("/tenants/{}", fleet.demo.tenant_id);
    let (status, answer) = fleet.call(0, "PATCH", &path, Some(&sa), Some(&limits)).await;
    assert_eq!(status, 200, "{answer:#}");

    let before = fleet
        .count("SELECT count(*) FROM predictions WHERE NOT is_shadow")
        .await;
    let started = Instant::now();
    // NATS: a backlog far above the rate, consumed by all three instances (refused ones come back later).
    let (js, ns) = fleet.jetstream().await;
    let subject = ns.filings(&fleet.demo.tenant_slug, "annual");
    let publishing = join_all((0..NATS_FILINGS).map(|i| {
        let (js, subject) = (js.clone(), subject.clone());
        async move {
            let payload = message(&format!("nats-{i}"), "ACME", 1900 + (i % 300) as u16, safe());
            js.publish(subject, payload.into()).await.unwrap().await.unwrap();
        }
    }));
    // HTTP: four clients per instance, each sending its next filing as soon as the last is answered.
    let clients = (0..12).map(|c| {
        let (fleet, token) = (&fleet, tokens[c % 3].clone());
        async move {
            let (mut admitted, mut refused, mut n) = (0, 0, 0);
            while started.elapsed() < FLOOD {
                let body = json!({ "type": "annual", "reporting_year": 1900 + n % 300, "ratios": safe(),
                                   "filing_id": format!("http-{c}-{n}") });
                n += 1;
                let (status, answer) = fleet
                    .call(
                        c % 3,
                        "POST",
                        &format!("/companies/{acme}/predictions"),
                        Some(&token),
                        Some(&body),
                    )
                    .await;
                match status {
                    201 => admitted += 1,
                    429 => refused += 1,
                    other => panic!("a filing answered {other}: {answer:#}"),
                }
            }
            (admitted, refused)
        }
    });
    let (_, answers) = tokio::join!(publishing, join_all(clients));
    let during = fleet
        .count("SELECT count(*) FROM predictions WHERE NOT is_shadow")
        .await
        - before;
    let elapsed = started.elapsed().as_secs_f64();
    let (admitted, refused): (i64, i64) = answers.iter().fold((0, 0), |(a, r), (x, y)| (a + x, r + y));
    let rate = during as f64 / elapsed;
    let limit = f64::from(RATE);
    eprintln!(
        "flood of {elapsed:.1} s over 3 instances: {during} filings scored ({rate:.1}/s for a limit of {RATE}/s, \
         burst {BURST}); HTTP {admitted} admitted, {refused} refused"
    );
    assert!(
        refused > 10 * admitted,
        "the flood did not exceed the limit: {admitted} admitted, {refused} refused"
    );
    assert!(
        (rate - limit).abs() <= limit * 0.1,
        "the fleet admitted {rate:.1} filings/s for a limit of {RATE}/s"
    );

    // Nothing dropped: every NATS filing is scored in the end, once.
    let scored = eventually("every NATS filing", Duration::from_secs(180), || async {
        let n = fleet
            .count("SELECT count(*) FROM filings WHERE idempotency_key LIKE 'nats-%'")
            .await;
        (n == NATS_FILINGS as i64).then_some(n)
    })
    .await;
    assert_eq!(scored, NATS_FILINGS as i64);
    let predictions = fleet
        .count(
            "SELECT count(*) FROM predictions p JOIN filings f ON f.id = p.filing_id
             WHERE f.idempotency_key LIKE 'nats-%' AND NOT p.is_shadow",
        )
        .await;
    assert_eq!(predictions, NATS_FILINGS as i64);
}

#[actix_web::test]
async fn a_bulk_job_whose_instance_is_killed_is_finished_by_another_exactly_once() {
    const COMPANIES: usize = 1000;
    const YEARS: usize = 30;
    let total = (COMPANIES * YEARS) as i64;
    // Instance 0 alone takes the upload and starts the job.
    let mut fleet = Fleet::start("bulk", &[false], &[]).await;
    let token = fleet.login(0, Role::OrgMember).await;
    let id = submit_to(&fleet.client, &fleet.urls[0], &token, annual_csv(COMPANIES, YEARS)).await;
    let db = fleet.db.clone();
    let progress = || {
        let db = db.clone();
        async move {
            sqlx::query_as::<_, (i64, String)>("SELECT processed_rows, status::text FROM bulk_jobs WHERE id = $1")
                .bind(id)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    eventually("a tenth of the rows", Duration::from_secs(120), || async {
        (progress().await.0 >= total / 10).then_some(())
    })
    .await;
    // Two more instances join, then instance 0 dies mid-job: its disk is nobody else's.
    fleet.spawn(false, &[]).await;
    fleet.spawn(false, &[]).await;
    fleet.children[0].kill().unwrap();
    fleet.children[0].wait().unwrap();
    let at_kill = progress().await;
    assert_eq!(at_kill.1, "processing");
    assert!(at_kill.0 < total, "killed midway: {at_kill:?}");
    let killed = Instant::now();
    let mut finished = None;
    while finished.is_none() {
        assert!(
            killed.elapsed() < Duration::from_secs(180),
            "the job did not complete: {:?}",
            progress().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, status) = progress().await;
        if status != "processing" {
            finished = Some(status);
        }
    }
    assert_eq!(finished.as_deref(), Some("completed"));
    eprintln!(
        "bulk job taken over at {} of {total} rows, completed {:.1} s after the kill",
        at_kill.0,
        killed.elapsed().as_secs_f64()
    );

    assert_every_row_scored_once(&fleet.db, id, total).await;

    // The upload left the store with its job; the survivors' scratch directories hold nothing.
    let (js, ns) = fleet.jetstream().await;
    let bucket = js.get_object_store(ns.uploads_bucket()).await.unwrap();
    let object = format!("{}/{id}.csv", fleet.demo.tenant_id);
    let gone = eventually("the upload to leave the store", Duration::from_secs(10), || async {
        bucket.get(&object).await.err()
    })
    .await;
    assert_eq!(gone.kind(), async_nats::jetstream::object_store::GetErrorKind::NotFound);
    for i in [1, 2] {
        let left: Vec<_> = walk(&fleet.scratch(i));
        assert!(left.is_empty(), "instance {i} left {left:?}");
    }
}

/// The bucket two instances share: its burst once between them, then refusals told to come back one slot
/// apart whichever instance they asked (the slots are booked in Redis, not per instance).
#[actix_web::test]
async fn two_instances_take_from_one_bucket_and_book_refusals_one_slot_apart() {
    use pdscore::fleet::RedisLimits;
    use pdscore_actors::{Admission, SharedLimits};
    let isolation = Isolation::new();
    let settings = base_settings();
    let redis = pdscore::cache::connect(&settings.redis).unwrap();
    let instances = [
        RedisLimits::new(redis.clone(), &isolation.redis_prefix),
        RedisLimits::new(redis, &isolation.redis_prefix),
    ];
    let tenant = Uuid::new_v4();
    // 10 per second, burst 3: one token per call (what 10/s earns in 20 ms rounds down to one).
    let mut answers = Vec::new();
    for i in 0..7 {
        answers.push(instances[i % 2].take(tenant, 10.0, 3).await.unwrap());
    }
    assert_eq!(answers[..3], [Admission::Admitted; 3], "{answers:?}");
    let waits: Vec<f64> = answers[3..]
        .iter()
        .map(|a| match a {
            Admission::Wait(wait) => wait.as_secs_f64(),
            Admission::Admitted => panic!("admitted past the burst: {answers:?}"),
        })
        .collect();
    for (wait, slot) in waits.iter().zip([0.1, 0.2, 0.3, 0.4]) {
        assert!(
            (wait - slot).abs() < 0.02,
            "refusals come back one slot apart: {waits:?}"
        );
    }
    // Another tenant's bucket is its own.
    let other = instances[0].take(Uuid::new_v4(), 10.0, 3).await.unwrap();
    assert_eq!(other, Admission::Admitted);
}

#[actix_web::test]
async fn a_model_uploaded_on_one_instance_is_used_by_both_with_no_filing_lost_or_scored_twice() {
    let fleet = Fleet::start(
        "swap",
        &[false, false],
        &[
            ("PDSCORE__PIPELINE__DEFAULT_RATE_PER_SECOND", "100000"),
            ("PDSCORE__PIPELINE__DEFAULT_BURST", "100000"),
        ],
    )
    .await;
    let sa = fleet.login(0, Role::SuperAdmin).await;
    let analyst = fleet.login(1, Role::OrgMember).await;
    let acme = fleet.company("ACME").await;
    let v2 = "annual/polish-gbdt@2";

    // Uploaded through instance 0; instance 1 loads it from the database on the fleet's change.
    let response = fleet
        .client
        .post(format!("{}/api/v1/models", fleet.urls[0]))
        .bearer_auth(&sa)
        .multipart(crate::deployments::gbdt_v2().form())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{:?}", response.text().await);
    let uploaded = Instant::now();
    eventually("instance 1 to load the upload", Duration::from_secs(5), || async {
        let (_, models) = fleet.call(1, "GET", "/models", Some(&analyst), None).await;
        models["data"].as_array()?.iter().any(|m| m["id"] == v2).then_some(())
    })
    .await;
    eprintln!(
        "the upload through instance 0 was loaded by instance 1 after {:?}",
        uploaded.elapsed()
    );

    // Filings flow to both instances, eight at a time, while the version is activated through instance 0.
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|w| {
            let (client, urls, analyst) = (fleet.client.clone(), fleet.urls.clone(), analyst.clone());
            let (sent, stop) = (sent.clone(), stop.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let n = sent.fetch_add(1, Ordering::SeqCst);
                    let instance = (n + w) % 2;
                    let sent_at = Instant::now();
                    let body = json!({ "type": "annual", "reporting_year": 1950 + n % 200,
                                       "statement": crate::validation::statement((n % 20) as i64),
                                       "filing_id": format!("swap-{n}") });
                    let response = client
                        .post(format!("{}/api/v1/companies/{acme}/predictions", urls[instance]))
                        .bearer_auth(&analyst)
                        .json(&body)
                        .send()
                        .await
                        .unwrap();
                    let status = response.status().as_u16();
                    let answer: Value = response.json().await.unwrap_or(Value::Null);
                    let model = answer["data"]["model"].as_str().map(str::to_owned);
                    answers.push((instance, sent_at, Instant::now(), status, model));
                }
                answers
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, answer) = fleet
        .call(
            0,
            "POST",
            "/models/activations",
            Some(&sa),
            Some(&json!({ "model": v2 })),
        )
        .await;
    assert_eq!(status, 201, "{answer:#}");
    let activated = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut answers = Vec::new();
    for worker in workers {
        answers.extend(worker.await.unwrap());
    }

    // Every filing answered, each by one version, and stored once.
    assert!(answers.len() > 50, "{} filings", answers.len());
    assert!(
        answers.iter().all(|a| a.3 == 201),
        "a filing was refused during the swap"
    );
    let stored = fleet
        .count("SELECT count(*) FROM predictions p JOIN filings f ON f.id = p.filing_id WHERE f.idempotency_key LIKE 'swap-%' AND NOT p.is_shadow")
        .await;
    assert_eq!(stored, answers.len() as i64, "each filing scored exactly once");
    let distinct = fleet
        .count("SELECT count(DISTINCT p.filing_id) FROM predictions p JOIN filings f ON f.id = p.filing_id WHERE f.idempotency_key LIKE 'swap-%' AND NOT p.is_shadow")
        .await;
    assert_eq!(distinct, stored);
    // Each instance switched once, for good: a filing sent after its first answer by v2 was received is
    // answered by v2 too.
    for instance in 0..2 {
        let mine: Vec<_> = answers.iter().filter(|a| a.0 == instance).collect();
        assert!(
            mine.iter()
                .all(|a| matches!(a.4.as_deref(), Some("annual/polish-gbdt@1" | "annual/polish-gbdt@2")))
        );
        let switched = mine
            .iter()
            .filter(|a| a.4.as_deref() == Some(v2))
            .map(|a| a.2)
            .min()
            .unwrap_or_else(|| panic!("instance {instance} never used {v2}"));
        let went_back = mine
            .iter()
            .filter(|a| a.1 > switched && a.4.as_deref() != Some(v2))
            .count();
        assert_eq!(
            went_back, 0,
            "instance {instance} answered with the old version after the new one"
        );
        let after = switched.saturating_duration_since(activated);
        eprintln!("instance {instance} answered with {v2} {after:?} after the activation was answered");
        assert!(after < Duration::from_secs(1), "instance {instance} took {after:?}");
    }
}
