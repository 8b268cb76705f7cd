//! Risk-change alerts on the ALERTS stream: `alerts.<tenant slug>.<company id>`, JSON of
//! [`pdscore_actors::Alert`] (schema 1), `Nats-Msg-Id` = the alert's id so a re-publication (after a crash,
//! from the outbox) is dropped by the stream's duplicate window.

use async_nats::{HeaderMap, jetstream};
use pdscore_actors::Alert;

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

/// Publishes one alert and waits for the stream to store it.
pub async fn publish(js: &jetstream::Context, namespace: &Namespace, alert: &Alert) -> Result<(), AlertNotPublished> {
    let payload = serde_json::to_vec(alert)?;
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", alert.id.to_string().as_str());
    js.publish_with_headers(subject(namespace, alert), headers, payload.into())
        .await?
        .await?;
    Ok(())
}
