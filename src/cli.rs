//! The `pdscore` command line.

use std::{io::BufRead, path::PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use crate::{accounts, auth::password, configuration::Settings, db, startup::Application, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "pdscore",
    version,
    about = "Multi-tenant, real-time probability-of-default scoring service"
)]
pub struct Cli {
    /// TOML file overriding the built-in defaults; environment variables override it in turn.
    #[arg(long, short, env = "PDSCORE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: create/migrate the database, put the NATS streams in place, serve HTTP.
    Serve,
    /// Create the database if needed, apply pending migrations, and exit.
    Migrate,
    /// Create a service-wide administrator (role super_admin).
    CreateSuperAdmin {
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// Read the password from the first line of standard input instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Create (or find) the demo tenant, its organization, one account per role and a few companies; print
    /// fresh sign-in credentials.
    DemoSetup,
    /// Write a new RS256 signing key (PKCS#8 PEM, mode 0600) to OUT and its public key to OUT.pub; point
    /// auth.jwt_private_key_path at OUT (and other instances' auth.jwt_public_key_paths at OUT.pub).
    GenerateJwtKey {
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the effective configuration, credentials masked.
    Config,
    /// Print the version, the schema version and the streams this binary carries.
    Version,
    /// Bulk scoring from the terminal.
    #[command(subcommand)]
    Bulk(BulkCommand),
    /// Load generation against a running service.
    #[command(subcommand)]
    Load(LoadCommand),
}

/// How a client subcommand reaches the service and signs in.
#[derive(Debug, clap::Args)]
pub struct Account {
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
            password_line()
        } else {
            std::env::var("PDSCORE_PASSWORD").context("set PDSCORE_PASSWORD or pass --password-stdin")
        }
    }
}

/// Where a load measurement's record goes.
#[derive(Debug, clap::Args)]
pub struct Recording {
    /// Append the measurement to FILE as one JSON line (see `pdscore load report`).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
}

