//! Companies (the obligors whose default risk is scored) and their assignments to `user`-role accounts.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    BindScope,
    pagination::{Page, contains_pattern, escape_like},
};
use crate::auth::Scope;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Company {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub organization_id: Uuid,
    /// Ticker or internal identifier, upper-case, unique within the organization.
    pub symbol: String,
    pub name: String,
    pub sector: Option<String>,
    pub market_cap: Option<f64>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) const COLUMNS: &str = "c.id, c.tenant_id, c.organization_id, c.symbol, c.name, c.sector, c.market_cap, c.created_by, c.created_at, c.updated_at";
/// The scope's condition on companies: tenant ($1), organization ($2), assigned user ($3).
pub(crate) const IN_SCOPE: &str =
    "($1::uuid IS NULL OR c.tenant_id = $1) AND ($2::uuid IS NULL OR c.organization_id = $2)
    AND ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM company_assignments a
                                     WHERE a.tenant_id = c.tenant_id AND a.company_id = c.id AND a.user_id = $3))";

pub const SORTS: [(&str, &str); 5] = [
    ("symbol", "c.symbol"),
    ("name", "lower(c.name)"),
    ("sector", "c.sector"),
    ("market_cap", "c.market_cap"),
    ("created_at", "c.created_at"),
];

#[derive(Debug, thiserror::Error)]
pub enum CompanyWriteError {
    #[error("a company with symbol {0} already exists in this organization")]
    SymbolTaken(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

fn symbol_taken(e: sqlx::Error, symbol: &str) -> CompanyWriteError {
    match e {
        sqlx::Error::Database(db) if db.constraint() == Some("companies_org_symbol") => {
            CompanyWriteError::SymbolTaken(symbol.to_owned())
        }
        other => other.into(),
    }
}

#[tracing::instrument(name = "db.companies.find", level = "debug", skip_all)]
pub async fn find(conn: &mut PgConnection, scope: &Scope, id: Uuid) -> sqlx::Result<Option<Company>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM companies c WHERE {} AND c.id = $4",
        scoped(scope)
    ))
    .bind_scope(scope)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// The company with this symbol in an organization the scope covers.
#[tracing::instrument(name = "db.companies.find_by_symbol", level = "debug", skip_all)]
pub async fn find_by_symbol(
    conn: &mut PgConnection,
    scope: &Scope,
    organization_id: Uuid,
    symbol: &str,
) -> sqlx::Result<Option<Company>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM companies c WHERE {} AND c.organization_id = $4 AND c.symbol = $5",
        scoped(scope)
    ))
    .bind_scope(scope)
    .bind(organization_id)
    .bind(symbol)
    .fetch_optional(conn)
    .await
}

/// The companies with these symbols in the scope (in `organization`, when given): a symbol listed twice is in
/// several organizations. See [`super::company_lookups`], which asks for many symbols at once.
#[tracing::instrument(name = "db.companies.find_by_symbols", level = "debug", skip_all, fields(symbols = symbols.len()))]
pub async fn find_by_symbols(
    conn: &mut PgConnection,
    scope: &Scope,
    symbols: &[&str],
    organization: Option<Uuid>,
) -> sqlx::Result<Vec<Company>> {
    let condition = conjunction(scope_tests(scope).into_iter().chain([
        (true, "c.symbol = ANY($4)"),
        (organization.is_some(), "c.organization_id = $5"),
    ]));
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM companies c WHERE {condition}"))
        .bind_scope(scope)
        .bind(symbols)
        .bind(organization)
        .fetch_all(conn)
        .await
}

/// The companies assigned to a `user` account.
#[tracing::instrument(name = "db.companies.assigned_company_ids", level = "debug", skip_all)]
pub async fn assigned_company_ids(
    conn: &mut PgConnection,
    scope: &Scope,
    user_id: Uuid,
) -> sqlx::Result<std::collections::HashSet<Uuid>> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT company_id FROM company_assignments WHERE ($1::uuid IS NULL OR tenant_id = $1) AND user_id = $2",
    )
    .bind(scope.tenant())
    .bind(user_id)
    .fetch_all(conn)
    .await?;
    Ok(ids.into_iter().collect())
}

/// Filters of the company list.
#[derive(Debug, Default)]
pub struct CompanyFilter {
    pub organization_id: Option<Uuid>,
    /// Symbol prefix or name substring, case-insensitive.
    pub q: Option<String>,
    pub sector: Option<String>,
}

