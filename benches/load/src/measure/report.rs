//! The results tables of BENCHMARKS.md, from one run's records (`pdscore-load report`).

use std::{fmt::Write, path::Path};

use anyhow::Context;

use super::Record;

/// HTTP scoring at this concurrency is held to the targets.
const HTTP_TARGET_CONCURRENCY: usize = 64;
/// The share of the machine's cores a write path keeps busy for the machine to count as full.
const FULL_MACHINE: f64 = 0.9;

/// Reads the JSON lines written by `--record`.
pub fn read(path: &Path) -> anyhow::Result<Vec<Record>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| serde_json::from_str(line).with_context(|| format!("{}: line {}", path.display(), i + 1)))
        .collect()
}

/// Markdown: every measurement, then each path as a ratio of its ceiling, with the targets.
pub fn markdown(records: &[Record]) -> String {
    let mut out = String::new();
    let ms = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.1}"));
    out.push_str("| path | concurrency | operations | per second | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | 429 | failed | machine busy | CPU µs per op |\n");
    out.push_str("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for r in records {
        let _ = writeln!(
            out,
            "| {}{} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            describe(&r.path),
            spread(r),
            r.concurrency.map_or_else(|| "–".to_owned(), |c| c.to_string()),
            r.count,
            r.throughput,
            ms(r.p50_ms),
            ms(r.p90_ms),
            ms(r.p99_ms),
            ms(r.p999_ms),
            ms(r.max_ms),
            r.rejected,
            r.failed,
            r.cpu_busy
                .map_or_else(|| "–".to_owned(), |b| format!("{:.0} %", b * 100.0)),
            r.cpu_us_per_op.map_or_else(|| "–".to_owned(), |c| format!("{c:.0}"))
        );
    }

    out.push_str(
        "\n| path | its bound: the cores over its ceilings' CPU per operation | ratio to the bound | machine busy | target | met |\n|---|---|--:|--:|---|---|\n",
    );
    let find = |path: &str, concurrency: Option<usize>| {
        records
            .iter()
            .rev()
            .find(|r| r.path == path && (concurrency.is_none() || r.concurrency == concurrency))
    };
    let postgres = find("postgres", None);
    // The store's whole commit (the lock and the read model with the rows): what a filing's persistence
    // costs at least as the service must do it; each path's bound against it comes after the issue's.
    let commit = find("postgres-commit", None);
    let scoring = find("scoring", None);
    let busy = |r: &Record| {
        r.cpu_busy
            .map_or_else(|| "–".to_owned(), |b| format!("{:.0} %", b * 100.0))
    };
    let full = |r: &Record| r.cpu_busy.is_some_and(|b| b >= FULL_MACHINE);
    for http in records.iter().filter(|r| r.path == "http") {
        let echo = find("echo", http.concurrency);
        let redis = find("redis", http.concurrency).or_else(|| find("redis", None));
        let c = http.concurrency.unwrap_or(0);
        let parts = [
            ("echo", echo),
            ("session check", redis),
            ("scoring", scoring),
            ("PostgreSQL", postgres),
        ];
        let Some((ratio, bound)) = bound(http, &parts) else {
            continue;
        };
        let (target, met) = if c == HTTP_TARGET_CONCURRENCY {
            let p99 = http.p99_ms.unwrap_or(f64::INFINITY);
            (
                format!("≥ 70 %, p99 ≤ 20 ms (p99 {p99:.1} ms), busy ≥ 90 %"),
                verdict(ratio >= 0.7 && p99 <= 20.0 && full(http)),
            )
        } else {
            ("–".to_owned(), "")
        };
        let _ = writeln!(
            out,
            "| HTTP scoring, {c} concurrent | {bound} | {:.1} % | {} | {target} | {met} |",
            ratio * 100.0,
            busy(http)
        );
        let parts = [parts[0], parts[1], parts[2], ("the store's commit", commit)];
        if let Some((ratio, bound)) = self::bound(http, &parts) {
            let _ = writeln!(
                out,
                "| HTTP scoring, {c} concurrent, against the store's commit | {bound} | {:.1} % | {} | – | |",
                ratio * 100.0,
                busy(http)
            );
        }
    }
    for new in records.iter().filter(|r| r.path == "http-new-company") {
        let Some(known) = find("http", new.concurrency) else {
            continue;
        };
        let c = new.concurrency.unwrap_or(0);
        let ratio = new.throughput / known.throughput;
        let _ = writeln!(
            out,
            "| HTTP scoring, a new company per request, {c} concurrent | the same for known companies ({:.0}/s) | {:.1} % | {} | ≥ 80 % | {} |",
            known.throughput,
            ratio * 100.0,
            busy(new),
            verdict(ratio >= 0.8)
        );
    }
    let jetstream = find("jetstream", None);
    for nats in records.iter().filter(|r| r.path == "nats") {
        let parts = [("JetStream", jetstream), ("scoring", scoring), ("PostgreSQL", postgres)];
        let Some((ratio, bound)) = bound(nats, &parts) else {
            continue;
        };
        let _ = writeln!(
            out,
            "| NATS ingest{} | {bound} | {:.1} % | {} | ≥ 70 %, busy ≥ 90 % | {} |",
            spread(nats),
            ratio * 100.0,
            busy(nats),
            verdict(ratio >= 0.7 && full(nats))
        );
        let parts = [parts[0], parts[1], ("the store's commit", commit)];
        if let Some((ratio, bound)) = self::bound(nats, &parts) {
            let _ = writeln!(
                out,
                "| NATS ingest{}, against the store's commit | {bound} | {:.1} % | {} | – | |",
                spread(nats),
                ratio * 100.0,
                busy(nats)
            );
        }
    }
    for fresh in records.iter().filter(|r| r.path == "portfolio-fresh") {
        let c = fresh.concurrency.unwrap_or(0);
        let cpu = fresh.cpu_us_per_op.unwrap_or(f64::INFINITY);
        let _ = writeln!(
            out,
            "| portfolio page from PostgreSQL{}, {c} concurrent | – | – | {} | ≤ 1 ms of CPU per page ({:.2} ms) | {} |",
            spread(fresh),
            busy(fresh),
            cpu / 1000.0,
            verdict(cpu <= 1000.0)
        );
    }
    for cached in records.iter().filter(|r| r.path == "portfolio") {
        let Some(fresh) = records.iter().rev().find(|r| {
            r.path == "portfolio-fresh" && r.concurrency == cached.concurrency && r.companies == cached.companies
        }) else {
            continue;
        };
        let c = cached.concurrency.unwrap_or(0);
        let _ = writeln!(
            out,
            "| portfolio page from the Redis cache{}, {c} concurrent | the same from PostgreSQL ({:.0}/s) | {:.1}× | {} | kept only if > 1× | {} |",
            spread(cached),
            fresh.throughput,
            cached.throughput / fresh.throughput,
            busy(cached),
            verdict(cached.throughput > fresh.throughput)
        );
    }
    for alerts in records.iter().filter(|r| r.path.starts_with("alerts-")) {
        let p99 = alerts.p99_ms.unwrap_or(f64::INFINITY);
        let _ = writeln!(
            out,
            "| {} | – | – | {} | p99 ≤ 50 ms ({p99:.1} ms), none missing ({} missing) | {} |",
            describe(&alerts.path),
            busy(alerts),
            alerts.failed,
            verdict(p99 <= 50.0 && alerts.failed == 0)
        );
    }
    if let (Some(bulk), Some(postgres)) = (find("bulk", None), postgres) {
        let _ = writeln!(
            out,
            "| bulk job | PostgreSQL's batched inserts ({:.0} rows/s) | {:.1} % | {} | – | |",
            postgres.throughput,
            bulk.throughput / postgres.throughput * 100.0,
            busy(bulk)
        );
    }
    out
}

