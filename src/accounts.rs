//! Operator use cases run from the command line: the first super admin and the demo tenant.

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    auth::password,
    db::{
        audit::{self, Actor, AuditEntry},
        tenants,
        users::{self, InsertUserError, NewUser, Role},
    },
    domain::{Email, InvalidValue, TenantSlug},
};

#[derive(Debug, thiserror::Error)]
pub enum CreateAccountError {
    #[error(transparent)]
    InvalidValue(#[from] InvalidValue),
    #[error("password: {0}")]
    WeakPassword(#[from] password::PasswordPolicyError),
    #[error("a user with e-mail {0} already exists")]
    EmailTaken(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<InsertUserError> for CreateAccountError {
    fn from(e: InsertUserError) -> Self {
        match e {
            InsertUserError::EmailTaken(email) => Self::EmailTaken(email),
            InsertUserError::Database(e) => Self::Unexpected(e.into()),
        }
    }
}

impl From<sqlx::Error> for CreateAccountError {
    fn from(e: sqlx::Error) -> Self {
        Self::Unexpected(e.into())
    }
}

/// Creates a service-wide administrator (no tenant). Fails if the e-mail is taken.
pub async fn create_super_admin(
    pool: &PgPool,
    email: &str,
    full_name: &str,
    password: SecretString,
) -> Result<Uuid, CreateAccountError> {
    let email = Email::parse(email)?;
    password::check_policy(&password, email.as_str())?;
    let password_hash = password::hash(password).await?;
    let mut tx = pool.begin().await?;
    let user_id = users::insert(
        &mut tx,
        &NewUser {
            tenant_id: None,
            organization_id: None,
            email: &email,
            full_name,
            password_hash: &password_hash,
            role: Role::SuperAdmin,
        },
    )
    .await?;
    let after = serde_json::json!({ "email": email, "role": Role::SuperAdmin });
    record_cli(&mut tx, None, "user.create", "user", user_id, after).await?;
    tx.commit().await?;
    Ok(user_id)
}

/// What `demo-setup` created (or found) and the credentials to sign in with.
#[derive(Debug, Serialize)]
pub struct DemoAccount {
    pub tenant_id: Uuid,
    pub tenant_slug: String,
    pub organization_id: Uuid,
    pub organization: String,
    pub admin_email: String,
    pub admin_password: String,
    pub admin_role: Role,
}

const DEMO_TENANT: &str = "demo";
const DEMO_TENANT_NAME: &str = "Demo Bank";
const DEMO_ORGANIZATION: &str = "Credit Risk";
const DEMO_ADMIN: &str = "admin@demo.example.com";

/// Creates the demo tenant, its organization and its tenant admin, or finds them; either way the admin gets a
/// fresh random password, returned so it can be printed once. Idempotent apart from the password.
pub async fn demo_setup(pool: &PgPool) -> Result<DemoAccount, CreateAccountError> {
    let slug = TenantSlug::parse(DEMO_TENANT)?;
    let email = Email::parse(DEMO_ADMIN)?;
    let password = password::generate();
    let password_hash = password::hash(password.clone()).await?;

    let mut tx = pool.begin().await?;
    let tenant_id = match tenants::find_id_by_slug(&mut tx, &slug).await? {
        Some(id) => id,
        None => {
            let id = tenants::insert(&mut tx, &slug, DEMO_TENANT_NAME).await?;
            record_cli(
                &mut tx,
                Some(id),
                "tenant.create",
                "tenant",
                id,
                serde_json::json!({ "slug": slug }),
            )
            .await?;
            id
        }
    };
    let organization_id = match tenants::find_organization_id(&mut tx, tenant_id, DEMO_ORGANIZATION).await? {
        Some(id) => id,
        None => {
            let id = tenants::insert_organization(&mut tx, tenant_id, DEMO_ORGANIZATION).await?;
            let after = serde_json::json!({ "name": DEMO_ORGANIZATION });
            record_cli(
                &mut tx,
                Some(tenant_id),
                "organization.create",
                "organization",
                id,
                after,
            )
            .await?;
            id
        }
    };
    match users::find_id_by_email(&mut tx, &email).await? {
        Some(user_id) => {
            users::reset_password(&mut tx, user_id, &password_hash).await?;
            record_cli(
                &mut tx,
                Some(tenant_id),
                "user.reset_password",
                "user",
                user_id,
                serde_json::json!({}),
            )
            .await?;
        }
        None => {
            let user_id = users::insert(
                &mut tx,
                &NewUser {
                    tenant_id: Some(tenant_id),
                    organization_id: Some(organization_id),
                    email: &email,
                    full_name: "Demo Administrator",
                    password_hash: &password_hash,
                    role: Role::TenantAdmin,
                },
            )
            .await?;
            let after = serde_json::json!({ "email": email, "role": Role::TenantAdmin });
            record_cli(&mut tx, Some(tenant_id), "user.create", "user", user_id, after).await?;
        }
    }
    tx.commit().await?;
    Ok(DemoAccount {
        tenant_id,
        tenant_slug: slug.as_str().to_owned(),
        organization_id,
        organization: DEMO_ORGANIZATION.to_owned(),
        admin_email: email.to_string(),
        admin_password: password.expose_secret().to_owned(),
        admin_role: Role::TenantAdmin,
    })
}

/// Audits a mutation made from the command line.
async fn record_cli(
    conn: &mut sqlx::PgConnection,
    tenant_id: Option<Uuid>,
    action: &str,
    target_type: &str,
    target_id: Uuid,
    after: serde_json::Value,
) -> sqlx::Result<()> {
    audit::record(
        conn,
        AuditEntry {
            tenant_id,
            actor: Actor::Cli,
            action,
            target_type,
            target_id: Some(target_id.to_string()),
            before: None,
            after: Some(after),
            request_id: None,
        },
    )
    .await
}
