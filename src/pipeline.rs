//! Wiring of the scoring pipeline: the model registry, the actors with their PostgreSQL store (behind the
//! portfolio cache's invalidation), the alert stage ([`crate::alerts`]) and the JetStream ingest with its
//! directory of tenants and companies.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use futures_util::{FutureExt, future::BoxFuture};
use pdscore_actors::domain::CompanySymbol;
use pdscore_actors::{
    DefaultModels, Pipeline, PipelineConfig, PredictionStore, Scores, StoreError, TenantPolicy,
    model_pool::SharedRegistry, ports::CommitResult,
};
use pdscore_models::registry::Registry;
use pdscore_models::statement::{ReportingPeriod, Statement};
use pdscore_nats::{
    ingest::{CompanyLookup, Directory, DirectoryUnavailable, Ingest, IngestConfig},
    outcomes::{OutcomeIngest, OutcomeSink},
};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    alerts::{AlertFeed, AlertPublisher, PublishedMarks},
    auth::Scope,
    cache::LocalCache,
    configuration::Settings,
    db::{company_lookups::CompanyLookups, predictions, tenants},
    domain::TenantSlug,
    fleet::{Change, Fleet},
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
    /// The models of tenants that chose none (the policy reader's and the API's).
    pub default_models: Arc<DefaultModels>,
    pub alerts: AlertFeed,
    pub tasks: Vec<JoinHandle<()>>,
    /// Records which alerts were published: to run until every other task has drained (its marks with it).
    pub published: PublishedMarks,
    /// Companies looked up by symbol together: the NATS ingest's and the AccuNode routes'.
    pub lookups: CompanyLookups,
}

/// Starts the actors (admitting filings by the fleet's shared limits, their copies of tenant policies dropped
/// on the fleet's changes), the alert outbox, the alert feed and (if enabled) the JetStream ingest of filings
/// and of credit events (recorded through `outcomes`). Must run inside the actix system.
#[allow(
    clippy::too_many_arguments,
    reason = "the wiring's inputs, each used once; a struct would only rename them"
)]
pub fn start(
    settings: &Settings,
    registry: Registry,
    db: PgPool,
    messaging: Messaging,
    portfolio: crate::cache::PortfolioCache,
    fleet: &Fleet,
    outcomes: Arc<dyn OutcomeSink>,
    shutdown: CancellationToken,
) -> Started {
    let p = &settings.pipeline;
    let config = PipelineConfig {
        model_workers: p.model_workers,
        max_batch: p.max_batch,
        max_batches_in_flight_per_tenant: p.max_batches_in_flight_per_tenant,
        min_concurrent_batch: p.min_concurrent_batch,
        max_queued_per_tenant: p.max_queued_per_tenant,
        mailbox_capacity: p.mailbox_capacity,
        idle_timeout: Duration::from_secs(p.idle_timeout_secs),
        policy_ttl: Duration::from_millis(p.policy_ttl_ms),
        persist_max_in_flight: p.persist_max_in_flight,
        persist_max_rows: p.persist_max_rows,
    };
    let default_models = Arc::new(p.default_models());
    let lookups = CompanyLookups::start(db.clone());
    let store = Arc::new(InvalidatingStore {
        inner: predictions::PgPredictionStore::new(db.clone(), Arc::new(p.clone()), default_models.clone()),
        portfolio,
    });
    let alerts = AlertFeed::new();
    let (publisher, published) = AlertPublisher::new(db.clone(), messaging.clone(), alerts.clone());
    let publisher = Arc::new(publisher);
    let pipeline = Pipeline::start(
        config,
        Arc::new(SharedRegistry::new(registry)),
        store,
        publisher.clone(),
        Some(fleet.limits.clone()),
    );
    let policies = pipeline.clone();
    fleet.changes.on_change(move |change| match change {
        Change::Tenant { tenant_id } => policies.invalidate_policy(Some(*tenant_id)),
        Change::Everything => policies.invalidate_policy(None),
        // The deployment drops every policy itself, once the models are loaded (`crate::deployment`).
        Change::Models | Change::CompanyAdded { .. } | Change::Companies { .. } => {}
    });
    let mut tasks = vec![
        tokio::spawn(publisher.run_outbox(shutdown.clone())),
        tokio::spawn(alerts.clone().follow(messaging.clone(), shutdown.clone())),
    ];
    if p.ingest_enabled {
        let directory: Arc<PgDirectory> = Arc::new(PgDirectory::new(
            db,
            lookups.clone(),
            Duration::from_millis(p.lookup_ttl_ms),
            &fleet.changes,
        ));
        let credit_events = OutcomeIngest {
            jetstream: messaging.jetstream.clone(),
            namespace: messaging.namespace.clone(),
            directory: directory.clone(),
            sink: outcomes,
            config: IngestConfig {
                consumer: format!("{}-outcomes", p.consumer_name),
                max_in_flight: 32,
                ack_wait: Duration::from_secs(p.ingest_ack_wait_secs),
                max_deliver: p.ingest_max_deliver,
            },
        };
        let stop = shutdown.clone();
        tasks.push(tokio::spawn(
            async move { credit_events.run(stop.cancelled_owned()).await },
        ));
        let ingest = Ingest {
            jetstream: messaging.jetstream.clone(),
            namespace: messaging.namespace.clone(),
            pipeline: pipeline.clone(),
            directory,
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
        default_models,
        alerts,
        tasks,
        published,
        lookups,
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

/// The store, with the cached portfolio answers of every tenant a batch wrote to invalidated before the
/// batch's callers hear of the commit: a dashboard never shows a portfolio older than a filing it was told of.
struct InvalidatingStore<S> {
    inner: S,
    portfolio: crate::cache::PortfolioCache,
}

impl<S: PredictionStore> PredictionStore for InvalidatingStore<S> {
    fn commit(&self, batch: Arc<Vec<Scores>>) -> BoxFuture<'static, Result<Vec<CommitResult>, StoreError>> {
        let committing = self.inner.commit(batch.clone());
        let portfolio = self.portfolio.clone();
        async move {
            let results = committing.await?;
            let tenants: std::collections::BTreeSet<Uuid> = batch.iter().map(|s| s.filing.tenant_id).collect();
            for tenant in tenants {
                portfolio.invalidate(tenant).await;
            }
            Ok(results)
        }
        .boxed()
    }

    fn tenant_policy(&self, tenant_id: Uuid) -> BoxFuture<'static, Result<Option<TenantPolicy>, StoreError>> {
        self.inner.tenant_policy(tenant_id)
    }

    fn previous_quarters(
        &self,
        tenant_id: Uuid,
        requests: Vec<(Uuid, ReportingPeriod)>,
    ) -> BoxFuture<'static, Result<Vec<Option<[Statement; 3]>>, StoreError>> {
        self.inner.previous_quarters(tenant_id, requests)
    }
}

