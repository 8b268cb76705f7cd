//! `TenantActor`: owns one tenant's admission (token bucket, bounded queue) and its micro-batches.
//!
//! A filing is admitted if the tenant's bucket has a token (the fleet's shared bucket, taken before the filing
//! is sent here, or this actor's own when that one is out of reach) and its queue has room; otherwise it is refused
//! at once (429 / Nak with delay) so one tenant's flood never sits in front of another tenant's filings.
//! Admitted filings are dispatched in micro-batches to the model pool and then to the persist writer; a
//! batch runs detached from the actor, so a failing actor never loses a batch in progress, and what was
//! still queued is handed to the router, which restarts the actor with it.

use std::{
    collections::VecDeque,
    sync::Arc,
    time::{Duration, Instant},
};

use actix::{
    Actor, ActorContext, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, Recipient, WrapFuture,
};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::{
    config::PipelineConfig,
    error::PipelineError,
    error::{RejectCode, Rejected},
    events,
    filing::{Committed, Filing},
    model_pool::{FaultInjector, ModelWorker, ScoreBatch},
    persist_writer::{Persist, PersistWriter},
    policy::{TenantPolicy, TokenBucket},
    ports::{CommitResult, StoreError},
};

/// A tenant actor stopped: idle (forget it) or failed (restart it with what it had queued).
#[derive(Message)]
#[rtype(result = "()")]
pub struct TenantStopped {
    pub tenant_id: Uuid,
    pub actor: Addr<TenantActor>,
    pub policy: Arc<TenantPolicy>,
    pub failed: bool,
    pub pending: Vec<Pending>,
}

/// Where a filing's outcome is sent.
pub type Reply = oneshot::Sender<Result<Committed, PipelineError>>;

/// An admitted filing waiting for its batch.
pub struct Pending {
    pub filing: Filing,
    pub reply: Reply,
}

/// Admit a filing (answered through `reply`, since admission uses `try_send`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Submit {
    pub filing: Filing,
    /// The tenant's policy as the submitter last read it (the actor adopts newer limits from it).
    pub policy: Arc<TenantPolicy>,
    /// Already charged to the fleet's shared bucket ([`crate::ports::SharedLimits`]); otherwise this actor's
    /// own bucket decides.
    pub charged: bool,
    pub reply: Reply,
}

/// Filings admitted by a predecessor that failed: queued again without charging the bucket.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Resume {
    pub pending: Vec<Pending>,
}

/// A chunk of a bulk job: scored and committed as one batch, at once. Bulk jobs are paced by how many
/// chunks they keep in flight, not by the tenant's per-filing rate limit, and a chunk never waits behind
/// the tenant's queue (nor fills it).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ScoreChunk {
    pub policy: Arc<TenantPolicy>,
    pub pending: Vec<Pending>,
}

/// What a tenant actor needs from the pipeline.
#[derive(Clone)]
pub struct TenantDeps {
    pub config: PipelineConfig,
    pub pool: Addr<ModelWorker>,
    pub writer: Addr<PersistWriter>,
    pub faults: Arc<FaultInjector>,
}

pub struct TenantActor {
    tenant_id: Uuid,
    policy: Arc<TenantPolicy>,
    bucket: TokenBucket,
    queue: VecDeque<Pending>,
    /// Batches between the model pool and the commit; at most `max_batches_in_flight`.
    batches_in_flight: usize,
    /// Filings in those batches (they count against the queue bound until answered).
    filings_in_flight: usize,
    last_active: Instant,
    failed: bool,
    /// What this actor last reported of its depth.
    depth_gauge: events::TenantQueueDepth,
    deps: TenantDeps,
    /// Told when this actor stops (the router: it forgets an idle actor and restarts a failed one).
    supervisor: Recipient<TenantStopped>,
}

impl TenantActor {
    pub fn new(policy: Arc<TenantPolicy>, deps: TenantDeps, supervisor: Recipient<TenantStopped>) -> Self {
        let now = Instant::now();
        Self {
            tenant_id: policy.tenant_id,
            bucket: TokenBucket::new(policy.rate_per_second, policy.burst, now),
            policy,
            queue: VecDeque::new(),
            batches_in_flight: 0,
            filings_in_flight: 0,
            last_active: now,
            failed: false,
            depth_gauge: Default::default(),
            deps,
            supervisor,
        }
    }

