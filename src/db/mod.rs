//! PostgreSQL: the connection pool, the schema's migrations, and the repositories.
//!
//! Repositories are plain async functions over a `PgPool` or a transaction; each tenant-scoped one takes an
//! [`Scope`](crate::auth::Scope) derived from the verified caller, so a query without it cannot be written.

pub mod alerts;
pub mod audit;
pub mod bulk_jobs;
pub mod companies;
pub mod company_lookups;
pub mod company_risk;
pub mod deployments;
pub mod drift;
pub mod history;
pub mod organizations;
pub mod outcomes;
pub mod pagination;
pub mod portfolio;
pub mod predictions;
pub mod replays;
pub mod sessions;
pub mod tenants;
pub mod users;
pub mod validation;

use std::time::Duration;

use anyhow::Context;
use sqlx::{
    Connection, PgPool, Postgres,
    migrate::{MigrateDatabase, Migrator},
    postgres::{PgArguments, PgPoolOptions},
    query::{Query, QueryAs, QueryScalar},
};

use crate::{auth::Scope, configuration::DatabaseSettings};

/// The pipeline's view of a failed statement: refused for what it was given (SQLSTATE classes 22, data
/// exception — such as U+0000 in text —, 23, integrity, and 54, a limit; or a value that cannot be encoded),
/// or unavailable (anything else: connection, pool, timeout, shutdown), which a retry may cure.
pub fn store_error(what: &str, e: sqlx::Error) -> pdscore_actors::StoreError {
    use pdscore_actors::StoreError;
    let refused = match &e {
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("22") || code.starts_with("23") || code.starts_with("54")),
        sqlx::Error::Encode(_) => true,
        _ => false,
    };
    let reason = format!("{what}: {e}");
    if refused {
        StoreError::Refused(reason)
    } else {
        StoreError::Unavailable(reason)
    }
}

/// A query's `bind`, for code that binds the same parameters to queries of any kind (`query`, `query_as`,
/// `query_scalar`).
pub(crate) trait Bind<'q>: Sized {
    fn bind_value<T: 'q + sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres>>(self, value: T) -> Self;
}

macro_rules! bind_for {
    ($(<$($generic:lifetime),* $(, $param:ident)*> $query:ty),+) => {$(
        impl<$($generic),* $(, $param)*> Bind<'q> for $query {
            fn bind_value<T: 'q + sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres>>(self, value: T) -> Self {
                self.bind(value)
            }
        }
    )+};
}
bind_for!(
    <'q, O> QueryAs<'q, Postgres, O, PgArguments>,
    <'q, O> QueryScalar<'q, Postgres, O, PgArguments>,
    <'q> Query<'q, Postgres, PgArguments>
);

/// Binds a [`Scope`] as a query's first three parameters, in the order of the repositories' `IN_SCOPE`
/// conditions: tenant (`$1`), organization (`$2`), assigned user (`$3`).
pub(crate) trait BindScope {
    fn bind_scope(self, scope: &Scope) -> Self;
}

impl<'q, Q: Bind<'q>> BindScope for Q {
    fn bind_scope(self, scope: &Scope) -> Self {
        self.bind_value(scope.tenant())
            .bind_value(scope.organization())
            .bind_value(scope.assigned_to())
    }
}

/// The schema's migrations, embedded in the binary (`sqlx migrate run` applies the same directory).
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// How long a pooled connection may sit idle and still be handed out unchecked.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(1);

/// A pool that connects lazily: the service starts (and reports the database down in `/health`) even while
/// PostgreSQL is unreachable, and recovers by itself when it returns.
pub fn pool(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(settings.min_connections)
        .acquire_timeout(settings.acquire_timeout())
        // sqlx checks every connection when it comes back (a round trip that also ends what an interrupted
        // query left), and by default again when it is taken: a second round trip per acquire, on every
        // commit and every read. Only a connection that sat idle (through a database restart, say) is
        // checked again; a broken one that was not is dropped when it comes back, after its error.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= CHECK_IDLE_AFTER {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(settings.connect_options().context("Invalid database.url")?))
}

/// Creates the database if it does not exist and applies pending migrations, waiting up to
/// `database.startup_timeout_secs` for PostgreSQL to accept connections.
pub async fn prepare(settings: &DatabaseSettings, pool: &PgPool) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(settings.startup_timeout_secs);
    let url = secrecy::ExposeSecret::expose_secret(&settings.url);
    let mut delay = Duration::from_millis(200);
    loop {
        match sqlx::Postgres::database_exists(url).await {
            Ok(true) => break,
            Ok(false) => {
                tracing::info!(
                    database = settings.connect_options()?.get_database(),
                    "creating database"
                );
                // Another instance may create it at the same moment; its existence is what matters.
                if let Err(e) = sqlx::Postgres::create_database(url).await
                    && !sqlx::Postgres::database_exists(url).await.unwrap_or(false)
                {
                    return Err(e).context("Failed to create the database");
                }
                break;
            }
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "PostgreSQL not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                return Err(e).context("PostgreSQL did not become reachable before database.startup_timeout_secs");
            }
        }
    }
    migrate(pool).await
}

