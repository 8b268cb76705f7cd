//! The JetStream ingest: a durable pull consumer on FILINGS, shared by every service instance (work queue),
//! feeding the actor pipeline ([`crate::consumer`] answers JetStream).
//!
//! Each message ends in exactly one reply, decided by [`Outcome`]:
//! - committed (or already committed: redelivery) ⇒ `Ack`;
//! - tenant over its rate limit, queue full, a dependency down ⇒ `Nak` with a delay that grows with the
//!   message's deliveries (redelivered later);
//! - undecodable, invalid (a control character in any string, a key reused for another filing, a value the
//!   database cannot hold), unknown tenant or company ⇒ the original payload and the reason go to the
//!   dead-letter subject, then `Term` (no poison loops). If the dead letter cannot be stored, `Nak` instead;
//! - still not committed at its last delivery (`max_deliver`: 1,000 by default, ~16 hours of refusals with
//!   the growing delay) ⇒ dead letter `DELIVERY_LIMIT` with the last reason: nothing is redelivered forever,
//!   nothing is dropped unrecorded (an operator republishes dead letters once the cause is gone).
//!
//! A message is acked only after its prediction is committed, and the commit is idempotent on the filing's
//! key (`filing_id`, else `Nats-Msg-Id`, else its company and a digest of its content — never the stream
//! sequence, which restarts with the stream): at-least-once delivery into an idempotent sink, so each filing is
//! scored exactly once even across crashes and several consumers.

use std::{future::Future, sync::Arc, time::Duration};

use async_nats::jetstream;
use futures_util::future::BoxFuture;
use pdscore_actors::{
    Pipeline, PipelineError,
    domain::{CompanySymbol, FilingKey},
};
use uuid::Uuid;

pub use crate::consumer::{IngestConfig, consumer_max_deliver};
use crate::{
    StreamKind,
    consumer::{self, Durable, Outcome, Process},
    events,
    message::{self, Undeliverable},
    subjects::Namespace,
};

/// A company found by symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompanyLookup {
    Found {
        organization_id: Uuid,
        company_id: Uuid,
    },
    Unknown,
    /// The symbol exists in several organizations: the message must name one.
    Ambiguous,
}

impl CompanyLookup {
    /// The company's (organization, id), or why a message naming `symbol` in `tenant` has none.
    pub fn found(self, symbol: &CompanySymbol, tenant: &str) -> Result<(Uuid, Uuid), Undeliverable> {
        match self {
            Self::Found {
                organization_id,
                company_id,
            } => Ok((organization_id, company_id)),
            Self::Unknown => Err(Undeliverable::new(
                "UNKNOWN_COMPANY",
                format!("no company {symbol} in tenant {tenant}"),
            )),
            Self::Ambiguous => Err(Undeliverable::new(
                "AMBIGUOUS_COMPANY",
                format!("{symbol} exists in several organizations; set organization_id"),
            )),
        }
    }
}

/// The directory could not answer (its database is down, say): the message is delayed, not refused.
#[derive(Debug, thiserror::Error)]
#[error("the directory is unavailable: {0}")]
pub struct DirectoryUnavailable(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// What ingest needs to attach a message to a tenant and a company (the service implements it).
pub trait Directory: Send + Sync + 'static {
    /// The tenant with this slug (a subject's tenant token, as sent).
    fn tenant(&self, slug: &str) -> BoxFuture<'static, Result<Option<Uuid>, DirectoryUnavailable>>;
    /// The tenant's company with this symbol (in `organization`, when given).
    fn company(
        &self,
        tenant_id: Uuid,
        symbol: &CompanySymbol,
        organization: Option<Uuid>,
    ) -> BoxFuture<'static, Result<CompanyLookup, DirectoryUnavailable>>;
}

#[derive(Clone)]
pub struct Ingest {
    pub jetstream: jetstream::Context,
    pub namespace: Namespace,
    pub pipeline: Pipeline,
    pub directory: Arc<dyn Directory>,
    pub config: IngestConfig,
    /// Tenants refused a moment ago (see [`Refusals`]).
    pub refusals: Arc<Refusals>,
}

/// Tenants whose last filing was refused (rate limit, full queue), with when to stop assuming so and the delay
/// they were given. For that short while, their further messages are sent back at once with about the same
/// delay, without a trip through the pipeline's actors: a tenant flooding far above its limit then costs
/// little more than its admitted filings, and its refusals do not queue in front of other tenants' filings.
#[derive(Default)]
pub struct Refusals(std::sync::Mutex<std::collections::HashMap<Uuid, (std::time::Instant, Duration)>>);

impl Refusals {
    /// How long a refusal stands for the tenant's next messages (its bucket refills meanwhile: the first
    /// message after it gets the tokens earned).
    const HOLD: Duration = Duration::from_millis(50);

