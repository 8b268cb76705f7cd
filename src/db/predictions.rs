//! The pipeline's store ([`PgPredictionStore`], the `PredictionStore` port): a batch of scored filings
//! committed in one transaction — filings, predictions and the alerts they raise (written by
//! [`super::alerts`]) — and the reads the pipeline makes (a tenant's policy, earlier quarters). Also the
//! persistence ceiling's insert ([`insert_rows`]), which shares the store's statements. The API's reads of
//! predictions are in [`super::history`].

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, LazyLock,
        atomic::{AtomicU64, Ordering},
    },
};

use chrono::{DateTime, SubsecRound, Utc};
use futures_util::{FutureExt, future::BoxFuture};
use pdscore_actors::{
    Alert, Committed, DefaultModels, Filing, ModelChoice, ModelScore, NewCompany, PredictionStore, PredictionType,
    Scores, StoreError, Stored, TenantPolicy, ports::CommitResult,
};
use pdscore_models::{
    explain::Contribution,
    risk::RiskScheme,
    statement::{ReportingPeriod, Statement},
    term::TermStructure,
};
use serde_json::{Map, Value};
use sqlx::{Executor, PgConnection, PgPool, Postgres, Row, pool::PoolConnection, postgres::PgRow, types::Json};
use uuid::Uuid;

use super::{
    Bind,
    company_risk::{CompanyRisk, Scored},
};
use crate::configuration::PipelineSettings;

/// The pipeline's store on PostgreSQL.
pub struct PgPredictionStore {
    pool: PgPool,
    /// Defaults for tenants that set no limit or scheme of their own.
    defaults: Arc<PipelineSettings>,
    /// … nor model.
    default_models: Arc<DefaultModels>,
    /// Filings and predictions committed by this store (see [`super::Growth`]).
    committed: Arc<super::Growth>,
    /// Companies created with their filings (the AccuNode routes' new symbols): checked far more often than the
    /// filings, since a tenant filing for new companies grows `companies` from nothing by one per filing. Its
    /// statistics then stayed those of its first rows until the next 20,000 filings, and a plan made for a table
    /// of a few pages (a sequential scan) served the lookups by symbol of every request while it grew to 10,000s
    /// of rows: a new company per request cost 1.25–1.9 ms of the machine instead of 0.8–0.9 (BENCHMARKS.md).
    created: Arc<super::Growth>,
    /// Transactions committed by this store, for folding the portfolio's tallies now and then.
    commits: Arc<AtomicU64>,
}

/// The portfolio's tallies are folded after this many of the store's commits, whether or not anyone reads the
/// portfolio (a reader folds them too).
const FOLD_TALLIES_EVERY: u64 = 512;

impl PgPredictionStore {
    pub fn new(pool: PgPool, defaults: Arc<PipelineSettings>, default_models: Arc<DefaultModels>) -> Self {
        Self {
            pool,
            defaults,
            default_models,
            committed: Arc::new(super::Growth::new(20_000)),
            created: Arc::new(super::Growth::new(1_000)),
            commits: Arc::default(),
        }
    }
}

impl PredictionStore for PgPredictionStore {
    fn commit(&self, batch: Arc<Vec<Scores>>) -> BoxFuture<'static, Result<Vec<CommitResult>, StoreError>> {
        let pool = self.pool.clone();
        let (committed, created) = (self.committed.clone(), self.created.clone());
        let commits = self.commits.clone();
        async move {
            // A deadlock or serialization failure between two writers is retried; anything else is reported.
            let mut attempt = 0;
            loop {
                match commit_batch(&pool, &batch).await {
                    Ok(results) => {
                        if (commits.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(FOLD_TALLIES_EVERY) {
                            let pool = pool.clone();
                            tokio::spawn(async move {
                                if let Err(e) = super::portfolio::fold_all_tallies(&pool).await {
                                    tracing::warn!(error = %e, "folding the portfolio's tallies failed");
                                }
                            });
                        }
                        use super::Analyzed::*;
                        let new_companies = batch.iter().filter(|s| s.filing.new_company.is_some()).count() as u64;
                        // Companies too: they are created for the filings (one by one by the AccuNode route), and
                        // the foreign-key checks of every prediction read them.
                        let filings_grew = committed.grew(batch.len() as u64);
                        let companies_grew = new_companies > 0 && created.grew(new_companies);
                        let grown: &'static [super::Analyzed] = if filings_grew {
                            &[Filings, Predictions, Companies]
                        } else if companies_grew {
                            &[Companies]
                        } else {
                            &[]
                        };
                        if !grown.is_empty() {
                            tokio::spawn(async move {
                                super::analyze(&pool, grown).await;
                            });
                        }
                        return Ok(results);
                    }
                    Err(sqlx::Error::Database(e))
                        if attempt < 3 && matches!(e.code().as_deref(), Some("40P01" | "40001")) =>
                    {
                        attempt += 1;
                        tracing::warn!(error = %e, attempt, "commit conflict; retrying");
                    }
                    Err(e) => return Err(super::store_error("failed to commit predictions", e)),
                }
            }
        }
        .boxed()
    }

    fn tenant_policy(&self, tenant_id: Uuid) -> BoxFuture<'static, Result<Option<TenantPolicy>, StoreError>> {
        let (pool, defaults, models) = (self.pool.clone(), self.defaults.clone(), self.default_models.clone());
        async move {
            tenant_policy(&pool, &defaults, &models, tenant_id)
                .await
                .map_err(|e| super::store_error("failed to read the tenant's policy", e))
        }
        .boxed()
    }

    fn previous_quarters(
        &self,
        tenant_id: Uuid,
        requests: Vec<(Uuid, ReportingPeriod)>,
    ) -> BoxFuture<'static, Result<Vec<Option<[Statement; 3]>>, StoreError>> {
        let pool = self.pool.clone();
        async move {
            previous_quarters(&pool, tenant_id, &requests)
                .await
                .map_err(|e| super::store_error("failed to read the previous quarters", e))
        }
        .boxed()
    }
}

