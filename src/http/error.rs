//! API errors: one table from stable error code to HTTP status, and the error envelope.
//!
//! Handlers return [`ApiError`] (or a use-case error converted into it); the table in [`ErrorCode`] decides
//! the status, so a code always means the same status everywhere. Unexpected failures are logged with their
//! whole cause chain and answered with a generic `INTERNAL_ERROR`, never with their text.

use std::{borrow::Cow, fmt, time::Duration};

use actix_web::{
    HttpResponse, ResponseError,
    error::{JsonPayloadError, PathError, QueryPayloadError},
    http::{StatusCode, header},
};
use serde_json::Value;

use super::envelope::{ErrorBody, Meta};
use super::error_code::ErrorCode;

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: Cow<'static, str>,
    details: Option<Value>,
    retry_after: Option<Duration>,
    /// The cause, logged but never shown to the client.
    source: Option<anyhow::Error>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            retry_after: None,
            source: None,
        }
    }

    pub fn validation(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::ValidationError, message)
    }

    /// `what` does not exist (or is not the caller's to know about).
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn unavailable(message: impl Into<Cow<'static, str>>, retry_after: Duration) -> Self {
        Self::new(ErrorCode::ServiceUnavailable, message).with_retry_after(retry_after)
    }

    /// An unexpected failure: the client sees a generic message; the cause goes to the log.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        let mut error = Self::new(ErrorCode::InternalError, ErrorCode::InternalError.default_message());
        error.source = Some(source.into());
        error
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e.as_ref() as _)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(source: anyhow::Error) -> Self {
        Self::internal(source)
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(source: sqlx::Error) -> Self {
        match source {
            // Every pooled connection stayed busy for `database.acquire_timeout_ms`: overload, not a fault (seen
            // under 256 concurrent uncached portfolio reads on a slow host).
            sqlx::Error::PoolTimedOut => {
                tracing::warn!("no database connection became free in time; answering 503");
                Self::unavailable("The database is busy; retry later.", Duration::from_secs(1))
            }
            source => Self::internal(source),
        }
    }
}

impl From<crate::db::company_lookups::LookupFailed> for ApiError {
    fn from(failed: crate::db::company_lookups::LookupFailed) -> Self {
        use crate::db::company_lookups::LookupFailed;
        match failed {
            LookupFailed::Database(e) if matches!(*e, sqlx::Error::PoolTimedOut) => sqlx::Error::PoolTimedOut.into(),
            failed => Self::internal(failed),
        }
    }
}

impl From<crate::domain::InvalidValue> for ApiError {
    fn from(e: crate::domain::InvalidValue) -> Self {
        Self::validation(e.to_string()).with_details(serde_json::json!({ "field": e.field, "reason": e.reason }))
    }
}

impl From<crate::auth::AccessDenied> for ApiError {
    fn from(e: crate::auth::AccessDenied) -> Self {
        use crate::auth::AccessDenied as E;
        match e {
            E::Forbidden => Self::new(ErrorCode::Forbidden, "Your role does not allow this operation."),
            E::NotFound(what) => Self::not_found(what),
        }
    }
}

impl From<crate::accounts::sign_in::AuthFlowError> for ApiError {
    fn from(e: crate::accounts::sign_in::AuthFlowError) -> Self {
        use crate::accounts::sign_in::AuthFlowError as E;
        match e {
            E::InvalidCredentials => Self::new(ErrorCode::Unauthorized, "Invalid e-mail or password."),
            E::Throttled(wait) => {
                Self::new(ErrorCode::RateLimited, "Too many sign-in attempts; retry later.").with_retry_after(wait)
            }
            E::InvalidRefreshToken => Self::new(
                ErrorCode::Unauthorized,
                "The refresh token is invalid, expired or already used; sign in again.",
            ),
            E::WrongPassword => Self::validation("The current password is wrong.")
                .with_details(serde_json::json!({ "field": "current_password", "reason": "does not match" })),
            E::WeakPassword(policy) => Self::validation(format!("new_password: {policy}"))
                .with_details(serde_json::json!({ "field": "new_password", "reason": policy.to_string() })),
            E::Unexpected(e) => Self::internal(e),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(source) = &self.source {
            tracing::error!(error.cause_chain = ?source, error.message = %source, "request failed unexpectedly");
        }
        let mut response = HttpResponse::build(self.status_code());
        if let Some(retry_after) = self.retry_after {
            // Whole seconds, rounded up: a client retrying earlier would be refused again.
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            response.insert_header((header::RETRY_AFTER, secs.max(1).to_string()));
        }
        if self.code == ErrorCode::Unauthorized {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.json(ErrorBody::new(
            self.code,
            &self.message,
            self.details.clone(),
            Meta::current(),
        ))
    }
}

/// JSON body errors: syntax is `BAD_REQUEST`, a well-formed body with wrong fields is `VALIDATION_ERROR`.
pub fn json_error(error: JsonPayloadError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    let api_error = match &error {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::new(ErrorCode::PayloadTooLarge, error.to_string())
        }
        JsonPayloadError::ContentType => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "The request body must be JSON (Content-Type: application/json).",
        ),
        JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::validation(e.to_string()),
        JsonPayloadError::Deserialize(e) => ApiError::new(ErrorCode::BadRequest, format!("Invalid JSON: {e}")),
        _ => ApiError::new(ErrorCode::BadRequest, error.to_string()),
    };
    api_error.into()
}

/// A path parameter of the wrong shape (e.g. not a UUID) names a resource that cannot exist.
pub fn path_error(error: PathError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::new(ErrorCode::NotFound, format!("Not found: {error}")).into()
}

pub fn query_error(error: QueryPayloadError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::validation(format!("Invalid query string: {error}")).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_database_pool_is_a_503_to_retry() {
        let response = ApiError::from(sqlx::Error::PoolTimedOut).error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get("retry-after").unwrap(), "1");
        let response = ApiError::from(sqlx::Error::RowNotFound).error_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn retry_after_is_rounded_up_to_whole_seconds() {
        let response = ApiError::new(ErrorCode::RateLimited, "slow down")
            .with_retry_after(Duration::from_millis(1200))
            .error_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "2");
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let error = ApiError::internal(anyhow::anyhow!("password=hunter2 in connection string"));
        assert_eq!(error.to_string(), "INTERNAL_ERROR: An unexpected error occurred.");
    }
}
