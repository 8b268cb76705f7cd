//! Cost of the HTTP stack every request pays — request context (id, span, metrics), routing, the envelope —
//! measured in process, without sockets: the floor under every API call.
//!
//! `cargo bench --bench http_stack`

use std::time::{Duration, Instant};

use actix_web::{App, middleware::from_fn, test};
use criterion::{Criterion, criterion_group, criterion_main};
use pdscore::{http, telemetry};

fn http_stack(c: &mut Criterion) {
    // Record metrics the way the service does: the recorder's cost is part of the stack.
    let _ = telemetry::metrics_handle();
    let system = actix_web::rt::System::new();
    let api = http::openapi::document(1 << 20);
    let routes = http::openapi::RouteTable::from_document(&api);
    let app = system.block_on(test::init_service(
        App::new()
            .wrap(from_fn(http::middleware::request_context))
            .configure(|cfg| http::configure_app(cfg, 1 << 20, &api, &routes)),
    ));

    let mut group = c.benchmark_group("http_stack");
    group.measurement_time(Duration::from_secs(5));
    for (name, path) in [
        ("envelope_ok", "/health/live"),
        ("not_found_envelope", "/no/such/route"),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                system.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iters {
                        let response = test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
                        std::hint::black_box(test::read_body(response).await);
                    }
                    started.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, http_stack);
criterion_main!(benches);