/// The most a path could do if an operation cost the machine no more CPU than one operation of each of
/// `parts` (ceilings measured on the same machine; each does part of the path's work, so the path costs at
/// least their sum): the cores divided by that sum. The path's throughput as a share of it, and the bound
/// spelled out, with the path's own CPU per operation so that what it spends beyond its ceilings shows.
fn bound(path: &Record, parts: &[(&str, Option<&Record>)]) -> Option<(f64, String)> {
    let mut sum = 0.0;
    let mut terms = Vec::new();
    for &(name, part) in parts {
        let cost = part?.cpu_us_per_op?;
        sum += cost;
        terms.push(format!("{name} {cost:.0}"));
    }
    let cores = path
        .cpu_cores
        .or_else(|| parts.iter().find_map(|(_, p)| p.and_then(|p| p.cpu_cores)))?;
    let most = cores as f64 * 1e6 / sum;
    let own = path
        .cpu_us_per_op
        .map_or_else(String::new, |c| format!("; this path {c:.0} µs"));
    Some((
        path.throughput / most,
        format!("{most:.0}/s ({} = {sum:.0} µs per op{own})", terms.join(" + ")),
    ))
}

fn verdict(met: bool) -> &'static str {
    if met { "yes" } else { "**no**" }
}

/// The companies a stream path's filings were spread over, if it says.
fn spread(record: &Record) -> String {
    record.companies.map(|n| format!(", {n} companies")).unwrap_or_default()
}

