//! Sign-in routes and the JWKS document.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::{ApiError, client_info, envelope};
use crate::{
    accounts::sign_in as flows,
    auth::{Permission, Principal, keys::JwkSet, rbac},
    db::users::{self, User},
    http::AppState,
};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "admin@demo.example.com")]
    pub email: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[schema(value_type = String, format = Password)]
    pub current_password: SecretString,
    #[schema(value_type = String, format = Password)]
    pub new_password: SecretString,
}

/// The signed-in user and what their role allows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Me {
    pub user: User,
    pub session_id: uuid::Uuid,
    /// Permission names the role grants (scope still applies: organization roles see their organization).
    pub permissions: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PasswordChanged {
    pub password_changed: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LoggedOut {
    pub sessions_ended: usize,
}

/// Longest e-mail or password text looked at; longer input is refused before any work.
const MAX_CREDENTIAL_CHARS: usize = 1024;

/// Sign in with e-mail and password. The same `UNAUTHORIZED` answers an unknown e-mail, a wrong password and
/// an inactive account. Throttled per account and per client address (`RATE_LIMITED` with `Retry-After`).
#[utoipa::path(tag = "auth", request_body = LoginRequest, responses(
    (status = 200, description = "Signed in", body = envelope::Envelope<flows::TokenPair>),
    (status = 401, body = envelope::ErrorBody), (status = 429, body = envelope::ErrorBody)))]
#[post("/auth/login")]
#[tracing::instrument(name = "http.auth.login", skip_all)]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: crate::http::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if body.email.len() > MAX_CREDENTIAL_CHARS
        || secrecy::ExposeSecret::expose_secret(&body.password).len() > MAX_CREDENTIAL_CHARS
    {
        return Err(ApiError::validation(
            "email and password must each be at most 1024 characters",
        ));
    }
    let client = client_info(&req, &state);
    let pair = flows::login(&state.auth, &state.db, &body.email, body.password, &client).await?;
    Ok(envelope::ok(pair))
}

/// Exchange a refresh token for a new pair. Each refresh token works once; presenting a used one ends the
/// whole session (it was copied).
#[utoipa::path(tag = "auth", request_body = RefreshRequest, responses(
    (status = 200, body = envelope::Envelope<flows::TokenPair>), (status = 401, body = envelope::ErrorBody)))]
#[post("/auth/refresh")]
#[tracing::instrument(name = "http.auth.refresh", skip_all)]
pub async fn refresh(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: crate::http::Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let client = client_info(&req, &state);
    let token = body.into_inner().refresh_token;
    if token.len() > 200 {
        return Err(flows::AuthFlowError::InvalidRefreshToken.into());
    }
    let pair = flows::refresh(&state.auth, &state.db, &token, &client).await?;
    Ok(envelope::ok(pair))
}

/// End this session: its access and refresh tokens stop working at once.
#[utoipa::path(tag = "auth", security(("bearer" = [])), responses(
    (status = 200, body = envelope::Envelope<LoggedOut>), (status = 401, body = envelope::ErrorBody)))]
#[post("/auth/logout")]
#[tracing::instrument(name = "http.auth.logout", skip_all)]
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    flows::logout(&state.auth, &state.db, &principal, &client_info(&req, &state)).await?;
    Ok(envelope::ok(LoggedOut { sessions_ended: 1 }))
}

/// End every session of the caller, on every device.
#[utoipa::path(tag = "auth", security(("bearer" = [])), responses(
    (status = 200, body = envelope::Envelope<LoggedOut>), (status = 401, body = envelope::ErrorBody)))]
#[post("/auth/logout-all")]
#[tracing::instrument(name = "http.auth.logout_all", skip_all)]
pub async fn logout_all(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    let ended = flows::logout_all(&state.auth, &state.db, &principal, &client_info(&req, &state)).await?;
    Ok(envelope::ok(LoggedOut { sessions_ended: ended }))
}

/// The signed-in user.
#[utoipa::path(tag = "auth", security(("bearer" = [])), responses(
    (status = 200, body = envelope::Envelope<Me>), (status = 401, body = envelope::ErrorBody)))]
#[get("/auth/me")]
#[tracing::instrument(name = "http.auth.me", skip_all)]
pub async fn me(state: web::Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    let mut conn = state.db.acquire().await.map_err(ApiError::internal)?;
    let user = users::find(&mut conn, &principal.scope(), principal.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))?;
    let permissions = Permission::ALL
        .iter()
        .filter(|p| rbac::grants(principal.role, **p))
        .map(|p| p.name().to_owned())
        .collect();
    Ok(envelope::ok(Me {
        user,
        session_id: principal.session_id,
        permissions,
    }))
}

/// Change the caller's password. The current password is required; every other session ends.
#[utoipa::path(tag = "auth", security(("bearer" = [])), request_body = ChangePasswordRequest, responses(
    (status = 200, body = envelope::Envelope<PasswordChanged>), (status = 401, body = envelope::ErrorBody),
    (status = 422, body = envelope::ErrorBody)))]
#[post("/auth/change-password")]
#[tracing::instrument(name = "http.auth.change_password", skip_all)]
pub async fn change_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    principal: Principal,
    body: crate::http::Json<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    flows::change_password(
        &state.auth,
        &state.db,
        &principal,
        body.current_password,
        body.new_password,
        &client_info(&req, &state),
    )
    .await?;
    Ok(envelope::ok(PasswordChanged { password_changed: true }))
}

/// The public keys that verify access tokens (RFC 7517). Not enveloped: JWKS clients expect the bare document.
#[utoipa::path(tag = "auth", responses((status = 200, body = JwkSet)))]
#[get("/.well-known/jwks.json")]
#[tracing::instrument(name = "http.auth.jwks", skip_all)]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(state.auth.tokens.keys().jwks())
}
