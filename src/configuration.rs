//! Typed settings: embedded defaults (`config/default.toml`), an optional file, then environment variables.
//!
//! Connection URLs may hold credentials, so they are [`SecretString`]s: they never appear in `Debug` output or
//! logs; [`Settings::redacted`] gives a printable view with passwords masked. Loading fails with an error that
//! names the offending key, before anything is started.

use std::{collections::HashMap, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use pdscore_nats::Namespace;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgConnectOptions;

const DEFAULTS: &str = include_str!("../config/default.toml");
/// Prefix of the structured environment overrides: `PDSCORE__DATABASE__MAX_CONNECTIONS=20`.
const ENV_PREFIX: &str = "PDSCORE";
/// Conventional variables that override one key each.
const ENV_ALIASES: [(&str, &str); 4] = [
    ("DATABASE_URL", "database.url"),
    ("REDIS_URL", "redis.url"),
    ("NATS_URL", "nats.url"),
    ("LISTEN_ADDR", "application.listen"),
];

/// Structured variables holding comma-separated lists.
const ENV_LISTS: [(&str, &str); 2] = [
    ("PDSCORE__HEALTH__REQUIRED", "health.required"),
    ("PDSCORE__AUTH__JWT_PUBLIC_KEY_PATHS", "auth.jwt_public_key_paths"),
];

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub application: ApplicationSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub nats: NatsSettings,
    pub auth: AuthSettings,
    pub models: ModelSettings,
    pub storage: StorageSettings,
    pub bulk: BulkSettings,
    pub health: HealthSettings,
    pub pipeline: PipelineSettings,
    pub drift: DriftSettings,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationSettings {
    pub listen: SocketAddr,
    /// 0: one worker per physical core (actix-web's default).
    pub workers: usize,
    pub shutdown_timeout_secs: u64,
    pub log_format: LogFormat,
    pub log_level: String,
    pub max_json_body_bytes: usize,
    /// Live (SSE) streams open at once per user and per instance; beyond, `RATE_LIMITED`.
    pub live_streams_per_user: usize,
    pub live_streams: usize,
    /// How often a live stream re-checks its caller's session (and a `user`'s assignments).
    pub live_stream_recheck_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout_ms: u64,
    pub migrate_on_start: bool,
    pub startup_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub url: SecretString,
    pub timeout_ms: u64,
    pub key_prefix: String,
    /// How long a cached portfolio answer may live; 0 turns the cache off. Writes invalidate it at once.
    pub portfolio_cache_ttl_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSettings {
    pub url: SecretString,
    pub prefix: String,
    pub connect_timeout_ms: u64,
    /// Replicas of the streams and of the uploads' bucket: 3 on a NATS cluster, 1 on a single server.
    pub replicas: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Empty: no configured key (an ephemeral one is generated at start).
    pub jwt_private_key_path: PathBuf,
    pub jwt_public_key_paths: Vec<PathBuf>,
    pub issuer: String,
    pub audience: String,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    /// Failed sign-ins per account within `login_account_window_secs`; past them, sign-in from an address
    /// that failed for the account is refused (the right password from another address still signs in).
    pub login_attempts_per_account: u32,
    pub login_account_window_secs: u64,
    /// Sign-in attempts allowed per client address within `login_address_window_secs`.
    pub login_attempts_per_address: u32,
    pub login_address_window_secs: u64,
    /// Refresh-token exchanges per client address within `refresh_address_window_secs`.
    pub refreshes_per_address: u32,
    pub refresh_address_window_secs: u64,
    /// Password changes per account within `password_change_window_secs`.
    pub password_changes_per_account: u32,
    pub password_change_window_secs: u64,
    /// Take the client address from `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_forwarded_for: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    pub dir: PathBuf,
}

/// The scoring pipeline: actor sizes, tenant defaults, the JetStream ingest consumer.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSettings {
    /// Model pool threads (CPU-bound scoring).
    pub model_workers: usize,
    /// Filings per micro-batch at most.
    pub max_batch: usize,
    pub max_batches_in_flight_per_tenant: usize,
    /// Filings a batch needs to start beside another batch of its tenant's in flight (fewer wait for it).
    pub min_concurrent_batch: usize,
    /// Filings a tenant may have admitted and unanswered; beyond, 429 / Nak.
    pub max_queued_per_tenant: usize,
    pub mailbox_capacity: usize,
    /// A tenant actor idle this long is stopped (and started again on its next filing).
    pub idle_timeout_secs: u64,
    /// How long a tenant's policy (limits, models, scheme) is cached before being read again.
    pub policy_ttl_ms: u64,
    /// How long a tenant found by slug or a company found by symbol is kept, at most (fleet changes drop it at
    /// once; this bounds a change whose announcement was lost).
    pub lookup_ttl_ms: u64,
    /// Tenants with metric series of their own in this process; the others share `tenant="_other"`.
    pub max_tenant_series: usize,
    /// Concurrent commit transactions and rows per transaction.
    pub persist_max_in_flight: usize,
    pub persist_max_rows: usize,
    /// Rate limit of tenants that set none (filings per second, and burst).
    pub default_rate_per_second: f64,
    pub default_burst: u32,
    /// Relative PD move raising an alert within a risk level, for tenants that set none.
    pub default_alert_pd_change: f64,
    /// Models answering tenants that chose none.
    pub annual_model: pdscore_models::registry::ModelId,
    pub quarterly_model: pdscore_models::registry::ModelId,
    /// Consume filings from JetStream (off: this instance serves HTTP only).
    pub ingest_enabled: bool,
    /// Durable consumer shared by every instance.
    pub consumer_name: String,
    /// JetStream messages being processed at once by this instance.
    pub ingest_max_in_flight: usize,
    /// How long JetStream waits for an ack before redelivering.
    pub ingest_ack_wait_secs: u64,
    /// Deliveries of one filing message at most; the last one that cannot commit dead-letters it.
    pub ingest_max_deliver: u32,
}

impl PipelineSettings {
    /// The configured models for tenants that chose none, as the pipeline shares them.
    pub fn default_models(&self) -> pdscore_actors::DefaultModels {
        pdscore_actors::DefaultModels::new(self.annual_model.clone(), self.quarterly_model.clone())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// Scratch space: uploads while they arrive, and while their job reads them (they live in the JetStream
    /// Object Store in between).
    pub dir: PathBuf,
    pub max_upload_bytes: u64,
}

/// Bulk scoring jobs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BulkSettings {
    /// Jobs one instance runs at once (others wait, `queued`); 0: this instance runs none.
    pub max_running_jobs: usize,
    /// Jobs of one tenant running at once on the whole fleet (its others wait; no tenant starves the rest).
    pub max_running_jobs_per_tenant: usize,
    /// Bytes of files one tenant's unfinished jobs may hold in the upload store.
    pub max_stored_bytes_per_tenant: u64,
    /// Rows scored and committed together.
    pub chunk_rows: usize,
    /// Chunks of one job being scored at once.
    pub chunks_in_flight: usize,
    /// How often an instance looks for jobs to run or resume.
    pub poll_interval_ms: u64,
    /// What an XLSX may expand to (all its entries, uncompressed).
    pub max_xlsx_uncompressed_bytes: u64,
    /// Largest uncompressed/compressed ratio of an XLSX entry (zip bombs go far beyond spreadsheets).
    pub max_xlsx_compression_ratio: u64,
}

/// Drift monitoring of the answering models (`validation::drift`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DriftSettings {
    /// Seconds between the monitor's passes; 0: this instance does not run it (another does).
    pub every_secs: u64,
    /// The window measured (its predictions), and the past window before it, in hours.
    pub window_hours: u32,
    /// PSI above which a drift alert is raised (0.25: a significant shift, by the usual reading).
    pub threshold: f64,
    /// Predictions a window needs before its PSI is computed (fewer give noise, not drift).
    pub min_rows: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSettings {
    pub timeout_ms: u64,
    pub required: Vec<Dependency>,
}

/// An external service the scoring service depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dependency {
    Postgres,
    Redis,
    Nats,
}

