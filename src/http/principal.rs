//! The verified caller as an actix extractor: a handler that takes a [`Principal`] cannot run without a valid
//! access token whose session is still live (checked on every request, so a sign-out is honoured at once).

use std::{future::Future, pin::Pin};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};

use super::{ApiError, AppState, ErrorCode};
use crate::{
    auth::{Principal, tokens::TokenError},
    db::sessions,
};

fn unauthorized(message: &'static str) -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, message)
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState is not configured")))?;
            let token = token?;
            let claims = state.auth.tokens.verify(&token).map_err(|e| {
                tracing::info!(reason = %e, "access token refused");
                match e {
                    TokenError::Expired => unauthorized("The access token has expired; refresh it."),
                    _ => unauthorized("The access token is invalid."),
                }
            })?;
            let live = state
                .auth
                .sessions
                .is_active(claims.sid, sessions::is_live(&state.db, claims.sid, claims.sub))
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "cannot check sessions");
                    ApiError::unavailable(
                        "Sessions cannot be checked right now; retry shortly.",
                        std::time::Duration::from_secs(1),
                    )
                })?;
            if !live {
                return Err(unauthorized("The session has ended; sign in again."));
            }
            tracing::Span::current().record("user_id", tracing::field::display(claims.sub));
            Ok(Principal {
                user_id: claims.sub,
                role: claims.role,
                tenant_id: claims.tid,
                organization_id: claims.org,
                session_id: claims.sid,
            })
        })
    }
}

/// The token of an `Authorization: Bearer …` header.
fn bearer_token(req: &HttpRequest) -> Result<String, ApiError> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("Authentication is required: send Authorization: Bearer <access token>."))?;
    let value = value
        .to_str()
        .map_err(|_| unauthorized("The Authorization header is not valid text."))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(token.trim().to_owned())
        }
        _ => Err(unauthorized(
            "The Authorization header must be `Bearer <access token>`.",
        )),
    }
}