    fn depth(&self) -> usize {
        self.queue.len() + self.filings_in_flight
    }

    fn report_depth(&mut self) {
        let depth = self.depth();
        self.depth_gauge.report(&self.policy.slug, depth);
    }

    /// Sends queued filings to the model pool, a micro-batch per free slot.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        while self
            .deps
            .config
            .may_start_batch(self.batches_in_flight, self.queue.len())
        {
            let take = self.queue.len().min(self.deps.config.max_batch);
            let batch: Vec<Pending> = self.queue.drain(..take).collect();
            self.run_batch(ctx, self.policy.clone(), batch);
        }
        self.report_depth();
    }

    /// Scores and commits a batch detached from the actor, counting it in flight until it is answered.
    fn run_batch(&mut self, ctx: &mut Context<Self>, policy: Arc<TenantPolicy>, batch: Vec<Pending>) {
        let size = batch.len();
        self.batches_in_flight += 1;
        self.filings_in_flight += size;
        let work = actix::spawn(process_batch(
            self.deps.pool.clone(),
            self.deps.writer.clone(),
            policy,
            batch,
        ));
        ctx.spawn(work.into_actor(self).map(move |_, actor, ctx| {
            actor.batches_in_flight -= 1;
            actor.filings_in_flight -= size;
            actor.last_active = Instant::now();
            actor.report_depth();
            actor.dispatch(ctx);
        }));
    }

    fn fail(&mut self, ctx: &mut Context<Self>, reason: &str) {
        tracing::error!(tenant_id = %self.tenant_id, reason, queued = self.queue.len(), "tenant actor failed");
        self.failed = true;
        ctx.stop();
    }
}

impl Actor for TenantActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(self.deps.config.mailbox_capacity);
        let check = (self.deps.config.idle_timeout / 4).max(Duration::from_millis(50));
        ctx.run_interval(check, |actor, ctx| {
            let idle = actor.queue.is_empty()
                && actor.batches_in_flight == 0
                && actor.last_active.elapsed() >= actor.deps.config.idle_timeout;
            if idle {
                tracing::debug!(tenant_id = %actor.tenant_id, "tenant actor idle; stopping");
                ctx.stop();
            }
        });
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        self.depth_gauge.report(&self.policy.slug, 0);
        self.supervisor.do_send(TenantStopped {
            tenant_id: self.tenant_id,
            actor: ctx.address(),
            policy: self.policy.clone(),
            failed: self.failed,
            pending: self.queue.drain(..).collect(),
        });
    }
}

impl Handler<Submit> for TenantActor {
    type Result = ();

    fn handle(&mut self, submit: Submit, ctx: &mut Self::Context) {
        let now = Instant::now();
        self.last_active = now;
        let slug = self.policy.slug.clone();
        let source = submit.filing.source.as_str();
        events::FilingsReceived {
            tenant: &slug,
            source,
            count: 1,
        }
        .emit();
        if !Arc::ptr_eq(&self.policy, &submit.policy) {
            self.bucket
                .reconfigure(submit.policy.rate_per_second, submit.policy.burst, now);
            self.policy = submit.policy;
        }
        if self.depth() >= self.deps.config.max_queued_per_tenant {
            events::TenantOverloaded { tenant: &slug, source }.emit();
            let _ = submit.reply.send(Err(PipelineError::Overloaded {
                retry_after: Duration::from_secs(1),
            }));
            return;
        }
        if !submit.charged
            && let Err(wait) = self.bucket.try_take(now)
        {
            events::TenantRateLimited { tenant: &slug, source }.emit();
            let _ = submit.reply.send(Err(PipelineError::RateLimited { retry_after: wait }));
            return;
        }
        self.queue.push_back(Pending {
            filing: submit.filing,
            reply: submit.reply,
        });
        if self.deps.faults.take_tenant_actor() {
            return self.fail(ctx, "injected failure");
        }
        self.dispatch(ctx);
    }
}

impl Handler<ScoreChunk> for TenantActor {
    type Result = ();

