//! Dependency faults on the data path: filings of several tenants stream in over NATS while the test restarts,
//! in turn, PostgreSQL, the NATS server and Redis — real restarts of private instances the test owns (a
//! `nats-server -js` with its own store, a cluster made with `initdb`/`pg_ctl`, a `redis-server`). The service
//! is never restarted: it must recover by itself, score every filing exactly once and publish every alert
//! once.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use async_nats::jetstream::{self, consumer::pull};
use futures_util::StreamExt;
use pdscore::auth::Role;
use secrecy::SecretString;
use serde_json::json;

use crate::{
    helpers::{closed_port, eventually, spawn_app_with},
    pipeline::{risky, safe},
};

/// Runs a command, as the `postgres` user when this process is root (PostgreSQL refuses to run as root).
fn as_postgres(program: &Path) -> Command {
    let uid = Command::new("id").arg("-u").output().expect("id runs").stdout;
    if String::from_utf8_lossy(&uid).trim() == "0" {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn postgres_bin(name: &str) -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql").expect("PostgreSQL is installed");
    let mut versions: Vec<PathBuf> = versions.flatten().map(|e| e.path()).collect();
    versions.sort();
    versions.last().expect("a PostgreSQL version").join("bin").join(name)
}

fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A private PostgreSQL cluster in a temporary directory.
struct Postgres {
    dir: PathBuf,
    port: u16,
}

impl Postgres {
    fn start(root: &Path, port: u16) -> Self {
        let dir = root.join("pg");
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Command::new("chown").args(["-R", "postgres"]).arg(root).status();
        let init = as_postgres(&postgres_bin("initdb"))
            .args(["-D"])
            .arg(&dir)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(init.success(), "initdb failed");
        let postgres = Self { dir, port };
        postgres.pg_ctl("start");
        postgres
    }

    fn pg_ctl(&self, action: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let status = as_postgres(&postgres_bin("pg_ctl"))
            .args(["-D"])
            .arg(&self.dir)
            .args(["-o", &options, "-m", "fast", "-w", "-l"])
            .arg(self.dir.join("log"))
            .arg(action)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl {action} failed");
        if action != "stop" {
            wait_listening(self.port, "PostgreSQL");
        }
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.pg_ctl("stop");
    }
}

/// A private server process (NATS or Redis) that the test stops and starts again with the same arguments.
struct Server {
    what: &'static str,
    command: Vec<String>,
    port: u16,
    child: Option<Child>,
}

impl Server {
    fn start(what: &'static str, command: Vec<String>, port: u16) -> Self {
        let mut server = Self {
            what,
            command,
            port,
            child: None,
        };
        server.up();
        server
    }

    fn up(&mut self) {
        let child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", self.what));
        self.child = Some(child);
        wait_listening(self.port, self.what);
    }

    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.down();
    }
}

const PER_TENANT: usize = 300;

