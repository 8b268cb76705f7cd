//! Dependency checks behind `GET /health`: PostgreSQL, Redis and NATS, concurrently, each with a deadline
//! and its latency. A required dependency that is down makes the service unhealthy (503); an optional one
//! only degrades it.

use std::{collections::BTreeMap, future::Future, time::Instant};

use serde::Serialize;

use crate::{
    cache::Redis,
    configuration::{Dependency, HealthSettings},
    messaging::Messaging,
    telemetry::events::DependencyChecked,
};

/// What the checks probe, and how.
pub struct Dependencies<'a> {
    pub db: &'a sqlx::PgPool,
    pub redis: &'a Redis,
    pub messaging: &'a Messaging,
    pub settings: &'a HealthSettings,
    /// When the process started (for `uptime_seconds`).
    pub started_at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Up,
    Down,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub status: CheckStatus,
    pub required: bool,
    pub latency_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OverallStatus {
    Healthy,
    Degraded,
    Unhealthy,
}

#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    pub status: OverallStatus,
    pub version: &'static str,
    pub uptime_seconds: u64,
    pub checks: BTreeMap<&'static str, CheckResult>,
}

impl HealthReport {
    pub fn failing_required(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|(_, c)| c.required && c.status == CheckStatus::Down)
            .map(|(name, _)| *name)
            .collect()
    }
}

/// Runs every check concurrently.
pub async fn check(deps: Dependencies<'_>) -> HealthReport {
    let settings = deps.settings;
    let (postgres, redis, nats) = tokio::join!(
        timed(Dependency::Postgres, settings, check_postgres(deps.db)),
        timed(Dependency::Redis, settings, check_redis(deps.redis)),
        timed(Dependency::Nats, settings, check_nats(deps.messaging)),
    );
    let checks = BTreeMap::from([postgres, redis, nats]);
    let status = if checks.values().any(|c| c.required && c.status == CheckStatus::Down) {
        OverallStatus::Unhealthy
    } else if checks.values().any(|c| c.status == CheckStatus::Down) {
        OverallStatus::Degraded
    } else {
        OverallStatus::Healthy
    };
    HealthReport {
        status,
        version: crate::VERSION,
        uptime_seconds: deps.started_at.elapsed().as_secs(),
        checks,
    }
}

async fn timed(
    dependency: Dependency,
    settings: &HealthSettings,
    probe: impl Future<Output = anyhow::Result<()>>,
) -> (&'static str, CheckResult) {
    let started = Instant::now();
    let outcome = match tokio::time::timeout(settings.timeout(), probe).await {
        Ok(result) => result,
        Err(_) => Err(anyhow::anyhow!("no answer within {} ms", settings.timeout_ms)),
    };
    let latency = started.elapsed();
    let name = dependency.as_str();
    DependencyChecked {
        dependency: name,
        latency,
        error: outcome.as_ref().err(),
    }
    .emit();
    let result = CheckResult {
        status: if outcome.is_ok() {
            CheckStatus::Up
        } else {
            CheckStatus::Down
        },
        required: settings.is_required(dependency),
        latency_ms: (latency.as_secs_f64() * 1e3 * 1000.0).round() / 1000.0,
        error: outcome.err().map(|e| format!("{e:#}")),
    };
    (name, result)
}

async fn check_postgres(db: &sqlx::PgPool) -> anyhow::Result<()> {
    sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(db).await?;
    Ok(())
}

async fn check_redis(redis: &Redis) -> anyhow::Result<()> {
    let pong: String = redis.query(redis::cmd("PING")).await?;
    anyhow::ensure!(pong == "PONG", "unexpected PING answer {pong:?}");
    Ok(())
}

async fn check_nats(messaging: &Messaging) -> anyhow::Result<()> {
    anyhow::ensure!(messaging.is_connected(), "not connected");
    anyhow::ensure!(messaging.streams_ready(), "JetStream streams are not in place yet");
    // A JetStream API round trip: proves the connection works, JetStream is enabled and the stream exists.
    messaging.check_streams().await
}
