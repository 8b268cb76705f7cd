use std::time::Duration;

use pdscore::configuration::Dependency;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::helpers::{TcpProxy, TestApp, closed_port, host_port, spawn_app, spawn_app_with};

const RECOVERY: Duration = Duration::from_secs(30);

fn check<'a>(body: &'a Value, dependency: &str) -> &'a Value {
    // 200 carries the report in `data`; 503 in `error.details`.
    let report = if body["success"] == true {
        &body["data"]
    } else {
        &body["error"]["details"]
    };
    &report["checks"][dependency]
}

fn assert_only_down(body: &Value, down: &str) {
    for dependency in ["postgres", "redis", "nats"] {
        let expected = if dependency == down { "down" } else { "up" };
        assert_eq!(check(body, dependency)["status"], expected, "{dependency} in {body:#}");
        assert!(check(body, dependency)["latency_ms"].is_number());
    }
    assert!(check(body, down)["error"].as_str().is_some_and(|e| !e.is_empty()));
}

#[actix_web::test]
async fn health_reports_every_dependency_up_with_its_latency() {
    let app = spawn_app().await;

    let body = app.wait_for_health(200, RECOVERY).await;

    assert_eq!(body["data"]["status"], "healthy");
    for dependency in ["postgres", "redis", "nats"] {
        let check = &body["data"]["checks"][dependency];
        assert_eq!(check["status"], "up", "{body:#}");
        assert_eq!(check["required"], true);
        assert!(check["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    }
}

async fn assert_unavailable_with(app: &TestApp, down: &str) {
    let response = app.get("/health").await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE");
    assert!(body["error"]["message"].as_str().unwrap().contains(down));
    assert_eq!(body["error"]["details"]["status"], "unhealthy");
    assert_only_down(&body, down);
    // The service itself keeps serving.
    assert_eq!(app.get("/health/live").await.status(), 200);
}

#[actix_web::test]
async fn redis_on_a_closed_port_makes_health_503_with_redis_down() {
    let port = closed_port().await;
    let app = spawn_app_with(|s| s.redis.url = SecretString::from(format!("redis://127.0.0.1:{port}"))).await;
    wait_until_only_down(&app, "redis").await;

    assert_unavailable_with(&app, "redis").await;
}

#[actix_web::test]
async fn nats_on_a_closed_port_makes_health_503_with_nats_down() {
    let port = closed_port().await;
    let app = spawn_app_with(|s| s.nats.url = SecretString::from(format!("nats://127.0.0.1:{port}"))).await;

    assert_unavailable_with(&app, "nats").await;
}

#[actix_web::test]
async fn postgres_on_a_closed_port_makes_health_503_with_postgres_down() {
    let port = closed_port().await;
    let app = spawn_app_with(|s| {
        s.database.migrate_on_start = false;
        s.database.url = SecretString::from(format!("postgres://postgres@127.0.0.1:{port}/pdscore"));
    })
    .await;
    wait_until_only_down(&app, "postgres").await;

    assert_unavailable_with(&app, "postgres").await;
}

#[actix_web::test]
async fn an_optional_dependency_down_only_degrades_health() {
    let port = closed_port().await;
    let app = spawn_app_with(|s| {
        s.redis.url = SecretString::from(format!("redis://127.0.0.1:{port}"));
        s.health.required = vec![Dependency::Postgres, Dependency::Nats];
    })
    .await;

    let body = app.wait_for_health(200, RECOVERY).await;

    assert_eq!(body["data"]["status"], "degraded");
    assert_eq!(body["data"]["checks"]["redis"]["status"], "down");
    assert_eq!(body["data"]["checks"]["redis"]["required"], false);
}

/// Waits until the other dependencies are up (streams are created in the background), so the assertions
/// see exactly one failure.
async fn wait_until_only_down(app: &TestApp, down: &str) {
    let deadline = std::time::Instant::now() + RECOVERY;
    loop {
        let (_, body) = app.health().await;
        let others_up = ["postgres", "redis", "nats"]
            .iter()
            .filter(|d| **d != down)
            .all(|d| check(&body, d)["status"] == "up");
        if others_up {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "others never came up: {body:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the service with `dependency` reached through a proxy, cuts it, restores it.
async fn cut_and_restore(dependency: &str) {
    let base = crate::helpers::base_settings();
    let real_url = match dependency {
        "redis" => base.redis.url.expose_secret().to_owned(),
        "nats" => base.nats.url.expose_secret().to_owned(),
        _ => base.database.url.expose_secret().to_owned(),
    };
    let proxy = TcpProxy::start(host_port(&real_url)).await;
    let app = spawn_app_with(|s| match dependency {
        "redis" => s.redis.url = SecretString::from(proxy.url_for(s.redis.url.expose_secret())),
        "nats" => s.nats.url = SecretString::from(proxy.url_for(s.nats.url.expose_secret())),
        _ => s.database.url = SecretString::from(proxy.url_for(s.database.url.expose_secret())),
    })
    .await;
    app.wait_for_health(200, RECOVERY).await;

    proxy.cut().await;
    let body = app.wait_for_health(503, RECOVERY).await;
    assert_only_down(&body, dependency);
    assert_eq!(
        app.get("/health/live").await.status(),
        200,
        "the service must keep serving"
    );

    proxy.restore().await;
    let body = app.wait_for_health(200, RECOVERY).await;
    assert_eq!(body["data"]["status"], "healthy");
}

#[actix_web::test]
async fn health_recovers_when_redis_returns() {
    cut_and_restore("redis").await;
}

#[actix_web::test]
async fn health_recovers_when_postgres_returns() {
    cut_and_restore("postgres").await;
}

#[actix_web::test]
async fn health_recovers_when_nats_returns() {
    cut_and_restore("nats").await;
}
