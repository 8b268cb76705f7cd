//! The JetStream ingest: a durable pull consumer on FILINGS, shared by every service instance (work queue),
//! feeding the actor pipeline.
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

use async_nats::{
    HeaderMap,
    jetstream::{
        self, AckKind,
        consumer::{AckPolicy, DeliverPolicy, pull},
        context::PublishError,
    },
};
use futures_util::{StreamExt, future::BoxFuture};
use pdscore_actors::{
    Pipeline, PipelineError,
    domain::{CompanySymbol, FilingKey},
};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::{
    StreamKind, events,
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

/// The ingest's settings.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// The durable consumer's name (shared by every instance).
    pub consumer: String,
    /// Messages processed at once by this instance.
    pub max_in_flight: usize,
    pub ack_wait: Duration,
    /// Deliveries of one message at most (the consumer's `max_deliver`); the last one that cannot commit
    /// dead-letters the message.
    pub max_deliver: u32,
}

/// What to answer JetStream for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ack,
    /// Not now: redelivered after the delay, at least (the reason is the dead letter's if it is the last).
    Nak(Duration, &'static str),
    DeadLetter(Undeliverable),
}

impl Outcome {
    /// The reply to this delivery (the `delivered`-th, of at most `max_deliver`): a refusal is delayed more
    /// the more often the message was refused, and at the last delivery it is a dead letter.
    fn at_delivery(self, delivered: i64, max_deliver: u32) -> Self {
        match self {
            Self::Nak(_, reason) if delivered >= i64::from(max_deliver) => Self::DeadLetter(Undeliverable::new(
                "DELIVERY_LIMIT",
                format!("not committed after {delivered} deliveries; the last refusal: {reason}"),
            )),
            Self::Nak(delay, reason) => Self::Nak(delay.max(redelivery_delay(delivered)), reason),
            other => other,
        }
    }
}

/// Deliveries the server allows a message past the service's limit: a dead letter that cannot be stored at the
/// last delivery is tried again at the next ones.
const DEAD_LETTER_RETRIES: i64 = 10;

/// The consumer's `max_deliver` for a service limit of `max_deliver` deliveries.
pub fn consumer_max_deliver(max_deliver: u32) -> i64 {
    i64::from(max_deliver) + DEAD_LETTER_RETRIES
}

