use sqlx::Row;
use uuid::Uuid;

use crate::helpers::spawn_app;

/// Indexes that may not lead with tenant_id, each for a stated reason.
const GLOBAL_INDEXES: [(&str, &str); 8] = [
    ("users_pkey", "users include tenant-less super admins; ids are global"),
    ("users_email", "sign-in is by e-mail across the service"),
    ("refresh_sessions_pkey", "sessions are looked up by id from the token"),
    (
        "refresh_sessions_token_hash_key",
        "refresh tokens are looked up by their hash",
    ),
    ("audit_log_pkey", "audit rows include service-wide actions"),
    (
        "companies_id_tenant",
        "a company by its id: the scoped lookups' generic plans (`$1 IS NULL OR tenant_id = $1`) cannot use the \
         primary key's tenant_id; led by the id, it never reads a tenant's companies (BENCHMARKS.md); it holds \
         tenant_id too",
    ),
    (
        "companies_symbol_tenant",
        "the ingest's lookup by (tenant_id, symbol): led by the symbol so that it is never a candidate for a \
         lookup by id, which `companies_id_tenant` must keep (BENCHMARKS.md); it holds tenant_id too",
    ),
    (
        "predictions_id_tenant_company",
        "the alerts' key to their prediction: led by the id so that it never serves (and sorts) a company's \
         predictions in place of `predictions_company_latest` (BENCHMARKS.md); it holds tenant_id too",
    ),
];

#[actix_web::test]
async fn every_index_of_a_tenant_scoped_table_leads_with_tenant_id() {
    let app = spawn_app().await;

    let rows = sqlx::query(
        "SELECT i.relname AS index, t.relname AS table, a.attname AS first_column
         FROM pg_index x
         JOIN pg_class i ON i.oid = x.indexrelid
         JOIN pg_class t ON t.oid = x.indrelid
         JOIN pg_namespace n ON n.oid = t.relnamespace
         LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = x.indkey[0]
         WHERE n.nspname = 'public'
           AND EXISTS (SELECT 1 FROM pg_attribute c WHERE c.attrelid = t.oid AND c.attname = 'tenant_id')",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();

    assert!(rows.len() > 20, "expected the domain's indexes, found {}", rows.len());
    let offenders: Vec<String> = rows
        .iter()
        .filter(|r| r.get::<Option<String>, _>("first_column").as_deref() != Some("tenant_id"))
        .map(|r| r.get::<String, _>("index"))
        .filter(|index| !GLOBAL_INDEXES.iter().any(|(allowed, _)| allowed == index))
        .collect();
    assert!(offenders.is_empty(), "indexes not led by tenant_id: {offenders:?}");
}

#[actix_web::test]
async fn every_domain_table_exists_after_migration() {
    let app = spawn_app().await;

    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
            .fetch_all(&app.db)
            .await
            .unwrap();

    for table in [
        "alerts",
        "audit_log",
        "bulk_job_errors",
        "bulk_jobs",
        "companies",
        "company_assignments",
        "filings",
        "organizations",
        "predictions",
        "refresh_sessions",
        "tenant_model_settings",
        "tenants",
        "users",
    ] {
        assert!(tables.iter().any(|t| t == table), "missing table {table}");
    }
}

#[actix_web::test]
async fn migrating_again_is_a_no_op() {
    let app = spawn_app().await;

    pdscore::db::migrate(&app.db).await.unwrap();

    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(applied as usize, pdscore::db::MIGRATOR.iter().count());
}

async fn tenant_with_org(db: &sqlx::PgPool, slug: &str) -> (Uuid, Uuid) {
    let tenant = Uuid::now_v7();
    let org = Uuid::now_v7();
    sqlx::query("INSERT INTO tenants (id, slug, name) VALUES ($1, $2, $2)")
        .bind(tenant)
        .bind(slug)
        .execute(db)
        .await
        .unwrap();
    sqlx::query("INSERT INTO organizations (id, tenant_id, name) VALUES ($1, $2, 'Risk')")
        .bind(org)
        .bind(tenant)
        .execute(db)
        .await
        .unwrap();
    (tenant, org)
}

#[actix_web::test]
async fn a_row_cannot_reference_another_tenants_row() {
    let app = spawn_app().await;
    let (tenant_a, _) = tenant_with_org(&app.db, "bank-a").await;
    let (_, org_b) = tenant_with_org(&app.db, "bank-b").await;

    let result = sqlx::query(
        "INSERT INTO companies (id, tenant_id, organization_id, symbol, name) VALUES ($1, $2, $3, 'ACME', 'Acme')",
    )
    .bind(Uuid::now_v7())
    .bind(tenant_a)
    .bind(org_b)
    .execute(&app.db)
    .await;

    let error = result.expect_err("a company of tenant A in tenant B's organization must be refused");
    assert_eq!(error.as_database_error().unwrap().code().as_deref(), Some("23503"));
}

#[actix_web::test]
async fn a_filing_key_is_unique_per_organization_and_source() {
    let app = spawn_app().await;
    let (tenant, org) = tenant_with_org(&app.db, "bank-a").await;
    let (other_tenant, other_tenants_org) = tenant_with_org(&app.db, "bank-b").await;
    let other_org = Uuid::now_v7();
    sqlx::query("INSERT INTO organizations (id, tenant_id, name) VALUES ($1, $2, 'Credit')")
        .bind(other_org)
        .bind(tenant)
        .execute(&app.db)
        .await
        .unwrap();
    let insert_company = |tenant: Uuid, org: Uuid| {
        let db = app.db.clone();
        async move {
            let id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO companies (id, tenant_id, organization_id, symbol, name) VALUES ($1, $2, $3, 'ACME', 'Acme')",
            )
            .bind(id)
            .bind(tenant)
            .bind(org)
            .execute(&db)
            .await
            .unwrap();
            id
        }
    };
    let company = insert_company(tenant, org).await;
    let other_orgs_company = insert_company(tenant, other_org).await;
    let other_tenants_company = insert_company(other_tenant, other_tenants_org).await;
    let insert_filing = |tenant: Uuid, org: Uuid, company: Uuid, source: &'static str| {
        let db = app.db.clone();
        async move {
            sqlx::query(
                "INSERT INTO filings (id, tenant_id, organization_id, company_id, idempotency_key, source, prediction_type,
                                      period_year, ratios, raw)
                 VALUES ($1, $2, $3, $4, 'feed-2025-ACME', $5::filing_source, 'annual', 2025, '{}', '{}')",
            )
            .bind(Uuid::now_v7())
            .bind(tenant)
            .bind(org)
            .bind(company)
            .bind(source)
            .execute(&db)
            .await
        }
    };

    insert_filing(tenant, org, company, "nats").await.unwrap();
    let duplicate = insert_filing(tenant, org, company, "nats")
        .await
        .expect_err("same key, same organization and source");
    insert_filing(tenant, org, company, "http")
        .await
        .expect("same key from another source is another filing (an HTTP client cannot take a feed's key)");
    insert_filing(tenant, other_org, other_orgs_company, "nats")
        .await
        .expect("same key in another organization is another filing (nothing tells one organization of another's)");
    insert_filing(other_tenant, other_tenants_org, other_tenants_company, "nats")
        .await
        .expect("same key in another tenant is another filing");

    assert_eq!(
        duplicate.as_database_error().unwrap().constraint(),
        Some("filings_idempotency")
    );
}