    fn handle(&mut self, chunk: ScoreChunk, ctx: &mut Self::Context) {
        self.last_active = Instant::now();
        events::FilingsReceived {
            tenant: &self.policy.slug,
            source: "bulk",
            count: chunk.pending.len() as u64,
        }
        .emit();
        self.run_batch(ctx, chunk.policy, chunk.pending);
    }
}

impl Handler<Resume> for TenantActor {
    type Result = ();

    fn handle(&mut self, resume: Resume, ctx: &mut Self::Context) {
        self.last_active = Instant::now();
        self.queue.extend(resume.pending);
        self.dispatch(ctx);
    }
}

/// Scores a batch (retrying once on a fresh worker if its worker fails), commits it, and answers each
/// filing. Runs detached from the actor.
async fn process_batch(
    pool: Addr<ModelWorker>,
    writer: Addr<PersistWriter>,
    policy: Arc<TenantPolicy>,
    batch: Vec<Pending>,
) {
    let (mut filings, replies): (Vec<Filing>, Vec<Reply>) = batch.into_iter().map(|p| (p.filing, p.reply)).unzip();
    let received: Vec<(Instant, &'static str)> = filings.iter().map(|f| (f.received_at, f.source.as_str())).collect();
    const ATTEMPTS: usize = 3;
    let mut attempt = 1;
    let scored = loop {
        let sent = pool
            .send(ScoreBatch {
                policy: policy.clone(),
                filings,
            })
            .await;
        match sent {
            Ok(Ok(scored)) => break scored,
            Ok(Err(failed)) if attempt < ATTEMPTS => {
                tracing::warn!(reason = %failed.reason, attempt, "retrying a batch after a model worker failure");
                filings = failed.filings;
                attempt += 1;
            }
            Ok(Err(failed)) => return refuse_all(replies, &format!("model worker failed: {}", failed.reason)),
            Err(e) => return refuse_all(replies, &format!("model pool unavailable: {e}")),
        }
    };

    let mut rows = Vec::with_capacity(scored.len());
    let mut waiting = Vec::with_capacity(scored.len());
    for ((result, reply), timing) in scored.into_iter().zip(replies).zip(received) {
        match result {
            Ok(scores) => {
                rows.push(scores);
                waiting.push((reply, timing));
            }
            Err(rejected) => {
                events::FilingRejected {
                    source: timing.1,
                    code: rejected.code,
                }
                .emit();
                let _ = reply.send(Err(PipelineError::Rejected(rejected)));
            }
        }
    }
    if rows.is_empty() {
        return;
    }
    let outcomes = match writer.send(Persist { rows }).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            let error = PipelineError::Unavailable(format!("persist writer unavailable: {e}"));
            for (reply, _) in waiting {
                let _ = reply.send(Err(error.clone()));
            }
            return;
        }
    };
    for ((reply, (received_at, source)), outcome) in waiting.into_iter().zip(outcomes) {
        events::FilingAnswered {
            source,
            elapsed: received_at.elapsed(),
        }
        .emit();
        let _ = reply.send(match outcome {
            Ok(CommitResult::Committed(committed)) => Ok(*committed),
            Ok(CommitResult::CompanyGone) => Err(PipelineError::Rejected(Rejected::new(
                RejectCode::NotFound,
                "the company no longer exists",
            ))),
            Ok(CommitResult::KeyReused(key)) => Err(PipelineError::Rejected(Rejected {
                code: RejectCode::Conflict,
                message: format!(
                    "filing_id {key:?} was used before for another filing (company, period or content); \
                     a key names one filing"
                ),
                field: Some("filing_id".into()),
            })),
            Err(StoreError::Refused(reason)) => Err(PipelineError::Rejected(Rejected::new(
                RejectCode::UnstorableFiling,
                format!("the filing cannot be stored: {reason}"),
            ))),
            Err(e @ StoreError::Unavailable(_)) => Err(PipelineError::Unavailable(e.to_string())),
        });
    }
}

fn refuse_all(replies: Vec<Reply>, reason: &str) {
    tracing::error!(reason, filings = replies.len(), "batch refused");
    for reply in replies {
        let _ = reply.send(Err(PipelineError::Unavailable(reason.to_owned())));
    }
}
