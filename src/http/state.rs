//! What request handlers share.

use std::{sync::Arc, time::Instant};

use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use uuid::Uuid;

use pdscore_actors::Pipeline;

use crate::{alerts::AlertFeed, auth::Auth, configuration::HealthSettings, messaging::Messaging};

/// Shared by every worker; cheap to clone (pools and clients are handles).
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub redis: crate::cache::Redis,
    pub messaging: Messaging,
    pub metrics: PrometheusHandle,
    pub health: Arc<HealthSettings>,
    /// Token keys, session store and sign-in throttle.
    pub auth: Arc<Auth>,
    /// The scoring pipeline (HTTP predictions submit here).
    pub pipeline: Pipeline,
    /// The models of tenants that chose none.
    pub default_models: Arc<pdscore_actors::DefaultModels>,
    /// Model versions uploaded and activated at run time, on every instance.
    pub deployment: crate::deployment::Deployment,
    pub drift: crate::validation::drift::DriftMonitor,
    /// Live alerts for the SSE stream.
    pub alerts: AlertFeed,
    /// The open live streams (caps, and how often they re-check their caller).
    pub live: Arc<crate::http::live_streams::LiveStreams>,
    /// Bulk jobs' progress, read once per job for all its live streams.
    pub job_progress: crate::http::job_progress::JobProgress,
    /// Cached portfolio answers; handlers that write companies invalidate their tenant's.
    pub portfolio: crate::cache::PortfolioCache,
    /// Companies by (organization, symbol) for the AccuNode scoring routes, which name the company by symbol
    /// on every request; dropped on the fleet's changes to the tenant's companies.
    pub company_symbols: Arc<crate::cache::LocalCache<(Uuid, String), crate::db::companies::Company>>,
    /// What `company_symbols` misses, looked up together with the other requests' and the NATS ingest's.
    pub company_lookups: crate::db::company_lookups::CompanyLookups,
    /// Announces changes that make the instances' copies stale (theirs and this one's).
    pub changes: crate::fleet::Changes,
    /// Bulk jobs: uploads' storage and the runner.
    pub bulk: crate::bulk::BulkRunner,
    /// For `uptime_seconds` in `/health`.
    pub started_at: Instant,
}

impl AppState {
    /// After a write to a tenant's companies: its cached portfolio answers, and every instance's copies of its
    /// companies, are stale.
    pub async fn companies_changed(&self, change: crate::fleet::Change) {
        if let Some(tenant_id) = change.tenant_id() {
            self.portfolio.invalidate(tenant_id).await;
        }
        self.changes.announce(change).await;
    }

    /// Drops this instance's kept copy of a company (renamed, deleted, or found gone by a commit).
    pub fn forget_company(&self, company_id: Uuid) {
        self.company_symbols
            .remove_where(move |_, cached| cached.id == company_id);
    }
}
