//! The session-check ceiling: what every authenticated request asks Redis (is its session live?), made by the
//! service's own session store at fixed concurrency, nothing else — the Redis part of an HTTP request's cost.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use uuid::Uuid;

use super::{Record, cpu::CpuMeter, histogram, record_since};
use pdscore::{auth::sessions::SessionStore, configuration::Settings};

pub struct RedisLoad<'a> {
    pub settings: &'a Settings,
    pub concurrency: &'a [usize],
    pub duration: Duration,
    pub record: Option<&'a Path>,
}

/// Checks one live session from `concurrency` tasks for `duration` per level (after a 1 s warm-up); the
/// session is revoked afterwards (its marker expires with the access tokens' lifetime).
pub async fn ceiling(load: RedisLoad<'_>) -> anyhow::Result<Vec<Record>> {
    let settings = load.settings;
    let redis = pdscore::cache::connect(&settings.redis)?;
    let store = Arc::new(SessionStore::new(
        redis,
        &settings.redis.key_prefix,
        Duration::from_secs(settings.auth.refresh_token_ttl_secs),
        Duration::from_secs(settings.auth.access_token_ttl_secs),
    ));
    let family = Uuid::now_v7();
    store.activate(family).await?;
    let mut records = Vec::new();
    for &concurrency in load.concurrency {
        let warm_up = Instant::now() + Duration::from_secs(1);
        let end = warm_up + load.duration;
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut latency = histogram();
                    while Instant::now() < end {
                        let begun = Instant::now();
                        let live = store
                            .is_active(family, async { Ok::<_, std::io::Error>(false) })
                            .await
                            .context("session check")?;
                        anyhow::ensure!(live, "the session was not found live");
                        if begun >= warm_up {
                            record_since(&mut latency, begun);
                        }
                    }
                    anyhow::Ok(latency)
                })
            })
            .collect();
        tokio::time::sleep_until(warm_up.into()).await;
        let cpu = CpuMeter::start();
        let mut latency = histogram();
        for task in tasks {
            latency.add(task.await??)?;
        }
        let cpu = cpu.stop();
        let record = Record::new("redis", Some(concurrency), load.duration, &latency).with_cpu(cpu);
        record.emit(load.record)?;
        records.push(record);
    }
    store.revoke(&[family]).await?;
    Ok(records)
}
