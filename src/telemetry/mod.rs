//! Logging and metrics set-up: one home for both.
//!
//! Logs are `tracing` events; every HTTP request runs inside a span carrying its request id, so each line
//! logged while serving it carries the id too (pretty: `http_request{request_id=…}`; JSON: in `spans`).
//! Metrics go to one process-wide Prometheus recorder rendered by `GET /metrics`; each crate's `events` module
//! (this one's [`events`]) names and describes the metrics it records. Every histogram exports with buckets
//! (never as a summary, whose quantiles cannot be added up across instances).

pub mod events;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{EnvFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt};

use crate::configuration::LogFormat;

/// Installs the global tracing subscriber. `RUST_LOG`, when set, overrides `default_filter`.
/// Returns an error if a subscriber is already installed.
pub fn init_tracing(format: LogFormat, default_filter: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(default_filter))?;
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(false)
                    .with_span_list(true)
                    .flatten_event(true),
            )
            .try_init()?,
        LogFormat::Pretty => registry.with(fmt::layer().with_target(true)).try_init()?,
    }
    Ok(())
}

/// Latency buckets (seconds) for every `*_seconds` histogram: 0.5 ms to 10 s.
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets for the histograms that count rows (`pdscore_actors::events::SIZE_HISTOGRAMS`): powers of two up
/// to the largest batch the pipeline forms.
const SIZE_BUCKETS: [f64; 12] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0,
];

/// The process-wide Prometheus recorder, installed on first use.
///
/// The `metrics` facade has a single global recorder per process, so several applications in one process
/// (the integration tests) share it; every series carries labels that tell them apart where it matters.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &DURATION_BUCKETS)
                .expect("the bucket list is a non-empty constant");
            for name in pdscore_actors::events::SIZE_HISTOGRAMS {
                builder = builder
                    .set_buckets_for_metric(Matcher::Full(name.into()), &SIZE_BUCKETS)
                    .expect("the bucket list is a non-empty constant");
            }
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only when another recorder was installed first; the handle still renders ours, empty.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will not see this one");
            }
            describe_metrics();
            handle
        })
        .clone()
}

/// Drains the histograms' samples into their buckets every few seconds until `shutdown`. The recorder keeps
/// every sample recorded until its next upkeep; when that ran only when `/metrics` was scraped, a service that
/// nobody scraped grew by each sample it recorded (8 bytes each, one or more per filing and per request: at
/// 1,000 filings a second, about a gigabyte a day).
pub fn spawn_metrics_upkeep(
    handle: PrometheusHandle,
    shutdown: tokio_util::sync::CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut upkeep = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = upkeep.tick() => handle.run_upkeep(),
            }
        }
    })
}

fn describe_metrics() {
    events::describe();
    pdscore_actors::events::describe();
    pdscore_nats::events::describe();
}
