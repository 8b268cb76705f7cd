//! Redis: one multiplexed connection that every caller shares (concurrent commands are pipelined on it),
//! connected on first use and again after it drops, so the service starts and reports Redis down in `/health`
//! while it is unreachable, and recovers by itself when it returns.
//!
//! Taking it costs no round trip: a pool (deadpool-redis, before) checked every connection it handed out with
//! UNWATCH + PING, which doubled the Redis round trips of each request — the session check of every
//! authenticated request among them (BENCHMARKS.md). Nothing here uses WATCH or MULTI, which a shared
//! connection could not keep apart.

use std::time::Duration;

use anyhow::Context;
use futures_util::{FutureExt, future::BoxFuture};
use redis::{
    FromRedisValue, RedisResult,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use secrecy::ExposeSecret;

use crate::{
    configuration::RedisSettings,
    telemetry::events::{PortfolioCacheLookup, PortfolioCacheNotInvalidated},
};

/// The shared connection (cheap to clone; every clone is the same connection).
///
/// Every command runs on the runtime [`connect`] was called on (the service's main one), whichever thread
/// asks: the connection's tasks and its reconnections are spawned by the command that needs them, on the
/// runtime it runs on, and an HTTP worker's runtime stops before the pipeline's last commits at shutdown.
#[derive(Clone)]
pub struct Redis {
    manager: ConnectionManager,
    runtime: tokio::runtime::Handle,
}

/// A command or a pipeline, sent by [`Redis::query`].
pub trait Request: Send + Sync + 'static {
    fn send<T: FromRedisValue + Send>(&self, conn: ConnectionManager) -> BoxFuture<'_, RedisResult<T>>;
}

impl Request for redis::Cmd {
    fn send<T: FromRedisValue + Send>(&self, mut conn: ConnectionManager) -> BoxFuture<'_, RedisResult<T>> {
        async move { self.query_async(&mut conn).await }.boxed()
    }
}

impl Request for redis::Pipeline {
    fn send<T: FromRedisValue + Send>(&self, mut conn: ConnectionManager) -> BoxFuture<'_, RedisResult<T>> {
        async move { self.query_async(&mut conn).await }.boxed()
    }
}

/// A Lua script (kept in a `static`), sent by its digest (`EVALSHA`) and loaded again by the first call that
/// finds Redis without it (a restarted server).
impl Request for redis::ScriptInvocation<'static> {
    fn send<T: FromRedisValue + Send>(&self, mut conn: ConnectionManager) -> BoxFuture<'_, RedisResult<T>> {
        async move { self.invoke_async(&mut conn).await }.boxed()
    }
}

/// The connection, not yet made (the first command makes it). Must be called on the runtime that outlives
/// every user of the connection.
pub fn connect(settings: &RedisSettings) -> anyhow::Result<Redis> {
    let client = redis::Client::open(settings.url.expose_secret()).context("Invalid redis.url")?;
    let timeout = Duration::from_millis(settings.timeout_ms);
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        // One attempt per command that finds the connection down: a command waits at most one timeout for it.
        .set_number_of_retries(0);
    let manager =
        ConnectionManager::new_lazy_with_config(client, config).context("Failed to set up the Redis connection")?;
    Ok(Redis {
        manager,
        runtime: tokio::runtime::Handle::current(),
    })
}

impl Redis {
    /// Sends `request` and reads its answer. When the connection turns out to have dropped (a Redis restart, an
    /// idle connection closed by the network), which makes the manager connect again, the request is sent once
    /// more: every request of the service may go twice (reads, writes of a value, the portfolio generation's
    /// increment; a sign-in attempt may be counted twice).
    pub async fn query<T: FromRedisValue + Send + 'static>(&self, request: impl Request) -> RedisResult<T> {
        let conn = self.manager.clone();
        let sent = self.runtime.spawn(async move {
            match request.send(conn.clone()).await {
                Err(e) if e.is_connection_dropped() => request.send(conn).await,
                answer => answer,
            }
        });
        sent.await
            .unwrap_or_else(|e| Err(std::io::Error::other(format!("the Redis runtime stopped: {e}")).into()))
    }
}

/// Cached answers of `GET /portfolio` (the dashboard's main read), per tenant.
///
/// Each tenant has a generation counter; an answer is stored under the generation read *before* its database
/// query, and every write to the tenant's companies or predictions increments the counter. An answer computed
/// while a write commits is therefore stored under a generation nobody reads any more: a reader never gets
/// data older than the last write it could have seen. Entries also expire after `ttl` (writes made outside the
/// service). Redis being down only costs the cache: reads go to PostgreSQL.
#[derive(Clone)]
pub struct PortfolioCache {
    redis: Redis,
    prefix: String,
    ttl_secs: u64,
}

