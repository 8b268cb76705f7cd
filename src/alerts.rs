//! The alert stage, after the commit that found a risk change (its rows are written in that commit's
//! transaction by `db::alerts`: the outbox):
//!
//! ```text
//! commit ─► AlertPublisher ─► ALERTS stream (NATS; deduplicated by alert id) ─► AlertFeed ─► SSE subscribers
//!              └─ outbox: what was not published is published again from PostgreSQL
//! ```
//!
//! Alerts leave through NATS and come back into the same process for the SSE streams: every instance follows
//! the stream, so a subscriber connected to one instance sees the alerts every instance found. NATS
//! subscribers read the same stream. Model-drift alerts (`crate::validation::drift`) travel the same way.

use std::{
    collections::{HashSet, VecDeque},
    sync::Arc,
    time::Duration,
};

use futures_util::{FutureExt, StreamExt, future::BoxFuture};
use pdscore_actors::{Alert, AlertSink};
use pdscore_nats::{alerts::DriftAlert, subjects::DRIFT_TOKEN};
use sqlx::PgPool;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{db::alerts as stored, messaging::Messaging};

/// Publishes committed alerts to the ALERTS stream and marks them published; what fails stays unpublished
/// in PostgreSQL and is published again by the outbox task.
#[derive(Clone)]
pub struct AlertPublisher {
    db: PgPool,
    messaging: Messaging,
}

impl AlertPublisher {
    pub fn new(db: PgPool, messaging: Messaging) -> Self {
        Self { db, messaging }
    }

    /// Sends the alerts in order, then waits for the stream's acknowledgements together.
    async fn publish_all(&self, alerts: Vec<Alert>) {
        let (jetstream, namespace) = (&self.messaging.jetstream, &self.messaging.namespace);
        let mut sent = Vec::with_capacity(alerts.len());
        for alert in &alerts {
            match pdscore_nats::alerts::send(jetstream, namespace, alert).await {
                Ok(ack) => sent.push(ack.map(move |ack| (alert, ack))),
                Err(e) => not_published(alert, &e),
            }
        }
        let mut published = Vec::with_capacity(sent.len());
        for (alert, ack) in futures_util::future::join_all(sent).await {
            match ack {
                Ok(()) => {
                    pdscore_nats::events::AlertPublished.emit();
                    published.push((alert.tenant_id, alert.id));
                }
                Err(e) => not_published(alert, &e),
            }
        }
        if !published.is_empty()
            && let Err(e) = stored::mark_published(&self.db, &published).await
        {
            tracing::warn!(error = %e, "could not mark alerts published (they may be published twice; the stream drops duplicates)");
        }
    }

    /// Re-publishes alerts whose publisher died between commit and publish.
    pub async fn run_outbox(self: Arc<Self>, shutdown: CancellationToken) {
        const EVERY: Duration = Duration::from_secs(10);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
            match stored::unpublished(&self.db, EVERY.as_secs_f64(), 500).await {
                Ok(alerts) if !alerts.is_empty() => {
                    tracing::info!(alerts = alerts.len(), "publishing alerts from the outbox");
                    self.publish_all(alerts).await;
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "outbox check failed"),
            }
        }
    }
}

fn not_published(alert: &Alert, error: &pdscore_nats::alerts::AlertNotPublished) {
    tracing::warn!(alert_id = %alert.id, %error, "alert not published yet; the outbox retries")
}

impl AlertSink for AlertPublisher {
    fn publish(&self, alerts: Vec<Alert>) -> BoxFuture<'static, ()> {
        let this = self.clone();
        async move { this.publish_all(alerts).await }.boxed()
    }
}

/// One alert of the live feed.
#[derive(Debug, Clone)]
pub enum LiveAlert {
    /// A company's risk changed.
    Risk(Alert),
    /// A model's population drifted.
    Drift(DriftAlert),
}

impl LiveAlert {
    fn id(&self) -> Uuid {
        match self {
            Self::Risk(a) => a.id,
            Self::Drift(a) => a.id,
        }
    }

    /// Decodes a message of the ALERTS stream by its subject's last token.
    fn decode(subject: &str, payload: &[u8]) -> Option<Self> {
        if subject.rsplit('.').next() == Some(DRIFT_TOKEN) {
            serde_json::from_slice(payload).ok().map(Self::Drift)
        } else {
            serde_json::from_slice(payload).ok().map(Self::Risk)
        }
    }
}

/// Live alerts of every tenant, as stored on the ALERTS stream (whichever instance scored them), for the
/// SSE subscribers of this instance. Each alert is delivered once even if it was published twice.
#[derive(Clone)]
pub struct AlertFeed {
    sender: broadcast::Sender<Arc<LiveAlert>>,
}

impl AlertFeed {
    pub fn new() -> Self {
        Self {
            sender: broadcast::channel(4096).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveAlert>> {
        self.sender.subscribe()
    }

    /// Follows `alerts.>` on NATS until `shutdown`, resubscribing after errors.
    pub async fn follow(self, messaging: Messaging, shutdown: CancellationToken) {
        let subject = messaging.namespace.subject("alerts.>");
        let mut seen: (HashSet<Uuid>, VecDeque<Uuid>) = Default::default();
        loop {
            let mut subscription = match messaging.client.subscribe(subject.clone()).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot follow alerts; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            loop {
                let message = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    message = subscription.next() => message,
                };
                let Some(message) = message else { break };
                let Some(alert) = LiveAlert::decode(&message.subject, &message.payload) else {
                    tracing::warn!(subject = %message.subject, "ignoring an undecodable alert");
                    continue;
                };
                if !seen.0.insert(alert.id()) {
                    continue;
                }
                seen.1.push_back(alert.id());
                if seen.1.len() > 10_000
                    && let Some(old) = seen.1.pop_front()
                {
                    seen.0.remove(&old);
                }
                let _ = self.sender.send(Arc::new(alert));
            }
        }
    }
}

impl Default for AlertFeed {
    fn default() -> Self {
        Self::new()
    }
}
