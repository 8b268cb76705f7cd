//! PostgreSQL: the connection pool, the schema's migrations, and the repositories.
//!
//! Repositories are plain async functions over a `PgPool` or a transaction; each tenant-scoped one takes an
//! [`Scope`](crate::auth::Scope) derived from the verified caller, so a query without it cannot be written.

pub mod alerts;
pub mod audit;
pub mod bulk_jobs;
pub mod companies;
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

/// When a writer (a bulk job, the scoring pipeline's store) has grown a table enough for PostgreSQL's
/// statistics to be stale. Either can add 100,000s of companies and filings in minutes, long before
/// autovacuum (if enabled at all) analyzes them; without statistics the planner may check each new
/// prediction's foreign key by scanning a whole organization's companies (a 1,000-row insert then took 11 s
/// instead of 30 ms). So the writer analyzes the tables it grows, as PostgreSQL's guide to populating a
/// database advises, each time its additions double (from `floor`): a logarithmic number of `ANALYZE`s,
/// each reading a bounded sample.
pub(crate) struct Growth {
    floor: u64,
    state: std::sync::Mutex<(u64, u64)>,
}

impl Growth {
    pub(crate) fn new(floor: u64) -> Self {
        Self {
            floor,
            state: std::sync::Mutex::new((0, floor)),
        }
    }

    /// Records `n` more rows; true when the total crosses the next threshold (which then doubles).
    pub(crate) fn grew(&self, n: u64) -> bool {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (total, next) = &mut *state;
        *total += n;
        if *total < *next {
            return false;
        }
        *next = (*total * 2).max(self.floor);
        true
    }
}

/// `ANALYZE` of tables a writer has grown; a failure only costs plan quality, so it is logged, not returned.
pub(crate) async fn analyze(pool: &PgPool, tables: &[Analyzed]) {
    let tables = tables.iter().map(|t| t.target()).collect::<Vec<_>>().join(", ");
    let started = std::time::Instant::now();
    match sqlx::query(&format!("ANALYZE {tables}")).execute(pool).await {
        Ok(_) => tracing::debug!(tables, elapsed_ms = started.elapsed().as_millis() as u64, "analyzed"),
        Err(e) => tracing::warn!(tables, error = %e, "could not analyze grown tables"),
    }
}

/// A table writers grow, analyzed for the columns that plans join, filter or sort on. The JSON documents
/// (statements, ratios, payloads, model inputs, reason codes) are left out: no query filters on them, and their
/// statistics were most of an `ANALYZE`'s cost (filings, predictions and companies after 100,000 predictions:
/// 850 ms with every column, 260 ms without them), taken from the cores that score.
#[derive(Clone, Copy)]
pub(crate) enum Analyzed {
    Filings,
    Predictions,
    Companies,
}

impl Analyzed {
    fn target(self) -> &'static str {
        match self {
            Self::Filings => {
                "filings (id, tenant_id, organization_id, company_id, idempotency_key, source, prediction_type,
                          period_year, period_quarter, bulk_job_id, bulk_row, received_at)"
            }
            Self::Predictions => {
                "predictions (id, tenant_id, organization_id, company_id, filing_id, prediction_type, period_year,
                              period_quarter, model_name, model_version, is_shadow, probability, risk_level,
                              implied_rating, confidence, created_at)"
            }
            // With their risk rows: the portfolio's riskiest page reads them in index order only when the
            // planner knows how many an organization has (with a count from the table's first rows it sorted
            // every company of the organization: 18 ms per page at 10,000 companies).
            Self::Companies => "companies, company_risk",
        }
    }
}

#[cfg(test)]
mod growth_tests {
    use super::Growth;

    #[test]
    fn growth_signals_each_doubling_from_the_floor() {
        let growth = Growth::new(1_000);
        let signals: Vec<u64> = (1..=100u64).filter(|_| growth.grew(100)).map(|i| i * 100).collect();
        assert_eq!(signals, vec![1_000, 2_000, 4_000, 8_000]);
    }
}