/// See [`PredictionStore::previous_quarters`]: the latest answered quarterly filing with a statement of each
/// of the three quarters before each request, one statement for all requests. A stored statement that no
/// longer parses counts as absent.
async fn previous_quarters(
    pool: &PgPool,
    tenant_id: Uuid,
    requests: &[(Uuid, ReportingPeriod)],
) -> Result<Vec<Option<[Statement; 3]>>, sqlx::Error> {
    let rows: Vec<(i64, i32, Value)> = sqlx::query_as(
        "SELECT DISTINCT ON (r.ord, q) r.ord, q, f.statement
         FROM unnest($2::uuid[], $3::int4[]) WITH ORDINALITY AS r(company_id, quarter, ord)
         JOIN predictions p ON p.tenant_id = $1 AND p.company_id = r.company_id
              AND p.prediction_type = 'quarterly' AND NOT p.is_shadow
              AND p.period_year BETWEEN (r.quarter - 3) / 4 AND r.quarter / 4
         CROSS JOIN LATERAL (SELECT p.period_year * 4 + p.period_quarter - 1 AS q) AS pq
         JOIN filings f ON f.tenant_id = p.tenant_id AND f.id = p.filing_id AND f.statement IS NOT NULL
         WHERE q BETWEEN r.quarter - 3 AND r.quarter - 1
         ORDER BY r.ord, q, p.created_at DESC, p.id DESC",
    )
    .bind(tenant_id)
    .bind(requests.iter().map(|(company, _)| *company).collect::<Vec<_>>())
    .bind(
        requests
            .iter()
            .map(|(_, period)| period.quarter_index().unwrap_or_default())
            .collect::<Vec<_>>(),
    )
    .fetch_all(pool)
    .await?;
    let mut found: Vec<Vec<(i32, Option<Statement>)>> = vec![Vec::new(); requests.len()];
    for (ord, quarter, statement) in rows {
        if let Some(slot) = usize::try_from(ord - 1).ok().and_then(|i| found.get_mut(i)) {
            slot.push((quarter, serde_json::from_value(statement).ok()));
        }
    }
    Ok(found
        .into_iter()
        .map(|quarters| {
            let statements: Vec<Statement> = quarters.into_iter().map(|(_, s)| s).collect::<Option<_>>()?;
            statements.try_into().ok()
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct TenantRow {
    slug: String,
    is_active: bool,
    rate_limit_per_second: Option<i32>,
    rate_limit_burst: Option<i32>,
    risk_thresholds: Option<Value>,
    alert_pd_change: Option<f64>,
    base_rate: Option<f64>,
}

async fn tenant_policy(
    pool: &PgPool,
    defaults: &PipelineSettings,
    models: &DefaultModels,
    tenant_id: Uuid,
) -> Result<Option<TenantPolicy>, sqlx::Error> {
    let Some(tenant) = sqlx::query_as::<_, TenantRow>(
        "SELECT slug, is_active, rate_limit_per_second, rate_limit_burst, risk_thresholds, alert_pd_change,
                base_rate
         FROM tenants WHERE id = $1",
    )
    .bind(tenant_id)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let settings: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT prediction_type::text, default_model, shadow_model FROM tenant_model_settings WHERE tenant_id = $1",
    )
    .bind(tenant_id)
    .fetch_all(pool)
    .await?;
    let choice = |prediction_type: PredictionType| {
        let row = settings.iter().find(|(t, _, _)| t == prediction_type.as_str());
        ModelChoice {
            default: row
                .and_then(|(_, d, _)| d.as_deref()?.parse().ok())
                .unwrap_or_else(|| models.get(prediction_type)),
            shadow: row.and_then(|(_, _, s)| s.as_deref()?.parse().ok()),
        }
    };
    // A scheme that no longer parses falls back to the default rather than stopping the tenant's scoring.
    let risk_scheme = tenant
        .risk_thresholds
        .and_then(|v| serde_json::from_value::<RiskScheme>(v).ok())
        .unwrap_or_default();
    Ok(Some(TenantPolicy {
        tenant_id,
        slug: tenant.slug,
        active: tenant.is_active,
        rate_per_second: tenant
            .rate_limit_per_second
            .map_or(defaults.default_rate_per_second, f64::from),
        burst: tenant
            .rate_limit_burst
            .map_or(defaults.default_burst, |b| b.max(1) as u32),
        risk_scheme,
        alert_pd_change: tenant.alert_pd_change.unwrap_or(defaults.default_alert_pd_change),
        base_rate: tenant.base_rate,
        annual: choice(PredictionType::Annual),
        quarterly: choice(PredictionType::Quarterly),
    }))
}

/// A pooled connection that is closed, not returned to the pool, unless its work was released as done: a
/// transaction cut short (an error, or its future dropped while a statement ran) never reaches the next user
/// half-open. PostgreSQL rolls back what a closed connection left.
struct ClosedUnlessDone {
    conn: PoolConnection<Postgres>,
    done: bool,
}

impl Drop for ClosedUnlessDone {
    fn drop(&mut self) {
        if !self.done {
            self.conn.close_on_drop();
        }
    }
}

/// A company of the batch as [`lock`] locked it (or as the batch creates it).
struct Locked {
    organization_id: Uuid,
    symbol: String,
    /// Its risk before the batch (see [`CompanyRisk`]), and its current level as the tallies count it.
    risk: CompanyRisk,
    level: Option<String>,
}

/// The planner's cost of a random page read in a commit's transaction (see [`lock`]): the pages it reads by key
/// are those of rows it has just locked or will write, in memory. With 10,000 companies, a batch of 256: the lock
/// 2.9 ms and the risk update 4.1 ms with the default cost (both tables read whole, hash joins), 2.3 and 2.5 ms
/// with this one (index probes; `EXPLAIN ANALYZE`, one client).
const COMMIT_RANDOM_PAGE_COST: f64 = 1.1;

/// What [`lock`] answers: the live companies of the batch, locked, and the slugs of its tenants.
struct Lock {
    companies: HashMap<(Uuid, Uuid), Locked>,
    slugs: HashMap<Uuid, String>,
}

/// `BEGIN` and the lock of the batch's companies (`lock_companies`, migration 20261210000002), sent as one
/// message (one round trip), answering the live ones — a company deleted meanwhile is not returned, and none can
/// be deleted until the commit — and the tenants' slugs. `conn` is then in the transaction: the caller commits,
/// or closes the connection. The lock takes the companies in one global order, so concurrent batches never
/// deadlock and risk-change decisions for one company are serialized across instances; the next statement
/// starts after it, so its snapshot holds everything committed by the transactions that held these companies
/// before.
///
/// The simple-query protocol that allows several statements has no parameters, so the ids are written into the
/// text: they are `Uuid`s, whose text is hexadecimal digits and dashes only. The function's query is planned
/// once per connection (PostgreSQL keeps the plans of PL/pgSQL's statements); this text, a call, costs little
/// to plan.
///
/// The transaction plans with a random page read costed as in memory ([`COMMIT_RANDOM_PAGE_COST`]): its
/// statements read and update a batch's rows of the companies and their risk by key, and with the default cost
/// (4, a spinning disk's) PostgreSQL read both tables whole for a batch of 64 companies or more of a 10,000's —
/// O(companies) per commit (`EXPLAIN`).
async fn lock(conn: &mut PgConnection, tenants: &[Uuid], companies: &[Uuid]) -> Result<Lock, sqlx::Error> {
    let list = |ids: &[Uuid]| ids.iter().map(Uuid::to_string).collect::<Vec<_>>().join(",");
    let text = format!(
        "BEGIN; SET LOCAL random_page_cost = {COMMIT_RANDOM_PAGE_COST};
         SELECT * FROM lock_companies('{{{}}}'::uuid[], '{{{}}}'::uuid[])",
        list(tenants),
        list(companies)
    );
    let rows: Vec<PgRow> = conn.fetch_all(text.as_str()).await?;
    let mut lock = Lock {
        companies: HashMap::with_capacity(rows.len()),
        slugs: HashMap::with_capacity(tenants.len()),
    };
    for row in &rows {
        let tenant_id: Uuid = row.try_get("tenant_id")?;
        match row.try_get::<Option<Uuid>, _>("id")? {
            Some(id) => {
                let locked = Locked {
                    organization_id: row.try_get("organization_id")?,
                    symbol: row.try_get("symbol")?,
                    risk: row
                        .try_get::<Option<Json<CompanyRisk>>, _>("risk")?
                        .map(|r| r.0)
                        .unwrap_or_default(),
                    level: row.try_get("level")?,
                };
                lock.companies.insert((tenant_id, id), locked);
            }
            None => {
                lock.slugs.insert(tenant_id, row.try_get("slug")?);
            }
        }
    }
    Ok(lock)
}

/// The companies new with a batch's filings (each as its filing's `company_id`) from column arrays `$45`…`$52`
/// (see [`bind_new_companies`]): those of organizations that exist and whose symbol is free. A company whose
/// symbol was taken meanwhile is not created, and its filing is not written: it is answered as its company
/// gone (see [`NewCompany`]). Unseen by other transactions until the commit, a created company needs no lock.
const CREATE_COMPANIES: &str =
    "INSERT INTO companies (id, tenant_id, organization_id, symbol, name, sector, market_cap,
                            created_by)
     SELECT n.id, n.tenant_id, n.organization_id, n.symbol, n.name, n.sector, n.market_cap, u.id
     FROM unnest($45::uuid[], $46::uuid[], $47::uuid[], $48::text[], $49::text[], $50::text[], $51::float8[],
                 $52::uuid[]) AS n(id, tenant_id, organization_id, symbol, name, sector, market_cap, created_by)
     JOIN organizations o ON o.tenant_id = n.tenant_id AND o.id = n.organization_id
     LEFT JOIN users u ON u.tenant_id = n.tenant_id AND u.id = n.created_by
     ON CONFLICT (tenant_id, organization_id, symbol) DO NOTHING";

/// Binds the new companies' column arrays `$45`…`$52` of [`CREATE_COMPANIES`].
fn bind_new_companies<'q, Q: Bind<'q>>(query: Q, new: &[(&'q Filing, &'q NewCompany)]) -> Q {
    query
        .bind_value(new.iter().map(|(f, _)| f.company_id).collect::<Vec<_>>())
        .bind_value(new.iter().map(|(f, _)| f.tenant_id).collect::<Vec<_>>())
        .bind_value(new.iter().map(|(f, _)| f.organization_id).collect::<Vec<_>>())
        .bind_value(new.iter().map(|(_, n)| n.symbol.as_str()).collect::<Vec<_>>())
        .bind_value(new.iter().map(|(_, n)| n.name.as_str()).collect::<Vec<_>>())
        .bind_value(new.iter().map(|(_, n)| n.sector.as_deref()).collect::<Vec<_>>())
        .bind_value(new.iter().map(|(_, n)| n.market_cap).collect::<Vec<_>>())
        .bind_value(new.iter().map(|(_, n)| n.created_by).collect::<Vec<_>>())
}

/// The filings of a batch from column arrays `$1`…`$15` (see [`bind_filings`]), as `f`.
const INSERT_FILINGS: &str = "INSERT INTO filings (id, tenant_id, company_id, idempotency_key, source, prediction_type,
                          period_year, period_quarter, statement, ratios, raw, bulk_job_id, bulk_row,
                          organization_id, content_digest)
     SELECT id, tenant_id, company_id, key, source::filing_source, kind::prediction_type, year, quarter, statement,
            ratios, raw, job, row, organization_id, digest
     FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::int2[], $8::int2[],
                 $9::jsonb[], $10::jsonb[], $11::jsonb[], $12::uuid[], $13::int8[], $14::uuid[], $15::bytea[])
          AS f(id, tenant_id, company_id, key, source, kind, year, quarter, statement, ratios, raw, job, row,
               organization_id, digest)";

