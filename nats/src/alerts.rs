//! Alerts on the ALERTS stream, `Nats-Msg-Id` = the alert's id so a re-publication (after a crash, from the
//! outbox) is dropped by the stream's duplicate window:
//! - risk changes: `alerts.<tenant slug>.<company id>`, JSON of [`pdscore_actors::Alert`] (schema 1);
//! - model drift: `alerts.<tenant slug>.drift`, JSON of [`DriftAlert`] (`"kind": "drift"`, schema 1).

use async_nats::{HeaderMap, jetstream};
use chrono::{DateTime, Utc};
use pdscore_actors::Alert;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::subjects::Namespace;

/// The subject an alert is published on.
pub fn subject(namespace: &Namespace, alert: &Alert) -> String {
    namespace.alerts(&alert.tenant_slug, &alert.company_id.to_string())
}

/// Why an alert was not published (the outbox publishes it later).
#[derive(Debug, thiserror::Error)]
pub enum AlertNotPublished {
    #[error("the alert cannot be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the stream did not store the alert: {0}")]
    Publish(#[from] jetstream::context::PublishError),
}

/// Sends one alert to the stream, in the order of the calls; the answer resolves once the stream has stored
/// it. Sending a commit's alerts one after the other and then waiting for all their acknowledgements keeps
/// their order without paying a round trip per alert.
pub async fn send(
    js: &jetstream::Context,
    namespace: &Namespace,
    alert: &Alert,
) -> Result<impl Future<Output = Result<(), AlertNotPublished>> + use<>, AlertNotPublished> {
    let stored = send_json(js, subject(namespace, alert), alert.id, alert).await?;
    Ok(async move {
        stored.await?;
        Ok(())
    })
}

/// A model whose inputs or PDs moved away from a reference (its training sample, or a past window of the
/// tenant's own predictions): the population stability index (PSI) of some series passed the threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftAlert {
    /// Always `drift` (a subscriber to `alerts.<tenant>.*` tells the two kinds apart by it).
    pub kind: String,
    pub schema_version: u32,
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub tenant_slug: String,
    /// The model, `name@version`.
    pub model: String,
    /// `training` or `past`.
    pub reference: String,
    pub threshold: f64,
    /// The series above the threshold (`pd` or a feature name), largest PSI first.
    pub series: Vec<DriftedSeries>,
    pub window_hours: i32,
    pub raised_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftedSeries {
    pub name: String,
    pub psi: f64,
}

impl DriftAlert {
    pub const KIND: &'static str = "drift";
    pub const SCHEMA_VERSION: u32 = 1;
}

/// Publishes one drift alert and waits for the stream to store it.
pub async fn publish_drift(
    js: &jetstream::Context,
    namespace: &Namespace,
    alert: &DriftAlert,
) -> Result<(), AlertNotPublished> {
    send_json(js, namespace.drift_alerts(&alert.tenant_slug), alert.id, alert)
        .await?
        .await?;
    Ok(())
}

async fn send_json(
    js: &jetstream::Context,
    subject: String,
    id: Uuid,
    message: &impl Serialize,
) -> Result<jetstream::context::PublishAckFuture, AlertNotPublished> {
    let payload = serde_json::to_vec(message)?;
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", id.to_string().as_str());
    Ok(js.publish_with_headers(subject, headers, payload.into()).await?)
}
