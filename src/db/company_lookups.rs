//! Companies looked up by symbol together. The NATS ingest and the AccuNode routes name a filing's company by
//! symbol; what their caches miss comes here, to one task, which takes every lookup waiting when it is free
//! and asks for all of their symbols in one query per scope and organization filter (`symbol = ANY`); the
//! lookups that arrive while that query runs wait for the next. A lone lookup waits for no one, and a burst —
//! a broad universe of companies coming into the ingest, a client filing for new companies from 64 connections
//! — costs a few queries instead of one each: a lookup alone took a pooled connection for its own round trip,
//! ~300 µs of the machine per request on the AccuNode route on a slow host, ~170 together (BENCHMARKS.md).

use std::{collections::HashMap, sync::Arc};

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::companies::{self, Company};
use crate::auth::Scope;

/// The handle of the lookups' task (cheap to clone; the task ends when every handle is gone).
#[derive(Clone)]
pub struct CompanyLookups {
    waiting: mpsc::Sender<Lookup>,
}

/// Why a lookup has no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LookupFailed {
    /// The query of its round failed (the error is every lookup's of that query).
    #[error("looking the company up failed: {0}")]
    Database(Arc<sqlx::Error>),
    #[error("the company lookups have stopped")]
    Stopped,
}

/// A company looked up by symbol, waiting for the next round.
struct Lookup {
    scope: Scope,
    organization: Option<Uuid>,
    symbol: String,
    reply: oneshot::Sender<Result<Vec<Company>, LookupFailed>>,
}

/// Lookups taken into one round of queries at most (and waiting beyond it).
const MAX: usize = 1024;

impl CompanyLookups {
    /// Starts the task (on the current Tokio runtime).
    pub fn start(db: PgPool) -> Self {
        let (waiting, taken) = mpsc::channel(MAX);
        tokio::spawn(run(db, taken));
        Self { waiting }
    }

    /// The companies with `symbol` in `scope` (in `organization` when given): none, one, or — without an
    /// organization — one per organization that has the symbol.
    pub async fn find(
        &self,
        scope: Scope,
        organization: Option<Uuid>,
        symbol: &str,
    ) -> Result<Vec<Company>, LookupFailed> {
        let (reply, answer) = oneshot::channel();
        let lookup = Lookup {
            scope,
            organization,
            symbol: symbol.to_owned(),
            reply,
        };
        self.waiting.send(lookup).await.map_err(|_| LookupFailed::Stopped)?;
        answer.await.unwrap_or(Err(LookupFailed::Stopped))
    }
}

async fn run(db: PgPool, mut taken: mpsc::Receiver<Lookup>) {
    let mut round = Vec::with_capacity(MAX);
    while taken.recv_many(&mut round, MAX).await > 0 {
        let mut groups: HashMap<(Scope, Option<Uuid>), Vec<Lookup>> = HashMap::new();
        for lookup in round.drain(..) {
            groups
                .entry((lookup.scope, lookup.organization))
                .or_default()
                .push(lookup);
        }
        futures_util::future::join_all(
            groups
                .into_iter()
                .map(|((scope, organization), lookups)| answer(&db, scope, organization, lookups)),
        )
        .await;
    }
}

async fn answer(db: &PgPool, scope: Scope, organization: Option<Uuid>, lookups: Vec<Lookup>) {
    let mut symbols: Vec<&str> = lookups.iter().map(|l| l.symbol.as_str()).collect();
    symbols.sort_unstable();
    symbols.dedup();
    let found = async {
        let mut conn = db.acquire().await?;
        companies::find_by_symbols(&mut conn, &scope, &symbols, organization).await
    }
    .await;
    let found = match found {
        Ok(found) => found,
        Err(e) => {
            let failed = LookupFailed::Database(Arc::new(e));
            for lookup in lookups {
                let _ = lookup.reply.send(Err(failed.clone()));
            }
            return;
        }
    };
    let mut by_symbol: HashMap<&str, Vec<&Company>> = HashMap::new();
    for company in &found {
        by_symbol.entry(company.symbol.as_str()).or_default().push(company);
    }
    for lookup in lookups {
        let companies = by_symbol
            .get(lookup.symbol.as_str())
            .map(|found| found.iter().map(|&c| c.clone()).collect())
            .unwrap_or_default();
        // A caller gone (its request cancelled) needs no answer.
        let _ = lookup.reply.send(Ok(companies));
    }
}
