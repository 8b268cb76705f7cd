//! Tenants and their organizations.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::TenantSlug;

pub async fn find_id_by_slug(conn: &mut PgConnection, slug: &TenantSlug) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT id FROM tenants WHERE slug = $1")
        .bind(slug.as_str())
        .fetch_optional(conn)
        .await
}

pub async fn insert(conn: &mut PgConnection, slug: &TenantSlug, name: &str) -> sqlx::Result<Uuid> {
    sqlx::query_scalar("INSERT INTO tenants (id, slug, name) VALUES ($1, $2, $3) RETURNING id")
        .bind(Uuid::now_v7())
        .bind(slug.as_str())
        .bind(name)
        .fetch_one(conn)
        .await
}

pub async fn find_organization_id(conn: &mut PgConnection, tenant_id: Uuid, name: &str) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT id FROM organizations WHERE tenant_id = $1 AND lower(name) = lower($2)")
        .bind(tenant_id)
        .bind(name)
        .fetch_optional(conn)
        .await
}

pub async fn insert_organization(conn: &mut PgConnection, tenant_id: Uuid, name: &str) -> sqlx::Result<Uuid> {
    sqlx::query_scalar("INSERT INTO organizations (id, tenant_id, name) VALUES ($1, $2, $3) RETURNING id")
        .bind(Uuid::now_v7())
        .bind(tenant_id)
        .bind(name)
        .fetch_one(conn)
        .await
}