/// The unique key of filings (`filings_idempotency`), the target of the inserts' `ON CONFLICT`.
const FILING_KEY: &str = "(tenant_id, organization_id, source, idempotency_key)";

/// The predictions of a batch from column arrays from `$first` on (see [`PredictionRows::bind`]), those of the
/// filings the statement inserted (`ins`).
fn insert_predictions(first: usize) -> String {
    format!("{} JOIN ins ON ins.id = r.filing_id", insert_prediction_rows(first))
}

/// The predictions of column arrays from `$first` on (see [`PredictionRows::bind`]).
fn insert_prediction_rows(first: usize) -> String {
    let arrays: [&str; 20] = [
        "uuid",
        "uuid",
        "uuid",
        "uuid",
        "uuid",
        "text",
        "int2",
        "int2",
        "text",
        "int4",
        "bool",
        "float8",
        "jsonb",
        "text",
        "text",
        "float8",
        "jsonb",
        "jsonb",
        "jsonb",
        "timestamptz",
    ];
    let arrays = column_arrays(first, &arrays);
    format!(
        "INSERT INTO predictions (id, tenant_id, organization_id, company_id, filing_id, prediction_type, period_year,
                                  period_quarter, model_name, model_version, is_shadow, probability, term_structure,
                                  risk_level, implied_rating, confidence, contributions, inputs, basis, created_at)
         SELECT r.id, r.tenant_id, r.organization_id, r.company_id, r.filing_id, r.kind::prediction_type, r.year,
                r.quarter, r.model_name, r.model_version, r.is_shadow, r.probability, r.term_structure,
                r.level::risk_level, r.rating, r.confidence, r.contributions, r.inputs, r.basis, r.created_at
         FROM unnest({arrays})
              AS r(id, tenant_id, organization_id, company_id, filing_id, kind, year, quarter, model_name,
                   model_version, is_shadow, probability, term_structure, level, rating, confidence, contributions,
                   inputs, basis, created_at)"
    )
}

