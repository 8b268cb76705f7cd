//! A durable pull consumer shared by every service instance (a work queue), and the one way each of its
//! messages is answered (see [`Outcome`]): the filings' ingest and the credit events' use it alike.
//!
//! - processed (or processed before: redelivery) ⇒ `Ack`;
//! - not now (a rate limit, a full queue, a dependency down) ⇒ `Nak` with a delay that grows with the message's
//!   deliveries;
//! - never (undecodable, invalid, unknown tenant or company) ⇒ the original payload and the reason go to the
//!   dead-letter subject `deadletter.<source>`, then `Term` (no poison loops). If the dead letter cannot be
//!   stored, `Nak` instead;
//! - still not processed at its last delivery (`max_deliver`) ⇒ dead letter `DELIVERY_LIMIT` with the last
//!   reason: nothing is redelivered forever, nothing is dropped unrecorded.

use std::{future::Future, sync::Arc, time::Duration};

use async_nats::{
    HeaderMap,
    jetstream::{
        self, AckKind,
        consumer::{AckPolicy, DeliverPolicy, pull},
        context::PublishError,
    },
};
use futures_util::StreamExt;
use tokio::sync::Semaphore;

use crate::{StreamKind, events, message::Undeliverable, subjects::Namespace};

/// A consumer's settings.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// The durable consumer's name (shared by every instance).
    pub consumer: String,
    /// Messages processed at once by this instance.
    pub max_in_flight: usize,
    pub ack_wait: Duration,
    /// Deliveries of one message at most (the consumer's `max_deliver`); the last one that cannot be processed
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
    pub fn at_delivery(self, delivered: i64, max_deliver: u32) -> Self {
        match self {
            Self::Nak(_, reason) if delivered >= i64::from(max_deliver) => Self::DeadLetter(Undeliverable::new(
                "DELIVERY_LIMIT",
                format!("not processed after {delivered} deliveries; the last refusal: {reason}"),
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

/// What a consumer does with one message (its stream sequence given): the outcome decides the reply.
pub trait Process: Send + Sync + 'static {
    fn process(&self, message: &jetstream::Message, sequence: u64) -> impl Future<Output = Outcome> + Send;
}

/// Which messages a durable consumer reads, and where its dead letters go.
#[derive(Debug, Clone, Copy)]
pub struct Durable {
    pub stream: StreamKind,
    /// The subject filter, without the namespace (`filings.>`).
    pub filter: &'static str,
    /// The dead letters' subject token (`deadletter.<source>`), and the consumer's name in metrics.
    pub source: &'static str,
    pub description: &'static str,
}

/// Consumes until `shutdown` resolves, then lets the messages in progress finish.
pub async fn run<P: Process>(
    jetstream: jetstream::Context,
    namespace: Namespace,
    durable: Durable,
    config: IngestConfig,
    processor: Arc<P>,
    shutdown: impl Future<Output = ()>,
) {
    let replier = Arc::new(Replier {
        jetstream,
        namespace,
        durable,
        config,
    });
    let permits = Arc::new(Semaphore::new(replier.config.max_in_flight));
    tokio::pin!(shutdown);
    loop {
        let consumer = tokio::select! {
            _ = &mut shutdown => break,
            consumer = replier.consumer() => consumer,
        };
        let mut consumer = match consumer {
            Ok(consumer) => consumer,
            Err(e) => {
                tracing::warn!(error = %e, source = durable.source, "consumer not ready; retrying");
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        let messages = consumer
            .stream()
            .max_messages_per_batch(replier.config.max_in_flight.min(256))
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await;
        let mut messages = match messages {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(error = %e, source = durable.source, "cannot pull messages; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        tracing::info!(consumer = %replier.config.consumer, source = durable.source, "consuming");
        let mut stats = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = &mut shutdown => {
                    // Wait for the messages in progress (their acks are part of finishing).
                    let _ = permits.acquire_many(replier.config.max_in_flight as u32).await;
                    return;
                }
                _ = stats.tick() => {
                    if let Ok(info) = consumer.info().await {
                        events::ConsumerSampled {
                            consumer: durable.source,
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
                        let (replier, processor) = (replier.clone(), processor.clone());
                        tokio::spawn(async move {
                            replier.handle(processor.as_ref(), message).await;
                            drop(permit);
                        });
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, source = durable.source, "error pulling messages");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        break;
                    }
                    None => break,
                }
            }
        }
    }
}

/// Answers JetStream for a consumer's messages.
struct Replier {
    jetstream: jetstream::Context,
    namespace: Namespace,
    durable: Durable,
    config: IngestConfig,
}

impl Replier {
    async fn consumer(&self) -> Result<jetstream::consumer::Consumer<pull::Config>, String> {
        let stream = self
            .jetstream
            .get_stream(self.namespace.stream_name(self.durable.stream.base_name()))
            .await
            .map_err(|e| e.to_string())?;
        let config = pull::Config {
            durable_name: Some(self.config.consumer.clone()),
            description: Some(self.durable.description.into()),
            filter_subject: self.namespace.subject(self.durable.filter),
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.config.ack_wait,
            deliver_policy: DeliverPolicy::All,
            // Bounded: the last delivery that cannot be processed is dead-lettered ([`Outcome::at_delivery`]); the
            // server allows a few more, for a dead letter that could not be stored, then stops too (a message that
            // this service never answers, one that stops the process every time).
            max_deliver: consumer_max_deliver(self.config.max_deliver),
            max_ack_pending: 20_000,
            ..Default::default()
        };
        // Created, or updated to this configuration (a consumer made by an earlier version had no delivery limit).
        stream.create_consumer(config).await.map_err(|e| e.to_string())
    }

    /// Processes one message and replies to JetStream.
    async fn handle(&self, processor: &impl Process, message: jetstream::Message) {
        let (sequence, delivered) = message
            .info()
            .map(|i| (i.stream_sequence, i.delivered))
            .unwrap_or((0, 1));
        if delivered > 1 {
            events::Redelivered.emit();
        }
        let outcome = processor
            .process(&message, sequence)
            .await
            .at_delivery(delivered, self.config.max_deliver);
        let reply = match &outcome {
            Outcome::Ack => message.ack().await,
            Outcome::Nak(delay, _) => message.ack_with(AckKind::Nak(Some(*delay))).await,
            Outcome::DeadLetter(reason) => match self.dead_letter(&message, sequence, reason).await {
                Ok(()) => message.ack_with(AckKind::Term).await,
                Err(e) => {
                    tracing::error!(error = %e, "dead letter not stored; the message will be redelivered");
                    message
                        .ack_with(AckKind::Nak(Some(
                            redelivery_delay(delivered).max(Duration::from_secs(5)),
                        )))
                        .await
                }
            },
        };
        if let Err(e) = reply {
            // The message will be redelivered after ack_wait; processing is idempotent.
            tracing::warn!(error = %e, sequence, "could not reply to JetStream");
        }
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
        let source = self.durable.source;
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("dl-{source}-{sequence}").as_str());
        headers.insert("Pdscore-Reason-Code", reason.code);
        headers.insert("Pdscore-Reason", header_text(&reason.message).as_str());
        headers.insert("Pdscore-Original-Subject", message.subject.as_str());
        headers.insert("Pdscore-Stream-Sequence", sequence.to_string().as_str());
        self.jetstream
            .publish_with_headers(self.namespace.dead_letters(source), headers, message.payload.clone())
            .await?
            .await?;
        Ok(())
    }
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
