//! `spawn_app()` and friends: every test gets its own database (created, migrated, dropped), its own NATS
//! subject/stream prefix (streams deleted afterwards), its own Redis key prefix and a random port, all on the
//! real PostgreSQL, Redis and NATS servers (`DATABASE_URL`, `REDIS_URL`, `NATS_URL` or the defaults).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, LazyLock, Mutex},
    time::{Duration, Instant},
};

use pdscore::{configuration::Settings, startup::Application, telemetry};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Logs of the application under test go to stdout when `TEST_LOG` is set (`TEST_LOG=1 cargo test …`).
static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = telemetry::init_tracing(pdscore::configuration::LogFormat::Pretty, "info,sqlx=warn");
    }
});

/// One RS256 signing key for every application this test binary starts (generating one per test would cost
/// seconds), written to a file as an operator would configure it. Tests sign their own tokens with it to
/// check what the service accepts.
pub static SIGNING_KEY: LazyLock<(std::path::PathBuf, String)> = LazyLock::new(|| {
    let pem = pdscore::auth::keys::generate_private_key_pem().expect("key generation");
    let path = std::env::temp_dir().join(format!("pdscore-test-key-{}.pem", std::process::id()));
    std::fs::write(&path, &pem).expect("key file written");
    (path, pem)
});

/// The settings every test starts from: the defaults plus this process's environment.
pub fn base_settings() -> Settings {
    Settings::load_from(None, std::env::vars().collect()).expect("test settings load")
}

/// The per-test resources on the shared servers, released on drop.
pub struct Isolation {
    pub db_name: String,
    pub database_url: String,
    pub nats_prefix: String,
    pub redis_prefix: String,
    /// Where this test's uploads are kept (removed afterwards).
    pub storage_dir: std::path::PathBuf,
    /// The real servers (a test may point the application elsewhere; cleanup still goes here).
    server_database_url: String,
    server_nats_url: String,
    server_redis_url: String,
}

impl Isolation {
    pub fn new() -> Self {
        let settings = base_settings();
        let id = Uuid::new_v4().simple().to_string()[..12].to_owned();
        let server_database_url = settings.database.url.expose_secret().to_owned();
        let db_name = format!("pdscore_test_{id}");
        Self {
            database_url: with_database(&server_database_url, &db_name),
            db_name,
            nats_prefix: format!("t{id}"),
            redis_prefix: format!("test:{id}"),
            storage_dir: std::env::temp_dir().join(format!("pdscore-test-{id}")),
            server_database_url,
            server_nats_url: settings.nats.url.expose_secret().to_owned(),
            server_redis_url: settings.redis.url.expose_secret().to_owned(),
        }
    }

    /// Applies this isolation to `settings`.
    pub fn apply(&self, settings: &mut Settings) {
        settings.database.url = SecretString::from(self.database_url.clone());
        settings.nats.prefix = self.nats_prefix.clone();
        settings.redis.key_prefix = self.redis_prefix.clone();
        settings.storage.dir = self.storage_dir.clone();
        settings.bulk.poll_interval_ms = 200;
    }

    /// The environment that gives the binary this isolation.
    pub fn env(&self) -> HashMap<&'static str, String> {
        HashMap::from([
            ("DATABASE_URL", self.database_url.clone()),
            ("PDSCORE__NATS__PREFIX", self.nats_prefix.clone()),
            ("PDSCORE__REDIS__KEY_PREFIX", self.redis_prefix.clone()),
            ("PDSCORE__STORAGE__DIR", self.storage_dir.display().to_string()),
            ("PDSCORE__BULK__POLL_INTERVAL_MS", "200".to_owned()),
            // One key for every instance of the deployment, as an operator configures it (instances that could
            // not verify each other's tokens refuse to run side by side).
            (
                "PDSCORE__AUTH__JWT_PRIVATE_KEY_PATH",
                SIGNING_KEY.0.display().to_string(),
            ),
        ])
    }

    async fn cleanup(&self) {
        let maintenance = with_database(&self.server_database_url, "postgres");
        if let Ok(mut conn) = PgConnection::connect(&maintenance).await {
            let _ = conn
                .execute(format!(r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#, self.db_name).as_str())
                .await;
        }
        if let Ok(client) = async_nats::connect(&self.server_nats_url).await {
            let js = async_nats::jetstream::new(client);
            let ns = pdscore_nats::Namespace::parse(&self.nats_prefix).expect("valid test prefix");
            pdscore_nats::delete_streams(&js, &ns).await;
        }
        // The test's sessions, signing keys, cached answers and counters.
        if let Ok(client) = redis::Client::open(self.server_redis_url.as_str())
            && let Ok(mut redis) = client.get_multiplexed_async_connection().await
        {
            use futures_util::StreamExt;
            use redis::AsyncCommands;
            let keys: Vec<String> = match redis.scan_match(format!("{}:*", self.redis_prefix)).await {
                Ok(keys) => keys.filter_map(|key| async move { key.ok() }).collect().await,
                Err(_) => Vec::new(),
            };
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis.del(keys).await;
            }
        }
    }
}