/// The risk a batch gives its locked companies (see [`CompanyRisk`]), as common table expressions from column
/// arrays `$first`…: tenants, companies, states (their JSON text: the column is `json`), current PDs and current
/// levels ([`bind_risk_update`]); and the moves between levels this makes in the portfolio's tallies (tenants,
/// organizations, levels — null: unscored —, deltas).
fn risk_update(first: usize) -> String {
    let risk = column_arrays(first, &["uuid", "uuid", "text", "float8", "text"]);
    let moves = column_arrays(first + 5, &["uuid", "uuid", "text", "int8"]);
    format!(
        "moves AS (
             INSERT INTO portfolio_tally (tenant_id, organization_id, risk_level, delta)
             SELECT tenant_id, organization_id, level::risk_level, delta
             FROM unnest({moves}) AS m(tenant_id, organization_id, level, delta)),
         risk AS (
             UPDATE company_risk r SET risk = u.risk::json, probability = u.probability, level = u.level::risk_level
             FROM unnest({risk}) AS u(tenant_id, company_id, risk, probability, level)
             WHERE r.tenant_id = u.tenant_id AND r.company_id = u.company_id)"
    )
}

/// Parameters `$first`… as arrays of these element types, for `unnest`: `$16::uuid[], $17::text[], …`.
fn column_arrays(first: usize, kinds: &[&str]) -> String {
    kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| format!("${}::{kind}[]", first + i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The batch's writes after the lock, in one statement: the filings inserted (a key seen before, or twice in
/// the batch, is skipped) with their predictions, and the risk of the batch's companies as the batch leaves it
/// if every filing is written ([`risk_update`]: the commit corrects it after when one is not). Filings
/// `$1`…`$15` (of live companies only), predictions `$16`…`$35`, the companies' risk `$36`…`$44`. Answers the
/// ids of the filings inserted.
static WRITE_BATCH: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH ins AS (
             {INSERT_FILINGS}
             ON CONFLICT {FILING_KEY} DO NOTHING
             RETURNING id),
         written AS ({predictions}),
         {risk}
         SELECT id, FALSE AS created FROM ins",
        predictions = insert_predictions(16),
        risk = risk_update(36),
    )
});

/// [`WRITE_BATCH`] for a batch with new companies: they are created first in the same statement
/// ([`CREATE_COMPANIES`], `$45`…`$52`) with their risk rows (`$53` companies, `$54` states, `$55` current PDs,
/// `$56` current levels: what their filings in the batch make them), and the filings of those not created are
/// not written. Answers the ids of the filings inserted, then (`created`) those of the companies created.
static WRITE_BATCH_CREATING: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH created AS ({CREATE_COMPANIES} RETURNING id, tenant_id, organization_id),
         created_risk AS (
             INSERT INTO company_risk (tenant_id, company_id, organization_id, risk, probability, level)
             SELECT c.tenant_id, c.id, c.organization_id, n.risk::json, n.probability, n.level::risk_level
             FROM created c
             JOIN unnest($53::uuid[], $54::text[], $55::float8[], $56::text[]) AS n(id, risk, probability, level)
                  ON n.id = c.id),
         ins AS (
             {INSERT_FILINGS}
             WHERE f.company_id <> ALL($45::uuid[]) OR f.company_id IN (SELECT id FROM created)
             ON CONFLICT {FILING_KEY} DO NOTHING
             RETURNING id),
         written AS ({predictions}),
         {risk}
         SELECT id, FALSE AS created FROM ins UNION ALL SELECT id, TRUE FROM created",
        predictions = insert_predictions(16),
        risk = risk_update(36),
    )
});

