//! Request ids: taken from the client's `X-Request-Id` when it is a sane token, generated otherwise, echoed
//! in the response header, put in every log line (the request span) and in the envelope's `meta`.

use std::{fmt, future::Future, sync::Arc};

use actix_web::http::header::HeaderMap;

pub const HEADER: &str = "x-request-id";
/// Longest client-supplied id kept; longer ones are replaced (they would bloat every log line).
const MAX_LEN: usize = 128;

/// The id of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

tokio::task_local! {
    static CURRENT: RequestId;
}

impl RequestId {
    /// The client's id when it is 1 to 128 characters of `A-Z a-z 0-9 - _ . :`, else a new UUIDv7.
    /// Other characters are refused rather than escaped: the id goes into logs and headers verbatim.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        headers
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| Self::is_acceptable(v))
            .map(|v| Self(v.into()))
            .unwrap_or_else(Self::generate)
    }

    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string().into())
    }

    fn is_acceptable(candidate: &str) -> bool {
        (1..=MAX_LEN).contains(&candidate.len())
            && candidate
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Runs `future` with this id as the current request's id.
    pub async fn scope<F: Future>(self, future: F) -> F::Output {
        CURRENT.scope(self, future).await
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of the request being served by this task, if any.
pub fn current() -> Option<RequestId> {
    CURRENT.try_with(Clone::clone).ok()
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(HeaderName::from_static(HEADER), HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn a_sane_client_id_is_kept() {
        assert_eq!(
            RequestId::from_headers(&headers("abc-123_x.y:z")).as_str(),
            "abc-123_x.y:z"
        );
    }

    #[test]
    fn unsafe_or_oversized_ids_are_replaced() {
        for bad in ["has space", "new\tline", "quote\"", &"a".repeat(129), ""] {
            let id = RequestId::from_headers(&headers(bad));
            assert_ne!(id.as_str(), bad);
            assert!(uuid::Uuid::parse_str(id.as_str()).is_ok());
        }
    }
}
