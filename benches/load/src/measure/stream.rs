//! Stream load: filings published to JetStream at full speed, and the raw JetStream ceiling.
//!
//! - [`service`]: publishes to the service's FILINGS stream (`filings.<tenant>.annual`) for companies it
//!   creates through the API, and times each filing from its publication to the moment the service's durable
//!   consumer has acknowledged it — the service acks only after the prediction is committed. The ack floor
//!   (every message up to it acknowledged) is sampled every 10 ms, so a filing's time is an upper bound: it
//!   counts until every earlier filing is committed too.
//! - [`ceiling`]: the same payloads on a stream of the same configuration, consumed by a pull consumer of the
//!   same configuration that only acks — JetStream's own publish + consume cost on this machine.

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use async_nats::jetstream::{
    self,
    consumer::{AckPolicy, DeliverPolicy, pull},
};
use futures_util::{StreamExt, TryStreamExt, stream::FuturesUnordered};
use pdscore_nats::{Namespace, StreamKind};
use serde_json::json;

use super::{Record, annual_ratios, cpu::CpuMeter, histogram, run_tag};
use crate::client::{call, sign_in};

/// Publications awaiting their JetStream ack at once.
const PUBLISH_WINDOW: usize = 4096;
/// Longest wait for the consumer to make progress before the run is declared stuck.
const STALL: Duration = Duration::from_secs(60);

pub struct ServiceLoad<'a> {
    /// The service's HTTP address (sign-in and company creation).
    pub url: &'a str,
    pub email: &'a str,
    pub password: &'a str,
    pub nats_url: &'a str,
    /// The service's `nats.prefix`.
    pub prefix: &'a str,
    /// The signed-in account's tenant (its slug).
    pub tenant: &'a str,
    /// The service's durable consumer (`pipeline.consumer_name`).
    pub consumer: &'a str,
    pub count: u64,
    pub companies: u64,
    pub record: Option<&'a Path>,
}

/// Publishes `count` filings for the tenant and waits until the service has committed and acknowledged
/// every one.
pub async fn service(load: ServiceLoad<'_>) -> anyhow::Result<Record> {
    let base = load.url.trim_end_matches('/');
    let client = reqwest::Client::new();
    let token = sign_in(&client, base, load.email, load.password).await?.access;
    let run = run_tag();
    let companies = load.companies.max(1);
    create_companies(&client, base, &token, &run, companies).await?;
    let namespace = Namespace::parse(load.prefix).map_err(|e| anyhow::anyhow!("{e}"))?;
    let subject = namespace.filings(load.tenant, "annual");
    let mut record = through_service(load.nats_url, &namespace, load.consumer, load.count, |i| {
        (subject.clone(), spread_filing(&run, i, companies))
    })
    .await?;
    record.path = "nats".into();
    record.companies = Some(companies);
    record.emit(load.record)?;
    Ok(record)
}

/// Creates the companies `N<run>C0` … `N<run>C<count - 1>` in the signed-in account's organization; answers
/// the organization's id.
pub async fn create_companies(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    run: &str,
    count: u64,
) -> anyhow::Result<String> {
    let me = call(
        client.get(format!("{base}/api/v1/auth/me")).bearer_auth(token),
        "who am I",
    )
    .await?;
    let organization = me["user"]["organization_id"]
        .as_str()
        .context("the account has no organization of its own (use an org_member or org_admin)")?
        .to_owned();
    // Created 16 at a time: a universe of 10,000 companies one after the other took longer than the load.
    let created = futures_util::stream::iter(0..count)
        .map(|c| {
            let symbol = format!("N{run}C{c}");
            call(
                client
                    .post(format!("{base}/api/v1/organizations/{organization}/companies"))
                    .bearer_auth(token)
                    .json(
                        &json!({ "symbol": symbol, "name": format!("Stream load {symbol}"), "sector": "Industrials" }),
                    ),
                "create a company",
            )
        })
        .buffer_unordered(16);
    created.try_for_each(|_| async { Ok(()) }).await?;
    Ok(organization)
}

/// Many tenants sending a little: one filing for each of the tenants `scale-1` … `scale-<count>` (each with
/// a company `S`; `scripts/bench.sh` creates them), so that the service starts a tenant actor for each.
pub async fn tenants(
    nats_url: &str,
    prefix: &str,
    consumer: &str,
    count: u64,
    record_to: Option<&Path>,
) -> anyhow::Result<Record> {
    let run = run_tag();
    let namespace = Namespace::parse(prefix).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut record = through_service(nats_url, &namespace, consumer, count, |i| {
        (
            namespace.filings(&format!("scale-{}", i + 1), "annual"),
            filing_message(&run, i, "S", 2024),
        )
    })
    .await?;
    record.path = "tenants".into();
    record.emit(record_to)?;
    Ok(record)
}

