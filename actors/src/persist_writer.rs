//! `PersistWriter`: owns the writes of scored filings, batching them into one transaction.
//!
//! Batching is natural: when a transaction slot is free, whatever is waiting is committed at once (low
//! latency when quiet); while every slot is busy, arrivals accumulate and go together in the next
//! transaction (throughput under load), up to `max_rows`. Each sender is answered after the commit, so
//! the ingest path acknowledges only what is durable. Alerts of the commit then go to the [`AlertSink`].
//!
//! A commit locks its companies (see [`PredictionStore::commit`]), so two transactions over the same
//! company run one after the other in the database anyway. The writer therefore never starts a transaction
//! over a company that one in progress holds: such rows wait — with every later row of the same companies,
//! so that each company's rows keep their order — and go together in the next transaction once the company
//! is free (group commit), while rows of other companies use the free slots. With one tenant's filings over
//! 100 companies and 8 batches in flight per tenant, this took NATS ingest from 2,578 to 3,300–3,740
//! filings/s (`pdscore load nats`; BENCHMARKS.md).

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
};

use uuid::Uuid;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseFuture, WrapFuture};
use tokio::sync::oneshot;

use crate::{
    filing::{Committed, Scores},
    ports::{AlertSink, CommitResult, PredictionStore, StoreError},
};

/// Write these scored filings; answered once they are committed (results in input order).
#[derive(Message)]
#[rtype(result = "Result<Vec<CommitResult>, StoreError>")]
pub struct Persist {
    pub rows: Vec<Scores>,
}

type Reply = oneshot::Sender<Result<Vec<CommitResult>, StoreError>>;

pub struct PersistWriter {
    store: Arc<dyn PredictionStore>,
    alerts: Arc<dyn AlertSink>,
    /// Waiting for a transaction slot: each sender's rows and where to answer.
    waiting: VecDeque<(Vec<Scores>, Reply)>,
    waiting_rows: usize,
    /// Transactions in progress, at most `max_in_flight` (a share of the database pool).
    in_flight: usize,
    max_in_flight: usize,
    /// Rows per transaction at most.
    max_rows: usize,
    /// The companies (tenant, company) of the transactions in progress, with how many hold each.
    locked: HashMap<Company, usize>,
}

type Company = (Uuid, Uuid);

fn companies(rows: &[Scores]) -> impl Iterator<Item = Company> + '_ {
    rows.iter().map(|s| (s.filing.tenant_id, s.filing.company_id))
}

impl PersistWriter {
    pub fn new(
        store: Arc<dyn PredictionStore>,
        alerts: Arc<dyn AlertSink>,
        max_in_flight: usize,
        max_rows: usize,
    ) -> Self {
        Self {
            store,
            alerts,
            waiting: VecDeque::new(),
            waiting_rows: 0,
            in_flight: 0,
            max_in_flight: max_in_flight.max(1),
            max_rows: max_rows.max(1),
            locked: HashMap::new(),
        }
    }

    /// The next transaction: waiting batches, in order, whose companies no transaction in progress holds
    /// and that no earlier waiting batch shares (up to `max_rows`). The others stay waiting, in order.
    fn next_transaction(&mut self) -> (Vec<(usize, Reply)>, Vec<Scores>) {
        let mut senders = Vec::new();
        let mut rows = Vec::new();
        // Companies a batch must not touch to go now: held, or waiting behind a held one.
        let mut blocked: HashSet<Company> = HashSet::new();
        let mut kept = VecDeque::with_capacity(self.waiting.len());
        while let Some((batch, reply)) = self.waiting.pop_front() {
            let full = !rows.is_empty() && rows.len() + batch.len() > self.max_rows;
            let free = !full && companies(&batch).all(|c| !self.locked.contains_key(&c) && !blocked.contains(&c));
            if free {
                senders.push((batch.len(), reply));
                rows.extend(batch);
            } else {
                blocked.extend(companies(&batch));
                kept.push_back((batch, reply));
            }
        }
        self.waiting = kept;
        (senders, rows)
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        while self.in_flight < self.max_in_flight && !self.waiting.is_empty() {
            let (senders, rows) = self.next_transaction();
            if rows.is_empty() {
                // Everything waiting is over companies in progress.
                break;
            }
            let held: Vec<Company> = companies(&rows).collect::<HashSet<_>>().into_iter().collect();
            for company in &held {
                *self.locked.entry(*company).or_default() += 1;
            }
            self.waiting_rows -= rows.len();
            self.in_flight += 1;
            metrics::histogram!("pdscore_persist_batch_rows").record(rows.len() as f64);
            let store = self.store.clone();
            let alerts = self.alerts.clone();
            let commit = async move {
                let started = std::time::Instant::now();
                let result = store.commit(rows).await;
                metrics::histogram!("pdscore_persist_commit_seconds").record(started.elapsed().as_secs_f64());
                if let Ok(results) = &result {
                    let raised: Vec<_> = results
                        .iter()
                        .filter_map(|r| match r {
                            CommitResult::Committed(committed) => match &**committed {
                                Committed::Created { stored, .. } => stored.alert.clone(),
                                _ => None,
                            },
                            CommitResult::CompanyGone => None,
                        })
                        .collect();
                    if !raised.is_empty() {
                        actix::spawn(alerts.publish(raised));
                    }
                }
                answer(senders, result);
            };
            ctx.spawn(commit.into_actor(self).map(move |_, writer, ctx| {
                writer.in_flight -= 1;
                for company in held {
                    if let Some(n) = writer.locked.get_mut(&company) {
                        *n -= 1;
                        if *n == 0 {
                            writer.locked.remove(&company);
                        }
                    }
                }
                writer.flush(ctx);
            }));
        }
        metrics::gauge!("pdscore_persist_waiting_rows").set(self.waiting_rows as f64);
    }
}

/// Splits a commit's results back to its senders.
fn answer(senders: Vec<(usize, Reply)>, result: Result<Vec<CommitResult>, StoreError>) {
    match result {
        Ok(results) => {
            let mut results = results.into_iter();
            for (len, reply) in senders {
                let _ = reply.send(Ok(results.by_ref().take(len).collect()));
            }
        }
        Err(error) => {
            tracing::warn!(%error, "commit failed; the batch's filings are refused for retry");
            for (_, reply) in senders {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

impl Actor for PersistWriter {
    type Context = Context<Self>;
}

impl Handler<Persist> for PersistWriter {
    type Result = ResponseFuture<Result<Vec<CommitResult>, StoreError>>;

    fn handle(&mut self, persist: Persist, ctx: &mut Self::Context) -> Self::Result {
        let (reply, answer) = oneshot::channel();
        self.waiting_rows += persist.rows.len();
        self.waiting.push_back((persist.rows, reply));
        self.flush(ctx);
        Box::pin(async move {
            answer
                .await
                .unwrap_or_else(|_| Err(StoreError("the persist writer stopped before the commit".into())))
        })
    }
}
