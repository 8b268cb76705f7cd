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
        Command::Version | Command::GenerateJwtKey { .. } => {
            unreachable!("handled before loading the configuration")
        }
    }
}

/// The first line of standard input, without its line ending (`--password-stdin`).
pub fn password_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("Failed to read the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
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
