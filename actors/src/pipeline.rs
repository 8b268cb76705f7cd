//! The handle every ingest path holds: `submit` a filing, get its committed prediction or a typed refusal.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use actix::{Actor, Addr, Arbiter, MailboxError, Supervisor, WeakAddr, dev::SendError};
use pdscore_models::statement::ReportingPeriod;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::{
    config::PipelineConfig,
    error::{PipelineError, Rejected},
    events,
    filing::{Committed, Filing, Scores, Trailing},
    model_pool::{self, FaultInjector, ModelWorker, ScoreBatch, SharedRegistry},
    persist_writer::PersistWriter,
    policy::TenantPolicy,
    ports::{Admission, AlertSink, PredictionStore, SharedLimits},
    tenant_actor::{Pending, ScoreChunk, Submit, TenantActor, TenantDeps},
    tenant_router::{CountTenants, GetTenant, TenantRouter},
};

/// Tenant policies by id, with when each was read.
type PolicyCache = HashMap<Uuid, (Arc<TenantPolicy>, Instant)>;

/// The tenant actors handed out by the router, so that a filing goes straight to its tenant's actor instead
/// of asking the router first (a round trip to the pipeline's thread and back for every filing). Weak: the
/// router alone keeps an actor's address alive, so an actor that stopped is not kept by this table; its entry
/// is dropped on the next use, and entries of tenants not seen again are swept when the table has doubled.
#[derive(Default)]
struct KnownActors {
    actors: HashMap<Uuid, WeakAddr<TenantActor>>,
    /// The table's size that triggers the next sweep.
    sweep_at: usize,
}

impl KnownActors {
    const MIN_SWEEP: usize = 1024;

    /// The actor behind `actor`, while it runs and accepts messages.
    fn live(actor: &WeakAddr<TenantActor>) -> Option<Addr<TenantActor>> {
        actor.upgrade().filter(Addr::connected)
    }

    /// The tenant's actor, if it is known and still accepts messages.
    fn get(&self, tenant_id: Uuid) -> Option<Addr<TenantActor>> {
        self.actors.get(&tenant_id).and_then(Self::live)
    }

    fn insert(&mut self, tenant_id: Uuid, actor: &Addr<TenantActor>) {
        self.actors.insert(tenant_id, actor.downgrade());
        if self.actors.len() >= self.sweep_at.max(Self::MIN_SWEEP) {
            self.actors.retain(|_, actor| Self::live(actor).is_some());
            self.sweep_at = self.actors.len() * 2;
        }
    }

    /// Forgets `actor` as the tenant's (it refused a message: stopping or stopped).
    fn forget(&mut self, tenant_id: Uuid, actor: &Addr<TenantActor>) {
        if self.get(tenant_id).is_none_or(|known| known == *actor) {
            self.actors.remove(&tenant_id);
        }
    }
}

/// Cheap to clone; every ingest path holds one.
#[derive(Clone)]
pub struct Pipeline {
    router: Addr<TenantRouter>,
    actors: Arc<Mutex<KnownActors>>,
    store: Arc<dyn PredictionStore>,
    /// The fleet's rate limits (none: each tenant actor's own bucket).
    limits: Option<Arc<dyn SharedLimits>>,
    registry: Arc<SharedRegistry>,
    /// The model pool, for scoring without a commit ([`Pipeline::score_only`]).
    pool: Addr<ModelWorker>,
    faults: Arc<FaultInjector>,
    /// Tenant policies by id, with when they were read.
    policies: Arc<Mutex<PolicyCache>>,
    policy_ttl: Duration,
    /// The thread the router, tenant actors and persist writer run on, apart from the HTTP workers and
    /// ingest (kept alive with the pipeline).
    _arbiter: Arc<Arbiter>,
}

