//! The persistence ceilings, on the rows the pipeline writes for the stream load's filings (filing + prediction),
//! batched as the pipeline batches them, with as many transactions in flight:
//! - `postgres`: inserted by the store's own inserts (one statement per batch) — without the pipeline, the
//!   company locks, the companies' risk (the portfolio's read model) or the alerts. The tables are copies of
//!   `filings` and `predictions` (same columns, defaults and indexes) in a schema of their own, dropped
//!   afterwards.
//! - `postgres-commit`: committed by the store's own commit, as the persist writer commits a batch (the
//!   companies' lock, the filings, their predictions, the companies' risk and tallies, the alerts' outbox) into
//!   the real tables, for companies of a tenant of its own (created for the run with its companies, deleted
//!   afterwards with everything written for it) — without the pipeline (no HTTP, NATS or actor), and with no
//!   two transactions in flight over one company (the persist writer's rule): each batch's companies are
//!   consecutive, and `companies` should exceed a batch times the transactions in flight.
//!
//! Scoring the rows beforehand is measured too (the `scoring` ceiling: the tenant's default models on the
//! pipeline's batches).

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use futures_util::{StreamExt, stream};
use pdscore_actors::{
    Committed, Filing, PredictionStore, Scores, TenantPolicy, domain::FilingKey, ports::CommitResult, scoring,
};
use pdscore_models::registry::Registry;
use sqlx::{Executor, postgres::PgPoolOptions};
use uuid::Uuid;

use super::{Record, cpu::CpuMeter, histogram, record_since, run_tag, stream::spread_filing};
use pdscore::{
    configuration::Settings,
    db::{self, predictions::PgPredictionStore},
    domain::TenantSlug,
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
    let run = run_tag();
    let ceiling = CeilingTenant::create(&pool, &run, load.companies.max(1)).await?;
    let outcome = measure(&load, &pool, &store, &policy, &registry, &run, &ceiling).await;
    match tokio::time::timeout(Duration::from_secs(300), ceiling.delete(&pool)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!(
            "warning: could not delete the ceiling's tenant {}: {e:#}",
            ceiling.tenant_id
        ),
        Err(e) => eprintln!(
            "warning: could not delete the ceiling's tenant {}: {e}",
            ceiling.tenant_id
        ),
    }
    outcome
}

/// A tenant of the commit ceiling's own, with its organization and companies (their risk rows are created by
/// the companies' trigger, as for any company).
struct CeilingTenant {
    tenant_id: Uuid,
    organization_id: Uuid,
    companies: Vec<Uuid>,
}