/// The generation and, under it, the answer: one round trip.
static LOOKUP: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        "local g = redis.call('GET', KEYS[1]) or '0'
         return {g, redis.call('GET', ARGV[1] .. g .. ':' .. ARGV[2])}",
    )
});

impl PortfolioCache {
    pub fn new(redis: Redis, settings: &RedisSettings) -> Self {
        Self {
            redis,
            prefix: format!("{}:portfolio", settings.key_prefix),
            ttl_secs: settings.portfolio_cache_ttl_secs,
        }
    }

    pub fn enabled(&self) -> bool {
        self.ttl_secs > 0
    }

    fn generation_key(&self, tenant: uuid::Uuid) -> String {
        format!("{}:{tenant}:generation", self.prefix)
    }

    /// Where the answer to `query` under `generation` lives: `<entries>` followed by `<generation>:<query>`
    /// (the lookup script appends them itself, having read the generation).
    fn entries(&self, tenant: uuid::Uuid) -> String {
        format!("{}:{tenant}:", self.prefix)
    }

    /// The answer cached for `query` (a digest of the caller's scope and parameters), or the generation to
    /// store a fresh one under.
    pub async fn get(&self, tenant: uuid::Uuid, query: &str) -> Lookup {
        if !self.enabled() {
            return Lookup::Off;
        }
        let mut lookup = LOOKUP.key(self.generation_key(tenant));
        lookup.arg(self.entries(tenant)).arg(query);
        let result: RedisResult<(String, Option<String>)> = self.redis.query(lookup).await;
        match result {
            Ok((_, Some(answer))) => {
                PortfolioCacheLookup::Hit.emit();
                Lookup::Hit(answer)
            }
            Ok((generation, None)) => {
                PortfolioCacheLookup::Miss.emit();
                Lookup::Miss { generation }
            }
            Err(e) => {
                PortfolioCacheLookup::Error(&e).emit();
                Lookup::Off
            }
        }
    }

    /// The generation to store a fresh answer under, without looking for a cached one.
    pub async fn generation(&self, tenant: uuid::Uuid) -> Lookup {
        if !self.enabled() {
            return Lookup::Off;
        }
        let get = redis::Cmd::get(self.generation_key(tenant));
        let result: RedisResult<Option<String>> = self.redis.query(get).await;
        match result {
            Ok(generation) => Lookup::Miss {
                generation: generation.unwrap_or_else(|| "0".to_owned()),
            },
            Err(_) => Lookup::Off,
        }
    }

    /// Stores `answer` for `query` under the generation [`get`](Self::get) returned.
    pub async fn put(&self, tenant: uuid::Uuid, generation: &str, query: &str, answer: &str) {
        let key = format!("{}{generation}:{query}", self.entries(tenant));
        let set = redis::Cmd::set_ex(key, answer, self.ttl_secs);
        let stored: RedisResult<()> = self.redis.query(set).await;
        if let Err(e) = stored {
            tracing::debug!(error = %e, "portfolio answer not cached");
        }
    }

    /// After a write to `tenant`'s companies or predictions: every cached answer of the tenant is stale.
    pub async fn invalidate(&self, tenant: uuid::Uuid) {
        if !self.enabled() {
            return;
        }
        let key = self.generation_key(tenant);
        // The counter outlives every answer stored under it.
        let mut bump = redis::pipe();
        bump.cmd("INCR")
            .arg(&key)
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(self.ttl_secs * 2)
            .ignore();
        let bumped: RedisResult<()> = self.redis.query(bump).await;
        if let Err(e) = bumped {
            // Answers already cached stay until their TTL.
            PortfolioCacheNotInvalidated { tenant, error: &e }.emit();
        }
    }
}

/// What the cache had.
pub enum Lookup {
    Hit(String),
    Miss {
        generation: String,
    },
    /// Disabled or unreachable.
    Off,
}

/// Values kept in this process for a short while: lookups read on every request that change rarely (the
/// ingest's tenants and companies, the AccuNode route's companies by symbol, verified tokens). An entry is served
/// for `ttl` at most, so a change made on another instance is seen within `ttl`; this instance's own changes, and
/// the fleet's announcements, remove the entries they make wrong. Bounded (moka: the least useful entries go
/// first).
///
/// Each entry lives a random share of `ttl`, between half and all of it: entries made together (a feed's first
/// round over its companies) would otherwise expire together and be looked up again in one burst every `ttl`,
/// queueing the commits behind a thousand lookups for the database's connections — the alert feed's worst
/// latencies (BENCHMARKS.md, 2,000 filings/s over 1,000 companies: p99.9 47–120 ms with one lifetime, 27–31 with
/// none in the run).
pub struct LocalCache<K, V> {
    entries: moka::sync::Cache<K, V>,
}

