//! Exactly-once effect across crashes: 20,000 filings published for several tenants, the service killed
//! with SIGKILL midway and started again (alone, and as one of two instances consuming together): every
//! filing ends with exactly one prediction.

use std::{
    process::Child,
    time::{Duration, Instant},
};

use futures_util::future::join_all;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    helpers::{Isolation, base_settings, closed_port},
    pipeline::{message, safe},
};

const FILINGS: usize = 20_000;
const TENANTS: usize = 4;
const COMPANIES: usize = 10;

/// A `pdscore serve` process with the test's isolation, limits raised so that only the kill matters.
fn serve(isolation: &Isolation, port: u16, log: &str) -> Child {
    isolation.serve(
        port,
        log,
        &[
            ("PDSCORE__PIPELINE__DEFAULT_RATE_PER_SECOND", "1000000"),
            ("PDSCORE__PIPELINE__DEFAULT_BURST", "1000000"),
            ("PDSCORE__PIPELINE__MAX_QUEUED_PER_TENANT", "5000"),
            ("PDSCORE__PIPELINE__INGEST_ACK_WAIT_SECS", "5"),
        ],
    )
}

async fn committed(db: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM predictions")
        .fetch_one(db)
        .await
        .unwrap_or(0)
}

/// Sets up tenants and companies, publishes the filings, and runs `instances` services of which the first
/// is killed with SIGKILL once about a quarter of the filings are committed, then started again.
async fn scenario(instances: usize) {
    let isolation = Isolation::new();
    isolation.migrate();
    let db = PgPool::connect(&isolation.database_url).await.unwrap();
    for t in 0..TENANTS {
        let tenant = Uuid::now_v7();
        let org = Uuid::now_v7();
        sqlx::query("INSERT INTO tenants (id, slug, name) VALUES ($1, $2, $2)")
            .bind(tenant)
            .bind(format!("tenant-{t}"))
            .execute(&db)
            .await
            .unwrap();
        sqlx::query("INSERT INTO organizations (id, tenant_id, name) VALUES ($1, $2, 'Org')")
            .bind(org)
            .bind(tenant)
            .execute(&db)
            .await
            .unwrap();
        for c in 0..COMPANIES {
            sqlx::query(
                "INSERT INTO companies (id, tenant_id, organization_id, symbol, name) VALUES ($1, $2, $3, $4, $4)",
            )
            .bind(Uuid::now_v7())
            .bind(tenant)
            .bind(org)
            .bind(format!("C{c}"))
            .execute(&db)
            .await
            .unwrap();
        }
    }

    // The streams exist once a service has started; start the first one, then publish.
    let ports: Vec<u16> = join_all((0..instances).map(|_| closed_port())).await;
    let mut services: Vec<Child> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            serve(
                &isolation,
                *port,
                &format!("pdscore-crash-{}-{i}.log", isolation.db_name),
            )
        })
        .collect();
    let client = async_nats::connect(base_settings().nats.url.expose_secret())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let ns = pdscore_nats::Namespace::parse(&isolation.nats_prefix).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while js.get_stream(ns.stream_name("FILINGS")).await.is_err() {
        assert!(Instant::now() < deadline, "the service did not create the streams");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    for chunk in (0..FILINGS).collect::<Vec<_>>().chunks(1000) {
        let acks = join_all(chunk.iter().map(|i| {
            let (js, subject) = (js.clone(), ns.filings(&format!("tenant-{}", i % TENANTS), "annual"));
            let payload = message(
                &format!("filing-{i}"),
                &format!("C{}", (i / TENANTS) % COMPANIES),
                1900 + (i % 300) as u16,
                safe(),
            );
            async move { js.publish(subject, payload.into()).await.unwrap().await.unwrap() }
        }))
        .await;
        assert_eq!(acks.len(), chunk.len());
    }
    eprintln!(
        "published {FILINGS} filings in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Kill the first instance with SIGKILL mid-stream.
    let deadline = Instant::now() + Duration::from_secs(120);
    while committed(&db).await < (FILINGS / 4) as i64 {
        assert!(Instant::now() < deadline, "scoring did not progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    services[0].kill().unwrap();
    services[0].wait().unwrap();
    let at_kill = committed(&db).await;
    eprintln!("killed instance 0 at {at_kill} committed predictions");
    services[0] = serve(
        &isolation,
        ports[0],
        &format!("pdscore-crash-{}-0-restarted.log", isolation.db_name),
    );

    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let n = committed(&db).await;
        if n >= FILINGS as i64 {
            break;
        }
        assert!(Instant::now() < deadline, "only {n} of {FILINGS} filings scored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "{instances} instance(s): {FILINGS} filings committed {elapsed:.1} s after publishing began ({:.0} filings/s, including the kill and restart)",
        FILINGS as f64 / elapsed
    );
    // Let redeliveries of in-flight messages settle, then check nothing was scored twice.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (filings, predictions, distinct): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM filings), (SELECT count(*) FROM predictions),
                (SELECT count(DISTINCT filing_id) FROM predictions)",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        (filings, predictions, distinct),
        (FILINGS as i64, FILINGS as i64, FILINGS as i64)
    );
    let missing: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM generate_series(0, $1 - 1) i
         WHERE NOT EXISTS (SELECT 1 FROM filings f WHERE f.idempotency_key = 'filing-' || i)",
    )
    .bind(FILINGS as i64)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(missing, 0);

    for mut service in services {
        let _ = service.kill();
        let _ = service.wait();
    }
    db.close().await;
}

#[actix_web::test]
async fn every_filing_is_scored_exactly_once_across_a_kill_9() {
    scenario(1).await;
}

#[actix_web::test]
async fn two_instances_share_the_work_and_survive_a_kill_9() {
    scenario(2).await;
}
