//! `pdscore-load`: the load generator and the ceilings it compares the service with.
//!
//! Paths through the service, against a running instance with real JWTs:
//! - [`http`]: single persisted predictions at fixed concurrency;
//! - [`stream`]: filings published to JetStream at full speed, timed from publish to the service's ack (sent
//!   after the commit);
//! - [`bulk`]: a generated CSV uploaded as a bulk job, timed from upload to the job's completion;
//! - [`alerts`]: a steady feed of filings on NATS, timed from a filing's publication to the alert it raises,
//!   on NATS and on the SSE stream.
//!
//! Ceilings, on the same machine and payloads: a bare actix-web JSON echo ([`echo`], driven by [`http`]),
//! raw JetStream publish + consume ([`stream`]), the default models' scoring of the same rows and the store's
//! own batched inserts of them without the pipeline ([`postgres`]), and the session check every request makes
//! in Redis ([`redis`]).
//!
//! Each measurement prints a table row and, with `--record FILE`, appends a [`Record`] (one JSON line);
//! [`report`] turns a run's records into the results table of BENCHMARKS.md.

pub mod alerts;
pub mod bulk;
pub mod cpu;
pub mod echo;
pub mod http;
pub mod postgres;
pub mod redis;
pub mod report;
pub mod stream;

use std::{
    io::Write,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What one measurement found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// `http`, `echo`, `nats`, `jetstream`, `postgres` or `bulk`.
    pub path: String,
    /// Concurrent clients (HTTP), transactions in flight (PostgreSQL); none for the other paths.
    pub concurrency: Option<usize>,
    /// Operations that succeeded (requests, filings, rows).
    pub count: u64,
    pub seconds: f64,
    /// Operations per second.
    pub throughput: f64,
    /// Latency percentiles in milliseconds (none where the path has no per-operation latency).
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Refused for the rate limit (HTTP 429).
    pub rejected: u64,
    pub failed: u64,
    /// Companies the filings were spread over (the stream paths).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub companies: Option<u64>,
    /// Share of the machine's cores busy over the measurement (everything on the machine: the service, its
    /// dependencies and the load tool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_busy: Option<f64>,
    /// The machine's busy CPU time per operation counted, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_us_per_op: Option<f64>,
    /// The machine's cores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_cores: Option<usize>,
}

impl Record {
    /// A record whose latencies (microseconds) are in `latency`.
    pub fn new(path: &str, concurrency: Option<usize>, elapsed: Duration, latency: &Histogram<u64>) -> Self {
        let measured = !latency.is_empty();
        let ms = |micros: u64| measured.then(|| micros as f64 / 1000.0);
        let seconds = elapsed.as_secs_f64();
        Self {
            path: path.to_owned(),
            concurrency,
            count: latency.len(),
            seconds,
            throughput: latency.len() as f64 / seconds.max(1e-9),
            p50_ms: ms(latency.value_at_quantile(0.5)),
            p90_ms: ms(latency.value_at_quantile(0.9)),
            p99_ms: ms(latency.value_at_quantile(0.99)),
            p999_ms: ms(latency.value_at_quantile(0.999)),
            max_ms: ms(latency.max()),
            rejected: 0,
            failed: 0,
            companies: None,
            cpu_busy: None,
            cpu_us_per_op: None,
            cpu_cores: None,
        }
    }

    /// The machine's CPU use over the measurement, per operation counted (call once `count` is final).
    pub fn with_cpu(mut self, cpu: Option<cpu::CpuUse>) -> Self {
        if let Some(cpu) = cpu {
            self.cpu_busy = Some(cpu.busy);
            self.cpu_cores = Some(cpu.cores);
            self.cpu_us_per_op = (self.count > 0).then(|| cpu.cpu_seconds * 1e6 / self.count as f64);
        }
        self
    }

    /// A record of `count` operations without per-operation latency.
    pub fn throughput_only(path: &str, count: u64, elapsed: Duration) -> Self {
        let mut record = Self::new(path, None, elapsed, &histogram());
        record.count = count;
        record.throughput = count as f64 / elapsed.as_secs_f64().max(1e-9);
        record
    }

    pub const HEADER: &'static str = "path        conc     count     ops/s   p50 ms   p90 ms   p99 ms  p99.9 ms   max ms   429  failed  busy  CPU us/op";

    /// One line under [`Record::HEADER`].
    pub fn row(&self) -> String {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
        format!(
            "{:<10} {:>5} {:>9} {:>9.0} {:>8} {:>8} {:>8} {:>9} {:>8} {:>5} {:>7} {:>5} {:>10}",
            self.path,
            self.concurrency.map_or_else(|| "-".to_owned(), |c| c.to_string()),
            self.count,
            self.throughput,
            ms(self.p50_ms),
            ms(self.p90_ms),
            ms(self.p99_ms),
            ms(self.p999_ms),
            ms(self.max_ms),
            self.rejected,
            self.failed,
            self.cpu_busy
                .map_or_else(|| "-".to_owned(), |b| format!("{:.0}%", b * 100.0)),
            self.cpu_us_per_op.map_or_else(|| "-".to_owned(), |c| format!("{c:.0}"))
        )
    }

    /// Prints the row and, when `record` names a file, appends the record to it as one JSON line.
    pub fn emit(&self, record: Option<&Path>) -> anyhow::Result<()> {
        println!("{}", self.row());
        if let Some(path) = record {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            writeln!(file, "{}", serde_json::to_string(self)?)?;
        }
        Ok(())
    }
}

/// A latency histogram in microseconds, 1 µs to 10 minutes, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Records `since.elapsed()` (saturating at the histogram's bound).
pub fn record_since(latency: &mut Histogram<u64>, since: Instant) {
    latency.saturating_record(since.elapsed().as_micros() as u64);
}

/// AccuNode annual ratios (percent units) that vary with `n`, so that every bin of the scorecard is used.
pub fn annual_ratios(n: u64) -> serde_json::Map<String, Value> {
    let x = (n % 97) as f64;
    let ratios = json!({
        "long_term_debt_to_total_capital": 10.0 + x * 0.6,
        "total_debt_to_ebitda": 0.5 + x * 0.08,
        "net_income_margin": -5.0 + x * 0.3,
        "ebit_to_interest_expense": 1.0 + x * 0.2,
        "return_on_assets": -3.0 + x * 0.15,
    });
    match ratios {
        Value::Object(map) => map,
        _ => unreachable!("an object literal"),
    }
}

/// A short random tag that keeps one run's companies and filing ids apart from another's.
pub fn run_tag() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..6].to_uppercase()
}