#[actix_web::test]
async fn the_data_path_recovers_by_itself_from_restarts_of_postgres_nats_and_redis() {
    let root = std::env::temp_dir().join(format!("pdscore-outage-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&root).unwrap();
    let (pg_port, nats_port, redis_port) = (closed_port().await, closed_port().await, closed_port().await);
    let postgres = Postgres::start(&root, pg_port);
    let nats_store = root.join("nats");
    let mut nats = Server::start(
        "nats-server",
        [
            "nats-server",
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &nats_port.to_string(),
            "-sd",
            &nats_store.display().to_string(),
        ]
        .map(str::to_owned)
        .to_vec(),
        nats_port,
    );
    let mut redis = Server::start(
        "redis-server",
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            &redis_port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .map(str::to_owned)
        .to_vec(),
        redis_port,
    );
    let database = postgres.url("pdscore_outage");
    let nats_url = format!("nats://127.0.0.1:{nats_port}");
    let app = spawn_app_with(|s| {
        s.database.url = SecretString::from(database.clone());
        s.database.acquire_timeout_ms = 2000;
        s.nats.url = SecretString::from(nats_url.clone());
        s.redis.url = SecretString::from(format!("redis://127.0.0.1:{redis_port}"));
        s.pipeline.default_rate_per_second = 100_000.0;
        s.pipeline.default_burst = 100_000;
        s.pipeline.ingest_ack_wait_secs = 5;
    })
    .await;
    let demo = app.demo().await;
    let sa = demo.token(Role::SuperAdmin).to_owned();
    let second = app.second_tenant(&sa, "BCO").await;
    drop(second);
    let tenants = [(demo.setup.tenant_slug.clone(), "ACME"), ("tenant-b".to_owned(), "BCO")];

    // The publisher goes on through the outages: a publish that fails is sent again until JetStream stores it
    // (its message id makes a repeat harmless; so does the filing's key).
    let ns = app.settings.nats.namespace().unwrap();
    let publisher = {
        let (nats_url, ns, tenants) = (nats_url.clone(), ns.clone(), tenants.clone());
        tokio::spawn(async move {
            let client = async_nats::ConnectOptions::new()
                .retry_on_initial_connect()
                .connect(nats_url)
                .await
                .unwrap();
            let js = jetstream::new(client);
            for n in 0..PER_TENANT {
                for (slug, symbol) in &tenants {
                    // Levels alternate every 10 periods: risk changes, hence alerts, all along.
                    let ratios = if (n / 10) % 2 == 0 { safe() } else { risky() };
                    let payload = serde_json::to_vec(&json!({
                        "schema_version": 1, "filing_id": format!("o-{n}"), "company_symbol": symbol,
                        "reporting_year": 1900 + n, "ratios": ratios
                    }))
                    .unwrap();
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert("Nats-Msg-Id", format!("{slug}-{n}").as_str());
                    loop {
                        let sent = js
                            .publish_with_headers(ns.filings(slug, "annual"), headers.clone(), payload.clone().into())
                            .await;
                        let stored = match sent {
                            Ok(ack) => tokio::time::timeout(Duration::from_secs(5), ack)
                                .await
                                .is_ok_and(|a| a.is_ok()),
                            Err(_) => false,
                        };
                        if stored {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let total = (PER_TENANT * tenants.len()) as i64;
    let committed = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM predictions WHERE NOT is_shadow")
            .fetch_one(&app.db)
            .await
            .unwrap_or(-1)
    };
    // Each dependency down for 3 s, in turn, while filings stream in.
    for (dependency, restart) in [("PostgreSQL", 0_usize), ("NATS", 1), ("Redis", 2)] {
        eventually(
            &format!("filings committed before the {dependency} restart"),
            Duration::from_secs(60),
            || async { (committed().await > 0).then_some(()) },
        )
        .await;
        match restart {
            0 => postgres.pg_ctl("stop"),
            1 => nats.down(),
            _ => redis.down(),
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        match restart {
            0 => postgres.pg_ctl("start"),
            1 => nats.up(),
            _ => redis.up(),
        }
        eprintln!(
            "[outage] {dependency} restarted; {} predictions so far",
            committed().await
        );
    }
    publisher.await.unwrap();

    // Every filing exactly once: one filing per key and tenant, one primary prediction per filing.
    eventually("every filing scored", Duration::from_secs(240), || async {
        (committed().await == total).then_some(())
    })
    .await;
    let per_key: Vec<(i64, i64)> =
        sqlx::query_as("SELECT count(*), count(DISTINCT (f.tenant_id, f.idempotency_key)) FROM filings f")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(per_key, [(total, total)], "one filing per key");
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT filing_id FROM predictions WHERE NOT is_shadow GROUP BY filing_id
                               HAVING count(*) > 1) t",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(twice, 0, "no filing scored twice");

    // Every alert committed went out once on the ALERTS stream.
    let stored: HashSet<String> = sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM alerts")
        .fetch_all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|id| id.to_string())
        .collect();
    assert!(!stored.is_empty(), "risk changes raised alerts");
    let js = jetstream::new(async_nats::connect(&nats_url).await.unwrap());
    let published = eventually("every alert published", Duration::from_secs(60), || async {
        let consumer = js
            .get_stream(ns.stream_name("ALERTS"))
            .await
            .ok()?
            .create_consumer(pull::Config::default())
            .await
            .ok()?;
        let mut messages = consumer
            .batch()
            .max_messages(stored.len() * 2 + 10)
            .expires(Duration::from_secs(3))
            .messages()
            .await
            .ok()?;
        let mut ids: HashMap<String, usize> = HashMap::new();
        while let Some(Ok(message)) = messages.next().await {
            let alert: serde_json::Value = serde_json::from_slice(&message.payload).ok()?;
            *ids.entry(alert["id"].as_str()?.to_owned()).or_default() += 1;
            let _ = message.ack().await;
        }
        (ids.len() == stored.len()).then_some(ids)
    })
    .await;
    assert!(published.values().all(|n| *n == 1), "an alert published twice");
    assert_eq!(published.keys().cloned().collect::<HashSet<_>>(), stored);

    // And the service says it is well, without having been restarted.
    app.wait_for_health(200, Duration::from_secs(30)).await;
    drop((nats, redis, postgres));
    let _ = std::fs::remove_dir_all(&root);
}
