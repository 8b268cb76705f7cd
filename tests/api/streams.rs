use std::time::Duration;

use async_nats::jetstream;
use pdscore_nats::{Namespace, StreamKind, ensure_streams};
use secrecy::ExposeSecret;

use crate::helpers::{TestApp, spawn_app};

async fn jetstream_of(app: &TestApp) -> (jetstream::Context, Namespace) {
    let client = async_nats::connect(app.settings.nats.url.expose_secret())
        .await
        .unwrap();
    let namespace = app.settings.nats.namespace().unwrap();
    (jetstream::new(client), namespace)
}

#[actix_web::test]
async fn the_service_creates_its_streams_under_its_prefix_at_start() {
    let app = spawn_app().await;
    app.wait_for_health(200, Duration::from_secs(30)).await;
    let (js, ns) = jetstream_of(&app).await;
    let prefix = &app.isolation.nats_prefix;

    for (kind, subject) in [
        (StreamKind::Filings, "filings.>"),
        (StreamKind::Alerts, "alerts.>"),
        (StreamKind::DeadLetters, "deadletter.>"),
    ] {
        let mut stream = js.get_stream(ns.stream_name(kind.base_name())).await.unwrap();
        let info = stream.info().await.unwrap();
        let expected = kind.config(&ns).unwrap();
        assert_eq!(info.config.subjects, vec![format!("{prefix}.{subject}")]);
        assert_eq!(info.config.max_age, expected.max_age);
        assert_eq!(info.config.duplicate_window, expected.duplicate_window);
        assert_eq!(info.config.storage, jetstream::stream::StorageType::File);
    }
}

#[actix_web::test]
async fn ensuring_streams_again_changes_nothing_and_keeps_messages() {
    let app = spawn_app().await;
    app.wait_for_health(200, Duration::from_secs(30)).await;
    let (js, ns) = jetstream_of(&app).await;
    js.publish(ns.filings("acme", "annual"), "{}".into())
        .await
        .unwrap()
        .await
        .unwrap();

    let first = ensure_streams(&js, &ns, 1).await.unwrap();
    let second = ensure_streams(&js, &ns, 1).await.unwrap();

    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a.config.name, b.config.name);
        assert_eq!(a.created, b.created, "{} was re-created", a.config.name);
    }
    let filings = &second[0];
    assert_eq!(filings.state.messages, 1, "the published filing must survive");
}

#[actix_web::test]
async fn a_stream_that_drifted_from_its_definition_is_put_back() {
    let app = spawn_app().await;
    app.wait_for_health(200, Duration::from_secs(30)).await;
    let (js, ns) = jetstream_of(&app).await;
    let mut drifted = StreamKind::Alerts.config(&ns).unwrap();
    drifted.max_age = Duration::from_secs(24 * 3600);
    drifted.description = Some("edited by hand".into());
    js.update_stream(drifted).await.unwrap();

    ensure_streams(&js, &ns, 1).await.unwrap();

    let mut stream = js.get_stream(ns.stream_name("ALERTS")).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.config.max_age, StreamKind::Alerts.config(&ns).unwrap().max_age);
    assert_ne!(info.config.description.as_deref(), Some("edited by hand"));
}

#[actix_web::test]
async fn a_deleted_stream_is_recreated_by_the_running_service() {
    let app = spawn_app().await;
    app.wait_for_health(200, Duration::from_secs(30)).await;
    let (js, ns) = jetstream_of(&app).await;

    js.delete_stream(ns.stream_name("FILINGS")).await.unwrap();

    // The next health check notices, reports NATS down, and the upkeep task puts the stream back.
    let (status, _) = app.health().await;
    assert_eq!(status, 503);
    app.wait_for_health(200, Duration::from_secs(30)).await;
    assert!(js.get_stream(ns.stream_name("FILINGS")).await.is_ok());
}

#[actix_web::test]
async fn a_consumer_made_without_a_delivery_limit_gets_one_when_the_service_starts() {
    let settings = crate::helpers::base_settings();
    let client = async_nats::connect(settings.nats.url.expose_secret()).await.unwrap();
    let js = jetstream::new(client);
    let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let ns = Namespace::parse(&prefix).unwrap();
    ensure_streams(&js, &ns, 1).await.unwrap();
    // As the versions before delivery limits made it.
    let stream = js.get_stream(ns.stream_name("FILINGS")).await.unwrap();
    stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("scoring".into()),
            filter_subject: ns.subject("filings.>"),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            max_deliver: -1,
            ..Default::default()
        })
        .await
        .unwrap();

    let app = crate::helpers::spawn_app_with(|s| s.nats.prefix = prefix.clone()).await;
    let max_deliver = crate::helpers::eventually("the consumer's update", Duration::from_secs(20), || async {
        let mut consumer: jetstream::consumer::Consumer<jetstream::consumer::pull::Config> =
            stream.get_consumer("scoring").await.ok()?;
        let info = consumer.info().await.ok()?;
        (info.config.max_deliver != -1).then_some(info.config.max_deliver)
    })
    .await;
    assert_eq!(
        max_deliver,
        pdscore_nats::ingest::consumer_max_deliver(app.settings.pipeline.ingest_max_deliver)
    );
    pdscore_nats::delete_streams(&js, &ns).await;
}
