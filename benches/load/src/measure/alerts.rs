//! Alert latency: a steady feed of filings on NATS (open loop: published on a fixed schedule whatever the
//! service does, not as fast as it goes), where some filings move their company's PD enough to raise an alert,
//! timed from each such filing's publication to its alert's arrival on NATS (`alerts.<tenant>.<company>`) and
//! on the service's Server-Sent Events stream (`GET /api/v1/alerts/stream`).
//!
//! Each company files one fiscal year after another with healthy ratios, except every tenth year, which is
//! distressed: the distressed year and the healthy year after it each move the PD past the tenant's
//! `alert_pd_change`, so a fifth of the filings (after each company's first) raise an alert, known in advance.
//! The companies' distressed years are staggered (company `c` is distressed in the years `k` with
//! `(k + c) % 10 == 9`), so that a fifth of every round of the companies' filings after the first raises an alert
//! (exactly, with a multiple of 10 companies): a steady stream of alerts like the feed. With the same year
//! distressed for every company, the alerts came in waves (every filing of two rounds in ten, none between), and
//! the latency measured was the waves' queue.

use std::{
    collections::HashMap,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use futures_util::StreamExt;
use pdscore_nats::Namespace;
use serde_json::{Map, Value, json};

use super::{Record, cpu::CpuMeter, histogram, run_tag};
use crate::{
    client::sign_in,
    measure::stream::{create_companies, ratios_message},
};

/// How long after the last publication alerts are waited for.
const GRACE: Duration = Duration::from_secs(10);

pub struct AlertLoad<'a> {
    pub url: &'a str,
    pub email: &'a str,
    pub password: &'a str,
    pub nats_url: &'a str,
    /// The service's `nats.prefix`.
    pub prefix: &'a str,
    /// The signed-in account's tenant (its slug).
    pub tenant: &'a str,
    /// Filings published per second.
    pub rate: f64,
    pub duration: Duration,
    pub companies: u64,
    /// Print the latency on NATS second by second.
    pub timeline: bool,
    pub record: Option<&'a Path>,
}

/// A filing's place: (company symbol, fiscal year).
type Key = (String, u16);

/// When each alert arrived, by the filing that raised it.
type Arrivals = Arc<Mutex<Vec<(Key, Instant)>>>;

fn healthy() -> Map<String, Value> {
    ratios(15.0, 0.8, 18.0, 25.0, 12.0)
}

fn distressed() -> Map<String, Value> {
    ratios(85.0, 9.0, -12.0, 0.4, -9.0)
}

fn ratios(debt_to_capital: f64, debt_to_ebitda: f64, margin: f64, coverage: f64, roa: f64) -> Map<String, Value> {
    match json!({
        "long_term_debt_to_total_capital": debt_to_capital,
        "total_debt_to_ebitda": debt_to_ebitda,
        "net_income_margin": margin,
        "ebit_to_interest_expense": coverage,
        "return_on_assets": roa,
    }) {
        Value::Object(map) => map,
        _ => unreachable!("an object literal"),
    }
}

/// Year `k` of company `company`: distressed every tenth year, staggered by company.
fn is_distressed(company: u64, k: u64) -> bool {
    (k + company) % 10 == 9
}

/// Whether year `k` of company `company` raises an alert: it moves into or out of distress.
fn raises_alert(company: u64, k: u64) -> bool {
    k > 0 && is_distressed(company, k) != is_distressed(company, k - 1)
}