/// The companies' risk when the batch's write left it otherwise than expected (a filing whose key was seen
/// before is not written): [`risk_update`] from `$1`.
static CORRECT_RISK: LazyLock<String> = LazyLock::new(|| format!("WITH {} SELECT 1", risk_update(1)));

/// One transaction for the whole batch (see [`PredictionStore::commit`]) in three round trips whatever its
/// size: [`lock`] (which reads the companies' risk), [`WRITE_BATCH`] (which creates the new companies first and
/// writes the companies' new risk) and the commit; the risk-change alerts decided from the companies' risk cost
/// one more when there are any, and filings not inserted two more (the prediction of a key seen before, and
/// the correction of their companies' risk).
async fn commit_batch(pool: &PgPool, batch: &[Scores]) -> Result<Vec<CommitResult>, sqlx::Error> {
    // Companies new with their filings are created by the batch's write (each once); the others are locked.
    let mut new_companies: Vec<(&Filing, &NewCompany)> = batch
        .iter()
        .filter_map(|s| s.filing.new_company.as_deref().map(|new| (&s.filing, new)))
        .collect();
    new_companies.sort_by_key(|(f, _)| f.company_id);
    new_companies.dedup_by_key(|(f, _)| f.company_id);
    let mut tenants: Vec<Uuid> = batch.iter().map(|s| s.filing.tenant_id).collect();
    tenants.sort_unstable();
    tenants.dedup();
    let mut companies: Vec<Uuid> = batch
        .iter()
        .filter(|s| s.filing.new_company.is_none())
        .map(|s| s.filing.company_id)
        .collect();
    companies.sort_unstable();
    companies.dedup();
    let mut conn = ClosedUnlessDone {
        conn: pool.acquire().await?,
        done: false,
    };
    let Lock {
        companies: mut locked,
        slugs,
    } = lock(&mut conn.conn, &tenants, &companies).await?;
    // As they will be if the write creates them (else their filings are not written).
    for (filing, new) in &new_companies {
        locked
            .entry((filing.tenant_id, filing.company_id))
            .or_insert_with(|| Locked {
                organization_id: filing.organization_id,
                symbol: new.symbol.clone(),
                risk: CompanyRisk::default(),
                level: None,
            });
    }

    let filing_ids: Vec<Uuid> = batch.iter().map(|_| Uuid::now_v7()).collect();
    // The batch's predictions carry one timestamp (at the database's precision), returned to the callers.
    let created_at = Utc::now().trunc_subsecs(6);
    // Only the live companies' filings are written; the others are answered as the filings not written.
    let (mut live, mut live_ids) = (Vec::with_capacity(batch.len()), Vec::with_capacity(batch.len()));
    let mut rows = PredictionRows::default();
    for (scores, filing_id) in batch.iter().zip(&filing_ids) {
        let Some(company) = locked.get(&(scores.filing.tenant_id, scores.filing.company_id)) else {
            continue;
        };
        live.push(scores);
        live_ids.push(*filing_id);
        let organization_id = company.organization_id;
        rows.push_primary(scores, organization_id, *filing_id, created_at);
        if let Some(shadow) = &scores.shadow {
            rows.push(scores, organization_id, *filing_id, Uuid::now_v7(), shadow, created_at);
        }
    }
    // The risk the batch gives its companies if every filing is written (they are, but for a key seen before):
    // written by the batch's write — a new company's row created with it, not empty and then updated — and
    // corrected after it where a filing was not written.
    let (mut expected, mut expected_new) = (HashMap::new(), HashMap::new());
    for scores in &live {
        let f = &scores.filing;
        let key = (f.tenant_id, f.company_id);
        let risk = match f.new_company {
            Some(_) => expected_new.entry(key).or_default(),
            None => expected
                .entry(key)
                .or_insert_with(|| locked.get(&key).map(|l| l.risk.clone()).unwrap_or_default()),
        };
        risk.apply(f.prediction_type, scored(scores, created_at));
    }
    let query = |text| bind_filings(sqlx::query_as::<_, (Uuid, bool)>(text), &live, &live_ids);
    let answered: Vec<(Uuid, bool)> = if new_companies.is_empty() {
        bind_risk_update(rows.bind(query(&WRITE_BATCH)), &locked, &expected)?
            .fetch_all(&mut *conn.conn)
            .await?
    } else {
        let write = bind_risk_update(rows.bind(query(&WRITE_BATCH_CREATING)), &locked, &expected)?;
        bind_risks(bind_new_companies(write, &new_companies), &expected_new)?
            .fetch_all(&mut *conn.conn)
            .await?
    };
    let (mut written, mut new_created) = (HashSet::new(), HashSet::new());
    for (id, company) in answered {
        match company {
            true => new_created.insert(id),
            false => written.insert(id),
        };
    }
    // The tallies now count the companies at the level of the risk they were written with.
    for (key, risk) in expected.iter().chain(&expected_new) {
        if let Some(company) = locked.get_mut(key) {
            company.level = current(risk).map(|l| l.level.as_str().to_owned());
        }
    }

    // Filings not written are answered after the alerts: a key seen before, or a company gone.
    let mut results: Vec<CommitResult> = batch.iter().map(|_| CommitResult::CompanyGone).collect();
    let mut risks: HashMap<(Uuid, Uuid), CompanyRisk> = HashMap::new();
    let mut alerts = Vec::new();
    let mut unwritten = Vec::new();
    for (index, (scores, filing_id)) in batch.iter().zip(&filing_ids).enumerate() {
        let f = &scores.filing;
        let company = (f.tenant_id, f.company_id);
        let (true, Some(locked)) = (written.contains(filing_id), locked.get(&company)) else {
            unwritten.push(index);
            continue;
        };
        let risk = risks.entry(company).or_insert_with(|| locked.risk.clone());
        let new = scored(scores, created_at);
        // Only a prediction for the company's latest period changes its current risk; a late filing for an
        // earlier period is stored without an alert.
        let previous = risk.latest(f.prediction_type).cloned();
        let late = previous.as_ref().is_some_and(|p| new.period() < p.period());
        risk.apply(f.prediction_type, new);
        if late {
            results[index] = created(scores, *filing_id, created_at, None);
            continue;
        }
        let alert = previous.and_then(|p| {
            let reason = Alert::decide(
                p.level,
                p.probability,
                scores.primary.risk_level,
                scores.primary.probability,
                scores.alert_pd_change,
            )?;
            Some(Alert {
                schema_version: Alert::SCHEMA_VERSION,
                id: Uuid::now_v7(),
                tenant_id: f.tenant_id,
                tenant_slug: slugs.get(&f.tenant_id).cloned().unwrap_or_default(),
                organization_id: locked.organization_id,
                company_id: f.company_id,
                company_symbol: locked.symbol.clone(),
                prediction_id: scores.prediction_id,
                previous_prediction_id: Some(p.id),
                prediction_type: f.prediction_type,
                period_year: f.content.period.year,
                period_quarter: f.content.period.quarter,
                previous_level: Some(p.level),
                new_level: scores.primary.risk_level,
                previous_probability: Some(p.probability),
                new_probability: scores.primary.probability,
                reason,
                created_at: Utc::now(),
            })
        });
        if let Some(alert) = &alert {
            alerts.push(alert.clone());
        }
        results[index] = created(scores, *filing_id, created_at, alert);
    }
    // Where a filing was not written, its company's risk is corrected (a new company's, if it was created).
    let mut corrections = HashMap::new();
    let created_risk = expected_new.iter().filter(|(key, _)| new_created.contains(&key.1));
    for (key, expected) in expected.iter().chain(created_risk) {
        let before = locked.get(key).map(|l| &l.risk);
        let actual = risks.get(key).or(before);
        if actual != Some(expected) {
            corrections.insert(*key, actual.cloned().unwrap_or_default());
        }
    }
    if !corrections.is_empty() {
        bind_risk_update(sqlx::query(&CORRECT_RISK), &locked, &corrections)?
            .execute(&mut *conn.conn)
            .await?;
    }
    super::alerts::insert(&mut conn.conn, &alerts).await?;

    // A filing not written whose key names a filing (seen before, or earlier in this batch) of the same company
    // saying the same is that filing: it answers with the prediction made then; a filing of another company or
    // content under the key is a conflict. Otherwise its company is gone (the statement writes only live
    // companies' filings).
    if !unwritten.is_empty() {
        let filings = || unwritten.iter().map(|&i| &batch[i].filing);
        let existing: HashMap<ExistingKey, (Uuid, Option<Vec<u8>>, Uuid)> = sqlx::query_as::<_, ExistingFiling>(
            "SELECT f.tenant_id, f.organization_id, f.source::text AS source, f.idempotency_key, f.company_id,
                    f.content_digest, p.id AS prediction_id
             FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]) AS k(tenant_id, organization_id, source, key)
             JOIN filings f ON f.tenant_id = k.tenant_id AND f.organization_id = k.organization_id
                           AND f.source = k.source::filing_source AND f.idempotency_key = k.key
             JOIN predictions p ON p.tenant_id = f.tenant_id AND p.filing_id = f.id AND NOT p.is_shadow",
        )
        .bind(filings().map(|f| f.tenant_id).collect::<Vec<_>>())
        .bind(filings().map(|f| f.organization_id).collect::<Vec<_>>())
        .bind(filings().map(|f| f.source.as_str()).collect::<Vec<_>>())
        .bind(filings().map(|f| f.idempotency_key.as_str()).collect::<Vec<_>>())
        .fetch_all(&mut *conn.conn)
        .await?
        .into_iter()
        .map(|e| {
            (
                (e.tenant_id, e.organization_id, e.source, e.idempotency_key),
                (e.company_id, e.content_digest, e.prediction_id),
            )
        })
        .collect();
        for i in unwritten {
            let f = &batch[i].filing;
            let key = (
                f.tenant_id,
                f.organization_id,
                f.source.as_str().to_owned(),
                f.idempotency_key.clone(),
            );
            if let Some((company_id, digest, prediction_id)) = existing.get(&key) {
                let same =
                    *company_id == f.company_id && digest.as_deref().is_none_or(|d| d == f.content_digest().as_slice());
                results[i] = if same {
                    CommitResult::Committed(Box::new(Committed::Duplicate {
                        prediction_id: *prediction_id,
                    }))
                } else {
                    CommitResult::KeyReused(f.idempotency_key.clone())
                };
            }
        }
    }
    conn.conn.execute("COMMIT").await?;
    conn.done = true;
    Ok(results)
}

