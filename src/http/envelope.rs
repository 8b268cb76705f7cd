//! The response envelope every API answer uses.
//!
//! Success: `{"success":true,"data":…,"meta":{"timestamp","version","request_id"}}`;
//! failure: `{"success":false,"error":{"code","message","details"},"meta":{…}}`.

use actix_web::{HttpResponse, http::StatusCode};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{error_code::ErrorCode, request_id};

/// Facts about the response, not about the resource.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Meta {
    /// When the response was produced (RFC 3339, UTC, milliseconds).
    pub timestamp: String,
    /// The service's version.
    pub version: &'static str,
    /// The id of the request this answers, as in the `X-Request-Id` header and the logs.
    pub request_id: Option<String>,
}

impl Meta {
    /// Meta for the request being served (its id comes from the request context, when there is one).
    pub fn current() -> Self {
        Self::at(Utc::now())
    }

    fn at(now: DateTime<Utc>) -> Self {
        Self {
            timestamp: now.to_rfc3339_opts(SecondsFormat::Millis, true),
            version: crate::VERSION,
            request_id: request_id::current().map(|id| id.to_string()),
        }
    }
}

/// A successful answer: the resource in `data`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Envelope<T> {
    pub success: bool,
    pub data: T,
    pub meta: Meta,
}

/// A failed answer: a stable `error.code`, a message for people, and `details` where useful.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    pub success: bool,
    pub error: ErrorDetail<'a>,
    pub meta: Meta,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    pub code: ErrorCode,
    pub message: &'a str,
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

impl<'a> ErrorBody<'a> {
    pub fn new(code: ErrorCode, message: &'a str, details: Option<Value>, meta: Meta) -> Self {
        Self {
            success: false,
            error: ErrorDetail { code, message, details },
            meta,
        }
    }
}

/// `200 OK` with `data` in the envelope.
pub fn ok<T: Serialize>(data: T) -> HttpResponse {
    with_status(StatusCode::OK, data)
}

/// `201 Created` with `data` in the envelope.
pub fn created<T: Serialize>(data: T) -> HttpResponse {
    with_status(StatusCode::CREATED, data)
}

pub fn with_status<T: Serialize>(status: StatusCode, data: T) -> HttpResponse {
    HttpResponse::build(status).json(Envelope {
        success: true,
        data,
        meta: Meta::current(),
    })
}
