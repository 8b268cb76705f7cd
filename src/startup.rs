//! Wiring: builds the application from its settings and runs it until a shutdown signal.
//!
//! `Application::build` binds the listener (port 0 in tests) and connects to the dependencies without
//! waiting for Redis or NATS (they are retried in the background and reported by `/health`);
//! `run_until_stopped` serves until SIGTERM/SIGINT or [`Application::shutdown_token`] fires, then drains
//! within one deadline (`application.shutdown_timeout_secs`): it stops taking new work everywhere at once
//! (the server stops accepting, background tasks stop pulling), lets in-flight requests and tasks finish,
//! flushes NATS and closes the pools.

use std::{net::TcpListener, sync::Arc, time::Duration};

use actix_web::{App, HttpServer, dev::Server, middleware::from_fn, web};
use anyhow::Context;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    auth::signers::Signers,
    cache,
    configuration::{ApplicationSettings, Settings},
    db,
    fleet::{Change, Fleet},
    http,
    http::AppState,
    messaging::Messaging,
    pipeline, telemetry,
};

const COMPANY_SYMBOLS_ENTRIES: usize = 100_000;

pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
    /// Cancelled to start a graceful shutdown; background tasks stop when it fires.
    shutdown: CancellationToken,
    background: Vec<JoinHandle<()>>,
    /// Records which alerts were published until `drained` fires: after the server and every background task
    /// have finished, so that the alerts of the last commits are marked too.
    published: JoinHandle<()>,
    drained: CancellationToken,
    shutdown_timeout: Duration,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let metrics = telemetry::metrics_handle();
        pdscore_actors::events::limit_tenant_series(settings.pipeline.max_tenant_series);
        telemetry::events::Started {
            version: crate::VERSION,
        }
        .emit();

        let db = db::pool(&settings.database)?;
        if settings.database.migrate_on_start {
            db::prepare(&settings.database, &db).await?;
        }
        let redis = cache::connect(&settings.redis)?;
        let messaging = Messaging::connect(&settings.nats).await?;

        let auth = crate::auth::Auth::new(&settings.auth, redis.clone(), &settings.redis.key_prefix)?;
        let signers = Signers::new(redis.clone(), &settings.redis.key_prefix, auth.tokens.keys());
        let joined = match signers.join().await {
            Ok(Ok(())) => true,
            Ok(Err(incompatible)) => return Err(incompatible.into()),
            Err(e) => {
                tracing::warn!(
                    error = %format!("{e:#}"),
                    "cannot check the other instances' signing keys; starting, and checking again shortly"
                );
                false
            }
        };
        let registry = pipeline::load_registry(&settings)?;
        let shutdown = CancellationToken::new();
        let mut background = vec![
            messaging.spawn_stream_upkeep(shutdown.clone()),
            telemetry::spawn_metrics_upkeep(metrics.clone(), shutdown.clone()),
            tokio::spawn(keep_listed(signers, joined, shutdown.clone())),
        ];
        if !messaging.streams_in_place(Duration::from_secs(2)).await {
            tracing::warn!("JetStream streams not in place yet; the consumers start and retry");
        }
        let portfolio = cache::PortfolioCache::new(redis.clone(), &settings.redis);
        let fleet = Fleet::new(messaging.clone(), redis.clone(), &settings.redis.key_prefix);
        background.push(tokio::spawn(fleet.changes.clone().follow(shutdown.clone())));
        let started = pipeline::start(
            &settings,
            registry,
            db.clone(),
            messaging.clone(),
            portfolio.clone(),
            &fleet,
            Arc::new(crate::outcomes::NatsOutcomes { db: db.clone() }),
            shutdown.clone(),
        );
        background.extend(started.tasks);
        let drained = CancellationToken::new();
        let published = tokio::spawn(started.published.run(drained.clone()));
        let (bulk, bulk_task) = crate::bulk::BulkRunner::start(
            &settings,
            db.clone(),
            started.pipeline.clone(),
            &messaging,
            fleet.changes.clone(),
            shutdown.clone(),
        );
        background.push(bulk_task);
        let deployment = crate::deployment::Deployment::new(
            db.clone(),
            started.pipeline.clone(),
            started.default_models.clone(),
            settings.pipeline.default_models(),
            fleet.changes.clone(),
        );
        // The versions uploaded at run time, before the first filing is taken (PostgreSQL down: the shipped
        // models answer until the next change or check).
        if let Err(error) = deployment.sync().await {
            tracing::warn!(error = %format!("{error:#}"), "cannot load the deployed models yet; checking again shortly");
        }
        background.push(tokio::spawn(deployment.clone().keep_synced(shutdown.clone())));
        let drift = crate::validation::drift::DriftMonitor::new(
            db.clone(),
            messaging.clone(),
            started.pipeline.registry().clone(),
            settings.drift.clone(),
        );
        background.push(tokio::spawn(drift.clone().run(shutdown.clone())));
        let company_symbols = Arc::new(cache::LocalCache::new(
            Duration::from_millis(settings.pipeline.lookup_ttl_ms),
            COMPANY_SYMBOLS_ENTRIES,
        ));
        let symbols = Arc::clone(&company_symbols);
        // Only companies found are kept: a company added makes none of them wrong.
        fleet
            .changes
            .on_change(move |change: &Change| match change.tenant_id() {
                _ if *change == Change::Models => {}
                Some(tenant_id) if change.drops_companies_of(tenant_id) => {
                    symbols.remove_where(move |_, company: &db::companies::Company| company.tenant_id == tenant_id);
                }
                None => symbols.clear(),
                Some(_) => {}
            });
        let state = AppState {
            db,
            redis,
            messaging,
            metrics,
            health: settings.health.clone().into(),
            auth: Arc::new(auth),
            pipeline: started.pipeline,
            default_models: started.default_models,
            deployment,
            drift,
            alerts: started.alerts,
            live: crate::http::live_streams::LiveStreams::new(
                settings.application.live_streams_per_user,
                settings.application.live_streams,
                Duration::from_secs(settings.application.live_stream_recheck_secs),
            ),
            job_progress: Default::default(),
            portfolio,
            company_symbols,
            company_lookups: started.lookups,
            changes: fleet.changes,
            bulk,
            started_at: std::time::Instant::now(),
        };

        let listener = TcpListener::bind(settings.application.listen)
            .with_context(|| format!("Failed to bind application.listen = {}", settings.application.listen))?;
        let port = listener.local_addr()?.port();
        let server = http_server(listener, state.clone(), &settings.application)?;
        tracing::info!(address = %listener_address(&settings, port), "listening");
        Ok(Self {
            port,
            server,
            state,
            shutdown,
            background,
            published,
            drained,
            shutdown_timeout: Duration::from_secs(settings.application.shutdown_timeout_secs),
        })
    }

    /// The port actually bound (useful when `application.listen` asked for port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The scoring pipeline (tests inject failures through it).
    pub fn pipeline(&self) -> &pdscore_actors::Pipeline {
        &self.state.pipeline
    }

    /// The drift monitor (tests run its passes at the time they choose).
    pub fn drift(&self) -> &crate::validation::drift::DriftMonitor {
        &self.state.drift
    }

    /// Cancelling this token shuts the application down gracefully, like SIGTERM does.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            server,
            state,
            shutdown,
            background,
            published,
            drained,
            shutdown_timeout,
            ..
        } = self;
        let handle = server.handle();
        let mut server = tokio::spawn(server);
        let server_result = tokio::select! {
            result = &mut server => Some(result),
            signal = shutdown_signal() => {
                tracing::info!(signal, "shutdown requested");
                None
            }
            _ = shutdown.cancelled() => None,
        };
        // One deadline for the whole drain, from the moment shutdown starts.
        let deadline = tokio::time::Instant::now() + shutdown_timeout;
        // Stop taking new work everywhere at once: background tasks stop pulling, the server stops accepting.
        shutdown.cancel();
        let server_result = match server_result {
            Some(result) => result,
            None => {
                // In-flight requests finish (bounded by the server's own shutdown timeout, the same setting).
                handle.stop(true).await;
                server.await
            }
        };
        let drained = tokio::time::timeout_at(deadline, async {
            for task in background {
                let _ = task.await;
            }
            drained.cancel();
            let _ = published.await;
            if let Err(e) = state.messaging.client.flush().await {
                tracing::warn!(error = %e, "could not flush NATS on shutdown");
            }
            state.db.close().await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!("in-flight work did not finish within application.shutdown_timeout_secs");
        }
        tracing::info!("stopped");
        server_result
            .context("The HTTP server task failed")?
            .context("The HTTP server failed")
    }
}