/// `{IN_SCOPE}` and the [`CompanyFilter`]'s condition with only the tests whose values are given, on the same
/// parameters (`$1`-`$7`, bound by [`BindFilter::bind_filter`]; the others are bound and not read). A list
/// query is written once per shape of scope and filter instead of once with `$n IS NULL OR …` tests, so that
/// each shape keeps one prepared statement whose cached (generic) plan can use the index its tests allow: a
/// statement written for every shape could not, and would be planned again on every request.
pub(crate) fn filtered(scope: &Scope, filter: &CompanyFilter) -> String {
    let tests = scope_tests(scope).into_iter().chain([
        (filter.organization_id.is_some(), "c.organization_id = $4"),
        (filter.q.is_some(), "(c.symbol LIKE $6 OR c.name ILIKE $5)"),
        (filter.sector.is_some(), "c.sector ILIKE $7"),
    ]);
    conjunction(tests)
}

/// `{IN_SCOPE}` with only the tests whose values are given, on the same parameters (`$1`-`$3`, bound by
/// [`BindScope::bind_scope`]): one statement per shape of scope, whose generic plan is the index's (see
/// [`filtered`]). With `$n IS NULL OR …` tests, PostgreSQL planned the lookup by symbol on every call, six times
/// its execution (`pg_stat_statements`: 0.064 ms planning, 0.010 ms executing).
pub(crate) fn scoped(scope: &Scope) -> String {
    conjunction(scope_tests(scope))
}

fn scope_tests(scope: &Scope) -> [(bool, &'static str); 3] {
    [
        (scope.tenant().is_some(), "c.tenant_id = $1"),
        (scope.organization().is_some(), "c.organization_id = $2"),
        (
            scope.assigned_to().is_some(),
            "EXISTS (SELECT 1 FROM company_assignments a
                     WHERE a.tenant_id = c.tenant_id AND a.company_id = c.id AND a.user_id = $3)",
        ),
    ]
}

/// The tests that apply, joined by AND (`TRUE` when none does).
pub(crate) fn conjunction<'a>(tests: impl IntoIterator<Item = (bool, &'a str)>) -> String {
    let applying: Vec<&str> = tests
        .into_iter()
        .filter(|(applies, _)| *applies)
        .map(|(_, test)| test)
        .collect();
    if applying.is_empty() {
        "TRUE".to_owned()
    } else {
        applying.join(" AND ")
    }
}

/// Binds a scope and a [`CompanyFilter`] as `$1`-`$7`, for [`filtered`].
pub(crate) trait BindFilter: BindScope {
    fn bind_filter(self, scope: &Scope, filter: &CompanyFilter) -> Self;
}

macro_rules! bind_filter_for {
    ($(<$($generic:lifetime),* $(, $param:ident)*> $query:ty),+) => {$(
        impl<$($generic),* $(, $param)*> BindFilter for $query {
            fn bind_filter(self, scope: &Scope, filter: &CompanyFilter) -> Self {
                let q = filter.q.as_deref();
                self.bind_scope(scope)
                    .bind(filter.organization_id)
                    .bind(q.map(contains_pattern))
                    .bind(q.map(|q| format!("{}%", escape_like(&q.trim().to_uppercase()))))
                    .bind(filter.sector.as_deref().map(escape_like))
            }
        }
    )+};
}
bind_filter_for!(
    <'q, O> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    <'q, O> sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>
);

#[tracing::instrument(name = "db.companies.list", level = "debug", skip_all)]
pub async fn list(
    conn: &mut PgConnection,
    scope: &Scope,
    filter: &CompanyFilter,
    order_by: &str,
    page: Page,
) -> sqlx::Result<(Vec<Company>, i64)> {
    let condition = filtered(scope, filter);
    let total = sqlx::query_scalar(&format!("SELECT count(*) FROM companies c WHERE {condition}"))
        .bind_filter(scope, filter)
        .fetch_one(&mut *conn)
        .await?;
    let items = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM companies c WHERE {condition} ORDER BY {order_by} {}",
        page.literal()
    ))
    .bind_filter(scope, filter)
    .fetch_all(conn)
    .await?;
    Ok((items, total))
}

/// A company to create in an organization the caller may see.
#[derive(Debug)]
pub struct NewCompany<'a> {
    pub tenant_id: Uuid,
    pub organization_id: Uuid,
    pub symbol: &'a str,
    pub name: &'a str,
    pub sector: Option<&'a str>,
    pub market_cap: Option<f64>,
    pub created_by: Option<Uuid>,
}

