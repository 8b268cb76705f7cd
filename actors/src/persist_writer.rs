//! `PersistWriter`: owns the writes of scored filings, batching them into one transaction.
//!
//! Batching is natural: when a transaction slot is free, whatever is waiting is committed at once (low
//! latency when quiet); while every slot is busy, arrivals accumulate and go together in the next
//! transaction (throughput under load), up to `max_rows`. Each filing is answered after the commit that
//! wrote it, so the ingest path acknowledges only what is durable. Alerts of the commit then go to the
//! [`AlertSink`].
//!
//! A commit locks its companies (see [`PredictionStore::commit`]), so two transactions over the same
//! company run one after the other in the database anyway. The writer therefore never starts a transaction
//! over a company that one in progress holds: such a filing waits — with every later filing of the same
//! company, so that each company's filings keep their order — and goes in a later transaction once the
//! company is free (group commit). This is decided filing by filing, not batch by batch: the filings of a
//! batch whose companies are free go at once, in parallel with the transaction holding the others, and the
//! batch's sender is answered, filing by filing, once the last of them is committed. With one tenant's filings
//! spread over 100 companies, consecutive batches share most of their companies; whole batches then
//! committed one after the other (`pdscore-load nats`; BENCHMARKS.md).
//!
//! So when more filings wait than one transaction takes (a backlog), companies are dealt into lanes, one per
//! transaction slot (by company id), and a transaction takes the filings of one lane only: it never holds every
//! company waiting, so however few companies a tenant's filings are spread over, the slots commit in parallel
//! (with 100 companies, four transactions of about 25 companies each instead of one of 100 while the others
//! wait for its companies). Without a backlog one transaction takes everything that can go: splitting it
//! would only make more, smaller transactions (measured on HTTP scoring at 64 clients, where each company has
//! one filing in flight: 30–40 % more CPU per filing with lanes always on).
//!
//! A filing fails alone. When the store refuses a transaction for what it was given
//! ([`StoreError::Refused`]: a value it cannot hold), the culprit is not known, so each filing of it goes
//! again in a transaction of its own: the others are committed, and only the culprit is refused (the ingest
//! path then dead-letters it, answers 422 or fails its bulk row). A store that is unavailable refuses the
//! whole transaction for retry, as splitting it would fail the same way.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
};

use uuid::Uuid;

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, ResponseFuture, WrapFuture};
use tokio::sync::oneshot;

use crate::{
    events,
    filing::{Committed, Scores},
    ports::{AlertSink, CommitResult, PredictionStore, StoreError},
};

/// Write these scored filings; answered once each is committed (or failed), in input order.
#[derive(Message)]
#[rtype(result = "Vec<Result<CommitResult, StoreError>>")]
pub struct Persist {
    pub rows: Vec<Scores>,
}

type Outcome = Result<CommitResult, StoreError>;
type Reply = oneshot::Sender<Vec<Outcome>>;

/// A `Persist` being answered: its filings' outcomes so far.
struct Sender {
    outcomes: Vec<Option<Outcome>>,
    remaining: usize,
    reply: Reply,
}

/// A filing waiting for a transaction, and where its outcome goes (sender, index in its batch).
struct Row {
    sender: u64,
    index: usize,
    scores: Scores,
    /// In a transaction the store refused: it goes in a transaction of its own.
    alone: bool,
}

pub struct PersistWriter {
    store: Arc<dyn PredictionStore>,
    alerts: Arc<dyn AlertSink>,
    senders: HashMap<u64, Sender>,
    next_sender: u64,
    /// Filings waiting for a transaction, in arrival order.
    waiting: VecDeque<Row>,
    /// Transactions in progress, at most `max_in_flight` (a share of the database pool).
    in_flight: usize,
    max_in_flight: usize,
    /// Rows per transaction at most.
    max_rows: usize,
    /// The companies (tenant, company) of the transactions in progress, with how many hold each.
    locked: HashMap<Company, usize>,
}