impl CeilingTenant {
    async fn create(pool: &sqlx::PgPool, run: &str, companies: u64) -> anyhow::Result<Self> {
        const NAME: &str = "Persistence ceiling";
        let slug = TenantSlug::parse(&format!("ceiling-{}", run.to_lowercase())).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut tx = pool.begin().await?;
        let tenant = db::tenants::insert(&mut tx, &slug, NAME).await?;
        let organization = db::organizations::insert(&mut tx, tenant.id, NAME, None).await?;
        let ceiling = Self {
            tenant_id: tenant.id,
            organization_id: organization.id,
            companies: (0..companies).map(|_| Uuid::now_v7()).collect(),
        };
        sqlx::query(
            "INSERT INTO companies (id, tenant_id, organization_id, symbol, name)
             SELECT c.id, $2, $3, 'C' || c.n, 'Ceiling company ' || c.n
             FROM unnest($1::uuid[]) WITH ORDINALITY AS c(id, n)",
        )
        .bind(&ceiling.companies)
        .bind(ceiling.tenant_id)
        .bind(ceiling.organization_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await.context("create the commit ceiling's tenant")?;
        sqlx::query("ANALYZE companies, company_risk").execute(pool).await?;
        Ok(ceiling)
    }

    /// Deletes the tenant and everything written for it (its history first, in bulk, rather than company by
    /// company through the companies' trigger).
    async fn delete(&self, pool: &sqlx::PgPool) -> anyhow::Result<()> {
        let mut tx = pool.begin().await?;
        for statement in [
            "DELETE FROM predictions WHERE tenant_id = $1",
            "DELETE FROM filings WHERE tenant_id = $1",
            "DELETE FROM tenants WHERE id = $1",
        ] {
            sqlx::query(statement).bind(self.tenant_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn measure(
    load: &PostgresLoad<'_>,
    pool: &sqlx::PgPool,
    store: &PgPredictionStore,
    policy: &TenantPolicy,
    registry: &Registry,
    run: &str,
    ceiling: &CeilingTenant,
) -> anyhow::Result<Record> {
    let settings = load.settings;

    // The rows, scored before the clock starts: the stream load's messages, decoded as ingest decodes them,
    // for the ceiling tenant's companies (in order: a batch's companies are consecutive).
    let prefix = settings.nats.prefix.as_str();
    let namespace = pdscore_nats::Namespace::parse(prefix).map_err(|e| anyhow::anyhow!("{e}"))?;
    let subject = namespace.filings(load.tenant, "annual");
    let companies = &ceiling.companies;
    let mut filings = Vec::with_capacity(load.count as usize);
    for i in 0..load.count {
        let payload = spread_filing(run, i, companies.len() as u64);
        let decoded = pdscore_nats::message::decode(prefix, &subject, &payload)
            .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))?;
        let key = decoded
            .filing_id
            .clone()
            .map(FilingKey::into_string)
            .unwrap_or_default();
        filings.push(decoded.into_filing(
            ceiling.tenant_id,
            ceiling.organization_id,
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
        let scores = scoring::score_rows(registry, policy, &chunk);
        let scored = scoring::attach(policy, chunk, scores)
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
        let mut commits = stream::iter(&batches)
            .map(|batch| {
                let copies = copies.clone();
                async move {
                    let begun = Instant::now();
                    db::predictions::insert_rows(&copies, batch).await.map(|()| begun)
                }
            })
            .buffer_unordered(in_flight);
        let mut latency = histogram();
        while let Some(committed) = commits.next().await {
            record_since(&mut latency, committed.context("insert a batch")?);
        }
        let record = rows_record("postgres", in_flight, rows, started, &latency).with_cpu(cpu.stop());
        copies.close().await;
        Ok::<_, anyhow::Error>(record)
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
    let committed = commit_ceiling(store, batches, in_flight, ceiling.companies.len() as u64).await?;
    committed.emit(load.record)?;
    Ok(record)
}

/// The same batches committed by the store's own commit (see the module's documentation).
async fn commit_ceiling(
    store: &PgPredictionStore,
    batches: Vec<Vec<Scores>>,
    in_flight: usize,
    companies: u64,
) -> anyhow::Result<Record> {
    let rows: u64 = batches.iter().map(|b| b.len() as u64).sum();
    let cpu = CpuMeter::start();
    let started = Instant::now();
    let mut commits = stream::iter(batches)
        .map(|batch| async move {
            let begun = Instant::now();
            let results = store
                .commit(Arc::new(batch))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            match results
                .iter()
                .find(|r| !matches!(r, CommitResult::Committed(c) if matches!(**c, Committed::Created { .. })))
            {
                Some(other) => anyhow::bail!("a filing was not written: {other:?}"),
                None => Ok(begun),
            }
        })
        .buffered(in_flight);
    let mut latency = histogram();
    while let Some(committed) = commits.next().await {
        record_since(&mut latency, committed.context("commit a batch")?);
    }
    let mut record = rows_record("postgres-commit", in_flight, rows, started, &latency).with_cpu(cpu.stop());
    record.companies = Some(companies);
    Ok(record)
}

/// A ceiling's record: its latency per batch commit, its count and throughput in rows, since `started`.
fn rows_record(
    path: &str,
    in_flight: usize,
    rows: u64,
    started: Instant,
    latency: &hdrhistogram::Histogram<u64>,
) -> Record {
    let elapsed = started.elapsed();
    let mut record = Record::new(path, Some(in_flight), elapsed, latency);
    record.count = rows;
    record.throughput = rows as f64 / elapsed.as_secs_f64().max(1e-9);
    record
}
