//! `ModelPool`: the `SyncArbiter` workers that own model scoring, off the async arbiters.
//!
//! Every worker reads the same [`SharedRegistry`], which can be swapped for a freshly loaded one without a
//! restart (a batch in progress finishes on the registry it started with). A worker that fails (a panic in a
//! model) is rebuilt in place and the batch goes back to its sender, which retries it: no filing is lost.

use std::{
    panic::AssertUnwindSafe,
    sync::{
        Arc, RwLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use actix::{Actor, Addr, Handler, Message, SyncArbiter, SyncContext};
use pdscore_models::registry::Registry;

use crate::{
    error::Rejected,
    events,
    filing::{Filing, Scores},
    policy::TenantPolicy,
    scoring,
};

/// The registry every worker scores with; replaced as a whole on reload.
#[derive(Debug)]
pub struct SharedRegistry(RwLock<Arc<Registry>>);

impl SharedRegistry {
    pub fn new(registry: Registry) -> Self {
        Self(RwLock::new(Arc::new(registry)))
    }

    pub fn current(&self) -> Arc<Registry> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts a new registry in place; batches already started keep the old one.
    pub fn replace(&self, registry: Registry) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(registry);
    }
}

/// Failures to inject, for chaos drills and the supervision tests: each count is consumed by the next
/// matching actor.
#[derive(Debug, Default)]
pub struct FaultInjector {
    model_worker: AtomicUsize,
    tenant_actor: AtomicUsize,
}

impl FaultInjector {
    /// The next `n` batches make their model worker fail.
    pub fn fail_model_workers(&self, n: usize) {
        self.model_worker.fetch_add(n, Ordering::SeqCst);
    }

    /// The next `n` filings make their tenant actor fail.
    pub fn fail_tenant_actors(&self, n: usize) {
        self.tenant_actor.fetch_add(n, Ordering::SeqCst);
    }

    pub(crate) fn take_model_worker(&self) -> bool {
        take(&self.model_worker)
    }

    pub(crate) fn take_tenant_actor(&self) -> bool {
        take(&self.tenant_actor)
    }
}

fn take(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// Score one tenant's micro-batch.
#[derive(Message)]
#[rtype(result = "Result<Vec<Result<Scores, Rejected>>, WorkerFailed>")]
pub struct ScoreBatch {
    pub policy: Arc<TenantPolicy>,
    pub filings: Vec<Filing>,
}

/// The worker failed while scoring; the filings come back untouched so the sender can retry them.
#[derive(Debug)]
pub struct WorkerFailed {
    pub filings: Vec<Filing>,
    pub reason: String,
}

/// One worker thread of the pool.
pub struct ModelWorker {
    registry: Arc<SharedRegistry>,
    faults: Arc<FaultInjector>,
}

impl Actor for ModelWorker {
    type Context = SyncContext<Self>;
}

impl Handler<ScoreBatch> for ModelWorker {
    type Result = Result<Vec<Result<Scores, Rejected>>, WorkerFailed>;

    fn handle(&mut self, batch: ScoreBatch, _: &mut Self::Context) -> Self::Result {
        let registry = self.registry.current();
        let inject = self.faults.take_model_worker();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            if inject {
                panic!("injected model worker failure");
            }
            scoring::score_rows(&registry, &batch.policy, &batch.filings)
        }));
        match outcome {
            Ok(scores) => Ok(scoring::attach(&batch.policy, batch.filings, scores)),
            Err(panic) => {
                let reason = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                events::ModelWorkerFailed {
                    reason: &reason,
                    filings: batch.filings.len(),
                }
                .emit();
                // Whatever state the panic left behind is dropped: the worker starts over.
                *self = ModelWorker {
                    registry: self.registry.clone(),
                    faults: self.faults.clone(),
                };
                Err(WorkerFailed {
                    filings: batch.filings,
                    reason,
                })
            }
        }
    }
}

/// Starts `threads` workers.
pub fn start(threads: usize, registry: Arc<SharedRegistry>, faults: Arc<FaultInjector>) -> Addr<ModelWorker> {
    SyncArbiter::start(threads.max(1), move || ModelWorker {
        registry: registry.clone(),
        faults: faults.clone(),
    })
}