/// Binds [`risk_update`]'s arrays: the companies' new `risks`, and the moves between levels this makes in the
/// tallies, from the level each company of `locked` is counted at.
fn bind_risk_update<'q, Q: Bind<'q>>(
    query: Q,
    locked: &HashMap<(Uuid, Uuid), Locked>,
    risks: &HashMap<(Uuid, Uuid), CompanyRisk>,
) -> Result<Q, sqlx::Error> {
    // (tenant, organization, level) → companies moved in (+) or out (−).
    let mut moves: HashMap<(Uuid, Uuid, Option<String>), i64> = HashMap::new();
    for (key, risk) in risks {
        let Some(company) = locked.get(key) else { continue };
        let after = current(risk).map(|l| l.level.as_str());
        if company.level.as_deref() != after {
            *moves
                .entry((key.0, company.organization_id, company.level.clone()))
                .or_default() -= 1;
            *moves
                .entry((key.0, company.organization_id, after.map(str::to_owned)))
                .or_default() += 1;
        }
    }
    moves.retain(|_, delta| *delta != 0);
    let query = query.bind_value(risks.keys().map(|k| k.0).collect::<Vec<_>>());
    Ok(bind_risks(query, risks)?
        .bind_value(moves.keys().map(|m| m.0).collect::<Vec<_>>())
        .bind_value(moves.keys().map(|m| m.1).collect::<Vec<_>>())
        .bind_value(moves.keys().map(|m| m.2.clone()).collect::<Vec<_>>())
        .bind_value(moves.values().copied().collect::<Vec<_>>()))
}