fn describe(path: &str) -> &str {
    match path {
        "http" => "HTTP scoring (persisted)",
        "echo" => "ceiling: actix-web JSON echo",
        "nats" => "NATS ingest (publish → committed, acked)",
        "jetstream" => "ceiling: raw JetStream publish + consume",
        "postgres" => "ceiling: batched PostgreSQL insert (rows; latency per batch)",
        "postgres-commit" => {
            "ceiling: the store's commit of the same batches (the companies' lock and risk, the tallies, the alerts' outbox; rows; latency per batch)"
        }
        "scoring" => "ceiling: the default models' scoring of the same rows (batches of 256, one core)",
        "redis" => "ceiling: the session check in Redis (one GET per request)",
        "bulk" => "bulk job (CSV upload → completed)",
        "tenants" => "NATS ingest, one filing for each of many tenants",
        "portfolio" => "dashboard read: portfolio page, riskiest first (Redis cache)",
        "portfolio-fresh" => "dashboard read: the same from PostgreSQL (`Cache-Control: no-cache`)",
        "http-new-company" => "HTTP scoring, a company the service has not seen per request",
        "alerts-nats" => "alert latency on NATS (steady feed at half the ingest throughput; filing published → alert)",
        "alerts-sse" => "alert latency on SSE (the same alerts on `GET /api/v1/alerts/stream`)",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &str, throughput: f64, companies: Option<u64>) -> Record {
        let mut record = Record::throughput_only(path, 1_000, std::time::Duration::from_secs(1));
        record.throughput = throughput;
        record.companies = companies;
        record
    }

    fn measured(path: &str, concurrency: Option<usize>, throughput: f64, cpu_us_per_op: f64) -> Record {
        let mut record = record(path, throughput, None);
        record.concurrency = concurrency;
        record.cpu_busy = Some(0.9);
        record.cpu_us_per_op = Some(cpu_us_per_op);
        record.cpu_cores = Some(2);
        record
    }

    #[test]
    fn a_path_is_bounded_by_the_cpu_of_its_ceilings_together() {
        let mut nats_wide = measured("nats", None, 6_100.0, 300.0);
        nats_wide.companies = Some(10_000);
        let records = [
            measured("echo", Some(64), 40_000.0, 45.0),
            measured("http", Some(64), 2_000.0, 900.0),
            measured("jetstream", None, 80_000.0, 20.0),
            measured("nats", None, 5_100.0, 360.0),
            nats_wide,
            measured("postgres", Some(4), 30_000.0, 45.0),
            measured("postgres-commit", Some(4), 20_000.0, 85.0),
            measured("scoring", None, 100_000.0, 5.0),
            measured("redis", Some(64), 50_000.0, 10.0),
            measured("redis", Some(16), 40_000.0, 12.0),
        ];
        let table = markdown(&records);
        let row = |prefix: &str| table.lines().find(|l| l.starts_with(prefix)).unwrap().to_owned();
        // Two cores over 45 + 10 + 5 + 45 µs (the session check at the same concurrency): 19,048/s, of which
        // 2,000/s is 10.5 %.
        assert_eq!(
            row("| HTTP scoring, 64 concurrent"),
            "| HTTP scoring, 64 concurrent | 19048/s (echo 45 + session check 10 + scoring 5 + PostgreSQL 45 = 105 µs per op; this path 900 µs) | 10.5 % | 90 % | ≥ 70 %, p99 ≤ 20 ms (p99 inf ms), busy ≥ 90 % | **no** |",
        );
        // Two cores over 20 + 5 + 45 µs: 28,571/s; each stream run with its companies.
        assert_eq!(
            row("| NATS ingest |"),
            "| NATS ingest | 28571/s (JetStream 20 + scoring 5 + PostgreSQL 45 = 70 µs per op; this path 360 µs) | 17.8 % | 90 % | ≥ 70 %, busy ≥ 90 % | **no** |"
        );
        assert!(
            row("| NATS ingest, 10000 companies |").contains("| 21.3 % |"),
            "{table}"
        );
        // Against the store's whole commit (85 µs per row instead of the insert's 45): 2 cores over 145 µs for
        // HTTP (13,793/s, of which 2,000/s is 14.5 %), over 110 for NATS (18,182/s, 28.1 %); no target of its own.
        assert_eq!(
            row("| HTTP scoring, 64 concurrent, against the store's commit"),
            "| HTTP scoring, 64 concurrent, against the store's commit | 13793/s (echo 45 + session check 10 + scoring 5 + the store's commit 85 = 145 µs per op; this path 900 µs) | 14.5 % | 90 % | – | |",
        );
        assert!(row("| NATS ingest, against the store's commit |").contains(
            "| 18182/s (JetStream 20 + scoring 5 + the store's commit 85 = 110 µs per op; this path 360 µs) | 28.1 % |"
        ));
        assert!(table.contains("| NATS ingest (publish → committed, acked), 10000 companies | – | 1000 | 6100 |"));
        assert!(row("| ceiling: actix-web JSON echo | 64 |").ends_with("| 0 | 0 | 90 % | 45 |"));
    }

    #[test]
    fn reads_and_alerts_are_held_to_their_own_targets() {
        let mut fresh = measured("portfolio-fresh", Some(64), 2_000.0, 800.0);
        fresh.companies = Some(100_000);
        let mut cached = measured("portfolio", Some(64), 8_000.0, 200.0);
        cached.companies = Some(100_000);
        let mut alerts = measured("alerts-sse", None, 900.0, 100.0);
        alerts.p99_ms = Some(12.5);
        let table = markdown(&[fresh, cached, alerts]);
        // The targets' table comes last (a measurement's row may start as its target's does).
        let row = |prefix: &str| table.lines().rev().find(|l| l.starts_with(prefix)).unwrap().to_owned();
        assert!(
            row("| portfolio page from PostgreSQL, 100000 companies, 64 concurrent").ends_with("(0.80 ms) | yes |")
        );
        assert!(row("| portfolio page from the Redis cache, 100000 companies").contains("| 4.0× |"));
        assert!(row("| alert latency on SSE").ends_with("p99 ≤ 50 ms (12.5 ms), none missing (0 missing) | yes |"));
    }
}
