//! The persistence ceiling: the rows the pipeline writes for the stream load's filings (filing + prediction),
//! inserted by the store's own inserts (one statement per batch), batched as the pipeline batches them, with as
//! many transactions in flight — but without the pipeline, the company locks, the previous-prediction read or the
//! alerts. The tables are copies of `filings` and `predictions` (same columns, defaults and indexes) in a
//! schema of their own, dropped afterwards. Scoring the rows beforehand is measured too (the `scoring` ceiling:
//! the tenant's default models on the pipeline's batches).

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use futures_util::{StreamExt, stream};
use pdscore_actors::{Filing, PredictionStore, domain::FilingKey, scoring};
use sqlx::{Executor, postgres::PgPoolOptions};
use uuid::Uuid;

use super::{Record, cpu::CpuMeter, histogram, record_since, run_tag, stream::spread_filing};
use pdscore::{
    configuration::Settings,
    db::{self, predictions::PgPredictionStore},
    pipeline,
};

/// How long the ceiling's connections may take to open.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(60);

pub struct PostgresLoad<'a> {
    pub settings: &'a Settings,
    /// The tenant whose policy (models, risk scheme) scores the rows.
    pub tenant: &'a str,
    pub count: u64,
    pub companies: u64,
    pub record: Option<&'a Path>,
}

pub async fn ceiling(load: PostgresLoad<'_>) -> anyhow::Result<Record> {
    let settings = load.settings;
    // The measurement's own connections wait for PostgreSQL as long as it takes: right after the stream
    // loads the service may still hold the server busy (vacuum, the backlog's last commits), and the
    // service's 3 s acquire timeout made this row fail on a slow host.
    let mut database = settings.database.clone();
    database.acquire_timeout_ms = database.acquire_timeout_ms.max(ACQUIRE_TIMEOUT.as_millis() as u64);
    let pool = db::pool(&database)?;
    let tenant_id: Uuid = sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
        .bind(load.tenant)
        .fetch_optional(&pool)
        .await?
        .with_context(|| format!("no tenant {:?}", load.tenant))?;
    // The store alone (no portfolio cache to invalidate): the ceiling measures PostgreSQL.
    let store = PgPredictionStore::new(
        pool.clone(),
        Arc::new(settings.pipeline.clone()),
        Arc::new(settings.pipeline.default_models()),
    );
    let policy = store
        .tenant_policy(tenant_id)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .context("the tenant disappeared")?;
    let registry = pipeline::load_registry(settings)?;

    // The rows, scored before the clock starts: the stream load's messages, decoded as ingest decodes them.
    let run = run_tag();
    let prefix = settings.nats.prefix.as_str();
    let namespace = pdscore_nats::Namespace::parse(prefix).map_err(|e| anyhow::anyhow!("{e}"))?;
    let subject = namespace.filings(load.tenant, "annual");
    let companies: Vec<Uuid> = (0..load.companies.max(1)).map(|_| Uuid::now_v7()).collect();
    let organization_id = Uuid::now_v7();
    let mut filings = Vec::with_capacity(load.count as usize);
    for i in 0..load.count {
        let payload = spread_filing(&run, i, companies.len() as u64);
        let decoded = pdscore_nats::message::decode(prefix, &subject, &payload)
            .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))?;
        let key = decoded
            .filing_id
            .clone()
            .map(FilingKey::into_string)
            .unwrap_or_default();
        filings.push(decoded.into_filing(
            tenant_id,
            organization_id,
            companies[(i % companies.len() as u64) as usize],
            key,
        ));
    }
    // Scoring them is a ceiling of its own: the tenant's default models on the pipeline's batches, one core.
    let batch = settings.pipeline.max_batch.max(1);
    let mut batches = Vec::new();
    let rows = filings.len() as u64;
    let mut rest = filings.into_iter();
    let cpu = CpuMeter::start();
    let started = Instant::now();
    loop {
        let chunk: Vec<Filing> = rest.by_ref().take(batch).collect();
        if chunk.is_empty() {
            break;
        }
        let scores = scoring::score_rows(&registry, &policy, &chunk);
        let scored = scoring::attach(&policy, chunk, scores)
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("a row was not scored: {e}"))?;
        batches.push(scored);
    }
    let scoring = Record::throughput_only("scoring", rows, started.elapsed()).with_cpu(cpu.stop());
    scoring.emit(load.record)?;

    let schema = format!("load_ceiling_{}", run.to_lowercase());
    pool.execute(
        format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.filings (LIKE public.filings INCLUDING ALL);
             CREATE TABLE {schema}.predictions (LIKE public.predictions INCLUDING ALL);"
        )
        .as_str(),
    )
    .await
    .context("create the ceiling's tables")?;
    let in_flight = settings.pipeline.persist_max_in_flight.max(1);
    let outcome = async {
        // The store's statements name `filings` and `predictions`: on these connections they are the copies.
        let search_path = format!("SET search_path TO {schema}, public");
        let copies = PgPoolOptions::new()
            .max_connections(in_flight as u32)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(move |conn, _| {
                let search_path = search_path.clone();
                Box::pin(async move { conn.execute(search_path.as_str()).await.map(drop) })
            })
            .connect_with(settings.database.connect_options()?)
            .await?;
        let rows: u64 = batches.iter().map(|b| b.len() as u64).sum();
        let cpu = CpuMeter::start();
        let started = Instant::now();
        let mut commits = stream::iter(batches)
            .map(|batch| {
                let copies = copies.clone();
                async move {
                    let begun = Instant::now();
                    db::predictions::insert_rows(&copies, &batch).await.map(|()| begun)
                }
            })
            .buffer_unordered(in_flight);
        let mut latency = histogram();
        while let Some(committed) = commits.next().await {
            record_since(&mut latency, committed.context("insert a batch")?);
        }
        let elapsed = started.elapsed();
        let cpu = cpu.stop();
        copies.close().await;
        // Latency is per batch commit; the count and throughput are rows.
        let mut record = Record::new("postgres", Some(in_flight), elapsed, &latency);
        record.count = rows;
        record.throughput = rows as f64 / elapsed.as_secs_f64().max(1e-9);
        Ok::<_, anyhow::Error>(record.with_cpu(cpu))
    }
    .await;
    let dropped = tokio::time::timeout(
        Duration::from_secs(60),
        pool.execute(format!("DROP SCHEMA {schema} CASCADE").as_str()),
    )
    .await;
    if !matches!(dropped, Ok(Ok(_))) {
        eprintln!("warning: could not drop schema {schema}");
    }
    let record = outcome?;
    record.emit(load.record)?;
    Ok(record)
}
