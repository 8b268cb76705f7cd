//! The JetStream streams of the product and their idempotent creation.
//!
//! The definitions are the JSON files in `nats/streams/`, embedded at compile time. They use the JetStream
//! API's own format, so an operator can apply the very same files with the `nats` CLI. The service calls
//! [`ensure_streams`] at start-up: a missing stream is created, an existing one is updated to the definition
//! (limits, description, duplicate window), and running it again changes nothing.
//!
//! Designed for NATS 2.9 (what Debian ships): one subject filter per consumer, no subject transforms. On 2.10+
//! the same streams work unchanged.

use async_nats::jetstream::{self, stream};

use crate::subjects::Namespace;

/// The streams this product defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// Filings from upstream feeds, consumed by the ingest pull consumer.
    Filings,
    /// Risk-change alerts for subscribers.
    Alerts,
    /// Messages that could not be processed, with the reason.
    DeadLetters,
    /// Realised credit events from upstream systems, consumed by the outcomes' pull consumer.
    Outcomes,
}

impl StreamKind {
    /// Every stream, in creation order.
    pub const ALL: [StreamKind; 4] = [Self::Filings, Self::Alerts, Self::DeadLetters, Self::Outcomes];

    /// The stream's name without namespace.
    pub fn base_name(self) -> &'static str {
        match self {
            Self::Filings => "FILINGS",
            Self::Alerts => "ALERTS",
            Self::DeadLetters => "DEAD_LETTERS",
            Self::Outcomes => "OUTCOMES",
        }
    }

    /// The definition file's text (JetStream API JSON, as accepted by `nats stream add --config`).
    pub fn definition_json(self) -> &'static str {
        match self {
            Self::Filings => include_str!("../streams/FILINGS.json"),
            Self::Alerts => include_str!("../streams/ALERTS.json"),
            Self::DeadLetters => include_str!("../streams/DEAD_LETTERS.json"),
            Self::Outcomes => include_str!("../streams/OUTCOMES.json"),
        }
    }

    /// The stream configuration under `namespace`: the definition file with the namespace applied to the
    /// stream name and to every subject.
    pub fn config(self, namespace: &Namespace) -> Result<stream::Config, EnsureStreamsError> {
        let mut config: stream::Config =
            serde_json::from_str(self.definition_json()).map_err(|source| EnsureStreamsError::Definition {
                stream: self.base_name(),
                source,
            })?;
        config.name = namespace.stream_name(&config.name);
        config.subjects = config.subjects.iter().map(|s| namespace.subject(s)).collect();
        Ok(config)
    }
}

/// Why the streams could not be put in place.
#[derive(Debug, thiserror::Error)]
pub enum EnsureStreamsError {
    #[error("the embedded definition of stream {stream} is invalid")]
    Definition {
        stream: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("failed to create or update stream {stream}")]
    Apply {
        stream: String,
        #[source]
        source: jetstream::context::CreateStreamError,
    },
}

/// Creates every stream of the product under `namespace` with `replicas` replicas (3 on a cluster, 1 on a single
/// server), or updates it to its definition. Idempotent.
pub async fn ensure_streams(
    js: &jetstream::Context,
    namespace: &Namespace,
    replicas: usize,
) -> Result<Vec<stream::Info>, EnsureStreamsError> {
    let mut infos = Vec::with_capacity(StreamKind::ALL.len());
    for kind in StreamKind::ALL {
        let mut config = kind.config(namespace)?;
        config.num_replicas = replicas.max(1);
        let name = config.name.clone();
        let info = js
            .create_or_update_stream(config)
            .await
            .map_err(|source| EnsureStreamsError::Apply {
                stream: name.clone(),
                source,
            })?;
        tracing::info!(stream = %name, subjects = ?info.config.subjects, messages = info.state.messages, "stream ready");
        infos.push(info);
    }
    Ok(infos)
}

/// Deletes every stream of the product under `namespace` (a test's or a benchmark's), the uploads' object
/// store with them; returns how many existed.
pub async fn delete_streams(js: &jetstream::Context, namespace: &Namespace) -> usize {
    let mut deleted = 0;
    for kind in StreamKind::ALL {
        if js.delete_stream(namespace.stream_name(kind.base_name())).await.is_ok() {
            deleted += 1;
        }
    }
    if js.delete_object_store(namespace.uploads_bucket()).await.is_ok() {
        deleted += 1;
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_definition_parses_and_takes_the_namespace() {
        let ns = Namespace::parse("ci").unwrap();
        for kind in StreamKind::ALL {
            let config = kind.config(&ns).unwrap();
            assert_eq!(config.name, format!("CI_{}", kind.base_name()));
            assert!(!config.subjects.is_empty());
            assert!(
                config.subjects.iter().all(|s| s.starts_with("ci.")),
                "{:?}",
                config.subjects
            );
            assert!(
                config.max_age.as_secs() > 0,
                "{} must not keep messages forever",
                kind.base_name()
            );
        }
    }

    #[test]
    fn filings_deduplicate_redeliveries_by_message_id() {
        let config = StreamKind::Filings.config(&Namespace::default()).unwrap();
        assert!(config.duplicate_window.as_secs() >= 60);
        assert_eq!(config.subjects, vec!["filings.>".to_owned()]);
    }
}
