//! The service's NATS connection and the upkeep of its JetStream streams.
//!
//! The connection is made in the background and retried forever, so the service starts (and reports NATS
//! down in `/health`) while the server is unreachable. A task puts the streams in place as soon as the
//! connection is up, and again after every reconnection (a server that lost its storage gets them back).

use std::{
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use async_nats::{
    Event, ServerAddr,
    connection::State,
    jetstream::{self, ErrorCode, context::GetStreamErrorKind},
};
use pdscore_nats::{Namespace, StreamKind, ensure_streams};
use secrecy::ExposeSecret;
use tokio::{sync::Notify, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::configuration::NatsSettings;

/// The NATS client, its JetStream context and this deployment's namespace.
#[derive(Clone)]
pub struct Messaging {
    pub client: async_nats::Client,
    pub jetstream: jetstream::Context,
    pub namespace: Namespace,
    /// Replicas of the streams and the uploads' bucket (`nats.replicas`).
    pub replicas: usize,
    /// Whether the streams are known to exist on the server we are connected to.
    streams_ready: Arc<AtomicBool>,
    /// Woken on every (re)connection, so the streams are checked at once.
    connected: Arc<Notify>,
}

impl Messaging {
    /// Starts connecting; returns at once.
    pub async fn connect(settings: &NatsSettings) -> anyhow::Result<Self> {
        let namespace = settings.namespace()?;
        let address = ServerAddr::from_str(settings.url.expose_secret()).context("Invalid nats.url")?;
        let streams_ready = Arc::new(AtomicBool::new(false));
        let connected = Arc::new(Notify::new());
        let (ready, notify) = (streams_ready.clone(), connected.clone());
        // async-nats does not take credentials from the URL by itself: pass them explicitly.
        let options = match (address.username(), address.password()) {
            (Some(user), Some(password)) => {
                async_nats::ConnectOptions::with_user_and_password(user.to_owned(), password.to_owned())
            }
            (Some(token), None) => async_nats::ConnectOptions::with_token(token.to_owned()),
            _ => async_nats::ConnectOptions::new(),
        };
        let client = options
            .name("pdscore")
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .event_callback(move |event| {
                let (ready, notify) = (ready.clone(), notify.clone());
                async move {
                    match event {
                        Event::Connected => {
                            tracing::info!("NATS connected");
                            notify.notify_one();
                        }
                        Event::Disconnected => {
                            ready.store(false, Ordering::SeqCst);
                            tracing::warn!("NATS disconnected; reconnecting");
                        }
                        other => tracing::warn!(event = %other, "NATS event"),
                    }
                }
            })
            .connect(address)
            .await
            .context("Failed to set up the NATS client")?;
        let jetstream = jetstream::new(client.clone());
        Ok(Self {
            client,
            jetstream,
            namespace,
            replicas: settings.replicas,
            streams_ready,
            connected,
        })
    }

    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    pub fn streams_ready(&self) -> bool {
        self.streams_ready.load(Ordering::SeqCst)
    }

    /// Waits until the streams are in place, for at most `limit` (NATS unreachable: the consumers then keep
    /// retrying on their own), so that they do not start by finding no stream.
    pub async fn streams_in_place(&self, limit: Duration) -> bool {
        let placed = async {
            while !self.streams_ready() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(limit, placed).await.is_ok()
    }

    /// Asks the server for every stream (JetStream API round trips). A missing stream marks the streams as
    /// not ready, so the upkeep task puts them back.
    pub async fn check_streams(&self) -> anyhow::Result<()> {
        for kind in StreamKind::ALL {
            let name = self.namespace.stream_name(kind.base_name());
            if let Err(e) = self.jetstream.get_stream(&name).await {
                if matches!(e.kind(), GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND)
                {
                    self.streams_ready.store(false, Ordering::SeqCst);
                    self.connected.notify_one();
                }
                return Err(anyhow::Error::new(e).context(format!("stream {name} unavailable")));
            }
        }
        Ok(())
    }

    /// Keeps the streams in place until `shutdown`: right after each connection, then retrying every
    /// couple of seconds while it fails.
    pub fn spawn_stream_upkeep(&self, shutdown: CancellationToken) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            const RETRY: Duration = Duration::from_secs(2);
            loop {
                if !this.streams_ready() && this.is_connected() {
                    match ensure_streams(&this.jetstream, &this.namespace, this.replicas).await {
                        Ok(_) => this.streams_ready.store(true, Ordering::SeqCst),
                        Err(e) => {
                            tracing::warn!(error = ?anyhow::Error::from(e), "JetStream streams not ready; retrying")
                        }
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = this.connected.notified() => {}
                    _ = tokio::time::sleep(RETRY) => {}
                }
            }
        })
    }
}
