use serde_json::Value;

use crate::helpers::spawn_app;

#[actix_web::test]
async fn a_client_request_id_is_echoed_in_the_header_and_the_envelope() {
    let app = spawn_app().await;

    let response = app
        .client
        .get(format!("{}/no-such-route", app.address))
        .header("X-Request-Id", "analyst-tool:42.a_b-c")
        .send()
        .await
        .unwrap();

    assert_eq!(response.headers()["x-request-id"], "analyst-tool:42.a_b-c");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["meta"]["request_id"], "analyst-tool:42.a_b-c");
}

#[actix_web::test]
async fn a_request_without_an_id_gets_a_generated_one() {
    let app = spawn_app().await;

    let first = app.get("/health/live").await;
    let second = app.get("/health/live").await;

    let first_id = first.headers()["x-request-id"].to_str().unwrap().to_owned();
    let second_id = second.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&first_id).is_ok(), "{first_id}");
    assert_ne!(first_id, second_id);
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["meta"]["request_id"], first_id);
}

#[actix_web::test]
async fn an_unsafe_client_request_id_is_replaced() {
    let app = spawn_app().await;

    for unsafe_id in ["has spaces", "<script>", &"x".repeat(200)] {
        let response = app
            .client
            .get(format!("{}/health/live", app.address))
            .header("X-Request-Id", unsafe_id)
            .send()
            .await
            .unwrap();

        let echoed = response.headers()["x-request-id"].to_str().unwrap();
        assert_ne!(echoed, unsafe_id);
        assert!(uuid::Uuid::parse_str(echoed).is_ok());
    }
}
