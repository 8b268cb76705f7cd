//! The one table of the API's stable error codes: each code's HTTP status and default message. The envelope
//! carries the code; [`super::error::ApiError`] answers with it.

use std::fmt;

use actix_web::http::StatusCode;
use serde::Serialize;
use serde_json::Value;

/// The stable error codes of the API. Clients match on these, never on messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The request is syntactically broken (unparseable JSON, wrong content type of body).
    BadRequest,
    /// The request parsed but a value is invalid; `details` says which.
    ValidationError,
    Unauthorized,
    Forbidden,
    /// No such resource — or one the caller may not know exists (another tenant's).
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    /// Too many requests; `Retry-After` says when to try again.
    RateLimited,
    /// A dependency is down or the service is shutting down; `Retry-After` may be set.
    ServiceUnavailable,
    InternalError,
}

impl ErrorCode {
    /// The one table from code to HTTP status.
    pub const fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::ValidationError => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code for a response that was produced without one (by the framework), from its status.
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::BAD_REQUEST => Self::BadRequest,
            StatusCode::UNPROCESSABLE_ENTITY => Self::ValidationError,
            StatusCode::UNAUTHORIZED => Self::Unauthorized,
            StatusCode::FORBIDDEN => Self::Forbidden,
            StatusCode::NOT_FOUND => Self::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::CONFLICT => Self::Conflict,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::TOO_MANY_REQUESTS => Self::RateLimited,
            StatusCode::SERVICE_UNAVAILABLE => Self::ServiceUnavailable,
            s if s.is_client_error() => Self::BadRequest,
            _ => Self::InternalError,
        }
    }

    /// A message for when nothing more specific is known.
    pub const fn default_message(self) -> &'static str {
        match self {
            Self::BadRequest => "The request is malformed.",
            Self::ValidationError => "The request contains invalid values.",
            Self::Unauthorized => "Authentication is required.",
            Self::Forbidden => "You are not allowed to do this.",
            Self::NotFound => "The resource does not exist.",
            Self::MethodNotAllowed => "This method is not allowed on this resource.",
            Self::Conflict => "The request conflicts with the current state of the resource.",
            Self::PayloadTooLarge => "The request body is too large.",
            Self::UnsupportedMediaType => "The request body's content type is not supported here.",
            Self::RateLimited => "Too many requests; retry later.",
            Self::ServiceUnavailable => "The service is temporarily unavailable; retry later.",
            Self::InternalError => "An unexpected error occurred.",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The serde name is the wire name; reuse it so the two never disagree.
        let name = serde_json::to_value(self).ok();
        f.write_str(name.as_ref().and_then(Value::as_str).unwrap_or("INTERNAL_ERROR"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_round_trip_through_the_table() {
        use ErrorCode::*;
        for code in [
            BadRequest,
            ValidationError,
            Unauthorized,
            Forbidden,
            NotFound,
            MethodNotAllowed,
            Conflict,
            PayloadTooLarge,
            UnsupportedMediaType,
            RateLimited,
            ServiceUnavailable,
            InternalError,
        ] {
            assert_eq!(ErrorCode::from_status(code.status()), code);
        }
        assert_eq!(RateLimited.to_string(), "RATE_LIMITED");
    }
}
