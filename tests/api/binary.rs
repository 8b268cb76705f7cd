//! The `pdscore` binary as an operator runs it.

use std::{
    io::Write,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use crate::helpers::{Isolation, closed_port, spawn_app};

fn pdscore(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pdscore"))
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .output()
        .expect("pdscore runs")
}

#[test]
fn version_names_the_release_the_schema_and_the_streams() {
    let output = pdscore(&["version"], &[]);

    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains(&format!("pdscore {}", pdscore::VERSION)), "{stdout}");
    assert!(stdout.contains(&format!("schema migration {}", pdscore::db::latest_migration())));
    assert!(stdout.contains("FILINGS, ALERTS, DEAD_LETTERS"));
}

#[test]
fn an_invalid_configuration_fails_at_start_naming_the_key() {
    for (var, value, key) in [
        ("DATABASE_URL", "mysql://db/risk", "database.url"),
        ("PDSCORE__REDIS__TIMEOUT_MS", "lots", "redis.timeout_ms"),
        ("PDSCORE__NATS__PREFIX", "has.dots", "nats.prefix"),
    ] {
        let output = pdscore(&["serve"], &[(var, value)]);

        assert_eq!(output.status.code(), Some(1), "{var}={value} must fail");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains(key), "{var}={value}: {stderr}");
    }
}

#[test]
fn the_printed_configuration_masks_credentials() {
    let output = pdscore(
        &["config"],
        &[("DATABASE_URL", "postgres://svc:TopSecret1@db:5432/risk")],
    );

    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(!stdout.contains("TopSecret1"), "{stdout}");
    assert!(stdout.contains("postgres://svc:***@db:5432/risk"));
}

#[test]
fn migrate_then_create_super_admin_from_standard_input() {
    let isolation = Isolation::new();
    let env: Vec<(&str, String)> = isolation.env().into_iter().collect();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let migrate = pdscore(&["migrate"], &env);
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));

    let mut child = Command::new(env!("CARGO_BIN_EXE_pdscore"))
        .args(["create-super-admin", "--email", "ops@example.com", "--password-stdin"])
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"correct horse battery staple\n")
        .unwrap();
    let created = child.wait_with_output().unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let stdout = String::from_utf8(created.stdout).unwrap();
    assert!(stdout.contains("created super_admin ops@example.com"), "{stdout}");
    assert!(!stdout.contains("correct horse"), "a password typed in is never echoed");

    let again = pdscore(&["create-super-admin", "--email", "ops@example.com"], &env);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8(again.stderr).unwrap().contains("already exists"));
}

#[actix_web::test]
async fn sigterm_stops_the_service_gracefully() {
    let isolation = Isolation::new();
    let port = closed_port().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_pdscore"))
        .arg("serve")
        .envs(isolation.env())
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let live = client.get(format!("http://127.0.0.1:{port}/health/live")).send().await;
        if live.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the service never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());

    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the service did not stop after SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let output = child.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&output.stdout);
    assert!(status.success(), "exit status {status}: {logs}");
    assert!(
        logs.contains("shutdown requested") && logs.contains("SIGTERM"),
        "{logs}"
    );
    assert!(logs.contains("stopped"), "{logs}");
}

#[actix_web::test]
async fn a_shut_down_application_finishes_and_stops_listening() {
    let mut app = spawn_app().await;
    assert_eq!(app.get("/health/live").await.status(), 200);

    tokio::time::timeout(Duration::from_secs(10), app.shutdown())
        .await
        .expect("shutdown finishes within its timeout")
        .expect("shutdown is clean");

    let refused = app.client.get(format!("{}/health/live", app.address)).send().await;
    assert!(refused.is_err(), "still serving after shutdown");
}
