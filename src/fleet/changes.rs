//! Changes one instance makes that every instance keeps copies of: a tenant's policy, a tenant's companies,
//! the deployed models.
//!
//! The instance that writes calls [`Changes::announce`]: its own copies are dropped before the call returns
//! (its next read is fresh), and the change goes out on `fleet.changes` (core NATS), on which every other
//! instance drops its copies as soon as the message arrives (milliseconds; README, "Running several
//! instances"). A change missed while an instance was cut off from NATS is made good twice over: the instance
//! drops every copy when it connects again, and each copy expires after its TTL anyway.
//!
//! The caches register what a change means for them with [`Changes::on_change`]; this module knows none of them.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use async_nats::connection::State;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::messaging::Messaging;

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A tenant's policy: limits, models, risk scheme, active flag, slug.
    Tenant { tenant_id: Uuid },
    /// A company was added: only the lookups of its symbol that found nothing, or did not name an organization
    /// (the symbol may now be in two), are stale — found by key, not by a scan (the AccuNode route adds a
    /// company per request for a new symbol).
    CompanyAdded {
        tenant_id: Uuid,
        organization_id: Uuid,
        symbol: String,
    },
    /// A tenant's companies were renamed, moved or deleted (with their organization): every copy is stale.
    Companies { tenant_id: Uuid },
    /// The deployed models: a version uploaded, or one activated for tenants that chose none.
    Models,
    /// Anything: changes may have been missed (this instance was cut off from NATS).
    Everything,
}

impl Change {
    /// The tenant the change is about (`None`: every tenant).
    pub fn tenant_id(&self) -> Option<Uuid> {
        match *self {
            Self::Tenant { tenant_id } | Self::CompanyAdded { tenant_id, .. } | Self::Companies { tenant_id } => {
                Some(tenant_id)
            }
            Self::Models | Self::Everything => None,
        }
    }

    /// Whether every copy of `tenant_id`'s companies found by symbol is stale (a rename, a move, a deletion):
    /// `false` for a company added, which makes no found company wrong.
    pub fn drops_companies_of(&self, tenant_id: Uuid) -> bool {
        match *self {
            Self::Companies { tenant_id: changed } => changed == tenant_id,
            Self::Everything => true,
            Self::CompanyAdded { .. } | Self::Tenant { .. } | Self::Models => false,
        }
    }
}

/// A message on `fleet.changes`.
#[derive(Debug, Serialize, Deserialize)]
struct Announcement {
    /// The instance that made the change (it applied the change itself already).
    from: Uuid,
    change: Change,
}

/// The longest a write waits for its change to reach the NATS server.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

type Handler = Arc<dyn Fn(&Change) + Send + Sync>;

/// This instance's end of the fleet's changes (cheap to clone).
#[derive(Clone)]
pub struct Changes {
    instance: Uuid,
    messaging: Messaging,
    handlers: Arc<RwLock<Vec<Handler>>>,
}

impl Changes {
    pub fn new(messaging: Messaging) -> Self {
        Self {
            instance: Uuid::new_v4(),
            messaging,
            handlers: Arc::default(),
        }
    }

    /// Registers what a change means for one of this instance's caches.
    pub fn on_change(&self, handler: impl Fn(&Change) + Send + Sync + 'static) {
        self.handlers
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Arc::new(handler));
    }

    fn apply(&self, change: &Change) {
        let handlers = self
            .handlers
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for handler in handlers {
            handler(change);
        }
    }

    /// Applies `change` here at once and tells the other instances. Not told (NATS down), they see it when
    /// their copies expire.
    pub async fn announce(&self, change: Change) {
        self.apply(&change);
        let announcement = Announcement {
            from: self.instance,
            change: change.clone(),
        };
        let payload = serde_json::to_vec(&announcement).expect("a change serializes");
        let subject = self.messaging.namespace.fleet_changes();
        // Flushed while connected: the change is on the server before the write that made it is answered.
        // Cut off, the write does not wait for NATS (the other instances' copies expire).
        let client = &self.messaging.client;
        let announced = match client.publish(subject, payload.into()).await {
            Ok(()) if client.connection_state() == State::Connected => {
                match tokio::time::timeout(FLUSH_TIMEOUT, client.flush()).await {
                    Ok(flushed) => flushed.map_err(|e| e.to_string()),
                    Err(_) => Err("flush timed out".to_owned()),
                }
            }
            Ok(()) => Err("NATS is disconnected".to_owned()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = announced {
            tracing::warn!(%error, ?change, "change not announced to the other instances; they see it on expiry");
        }
    }

    /// Applies the other instances' changes until `shutdown`; everything after a reconnection to NATS.
    pub async fn follow(self, shutdown: CancellationToken) {
        const RETRY: Duration = Duration::from_secs(1);
        let subject = self.messaging.namespace.fleet_changes();
        let mut was_connected = true;
        loop {
            let mut subscription = match self.messaging.client.subscribe(subject.clone()).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot follow the fleet's changes; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(RETRY) => continue,
                    }
                }
            };
            let mut connection = tokio::time::interval(RETRY);
            loop {
                let message = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = connection.tick() => {
                        let connected = self.messaging.client.connection_state() == State::Connected;
                        if connected && !was_connected {
                            self.apply(&Change::Everything);
                        }
                        was_connected = connected;
                        continue;
                    }
                    message = subscription.next() => message,
                };
                let Some(message) = message else { break };
                match serde_json::from_slice::<Announcement>(&message.payload) {
                    Ok(announcement) if announcement.from == self.instance => {}
                    Ok(announcement) => self.apply(&announcement.change),
                    Err(e) => tracing::warn!(error = %e, "ignoring an undecodable fleet change"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_names_the_copies_it_makes_stale() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(Change::Companies { tenant_id: a }.drops_companies_of(a));
        assert!(!Change::Companies { tenant_id: a }.drops_companies_of(b));
        assert!(!Change::Tenant { tenant_id: a }.drops_companies_of(a));
        assert!(Change::Everything.drops_companies_of(b));
        let added = Change::CompanyAdded {
            tenant_id: a,
            organization_id: b,
            symbol: "ACME".into(),
        };
        assert!(!added.drops_companies_of(a), "a new company renames none");
        assert_eq!(added.tenant_id(), Some(a));
    }

    #[test]
    fn an_announcement_reads_back_as_sent() {
        let tenant_id = Uuid::new_v4();
        let sent = Announcement {
            from: Uuid::new_v4(),
            change: Change::CompanyAdded {
                tenant_id,
                organization_id: Uuid::new_v4(),
                symbol: "ACME".into(),
            },
        };
        let text = serde_json::to_string(&sent).unwrap();
        assert!(text.contains(r#""kind":"company_added""#), "{text}");
        let read: Announcement = serde_json::from_str(&text).unwrap();
        assert_eq!((read.from, read.change), (sent.from, sent.change));
    }
}
