//! Users of a tenant: created (invited), listed, changed and (de)activated by tenant admins, and by an
//! organization admin within their organization. No one grants a role above their own or manages someone
//! above them.

use actix_web::{HttpResponse, get, patch, post, web};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ApiError, ErrorCode, audit_entry, envelope, order_by, page, snapshot};
use crate::{
    auth::{Permission, Principal, Role, Scope, password, rbac},
    db::{
        audit, organizations,
        pagination::{PageRequest, Paginated},
        sessions,
        users::{self, InsertUserError, NewUser, User, UserChanges, UserFilter},
    },
    domain::{Email, optional_text},
    http::AppState,
};

/// The password a new account starts with: the one given (checked against the policy) or a generated one,
/// and whether it was generated (then it is shown once).
pub fn initial_password(given: Option<SecretString>, email: &Email) -> Result<(SecretString, bool), ApiError> {
    match given {
        Some(password) => {
            password::check_policy(&password, email.as_str()).map_err(|e| {
                ApiError::validation(format!("password: {e}"))
                    .with_details(super::field_details("password", &e.to_string()))
            })?;
            Ok((password, false))
        }
        None => Ok((password::generate(), true)),
    }
}

impl From<InsertUserError> for ApiError {
    fn from(e: InsertUserError) -> Self {
        match e {
            InsertUserError::EmailTaken(email) => ApiError::new(
                ErrorCode::Conflict,
                format!("A user with e-mail {email} already exists."),
            ),
            InsertUserError::Database(e) => e.into(),
        }
    }
}

fn forbidden(message: &'static str) -> ApiError {
    ApiError::new(ErrorCode::Forbidden, message)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserQuery {
    pub organization_id: Option<Uuid>,
    pub role: Option<Role>,
    pub is_active: Option<bool>,
    /// E-mail or name contains this text.
    pub q: Option<String>,
    /// `email`, `full_name`, `role` or `created_at`; prefix `-` for descending.
    pub sort: Option<String>,
    pub page: Option<u32>,
    pub per_page: Option<u32>,
}

/// The users of a tenant the caller may see (an organization admin: their organization's).
#[utoipa::path(tag = "users", security(("bearer" = [])), params(("tenant_id" = Uuid, Path), UserQuery), responses(
    (status = 200, body = envelope::Envelope<Paginated<User>>), (status = 404, body = envelope::ErrorBody)))]
#[get("/tenants/{tenant_id}/users")]
#[tracing::instrument(name = "http.users.list", skip_all)]
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    query: web::Query<UserQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::UserRead)?;
    let scope = principal.scope_in_tenant(path.into_inner(), "tenant")?;
    let query = query.into_inner();
    let page = page(PageRequest {
        page: query.page,
        per_page: query.per_page,
    })?;
    let order = order_by(query.sort.as_deref(), &users::SORTS, "email")?;
    let filter = UserFilter {
        organization_id: query.organization_id,
        role: query.role,
        is_active: query.is_active,
        q: query.q,
    };
    let mut conn = state.db.acquire().await?;
    let (items, total) = users::list(&mut conn, &scope, &filter, &order, page).await?;
    Ok(envelope::ok(Paginated::new(items, page, total)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub email: String,
    #[serde(default)]
    pub full_name: String,
    pub role: Role,
    /// Required for organization roles (org_admin, org_member, user); optional for a tenant admin.
    pub organization_id: Option<Uuid>,
    /// Omit to generate one (returned once in the answer: an invitation).
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<SecretString>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedUser {
    pub user: User,
    /// The generated password, shown this once.
    pub initial_password: Option<String>,
}

/// Create (invite) a user in a tenant.
#[utoipa::path(tag = "users", security(("bearer" = [])), params(("tenant_id" = Uuid, Path)), request_body = CreateUser,
    responses((status = 201, body = envelope::Envelope<CreatedUser>), (status = 403, body = envelope::ErrorBody),
    (status = 409, body = envelope::ErrorBody), (status = 422, body = envelope::ErrorBody)))]
#[post("/tenants/{tenant_id}/users")]
#[tracing::instrument(name = "http.users.create", skip_all)]
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    body: crate::http::Json<CreateUser>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::UserManage)?;
    let tenant_id = path.into_inner();
    let scope = principal.scope_in_tenant(tenant_id, "tenant")?;
    let body = body.into_inner();
    let email = Email::parse(&body.email)?;
    let full_name = optional_text("full_name", &body.full_name, 200)?.unwrap_or_default();
    check_role_assignable(&principal, body.role)?;
    let mut tx = state.db.begin().await?;
    crate::db::tenants::find(&mut tx, &scope, tenant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
    let organization_id = organization_for(&mut tx, &scope, body.role, body.organization_id).await?;
    let (password, generated) = initial_password(body.password, &email)?;
    let hash = password::hash(password.clone()).await?;
    let user = users::insert(
        &mut tx,
        &NewUser {
            tenant_id: Some(tenant_id),
            organization_id,
            email: &email,
            full_name: &full_name,
            password_hash: &hash,
            role: body.role,
        },
    )
    .await?;
    let mut entry = audit_entry(
        &principal,
        "user.create",
        "user",
        user.id,
        Some(tenant_id),
        organization_id,
    );
    entry.after = snapshot(&user);
    audit::record(&mut tx, entry).await?;
    tx.commit().await?;
    Ok(envelope::created(CreatedUser {
        user,
        initial_password: generated.then(|| password.expose_secret().to_owned()),
    }))
}