/// The lane of a company, of `lanes` (see the module's documentation): from its id's last bits, which are
/// random in UUIDv4 and UUIDv7 alike.
fn lane(company: &Company, lanes: usize) -> usize {
    (company.1.as_u128() as u64 % lanes as u64) as usize
}

type Company = (Uuid, Uuid);

fn company(scores: &Scores) -> Company {
    (scores.filing.tenant_id, scores.filing.company_id)
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
            senders: HashMap::new(),
            next_sender: 0,
            waiting: VecDeque::new(),
            in_flight: 0,
            max_in_flight: max_in_flight.max(1),
            max_rows: max_rows.max(1),
            locked: HashMap::new(),
        }
    }

    /// The next transaction: waiting filings, in order, whose company no transaction in progress holds and no
    /// earlier waiting filing is held back on — under a backlog, only those of the lane of the first that can
    /// go (up to `max_rows`; a filing to go alone only as the first, and then alone). The others stay waiting,
    /// in order.
    fn next_transaction(&mut self) -> Vec<Row> {
        let mut taken: Vec<Row> = Vec::new();
        let mut taken_lane = None;
        // Companies a filing must not touch to go now: held, or waiting behind a held one.
        let mut blocked: HashSet<Company> = HashSet::new();
        let mut kept = VecDeque::with_capacity(self.waiting.len());
        let lanes = if self.waiting.len() > self.max_rows {
            self.max_in_flight
        } else {
            1
        };
        while let Some(row) = self.waiting.pop_front() {
            let company = company(&row.scores);
            let lane = lane(&company, lanes);
            let room = match taken.first() {
                None => true,
                Some(first) => !first.alone && !row.alone && taken.len() < self.max_rows && taken_lane == Some(lane),
            };
            if room && !self.locked.contains_key(&company) && !blocked.contains(&company) {
                taken_lane = Some(lane);
                taken.push(row);
            } else {
                blocked.insert(company);
                kept.push_back(row);
            }
        }
        self.waiting = kept;
        taken
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        while self.in_flight < self.max_in_flight && !self.waiting.is_empty() {
            let rows = self.next_transaction();
            if rows.is_empty() {
                // Everything waiting is over companies in progress.
                break;
            }
            let held: Vec<Company> = rows
                .iter()
                .map(|r| company(&r.scores))
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            for company in &held {
                *self.locked.entry(*company).or_default() += 1;
            }
            self.in_flight += 1;
            events::PersistBatchStarted { rows: rows.len() }.emit();
            let (places, batch): (Vec<(u64, usize)>, Vec<Scores>) =
                rows.into_iter().map(|r| ((r.sender, r.index), r.scores)).unzip();
            let batch = Arc::new(batch);
            let store = self.store.clone();
            let alerts = self.alerts.clone();
            let commit = async move {
                let started = std::time::Instant::now();
                let rows = batch.len();
                let result = store.commit(batch.clone()).await.and_then(|results| {
                    if results.len() == rows {
                        Ok(results)
                    } else {
                        Err(StoreError::unavailable(format!(
                            "the store answered {} of {rows} filings",
                            results.len()
                        )))
                    }
                });
                events::PersistCommitEnded {
                    elapsed: started.elapsed(),
                }
                .emit();
                if let Ok(results) = &result {
                    let raised: Vec<_> = results
                        .iter()
                        .filter_map(|r| match r {
                            CommitResult::Committed(committed) => match &**committed {
                                Committed::Created { stored, .. } => stored.alert.clone(),
                                _ => None,
                            },
                            CommitResult::CompanyGone | CommitResult::KeyReused(_) => None,
                        })
                        .collect();
                    if !raised.is_empty() {
                        actix::spawn(alerts.publish(raised));
                    }
                }
                (result, batch)
            };
            ctx.spawn(commit.into_actor(self).map(move |(result, batch), writer, ctx| {
                writer.in_flight -= 1;
                for company in held {
                    if let Some(n) = writer.locked.get_mut(&company) {
                        *n -= 1;
                        if *n == 0 {
                            writer.locked.remove(&company);
                        }
                    }
                }
                match result {
                    Err(StoreError::Refused(reason)) if places.len() > 1 => writer.split(places, batch, &reason),
                    result => writer.deliver(places, result),
                }
                writer.flush(ctx);
            }));
        }
        events::PersistWaiting {
            rows: self.waiting.len(),
        }
        .emit();
    }

    /// Puts the filings of a refused transaction back first in line, each to go alone (they arrived before
    /// everything waiting, so every company's filings keep their order).
    fn split(&mut self, places: Vec<(u64, usize)>, batch: Arc<Vec<Scores>>, reason: &str) {
        events::PersistTransactionSplit {
            filings: places.len(),
            reason,
        }
        .emit();
        // The commit's future is over, so the batch is normally this Arc's alone.
        let batch = Arc::try_unwrap(batch).unwrap_or_else(|shared| (*shared).clone());
        for ((sender, index), scores) in places.into_iter().zip(batch).rev() {
            self.waiting.push_front(Row {
                sender,
                index,
                scores,
                alone: true,
            });
        }
    }

    /// Hands a commit's outcomes to their senders; a sender is answered once all its filings have one.
    fn deliver(&mut self, places: Vec<(u64, usize)>, result: Result<Vec<CommitResult>, StoreError>) {
        let outcomes: Vec<Outcome> = match result {
            Ok(results) => results.into_iter().map(Ok).collect(),
            Err(error) => {
                tracing::warn!(%error, filings = places.len(), "commit failed; its filings are refused for retry");
                places.iter().map(|_| Err(error.clone())).collect()
            }
        };
        for ((sender_id, index), outcome) in places.into_iter().zip(outcomes) {
            let Some(sender) = self.senders.get_mut(&sender_id) else {
                continue;
            };
            sender.outcomes[index] = Some(outcome);
            sender.remaining -= 1;
            if sender.remaining == 0
                && let Some(sender) = self.senders.remove(&sender_id)
            {
                let _ = sender.reply.send(sender.outcomes.into_iter().flatten().collect());
            }
        }
    }
}