impl Isolation {
    /// Runs `pdscore migrate` on this isolation's database.
    pub fn migrate(&self) {
        let migrate = std::process::Command::new(env!("CARGO_BIN_EXE_pdscore"))
            .arg("migrate")
            .envs(self.env())
            .output()
            .unwrap();
        assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));
    }

    /// Starts `pdscore serve` with this isolation on `port`, its log in the temp directory as `log`, with
    /// extra environment.
    pub fn serve(&self, port: u16, log: &str, env: &[(&str, &str)]) -> std::process::Child {
        let log = std::fs::File::create(std::env::temp_dir().join(log)).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_pdscore"))
            .arg("serve")
            .envs(self.env())
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }
}

impl Drop for Isolation {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.storage_dir);
        // Drop cannot await, and the test's runtime may be gone: clean up on a runtime of our own.
        std::thread::scope(|scope| {
            let _ = scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("cleanup runtime")
                        .block_on(self.cleanup());
                })
                .join();
        });
    }
}

/// `postgres://…/olddb?x` → `postgres://…/name?x`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

pub struct TestApp {
    pub address: String,
    pub db: PgPool,
    /// The running pipeline (tests inject failures through it).
    pub pipeline: pdscore_actors::Pipeline,
    /// The drift monitor (its passes run when a test says).
    pub drift: pdscore::validation::drift::DriftMonitor,
    pub settings: Settings,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    server: Option<JoinHandle<anyhow::Result<()>>>,
    // Declared last: dropped after the pool above is closed.
    pub isolation: Isolation,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Spawns the application with test isolation, after `customize` has adjusted its settings.
pub async fn spawn_app_with(customize: impl FnOnce(&mut Settings)) -> TestApp {
    LazyLock::force(&TRACING);
    let isolation = Isolation::new();
    let mut settings = base_settings();
    isolation.apply(&mut settings);
    settings.application.listen = "127.0.0.1:0".parse().unwrap();
    settings.application.workers = 1;
    settings.application.shutdown_timeout_secs = 2;
    settings.health.timeout_ms = 1500;
    settings.auth.jwt_private_key_path = SIGNING_KEY.0.clone();
    // Every test's tenants get series of their own (the tests share one process, hence one label table).
    settings.pipeline.max_tenant_series = 1_000_000;
    // Drift passes run when a test asks (`TestApp::drift`), not on a timer.
    settings.drift.every_secs = 0;
    customize(&mut settings);

    let application = Application::build(settings.clone()).await.expect("application builds");
    let port = application.port();
    let pipeline = application.pipeline().clone();
    let drift = application.drift().clone();
    let shutdown = application.shutdown_token();
    let server = tokio::spawn(application.run_until_stopped());
    let db = pdscore::db::pool(&settings.database).expect("test pool");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        db,
        pipeline,
        drift,
        settings,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            // The server closes a connection idle for 5 s (actix-web's keep-alive): a request sent on one
            // that idled about that long races the close and fails with IncompleteMessage (seen after the
            // 5.5 s flood of the fairness test). Idle connections are dropped well before.
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .unwrap(),
        shutdown,
        server: Some(server),
        isolation,
    }
}

impl TestApp {
    /// A request with an optional bearer token and JSON body, answered as (status, body).
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
        let response = self.send(method, path, token, body).await;
        let status = response.status().as_u16();
        let text = response.text().await.expect("a response body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn send(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> reqwest::Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("an HTTP method");
        let mut request = self.client.request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("request sent")
    }

    /// A JetStream context on the test's NATS server and the test's namespace.
    pub async fn jetstream(&self) -> (async_nats::jetstream::Context, pdscore_nats::Namespace) {
        let client = async_nats::connect(self.settings.nats.url.expose_secret())
            .await
            .expect("NATS reachable");
        (
            async_nats::jetstream::new(client),
            self.settings.nats.namespace().unwrap(),
        )
    }

    /// Signs in; returns the token pair (`data` of the answer). Panics unless the answer is 200.
    pub async fn login(&self, email: &str, password: &str) -> Value {
        let body = serde_json::json!({ "email": email, "password": password });
        let (status, answer) = self.call("POST", "/api/v1/auth/login", None, Some(&body)).await;
        assert_eq!(status, 200, "login of {email} failed: {answer:#}");
        answer["data"].clone()
    }

    /// The demo tenant with one account per role (`pdscore demo-setup`), and an access token for each.
    pub async fn demo(&self) -> Demo {
        let setup = pdscore::accounts::demo_setup(&self.db).await.expect("demo setup");
        let mut tokens = HashMap::new();
        for user in &setup.users {
            let pair = self.login(&user.email, &user.password).await;
            tokens.insert(user.role, pair["access_token"].as_str().unwrap().to_owned());
        }
        Demo { setup, tokens }
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("request sent")
    }

