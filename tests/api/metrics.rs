use pdscore::auth::Role;
use serde_json::json;

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
        has(r#"pdscore_http_requests_total{method="GET",route="/health",status="#),
        "{text}"
    );
    // Unmatched paths share one label, so clients cannot blow up the series count.
    assert!(
        has(r#"pdscore_http_requests_total{method="GET",route="unmatched",status="404"}"#),
        "{text}"
    );
    assert!(has(
        r#"pdscore_http_request_duration_seconds_bucket{method="GET",route="/health",status="#
    ));
    for gauge in [
        r#"pdscore_db_pool_connections{state="idle"}"#,
        r#"pdscore_db_pool_connections{state="in_use"}"#,
        "pdscore_db_pool_max_connections",
        "pdscore_nats_connected",
        r#"pdscore_dependency_up{dependency="postgres"}"#,
        "pdscore_build_info{",
    ] {
        assert!(has(gauge), "missing {gauge} in {text}");
    }
}

/// Every series is the service's (`pdscore_…`), and every histogram exports buckets: a summary's quantiles
/// cannot be added up across instances.
#[actix_web::test]
async fn every_metric_is_prefixed_and_every_histogram_has_buckets() {
    let app = spawn_app().await;
    let demo = app.demo().await;
    let (status, body) = app
        .call(
            "POST",
            "/api/v1/predictions/annual",
            Some(demo.token(Role::OrgMember)),
            Some(
                &json!({ "company_symbol": "METRICS", "company_name": "Metrics", "reporting_year": 2024,
                          "return_on_assets": 4.2 }),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    let text = app.get("/metrics").await.text().await.unwrap();

    let types: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    assert!(types.len() > 10, "{text}");
    for (name, kind) in &types {
        assert!(name.starts_with("pdscore_"), "{name} lacks the pdscore_ prefix");
        assert_ne!(*kind, "summary", "{name} exports as a summary");
    }
    for histogram in [
        "pdscore_pipeline_latency_seconds",
        "pdscore_model_latency_seconds",
        "pdscore_model_batch_size",
        "pdscore_persist_commit_seconds",
        "pdscore_persist_batch_rows",
    ] {
        assert!(
            types.contains(&(histogram, "histogram")),
            "{histogram} is not a histogram: {text}"
        );
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{histogram}_bucket{{"))),
            "{histogram} has no buckets: {text}"
        );
    }
}