/// Tenant roles only, and never above the caller's own.
fn check_role_assignable(principal: &Principal, role: Role) -> Result<(), ApiError> {
    if role == Role::SuperAdmin {
        return Err(
            ApiError::validation("role: super_admin is not a tenant role (use the CLI)")
                .with_details(super::field_details("role", "super_admin is not a tenant role")),
        );
    }
    if !rbac::may_grant(principal.role, role) {
        return Err(forbidden("You cannot grant a role above your own."));
    }
    Ok(())
}

/// The organization a user of `role` belongs to: required for organization roles, and visible to the caller.
async fn organization_for(
    conn: &mut sqlx::PgConnection,
    scope: &Scope,
    role: Role,
    organization_id: Option<Uuid>,
) -> Result<Option<Uuid>, ApiError> {
    let unknown = || {
        ApiError::validation("organization_id: no such organization")
            .with_details(super::field_details("organization_id", "no such organization"))
    };
    match organization_id {
        Some(id) => {
            organizations::find(conn, scope, id).await?.ok_or_else(unknown)?;
            Ok(Some(id))
        }
        None if role.is_organization_role() => {
            Err(
                ApiError::validation(format!("organization_id: required for role {}", role.as_str())).with_details(
                    super::field_details("organization_id", "required for organization roles"),
                ),
            )
        }
        None => Ok(None),
    }
}

/// A user the caller may see.
#[utoipa::path(tag = "users", security(("bearer" = [])), params(("user_id" = Uuid, Path)), responses(
    (status = 200, body = envelope::Envelope<User>), (status = 404, body = envelope::ErrorBody)))]
#[get("/users/{user_id}")]
#[tracing::instrument(name = "http.users.get", skip_all)]
pub async fn get(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::UserRead)?;
    let mut conn = state.db.acquire().await?;
    let user = users::find(&mut conn, &principal.scope(), path.into_inner())
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    Ok(envelope::ok(user))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    pub full_name: Option<String>,
    /// Never above the caller's own role. Ends the user's sessions (their tokens carry the role).
    pub role: Option<Role>,
    /// Move the user to another organization the caller may see.
    pub organization_id: Option<Uuid>,
    /// `false` deactivates the account and ends its sessions; `true` re-activates it.
    pub is_active: Option<bool>,
}

/// Change a user's name, role, organization or activation.
#[utoipa::path(tag = "users", security(("bearer" = [])), params(("user_id" = Uuid, Path)), request_body = UpdateUser,
    responses((status = 200, body = envelope::Envelope<User>), (status = 403, body = envelope::ErrorBody),
    (status = 404, body = envelope::ErrorBody), (status = 422, body = envelope::ErrorBody)))]
#[patch("/users/{user_id}")]
#[tracing::instrument(name = "http.users.update", skip_all)]
pub async fn update(
    state: web::Data<AppState>,
    principal: Principal,
    path: web::Path<Uuid>,
    body: crate::http::Json<UpdateUser>,
) -> Result<HttpResponse, ApiError> {
    principal.authorize(Permission::UserManage)?;
    let id = path.into_inner();
    let body = body.into_inner();
    let scope = principal.scope();
    let mut tx = state.db.begin().await?;
    let before = users::find(&mut tx, &scope, id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    if before.role < principal.role {
        return Err(forbidden("You cannot manage a user whose role is above yours."));
    }
    if id == principal.user_id && (body.role.is_some_and(|r| r != before.role) || body.is_active == Some(false)) {
        return Err(forbidden("You cannot change your own role or deactivate yourself."));
    }
    if let Some(role) = body.role {
        check_role_assignable(&principal, role)?;
    }
    let role = body.role.unwrap_or(before.role);
    let organization_id = match body.organization_id {
        Some(id) => organization_for(&mut tx, &scope, role, Some(id)).await?,
        None => organization_for(&mut tx, &scope, role, before.organization_id).await?,
    };
    let changes = UserChanges {
        full_name: body
            .full_name
            .as_deref()
            .map(|n| optional_text("full_name", n, 200).map(Option::unwrap_or_default))
            .transpose()?,
        role: body.role,
        organization_id,
        is_active: body.is_active,
    };
    let after = users::update(&mut tx, &scope, id, &changes)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    // Tokens carry the role and organization: a change, or a deactivation, ends the user's sessions.
    let ended = if after.role != before.role
        || after.organization_id != before.organization_id
        || (before.is_active && !after.is_active)
    {
        sessions::revoke_user(&mut tx, id, None, "account changed").await?
    } else {
        Vec::new()
    };
    let mut entry = audit_entry(
        &principal,
        "user.update",
        "user",
        id,
        after.tenant_id,
        after.organization_id,
    );
    entry.before = snapshot(&before);
    entry.after = snapshot(&after);
    audit::record(&mut tx, entry).await?;
    tx.commit().await?;
    state.auth.sessions.revoke(&ended).await?;
    Ok(envelope::ok(after))
}