impl Actor for PersistWriter {
    type Context = Context<Self>;
}

impl Handler<Persist> for PersistWriter {
    type Result = ResponseFuture<Vec<Outcome>>;

    fn handle(&mut self, persist: Persist, ctx: &mut Self::Context) -> Self::Result {
        let rows = persist.rows.len();
        let (reply, answer) = oneshot::channel();
        if rows == 0 {
            let _ = reply.send(Vec::new());
        } else {
            let sender = self.next_sender;
            self.next_sender += 1;
            self.senders.insert(
                sender,
                Sender {
                    outcomes: (0..rows).map(|_| None).collect(),
                    remaining: rows,
                    reply,
                },
            );
            self.waiting
                .extend(persist.rows.into_iter().enumerate().map(|(index, scores)| Row {
                    sender,
                    index,
                    scores,
                    alone: false,
                }));
            self.flush(ctx);
        }
        Box::pin(async move {
            answer.await.unwrap_or_else(|_| {
                (0..rows)
                    .map(|_| Err(StoreError::unavailable("the persist writer stopped before the commit")))
                    .collect()
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Mutex, time::Instant};

    use futures_util::{FutureExt, future::BoxFuture};
    use pdscore_models::{PredictionType, RiskLevel, registry::ModelId, statement::ReportingPeriod};
    use tokio::sync::mpsc;

    use super::*;
    use crate::{
        filing::{Filing, FilingContent, FilingSource, ModelScore},
        policy::TenantPolicy,
    };

    /// A transaction the store was asked for: its filings' companies, and the test's go (or error) for it.
    type Asked = (Vec<Uuid>, oneshot::Sender<Result<(), StoreError>>);

    /// Answers each commit when the test says so, each filing as a duplicate of its own prediction id.
    struct GatedStore {
        asked: Mutex<mpsc::UnboundedSender<Asked>>,
    }

    impl PredictionStore for GatedStore {
        fn commit(&self, batch: Arc<Vec<Scores>>) -> BoxFuture<'static, Result<Vec<CommitResult>, StoreError>> {
            let (go, gate) = oneshot::channel();
            let companies = batch.iter().map(|s| s.filing.company_id).collect();
            let _ = self.asked.lock().unwrap().send((companies, go));
            async move {
                match gate.await {
                    Ok(Ok(())) => Ok(batch
                        .iter()
                        .map(|s| {
                            CommitResult::Committed(Box::new(Committed::Duplicate {
                                prediction_id: s.prediction_id,
                            }))
                        })
                        .collect()),
                    Ok(Err(error)) => Err(error),
                    Err(_) => Err(StoreError::unavailable("the test dropped the gate")),
                }
            }
            .boxed()
        }

        fn tenant_policy(&self, _: Uuid) -> BoxFuture<'static, Result<Option<TenantPolicy>, StoreError>> {
            futures_util::future::ready(Ok(None)).boxed()
        }

        fn previous_quarters(
            &self,
            _: Uuid,
            requests: Vec<(Uuid, pdscore_models::statement::ReportingPeriod)>,
        ) -> BoxFuture<'static, Result<Vec<Option<[pdscore_models::statement::Statement; 3]>>, StoreError>> {
            futures_util::future::ready(Ok(vec![None; requests.len()])).boxed()
        }
    }

    struct NoAlerts;

    impl AlertSink for NoAlerts {
        fn publish(&self, _: Vec<crate::filing::Alert>) -> BoxFuture<'static, ()> {
            futures_util::future::ready(()).boxed()
        }
    }

