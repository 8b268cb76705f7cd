//! `pdscore-load`: the load generator behind `scripts/bench.sh` and BENCHMARKS.md, and a terminal client of
//! the bulk API. A binary of its own, beside the service: none of it is in `pdscore --help`, and its
//! dependencies (HTTP client, histograms, progress bars) are not in the service's binary.

mod client;
mod measure;

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "pdscore-load",
    version,
    about = "Load generation against a running pdscore service, its ceilings, and bulk uploads from the terminal"
)]
struct Cli {
    /// The service's TOML configuration (for `postgres`, which writes to its database); environment variables
    /// override it in turn.
    #[arg(long, short, env = "PDSCORE_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

// The service's allocator, so that the echo ceiling allocates as the service does.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command, cli.config.as_deref()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How a client subcommand reaches the service and signs in.
#[derive(Debug, clap::Args)]
struct Account {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long)]
    email: String,
    /// Read the password from the first line of standard input (else from PDSCORE_PASSWORD).
    #[arg(long)]
    password_stdin: bool,
}

impl Account {
    fn password(&self) -> anyhow::Result<String> {
        if self.password_stdin {
            pdscore::cli::password_line()
        } else {
            std::env::var("PDSCORE_PASSWORD").context("set PDSCORE_PASSWORD or pass --password-stdin")
        }
    }
}

/// Where a load measurement's record goes.
#[derive(Debug, clap::Args)]
struct Recording {
    /// Append the measurement to FILE as one JSON line (see `pdscore-load report`).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
}

