//! The results tables of BENCHMARKS.md, from one run's records (`pdscore-load report`).

use std::{fmt::Write, path::Path};

use anyhow::Context;

use super::Record;

/// HTTP scoring at this concurrency is held to the targets.
const HTTP_TARGET_CONCURRENCY: usize = 64;

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
        "\n| path | ceiling | ratio | target | met | at most, at its ceilings' CPU per operation |\n|---|---|--:|---|---|---|\n",
    );
    let find = |path: &str, concurrency: Option<usize>| {
        records
            .iter()
            .rev()
            .find(|r| r.path == path && (concurrency.is_none() || r.concurrency == concurrency))
    };
    let postgres = find("postgres", None);
    for http in records.iter().filter(|r| r.path == "http") {
        let Some(echo) = find("echo", http.concurrency) else {
            continue;
        };
        let ratio = http.throughput / echo.throughput;
        let c = http.concurrency.unwrap_or(0);
        let (target, met) = if c == HTTP_TARGET_CONCURRENCY {
            let p99 = http.p99_ms.unwrap_or(f64::INFINITY);
            (
                format!("≥ 50 % and p99 < 20 ms (p99 {p99:.1} ms)"),
                verdict(ratio >= 0.5 && p99 < 20.0),
            )
        } else {
            ("–".to_owned(), "")
        };
        let _ = writeln!(
            out,
            "| HTTP scoring, {c} concurrent | echo, {c} concurrent ({:.0}/s) | {:.1} % | {target} | {met} | {} |",
            echo.throughput,
            ratio * 100.0,
            bound(http, echo, [("echo", Some(echo)), ("PostgreSQL", postgres)])
        );
    }
    let jetstream = find("jetstream", None);
    let lowest = [jetstream, postgres]
        .into_iter()
        .flatten()
        .min_by(|a, b| a.throughput.total_cmp(&b.throughput));
    for nats in records.iter().filter(|r| r.path == "nats") {
        let Some(lowest) = lowest else { break };
        let ratio = nats.throughput / lowest.throughput;
        let _ = writeln!(
            out,
            "| NATS ingest{} | min(JetStream, PostgreSQL) = {} ({:.0}/s) | {:.1} % | ≥ 50 % | {} | {} |",
            spread(nats),
            lowest.path,
            lowest.throughput,
            ratio * 100.0,
            verdict(ratio >= 0.5),
            bound(nats, lowest, [("JetStream", jetstream), ("PostgreSQL", postgres)])
        );
    }
    for cached in records.iter().filter(|r| r.path == "portfolio") {
        let Some(fresh) = find("portfolio-fresh", cached.concurrency) else {
            continue;
        };
        let c = cached.concurrency.unwrap_or(0);
        let _ = writeln!(
            out,
            "| portfolio page from the Redis cache, {c} concurrent | the same from PostgreSQL ({:.0}/s) | {:.1}× | kept only if > 1× | {} | – |",
            fresh.throughput,
            cached.throughput / fresh.throughput,
            verdict(cached.throughput > fresh.throughput)
        );
    }
    if let (Some(bulk), Some(postgres)) = (find("bulk", None), postgres) {
        let _ = writeln!(
            out,
            "| bulk job | PostgreSQL ({:.0} rows/s) | {:.1} % | – | | – |",
            postgres.throughput,
            bulk.throughput / postgres.throughput * 100.0
        );
    }
    out
}

/// The most `path` could do, as a share of `ceiling`'s throughput, if an operation cost the machine no more CPU
/// than one operation of each of `parts` (ceilings measured on the same machine; each does part of the path's
/// work, so the path costs at least their sum): the cores divided by that sum. With the path's own CPU per
/// operation, so what it spends beyond its ceilings shows.
fn bound(path: &Record, ceiling: &Record, parts: [(&str, Option<&Record>); 2]) -> String {
    let mut sum = 0.0;
    let mut terms = Vec::new();
    for (name, part) in parts {
        let Some(cost) = part.and_then(|p| p.cpu_us_per_op) else {
            return "–".to_owned();
        };
        sum += cost;
        terms.push(format!("{name} {cost:.0}"));
    }
    let Some(cores) = ceiling.cpu_cores.or(path.cpu_cores) else {
        return "–".to_owned();
    };
    let most = cores as f64 * 1e6 / sum;
    let own = path
        .cpu_us_per_op
        .map_or_else(String::new, |c| format!("; this path {c:.0} µs"));
    format!(
        "{:.1} % ({most:.0}/s: {} = {sum:.0} µs per op{own})",
        most / ceiling.throughput * 100.0,
        terms.join(" + ")
    )
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
        "bulk" => "bulk job (CSV upload → completed)",
        "tenants" => "NATS ingest, one filing for each of many tenants",
        "portfolio" => "dashboard read: portfolio page, riskiest first (Redis cache)",
        "portfolio-fresh" => "dashboard read: the same from PostgreSQL (`Cache-Control: no-cache`)",
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

    #[test]
    fn each_stream_run_is_a_ratio_of_the_lowest_ceiling_with_its_companies() {
        let records = [
            record("jetstream", 100_000.0, None),
            record("nats", 9_000.0, Some(100)),
            record("nats", 6_000.0, Some(10_000)),
            record("postgres", 20_000.0, None),
        ];
        let table = markdown(&records);
        let ratios: Vec<&str> = table.lines().filter(|l| l.starts_with("| NATS ingest,")).collect();
        assert_eq!(
            ratios,
            [
                "| NATS ingest, 100 companies | min(JetStream, PostgreSQL) = postgres (20000/s) | 45.0 % | ≥ 50 % | **no** | – |",
                "| NATS ingest, 10000 companies | min(JetStream, PostgreSQL) = postgres (20000/s) | 30.0 % | ≥ 50 % | **no** | – |",
            ]
        );
        assert!(table.contains("| NATS ingest (publish → committed, acked), 10000 companies | – | 1000 | 6000 |"));
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
        let records = [
            measured("echo", Some(64), 40_000.0, 45.0),
            measured("http", Some(64), 2_000.0, 900.0),
            measured("jetstream", None, 80_000.0, 20.0),
            measured("nats", None, 5_000.0, 360.0),
            measured("postgres", Some(4), 30_000.0, 55.0),
        ];
        let table = markdown(&records);
        let row = |prefix: &str| table.lines().find(|l| l.starts_with(prefix)).unwrap().to_owned();
        // Two cores over 45 + 55 µs: 20,000/s, half the echo ceiling.
        assert!(
            row("| HTTP scoring, 64 concurrent")
                .ends_with("| **no** | 50.0 % (20000/s: echo 45 + PostgreSQL 55 = 100 µs per op; this path 900 µs) |"),
            "{table}"
        );
        // Two cores over 20 + 55 µs: 26,667/s, 88.9 % of the lower ceiling (PostgreSQL's 30,000/s).
        assert!(
            row("| NATS ingest |").ends_with(
                "| **no** | 88.9 % (26667/s: JetStream 20 + PostgreSQL 55 = 75 µs per op; this path 360 µs) |"
            ),
            "{table}"
        );
        assert!(row("| ceiling: actix-web JSON echo | 64 |").ends_with("| 0 | 0 | 90 % | 45 |"));
    }
}
