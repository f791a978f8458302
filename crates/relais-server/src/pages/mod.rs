//! The web pages the binary serves, written here in plain JavaScript and CSS and embedded
//! at build time: no front-end build step, nothing fetched from another origin.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Scripts and styles come from this server only, and nothing a page shows can run:
/// text a customer typed is inserted as text, and an injected `<script>` or inline
/// handler would be refused by the browser anyway. Charts are SVG images fetched with the
/// key and shown from `blob:` URLs, where no script runs.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/sandbox", get(|| page(include_str!("sandbox.html"))))
        .route(
            "/assets/sandbox.js",
            get(|| asset("text/javascript; charset=utf-8", include_str!("sandbox.js"))),
        )
        .route("/dashboard", get(|| page(include_str!("dashboard.html"))))
        .route("/console", get(|| page(include_str!("console.html"))))
        .route(
            "/widget.js",
            get(|| asset("text/javascript; charset=utf-8", include_str!("widget.js"))),
        )
        // A service worker for the widget's push notifications, for sites to copy.
        .route(
            "/widget-sw.js",
            get(|| {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("widget-sw.js"),
                )
            }),
        )
        .route(
            "/assets/console.js",
            get(|| asset("text/javascript; charset=utf-8", include_str!("console.js"))),
        )
        .route(
            "/assets/dashboard.js",
            get(|| {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("dashboard.js"),
                )
            }),
        )
        .route(
            "/assets/session.js",
            get(|| asset("text/javascript; charset=utf-8", include_str!("session.js"))),
        )
        .route(
            "/assets/pages.css",
            get(|| asset("text/css; charset=utf-8", include_str!("pages.css"))),
        )
}

async fn page(html: &'static str) -> Response {
    let mut response = asset("text/html; charset=utf-8", html).await;
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // A new binary may bring new pages: a browser asks again after a minute.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    response
}
