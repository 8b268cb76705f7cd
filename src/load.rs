//! `pdscore load http`: drives single AccuNode-style predictions against a running service at fixed
//! concurrency levels and reports throughput and latency percentiles (HDR histograms, microsecond precision).
//!
//! Every request is a new filing (its own company and period), so each one is scored **and persisted**; a
//! run's companies carry a random prefix, so runs never collide with each other's periods (409). The tenant's
//! rate limit applies as for any client: raise it (`PATCH /api/v1/tenants/{id}`) to measure the service
//! rather than the limiter; 429 answers are counted apart.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::bulk::client::sign_in;

/// What one load level measured.
#[derive(Debug)]
pub struct Level {
    pub concurrency: usize,
    pub elapsed: Duration,
    /// Latency of 2xx answers, in microseconds.
    pub latency: Histogram<u64>,
    pub rate_limited: u64,
    pub failed: u64,
}

impl Level {
    pub fn throughput(&self) -> f64 {
        self.latency.len() as f64 / self.elapsed.as_secs_f64()
    }
}

pub struct HttpLoad<'a> {
    pub url: &'a str,
    pub email: &'a str,
    pub password: &'a str,
    pub concurrency: &'a [usize],
    pub duration: Duration,
}

/// Runs each concurrency level for `duration` (after a short warm-up) and prints one table row per level.
pub async fn http(load: HttpLoad<'_>) -> anyhow::Result<Vec<Level>> {
    let base = load.url.trim_end_matches('/').to_owned();
    let max = load.concurrency.iter().copied().max().unwrap_or(1);
    let client = reqwest::Client::builder().pool_max_idle_per_host(max).build()?;
    let token = Arc::new(sign_in(&client, &base, load.email, load.password).await?.access);
    let run = uuid::Uuid::new_v4().simple().to_string()[..4].to_uppercase();
    println!("concurrency  requests   req/s     p50 ms   p90 ms   p99 ms  p99.9 ms   max ms   429   failed");
    let mut levels = Vec::new();
    for (index, &concurrency) in load.concurrency.iter().enumerate() {
        let endpoint = Endpoint {
            client: client.clone(),
            url: format!("{base}/api/v1/predictions/annual"),
            token: token.clone(),
            run: format!("{run}{index:X}"),
        };
        // Warm-up: connections opened, the tenant's actor and caches in place.
        drive(&endpoint, concurrency, Duration::from_secs(1), 0).await?;
        let level = drive(&endpoint, concurrency, load.duration, 1).await?;
        let ms = |q: f64| level.latency.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "{:>11} {:>9} {:>7.0} {:>10.2} {:>8.2} {:>8.2} {:>9.2} {:>8.2} {:>5} {:>8}",
            concurrency,
            level.latency.len(),
            level.throughput(),
            ms(0.5),
            ms(0.9),
            ms(0.99),
            ms(0.999),
            level.latency.max() as f64 / 1000.0,
            level.rate_limited,
            level.failed
        );
        levels.push(level);
    }
    Ok(levels)
}

#[derive(Clone)]
struct Endpoint {
    client: reqwest::Client,
    url: String,
    token: Arc<String>,
    /// Prefix of this level's company symbols.
    run: String,
}

/// `concurrency` workers, each sending one request after another until `duration` has passed.
async fn drive(endpoint: &Endpoint, concurrency: usize, duration: Duration, phase: u8) -> anyhow::Result<Level> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let endpoint = endpoint.clone();
        workers.spawn(async move {
            let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
            let (mut rate_limited, mut failed, mut sequence) = (0u64, 0u64, 0u64);
            while Instant::now() < deadline {
                // A company takes 300 fiscal years (1900..2199), then the next one.
                let symbol = format!("L{}{phase}W{worker}C{}", endpoint.run, sequence / 300);
                let body = filing(&symbol, 1900 + (sequence % 300) as u16, sequence);
                sequence += 1;
                let sent = Instant::now();
                let answer = endpoint
                    .client
                    .post(&endpoint.url)
                    .bearer_auth(endpoint.token.as_str())
                    .json(&body)
                    .send()
                    .await;
                match answer {
                    Ok(response) if response.status().is_success() => {
                        // The body is read: the request is complete when the client has the prediction.
                        let _ = response.bytes().await;
                        let _ = latency.record(sent.elapsed().as_micros() as u64);
                    }
                    Ok(response) if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS => {
                        rate_limited += 1;
                    }
                    Ok(_) | Err(_) => failed += 1,
                }
            }
            (latency, rate_limited, failed)
        });
    }
    let mut level = Level {
        concurrency,
        elapsed: Duration::ZERO,
        latency: Histogram::new_with_bounds(1, 60_000_000, 3).context("histogram")?,
        rate_limited: 0,
        failed: 0,
    };
    while let Some(outcome) = workers.join_next().await {
        let (latency, rate_limited, failed) = outcome.context("a load worker panicked")?;
        level.latency.add(&latency).context("merge histograms")?;
        level.rate_limited += rate_limited;
        level.failed += failed;
    }
    level.elapsed = started.elapsed();
    Ok(level)
}

/// An AccuNode annual filing with ratios that vary with `n` (so the scorecard's bins are all exercised).
fn filing(symbol: &str, year: u16, n: u64) -> Value {
    let x = (n % 97) as f64;
    json!({
        "company_symbol": symbol,
        "company_name": format!("Load test {symbol}"),
        "market_cap": 1.0e9,
        "sector": "Industrials",
        "reporting_year": year,
        "long_term_debt_to_total_capital": 10.0 + x * 0.6,
        "total_debt_to_ebitda": 0.5 + x * 0.08,
        "net_income_margin": -5.0 + x * 0.3,
        "ebit_to_interest_expense": 1.0 + x * 0.2,
        "return_on_assets": -3.0 + x * 0.15,
    })
}