/// Applies pending migrations. Safe to run from several instances at once: sqlx takes an advisory lock.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("Failed to apply database migrations")?;
    tracing::info!(latest = latest_migration(), "database schema up to date");
    Ok(())
}

/// The version of the newest migration this binary carries.
pub fn latest_migration() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// When a writer (a bulk job, the scoring pipeline's store) should check whether the tables it grows need new
/// statistics. Either can add 100,000s of companies and filings in minutes, long before autovacuum (if enabled at
/// all) analyzes them; without statistics the planner may check each new prediction's foreign key by scanning a
/// whole organization's companies (a 1,000-row insert then took 11 s instead of 30 ms). So a writer analyzes the
/// tables it grows, as PostgreSQL's guide to populating a database advises: every `every` rows it adds it calls
/// [`analyze`], which analyzes those of them that have doubled since their last analysis.
pub(crate) struct Growth {
    every: u64,
    added: std::sync::atomic::AtomicU64,
}

impl Growth {
    pub(crate) fn new(every: u64) -> Self {
        Self {
            every,
            added: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Records `n` more rows; true when the total crosses a multiple of `every`.
    pub(crate) fn grew(&self, n: u64) -> bool {
        let before = self.added.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        (before + n) / self.every > before / self.every
    }
}

/// `ANALYZE` of those of `tables` that have no statistics yet or have doubled on disk since their last
/// analysis — by this writer, another instance's, autovacuum or an operator: PostgreSQL's catalog says, so N
/// instances (and a benchmark that vacuums) do not analyze the same growth N times. That keeps the number of
/// `ANALYZE`s logarithmic in a table's size, each reading a bounded sample; each costs a core for a quarter- to
/// most of a second at 100,000s of rows, taken from the scoring. A failure only costs plan quality, so it is
/// logged; the tables analyzed are returned.
pub async fn analyze(pool: &PgPool, tables: &[Analyzed]) -> Vec<&'static str> {
    let all: Vec<(&'static str, &'static str)> = tables.iter().flat_map(|t| t.tables()).copied().collect();
    let names: Vec<&str> = all.iter().map(|(name, _)| *name).collect();
    // `relpages` and `reltuples` are the last analysis's (or vacuum's); the file's size is now's.
    let grown: Vec<String> = match sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c
         WHERE c.oid = ANY($1::text[]::regclass[])
           AND (c.reltuples < 0
                OR pg_relation_size(c.oid) >= greatest(2 * c.relpages, 1)::int8 * current_setting('block_size')::int8)",
    )
    .bind(&names)
    .fetch_all(pool)
    .await
    {
        Ok(grown) => grown,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the grown tables' sizes");
            return Vec::new();
        }
    };
    let chosen: Vec<(&'static str, &'static str)> = all
        .into_iter()
        .filter(|(name, _)| grown.iter().any(|g| g == name))
        .collect();
    if chosen.is_empty() {
        return Vec::new();
    }
    let targets = chosen.iter().map(|(_, target)| *target).collect::<Vec<_>>().join(", ");
    let started = std::time::Instant::now();
    match sqlx::query(&format!("ANALYZE {targets}")).execute(pool).await {
        Ok(_) => tracing::debug!(
            tables = targets,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "analyzed"
        ),
        Err(e) => {
            tracing::warn!(tables = targets, error = %e, "could not analyze grown tables");
            return Vec::new();
        }
    }
    chosen.into_iter().map(|(name, _)| name).collect()
}

/// A table writers grow, analyzed for the columns that plans join, filter or sort on. The JSON documents
/// (statements, ratios, payloads, model inputs, reason codes) are left out: no query filters on them, and their
/// statistics were most of an `ANALYZE`'s cost (filings, predictions and companies after 100,000 predictions:
/// 850 ms with every column, 260 ms without them), taken from the cores that score.
#[derive(Clone, Copy, Debug)]
pub enum Analyzed {
    Filings,
    Predictions,
    /// With their risk rows: the portfolio's riskiest page reads them in index order only when the planner
    /// knows how many an organization has (with a count from the table's first rows it sorted every company
    /// of the organization: 18 ms per page at 10,000 companies).
    Companies,
}

impl Analyzed {
    /// Each table's name and what `ANALYZE` is given for it.
    fn tables(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Filings => &[(
                "filings",
                "filings (id, tenant_id, organization_id, company_id, idempotency_key, source, prediction_type,
                          period_year, period_quarter, bulk_job_id, bulk_row, received_at)",
            )],
            Self::Predictions => &[(
                "predictions",
                "predictions (id, tenant_id, organization_id, company_id, filing_id, prediction_type, period_year,
                              period_quarter, model_name, model_version, is_shadow, probability, risk_level,
                              implied_rating, confidence, created_at)",
            )],
            Self::Companies => &[("companies", "companies"), ("company_risk", "company_risk")],
        }
    }
}

#[cfg(test)]
mod growth_tests {
    use super::Growth;

    #[test]
    fn growth_signals_each_multiple_of_its_period() {
        let growth = Growth::new(1_000);
        let signals: Vec<u64> = (1..=40u64).filter(|_| growth.grew(150)).map(|i| i * 150).collect();
        assert_eq!(signals, vec![1_050, 2_100, 3_000, 4_050, 5_100, 6_000]);
    }
}
