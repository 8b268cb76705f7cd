//! The HTTP ceiling: a bare actix-web server whose one handler, `POST /echo`, parses the JSON body and sends
//! it back — the same server crate, workers and bodies as the service, without authentication, the
//! pipeline or the database.

use actix_web::{App, HttpServer, web};
use serde_json::Value;

async fn echo(body: web::Json<Value>) -> web::Json<Value> {
    body
}

/// Serves until interrupted (SIGINT/SIGTERM); `workers` 0 means actix-web's default (one per core), as the
/// service.
pub async fn serve(listen: &str, workers: usize) -> anyhow::Result<()> {
    let mut server = HttpServer::new(|| {
        App::new()
            .app_data(web::JsonConfig::default().limit(1 << 20))
            .route("/echo", web::post().to(echo))
            .route("/health/live", web::get().to(|| async { "ok" }))
    })
    // TCP_NODELAY, as the service's server (src/startup.rs).
    .tcp_nodelay(true)
    .bind(listen)?;
    if workers > 0 {
        server = server.workers(workers);
    }
    println!("echo server on http://{listen}/echo");
    server.run().await?;
    Ok(())
}
