//! The web console: pages served by `airlock serve` itself, with their assets embedded in the
//! binary, a cookie session for browsers, and the two API endpoints the pages need beyond the
//! command line's (`POST /v1/authorize/check`, `POST /v1/policies/validate`).
//!
//! The pages are one HTML document and plain JavaScript/CSS files: no build step, no inline
//! script, so the Content-Security-Policy can forbid everything but this origin's own files.
//! Every page action is a call to the same JSON API the command-line client uses.

mod check;
pub(crate) mod session;

use crate::state::AppState;
use axum::extract::Request;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// What the pages may load: only this origin's own scripts, styles and API; never framed.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// Any other response (JSON, assets) needs nothing from a browser.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// An embedded file: its content type and bytes.
struct Asset {
    content_type: &'static str,
    body: &'static str,
}

const INDEX: Asset = Asset {
    content_type: "text/html; charset=utf-8",
    body: include_str!("../../web/index.html"),
};

const ASSETS: &[(&str, Asset)] = &[
    (
        "app.js",
        Asset {
            content_type: "text/javascript; charset=utf-8",
            body: include_str!("../../web/app.js"),
        },
    ),
    (
        "pages.js",
        Asset {
            content_type: "text/javascript; charset=utf-8",
            body: include_str!("../../web/pages.js"),
        },
    ),
    (
        "fleet.js",
        Asset {
            content_type: "text/javascript; charset=utf-8",
            body: include_str!("../../web/fleet.js"),
        },
    ),
    (
        "gateway.js",
        Asset {
            content_type: "text/javascript; charset=utf-8",
            body: include_str!("../../web/gateway.js"),
        },
    ),
    (
        "app.css",
        Asset {
            content_type: "text/css; charset=utf-8",
            body: include_str!("../../web/app.css"),
        },
    ),
];

fn serve(asset: &Asset) -> Response {
    (
        [
            (CONTENT_TYPE, asset.content_type),
            // Assets change with the binary; revalidating is cheap on loopback and never stale.
            (CACHE_CONTROL, "no-cache"),
        ],
        asset.body,
    )
        .into_response()
}

async fn index() -> Response {
    let mut response = serve(&INDEX);
    response
        .headers_mut()
        .insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
    response
}

async fn asset(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _)| *n == name) {
        Some((_, a)) => serve(a),
        None => crate::ApiError::NotFound(format!("no such asset {name:?}")).into_response(),
    }
}

/// The pages, their assets and the browser session: for browsers, not part of the API's
/// document.
pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{name}", get(asset))
        .route(
            "/web/session",
            get(session::info)
                .post(session::sign_in)
                .delete(session::sign_out),
        )
}

/// The API endpoints the pages need beyond the command line's.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(check::authorize_check))
        .routes(routes!(check::validate_policy))
}

/// Security headers on every response: no framing, no sniffing, no referrer, a strict CSP, and
/// no caching of API answers (they carry account and instance data).
pub async fn security_headers(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let api = path.starts_with("/v1/") || path.starts_with("/web/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !headers.contains_key(CONTENT_SECURITY_POLICY) {
        headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(API_CSP));
    }
    if api {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pages_have_no_inline_script() {
        // The CSP forbids inline script; a page that needed one would silently break.
        let html = INDEX.body;
        let mut rest = html;
        while let Some(at) = rest.find("<script") {
            let tag_end = rest[at..].find('>').unwrap() + at;
            assert!(
                rest[at..tag_end].contains("src="),
                "inline script in index.html"
            );
            rest = &rest[tag_end..];
        }
        assert!(!html.contains(" onclick="), "inline handler in index.html");
        for (name, a) in ASSETS {
            assert!(!a.body.is_empty(), "{name} is empty");
        }
    }
}