/// How the stream measurements reach NATS.
#[derive(Debug, clap::Args)]
pub struct Stream {
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
pub enum LoadCommand {
    /// Single AccuNode annual predictions (each a new filing, scored and persisted) at fixed concurrency
    /// levels; prints throughput and latency percentiles per level. The password comes from PDSCORE_PASSWORD
    /// or, with --password-stdin, from the first line of standard input.
    Http {
        /// An account with an organization of its own (org_member or org_admin).
        #[command(flatten)]
        account: Account,
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
    /// The HTTP ceiling: the same requests against `pdscore load echo-server`.
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
    /// The persistence ceiling: the stream load's rows, scored beforehand, inserted by the store's own
    /// statements in the pipeline's batches into copies of the tables (the service's configuration and
    /// DATABASE_URL apply).
    Postgres {
        /// The tenant whose models score the rows.
        #[arg(long, default_value = "demo")]
        tenant: String,
        #[arg(long, default_value_t = 50_000)]
        count: u64,
        #[arg(long, default_value_t = 100)]
        companies: u64,
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
pub struct Levels {
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

#[derive(Debug, Subcommand)]
pub enum BulkCommand {
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
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Version = cli.command {
        println!("pdscore {}", crate::VERSION);
        println!("schema migration {}", db::latest_migration());
        let streams: Vec<_> = pdscore_nats::StreamKind::ALL.iter().map(|s| s.base_name()).collect();
        println!("streams {}", streams.join(", "));
        return Ok(());
    }
    if let Command::GenerateJwtKey { out } = &cli.command {
        return generate_jwt_key(out);
    }
    if let Command::Bulk(command) = cli.command {
        return bulk(command).await;
    }
    if let Command::Load(command) = cli.command {
        return load(command, cli.config.as_deref()).await;
    }
    let settings = Settings::load(cli.config.as_deref())?;
    telemetry::init_tracing(settings.application.log_format, &settings.application.log_level)?;
    match cli.command {
        Command::Serve => {
            tracing::info!(version = crate::VERSION, settings = %settings.redacted(), "starting");
            Application::build(settings).await?.run_until_stopped().await
        }
        Command::Migrate => {
            let pool = db::pool(&settings.database)?;
            db::prepare(&settings.database, &pool).await?;
            println!("database schema at migration {}", db::latest_migration());
            Ok(())
        }
        Command::CreateSuperAdmin {
            email,
            name,
            password_stdin,
        } => {
            let (password, generated) = if password_stdin {
                (SecretString::from(password_line()?), false)
            } else {
                (password::generate(), true)
            };
            let pool = db::pool(&settings.database)?;
            db::prepare(&settings.database, &pool).await?;
            let id = accounts::create_super_admin(&pool, &email, &name, password.clone()).await?;
            println!("created super_admin {} (id {id})", email.trim().to_lowercase());
            if generated {
                println!(
                    "password: {}   (shown once; change it after signing in)",
                    password.expose_secret()
                );
            }
            Ok(())
        }
        Command::DemoSetup => {
            let pool = db::pool(&settings.database)?;
            db::prepare(&settings.database, &pool).await?;
            let demo = accounts::demo_setup(&pool).await?;
            println!("demo tenant     {} (id {})", demo.tenant_slug, demo.tenant_id);
            println!("organization    {} (id {})", demo.organization, demo.organization_id);
            println!("companies       {}", demo.companies.join(", "));
            println!("accounts (passwords are new on every demo-setup):");
            for user in &demo.users {
                println!("  {:<13} {:<30} {}", user.role.as_str(), user.email, user.password);
            }
            Ok(())
        }
        Command::Config => {
            println!("{}", serde_json::to_string_pretty(&settings.redacted())?);
            Ok(())
        }
        Command::Version | Command::GenerateJwtKey { .. } | Command::Bulk(_) | Command::Load(_) => {
            unreachable!("handled before loading the configuration")
        }
    }
}

/// The first line of standard input, without its line ending (`--password-stdin`).
fn password_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("Failed to read the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// One HTTP load (`http`, `portfolio`, `echo`) at the given concurrency levels.
async fn http_load(
    url: &str,
    target: crate::load::http::Target<'_>,
    levels: &Levels,
    recording: &Recording,
) -> anyhow::Result<()> {
    crate::load::http::run(crate::load::http::HttpLoad {
        url,
        target,
        concurrency: &levels.concurrency,
        duration: levels.check()?,
        record: recording.record.as_deref(),
    })
    .await
    .map(drop)
}

async fn load(command: LoadCommand, config: Option<&std::path::Path>) -> anyhow::Result<()> {
    use crate::load;
    match command {
        LoadCommand::Http {
            account,
            levels,
            recording,
        } => {
            let password = account.password()?;
            let target = load::http::Target::Service {
                email: &account.email,
                password: &password,
            };
            http_load(&account.url, target, &levels, &recording).await
        }
        LoadCommand::Portfolio {
            account,
            fresh,
            levels,
            recording,
        } => {
            let password = account.password()?;
            let target = load::http::Target::Portfolio {
                email: &account.email,
                password: &password,
                fresh,
            };
            http_load(&account.url, target, &levels, &recording).await
        }
        LoadCommand::Echo { url, levels, recording } => {
            http_load(&url, load::http::Target::Echo, &levels, &recording).await
        }
        LoadCommand::EchoServer { listen, workers } => load::echo::serve(&listen, workers).await,
        LoadCommand::Nats {
            account,
            stream,
            prefix,
            tenant,
            consumer,
            recording,
        } => {
            let password = account.password()?;
            println!("{}", load::Record::HEADER);
            load::stream::service(load::stream::ServiceLoad {
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
        LoadCommand::Tenants {
            nats_url,
            prefix,
            consumer,
            count,
            recording,
        } => {
            println!("{}", load::Record::HEADER);
            load::stream::tenants(&nats_url, &prefix, &consumer, count, recording.record.as_deref())
                .await
                .map(drop)
        }
        LoadCommand::Jetstream { stream, recording } => {
            println!("{}", load::Record::HEADER);
            load::stream::ceiling(
                &stream.nats_url,
                stream.count,
                stream.companies,
                recording.record.as_deref(),
            )
            .await
            .map(drop)
        }
        LoadCommand::Postgres {
            tenant,
            count,
            companies,
            recording,
        } => {
            let settings = Settings::load(config)?;
            println!("{}", load::Record::HEADER);
            load::postgres::ceiling(load::postgres::PostgresLoad {
                settings: &settings,
                tenant: &tenant,
                count,
                companies,
                record: recording.record.as_deref(),
            })
            .await
            .map(drop)
        }
        LoadCommand::Bulk {
            account,
            rows,
            file,
            recording,
        } => {
            let password = account.password()?;
            load::bulk::run(load::bulk::BulkLoad {
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
        LoadCommand::DropStreams { nats_url, prefix } => {
            let namespace = pdscore_nats::Namespace::parse(&prefix).map_err(|e| anyhow::anyhow!("{e}"))?;
            anyhow::ensure!(!namespace.prefix().is_empty(), "--prefix must not be empty");
            let js = async_nats::jetstream::new(async_nats::connect(&nats_url).await?);
            println!(
                "deleted {} stream(s)",
                pdscore_nats::delete_streams(&js, &namespace).await
            );
            Ok(())
        }
        LoadCommand::Report { file } => {
            print!("{}", load::report::markdown(&load::report::read(&file)?));
            Ok(())
        }
    }
}

async fn bulk(command: BulkCommand) -> anyhow::Result<()> {
    match command {
        BulkCommand::Submit {
            file,
            prediction_type,
            account,
            organization_id,
            model,
            no_wait,
        } => {
            let password = account.password()?;
            crate::bulk::client::submit(crate::bulk::client::Submission {
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
        BulkCommand::Sample {
            prediction_type,
            rows,
            periods,
            out,
        } => {
            crate::bulk::client::sample(&out, prediction_type, rows, periods)?;
            println!("wrote {rows} {prediction_type} rows to {}", out.display());
            Ok(())
        }
    }
}

fn generate_jwt_key(out: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    anyhow::ensure!(!out.exists(), "{} exists already; not overwriting a key", out.display());
    let private = crate::auth::keys::generate_private_key_pem()?;
    let public = crate::auth::keys::public_key_pem(&private)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("Failed to create {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(out)
        .and_then(|mut file| file.write_all(private.as_bytes()))
        .with_context(|| format!("Failed to write {}", out.display()))?;
    let public_path = out.with_extension("pub.pem");
    std::fs::write(&public_path, public).with_context(|| format!("Failed to write {}", public_path.display()))?;
    println!("private key  {}", out.display());
    println!("public key   {}", public_path.display());
    Ok(())
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
