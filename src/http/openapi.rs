//! The OpenAPI document (generated from the handlers' annotations), the bundled Swagger UI, and the
//! fallback that answers unmatched requests: `405` with `Allow` when the path exists under other methods,
//! else `404`.

use std::sync::Arc;

use actix_web::{
    HttpRequest, HttpResponse,
    dev::ResourceDef,
    http::{Method, header},
    web,
};
use utoipa::openapi::{
    OpenApi, OpenApiBuilder,
    security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    tag::{Tag, TagBuilder},
};
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use super::{ApiError, ErrorCode};

pub const DOCUMENT_PATH: &str = "/api/v1/openapi.json";
pub const DOCS_PATH: &str = "/api/v1/docs";

/// The document's frame; `utoipa_actix_web` adds every registered route to it.
pub fn base() -> OpenApi {
    let mut api = OpenApiBuilder::new()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title("pdscore API")
                .version(crate::VERSION)
                .description(Some(
                    "Multi-tenant, real-time probability-of-default scoring. Every answer is an envelope \
                     {success, data | error, meta}; errors carry a stable error.code. Authenticate with \
                     POST /api/v1/auth/login and send `Authorization: Bearer <access_token>`. Every list answers \
                     {items, per_page, …} and takes per_page (1-200, default 50): numbered pages add page, total \
                     and total_pages (ask with page); the lists that only grow, read newest first (alerts, the \
                     audit trail), add next_cursor instead (pass it back as cursor).",
                ))
                .build(),
        )
        .tags(Some(tags()))
        .build();
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    api
}

/// The tags that need more than their routes to be understood: the model operations loop, as a credit-risk
/// manager runs it.
fn tags() -> Vec<Tag> {
    [
        (
            "outcomes",
            "Realised credit events (default, bankruptcy, distressed exchange) per company, recorded once each: what \
             the back-tests score the predictions against. One by one, or a CSV import.",
        ),
        (
            "validation",
            "Evidence that the scores still work on your own portfolio. GET /backtests scores a model version's \
             predictions (anchored at each statement's period end) against the credit events that followed within \
             a horizon: ROC-AUC, accuracy ratio, Brier, KS, a reliability table, the Jeffreys and binomial tests per \
             implied-rating grade, rating migrations and the PD distribution per period. GET /comparisons puts the \
             tenant's model against its challenger on the same filings and the same events. POST /replays re-scores \
             stored filings with another version (a bulk job) and GET /replays/{id} shows the rating migrations \
             between the two: the evidence a model-change review asks for. GET /drift says whether the population \
             a model scores is still the one it was built on: the population stability index of its PD and of each \
             input, against its training sample and against the window before, over time, with the drift alerts \
             (also on NATS `alerts.<tenant>.drift` and as `event: drift` on the alert stream).",
        ),
        (
            "models",
            "The deployed models and their cards; per tenant, the model answering and a challenger scoring every \
             filing in the shadow, promoted when the comparison supports it (audited). A super_admin uploads a \
             verified model version and activates it on every instance without a restart; rollback is activating \
             the version before.",
        ),
    ]
    .into_iter()
    .map(|(name, description)| TagBuilder::new().name(name).description(Some(description)).build())
    .collect()
}

/// The routes of the document, for the 405 fallback.
#[derive(Clone)]
pub struct RouteTable(Arc<Vec<(ResourceDef, Vec<Method>)>>);

impl RouteTable {
    pub fn from_document(api: &OpenApi) -> Self {
        let routes = api
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let mut methods: Vec<Method> = [
                    (item.get.is_some(), Method::GET),
                    (item.post.is_some(), Method::POST),
                    (item.put.is_some(), Method::PUT),
                    (item.patch.is_some(), Method::PATCH),
                    (item.delete.is_some(), Method::DELETE),
                ]
                .into_iter()
                .filter_map(|(present, method)| present.then_some(method))
                .collect();
                if methods.contains(&Method::GET) {
                    methods.push(Method::HEAD);
                }
                (ResourceDef::new(path.as_str()), methods)
            })
            .collect();
        Self(Arc::new(routes))
    }

    /// The methods served at `path`, if it is a route at all.
    fn allowed(&self, path: &str) -> Option<&[Method]> {
        self.0
            .iter()
            .find(|(def, _)| def.is_match(path))
            .map(|(_, methods)| methods.as_slice())
    }
}

/// The whole document: the frame plus every route [`super::configure`] registers, each operation named by its
/// tag and handler (`companies_get`): utoipa names an operation by its handler alone, and handlers of several
/// areas share names (`list`, `get`, `create`, …), which clients generated from the document cannot take.
pub fn document(max_json_body_bytes: usize) -> OpenApi {
    let mut api = actix_web::App::new()
        .into_utoipa_app()
        .openapi(base())
        .configure(|cfg| super::configure(cfg, max_json_body_bytes))
        .split_for_parts()
        .1;
    for item in api.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            let tag = operation
                .tags
                .as_ref()
                .and_then(|t| t.first())
                .map(|t| t.replace('-', "_"));
            if let (Some(tag), Some(id)) = (tag, operation.operation_id.as_mut())
                && !id.starts_with(&format!("{tag}_"))
            {
                *id = format!("{tag}_{id}");
            }
        }
    }
    api
}

/// Registers the document, the docs page and the fallback for unmatched requests.
pub fn configure_docs(cfg: &mut web::ServiceConfig, api: OpenApi, routes: RouteTable) {
    cfg.app_data(web::Data::new(routes))
        .service(SwaggerUi::new(format!("{DOCS_PATH}/{{_:.*}}")).url(DOCUMENT_PATH, api))
        .default_service(web::to(fallback));
}

async fn fallback(req: HttpRequest, routes: web::Data<RouteTable>) -> Result<HttpResponse, ApiError> {
    match routes.allowed(req.path()) {
        Some(methods) => {
            let allow = methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
            let mut response = actix_web::ResponseError::error_response(&ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!("This resource allows {allow}."),
            ));
            response.headers_mut().insert(
                header::ALLOW,
                header::HeaderValue::from_str(&allow).map_err(ApiError::internal)?,
            );
            Ok(response)
        }
        None => Err(ApiError::new(ErrorCode::NotFound, "No route matches this path.")),
    }
}
