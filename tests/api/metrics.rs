use crate::helpers::spawn_app;

#[actix_web::test]
async fn metrics_expose_request_counts_latency_and_pool_gauges() {
    let app = spawn_app().await;
    app.get("/health").await;
    app.get("/no-such-route").await;

    let response = app.get("/metrics").await;

    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    let has = |needle: &str| text.lines().any(|l| l.starts_with(needle));
    assert!(
        has(r#"http_requests_total{method="GET",route="/health",status="#),
        "{text}"
    );
    // Unmatched paths share one label, so clients cannot blow up the series count.
    assert!(
        has(r#"http_requests_total{method="GET",route="unmatched",status="404"}"#),
        "{text}"
    );
    assert!(has(
        r#"http_request_duration_seconds_bucket{method="GET",route="/health",status="#
    ));
    for gauge in [
        r#"db_pool_connections{state="idle"}"#,
        r#"db_pool_connections{state="in_use"}"#,
        "db_pool_max_connections",
        "nats_connected",
        r#"dependency_up{dependency="postgres"}"#,
    ] {
        assert!(has(gauge), "missing {gauge} in {text}");
    }
}