impl Dependency {
    pub const ALL: [Self; 3] = [Self::Postgres, Self::Redis, Self::Nats];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Redis => "redis",
            Self::Nats => "nats",
        }
    }
}

impl Settings {
    /// Loads the settings from the defaults, `file` (when given) and the process environment.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars().collect())
    }

    /// Loads the settings from the defaults, `file` and the given environment (tests pass their own).
    pub fn load_from(file: Option<&std::path::Path>, mut env: HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut builder =
            config::Config::builder().add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).format(config::FileFormat::Toml).required(true));
        }
        for (var, key) in ENV_ALIASES {
            builder = builder.set_override_option(key, env.get(var).cloned())?;
        }
        // Lists are comma-separated in the environment. Values are otherwise taken as text and converted by
        // type, so a string setting such as a prefix "007" stays "007".
        for (var, key) in ENV_LISTS {
            if let Some(value) = env.remove(var) {
                let items: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                builder = builder.set_override(key, items)?;
            }
        }
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .source(Some(env.into_iter().collect())),
        );
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what types alone cannot: URLs parse, limits are sane, the NATS prefix is a valid token.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, reason: String| Err(ConfigError::Invalid { key, reason });
        let database_url = self.database.url.expose_secret();
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return invalid("database.url", "must be a postgres:// or postgresql:// URL".into());
        }
        if let Err(e) = self.database.connect_options() {
            return invalid("database.url", e.to_string());
        }
        if let Err(e) = redis::Client::open(self.redis.url.expose_secret()) {
            return invalid("redis.url", e.to_string());
        }
        if let Err(e) = async_nats::ServerAddr::from_str(self.nats.url.expose_secret()) {
            return invalid("nats.url", e.to_string());
        }
        if let Err(e) = self.nats.namespace() {
            return invalid("nats.prefix", e.to_string());
        }
        if self.database.max_connections == 0 {
            return invalid("database.max_connections", "must be at least 1".into());
        }
        if self.database.min_connections > self.database.max_connections {
            return invalid(
                "database.min_connections",
                format!(
                    "must not exceed database.max_connections ({})",
                    self.database.max_connections
                ),
            );
        }
        for (key, value) in [
            ("health.timeout_ms", self.health.timeout_ms),
            ("redis.timeout_ms", self.redis.timeout_ms),
            ("database.acquire_timeout_ms", self.database.acquire_timeout_ms),
            ("nats.connect_timeout_ms", self.nats.connect_timeout_ms),
        ] {
            if value == 0 {
                return invalid(key, "must be at least 1".into());
            }
        }
        if self.application.max_json_body_bytes < 1024 {
            return invalid("application.max_json_body_bytes", "must be at least 1024".into());
        }
        if tracing_subscriber::EnvFilter::try_new(&self.application.log_level).is_err() {
            return invalid(
                "application.log_level",
                format!("{:?} is not a tracing filter directive", self.application.log_level),
            );
        }
        if self.auth.access_token_ttl_secs == 0 || self.auth.refresh_token_ttl_secs <= self.auth.access_token_ttl_secs {
            return invalid(
                "auth.refresh_token_ttl_secs",
                "access tokens must live at least 1 s and refresh tokens longer than access tokens".into(),
            );
        }
        for (key, value) in [
            (
                "auth.login_attempts_per_account",
                u64::from(self.auth.login_attempts_per_account),
            ),
            ("auth.login_account_window_secs", self.auth.login_account_window_secs),
            (
                "auth.login_attempts_per_address",
                u64::from(self.auth.login_attempts_per_address),
            ),
            ("auth.login_address_window_secs", self.auth.login_address_window_secs),
            ("auth.refreshes_per_address", u64::from(self.auth.refreshes_per_address)),
            (
                "auth.refresh_address_window_secs",
                self.auth.refresh_address_window_secs,
            ),
            (
                "auth.password_changes_per_account",
                u64::from(self.auth.password_changes_per_account),
            ),
            (
                "auth.password_change_window_secs",
                self.auth.password_change_window_secs,
            ),
            ("nats.replicas", self.nats.replicas as u64),
            (
                "bulk.max_running_jobs_per_tenant",
                self.bulk.max_running_jobs_per_tenant as u64,
            ),
            (
                "bulk.max_stored_bytes_per_tenant",
                self.bulk.max_stored_bytes_per_tenant,
            ),
        ] {
            if value == 0 {
                return invalid(key, "must be at least 1".into());
            }
        }
        if self.drift.window_hours == 0 || self.drift.window_hours > 24 * 366 {
            return invalid("drift.window_hours", "must be 1 to 8784 (a year)".into());
        }
        if !(self.drift.threshold.is_finite() && self.drift.threshold > 0.0) {
            return invalid("drift.threshold", "must be a positive number".into());
        }
        if self.drift.min_rows == 0 {
            return invalid("drift.min_rows", "must be at least 1".into());
        }
        let p = &self.pipeline;
        for (key, value) in [
            ("pipeline.model_workers", p.model_workers),
            ("pipeline.max_batch", p.max_batch),
            (
                "pipeline.max_batches_in_flight_per_tenant",
                p.max_batches_in_flight_per_tenant,
            ),
            ("pipeline.min_concurrent_batch", p.min_concurrent_batch),
            ("pipeline.max_queued_per_tenant", p.max_queued_per_tenant),
            ("pipeline.mailbox_capacity", p.mailbox_capacity),
            ("pipeline.persist_max_in_flight", p.persist_max_in_flight),
            ("pipeline.persist_max_rows", p.persist_max_rows),
            ("pipeline.ingest_max_in_flight", p.ingest_max_in_flight),
            ("pipeline.default_burst", p.default_burst as usize),
            ("pipeline.ingest_ack_wait_secs", p.ingest_ack_wait_secs as usize),
            ("pipeline.ingest_max_deliver", p.ingest_max_deliver as usize),
            (
                "application.live_streams_per_user",
                self.application.live_streams_per_user,
            ),
            ("application.live_streams", self.application.live_streams),
            (
                "application.live_stream_recheck_secs",
                self.application.live_stream_recheck_secs as usize,
            ),
        ] {
            if value == 0 {
                return invalid(key, "must be at least 1".into());
            }
        }
        if !(p.default_rate_per_second > 0.0 && p.default_rate_per_second.is_finite()) {
            return invalid("pipeline.default_rate_per_second", "must be a positive number".into());
        }
        if !(p.default_alert_pd_change > 0.0 && p.default_alert_pd_change.is_finite()) {
            return invalid("pipeline.default_alert_pd_change", "must be a positive number".into());
        }
        if p.consumer_name.is_empty()
            || !p
                .consumer_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return invalid("pipeline.consumer_name", "letters, digits, '-' and '_' only".into());
        }
        if self.auth.issuer.trim().is_empty() || self.auth.audience.trim().is_empty() {
            return invalid("auth.issuer", "issuer and audience must not be empty".into());
        }
        Ok(())
    }

    /// A printable view of the effective settings with every credential masked.
    pub fn redacted(&self) -> serde_json::Value {
        serde_json::json!({
            "application": self.application,
            "database": {
                "url": redact_url(self.database.url.expose_secret()),
                "max_connections": self.database.max_connections,
                "min_connections": self.database.min_connections,
                "acquire_timeout_ms": self.database.acquire_timeout_ms,
                "migrate_on_start": self.database.migrate_on_start,
                "startup_timeout_secs": self.database.startup_timeout_secs,
            },
            "redis": {
                "url": redact_url(self.redis.url.expose_secret()),
                "timeout_ms": self.redis.timeout_ms,
                "key_prefix": self.redis.key_prefix,
            },
            "nats": {
                "url": redact_url(self.nats.url.expose_secret()),
                "prefix": self.nats.prefix,
                "connect_timeout_ms": self.nats.connect_timeout_ms,
            },
            "auth": self.auth,
            "models": self.models,
            "storage": self.storage,
            "bulk": self.bulk,
            "drift": self.drift,
            "health": self.health,
            "pipeline": self.pipeline,
        })
    }
}

