//! The alert stage, after the commit that found a risk change (its rows are written in that commit's
//! transaction by `db::alerts`: the outbox):
//!
//! ```text
//! commit ─► AlertPublisher ─┬─► ALERTS stream (NATS; deduplicated by alert id) ─► AlertFeed ─► SSE subscribers
//!              │            └──────────────── (this instance's own alerts) ──────────┘
//!              ├─ marks what the stream acknowledged as published: one UPDATE per second at most (PublishedMarks)
//!              └─ outbox: what was not published is published again from PostgreSQL
//! ```
//!
//! Every instance follows the stream, so a subscriber connected to one instance sees the alerts every instance
//! found; NATS subscribers read the same stream. An instance's own alerts also go straight from its publisher
//! to its feed, once committed and before the stream has them: its subscribers do not wait for the round trip
//! through NATS (the feed delivers each alert once, whichever copy comes first). Model-drift alerts
//! (`crate::validation::drift`) travel through the stream only.

use std::{
    collections::{HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::{FutureExt, StreamExt, future::BoxFuture};
use pdscore_actors::{Alert, AlertSink};
use pdscore_nats::{alerts::DriftAlert, subjects::DRIFT_TOKEN};
use sqlx::PgPool;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{db::alerts as stored, messaging::Messaging};

/// Publishes committed alerts to the ALERTS stream and marks them published; what fails stays unpublished
/// in PostgreSQL and is published again by the outbox task.
#[derive(Clone)]
pub struct AlertPublisher {
    db: PgPool,
    messaging: Messaging,
    /// This instance's live feed, which gets its alerts while the stream acknowledges them.
    feed: AlertFeed,
    /// The (tenant, alert) ids the stream acknowledged, for [`PublishedMarks`] to record.
    published: mpsc::Sender<(Uuid, Uuid)>,
}

impl AlertPublisher {
    /// The publisher, and the task that records what it published (run it beside the publisher).
    pub fn new(db: PgPool, messaging: Messaging, feed: AlertFeed) -> (Self, PublishedMarks) {
        let (published, received) = mpsc::channel(PublishedMarks::QUEUED);
        let marks = PublishedMarks {
            db: db.clone(),
            received,
        };
        let publisher = Self {
            db,
            messaging,
            feed,
            published,
        };
        (publisher, marks)
    }

    /// Sends the alerts in order, hands them to this instance's feed while the stream acknowledges them, then
    /// waits for the acknowledgements together.
    async fn publish_all(&self, alerts: Vec<Alert>) {
        let (jetstream, namespace) = (&self.messaging.jetstream, &self.messaging.namespace);
        let mut sent = Vec::with_capacity(alerts.len());
        for alert in &alerts {
            match pdscore_nats::alerts::send(jetstream, namespace, alert).await {
                Ok(ack) => sent.push(ack.map(move |ack| (alert, ack))),
                Err(e) => not_published(alert, &e),
            }
        }
        for alert in &alerts {
            self.feed.deliver(LiveAlert::Risk(alert.clone()));
        }
        for (alert, ack) in futures_util::future::join_all(sent).await {
            match ack {
                Ok(()) => {
                    pdscore_nats::events::AlertPublished.emit();
                    if let Err(e) = self.published.try_send((alert.tenant_id, alert.id)) {
                        tracing::warn!(alert_id = %alert.id, error = %e, "alert published but not marked so: the outbox publishes it again, the stream drops the copy");
                    }
                }
                Err(e) => not_published(alert, &e),
            }
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

/// Records in PostgreSQL which alerts the stream acknowledged, so that the outbox leaves them alone: the marks
/// of a second (or of [`Self::MAX`] alerts) in one `UPDATE`, rather than one per commit that found alerts.
///
/// Each mark is an update of the alert's row (a new row version, and its indexes' entries), plus a transaction
/// and its WAL flush: per commit, that doubled the transactions of a feed where most commits find an alert, on
/// the same cores and disk as the commits the subscribers wait for. The outbox publishes again only alerts
/// unmarked for [`AlertPublisher::run_outbox`]'s 10 s, far longer than a mark waits here; a mark lost (the
/// process stopped within its second, the database unreachable) makes the outbox publish that alert a second
/// time, which the stream drops as a duplicate (its window is 10 minutes) — as when an `UPDATE` fails.
pub struct PublishedMarks {
    db: PgPool,
    received: mpsc::Receiver<(Uuid, Uuid)>,
}

impl PublishedMarks {
    /// How long the first mark of a batch waits for others.
    const LINGER: Duration = Duration::from_secs(1);
    /// Marks per `UPDATE`.
    const MAX: usize = 5_000;
    /// Marks waiting at most; beyond, a mark is dropped (and its alert published again by the outbox).
    const QUEUED: usize = 50_000;

    /// Records the marks until `drained` (fired once nothing publishes any more), then those already received.
    pub async fn run(self, drained: CancellationToken) {
        let mut received = ReceiverStream::new(self.received);
        let mut rest = {
            let batches = tokio_stream::StreamExt::chunks_timeout(&mut received, Self::MAX, Self::LINGER);
            let mut batches = std::pin::pin!(batches);
            loop {
                let batch = tokio::select! {
                    _ = drained.cancelled() => break batches.as_mut().into_remainder(),
                    batch = batches.next() => batch,
                };
                let Some(batch) = batch else { return };
                mark(&self.db, &batch).await;
            }
        };
        // What was received before, without waiting for more.
        let mut receiver = received.into_inner();
        receiver.close();
        while let Ok(published) = receiver.try_recv() {
            rest.push(published);
        }
        for batch in rest.chunks(Self::MAX) {
            mark(&self.db, batch).await;
        }
    }
}

async fn mark(db: &PgPool, published: &[(Uuid, Uuid)]) {
    if let Err(e) = stored::mark_published(db, published).await {
        tracing::warn!(error = %e, alerts = published.len(), "could not mark alerts published (the outbox publishes them again; the stream drops the copies)");
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

/// Live alerts of every tenant, as stored on the ALERTS stream (whichever instance scored them), and this
/// instance's own from its publisher, for the SSE subscribers of this instance. Each alert is delivered once
/// even if it was published twice, or arrives from the publisher and from the stream.
#[derive(Clone)]
pub struct AlertFeed {
    sender: broadcast::Sender<Arc<LiveAlert>>,
    delivered: Arc<Mutex<Delivered>>,
}

/// The ids of the last alerts delivered, to deliver each once.
#[derive(Default)]
struct Delivered {
    ids: HashSet<Uuid>,
    order: VecDeque<Uuid>,
}

impl Delivered {
    const KEPT: usize = 10_000;

    /// Whether `id` is new (it is then remembered).
    fn first(&mut self, id: Uuid) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > Self::KEPT
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        true
    }
}

impl AlertFeed {
    pub fn new() -> Self {
        Self {
            sender: broadcast::channel(4096).0,
            delivered: Arc::default(),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveAlert>> {
        self.sender.subscribe()
    }

    /// Gives `alert` to this instance's subscribers, unless it was given them already.
    pub fn deliver(&self, alert: LiveAlert) {
        let first = self
            .delivered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first(alert.id());
        if first {
            let _ = self.sender.send(Arc::new(alert));
        }
    }

    /// Follows `alerts.>` on NATS until `shutdown`, resubscribing after errors.
    pub async fn follow(self, messaging: Messaging, shutdown: CancellationToken) {
        let subject = messaging.namespace.subject("alerts.>");
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
                self.deliver(alert);
            }
        }
    }
}

impl Default for AlertFeed {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drift(id: Uuid) -> LiveAlert {
        LiveAlert::Drift(DriftAlert {
            kind: DRIFT_TOKEN.to_owned(),
            schema_version: 1,
            id,
            tenant_id: Uuid::nil(),
            tenant_slug: "demo".to_owned(),
            model: "annual/polish-gbdt@1".to_owned(),
            reference: "training".to_owned(),
            threshold: 0.25,
            series: Vec::new(),
            window_hours: 24,
            raised_at: chrono::Utc::now(),
        })
    }

    #[test]
    fn each_alert_reaches_the_subscribers_once_whichever_copy_comes_first() {
        let feed = AlertFeed::new();
        let mut subscriber = feed.subscribe();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        // From the publisher, then from the stream; another; the first again.
        for id in [a, a, b, a] {
            feed.deliver(drift(id));
        }
        let mut got = Vec::new();
        while let Ok(alert) = subscriber.try_recv() {
            got.push(alert.id());
        }
        assert_eq!(got, vec![a, b]);
    }

    #[test]
    fn the_feed_remembers_the_last_alerts_only() {
        let mut delivered = Delivered::default();
        let first = Uuid::now_v7();
        assert!(delivered.first(first));
        for _ in 0..Delivered::KEPT {
            assert!(delivered.first(Uuid::now_v7()));
        }
        // Forgotten after KEPT others: a copy that late is delivered again.
        assert!(delivered.first(first));
        assert_eq!(delivered.ids.len(), Delivered::KEPT);
    }
}