#[actix_web::test]
async fn an_assignment_cannot_name_another_tenants_user() {
    let app = spawn_app().await;
    let (tenant_a, org_a) = tenant_with_org(&app.db, "bank-a").await;
    let (tenant_b, org_b) = tenant_with_org(&app.db, "bank-b").await;
    let company = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO companies (id, tenant_id, organization_id, symbol, name) VALUES ($1, $2, $3, 'ACME', 'Acme')",
    )
    .bind(company)
    .bind(tenant_a)
    .bind(org_a)
    .execute(&app.db)
    .await
    .unwrap();
    let user_b = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO users (id, tenant_id, organization_id, email, password_hash, role)
         VALUES ($1, $2, $3, 'b@example.com', 'x', 'user')",
    )
    .bind(user_b)
    .bind(tenant_b)
    .bind(org_b)
    .execute(&app.db)
    .await
    .unwrap();

    let result = sqlx::query("INSERT INTO company_assignments (tenant_id, user_id, company_id) VALUES ($1, $2, $3)")
        .bind(tenant_a)
        .bind(user_b)
        .bind(company)
        .execute(&app.db)
        .await;

    let error = result.expect_err("tenant A's company assigned to tenant B's user must be refused");
    assert_eq!(error.as_database_error().unwrap().code().as_deref(), Some("23503"));
}

/// The writers' `ANALYZE` (`pdscore::db::analyze`) takes PostgreSQL's word for what is stale: a table that has
/// doubled since its last analysis — whoever ran it: this writer, another instance, autovacuum or an operator.
#[actix_web::test]
async fn a_writer_analyzes_only_the_tables_that_doubled_since_their_last_analysis() {
    use pdscore::db::{Analyzed, analyze};
    let app = spawn_app().await;
    // Nothing but this test analyzes these tables of its own database.
    sqlx::raw_sql(
        "ALTER TABLE companies SET (autovacuum_enabled = false);
         ALTER TABLE company_risk SET (autovacuum_enabled = false);",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let (tenant, org) = tenant_with_org(&app.db, "bank-a").await;
    let add_companies = |prefix: &'static str, count: i32| {
        let db = app.db.clone();
        async move {
            sqlx::query(
                "INSERT INTO companies (id, tenant_id, organization_id, symbol, name)
                 SELECT gen_random_uuid(), $1, $2, $3 || n, 'Company ' || n FROM generate_series(1, $4) AS n",
            )
            .bind(tenant)
            .bind(org)
            .bind(prefix)
            .bind(count)
            .execute(&db)
            .await
            .unwrap();
        }
    };
    add_companies("A", 100).await;
    sqlx::raw_sql("ANALYZE companies, company_risk")
        .execute(&app.db)
        .await
        .unwrap();
    assert!(
        analyze(&app.db, &[Analyzed::Companies]).await.is_empty(),
        "just analyzed"
    );

    add_companies("B", 5_000).await;
    assert_eq!(
        analyze(&app.db, &[Analyzed::Companies]).await,
        ["companies", "company_risk"],
        "grown 50-fold"
    );
    assert!(
        analyze(&app.db, &[Analyzed::Companies]).await.is_empty(),
        "analyzed by the call before"
    );

    add_companies("C", 10_000).await;
    // Someone else (an operator, another instance) analyzes one of them first.
    sqlx::raw_sql("ANALYZE companies").execute(&app.db).await.unwrap();
    assert_eq!(analyze(&app.db, &[Analyzed::Companies]).await, ["company_risk"]);
    add_companies("D", 1_000).await;
    assert!(
        analyze(&app.db, &[Analyzed::Companies]).await.is_empty(),
        "grown by a tenth only"
    );
}