    fn scores(tenant_id: Uuid, company_id: Uuid) -> Scores {
        Scores {
            filing: Filing {
                tenant_id,
                organization_id: tenant_id,
                company_id,
                idempotency_key: Uuid::new_v4().to_string(),
                source: FilingSource::Nats,
                prediction_type: PredictionType::Annual,
                content: FilingContent {
                    period: ReportingPeriod {
                        year: 2024,
                        quarter: None,
                    },
                    statement: None,
                    ratios: None,
                    model: None,
                },
                terms: Default::default(),
                raw: serde_json::Value::Null,
                bulk: None,
                received_at: Instant::now(),
                trailing: None,
                new_company: None,
            },
            prediction_id: Uuid::new_v4(),
            primary: ModelScore {
                model: ModelId {
                    name: "test".into(),
                    version: 1,
                },
                probability: 0.1,
                term_structure: None,
                risk_level: RiskLevel::Low,
                implied_rating: "BBB",
                confidence: 0.5,
                contributions: Vec::new(),
                inputs: Default::default(),
                trailing_quarters: None,
            },
            shadow: None,
            alert_pd_change: 0.5,
        }
    }

    fn prediction_ids(outcomes: &[Outcome]) -> Vec<Option<Uuid>> {
        outcomes
            .iter()
            .map(|o| match o {
                Ok(CommitResult::Committed(c)) => Some(c.prediction_id()),
                _ => None,
            })
            .collect()
    }

    /// `n` companies in one lane of [`gated_writer`]'s four.
    fn one_lane<const N: usize>() -> [Uuid; N] {
        let base = u128::from(rand_lane_base());
        std::array::from_fn(|k| Uuid::from_u128((base + k as u128 + 1) << 2))
    }

    /// Two companies in each of [`gated_writer`]'s four lanes, interleaved: lanes 0, 1, 2, 3, 0, 1, 2, 3.
    fn two_per_lane() -> Vec<Uuid> {
        let base = u128::from(rand_lane_base());
        (0..8u128)
            .map(|k| Uuid::from_u128(((base + k / 4 + 1) << 2) | (k % 4)))
            .collect()
    }