/// The least delay before the next delivery of a message delivered `delivered` times: 100 ms, doubled every
/// four deliveries, at most a minute (100 deliveries take about an hour).
fn redelivery_delay(delivered: i64) -> Duration {
    let doublings = u32::try_from((delivered.max(1) - 1) / 4).unwrap_or(u32::MAX).min(10);
    (Duration::from_millis(100) * 2u32.pow(doublings)).min(Duration::from_secs(60))
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
    /// Consumes until `shutdown` resolves, then lets the messages in progress finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let permits = Arc::new(Semaphore::new(self.config.max_in_flight));
        tokio::pin!(shutdown);
        loop {
            let consumer = tokio::select! {
                _ = &mut shutdown => break,
                consumer = self.consumer() => consumer,
            };
            let mut consumer = match consumer {
                Ok(consumer) => consumer,
                Err(e) => {
                    tracing::warn!(error = %e, "ingest consumer not ready; retrying");
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            let messages = consumer
                .stream()
                .max_messages_per_batch(self.config.max_in_flight.min(256))
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(30))
                .messages()
                .await;
            let mut messages = match messages {
                Ok(messages) => messages,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot pull filings; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            tracing::info!(consumer = %self.config.consumer, "consuming filings");
            let mut stats = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = &mut shutdown => {
                        // Wait for the messages in progress (their acks are part of finishing).
                        let _ = permits.acquire_many(self.config.max_in_flight as u32).await;
                        return;
                    }
                    _ = stats.tick() => {
                        if let Ok(info) = consumer.info().await {
                            events::ConsumerSampled {
                                pending: info.num_pending,
                                ack_pending: info.num_ack_pending,
                                redelivered: info.num_redelivered,
                            }
                            .emit();
                        }
                    }
                    next = messages.next() => match next {
                        Some(Ok(message)) => {
                            let Ok(permit) = permits.clone().acquire_owned().await else { return };
                            let this = self.clone();
                            tokio::spawn(async move {
                                this.handle(message).await;
                                drop(permit);
                            });
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "error pulling filings");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            break;
                        }
                        None => break,
                    }
                }
            }
        }
    }

    async fn consumer(&self) -> Result<jetstream::consumer::Consumer<pull::Config>, String> {
        let stream = self
            .jetstream
            .get_stream(self.namespace.stream_name(StreamKind::Filings.base_name()))
            .await
            .map_err(|e| e.to_string())?;
        let config = pull::Config {
            durable_name: Some(self.config.consumer.clone()),
            description: Some("Scoring service ingest (shared by every instance)".into()),
            filter_subject: self.namespace.subject("filings.>"),
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.config.ack_wait,
            deliver_policy: DeliverPolicy::All,
            // Bounded: the last delivery that cannot commit is dead-lettered ([`Outcome::at_delivery`]); the server
            // allows a few more, for a dead letter that could not be stored, then stops too (a message that this
            // service never answers, one that stops the process every time).
            max_deliver: consumer_max_deliver(self.config.max_deliver),
            max_ack_pending: 20_000,
            ..Default::default()
        };
        // Created, or updated to this configuration (a consumer made by an earlier version had no delivery limit).
        stream.create_consumer(config).await.map_err(|e| e.to_string())
    }

    /// Processes one message and replies to JetStream.
    async fn handle(&self, message: jetstream::Message) {
        let (sequence, delivered) = message
            .info()
            .map(|i| (i.stream_sequence, i.delivered))
            .unwrap_or((0, 1));
        if delivered > 1 {
            events::Redelivered.emit();
        }
        let outcome = self
            .process(&message, sequence)
            .await
            .at_delivery(delivered, self.config.max_deliver);
        let reply = match &outcome {
            Outcome::Ack => message.ack().await,
            Outcome::Nak(delay, _) => message.ack_with(AckKind::Nak(Some(*delay))).await,
            Outcome::DeadLetter(reason) => match self.dead_letter(&message, sequence, reason).await {
                Ok(()) => message.ack_with(AckKind::Term).await,
                Err(e) => {
                    tracing::error!(error = %e, "dead letter not stored; the filing will be redelivered");
                    message
                        .ack_with(AckKind::Nak(Some(
                            redelivery_delay(delivered).max(Duration::from_secs(5)),
                        )))
                        .await
                }
            },
        };
        if let Err(e) = reply {
            // The message will be redelivered after ack_wait; the commit is idempotent.
            tracing::warn!(error = %e, sequence, "could not reply to JetStream");
        }
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
            Ok(CompanyLookup::Found {
                organization_id,
                company_id,
            }) => (organization_id, company_id),
            Ok(CompanyLookup::Unknown) => {
                return Outcome::DeadLetter(Undeliverable::new(
                    "UNKNOWN_COMPANY",
                    format!("no company {} in tenant {}", decoded.company_symbol, decoded.tenant),
                ));
            }
            Ok(CompanyLookup::Ambiguous) => {
                return Outcome::DeadLetter(Undeliverable::new(
                    "AMBIGUOUS_COMPANY",
                    format!(
                        "{} exists in several organizations; set organization_id",
                        decoded.company_symbol
                    ),
                ));
            }
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

    /// Stores the original payload and the reason on the dead-letter subject (deduplicated per message).
    async fn dead_letter(
        &self,
        message: &jetstream::Message,
        sequence: u64,
        reason: &Undeliverable,
    ) -> Result<(), PublishError> {
        events::DeadLettered {
            code: reason.code,
            reason: &reason.message,
            subject: &message.subject,
            sequence,
        }
        .emit();
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("dl-filings-{sequence}").as_str());
        headers.insert("Pdscore-Reason-Code", reason.code);
        headers.insert("Pdscore-Reason", header_text(&reason.message).as_str());
        headers.insert("Pdscore-Original-Subject", message.subject.as_str());
        headers.insert("Pdscore-Stream-Sequence", sequence.to_string().as_str());
        self.jetstream
            .publish_with_headers(self.namespace.dead_letters("filings"), headers, message.payload.clone())
            .await?
            .await?;
        Ok(())
    }
}

fn unavailable(reason: &dyn std::fmt::Display) -> Outcome {
    tracing::warn!(%reason, "filing delayed: a dependency is unavailable");
    Outcome::Nak(
        Duration::from_secs(2),
        "a dependency (database, model pool) is unavailable",
    )
}

/// A header value: one line, printable, bounded.
fn header_text(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(512)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_wait_longer_the_more_often_a_message_was_refused() {
        assert_eq!(redelivery_delay(1), Duration::from_millis(100));
        assert_eq!(redelivery_delay(4), Duration::from_millis(100));
        assert_eq!(redelivery_delay(5), Duration::from_millis(200));
        assert_eq!(redelivery_delay(41), Duration::from_secs(60));
        assert_eq!(redelivery_delay(i64::MAX), Duration::from_secs(60));
        let total: Duration = (1..100).map(redelivery_delay).sum();
        assert!(
            total > Duration::from_secs(3600) && total < Duration::from_secs(4500),
            "{total:?}"
        );
    }

    #[test]
    fn the_last_delivery_that_cannot_commit_is_a_dead_letter() {
        let nak = || Outcome::Nak(Duration::from_secs(2), "a dependency is unavailable");
        assert_eq!(nak().at_delivery(1, 100), nak());
        assert_eq!(
            nak().at_delivery(60, 100),
            Outcome::Nak(Duration::from_secs(60), "a dependency is unavailable")
        );
        let Outcome::DeadLetter(last) = nak().at_delivery(100, 100) else {
            panic!("the 100th delivery of 100 must not be refused again")
        };
        assert_eq!(last.code, "DELIVERY_LIMIT");
        assert!(last.message.contains("a dependency is unavailable"), "{}", last.message);
        assert_eq!(Outcome::Ack.at_delivery(100, 100), Outcome::Ack);
    }
}