/// Tenants by slug and companies by symbol, for the NATS ingest, cached briefly and dropped on the fleet's
/// changes (a company created or renamed through any instance is found under its symbol as soon as the change
/// arrives; see [`crate::fleet::changes`]). Companies not in the cache are looked up together
/// ([`CompanyLookups`]).
struct PgDirectory {
    db: PgPool,
    tenants: Arc<LocalCache<String, Option<Uuid>>>,
    companies: Arc<LocalCache<CompanyKey, CompanyLookup>>,
    lookups: CompanyLookups,
}

/// Tenant, symbol, organization.
type CompanyKey = (Uuid, String, Option<Uuid>);

const DIRECTORY_ENTRIES: usize = 100_000;

impl PgDirectory {
    fn new(db: PgPool, lookups: CompanyLookups, ttl: Duration, changes: &crate::fleet::Changes) -> Self {
        let companies = Arc::new(LocalCache::new(ttl, DIRECTORY_ENTRIES));
        let directory = Self {
            db,
            tenants: Arc::new(LocalCache::new(ttl, DIRECTORY_ENTRIES)),
            companies,
            lookups,
        };
        let (tenants, companies) = (directory.tenants.clone(), directory.companies.clone());
        changes.on_change(move |change| match change {
            Change::Tenant { .. } => tenants.clear(),
            Change::Models => {}
            Change::Everything => {
                tenants.clear();
                companies.clear();
            }
            // Looked up in its organization, the symbol was unknown; without one, it may now be ambiguous.
            Change::CompanyAdded {
                tenant_id,
                organization_id,
                symbol,
            } => {
                companies.remove(&(*tenant_id, symbol.clone(), Some(*organization_id)));
                companies.remove(&(*tenant_id, symbol.clone(), None));
            }
            Change::Companies { tenant_id } => {
                let tenant_id = *tenant_id;
                companies.remove_where(move |(tenant, _, _), _| *tenant == tenant_id)
            }
        });
        directory
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
        let (lookups, cache) = (self.lookups.clone(), self.companies.clone());
        async move {
            let found = lookups
                .find(Scope::service(tenant_id), organization, &key.1)
                .await
                .map_err(|e| DirectoryUnavailable(Box::new(e)))?;
            let lookup = match found.as_slice() {
                [company] => CompanyLookup::Found {
                    organization_id: company.organization_id,
                    company_id: company.id,
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