    /// A different range of ids per call, so that tests never share companies.
    fn rand_lane_base() -> u32 {
        Uuid::new_v4().as_u128() as u32 >> 8
    }

    /// A writer over a [`GatedStore`], and the transactions it asks that store for.
    fn gated_writer() -> (actix::Addr<PersistWriter>, mpsc::UnboundedReceiver<Asked>) {
        gated_writer_of(512)
    }

    /// … taking at most `max_rows` filings per transaction.
    fn gated_writer_of(max_rows: usize) -> (actix::Addr<PersistWriter>, mpsc::UnboundedReceiver<Asked>) {
        let (asked_tx, asked) = mpsc::unbounded_channel();
        let store = Arc::new(GatedStore {
            asked: Mutex::new(asked_tx),
        });
        (
            PersistWriter::new(store, Arc::new(NoAlerts), 4, max_rows).start(),
            asked,
        )
    }

    #[actix::test]
    async fn a_batch_goes_at_once_for_its_free_companies_and_waits_only_for_the_held_ones() {
        let (writer, mut asked) = gated_writer();
        let tenant = Uuid::new_v4();
        let [c1, c2] = one_lane();
        let c3 = Uuid::new_v4();

        let first = vec![scores(tenant, c1), scores(tenant, c2)];
        let first_ids: Vec<_> = first.iter().map(|s| Some(s.prediction_id)).collect();
        let first_answer = writer.send(Persist { rows: first });
        let first_answer = tokio::spawn(first_answer);
        let (companies, go_first) = asked.recv().await.unwrap();
        assert_eq!(companies, [c1, c2]);

        // c2 is held by the first transaction: only the c3 filing goes now, in a transaction of its own.
        let second = vec![scores(tenant, c2), scores(tenant, c3)];
        let second_ids: Vec<_> = second.iter().map(|s| Some(s.prediction_id)).collect();
        let mut second_answer = tokio::spawn(writer.send(Persist { rows: second }));
        let (companies, go_c3) = asked.recv().await.unwrap();
        assert_eq!(companies, [c3]);
        go_c3.send(Ok(())).unwrap();
        // Half of the second batch is committed: it is not answered yet, and c2 has not been asked for.
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(100), &mut second_answer)
                .await
                .is_err()
        );
        assert!(asked.try_recv().is_err());

        go_first.send(Ok(())).unwrap();
        let first_outcomes = first_answer.await.unwrap().unwrap();
        assert_eq!(prediction_ids(&first_outcomes), first_ids);
        let (companies, go_c2) = asked.recv().await.unwrap();
        assert_eq!(companies, [c2]);
        go_c2.send(Ok(())).unwrap();
        // Answered once both transactions committed, in the batch's own order.
        let second_outcomes = second_answer.await.unwrap().unwrap();
        assert_eq!(prediction_ids(&second_outcomes), second_ids);
    }

    #[actix::test]
    async fn a_failed_transaction_refuses_only_its_own_filings() {
        let (writer, mut asked) = gated_writer();
        let tenant = Uuid::new_v4();
        let [c1, c2] = [Uuid::new_v4(), Uuid::new_v4()];

        let holder = tokio::spawn(writer.send(Persist {
            rows: vec![scores(tenant, c1)],
        }));
        let (_, go_holder) = asked.recv().await.unwrap();
        let batch = vec![scores(tenant, c1), scores(tenant, c2)];
        let c1_id = batch[0].prediction_id;
        let answer = tokio::spawn(writer.send(Persist { rows: batch }));
        let (companies, fail_c2) = asked.recv().await.unwrap();
        assert_eq!(companies, [c2]);
        fail_c2.send(Err(StoreError::unavailable("disk full"))).unwrap();
        go_holder.send(Ok(())).unwrap();
        holder.await.unwrap().unwrap();
        let (companies, go_c1) = asked.recv().await.unwrap();
        assert_eq!(companies, [c1]);
        go_c1.send(Ok(())).unwrap();

        let outcomes = answer.await.unwrap().unwrap();
        assert_eq!(prediction_ids(&outcomes), [Some(c1_id), None]);
        assert_eq!(outcomes[1], Err(StoreError::unavailable("disk full")));
    }

    #[actix::test]
    async fn a_refused_transaction_is_committed_filing_by_filing_and_only_the_culprit_fails() {
        let (writer, mut asked) = gated_writer();
        let tenant = Uuid::new_v4();
        let [c1, poison, c3] = one_lane();
        let batch = vec![scores(tenant, c1), scores(tenant, poison), scores(tenant, c3)];
        let ids: Vec<_> = batch.iter().map(|s| s.prediction_id).collect();
        let answer = tokio::spawn(writer.send(Persist { rows: batch }));

        let (companies, refuse) = asked.recv().await.unwrap();
        assert_eq!(companies, [c1, poison, c3]);
        refuse
            .send(Err(StoreError::Refused("invalid byte sequence".into())))
            .unwrap();
        // Each filing again, alone, in its order.
        let mut alone = Vec::new();
        for _ in 0..3 {
            let (companies, gate) = asked.recv().await.unwrap();
            assert_eq!(companies.len(), 1, "{companies:?}");
            let refused = companies[0] == poison;
            alone.push(companies[0]);
            gate.send(if refused {
                Err(StoreError::Refused("invalid byte sequence".into()))
            } else {
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(alone, [c1, poison, c3]);

        let outcomes = answer.await.unwrap().unwrap();
        assert_eq!(prediction_ids(&outcomes), [Some(ids[0]), None, Some(ids[2])]);
        assert_eq!(outcomes[1], Err(StoreError::Refused("invalid byte sequence".into())));
        assert!(asked.try_recv().is_err(), "nothing more is asked");
    }

    #[actix::test]
    async fn under_a_backlog_companies_are_dealt_into_lanes_that_commit_in_parallel() {
        // Eight filings waiting, four per transaction at most: a backlog.
        let (writer, mut asked) = gated_writer_of(4);
        let tenant = Uuid::new_v4();
        let companies = two_per_lane();
        let batch: Vec<Scores> = companies.iter().map(|c| scores(tenant, *c)).collect();
        let answer = tokio::spawn(writer.send(Persist { rows: batch }));
        // Transactions are asked for before any is committed: lane 0's two companies, lane 1's, and then, the
        // backlog gone (four left, which one transaction takes), the rest together.
        let mut gates = Vec::new();
        let c = &companies;
        for expected in [vec![c[0], c[4]], vec![c[1], c[5]], vec![c[2], c[3], c[6], c[7]]] {
            let (asked_for, go) = asked.recv().await.unwrap();
            assert_eq!(asked_for, expected);
            gates.push(go);
        }
        for go in gates {
            go.send(Ok(())).unwrap();
        }
        let outcomes = answer.await.unwrap().unwrap();
        assert!(prediction_ids(&outcomes).iter().all(Option::is_some));
    }

    #[actix::test]
    async fn without_a_backlog_one_transaction_takes_every_company_that_can_go() {
        let (writer, mut asked) = gated_writer();
        let tenant = Uuid::new_v4();
        let companies = two_per_lane();
        let batch: Vec<Scores> = companies.iter().map(|c| scores(tenant, *c)).collect();
        let answer = tokio::spawn(writer.send(Persist { rows: batch }));
        let (asked_for, go) = asked.recv().await.unwrap();
        assert_eq!(asked_for, companies);
        go.send(Ok(())).unwrap();
        answer.await.unwrap().unwrap();
        assert!(asked.try_recv().is_err(), "one transaction");
    }
}
