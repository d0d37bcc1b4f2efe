//! The OpenAPI 3.1 document, generated from the handlers' annotations, and `/docs`: Swagger UI
//! served from assets embedded in the binary (no CDN; works air-gapped).

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tessera license server",
        description = "Activate, refresh and deactivate license keys; exchange API keys for tokens; administer keys, seats, flags and the audit log. Errors are always `{\"error\": code, \"message\": text, \"detail\": text}`.",
        license(name = "Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "license", description = "Called by applications holding a license key"),
        (name = "api-keys", description = "API-key mode"),
        (name = "admin", description = "Vendor administration (Bearer ADMIN_TOKEN)"),
        (name = "operations", description = "Health and metrics")
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |desc: &str| {
            let mut http = Http::new(HttpAuthScheme::Bearer);
            http.description = Some(desc.to_string());
            SecurityScheme::Http(http)
        };
        components.add_security_scheme("admin_token", bearer("The server's ADMIN_TOKEN"));
        components.add_security_scheme("license_jwt", bearer("A license JWT from /v1/activate"));
        components.add_security_scheme("api_key", bearer("An `sk-…` API key"));
    }
}

const SWAGGER_JS: &str = include_str!("../assets/swagger-ui/swagger-ui-bundle.js");
const SWAGGER_CSS: &str = include_str!("../assets/swagger-ui/swagger-ui.css");
const DOCS_HTML: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tessera API</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"#;
const INIT_JS: &str = "window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#swagger-ui', deepLinking: true });\n";

/// `/openapi.json` (the given document) and `/docs`.
pub fn router<S: Clone + Send + Sync + 'static>(spec: utoipa::openapi::OpenApi) -> Router<S> {
    let json = spec.to_pretty_json().unwrap_or_else(|_| "{}".to_string());
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let json = json.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], json) }
            }),
        )
        .route("/docs", get(|| async { Html(DOCS_HTML) }))
        .route(
            "/docs/swagger-ui-bundle.js",
            get(|| async { asset("text/javascript", SWAGGER_JS) }),
        )
        .route(
            "/docs/swagger-ui.css",
            get(|| async { asset("text/css", SWAGGER_CSS) }),
        )
        .route(
            "/docs/init.js",
            get(|| async { asset("text/javascript", INIT_JS) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
}