/// The current prediction of a risk state.
fn current(risk: &CompanyRisk) -> Option<&Scored> {
    risk.current().map(|(_, latest, _)| latest)
}

/// A filing's prediction as its company's risk state holds it.
fn scored(scores: &Scores, created_at: DateTime<Utc>) -> Scored {
    let period = &scores.filing.content.period;
    Scored {
        id: scores.prediction_id,
        year: year(period),
        quarter: period.quarter.map(i16::from),
        probability: scores.primary.probability,
        level: scores.primary.risk_level,
        rating: Some(scores.primary.implied_rating.to_owned()),
        model: scores.primary.model.to_string(),
        created_at,
    }
}

/// Binds companies' risk as four column arrays: the companies (of `(tenant, company)` keys), their states (as
/// JSON text: the column is `json`), their current PDs and levels.
fn bind_risks<'q, Q: Bind<'q>>(query: Q, risks: &HashMap<(Uuid, Uuid), CompanyRisk>) -> Result<Q, sqlx::Error> {
    let states = risks
        .values()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| sqlx::Error::Encode(e.into()))?;
    Ok(query
        .bind_value(risks.keys().map(|k| k.1).collect::<Vec<_>>())
        .bind_value(states)
        .bind_value(
            risks
                .values()
                .map(|r| current(r).map(|l| l.probability))
                .collect::<Vec<_>>(),
        )
        .bind_value(
            risks
                .values()
                .map(|r| current(r).map(|l| l.level.as_str().to_owned()))
                .collect::<Vec<_>>(),
        ))
}

/// A filing's key: tenant, organization, source, key.
type ExistingKey = (Uuid, Uuid, String, String);

/// A filing found by its key, with what tells whether a filing under the same key is the same.
#[derive(sqlx::FromRow)]
struct ExistingFiling {
    tenant_id: Uuid,
    organization_id: Uuid,
    source: String,
    idempotency_key: String,
    company_id: Uuid,
    content_digest: Option<Vec<u8>>,
    prediction_id: Uuid,
}

/// Stores the scores of a replay: each stored filing's (`scores.filing`, whose company is in `organization_id`)
/// score by another model, beside its answer (`is_shadow`); a filing that model scored before keeps that
/// prediction (a resumed replay writes nothing twice). The predictions written.
#[tracing::instrument(name = "db.predictions.insert_replayed", level = "debug", skip_all)]
pub async fn insert_replayed(conn: &mut PgConnection, scored: &[(Uuid, Scores)]) -> Result<u64, sqlx::Error> {
    static INSERT_REPLAYED: LazyLock<String> = LazyLock::new(|| {
        format!(
            "{} ON CONFLICT (tenant_id, filing_id, model_name, model_version) DO NOTHING",
            insert_prediction_rows(1)
        )
    });
    let created_at = Utc::now();
    let mut rows = PredictionRows::default();
    for (filing_id, scores) in scored {
        // An id other than the answer's: stored as a shadow.
        rows.push(
            scores,
            scores.filing.organization_id,
            *filing_id,
            Uuid::now_v7(),
            &scores.primary,
            created_at,
        );
    }
    Ok(rows
        .bind(sqlx::query(&INSERT_REPLAYED))
        .execute(conn)
        .await?
        .rows_affected())
}

/// The persistence ceiling (`pdscore-load postgres`): the batch's filings and primary predictions written by
/// the same inserts as [`WRITE_BATCH`] in one statement, without its lock, reads and alerts.
#[tracing::instrument(name = "db.predictions.insert_rows", level = "debug", skip_all)]
pub async fn insert_rows(pool: &PgPool, batch: &[Scores]) -> Result<(), sqlx::Error> {
    static INSERT_ROWS: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH ins AS ({INSERT_FILINGS} ON CONFLICT {FILING_KEY} DO NOTHING RETURNING id) {}",
            insert_predictions(16)
        )
    });
    let filing_ids: Vec<Uuid> = batch.iter().map(|_| Uuid::now_v7()).collect();
    let mut rows = PredictionRows::default();
    let created_at = Utc::now();
    for (scores, filing_id) in batch.iter().zip(&filing_ids) {
        rows.push_primary(scores, scores.filing.organization_id, *filing_id, created_at);
    }
    let all: Vec<&Scores> = batch.iter().collect();
    rows.bind(bind_filings(sqlx::query(&INSERT_ROWS), &all, &filing_ids))
        .execute(pool)
        .await?;
    Ok(())
}

fn created(scores: &Scores, filing_id: Uuid, created_at: DateTime<Utc>, alert: Option<Alert>) -> CommitResult {
    CommitResult::Committed(Box::new(Committed::Created {
        prediction_id: scores.prediction_id,
        stored: Box::new(Stored {
            filing_id,
            created_at,
            score: scores.primary.clone(),
            alert,
        }),
    }))
}

pub(super) fn year(period: &ReportingPeriod) -> i16 {
    i16::try_from(period.year).unwrap_or(i16::MAX)
}

