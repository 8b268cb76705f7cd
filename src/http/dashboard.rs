//! The analysts' dashboard: a single page (HTML, CSS and JavaScript modules from `web/`, compiled into the binary)
//! served at `/app/` on the API's own origin, so it signs in and calls the API with the same tokens as any client.
//! Nothing is fetched from elsewhere at run time, and a strict Content-Security-Policy forbids it.
//!
//! The page loads `app.js`, which imports the modules under `js/` (plain ES modules, no build step). Each file of
//! `FILES` is served under its name, and only those names are routed: any other path under `/app/` is not found,
//! so no request reaches a file outside the list (`/app/../Cargo.toml` included).

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

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";

/// A module of `web/js/`: its name under `/app/`, its media type and its text.
macro_rules! js_module {
    ($path:literal) => {
        (
            concat!("js/", $path),
            JAVASCRIPT,
            include_str!(concat!("../../web/js/", $path)),
        )
    };
}

/// Every file of the dashboard: its name under `/app/` (the page's is empty), its media type and its text. A module
/// added under `web/js/` is served once it is listed here (a test checks that every file of `web/` is).
const FILES: &[(&str, &str, &str)] = &[
    ("", HTML, include_str!("../../web/index.html")),
    ("app.css", CSS, include_str!("../../web/app.css")),
    ("app.js", JAVASCRIPT, include_str!("../../web/app.js")),
    js_module!("errors.js"),
    js_module!("dom.js"),
    js_module!("api.js"),
    js_module!("ui.js"),
    js_module!("sse.js"),
    js_module!("state.js"),
    js_module!("router.js"),
    js_module!("session.js"),
    js_module!("pages/login.js"),
    js_module!("pages/portfolio.js"),
    js_module!("pages/company.js"),
    js_module!("pages/alerts.js"),
    js_module!("pages/bulk.js"),
    js_module!("pages/models.js"),
    js_module!("pages/validation.js"),
    js_module!("pages/drift.js"),
    js_module!("pages/admin.js"),
    js_module!("pages/not-found.js"),
];

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
    etag: EntityTag,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(name, content_type, body)| asset(name, content_type, body))
        .collect()
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

/// Registers the dashboard's routes: `/` and `/app` lead to `/app/`; `/app/{name}` serves the page and its files,
/// for the names of `FILES` only (other paths under `/app/` are left to the app's "not found").
pub fn configure(cfg: &mut web::ServiceConfig) {
    // The names as literals of the route's pattern: their only character special to a regex is the dot.
    let names = FILES
        .iter()
        .map(|(name, _, _)| name.replace('.', "\\."))
        .collect::<Vec<_>>()
        .join("|");
    cfg.route("/", web::get().to(to_dashboard))
        .route(BASE, web::get().to(to_dashboard))
        .route(&format!("{BASE}/{{name:({names})}}"), web::get().to(serve));
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The paths of the files under `dir`, relative to `root`, with `/` between their parts.
    fn files_under(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files_under(&path, root, out);
            } else {
                let relative = path.strip_prefix(root).unwrap();
                let parts: Vec<_> = relative.iter().map(|part| part.to_str().unwrap()).collect();
                out.push(parts.join("/"));
            }
        }
    }

    #[test]
    fn every_file_of_web_is_served_under_a_name_the_route_takes_literally() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
        let mut on_disk = Vec::new();
        files_under(&root, &root, &mut on_disk);
        on_disk.sort();
        let mut served: Vec<String> = FILES
            .iter()
            .map(|&(name, _, _)| if name.is_empty() { "index.html" } else { name })
            .map(str::to_owned)
            .collect();
        served.sort();
        assert_eq!(served, on_disk, "the files served and those of web/");
        for (name, _, _) in FILES {
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || "./-_".contains(c)),
                "{name}: a character the route's pattern would not take literally"
            );
        }
    }
}
