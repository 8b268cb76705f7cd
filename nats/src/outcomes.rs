//! Credit events over NATS: a durable pull consumer on OUTCOMES (`outcomes.<tenant>`), shared by every
//! instance, recording each event through the service's [`OutcomeSink`] — the same rules as the API (one event of
//! a kind on one date per company, audited). Answered like filings ([`crate::consumer`]): acked once recorded
//! (or found on file), Nak'ed while the database is down, dead-lettered (`deadletter.outcomes`) with the reason
//! when it can never be recorded.
//!
//! The message (JSON, at most 64 KiB; no control character in any string):
//! `{"company_symbol": "ACME", "organization_id": "…" (when the symbol is in several organizations),
//!   "event": "default" | "bankruptcy" | "distressed_exchange", "event_date": "2024-03-31",
//!   "source": "court register", "note": "…"}`

use std::{future::Future, sync::Arc};

use async_nats::jetstream;
use futures_util::future::BoxFuture;
use pdscore_actors::domain::CompanySymbol;
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    StreamKind,
    consumer::{self, Durable, IngestConfig, Outcome, Process},
    ingest::Directory,
    message::Undeliverable,
    subjects::Namespace,
};

/// The largest message read.
pub const MAX_OUTCOME_BYTES: usize = 64 * 1024;

/// A credit event as published.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeMessage {
    pub company_symbol: String,
    pub organization_id: Option<Uuid>,
    pub event: String,
    pub event_date: String,
    pub source: String,
    pub note: Option<String>,
}

/// Why an event was not recorded.
#[derive(Debug)]
pub enum SinkError {
    /// Never: the event is invalid (a field the API would refuse) or the company is gone.
    Refused(Undeliverable),
    /// Not now: the database is down.
    Unavailable(String),
}

/// Records a tenant's credit event of a company (the service implements it).
pub trait OutcomeSink: Send + Sync + 'static {
    fn record(
        &self,
        tenant_id: Uuid,
        organization_id: Uuid,
        company_id: Uuid,
        message: OutcomeMessage,
    ) -> BoxFuture<'static, Result<(), SinkError>>;
}

/// The outcomes' consumer.
#[derive(Clone)]
pub struct OutcomeIngest {
    pub jetstream: jetstream::Context,
    pub namespace: Namespace,
    pub directory: Arc<dyn Directory>,
    pub sink: Arc<dyn OutcomeSink>,
    pub config: IngestConfig,
}

/// The tenant a subject names (`[<prefix>.]outcomes.<tenant>`).
fn tenant_of(prefix: &str, subject: &str) -> Result<String, Undeliverable> {
    let rest = if prefix.is_empty() {
        Some(subject)
    } else {
        subject.strip_prefix(prefix).and_then(|s| s.strip_prefix('.'))
    };
    match rest.map(|r| r.split('.').collect::<Vec<_>>()).as_deref() {
        Some(["outcomes", tenant]) if pdscore_actors::text::control_character(tenant).is_none() => {
            Ok((*tenant).to_owned())
        }
        _ => Err(Undeliverable::new(
            "INVALID_SUBJECT",
            format!("{subject}: expected outcomes.<tenant>"),
        )),
    }
}

/// Decodes a message's payload.
pub fn decode(payload: &[u8]) -> Result<OutcomeMessage, Undeliverable> {
    if payload.len() > MAX_OUTCOME_BYTES {
        return Err(Undeliverable::new(
            "PAYLOAD_TOO_LARGE",
            format!("{} bytes; at most {MAX_OUTCOME_BYTES}", payload.len()),
        ));
    }
    if let Some(at) = pdscore_actors::text::json_control_character(payload) {
        return Err(Undeliverable::new(
            pdscore_actors::RejectCode::ControlCharacter.as_str(),
            format!("byte {at}: a string holds a control character (U+0000-U+001F, U+007F-U+009F)"),
        ));
    }
    serde_json::from_slice(payload).map_err(|e| Undeliverable::new("INVALID_MESSAGE", e.to_string()))
}