/// Binds the filings' column arrays `$1`…`$15` of [`INSERT_FILINGS`] (each with its id from `ids`).
fn bind_filings<'q, Q: Bind<'q>>(query: Q, batch: &[&'q Scores], ids: &[Uuid]) -> Q {
    let filings = || batch.iter().map(|s| &s.filing);
    query
        .bind_value(ids.to_vec())
        .bind_value(filings().map(|f| f.tenant_id).collect::<Vec<_>>())
        .bind_value(filings().map(|f| f.company_id).collect::<Vec<_>>())
        .bind_value(filings().map(|f| f.idempotency_key.as_str()).collect::<Vec<_>>())
        .bind_value(filings().map(|f| f.source.as_str()).collect::<Vec<_>>())
        .bind_value(filings().map(|f| f.prediction_type.as_str()).collect::<Vec<_>>())
        .bind_value(filings().map(|f| year(&f.content.period)).collect::<Vec<_>>())
        .bind_value(
            filings()
                .map(|f| f.content.period.quarter.map(i16::from))
                .collect::<Vec<_>>(),
        )
        .bind_value(
            filings()
                .map(|f| f.content.statement.as_ref().map(Json))
                .collect::<Vec<_>>(),
        )
        .bind_value(
            filings()
                .map(|f| f.content.ratios.as_ref().map(Json))
                .collect::<Vec<_>>(),
        )
        .bind_value(filings().map(|f| &f.raw).collect::<Vec<_>>())
        .bind_value(filings().map(|f| f.bulk.map(|(job, _)| job)).collect::<Vec<_>>())
        .bind_value(filings().map(|f| f.bulk.map(|(_, row)| row)).collect::<Vec<_>>())
        .bind_value(filings().map(|f| f.organization_id).collect::<Vec<_>>())
        .bind_value(filings().map(|f| f.content_digest().to_vec()).collect::<Vec<_>>())
}

/// A score's PD by horizon, as stored.
pub(super) fn term_structure_json(score: &ModelScore) -> Option<Value> {
    score.term_structure.as_ref().map(|t| serde_json::json!(t))
}

/// A score's reason codes, as stored.
pub(super) fn contributions_json(score: &ModelScore) -> Value {
    serde_json::to_value(&score.contributions).unwrap_or_else(|_| Value::Array(vec![]))
}

/// The predictions of a batch as column arrays, inserted in one statement; the documents are borrowed from the
/// scores and serialized straight into the statement's parameters.
#[derive(Default)]
struct PredictionRows<'a> {
    id: Vec<Uuid>,
    tenant_id: Vec<Uuid>,
    organization_id: Vec<Uuid>,
    company_id: Vec<Uuid>,
    filing_id: Vec<Uuid>,
    prediction_type: Vec<&'static str>,
    period_year: Vec<i16>,
    period_quarter: Vec<Option<i16>>,
    model_name: Vec<&'a str>,
    model_version: Vec<i32>,
    is_shadow: Vec<bool>,
    probability: Vec<f64>,
    term_structure: Vec<Option<Json<&'a TermStructure>>>,
    risk_level: Vec<&'static str>,
    implied_rating: Vec<&'static str>,
    confidence: Vec<f64>,
    contributions: Vec<Json<&'a [Contribution]>>,
    inputs: Vec<Json<&'a Map<String, Value>>>,
    basis: Vec<Option<Value>>,
    created_at: Vec<DateTime<Utc>>,
}

impl<'a> PredictionRows<'a> {
    /// The filing's answer: its primary score, under the prediction id chosen for it.
    fn push_primary(&mut self, scores: &'a Scores, organization_id: Uuid, filing_id: Uuid, created_at: DateTime<Utc>) {
        self.push(
            scores,
            organization_id,
            filing_id,
            scores.prediction_id,
            &scores.primary,
            created_at,
        );
    }

    fn push(
        &mut self,
        scores: &'a Scores,
        organization_id: Uuid,
        filing_id: Uuid,
        id: Uuid,
        score: &'a ModelScore,
        created_at: DateTime<Utc>,
    ) {
        let f = &scores.filing;
        let is_shadow = id != scores.prediction_id;
        self.created_at.push(created_at);
        self.id.push(id);
        self.tenant_id.push(f.tenant_id);
        self.organization_id.push(organization_id);
        self.company_id.push(f.company_id);
        self.filing_id.push(filing_id);
        self.prediction_type.push(f.prediction_type.as_str());
        self.period_year.push(year(&f.content.period));
        self.period_quarter.push(f.content.period.quarter.map(i16::from));
        self.model_name.push(&score.model.name);
        self.model_version
            .push(i32::try_from(score.model.version).unwrap_or(i32::MAX));
        self.is_shadow.push(is_shadow);
        self.probability.push(score.probability);
        self.term_structure.push(score.term_structure.as_ref().map(Json));
        self.risk_level.push(score.risk_level.as_str());
        self.implied_rating.push(score.implied_rating);
        self.confidence.push(score.confidence);
        self.contributions.push(Json(&score.contributions));
        self.inputs.push(Json(&score.inputs));
        self.basis.push(score.basis());
    }

    /// Binds the column arrays of [`insert_predictions`], in its order, as the query's next parameters.
    fn bind<Q: Bind<'a>>(self, query: Q) -> Q {
        query
            .bind_value(self.id)
            .bind_value(self.tenant_id)
            .bind_value(self.organization_id)
            .bind_value(self.company_id)
            .bind_value(self.filing_id)
            .bind_value(self.prediction_type)
            .bind_value(self.period_year)
            .bind_value(self.period_quarter)
            .bind_value(self.model_name)
            .bind_value(self.model_version)
            .bind_value(self.is_shadow)
            .bind_value(self.probability)
            .bind_value(self.term_structure)
            .bind_value(self.risk_level)
            .bind_value(self.implied_rating)
            .bind_value(self.confidence)
            .bind_value(self.contributions)
            .bind_value(self.inputs)
            .bind_value(self.basis)
            .bind_value(self.created_at)
    }
}
