//! The request context: id, span, access log, metrics, and the guarantee that every error is an envelope.
//!
//! It wraps the whole application, so it sees every request, including those no route matched.

use std::time::Instant;

use actix_web::{
    Error, HttpMessage, HttpResponse, ResponseError,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::header::{self, HeaderName, HeaderValue},
    middleware::Next,
};
use tracing::Instrument;

use super::{
    error::ApiError,
    error_code::ErrorCode,
    request_id::{self, RequestId},
};
use crate::telemetry::events::HttpRequestServed;

/// Label for requests that matched no route: keeps the metric's cardinality bounded whatever clients send.
const UNMATCHED_ROUTE: &str = "unmatched";

pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let request_id = RequestId::from_headers(req.headers());
    req.extensions_mut().insert(request_id.clone());
    let method = method_label(req.method());
    let span = tracing::info_span!(
        "http_request",
        request_id = %request_id,
        method = %method,
        path = %req.path(),
        route = tracing::field::Empty,
        user_id = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    let started = Instant::now();

    let outcome = request_id
        .clone()
        .scope(
            async {
                if let Some(refusal) = control_character_in_target(&req) {
                    return Ok(req.error_response(refusal));
                }
                next.call(req).await.map(enforce_envelope)
            }
            .instrument(span.clone()),
        )
        .await;

    let (status, route) = match &outcome {
        Ok(res) => (res.status(), res.request().match_pattern()),
        Err(e) => (e.as_response_error().status_code(), None),
    };
    let route = route.unwrap_or_else(|| UNMATCHED_ROUTE.to_owned());
    let elapsed = started.elapsed();
    span.record("route", route.as_str());
    span.record("status", status.as_u16());
    span.in_scope(|| {
        HttpRequestServed {
            method: &method,
            route: &route,
            status: status.as_u16(),
            elapsed,
        }
        .emit()
    });

    let mut res = outcome?;
    if let Ok(value) = HeaderValue::from_str(request_id.as_str()) {
        res.headers_mut()
            .insert(HeaderName::from_static(request_id::HEADER), value);
    }
    Ok(res)
}

/// The text rule ([`pdscore_actors::text`]) for the request's path and query string, percent-decoded as the
/// routes' extractors will read them: a control character there is refused before any route sees it.
fn control_character_in_target(req: &ServiceRequest) -> Option<ApiError> {
    [("The path", req.path()), ("The query string", req.query_string())]
        .into_iter()
        .find_map(|(what, raw)| {
            let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
            let (at, _) = pdscore_actors::text::control_character(&decoded)?;
            Some(super::json::control_character_error(what, at))
        })
}

/// The method as a metric label: the standard methods by name, anything else (clients may send any token)
/// as `OTHER`, so the series count stays bounded.
fn method_label(method: &actix_web::http::Method) -> String {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    let name = method.as_str();
    if STANDARD.contains(&name) { name } else { "OTHER" }.to_owned()
}

/// Error responses the framework produced without a body of ours (no route, wrong method, …) get the
/// envelope too, with the code the status implies; their headers (`Allow`, `Retry-After`) are kept.
fn enforce_envelope<B: MessageBody + 'static>(res: ServiceResponse<B>) -> ServiceResponse<BoxBody> {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res.map_into_boxed_body();
    }
    let code = ErrorCode::from_status(status);
    let mut replacement: HttpResponse = ApiError::new(code, code.default_message()).error_response();
    *replacement.status_mut() = status;
    for (name, value) in res.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            replacement.headers_mut().append(name.clone(), value.clone());
        }
    }
    res.into_response(replacement)
}