/// An entry's lifetime: `ttl` times a share in [1/2, 1), drawn per entry.
struct Jittered {
    ttl: Duration,
    draws: std::collections::hash_map::RandomState,
}

impl Jittered {
    fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            draws: Default::default(),
        }
    }
}

impl<K: std::hash::Hash, V> moka::Expiry<K, V> for Jittered {
    fn expire_after_create(&self, key: &K, _: &V, created_at: std::time::Instant) -> Option<Duration> {
        use std::hash::BuildHasher;
        let draw = self.draws.hash_one((key, created_at));
        let share = 0.5 + (draw % 1024) as f64 / 2048.0;
        Some(self.ttl.mul_f64(share))
    }

    /// A value stored again under its key lives a new lifetime from then, as a new entry would.
    fn expire_after_update(
        &self,
        key: &K,
        value: &V,
        updated_at: std::time::Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, value, updated_at)
    }
}

impl<K, V> LocalCache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_entries as u64)
            .expire_after(Jittered::new(ttl))
            .support_invalidation_closures()
            .build();
        Self { entries }
    }

    /// The value kept for `key` (or a borrowed form of it, e.g. `&str` for `String` keys: no copy of the key
    /// per lookup), if it has not expired.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.entries.get(key)
    }

    pub fn insert(&self, key: K, value: V) {
        self.entries.insert(key, value);
    }

    pub fn remove(&self, key: &K) {
        self.entries.invalidate(key);
    }

    pub fn clear(&self) {
        self.entries.invalidate_all();
    }

    /// Drops the entries for which `stale` is true.
    pub fn remove_where(&self, stale: impl Fn(&K, &V) -> bool + Send + Sync + 'static) {
        // Only fails when the cache was built without closures' support, which `new` asks for.
        let _ = self.entries.invalidate_entries_if(stale);
    }
}

#[cfg(test)]
mod local_cache_tests {
    use super::*;

    #[test]
    fn entries_expire_within_their_ttl_and_are_removed() {
        // Each entry lives 100 to 200 ms.
        let cache = LocalCache::new(Duration::from_millis(200), 100);
        cache.insert("a", 1);
        cache.insert("b", 2);
        assert_eq!((cache.get("a"), cache.get("b")), (Some(1), Some(2)));
        cache.remove_where(|_, v| *v == 1);
        assert_eq!((cache.get("a"), cache.get("b")), (None, Some(2)));
        cache.remove(&"b");
        assert_eq!(cache.get("b"), None);
        cache.insert("c", 3);
        cache.clear();
        assert_eq!(cache.get("c"), None);
        cache.insert("d", 4);
        std::thread::sleep(Duration::from_millis(210));
        assert_eq!(cache.get("d"), None);
    }

    #[test]
    fn a_value_stored_again_lives_a_new_lifetime() {
        let expiry = Jittered::new(Duration::from_secs(10));
        let now = std::time::Instant::now();
        // Whatever was left of the one before (here 1 ms).
        let life =
            moka::Expiry::<&str, i32>::expire_after_update(&expiry, &"e", &6, now, Some(Duration::from_millis(1)));
        assert!(life.is_some_and(|l| l >= Duration::from_secs(5)), "{life:?}");
    }

    #[test]
    fn entries_made_together_expire_spread_over_the_second_half_of_their_ttl() {
        let expiry = Jittered::new(Duration::from_secs(10));
        let now = std::time::Instant::now();
        let lives: Vec<Duration> = (0..1000)
            .map(|key| moka::Expiry::<i32, ()>::expire_after_create(&expiry, &key, &(), now).unwrap())
            .collect();
        assert!(
            lives
                .iter()
                .all(|l| (Duration::from_secs(5)..Duration::from_secs(10)).contains(l))
        );
        // Spread, not bunched: each second of the window gets some of them.
        for second in 5..10 {
            let within = lives.iter().filter(|l| l.as_secs() == second).count();
            assert!(within > 100, "{within} of 1000 expire in second {second}");
        }
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = LocalCache::new(Duration::from_secs(60), 10);
        for i in 0..1000 {
            cache.insert(i, i);
        }
        cache.entries.run_pending_tasks();
        assert!(cache.entries.entry_count() <= 10, "{}", cache.entries.entry_count());
    }
}
