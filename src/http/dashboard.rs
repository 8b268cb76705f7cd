//! The analysts' dashboard: a single page (HTML, CSS, JavaScript from `web/`, compiled into the binary) served
//! at `/app/` on the API's own origin, so it signs in and calls the API with the same tokens as any client.
//! Nothing is fetched from elsewhere at run time, and a strict Content-Security-Policy forbids it.

use std::sync::LazyLock;

use actix_web::{
    HttpRequest, HttpResponse,
    http::header::{self, ContentType, EntityTag, Header, IfNoneMatch},
    web,
};
use pdscore_models::registry::sha256_hex;

/// Where the dashboard is served.
pub const BASE: &str = "/app";

/// Scripts, styles and connections from this origin only; no framing, no inline code.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
     script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
    etag: EntityTag,
}

static ASSETS: LazyLock<[Asset; 3]> = LazyLock::new(|| {
    [
        asset("", "text/html; charset=utf-8", include_str!("../../web/index.html")),
        asset(
            "app.js",
            "text/javascript; charset=utf-8",
            include_str!("../../web/app.js"),
        ),
        asset("app.css", "text/css; charset=utf-8", include_str!("../../web/app.css")),
    ]
});

fn asset(name: &'static str, content_type: &'static str, body: &'static str) -> Asset {
    let etag = EntityTag::new_strong(sha256_hex(body.as_bytes())[..24].to_owned());
    Asset {
        name,
        content_type,
        body,
        etag,
    }
}

/// Registers the dashboard's routes: `/` and `/app` lead to `/app/`, the page and its two assets.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(to_dashboard))
        .route(BASE, web::get().to(to_dashboard))
        .route(&format!("{BASE}/{{name:(|app\\.js|app\\.css)}}"), web::get().to(serve));
}

async fn to_dashboard() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, format!("{BASE}/")))
        .finish()
}

/// An asset, revalidated on every use (`no-cache` with an ETag: a new build is picked up at once, an
/// unchanged one costs a 304).
async fn serve(req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name.as_str()) else {
        return HttpResponse::NotFound().finish();
    };
    let unchanged = match <IfNoneMatch as Header>::parse(&req) {
        Ok(IfNoneMatch::Items(tags)) => tags.iter().any(|t| t.weak_eq(&asset.etag)),
        Ok(IfNoneMatch::Any) => true,
        Err(_) => false,
    };
    let mut response = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header(header::ETag(asset.etag.clone()))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"));
    if unchanged {
        return response.finish();
    }
    response.insert_header(ContentType(asset.content_type.parse().expect("a valid media type")));
    response.body(asset.body)
}
