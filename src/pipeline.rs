//! Wiring of the scoring pipeline: the model registry, the actors with their PostgreSQL store, the alert
//! publisher and its outbox, the live alert feed for SSE, and the JetStream ingest.

use std::{
    collections::{HashSet, VecDeque},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use futures_util::{FutureExt, StreamExt, future::BoxFuture};
use pdscore_actors::domain::CompanySymbol;
use pdscore_actors::{Alert, AlertSink, Pipeline, PipelineConfig, model_pool::SharedRegistry};
use pdscore_models::registry::Registry;
use pdscore_nats::ingest::{CompanyLookup, Directory, DirectoryUnavailable, Ingest, IngestConfig};
use sqlx::PgPool;
use tokio::{sync::broadcast, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    auth::Scope,
    cache::LocalCache,
    configuration::Settings,
    db::{companies, predictions, tenants},
    domain::TenantSlug,
    messaging::Messaging,
};

/// Loads the models named in `models.dir/manifest.json`, checksums verified.
pub fn load_registry(settings: &Settings) -> anyhow::Result<Registry> {
    let dir = &settings.models.dir;
    let registry = Registry::load(dir, &pdscore_models::cpu())
        .with_context(|| format!("Failed to load the models from models.dir = {}", dir.display()))?;
    for model in [&settings.pipeline.annual_model, &settings.pipeline.quarterly_model] {
        anyhow::ensure!(
            registry.get(model).is_some(),
            "pipeline default model {model} is not in {}",
            dir.display()
        );
    }
    tracing::info!(models = registry.len(), dir = %dir.display(), "models loaded");
    Ok(registry)
}

/// The running pipeline and what ingest paths need.
pub struct Started {
    pub pipeline: Pipeline,
    pub alerts: AlertFeed,
    pub tasks: Vec<JoinHandle<()>>,
}

/// Starts the actors, the alert outbox, the alert feed and (if enabled) the JetStream ingest. Must run
/// inside the actix system.
pub fn start(
    settings: &Settings,
    registry: Registry,
    db: PgPool,
    messaging: Messaging,
    portfolio: crate::cache::PortfolioCache,
    shutdown: CancellationToken,
) -> Started {
    let p = &settings.pipeline;
    let config = PipelineConfig {
        model_workers: p.model_workers,
        max_batch: p.max_batch,
        max_batches_in_flight_per_tenant: p.max_batches_in_flight_per_tenant,
        max_queued_per_tenant: p.max_queued_per_tenant,
        mailbox_capacity: p.mailbox_capacity,
        idle_timeout: Duration::from_secs(p.idle_timeout_secs),
        policy_ttl: Duration::from_millis(p.policy_ttl_ms),
        persist_max_in_flight: p.persist_max_in_flight,
        persist_max_rows: p.persist_max_rows,
    };
    let store = Arc::new(predictions::PgPredictionStore::new(
        db.clone(),
        Arc::new(p.clone()),
        portfolio,
    ));
    let publisher = Arc::new(AlertPublisher {
        db: db.clone(),
        messaging: messaging.clone(),
    });
    let pipeline = Pipeline::start(
        config,
        Arc::new(SharedRegistry::new(registry)),
        store,
        publisher.clone(),
    );
    let alerts = AlertFeed::new();
    let mut tasks = vec![
        tokio::spawn(publisher.run_outbox(shutdown.clone())),
        tokio::spawn(alerts.clone().follow(messaging.clone(), shutdown.clone())),
    ];
    if p.ingest_enabled {
        let ingest = Ingest {
            jetstream: messaging.jetstream.clone(),
            namespace: messaging.namespace.clone(),
            pipeline: pipeline.clone(),
            directory: Arc::new(PgDirectory::new(db)),
            config: IngestConfig {
                consumer: p.consumer_name.clone(),
                max_in_flight: p.ingest_max_in_flight,
                ack_wait: Duration::from_secs(p.ingest_ack_wait_secs),
                max_deliver: p.ingest_max_deliver,
            },
            refusals: Default::default(),
        };
        // Ingest decodes and answers JetStream on a thread of its own, so a flood of messages never delays
        // the HTTP workers or the pipeline's actors.
        let stop = shutdown.clone();
        tasks.push(on_own_arbiter(async move { ingest.run(stop.cancelled_owned()).await }));
    }
    Started {
        pipeline,
        alerts,
        tasks,
    }
}

/// Runs `work` on an actix arbiter (a thread) of its own; the task ends, and the arbiter stops, when the work
/// is done.
pub(crate) fn on_own_arbiter(work: impl std::future::Future<Output = ()> + Send + 'static) -> JoinHandle<()> {
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let arbiter = actix::Arbiter::new();
    arbiter.spawn(async move {
        work.await;
        let _ = done.send(());
    });
    tokio::spawn(async move {
        let _ = finished.await;
        arbiter.stop();
    })
}

/// Publishes committed alerts to the ALERTS stream and marks them published; what fails stays unpublished
/// in PostgreSQL and is published again by the outbox task.
#[derive(Clone)]
struct AlertPublisher {
    db: PgPool,
    messaging: Messaging,
}

impl AlertPublisher {
    async fn publish_all(&self, alerts: Vec<Alert>) {
        let mut published = Vec::with_capacity(alerts.len());
        for alert in &alerts {
            match pdscore_nats::alerts::publish(&self.messaging.jetstream, &self.messaging.namespace, alert).await {
                Ok(()) => {
                    pdscore_nats::events::AlertPublished.emit();
                    published.push((alert.tenant_id, alert.id));
                }
                Err(e) => {
                    tracing::warn!(alert_id = %alert.id, error = %e, "alert not published yet; the outbox retries")
                }
            }
        }
        if !published.is_empty()
            && let Err(e) = predictions::mark_published(&self.db, &published).await
        {
            tracing::warn!(error = %e, "could not mark alerts published (they may be published twice; the stream drops duplicates)");
        }
    }

    /// Re-publishes alerts whose publisher died between commit and publish.
    async fn run_outbox(self: Arc<Self>, shutdown: CancellationToken) {
        const EVERY: Duration = Duration::from_secs(10);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
            match predictions::unpublished_alerts(&self.db, EVERY.as_secs_f64(), 500).await {
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

impl AlertSink for AlertPublisher {
    fn publish(&self, alerts: Vec<Alert>) -> BoxFuture<'static, ()> {
        let this = self.clone();
        async move { this.publish_all(alerts).await }.boxed()
    }
}

/// Live alerts of every tenant, as stored on the ALERTS stream (whichever instance scored them), for the
/// SSE subscribers of this instance. Each alert is delivered once even if it was published twice.
#[derive(Clone)]
pub struct AlertFeed {
    sender: broadcast::Sender<Arc<Alert>>,
}

impl AlertFeed {
    fn new() -> Self {
        Self {
            sender: broadcast::channel(4096).0,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Alert>> {
        self.sender.subscribe()
    }

    /// Follows `alerts.>` on NATS until `shutdown`, resubscribing after errors.
    async fn follow(self, messaging: Messaging, shutdown: CancellationToken) {
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
                let Ok(alert) = serde_json::from_slice::<Alert>(&message.payload) else {
                    tracing::warn!(subject = %message.subject, "ignoring an undecodable alert");
                    continue;
                };
                if !seen.0.insert(alert.id) {
                    continue;
                }
                seen.1.push_back(alert.id);
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

/// Tenants by slug and companies by symbol, for the NATS ingest, cached briefly (a company created a few
/// seconds ago may be refused once; its message then goes to the dead letters with the reason).
struct PgDirectory {
    db: PgPool,
    tenants: Arc<LocalCache<String, Option<Uuid>>>,
    companies: Arc<LocalCache<CompanyKey, CompanyLookup>>,
}

/// Tenant, symbol, organization.
type CompanyKey = (Uuid, String, Option<Uuid>);

const DIRECTORY_TTL: Duration = Duration::from_secs(10);
const DIRECTORY_ENTRIES: usize = 100_000;

impl PgDirectory {
    fn new(db: PgPool) -> Self {
        Self {
            db,
            tenants: Arc::new(LocalCache::new(DIRECTORY_TTL, DIRECTORY_ENTRIES)),
            companies: Arc::new(LocalCache::new(DIRECTORY_TTL, DIRECTORY_ENTRIES)),
        }
    }
}

fn unavailable(e: sqlx::Error) -> DirectoryUnavailable {
    DirectoryUnavailable(Box::new(e))
}

impl Directory for PgDirectory {
    fn tenant(&self, slug: &str) -> BoxFuture<'static, Result<Option<Uuid>, DirectoryUnavailable>> {
        if let Some(hit) = self.tenants.get(slug) {
            return futures_util::future::ready(Ok(hit)).boxed();
        }
        // A token that is no slug names no tenant (and is not cached: it costs no query).
        let Ok(parsed) = TenantSlug::parse(slug) else {
            return futures_util::future::ready(Ok(None)).boxed();
        };
        let (db, slug) = (self.db.clone(), slug.to_owned());
        let cache = self.tenants.clone();
        async move {
            let mut conn = db.acquire().await.map_err(unavailable)?;
            let id = tenants::find_id_by_slug(&mut conn, &parsed)
                .await
                .map_err(unavailable)?;
            cache.insert(slug, id);
            Ok(id)
        }
        .boxed()
    }

    fn company(
        &self,
        tenant_id: Uuid,
        symbol: &CompanySymbol,
        organization: Option<Uuid>,
    ) -> BoxFuture<'static, Result<CompanyLookup, DirectoryUnavailable>> {
        let key = (tenant_id, symbol.as_str().to_owned(), organization);
        if let Some(hit) = self.companies.get(&key) {
            return futures_util::future::ready(Ok(hit)).boxed();
        }
        let (db, symbol) = (self.db.clone(), symbol.clone());
        let cache = self.companies.clone();
        async move {
            let mut conn = db.acquire().await.map_err(unavailable)?;
            let rows = companies::find_ids_by_symbol(&mut conn, &Scope::service(tenant_id), &symbol, organization)
                .await
                .map_err(unavailable)?;
            let lookup = match rows.as_slice() {
                [(organization_id, company_id)] => CompanyLookup::Found {
                    organization_id: *organization_id,
                    company_id: *company_id,
                },
                [] => CompanyLookup::Unknown,
                _ => CompanyLookup::Ambiguous,
            };
            cache.insert(key, lookup);
            Ok(lookup)
        }
        .boxed()
    }
}