    fn note(&self, tenant: Uuid, retry_after: Duration) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(tenant, (std::time::Instant::now() + Self::HOLD, retry_after));
    }

    /// The delay to send a message of `tenant` back with, while a recent refusal stands; spread over a second
    /// by `sequence` so that the messages do not all come back together.
    fn standing(&self, tenant: Uuid, sequence: u64) -> Option<Duration> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (until, retry_after) = map.get(&tenant)?;
        (std::time::Instant::now() < *until).then(|| *retry_after + Duration::from_millis(sequence % 1000))
    }
}

impl Ingest {
    /// Consumes FILINGS until `shutdown` resolves, then lets the messages in progress finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let durable = Durable {
            stream: StreamKind::Filings,
            filter: "filings.>",
            source: "filings",
            description: "Scoring service ingest (shared by every instance)",
        };
        let (jetstream, namespace, config) = (self.jetstream.clone(), self.namespace.clone(), self.config.clone());
        consumer::run(jetstream, namespace, durable, config, Arc::new(self), shutdown).await;
    }

    async fn process(&self, message: &jetstream::Message, sequence: u64) -> Outcome {
        // The tenant comes from the subject: a tenant refused a moment ago is answered before its payload is
        // even parsed.
        let tenant = match message::parse_subject(self.namespace.prefix(), &message.subject) {
            Ok((tenant, _)) => tenant,
            Err(reason) => return Outcome::DeadLetter(reason),
        };
        let tenant_id = match self.directory.tenant(&tenant).await {
            Ok(Some(id)) => id,
            Ok(None) => {
                return Outcome::DeadLetter(Undeliverable::new("UNKNOWN_TENANT", format!("no tenant {tenant:?}")));
            }
            Err(e) => return unavailable(&e),
        };
        if let Some(delay) = self.refusals.standing(tenant_id, sequence) {
            events::RefusedEarly.emit();
            return Outcome::Nak(delay, "the tenant is over its rate limit or its queue is full");
        }
        let decoded = match message::decode(self.namespace.prefix(), &message.subject, &message.payload) {
            Ok(decoded) => decoded,
            Err(reason) => return Outcome::DeadLetter(reason),
        };
        let (organization_id, company_id) = match self
            .directory
            .company(tenant_id, &decoded.company_symbol, decoded.organization_id)
            .await
        {
            Ok(lookup) => match lookup.found(&decoded.company_symbol, &decoded.tenant) {
                Ok(found) => found,
                Err(reason) => return Outcome::DeadLetter(reason),
            },
            Err(e) => return unavailable(&e),
        };
        let key = match decoded.filing_id.clone() {
            Some(key) => Some(key.into_string()),
            None => match message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")) {
                Some(id) => match FilingKey::parse(id.as_str()) {
                    Ok(id) => Some(id.into_string()),
                    Err(refused) => {
                        return Outcome::DeadLetter(Undeliverable {
                            code: pdscore_actors::RejectCode::ValidationError.as_str(),
                            message: format!("Nats-Msg-Id: {}", refused.reason),
                        });
                    }
                },
                None => None,
            },
        };
        let mut filing = decoded.into_filing(tenant_id, organization_id, company_id, key.unwrap_or_default());
        if filing.idempotency_key.is_empty() {
            filing.idempotency_key = filing.content_key();
        }
        match self.pipeline.submit(filing).await {
            Ok(_) => Outcome::Ack,
            Err(PipelineError::Rejected(rejected)) => Outcome::DeadLetter(rejected.into()),
            Err(PipelineError::UnknownTenant) => {
                Outcome::DeadLetter(Undeliverable::new("UNKNOWN_TENANT", "the tenant no longer exists"))
            }
            Err(PipelineError::TenantInactive) => {
                Outcome::DeadLetter(Undeliverable::new("TENANT_INACTIVE", "the tenant is deactivated"))
            }
            Err(PipelineError::RateLimited { retry_after }) => {
                self.held_back(tenant_id, retry_after, "the tenant is over its rate limit")
            }
            Err(PipelineError::Overloaded { retry_after }) => {
                self.held_back(tenant_id, retry_after, "the tenant's queue is full")
            }
            Err(PipelineError::Unavailable(e)) => unavailable(&e),
        }
    }

    /// A tenant's filing sent back for later (over its rate limit, or its queue full): noted, so that the tenant's
    /// next messages are sent back at once for a moment ([`Refusals`]).
    fn held_back(&self, tenant_id: Uuid, retry_after: Duration, reason: &'static str) -> Outcome {
        let delay = retry_after.max(Duration::from_millis(100));
        self.refusals.note(tenant_id, delay);
        Outcome::Nak(delay, reason)
    }
}

impl Process for Ingest {
    fn process(&self, message: &jetstream::Message, sequence: u64) -> impl Future<Output = Outcome> + Send {
        Ingest::process(self, message, sequence)
    }
}

fn unavailable(reason: &dyn std::fmt::Display) -> Outcome {
    tracing::warn!(%reason, "filing delayed: a dependency is unavailable");
    Outcome::Nak(
        Duration::from_secs(2),
        "a dependency (database, model pool) is unavailable",
    )
}