impl Pipeline {
    /// Starts the actors. Must run inside an actix system.
    pub fn start(
        config: PipelineConfig,
        registry: Arc<SharedRegistry>,
        store: Arc<dyn PredictionStore>,
        alerts: Arc<dyn AlertSink>,
        limits: Option<Arc<dyn SharedLimits>>,
    ) -> Self {
        let faults = Arc::new(FaultInjector::default());
        let pool = model_pool::start(config.model_workers, registry.clone(), faults.clone());
        let arbiter = Arc::new(Arbiter::new());
        let writer = PersistWriter::new(
            store.clone(),
            alerts,
            config.persist_max_in_flight,
            config.persist_max_rows,
        );
        let writer = PersistWriter::start_in_arbiter(&arbiter.handle(), move |_| writer);
        let deps = TenantDeps {
            config: config.clone(),
            pool: pool.clone(),
            writer,
            faults: faults.clone(),
        };
        let router = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| TenantRouter::new(deps));
        Self {
            router,
            actors: Arc::default(),
            store,
            limits,
            registry,
            pool,
            faults,
            policies: Arc::default(),
            policy_ttl: config.policy_ttl,
            _arbiter: arbiter,
        }
    }

    /// Scores and commits a filing. Returns once it is durable (or refused).
    pub async fn submit(&self, mut filing: Filing) -> Result<Committed, PipelineError> {
        let policy = self.policy(filing.tenant_id).await?;
        if !policy.active {
            return Err(PipelineError::TenantInactive);
        }
        let charged = self.charge(&policy, filing.source.as_str()).await?;
        self.attach_trailing(filing.tenant_id, std::slice::from_mut(&mut filing))
            .await?;
        // A tenant actor that fails drops the filings still in its mailbox (their replies with them): those
        // are submitted again, which the idempotent commit makes harmless even if one was in fact scored.
        let mut attempts = 0;
        loop {
            let answer = self.send_to_tenant(filing.clone(), &policy, charged).await?;
            match answer.await {
                Ok(result) => return result,
                Err(_) if attempts < 3 => {
                    attempts += 1;
                    tracing::warn!(
                        attempts,
                        "a filing was dropped by a failed tenant actor; submitting it again"
                    );
                }
                Err(_) => return Err(PipelineError::Unavailable("the pipeline stopped".into())),
            }
        }
    }

    /// Scores and commits a chunk of one tenant's bulk job as one batch (see [`ScoreChunk`]); each filing's
    /// outcome in input order. Refusals that are not the filing's fault (`Unavailable`) are the caller's to
    /// retry; the idempotent commit makes that harmless.
    pub async fn score_chunk(
        &self,
        tenant_id: Uuid,
        mut filings: Vec<Filing>,
    ) -> Result<Vec<Result<Committed, PipelineError>>, PipelineError> {
        let policy = self.policy(tenant_id).await?;
        if !policy.active {
            return Err(PipelineError::TenantInactive);
        }
        self.attach_trailing(tenant_id, &mut filings).await?;
        let (pending, answers): (Vec<Pending>, Vec<_>) = filings
            .into_iter()
            .map(|filing| {
                let (reply, answer) = oneshot::channel();
                (Pending { filing, reply }, answer)
            })
            .unzip();
        let actor = self.tenant_actor(&policy).await?;
        actor
            .send(ScoreChunk { policy, pending })
            .await
            .map_err(|e| PipelineError::Unavailable(format!("tenant actor unavailable: {e}")))?;
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            results.push(
                answer
                    .await
                    .unwrap_or_else(|_| Err(PipelineError::Unavailable("the batch was dropped".into()))),
            );
        }
        Ok(results)
    }

    /// Scores filings without committing them (a replay of stored filings with another model: its caller
    /// stores the scores): each filing's scores or refusal, in input order. Straight to the model pool, like a
    /// tenant actor's batch, retried once if its worker fails.
    pub async fn score_only(
        &self,
        tenant_id: Uuid,
        mut filings: Vec<Filing>,
    ) -> Result<Vec<Result<Scores, Rejected>>, PipelineError> {
        let policy = self.policy(tenant_id).await?;
        if !policy.active {
            return Err(PipelineError::TenantInactive);
        }
        self.attach_trailing(tenant_id, &mut filings).await?;
        let mut retried = false;
        loop {
            let batch = ScoreBatch {
                policy: policy.clone(),
                filings,
            };
            match self.pool.send(batch).await {
                Ok(Ok(scores)) => return Ok(scores),
                Ok(Err(failed)) if !retried => {
                    retried = true;
                    filings = failed.filings;
                }
                Ok(Err(failed)) => return Err(PipelineError::Unavailable(failed.reason)),
                Err(e) => {
                    return Err(PipelineError::Unavailable(format!(
                        "the model pool is unavailable: {e}"
                    )));
                }
            }
        }
    }

    /// Takes the filing's token from the fleet's shared bucket: `true` when taken, `false` when there is no
    /// shared bucket or it cannot be reached (the tenant actor's own bucket decides), a refusal when empty.
    async fn charge(&self, policy: &TenantPolicy, source: &'static str) -> Result<bool, PipelineError> {
        let Some(limits) = &self.limits else {
            return Ok(false);
        };
        match limits
            .take(policy.tenant_id, policy.rate_per_second, policy.burst)
            .await
        {
            Ok(Admission::Admitted) => Ok(true),
            Ok(Admission::Wait(retry_after)) => {
                let tenant = &policy.slug;
                events::FilingsReceived {
                    tenant,
                    source,
                    count: 1,
                }
                .emit();
                events::TenantRateLimited { tenant, source }.emit();
                Err(PipelineError::RateLimited { retry_after })
            }
            Err(error) => {
                events::SharedLimitsUnavailable { error: &error }.emit();
                Ok(false)
            }
        }
    }

    /// Gives each quarterly statement that wants it ([`Filing::wants_trailing`]) its trailing twelve months,
    /// when the store has the three quarters before it (one read for all of `filings`). Filings of one
    /// batch do not see each other: a quarter counts once it is committed.
    async fn attach_trailing(&self, tenant_id: Uuid, filings: &mut [Filing]) -> Result<(), PipelineError> {
        let wanted: Vec<(usize, [ReportingPeriod; 3])> = filings
            .iter()
            .enumerate()
            .filter(|(_, f)| f.wants_trailing())
            .filter_map(|(i, f)| Some((i, f.content.period.previous_quarters(3)?.try_into().ok()?)))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let requests = wanted
            .iter()
            .map(|(i, _)| (filings[*i].company_id, filings[*i].content.period))
            .collect();
        let found = self
            .store
            .previous_quarters(tenant_id, requests)
            .await
            .map_err(|e| PipelineError::Unavailable(e.to_string()))?;
        for ((i, [a, b, c]), earlier) in wanted.into_iter().zip(found) {
            let filing = &mut filings[i];
            if let (Some([sa, sb, sc]), Some(own)) = (earlier, filing.content.statement.clone()) {
                filing.trailing = Some(Arc::new(Trailing::of(
                    [a, b, c, filing.content.period],
                    &[sa, sb, sc, own],
                )));
            }
        }
        Ok(())
    }

    /// Hands a filing to its tenant actor; the receiver gets its outcome.
    async fn send_to_tenant(
        &self,
        filing: Filing,
        policy: &Arc<TenantPolicy>,
        charged: bool,
    ) -> Result<oneshot::Receiver<Result<Committed, PipelineError>>, PipelineError> {
        let (reply, answer) = oneshot::channel();
        let mut submit = Submit {
            filing,
            policy: policy.clone(),
            charged,
            reply,
        };
        // A tenant actor that just stopped (idle) refuses with Closed: ask the router again.
        let mut attempts = 0;
        loop {
            let actor = self.tenant_actor(policy).await?;
            match actor.try_send(submit) {
                Ok(()) => return Ok(answer),
                Err(SendError::Full(_)) => {
                    return Err(PipelineError::Overloaded {
                        retry_after: Duration::from_secs(1),
                    });
                }
                Err(SendError::Closed(returned)) if attempts < 5 => {
                    self.lock_actors().forget(policy.tenant_id, &actor);
                    submit = returned;
                    attempts += 1;
                    tokio::task::yield_now().await;
                }
                Err(SendError::Closed(_)) => {
                    return Err(PipelineError::Unavailable("the tenant actor is not available".into()));
                }
            }
        }
    }

    /// The tenant's actor: the one last handed out while it accepts messages, else the router's (which starts
    /// one if needed).
    async fn tenant_actor(&self, policy: &Arc<TenantPolicy>) -> Result<Addr<TenantActor>, PipelineError> {
        if let Some(actor) = self.lock_actors().get(policy.tenant_id) {
            return Ok(actor);
        }
        let actor = self
            .router
            .send(GetTenant { policy: policy.clone() })
            .await
            .map_err(unavailable)?;
        self.lock_actors().insert(policy.tenant_id, &actor);
        Ok(actor)
    }

    /// The tenant's policy, read from the store at most every `policy_ttl`.
    pub async fn policy(&self, tenant_id: Uuid) -> Result<Arc<TenantPolicy>, PipelineError> {
        if let Some((policy, read_at)) = self.lock_policies().get(&tenant_id)
            && read_at.elapsed() < self.policy_ttl
        {
            return Ok(policy.clone());
        }
        let fresh = self
            .store
            .tenant_policy(tenant_id)
            .await
            .map_err(|e| PipelineError::Unavailable(e.to_string()))?
            .ok_or(PipelineError::UnknownTenant)?;
        let mut policies = self.lock_policies();
        // Keep the same Arc when nothing changed, so the tenant actor does not reconfigure its bucket.
        let policy = match policies.get(&tenant_id) {
            Some((old, _)) if **old == fresh => old.clone(),
            _ => Arc::new(fresh),
        };
        policies.insert(tenant_id, (policy.clone(), Instant::now()));
        Ok(policy)
    }

    /// Forgets a tenant's cached policy (after an administrator changed it); `None`: every tenant's.
    pub fn invalidate_policy(&self, tenant_id: Option<Uuid>) {
        let mut policies = self.lock_policies();
        match tenant_id {
            Some(tenant_id) => {
                policies.remove(&tenant_id);
            }
            None => policies.clear(),
        }
    }

    pub fn registry(&self) -> &Arc<SharedRegistry> {
        &self.registry
    }

    /// Failure injection for chaos drills and supervision tests.
    pub fn faults(&self) -> &Arc<FaultInjector> {
        &self.faults
    }

    /// Tenant actors running now.
    pub async fn tenant_actors(&self) -> Result<usize, PipelineError> {
        self.router.send(CountTenants).await.map_err(unavailable)
    }

    fn lock_actors(&self) -> std::sync::MutexGuard<'_, KnownActors> {
        self.actors.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_policies(&self) -> std::sync::MutexGuard<'_, PolicyCache> {
        self.policies.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn unavailable(e: MailboxError) -> PipelineError {
    PipelineError::Unavailable(format!("tenant router unavailable: {e}"))
}