impl DatabaseSettings {
    pub fn connect_options(&self) -> Result<PgConnectOptions, sqlx::Error> {
        Ok(PgConnectOptions::from_str(self.url.expose_secret())?.application_name("pdscore"))
    }

    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }
}

impl NatsSettings {
    pub fn namespace(&self) -> Result<Namespace, pdscore_nats::InvalidNamespace> {
        Namespace::parse(&self.prefix)
    }
}

impl HealthSettings {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn is_required(&self, dependency: Dependency) -> bool {
        self.required.contains(&dependency)
    }
}

/// Masks the credentials of a URL for display: the password of `user:password@`, a bare `token@` entirely,
/// and the whole query string (drivers accept `?password=…`). `scheme://user:***@host/db?***`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".to_owned();
    };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, _)) => (rest, "?***"),
        None => (rest, ""),
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("***@{host}"),
        },
        None => authority.to_owned(),
    };
    format!("{scheme}://{authority}{path}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_defaults_load_and_validate() {
        let settings = Settings::load_from(None, HashMap::new()).unwrap();
        assert_eq!(settings.application.listen.port(), 8080);
        assert_eq!(settings.health.required, Dependency::ALL.to_vec());
    }

    #[test]
    fn conventional_and_structured_variables_override_the_defaults() {
        let settings = Settings::load_from(
            None,
            env(&[
                ("DATABASE_URL", "postgres://app:s3cret@db.internal:5433/risk"),
                ("PDSCORE__DATABASE__MAX_CONNECTIONS", "7"),
                ("PDSCORE__NATS__PREFIX", "007"),
                ("PDSCORE__REDIS__KEY_PREFIX", "0042"),
                ("PDSCORE__HEALTH__REQUIRED", "postgres,nats"),
                ("LISTEN_ADDR", "0.0.0.0:9000"),
            ]),
        )
        .unwrap();
        assert_eq!(
            settings.database.url.expose_secret(),
            "postgres://app:s3cret@db.internal:5433/risk"
        );
        assert_eq!(settings.database.max_connections, 7);
        // Strings stay strings: no number parsing of string settings.
        assert_eq!(settings.nats.prefix, "007");
        assert_eq!(settings.redis.key_prefix, "0042");
        assert_eq!(settings.health.required, vec![Dependency::Postgres, Dependency::Nats]);
        assert_eq!(settings.application.listen.to_string(), "0.0.0.0:9000");
    }

    #[test]
    fn a_file_overrides_the_defaults_and_the_environment_overrides_the_file() {
        let dir = std::env::temp_dir().join(format!("pdscore-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pdscore.toml");
        std::fs::write(&file, "[redis]\ntimeout_ms = 3\n[application]\nlog_format = \"json\"\n").unwrap();
        let settings = Settings::load_from(Some(&file), env(&[("PDSCORE__REDIS__TIMEOUT_MS", "5")])).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(settings.redis.timeout_ms, 5);
        assert_eq!(settings.application.log_format, LogFormat::Json);
    }

    #[test]
    fn an_invalid_value_fails_naming_its_key() {
        let cases = [
            (
                ("PDSCORE__DATABASE__MAX_CONNECTIONS", "many"),
                "database.max_connections",
            ),
            (("PDSCORE__DATABASE__MAX_CONNECTIONS", "0"), "database.max_connections"),
            (("DATABASE_URL", "mysql://localhost/x"), "database.url"),
            (("REDIS_URL", "http://localhost"), "redis.url"),
            (("NATS_URL", "nats://exa mple:4222"), "nats.url"),
            (("PDSCORE__NATS__PREFIX", "a.b"), "nats.prefix"),
            (("LISTEN_ADDR", "localhost"), "application.listen"),
            (("PDSCORE__APPLICATION__LOG_FORMAT", "xml"), "application.log_format"),
            (("PDSCORE__HEALTH__REQUIRED", "postgres,kafka"), "health.required"),
            (("PDSCORE__DATABASE__MAXCONNECTIONS", "3"), "maxconnections"),
            (("PDSCORE__REDIS__TIMEOUT_MS", "0"), "redis.timeout_ms"),
        ];
        for ((var, value), key) in cases {
            let err = match Settings::load_from(None, env(&[(var, value)])) {
                Ok(_) => panic!("{var}={value} was accepted"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(key), "{var}={value}: {err:?} does not name {key}");
        }
    }

    #[test]
    fn secrets_never_print() {
        let settings = Settings::load_from(
            None,
            env(&[
                ("DATABASE_URL", "postgres://app:hunter2-db@db:5432/risk"),
                ("REDIS_URL", "redis://:hunter2-redis@cache:6379"),
                ("NATS_URL", "nats://hunter2-nats@bus:4222"),
                ("PDSCORE__APPLICATION__LOG_LEVEL", "info"),
            ]),
        )
        .unwrap();
        let debug = format!("{settings:?}");
        let redacted = settings.redacted().to_string();
        for secret in ["hunter2-db", "hunter2-redis", "hunter2-nats"] {
            assert!(!debug.contains(secret), "Debug leaks {secret}");
            assert!(!redacted.contains(secret), "redacted view leaks {secret}");
        }
        assert!(redacted.contains("postgres://app:***@db:5432/risk"));
        assert!(redacted.contains("nats://***@bus:4222"));
        assert_eq!(
            redact_url("postgres://db/risk?password=x&sslmode=disable"),
            "postgres://db/risk?***"
        );
    }
}