/// Publishes `count` messages to the service's FILINGS stream and waits until its consumer's ack floor has
/// passed the last one.
async fn through_service(
    nats_url: &str,
    namespace: &Namespace,
    consumer: &str,
    count: u64,
    message: impl Fn(u64) -> (String, Vec<u8>),
) -> anyhow::Result<Record> {
    let nats = async_nats::connect(nats_url)
        .await
        .with_context(|| format!("cannot reach NATS at {nats_url}"))?;
    let js = jetstream::new(nats);
    // The service puts its stream and consumer in place just after it starts answering HTTP.
    let deadline = Instant::now() + Duration::from_secs(30);
    let stream = loop {
        let found = match js
            .get_stream(namespace.stream_name(StreamKind::Filings.base_name()))
            .await
        {
            Ok(stream) => stream
                .consumer_info(consumer)
                .await
                .map(|_| stream)
                .map_err(anyhow::Error::from),
            Err(e) => Err(e.into()),
        };
        match found {
            Ok(stream) => break stream,
            Err(e) if Instant::now() > deadline => {
                bail!("no FILINGS stream with consumer {consumer:?} (is the service consuming with this prefix?): {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let consumer = consumer.to_owned();
    let sampler = Sampler::start(move || {
        let (stream, consumer) = (stream.clone(), consumer.clone());
        async move {
            let info = stream.consumer_info(&consumer).await?;
            Ok::<_, anyhow::Error>(info.ack_floor.stream_sequence)
        }
    });
    let published = publish(&js, count, message).await?;
    let acked = sampler.until(published.last_sequence).await?;
    let mut record = published.record("", &acked)?;
    record.failed = count - record.count;
    Ok(record)
}

/// Raw JetStream: a stream and a consumer configured as the service's, the same payloads published at full
/// speed and consumed by acking each message; the stream is deleted afterwards.
pub async fn ceiling(nats_url: &str, count: u64, companies: u64, record_to: Option<&Path>) -> anyhow::Result<Record> {
    let nats = async_nats::connect(nats_url)
        .await
        .with_context(|| format!("cannot reach NATS at {nats_url}"))?;
    let js = jetstream::new(nats);
    let run = run_tag();
    let namespace =
        Namespace::parse(&format!("loadceiling{}", run.to_lowercase())).map_err(|e| anyhow::anyhow!("{e}"))?;
    let config = StreamKind::Filings
        .config(&namespace)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let stream = js.create_stream(config).await.context("create the ceiling's stream")?;
    let outcome = async {
        let consumer = stream
            .create_consumer(pull::Config {
                durable_name: Some("ceiling".into()),
                filter_subject: namespace.subject("filings.>"),
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                deliver_policy: DeliverPolicy::All,
                max_deliver: -1,
                max_ack_pending: 20_000,
                ..Default::default()
            })
            .await
            .context("create the ceiling's consumer")?;
        let acks: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
        let consume = {
            let acks = acks.clone();
            async move {
                let mut messages = consumer
                    .stream()
                    .max_messages_per_batch(256)
                    .messages()
                    .await
                    .context("pull from the ceiling's consumer")?;
                let mut seen = 0;
                while seen < count {
                    let message = messages
                        .next()
                        .await
                        .context("the ceiling's consumer ended")?
                        .map_err(|e| anyhow::anyhow!("pull: {e}"))?;
                    let sequence = message.info().map(|i| i.stream_sequence).unwrap_or(0);
                    message.ack().await.map_err(|e| anyhow::anyhow!("ack: {e}"))?;
                    acks.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((sequence, Instant::now()));
                    seen += 1;
                }
                Ok::<_, anyhow::Error>(())
            }
        };
        let consumer_task = tokio::spawn(consume);
        let subject = namespace.filings("ceiling", "annual");
        let companies = companies.max(1);
        let published = publish(&js, count, |i| (subject.clone(), spread_filing(&run, i, companies))).await?;
        tokio::time::timeout(STALL * 5, consumer_task)
            .await
            .context("the ceiling's consumer did not finish")?
            .context("the ceiling's consumer panicked")??;
        let mut acks = std::mem::take(&mut *acks.lock().unwrap_or_else(|e| e.into_inner()));
        acks.sort_unstable();
        published.record("jetstream", &Acked::PerMessage(acks))
    }
    .await;
    let _ = js
        .delete_stream(namespace.stream_name(StreamKind::Filings.base_name()))
        .await;
    let record = outcome?;
    record.emit(record_to)?;
    Ok(record)
}

/// Filing `i` of a run spread over `companies` companies (`N<run>C<c>`): company `i % companies`, its
/// periods counting up from 1900.
pub fn spread_filing(run: &str, i: u64, companies: u64) -> Vec<u8> {
    let company = i % companies;
    let year = 1900 + (i / companies % 300) as u16;
    filing_message(run, i, &format!("N{run}C{company}"), year)
}

/// A schema-1 filing message for `symbol` and `year`, its ratios varying with `i`.
fn filing_message(run: &str, i: u64, symbol: &str, year: u16) -> Vec<u8> {
    ratios_message(run, i, symbol, year, &annual_ratios(i))
}

/// A schema-1 filing message (id `load-<run>-<i>`) of these AccuNode ratios.
pub fn ratios_message(
    run: &str,
    i: u64,
    symbol: &str,
    year: u16,
    ratios: &serde_json::Map<String, serde_json::Value>,
) -> Vec<u8> {
    let message = json!({
        "schema_version": 1,
        "filing_id": format!("load-{run}-{i}"),
        "company_symbol": symbol,
        "reporting_year": year,
        "ratios": ratios,
    });
    serde_json::to_vec(&message).expect("JSON values serialize")
}

/// What was published: each message's publication instant and stream sequence.
struct Published {
    /// The machine's CPU from the first publication on.
    cpu: CpuMeter,
    started: Instant,
    /// (stream sequence, published at), in sequence order.
    messages: Vec<(u64, Instant)>,
    last_sequence: u64,
}

/// When messages were acknowledged.
enum Acked {
    /// (stream sequence, acked at) for each message, in sequence order.
    PerMessage(Vec<(u64, Instant)>),
    /// Samples of the consumer's ack floor: (taken at, floor), both non-decreasing.
    Floor(Vec<(Instant, u64)>),
}

impl Published {
    /// Throughput from the first publication to the last ack, latency from each publication to its ack.
    fn record(&self, path: &str, acked: &Acked) -> anyhow::Result<Record> {
        let mut latency = histogram();
        let mut last = self.started;
        for &(sequence, published) in &self.messages {
            let at = match acked {
                Acked::PerMessage(acks) => acks
                    .binary_search_by_key(&sequence, |(s, _)| *s)
                    .ok()
                    .map(|i| acks[i].1),
                Acked::Floor(samples) => {
                    let i = samples.partition_point(|(_, floor)| *floor < sequence);
                    samples.get(i).map(|(at, _)| *at)
                }
            };
            let Some(at) = at else { continue };
            latency.saturating_record(at.saturating_duration_since(published).as_micros() as u64);
            last = last.max(at);
        }
        Ok(Record::new(path, None, last - self.started, &latency).with_cpu(self.cpu.stop()))
    }
}

/// Publishes `count` messages (`message(i)` gives the subject and payload) with up to [`PUBLISH_WINDOW`]
/// awaiting their ack.
async fn publish(
    js: &jetstream::Context,
    count: u64,
    message: impl Fn(u64) -> (String, Vec<u8>),
) -> anyhow::Result<Published> {
    let cpu = CpuMeter::start();
    let started = Instant::now();
    let mut messages = Vec::with_capacity(count as usize);
    let mut pending = FuturesUnordered::new();
    for i in 0..count {
        let (subject, payload) = message(i);
        let sent = Instant::now();
        let ack = js
            .publish(subject, payload.into())
            .await
            .map_err(|e| anyhow::anyhow!("publish: {e}"))?;
        pending.push(async move { ack.await.map(|ack| (ack.sequence, sent)) });
        if pending.len() >= PUBLISH_WINDOW {
            messages.push(next_ack(&mut pending).await?);
        }
    }
    while !pending.is_empty() {
        messages.push(next_ack(&mut pending).await?);
    }
    messages.sort_unstable();
    let last_sequence = messages.last().map_or(0, |(s, _)| *s);
    Ok(Published {
        cpu,
        started,
        messages,
        last_sequence,
    })
}

async fn next_ack<F, E>(pending: &mut FuturesUnordered<F>) -> anyhow::Result<(u64, Instant)>
where
    F: std::future::Future<Output = Result<(u64, Instant), E>>,
    E: std::fmt::Display,
{
    match pending.next().await {
        Some(Ok(ack)) => Ok(ack),
        Some(Err(e)) => bail!("JetStream did not store a message: {e}"),
        None => bail!("no publication pending"),
    }
}

/// Samples the service consumer's ack floor every 10 ms in a task of its own. Each sample is a JetStream API
/// request on the machine under test: sampled every 2 ms, they cost nats-server 4-10 µs of CPU per filing at
/// ~8,000 filings/s (25-37 µs instead of 21-25), CPU the service's own path competes for.
struct Sampler {
    target: tokio::sync::watch::Sender<u64>,
    task: tokio::task::JoinHandle<anyhow::Result<Vec<(Instant, u64)>>>,
}

impl Sampler {
    fn start<F, Fut>(floor: F) -> Self
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = anyhow::Result<u64>> + Send,
    {
        let (target, mut wanted) = tokio::sync::watch::channel(u64::MAX);
        let task = tokio::spawn(async move {
            let mut samples: Vec<(Instant, u64)> = Vec::new();
            let mut progress = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                let value = floor().await?;
                let now = Instant::now();
                let highest = samples.last().map_or(0, |(_, f)| *f);
                if value > highest {
                    samples.push((now, value));
                    progress = now;
                }
                if value >= *wanted.borrow_and_update() {
                    return Ok(samples);
                }
                if progress.elapsed() > STALL {
                    bail!(
                        "the service acknowledged nothing for {} s (ack floor {highest})",
                        STALL.as_secs()
                    );
                }
            }
        });
        Self { target, task }
    }

    /// Waits until the floor reaches `sequence`; returns the samples.
    async fn until(self, sequence: u64) -> anyhow::Result<Acked> {
        let _ = self.target.send(sequence);
        let samples = self.task.await.context("the ack-floor sampler panicked")??;
        Ok(Acked::Floor(samples))
    }
}