fn unavailable(reason: &dyn std::fmt::Display) -> Outcome {
    tracing::warn!(%reason, "credit event delayed: the database is unavailable");
    Outcome::Nak(std::time::Duration::from_secs(2), "the database is unavailable")
}

impl OutcomeIngest {
    /// Consumes OUTCOMES until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let durable = Durable {
            stream: StreamKind::Outcomes,
            filter: "outcomes.>",
            source: "outcomes",
            description: "Credit events recorded by the scoring service (shared by every instance)",
        };
        let (jetstream, namespace, config) = (self.jetstream.clone(), self.namespace.clone(), self.config.clone());
        consumer::run(jetstream, namespace, durable, config, Arc::new(self), shutdown).await;
    }

    async fn handle(&self, message: &jetstream::Message) -> Outcome {
        let tenant = match tenant_of(self.namespace.prefix(), &message.subject) {
            Ok(tenant) => tenant,
            Err(reason) => return Outcome::DeadLetter(reason),
        };
        let decoded = match decode(&message.payload) {
            Ok(decoded) => decoded,
            Err(reason) => return Outcome::DeadLetter(reason),
        };
        let tenant_id = match self.directory.tenant(&tenant).await {
            Ok(Some(id)) => id,
            Ok(None) => {
                return Outcome::DeadLetter(Undeliverable::new("UNKNOWN_TENANT", format!("no tenant {tenant:?}")));
            }
            Err(e) => return unavailable(&e),
        };
        let symbol = match CompanySymbol::parse(&decoded.company_symbol) {
            Ok(symbol) => symbol,
            Err(e) => {
                return Outcome::DeadLetter(Undeliverable::new("VALIDATION_ERROR", format!("company_symbol: {e}")));
            }
        };
        let (organization_id, company_id) = match self
            .directory
            .company(tenant_id, &symbol, decoded.organization_id)
            .await
        {
            Ok(lookup) => match lookup.found(&symbol, &tenant) {
                Ok(found) => found,
                Err(reason) => return Outcome::DeadLetter(reason),
            },
            Err(e) => return unavailable(&e),
        };
        match self.sink.record(tenant_id, organization_id, company_id, decoded).await {
            Ok(()) => Outcome::Ack,
            Err(SinkError::Refused(reason)) => Outcome::DeadLetter(reason),
            Err(SinkError::Unavailable(reason)) => unavailable(&reason),
        }
    }
}

impl Process for OutcomeIngest {
    fn process(&self, message: &jetstream::Message, _sequence: u64) -> impl Future<Output = Outcome> + Send {
        self.handle(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_their_tenant() {
        assert_eq!(tenant_of("t1", "t1.outcomes.demo").unwrap(), "demo");
        assert_eq!(tenant_of("", "outcomes.demo").unwrap(), "demo");
        for bad in [
            "t1.outcomes",
            "t1.outcomes.a.b",
            "t1.filings.demo.annual",
            "t2.outcomes.demo",
        ] {
            assert!(tenant_of("t1", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn messages_are_typed_or_refused_with_a_reason() {
        let ok = br#"{"company_symbol":"ACME","event":"default","event_date":"2024-03-31","source":"court"}"#;
        assert_eq!(decode(ok).unwrap().company_symbol, "ACME");
        let cases: [(&[u8], &str); 4] = [
            (
                br#"{"company_symbol":"ACME","event":"default","event_date":"2024-03-31","source":"c","extra":1}"#,
                "INVALID_MESSAGE",
            ),
            (b"not json", "INVALID_MESSAGE"),
            (
                br#"{"company_symbol":"AC\u0000ME","event":"default","event_date":"2024-03-31","source":"c"}"#,
                "CONTROL_CHARACTER",
            ),
            (&[b' '; MAX_OUTCOME_BYTES + 1], "PAYLOAD_TOO_LARGE"),
        ];
        for (payload, code) in cases {
            assert_eq!(decode(payload).unwrap_err().code, code);
        }
    }
}
