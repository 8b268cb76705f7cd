use chrono::DateTime;
use serde_json::Value;

use crate::helpers::spawn_app;

fn assert_meta(body: &Value, request_id: &str) {
    let meta = &body["meta"];
    assert!(
        DateTime::parse_from_rfc3339(meta["timestamp"].as_str().unwrap()).is_ok(),
        "{meta}"
    );
    assert_eq!(meta["version"], pdscore::VERSION);
    assert_eq!(meta["request_id"], request_id);
}

#[actix_web::test]
async fn a_success_is_wrapped_in_the_envelope_with_meta() {
    let app = spawn_app().await;

    let response = app.get("/health/live").await;

    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["status"], "alive");
    assert_meta(&body, &request_id);
}

#[actix_web::test]
async fn an_unknown_route_is_a_not_found_envelope() {
    let app = spawn_app().await;

    let response = app.get("/api/v1/no-such-thing").await;

    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/json");
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], "NOT_FOUND");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(body.get("data").is_none());
    assert_meta(&body, &request_id);
}

#[actix_web::test]
async fn a_wrong_method_is_a_method_not_allowed_envelope() {
    let app = spawn_app().await;

    let response = app
        .client
        .delete(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 405);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "METHOD_NOT_ALLOWED");
}