/// How the stream measurements reach NATS.
#[derive(Debug, clap::Args)]
struct Stream {
    #[arg(long, env = "PDSCORE__NATS__URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Filings published.
    #[arg(long, default_value_t = 50_000)]
    count: u64,
    /// Companies the filings are spread over.
    #[arg(long, default_value_t = 100)]
    companies: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Single AccuNode annual predictions (each a new filing, scored and persisted) at fixed concurrency
    /// levels; prints throughput and latency percentiles per level. The password comes from PDSCORE_PASSWORD
    /// or, with --password-stdin, from the first line of standard input.
    Http {
        /// An account with an organization of its own (org_member or org_admin).
        #[command(flatten)]
        account: Account,
        /// Every request for a company the service has not seen (created by the request; recorded as
        /// `http-new-company`) instead of 300 fiscal years per company.
        #[arg(long)]
        new_company: bool,
        #[command(flatten)]
        levels: Levels,
        #[command(flatten)]
        recording: Recording,
    },
    /// The dashboard's read: the portfolio's riskiest page (`GET /api/v1/portfolio?sort=-probability`),
    /// answered from Redis until the tenant's next write (`redis.portfolio_cache_ttl_secs`, 0 = off).
    Portfolio {
        #[command(flatten)]
        account: Account,
        /// Ask for answers from PostgreSQL (`Cache-Control: no-cache`), recorded as `portfolio-fresh`.
        #[arg(long)]
        fresh: bool,
        #[command(flatten)]
        levels: Levels,
        #[command(flatten)]
        recording: Recording,
    },
    /// The HTTP ceiling: the same requests against `pdscore-load echo-server`.
    Echo {
        #[arg(long, default_value = "http://127.0.0.1:8090")]
        url: String,
        #[command(flatten)]
        levels: Levels,
        #[command(flatten)]
        recording: Recording,
    },
    /// A bare actix-web server answering `POST /echo` with the JSON it was sent (the HTTP ceiling).
    EchoServer {
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
        /// Worker threads; 0: one per core, as the service.
        #[arg(long, default_value_t = 0)]
        workers: usize,
    },
    /// Filings published to the service's FILINGS stream at full speed for companies created through the
    /// API; reports filings/s and the time from publication to the service's ack (sent after the commit).
    Nats {
        #[command(flatten)]
        account: Account,
        #[command(flatten)]
        stream: Stream,
        /// The service's `nats.prefix`.
        #[arg(long, env = "PDSCORE__NATS__PREFIX", default_value = "")]
        prefix: String,
        /// The account's tenant (slug).
        #[arg(long, default_value = "demo")]
        tenant: String,
        /// The service's durable consumer (`pipeline.consumer_name`).
        #[arg(long, default_value = "scoring")]
        consumer: String,
        #[command(flatten)]
        recording: Recording,
    },
    /// Alert latency: a steady (open-loop) feed of filings on NATS, a fifth of them moving their company's PD
    /// past the alert threshold; times each alert from its filing's publication to its arrival on NATS and on
    /// the SSE stream. Recorded as `alerts-nats` and `alerts-sse`.
    Alerts {
        #[command(flatten)]
        account: Account,
        #[arg(long, env = "PDSCORE__NATS__URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        /// The service's `nats.prefix`.
        #[arg(long, env = "PDSCORE__NATS__PREFIX", default_value = "")]
        prefix: String,
        /// The account's tenant (slug).
        #[arg(long, default_value = "demo")]
        tenant: String,
        /// Filings per second; default: half the throughput of the first `nats` measurement in the --record
        /// file.
        #[arg(long)]
        rate: Option<f64>,
        /// Seconds of feed.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Companies the filings are spread over (each files one year after another).
        #[arg(long, default_value_t = 1000)]
        companies: u64,
        /// Also prints, for each second of the feed (by the wall clock, UTC), its alerts' latency on NATS: when
        /// the tail comes, to set beside the logs of PostgreSQL and the service.
        #[arg(long)]
        timeline: bool,
        #[command(flatten)]
        recording: Recording,
    },
    /// One filing for each of the tenants `scale-1` … `scale-<count>` (created beforehand, each with a company
    /// `S`): a tenant actor started for each.
    Tenants {
        #[arg(long, env = "PDSCORE__NATS__URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        #[arg(long, env = "PDSCORE__NATS__PREFIX", default_value = "")]
        prefix: String,
        #[arg(long, default_value = "scoring")]
        consumer: String,
        #[arg(long, default_value_t = 10_000)]
        count: u64,
        #[command(flatten)]
        recording: Recording,
    },
    /// The stream ceiling: the same payloads published to a stream configured as FILINGS and consumed by a
    /// pull consumer that only acks (the stream is deleted afterwards).
    Jetstream {
        #[command(flatten)]
        stream: Stream,
        #[command(flatten)]
        recording: Recording,
    },
    /// The persistence ceilings: the stream load's rows, scored beforehand, inserted by the store's own
    /// statements in the pipeline's batches into copies of the tables, then committed by the store's own
    /// commit for a tenant of its own (the service's configuration and DATABASE_URL apply).
    Postgres {
        /// The tenant whose models score the rows.
        #[arg(long, default_value = "demo")]
        tenant: String,
        #[arg(long, default_value_t = 50_000)]
        count: u64,
        /// Companies of the commit ceiling's tenant (more than a batch times the transactions in flight, so
        /// that no two transactions in flight share a company, as in the pipeline).
        #[arg(long, default_value_t = 10_000)]
        companies: u64,
        #[command(flatten)]
        recording: Recording,
    },
    /// The session-check ceiling: the Redis GET every authenticated request makes (is its session live?), by
    /// the service's own session store, at fixed concurrency (the service's configuration applies).
    Redis {
        #[command(flatten)]
        levels: Levels,
        #[command(flatten)]
        recording: Recording,
    },
    /// A generated AccuNode annual CSV scored as a bulk job, timed from upload to completion.
    Bulk {
        #[command(flatten)]
        account: Account,
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        /// The generated file (kept; reused when it exists).
        #[arg(long)]
        file: PathBuf,
        #[command(flatten)]
        recording: Recording,
    },
    /// Print the results tables (markdown) of the records in FILE.
    Report { file: PathBuf },
    /// Upload a CSV/XLSX file to a running service and show the job's progress until it ends (the password
    /// comes from PDSCORE_PASSWORD or, with --password-stdin, from the first line of standard input).
    Submit {
        file: PathBuf,
        /// `annual` or `quarterly`.
        #[arg(long = "type")]
        prediction_type: pdscore_actors::PredictionType,
        #[command(flatten)]
        account: Account,
        /// Needed for accounts without an organization of their own (tenant admins).
        #[arg(long)]
        organization_id: Option<String>,
        /// A model id, e.g. `annual/polish-gbdt@1`; default: the tenant's.
        #[arg(long)]
        model: Option<String>,
        /// Print the job id and return at once.
        #[arg(long)]
        no_wait: bool,
    },
    /// Tops the account's organization up to COMPANIES scored companies (one fiscal year each, uploaded as a
    /// bulk job), for the dashboard read at that size.
    Populate {
        #[command(flatten)]
        account: Account,
        #[arg(long)]
        companies: u64,
        /// Where the generated file is written.
        #[arg(long)]
        file: PathBuf,
    },
    /// Write a sample file in AccuNode's spreadsheet format (fixed seed).
    Sample {
        #[arg(long = "type")]
        prediction_type: pdscore_actors::PredictionType,
        #[arg(long, default_value_t = 1000)]
        rows: u64,
        /// Consecutive periods per company.
        #[arg(long, default_value_t = 10)]
        periods: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Delete the streams of a NATS prefix (a finished benchmark's).
    DropStreams {
        #[arg(long, env = "PDSCORE__NATS__URL", default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        #[arg(long, env = "PDSCORE__NATS__PREFIX")]
        prefix: String,
    },
}

/// The concurrency levels of an HTTP measurement.
#[derive(Debug, clap::Args)]
struct Levels {
    /// Concurrent clients, one level after another.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 16, 64, 256])]
    concurrency: Vec<usize>,
    /// Seconds measured per level (after a 1 s warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

impl Levels {
    fn check(&self) -> anyhow::Result<std::time::Duration> {
        anyhow::ensure!(
            !self.concurrency.is_empty() && !self.concurrency.contains(&0),
            "--concurrency takes positive numbers"
        );
        Ok(std::time::Duration::from_secs(self.seconds.max(1)))
    }
}

/// One HTTP load (`http`, `portfolio`, `echo`) at the given concurrency levels.
async fn http_load(
    url: &str,
    target: measure::http::Target<'_>,
    levels: &Levels,
    recording: &Recording,
) -> anyhow::Result<()> {
    measure::http::run(measure::http::HttpLoad {
        url,
        target,
        concurrency: &levels.concurrency,
        duration: levels.check()?,
        record: recording.record.as_deref(),
    })
    .await
    .map(drop)
}

async fn run(command: Command, config: Option<&std::path::Path>) -> anyhow::Result<()> {
    match command {
        Command::Http {
            account,
            new_company,
            levels,
            recording,
        } => {
            let password = account.password()?;
            let target = measure::http::Target::Service {
                email: &account.email,
                password: &password,
                new_company,
            };
            http_load(&account.url, target, &levels, &recording).await
        }
        Command::Portfolio {
            account,
            fresh,
            levels,
            recording,
        } => {
            let password = account.password()?;
            let target = measure::http::Target::Portfolio {
                email: &account.email,
                password: &password,
                fresh,
            };
            http_load(&account.url, target, &levels, &recording).await
        }
        Command::Echo { url, levels, recording } => {
            http_load(&url, measure::http::Target::Echo, &levels, &recording).await
        }
        Command::EchoServer { listen, workers } => measure::echo::serve(&listen, workers).await,
        Command::Nats {
            account,
            stream,
            prefix,
            tenant,
            consumer,
            recording,
        } => {
            let password = account.password()?;
            println!("{}", measure::Record::HEADER);
            measure::stream::service(measure::stream::ServiceLoad {
                url: &account.url,
                email: &account.email,
                password: &password,
                nats_url: &stream.nats_url,
                prefix: &prefix,
                tenant: &tenant,
                consumer: &consumer,
                count: stream.count,
                companies: stream.companies,
                record: recording.record.as_deref(),
            })
            .await
            .map(drop)
        }
        Command::Alerts {
            account,
            nats_url,
            prefix,
            tenant,
            rate,
            seconds,
            companies,
            timeline,
            recording,
        } => {
            let password = account.password()?;
            let rate = match (rate, recording.record.as_deref()) {
                (Some(rate), _) => rate,
                (None, Some(records)) => measure::alerts::half_of_nats(records)?,
                (None, None) => anyhow::bail!("pass --rate, or --record with a nats measurement in it"),
            };
            measure::alerts::run(measure::alerts::AlertLoad {
                url: &account.url,
                email: &account.email,
                password: &password,
                nats_url: &nats_url,
                prefix: &prefix,
                tenant: &tenant,
                rate,
                duration: std::time::Duration::from_secs(seconds.max(1)),
                companies,
                timeline,
                record: recording.record.as_deref(),
            })
            .await
        }
        Command::Tenants {
            nats_url,
            prefix,
            consumer,
            count,
            recording,
        } => {
            println!("{}", measure::Record::HEADER);
            measure::stream::tenants(&nats_url, &prefix, &consumer, count, recording.record.as_deref())
                .await
                .map(drop)
        }
        Command::Jetstream { stream, recording } => {
            println!("{}", measure::Record::HEADER);
            measure::stream::ceiling(
                &stream.nats_url,
                stream.count,
                stream.companies,
                recording.record.as_deref(),
            )
            .await
            .map(drop)
        }
        Command::Postgres {
            tenant,
            count,
            companies,
            recording,
        } => {
            let settings = pdscore::configuration::Settings::load(config)?;
            println!("{}", measure::Record::HEADER);
            measure::postgres::ceiling(measure::postgres::PostgresLoad {
                settings: &settings,
                tenant: &tenant,
                count,
                companies,
                record: recording.record.as_deref(),
            })
            .await
            .map(drop)
        }
        Command::Redis { levels, recording } => {
            let duration = levels.check()?;
            let settings = pdscore::configuration::Settings::load(config)?;
            println!("{}", measure::Record::HEADER);
            measure::redis::ceiling(measure::redis::RedisLoad {
                settings: &settings,
                concurrency: &levels.concurrency,
                duration,
                record: recording.record.as_deref(),
            })
            .await
            .map(drop)
        }
        Command::Bulk {
            account,
            rows,
            file,
            recording,
        } => {
            let password = account.password()?;
            measure::bulk::run(measure::bulk::BulkLoad {
                url: &account.url,
                email: &account.email,
                password: &password,
                rows,
                file: &file,
                record: recording.record.as_deref(),
            })
            .await
            .map(drop)
        }
        Command::DropStreams { nats_url, prefix } => {
            let namespace = pdscore_nats::Namespace::parse(&prefix).map_err(|e| anyhow::anyhow!("{e}"))?;
            anyhow::ensure!(!namespace.prefix().is_empty(), "--prefix must not be empty");
            let js = async_nats::jetstream::new(async_nats::connect(&nats_url).await?);
            println!(
                "deleted {} stream(s)",
                pdscore_nats::delete_streams(&js, &namespace).await
            );
            Ok(())
        }
        Command::Report { file } => {
            print!("{}", measure::report::markdown(&measure::report::read(&file)?));
            Ok(())
        }

        Command::Submit {
            file,
            prediction_type,
            account,
            organization_id,
            model,
            no_wait,
        } => {
            let password = account.password()?;
            client::submit(client::Submission {
                url: &account.url,
                email: &account.email,
                password: &password,
                file: &file,
                prediction_type,
                organization_id: organization_id.as_deref(),
                model: model.as_deref(),
                wait: !no_wait,
            })
            .await
            .map(drop)
        }
        Command::Populate {
            account,
            companies,
            file,
        } => {
            let password = account.password()?;
            let base = account.url.trim_end_matches('/');
            let client = reqwest::Client::new();
            let token = client::sign_in(&client, base, &account.email, &password).await?.access;
            let read = client
                .get(format!("{base}/api/v1/portfolio?per_page=1"))
                .header(reqwest::header::CACHE_CONTROL, "no-cache")
                .bearer_auth(&token);
            let total = client::call(read, "read the portfolio").await?["total"]
                .as_u64()
                .context("no total in the portfolio")?;
            if total >= companies {
                println!("the portfolio has {total} companies already");
                return Ok(());
            }
            let prefix = format!("P{}", measure::run_tag());
            client::sample(
                &file,
                pdscore_actors::PredictionType::Annual,
                companies - total,
                1,
                &prefix,
            )?;
            let job = client::submit(client::Submission {
                url: &account.url,
                email: &account.email,
                password: &password,
                file: &file,
                prediction_type: pdscore_actors::PredictionType::Annual,
                organization_id: None,
                model: None,
                wait: true,
            })
            .await?;
            println!(
                "the portfolio had {total} companies; {} added",
                job["succeeded_rows"].as_u64().unwrap_or(0)
            );
            Ok(())
        }
        Command::Sample {
            prediction_type,
            rows,
            periods,
            out,
        } => {
            client::sample(&out, prediction_type, rows, periods, "S")?;
            println!("wrote {rows} {prediction_type} rows to {}", out.display());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