    /// `GET /health` as (status, body).
    pub async fn health(&self) -> (u16, Value) {
        let response = self.get("/health").await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("health answers JSON"))
    }

    /// Polls `/health` until it answers `status` or `within` elapses; returns the last body.
    pub async fn wait_for_health(&self, status: u16, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (got, body) = self.health().await;
            if got == status {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "/health stayed {got} instead of {status} for {within:?}: {body:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops the application the way SIGTERM does and waits for it to finish.
    pub async fn shutdown(&mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        match self.server.take() {
            Some(server) => server.await?,
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A second tenant ("tenant-b", created by the super admin `sa`) with one organization and one company of
/// symbol `symbol`: its admin's credentials and token, and the company's id.
pub struct SecondTenant {
    pub admin_email: &'static str,
    pub admin_password: &'static str,
    pub admin_token: String,
    pub company_id: Uuid,
}

impl TestApp {
    pub async fn second_tenant(&self, sa: &str, symbol: &str) -> SecondTenant {
        let (admin_email, admin_password) = ("admin@b.example.com", "second tenant secret pass");
        let id = |answer: &Value| -> Uuid { answer["data"]["id"].as_str().expect("an id").parse().unwrap() };
        let body = serde_json::json!({
            "slug": "tenant-b", "name": "Tenant B", "admin": { "email": admin_email, "password": admin_password }
        });
        let (status, created) = self.call("POST", "/api/v1/tenants", Some(sa), Some(&body)).await;
        assert_eq!(status, 201, "{created:#}");
        let tenant_id: Uuid = created["data"]["tenant"]["id"].as_str().unwrap().parse().unwrap();
        let admin_token = self.login(admin_email, admin_password).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let organization = serde_json::json!({ "name": "B1" });
        let path = format!("/api/v1/tenants/{tenant_id}/organizations");
        let (status, org) = self.call("POST", &path, Some(&admin_token), Some(&organization)).await;
        assert_eq!(status, 201, "{org:#}");
        let organization_id = id(&org);
        let company = serde_json::json!({ "symbol": symbol, "name": format!("{symbol} of tenant B") });
        let path = format!("/api/v1/organizations/{organization_id}/companies");
        let (status, company) = self.call("POST", &path, Some(&admin_token), Some(&company)).await;
        assert_eq!(status, 201, "{company:#}");
        SecondTenant {
            admin_email,
            admin_password,
            admin_token,
            company_id: id(&company),
        }
    }
}

/// The demo tenant and a signed-in token per role.
pub struct Demo {
    pub setup: pdscore::accounts::DemoSetup,
    pub tokens: HashMap<pdscore::auth::Role, String>,
}

impl Demo {
    pub fn token(&self, role: pdscore::auth::Role) -> &str {
        &self.tokens[&role]
    }
}

/// A local port nothing listens on.
/// Polls `check` every 50 ms until it returns `Some`, or panics after `within` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// The host:port of a URL such as `redis://127.0.0.1:6379` or `postgres://u:p@h:5432/db`.
pub fn host_port(url: &str) -> SocketAddr {
    host_port_text(url)
        .replace("localhost", "127.0.0.1")
        .parse()
        .unwrap_or_else(|_| panic!("{url} has no numeric host:port"))
}

/// A TCP forwarder in front of a real server that a test can cut and restore, to see how the service
/// behaves while a dependency is unreachable and after it returns.
pub struct TcpProxy {
    pub port: u16,
    target: SocketAddr,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl TcpProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Self {
            port,
            target,
            task: Arc::new(Mutex::new(None)),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let target = self.target;
        let task = tokio::spawn(async move {
            // Connections live in this set: aborting the task drops it, which cuts them all.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// Refuses new connections and cuts the open ones.
    pub async fn cut(&self) {
        let task = self.task.lock().unwrap().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    pub async fn restore(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(listener);
    }

    pub fn url_for(&self, original: &str) -> String {
        original.replacen(&host_port_text(original), &format!("127.0.0.1:{}", self.port), 1)
    }
}

fn host_port_text(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap();
    authority.rsplit_once('@').map_or(authority, |(_, h)| h).to_owned()
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }
}

/// A call that must succeed (200 or 201): its `data`.
pub async fn data(app: &TestApp, method: &str, path: &str, token: &str, body: Value) -> Value {
    let (status, answer) = app.call(method, path, Some(token), Some(&body)).await;
    assert!(status == 200 || status == 201, "{method} {path}: {status} {answer:#}");
    answer["data"].clone()
}

/// The `id` of a resource.
pub fn id(value: &Value) -> Uuid {
    value["id"].as_str().unwrap().parse().unwrap()
}

/// How many companies are at each current risk level (`None`: not scored yet), as the portfolio's tallies sum
/// them and as the risk rows count them: the two must agree.
pub async fn tallied_and_counted(db: &sqlx::PgPool) -> [Vec<(Option<String>, i64)>; 2] {
    let tallied = sqlx::query_as(
        "SELECT risk_level::text, sum(delta)::int8 FROM portfolio_tally GROUP BY 1 HAVING sum(delta) <> 0 ORDER BY 1",
    )
    .fetch_all(db)
    .await
    .unwrap();
    let counted = sqlx::query_as("SELECT level::text, count(*) FROM company_risk GROUP BY 1 ORDER BY 1")
        .fetch_all(db)
        .await
        .unwrap();
    [tallied, counted]
}