#[tracing::instrument(name = "db.companies.insert", level = "debug", skip_all)]
pub async fn insert(conn: &mut PgConnection, new: &NewCompany<'_>) -> Result<Company, CompanyWriteError> {
    sqlx::query_as(&format!(
        "INSERT INTO companies AS c (id, tenant_id, organization_id, symbol, name, sector, market_cap, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(new.tenant_id)
    .bind(new.organization_id)
    .bind(new.symbol)
    .bind(new.name)
    .bind(new.sector)
    .bind(new.market_cap)
    .bind(new.created_by)
    .fetch_one(conn)
    .await
    .map_err(|e| symbol_taken(e, new.symbol))
}

#[derive(Debug, Default)]
pub struct CompanyChanges {
    pub symbol: Option<String>,
    pub name: Option<String>,
    pub sector: Option<Option<String>>,
    pub market_cap: Option<Option<f64>>,
}

#[tracing::instrument(name = "db.companies.update", level = "debug", skip_all)]
pub async fn update(
    conn: &mut PgConnection,
    scope: &Scope,
    id: Uuid,
    changes: &CompanyChanges,
) -> Result<Option<Company>, CompanyWriteError> {
    sqlx::query_as(&format!(
        "UPDATE companies c SET symbol = coalesce($5, c.symbol), name = coalesce($6, c.name),
                sector = CASE WHEN $7 THEN $8 ELSE c.sector END,
                market_cap = CASE WHEN $9 THEN $10 ELSE c.market_cap END
         WHERE {IN_SCOPE} AND c.id = $4 RETURNING {COLUMNS}"
    ))
    .bind_scope(scope)
    .bind(id)
    .bind(&changes.symbol)
    .bind(&changes.name)
    .bind(changes.sector.is_some())
    .bind(changes.sector.clone().flatten())
    .bind(changes.market_cap.is_some())
    .bind(changes.market_cap.flatten())
    .fetch_optional(conn)
    .await
    .map_err(|e| symbol_taken(e, changes.symbol.as_deref().unwrap_or_default()))
}

#[tracing::instrument(name = "db.companies.delete", level = "debug", skip_all)]
pub async fn delete(conn: &mut PgConnection, scope: &Scope, id: Uuid) -> sqlx::Result<Option<Company>> {
    sqlx::query_as(&format!(
        "DELETE FROM companies c WHERE {IN_SCOPE} AND c.id = $4 RETURNING {COLUMNS}"
    ))
    .bind_scope(scope)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// A user a company is assigned to.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Assignment {
    pub user_id: Uuid,
    pub email: String,
    pub full_name: String,
    pub assigned_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// The assignments of a company the caller has already found (so it is in scope).
#[tracing::instrument(name = "db.companies.assignments", level = "debug", skip_all)]
pub async fn assignments(conn: &mut PgConnection, company: &Company) -> sqlx::Result<Vec<Assignment>> {
    sqlx::query_as(
        "SELECT a.user_id, u.email, u.full_name, a.assigned_by, a.created_at
         FROM company_assignments a JOIN users u ON u.tenant_id = a.tenant_id AND u.id = a.user_id
         WHERE a.tenant_id = $1 AND a.company_id = $2 ORDER BY u.email",
    )
    .bind(company.tenant_id)
    .bind(company.id)
    .fetch_all(conn)
    .await
}

/// Assigns a found company to a found user of the same organization; `false` if it already was.
#[tracing::instrument(name = "db.companies.assign", level = "debug", skip_all)]
pub async fn assign(
    conn: &mut PgConnection,
    company: &Company,
    user_id: Uuid,
    assigned_by: Option<Uuid>,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO company_assignments (tenant_id, user_id, company_id, assigned_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
    )
    .bind(company.tenant_id)
    .bind(user_id)
    .bind(company.id)
    .bind(assigned_by)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Removes an assignment; `false` if there was none.
#[tracing::instrument(name = "db.companies.unassign", level = "debug", skip_all)]
pub async fn unassign(conn: &mut PgConnection, company: &Company, user_id: Uuid) -> sqlx::Result<bool> {
    let deleted =
        sqlx::query("DELETE FROM company_assignments WHERE tenant_id = $1 AND company_id = $2 AND user_id = $3")
            .bind(company.tenant_id)
            .bind(company.id)
            .bind(user_id)
            .execute(conn)
            .await?;
    Ok(deleted.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_condition_tests_only_what_the_scope_and_filter_give() {
        let tenant = Uuid::now_v7();
        assert_eq!(
            filtered(&Scope::service(tenant), &CompanyFilter::default()),
            "c.tenant_id = $1"
        );
        let filter = CompanyFilter {
            organization_id: Some(Uuid::now_v7()),
            q: Some("acme".into()),
            sector: None,
        };
        assert_eq!(
            filtered(&Scope::service(tenant), &filter),
            "c.tenant_id = $1 AND c.organization_id = $4 AND (c.symbol LIKE $6 OR c.name ILIKE $5)"
        );
        assert_eq!(conjunction([(false, "a"), (false, "b")]), "TRUE");
    }
}
