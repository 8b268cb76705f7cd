//! Redis: a pool of multiplexed connections, created on demand, so the service starts and reports Redis down
//! in `/health` while it is unreachable, and recovers by itself when it returns.

use std::time::Duration;

use anyhow::Context;
use deadpool_redis::{Pool, Runtime};
use secrecy::ExposeSecret;

use crate::configuration::RedisSettings;

pub fn pool(settings: &RedisSettings) -> anyhow::Result<Pool> {
    let timeout = Some(Duration::from_millis(settings.timeout_ms));
    deadpool_redis::Config::from_url(settings.url.expose_secret())
        .builder()
        .context("Invalid redis.url")?
        .max_size(settings.pool_size)
        .wait_timeout(timeout)
        .create_timeout(timeout)
        .recycle_timeout(timeout)
        .runtime(Runtime::Tokio1)
        .build()
        .context("Failed to build the Redis pool")
}