fn http_server(listener: TcpListener, state: AppState, settings: &ApplicationSettings) -> anyhow::Result<Server> {
    let data = web::Data::new(state);
    let max_json = settings.max_json_body_bytes;
    // The document is the route table (and the 405 fallback's list of methods); built once, shared by workers.
    let api = http::openapi::document(max_json);
    let routes = http::openapi::RouteTable::from_document(&api);
    // Without TCP_NODELAY (actix-web leaves the system's default), a small write waits while earlier data is
    // unacknowledged (Nagle), and a client may delay its acknowledgement by 40 ms or more: each event of an SSE
    // stream is such a write (alerts p90 on SSE 43 ms against 12 on NATS; BENCHMARKS.md).
    let mut server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(http::middleware::request_context))
            .app_data(data.clone())
            .configure(|cfg| http::configure_app(cfg, max_json, &api, &routes))
    })
    .tcp_nodelay(true)
    .listen(listener)
    .context("Failed to listen")?
    .shutdown_timeout(settings.shutdown_timeout_secs)
    .disable_signals();
    if settings.workers > 0 {
        server = server.workers(settings.workers);
    }
    Ok(server.run())
}

fn listener_address(settings: &Settings, port: u16) -> String {
    format!("http://{}:{port}", settings.application.listen.ip())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM, with the signal's name.
async fn shutdown_signal() -> &'static str {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => "SIGINT",
        _ = terminate => "SIGTERM",
    }
}

/// Renews this instance's signing-key entry until shutdown, then removes it. A check that could not run at
/// start (Redis down) is retried; an instance that then turns out incompatible is reported loudly (it keeps
/// serving: stopping a running instance is an operator's call).
async fn keep_listed(signers: Signers, mut joined: bool, shutdown: CancellationToken) {
    loop {
        if !joined {
            match signers.join().await {
                Ok(Ok(())) => joined = true,
                Ok(Err(incompatible)) => {
                    tracing::error!(error = %incompatible, "instances cannot verify each other's tokens")
                }
                Err(e) => tracing::debug!(error = %format!("{e:#}"), "signing keys not checked yet"),
            }
        } else if let Err(e) = signers.renew().await {
            tracing::debug!(error = %format!("{e:#}"), "signing-key entry not renewed");
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(crate::auth::signers::RENEW_EVERY) => {}
        }
    }
    signers.leave().await;
}
