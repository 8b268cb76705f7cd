//! HTTP load: AccuNode annual predictions (`POST /api/v1/predictions/annual`) at fixed concurrency levels,
//! or the same bodies against the bare JSON echo ([`super::echo`]) for the ceiling; or the dashboard's read,
//! the riskiest page of the portfolio (`GET /api/v1/portfolio?sort=-probability`).
//!
//! Every request to the service is a new filing (its own company and period), so each one is scored **and
//! persisted**; a run's companies carry a random prefix, so runs never collide with each other's periods
//! (409). The tenant's rate limit applies as for any client: raise it (`PATCH /api/v1/tenants/{id}`) to
//! measure the service rather than the limiter; 429 answers are counted apart.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use serde_json::{Value, json};

use super::{Record, annual_ratios, cpu::CpuMeter, histogram, record_since, run_tag};
use crate::client::sign_in;

/// Where the requests go.
pub enum Target<'a> {
    /// The scoring service, signed in with this account (one with an organization of its own); with
    /// `new_company`, every request names a company the service has not seen (created with its filing).
    Service {
        email: &'a str,
        password: &'a str,
        new_company: bool,
    },
    /// The bare echo server (`pdscore-load echo-server`).
    Echo,
    /// The portfolio's first page, riskiest first, as this account sees it; `fresh` asks for answers from
    /// PostgreSQL (`Cache-Control: no-cache`) rather than the cache.
    Portfolio {
        email: &'a str,
        password: &'a str,
        fresh: bool,
    },
}

pub struct HttpLoad<'a> {
    pub url: &'a str,
    pub target: Target<'a>,
    pub concurrency: &'a [usize],
    pub duration: Duration,
    pub record: Option<&'a Path>,
}

/// Runs each concurrency level for `duration` (after a 1 s warm-up) and emits one record per level.
pub async fn run(load: HttpLoad<'_>) -> anyhow::Result<Vec<Record>> {
    let base = load.url.trim_end_matches('/').to_owned();
    let max = load.concurrency.iter().copied().max().unwrap_or(1);
    let client = reqwest::Client::builder().pool_max_idle_per_host(max).build()?;
    let (path, url, token, request) = match load.target {
        Target::Service {
            email,
            password,
            new_company,
        } => {
            let token = sign_in(&client, &base, email, password).await?.access;
            (
                if new_company { "http-new-company" } else { "http" },
                format!("{base}/api/v1/predictions/annual"),
                Some(token),
                Request::Filing { new_company },
            )
        }
        Target::Echo => (
            "echo",
            format!("{base}/echo"),
            None,
            Request::Filing { new_company: false },
        ),
        Target::Portfolio { email, password, fresh } => {
            let token = sign_in(&client, &base, email, password).await?.access;
            let url = format!("{base}/api/v1/portfolio?sort=-probability&per_page=50");
            let path = if fresh { "portfolio-fresh" } else { "portfolio" };
            (path, url, Some(token), Request::Read { fresh })
        }
    };
    // A read says how many companies it ranges over.
    let companies = match request {
        Request::Read { .. } => {
            let mut read = client.get(&url).header(reqwest::header::CACHE_CONTROL, "no-cache");
            if let Some(token) = &token {
                read = read.bearer_auth(token);
            }
            crate::client::call(read, "read the portfolio").await?["total"].as_u64()
        }
        Request::Filing { .. } => None,
    };
    let token = Arc::new(token);
    let run = run_tag();
    println!("{}", Record::HEADER);
    let mut records = Vec::new();
    for (index, &concurrency) in load.concurrency.iter().enumerate() {
        let endpoint = Endpoint {
            client: client.clone(),
            url: url.clone(),
            token: token.clone(),
            run: format!("{run}{index:X}"),
            request,
        };
        // Warm-up: connections opened, the tenant's actor and caches in place.
        drive(&endpoint, path, concurrency, Duration::from_secs(1), 0).await?;
        let mut record = drive(&endpoint, path, concurrency, load.duration, 1).await?;
        record.companies = companies;
        record.emit(load.record)?;
        records.push(record);
    }
    Ok(records)
}

#[derive(Clone)]
struct Endpoint {
    client: reqwest::Client,
    url: String,
    token: Arc<Option<String>>,
    /// Prefix of this level's company symbols.
    run: String,
    request: Request,
}

/// What each request is.
#[derive(Clone, Copy)]
enum Request {
    /// POST a new filing; `new_company`: of a company never seen before (else a company takes 300 fiscal
    /// years, then the next one).
    Filing { new_company: bool },
    /// GET the URL; `fresh`: with `Cache-Control: no-cache`.
    Read { fresh: bool },
}

/// `concurrency` workers, each sending one request after another until `duration` has passed.
async fn drive(
    endpoint: &Endpoint,
    path: &str,
    concurrency: usize,
    duration: Duration,
    phase: u8,
) -> anyhow::Result<Record> {
    let cpu = CpuMeter::start();
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let endpoint = endpoint.clone();
        workers.spawn(async move {
            let mut latency = histogram();
            let (mut rate_limited, mut failed, mut sequence) = (0u64, 0u64, 0u64);
            while Instant::now() < deadline {
                let sent = Instant::now();
                let mut request = match endpoint.request {
                    Request::Read { fresh: false } => endpoint.client.get(&endpoint.url),
                    Request::Read { fresh: true } => endpoint
                        .client
                        .get(&endpoint.url)
                        .header(reqwest::header::CACHE_CONTROL, "no-cache"),
                    Request::Filing { new_company } => {
                        let company = if new_company { sequence } else { sequence / 300 };
                        let symbol = format!("L{}{phase}W{worker}C{company}", endpoint.run);
                        let body = filing(&symbol, 1900 + (sequence % 300) as u16, sequence);
                        sequence += 1;
                        endpoint.client.post(&endpoint.url).json(&body)
                    }
                };
                if let Some(token) = endpoint.token.as_deref() {
                    request = request.bearer_auth(token);
                }
                match request.send().await {
                    Ok(response) if response.status().is_success() => {
                        // The body is read: the request is complete when the client has the prediction.
                        let _ = response.bytes().await;
                        record_since(&mut latency, sent);
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
    let mut latency = histogram();
    let (mut rate_limited, mut failed) = (0, 0);
    while let Some(outcome) = workers.join_next().await {
        let (worker_latency, worker_rate_limited, worker_failed) = outcome.context("a load worker panicked")?;
        latency.add(&worker_latency).context("merge histograms")?;
        rate_limited += worker_rate_limited;
        failed += worker_failed;
    }
    let mut record = Record::new(path, Some(concurrency), started.elapsed(), &latency).with_cpu(cpu.stop());
    record.rejected = rate_limited;
    record.failed = failed;
    Ok(record)
}

/// An AccuNode annual filing.
fn filing(symbol: &str, year: u16, n: u64) -> Value {
    let mut body = json!({
        "company_symbol": symbol,
        "company_name": format!("Load test {symbol}"),
        "market_cap": 1.0e9,
        "sector": "Industrials",
        "reporting_year": year,
    });
    if let Value::Object(fields) = &mut body {
        fields.extend(annual_ratios(n));
    }
    body
}