pub async fn run(load: AlertLoad<'_>) -> anyhow::Result<()> {
    anyhow::ensure!(load.rate > 0.0, "--rate must be positive");
    let base = load.url.trim_end_matches('/');
    let client = reqwest::Client::new();
    let token = sign_in(&client, base, load.email, load.password).await?.access;
    let run = run_tag();
    let companies = load.companies.max(1);
    create_companies(&client, base, &token, &run, companies).await?;
    let namespace = Namespace::parse(load.prefix).map_err(|e| anyhow::anyhow!("{e}"))?;
    let nats = async_nats::connect(load.nats_url)
        .await
        .with_context(|| format!("cannot reach NATS at {}", load.nats_url))?;

    // Both receivers are listening before the first filing goes out.
    let on_nats: Arrivals = Arc::default();
    let mut subscription = nats
        .subscribe(namespace.alerts(load.tenant, "*"))
        .await
        .context("subscribe to the tenant's alerts")?;
    let nats_task = {
        let arrivals = on_nats.clone();
        tokio::spawn(async move {
            while let Some(message) = subscription.next().await {
                let at = Instant::now();
                if let Some(key) = alert_key(&message.payload) {
                    arrivals.lock().unwrap_or_else(|e| e.into_inner()).push((key, at));
                }
            }
        })
    };
    let on_sse: Arrivals = Arc::default();
    let response = client
        .get(format!("{base}/api/v1/alerts/stream"))
        .bearer_auth(&token)
        .send()
        .await
        .context("open the alert stream")?
        .error_for_status()
        .context("open the alert stream")?;
    let sse_task = {
        let arrivals = on_sse.clone();
        tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut buffer: Vec<u8> = Vec::new();
            while let Some(Ok(chunk)) = body.next().await {
                let at = Instant::now();
                buffer.extend_from_slice(&chunk);
                while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=end).collect();
                    if let Some(data) = line.strip_prefix(b"data: ")
                        && let Some(key) = alert_key(data)
                    {
                        arrivals.lock().unwrap_or_else(|e| e.into_inner()).push((key, at));
                    }
                }
            }
        })
    };

    let js = async_nats::jetstream::new(nats);
    let subject = namespace.filings(load.tenant, "annual");
    let (healthy, distressed) = (healthy(), distressed());
    let total = (load.rate * load.duration.as_secs_f64()).ceil() as u64;
    let mut published: HashMap<Key, Instant> = HashMap::new();
    let failed = Arc::new(AtomicU64::new(0));
    let mut expected = 0;
    let cpu = CpuMeter::start();
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let mut i = 0;
    while i < total {
        let due = ((started.elapsed().as_secs_f64() * load.rate) as u64 + 1).min(total);
        while i < due {
            let (company, k) = (i % companies, i / companies);
            let symbol = format!("N{run}C{company}");
            let year = 1900 + u16::try_from(k).context("too many filings per company: use more --companies")?;
            let ratios = if is_distressed(company, k) {
                &distressed
            } else {
                &healthy
            };
            let payload = ratios_message(&run, i, &symbol, year, ratios);
            let sent = Instant::now();
            let ack = js
                .publish(subject.clone(), payload.into())
                .await
                .map_err(|e| anyhow::anyhow!("publish: {e}"))?;
            let failed = failed.clone();
            tokio::spawn(async move {
                if ack.await.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            });
            if raises_alert(company, k) {
                expected += 1;
                published.insert((symbol, year), sent);
            }
            i += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let feed = started.elapsed();
    let deadline = Instant::now() + GRACE;
    let count = |arrivals: &Arrivals| arrivals.lock().unwrap_or_else(|e| e.into_inner()).len();
    while (count(&on_nats) < expected || count(&on_sse) < expected) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu = cpu.stop();
    nats_task.abort();
    sse_task.abort();
    println!(
        "fed {total} filings in {:.1} s ({:.0}/s, {} not stored by JetStream), {expected} raising an alert",
        feed.as_secs_f64(),
        total as f64 / feed.as_secs_f64(),
        failed.load(Ordering::Relaxed)
    );
    if load.timeline {
        let arrivals = on_nats.lock().unwrap_or_else(|e| e.into_inner());
        print_timeline(started, started_at, &published, &arrivals);
    }
    println!("{}", Record::HEADER);
    for (path, arrivals) in [("alerts-nats", &on_nats), ("alerts-sse", &on_sse)] {
        let arrivals = std::mem::take(&mut *arrivals.lock().unwrap_or_else(|e| e.into_inner()));
        let mut latency = histogram();
        for (key, at) in &arrivals {
            if let Some(sent) = published.get(key) {
                latency.saturating_record(at.saturating_duration_since(*sent).as_micros() as u64);
            }
        }
        let mut record = Record::new(path, None, feed, &latency).with_cpu(cpu);
        record.failed = (expected as u64).saturating_sub(record.count);
        record.companies = Some(companies);
        record.emit(load.record)?;
    }
    Ok(())
}

/// The alerts' latency by the second of the feed their filing was published in, with that second's time.
fn print_timeline(
    started: Instant,
    started_at: chrono::DateTime<chrono::Utc>,
    published: &HashMap<Key, Instant>,
    arrivals: &[(Key, Instant)],
) {
    let mut seconds: Vec<hdrhistogram::Histogram<u64>> = Vec::new();
    for (key, at) in arrivals {
        let Some(sent) = published.get(key) else { continue };
        let second = sent.saturating_duration_since(started).as_secs() as usize;
        if seconds.len() <= second {
            seconds.resize_with(second + 1, histogram);
        }
        seconds[second].saturating_record(at.saturating_duration_since(*sent).as_micros() as u64);
    }
    println!("second (UTC)  alerts  p50 ms  p99 ms  max ms");
    for (second, latency) in seconds.iter().enumerate() {
        let at = started_at + chrono::TimeDelta::seconds(second as i64);
        let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "{}  {:>6}  {:>6.1}  {:>6.1}  {:>6.1}",
            at.format("%H:%M:%S"),
            latency.len(),
            ms(0.5),
            ms(0.99),
            latency.max() as f64 / 1000.0
        );
    }
}

/// The filing an alert (JSON of a risk-change alert) was raised for.
fn alert_key(payload: &[u8]) -> Option<Key> {
    let alert: Value = serde_json::from_slice(payload).ok()?;
    let symbol = alert.get("company_symbol")?.as_str()?.to_owned();
    let year = u16::try_from(alert.get("period_year")?.as_u64()?).ok()?;
    Some((symbol, year))
}

/// Half the throughput of the first `nats` measurement in a record file: the steady feed's rate.
pub fn half_of_nats(records: &Path) -> anyhow::Result<f64> {
    let text = std::fs::read_to_string(records).with_context(|| format!("cannot read {}", records.display()))?;
    text.lines()
        .filter_map(|line| serde_json::from_str::<Record>(line).ok())
        .find(|r| r.path == "nats")
        .map(|r| r.throughput / 2.0)
        .with_context(|| format!("no nats measurement in {}: pass --rate", records.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifth_of_the_years_after_the_first_raise_an_alert() {
        let alerts: Vec<u64> = (0..30).filter(|&k| raises_alert(0, k)).collect();
        assert_eq!(alerts, [9, 10, 19, 20, 29]);
        let alerts: Vec<u64> = (0..30).filter(|&k| raises_alert(3, k)).collect();
        assert_eq!(alerts, [6, 7, 16, 17, 26, 27]);
    }

    #[test]
    fn a_fifth_of_every_round_after_the_first_raises_an_alert() {
        assert_eq!((0..1000).filter(|&company| raises_alert(company, 0)).count(), 0);
        for k in 1..25 {
            let raising = (0..1000).filter(|&company| raises_alert(company, k)).count();
            assert_eq!(raising, 200, "year {k}");
        }
    }
}
