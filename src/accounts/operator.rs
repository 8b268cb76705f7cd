//! Operator use cases run from the command line: the first super admin and the demo tenant.

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    auth::{Role, Scope, password},
    db::{
        audit::{self, Actor, AuditEntry},
        companies::{self, CompanyFilter, NewCompany},
        organizations,
        pagination::Page,
        tenants,
        users::{self, InsertUserError, NewUser},
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
    .await?
    .id;
    let after = serde_json::json!({ "email": email, "role": Role::SuperAdmin });
    record_cli(&mut tx, None, "user.create", "user", user_id, after).await?;
    tx.commit().await?;
    Ok(user_id)
}

/// One demo account and its fresh password.
#[derive(Debug, Clone, Serialize)]
pub struct DemoUser {
    pub email: String,
    pub role: Role,
    pub password: String,
}

/// What `demo-setup` created (or found) and the credentials to sign in with.
#[derive(Debug, Serialize)]
pub struct DemoSetup {
    pub tenant_id: Uuid,
    pub tenant_slug: String,
    pub organization_id: Uuid,
    pub organization: String,
    /// One account per role, highest first.
    pub users: Vec<DemoUser>,
    pub companies: Vec<String>,
}

impl DemoSetup {
    /// The demo account holding `role`.
    pub fn user(&self, role: Role) -> &DemoUser {
        self.users
            .iter()
            .find(|u| u.role == role)
            .expect("demo-setup creates every role")
    }
}

const DEMO_TENANT: &str = "demo";
const DEMO_TENANT_NAME: &str = "Demo Bank";
const DEMO_ORGANIZATION: &str = "Credit Risk";
/// One account per role. The super_admin is service-wide (no tenant).
const DEMO_USERS: [(&str, &str, Role); 5] = [
    ("superadmin@demo.example.com", "Demo Super Admin", Role::SuperAdmin),
    ("admin@demo.example.com", "Demo Tenant Admin", Role::TenantAdmin),
    ("orgadmin@demo.example.com", "Demo Organization Admin", Role::OrgAdmin),
    ("analyst@demo.example.com", "Demo Analyst", Role::OrgMember),
    ("viewer@demo.example.com", "Demo Viewer", Role::User),
];
/// Companies of the demo organization (symbol, name, sector); the first is assigned to the viewer.
const DEMO_COMPANIES: [(&str, &str, &str); 3] = [
    ("ACME", "Acme Corporation", "Industrials"),
    ("GLOBEX", "Globex Holdings", "Energy"),
    ("INITECH", "Initech Software", "Technology"),
];

/// Creates the demo tenant, its organization, one account per role and a few companies, or finds them; either
/// way every account gets a fresh random password, returned so it can be printed once. Idempotent apart from
/// the passwords.
pub async fn demo_setup(pool: &PgPool) -> Result<DemoSetup, CreateAccountError> {
    let slug = TenantSlug::parse(DEMO_TENANT)?;
    let mut passwords = Vec::new();
    for (email, _, role) in DEMO_USERS {
        let password = password::generate();
        let hash = password::hash(password.clone()).await?;
        passwords.push((Email::parse(email)?, role, password, hash));
    }

    let mut tx = pool.begin().await?;
    let tenant_id = match tenants::find_id_by_slug(&mut tx, &slug).await? {
        Some(id) => id,
        None => {
            let tenant = tenants::insert(&mut tx, &slug, DEMO_TENANT_NAME)
                .await
                .map_err(|e| CreateAccountError::Unexpected(e.into()))?;
            let after = serde_json::json!({ "slug": slug });
            record_cli(&mut tx, Some(tenant.id), "tenant.create", "tenant", tenant.id, after).await?;
            tenant.id
        }
    };
    let scope = Scope::service(tenant_id);
    let organization_id = match organizations::find_id_by_name(&mut tx, &scope, DEMO_ORGANIZATION).await? {
        Some(id) => id,
        None => {
            let organization = organizations::insert(&mut tx, tenant_id, DEMO_ORGANIZATION, None)
                .await
                .map_err(|e| CreateAccountError::Unexpected(e.into()))?;
            let after = serde_json::json!({ "name": DEMO_ORGANIZATION });
            record_cli(
                &mut tx,
                Some(tenant_id),
                "organization.create",
                "organization",
                organization.id,
                after,
            )
            .await?;
            organization.id
        }
    };
    let mut demo_users = Vec::new();
    let mut viewer = None;
    for ((email, role, password, hash), (_, full_name, _)) in passwords.into_iter().zip(DEMO_USERS) {
        let (user_tenant, user_organization) = match role {
            Role::SuperAdmin => (None, None),
            _ => (Some(tenant_id), Some(organization_id)),
        };
        let user_id = match users::find_id_by_email(&mut tx, &email).await? {
            Some(user_id) => {
                users::reset_password(&mut tx, user_id, &hash).await?;
                let after = serde_json::json!({});
                record_cli(&mut tx, user_tenant, "user.reset_password", "user", user_id, after).await?;
                user_id
            }
            None => {
                let user = users::insert(
                    &mut tx,
                    &NewUser {
                        tenant_id: user_tenant,
                        organization_id: user_organization,
                        email: &email,
                        full_name,
                        password_hash: &hash,
                        role,
                    },
                )
                .await?;
                let after = serde_json::json!({ "email": email, "role": role });
                record_cli(&mut tx, user_tenant, "user.create", "user", user.id, after).await?;
                user.id
            }
        };
        if role == Role::User {
            viewer = Some(user_id);
        }
        demo_users.push(DemoUser {
            email: email.to_string(),
            role,
            password: password.expose_secret().to_owned(),
        });
    }
    let mut symbols = Vec::new();
    for (index, (symbol, name, sector)) in DEMO_COMPANIES.into_iter().enumerate() {
        let filter = CompanyFilter {
            organization_id: Some(organization_id),
            q: Some(symbol.to_owned()),
            sector: None,
        };
        let (found, _) = companies::list(
            &mut tx,
            &scope,
            &filter,
            "c.symbol ASC, id ASC",
            Page { page: 1, per_page: 10 },
        )
        .await?;
        let company = match found.into_iter().find(|c| c.symbol == symbol) {
            Some(company) => company,
            None => {
                let company = companies::insert(
                    &mut tx,
                    &NewCompany {
                        tenant_id,
                        organization_id,
                        symbol,
                        name,
                        sector: Some(sector),
                        market_cap: None,
                        created_by: None,
                    },
                )
                .await
                .map_err(|e| CreateAccountError::Unexpected(e.into()))?;
                let after = serde_json::json!({ "symbol": symbol, "name": name });
                record_cli(&mut tx, Some(tenant_id), "company.create", "company", company.id, after).await?;
                company
            }
        };
        if index == 0
            && let Some(viewer) = viewer
        {
            companies::assign(&mut tx, &company, viewer, None).await?;
        }
        symbols.push(symbol.to_owned());
    }
    tx.commit().await?;
    Ok(DemoSetup {
        tenant_id,
        tenant_slug: slug.as_str().to_owned(),
        organization_id,
        organization: DEMO_ORGANIZATION.to_owned(),
        users: demo_users,
        companies: symbols,
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
            organization_id: None,
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
