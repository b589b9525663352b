//! The plugins' API documentation on the public listener.
//!
//! - `GET /polypay/plugins`: a small page (our own HTML and JavaScript, embedded, no
//!   third-party code) listing every mounted dialect and rendering its OpenAPI document:
//!   operations, parameters, request bodies and responses.
//! - `GET /polypay/plugins/index.json`: the mounted plugins (name, version, contract
//!   version, prefix, routes, and the URL of their document, if any).
//! - `GET /polypay/plugins/{name}/openapi.json`: the document plugin `name` ships in its
//!   manifest (`crate::plugin::openapi`), 404 if it ships none.
//!
//! Decisions: a served document's `servers` is replaced with the one URL the plugin is
//! mounted at (`public_base_url` + its prefix), since the paths in it are the plugin's
//! own patterns and only the host knows where they are mounted. The documents are
//! plugin-controlled text, so the page inserts every string of them with `textContent`,
//! never as markup, and runs under a CSP allowing only its own script and style.
//! Everything is computed once when the router is built (the plugins are fixed then).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::http::ApiError;
use crate::plugin::PluginRuntime;

/// Where the page and documents live; plugins may not claim paths under it.
pub const PREFIX: &str = "/polypay/";

const PAGE: &str = include_str!("plugin_docs/index.html");
const SCRIPT: &str = include_str!("plugin_docs/docs.js");
const STYLE: &str = include_str!("plugin_docs/docs.css");

/// Only the page's own script and style, and reading the documents.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

struct Docs {
    index: Value,
    /// (plugin name, served document).
    documents: Vec<(String, Value)>,
}

/// The documentation routes for the plugins of `runtime`, mounted at `public_base_url`.
pub fn router(runtime: &PluginRuntime, public_base_url: &str) -> Router {
    let base = public_base_url.trim_end_matches('/');
    let mut plugins = Vec::new();
    let mut documents = Vec::new();
    for plugin in runtime.plugins() {
        // Checked when the plugin was loaded; a document that no longer parses as JSON
        // cannot happen, but is then simply not served.
        let document = plugin
            .manifest
            .openapi
            .as_deref()
            .and_then(|text| serde_json::from_str::<Value>(text).ok());
        let url = document
            .as_ref()
            .map(|_| format!("/polypay/plugins/{}/openapi.json", plugin.name));
        if let Some(mut document) = document {
            document["servers"] = json!([{ "url": format!("{base}{}", plugin.prefix) }]);
            documents.push((plugin.name.clone(), document));
        }
        let routes: Vec<Value> = plugin
            .routes
            .iter()
            .map(|(method, path)| json!({ "method": method, "path": path }))
            .collect();
        plugins.push(json!({
            "name": plugin.name,
            "version": plugin.manifest.version,
            "contract": plugin.version.as_str(),
            "prefix": plugin.prefix,
            "routes": routes,
            "openapi": url,
        }));
    }
    let docs = Arc::new(Docs {
        index: json!({ "plugins": plugins }),
        documents,
    });
    Router::new()
        .route("/polypay/plugins", get(page))
        .route("/polypay/plugins/docs.js", get(script))
        .route("/polypay/plugins/docs.css", get(style))
        .route("/polypay/plugins/index.json", get(index))
        .route("/polypay/plugins/{name}/openapi.json", get(document))
        .with_state(docs)
}

async fn page() -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        PAGE,
    )
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    response
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn index(State(docs): State<Arc<Docs>>) -> Response {
    json_response(&docs.index)
}

async fn document(
    State(docs): State<Arc<Docs>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    docs.documents
        .iter()
        .find(|(plugin, _)| *plugin == name)
        .map(|(_, document)| json_response(document))
        .ok_or(ApiError::NotFound)
}

fn json_response(value: &Value) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        value.to_string(),
    )
        .into_response()
}
