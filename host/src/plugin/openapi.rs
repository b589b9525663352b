//! A plugin's OpenAPI document: the `openapi` field of its manifest (WIT 0.2.0), JSON
//! text the plugin ships (usually a file it embeds).
//!
//! This module owns what the host accepts and how a document is compared with the
//! plugin's routes: [`check`] parses it as an OpenAPI 3 document (the `openapiv3` model,
//! OpenAPI 3.0.x) within [`MAX_DOCUMENT_BYTES`]; a plugin declaring a document that fails
//! is refused at start-up like any other manifest error, and `polypay plugin check` says
//! why. [`undocumented_routes`] lists the manifest routes (method and pattern) the
//! document lacks. Decisions where the spec is silent: a document is optional (a plugin
//! without one is served without one); a route's `{*rest}` wildcard is documented as the
//! path parameter `{rest}`; the document's `servers` are the plugin's own business only
//! until it is served, when the host replaces them with the public URL the plugin is
//! mounted at (`crate::http::plugin_docs`).

use super::bindings::polypay::plugin::plugin_types::Route;

/// The largest document the host accepts (it is held in memory and served as is).
pub const MAX_DOCUMENT_BYTES: usize = 1 << 20;

/// Why a plugin's OpenAPI document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenApiError {
    #[error("it is {0} bytes; the host accepts at most {MAX_DOCUMENT_BYTES}")]
    TooLarge(usize),
    #[error("it is not JSON: {0}")]
    NotJson(String),
    #[error("its `openapi` field is {0:?}; the host serves OpenAPI 3 documents (\"3.0.x\")")]
    NotOpenApi3(String),
    #[error("it does not parse as an OpenAPI 3 document: {0}")]
    Invalid(String),
}

/// Parses `document` as an OpenAPI 3 document.
pub fn check(document: &str) -> Result<openapiv3::OpenAPI, OpenApiError> {
    if document.len() > MAX_DOCUMENT_BYTES {
        return Err(OpenApiError::TooLarge(document.len()));
    }
    let value: serde_json::Value =
        serde_json::from_str(document).map_err(|e| OpenApiError::NotJson(e.to_string()))?;
    let version = value
        .get("openapi")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    if !version.starts_with("3.") {
        return Err(OpenApiError::NotOpenApi3(version.to_owned()));
    }
    serde_json::from_value(value).map_err(|e| OpenApiError::Invalid(e.to_string()))
}

/// Every (method, pattern) of `routes` the document has no operation for, in the
/// manifest's order; methods upper-case, patterns as the manifest declares them.
pub fn undocumented_routes(document: &openapiv3::OpenAPI, routes: &[Route]) -> Vec<String> {
    let mut missing = Vec::new();
    for route in routes {
        let path = openapi_path(&route.path);
        let item = document.paths.paths.get(&path).and_then(|i| i.as_item());
        for method in &route.methods {
            let method = method.to_ascii_uppercase();
            let documented =
                item.is_some_and(|item| item.iter().any(|(m, _)| m.eq_ignore_ascii_case(&method)));
            if !documented {
                missing.push(format!("{method} {}", route.path));
            }
        }
    }
    missing
}

/// A route pattern as an OpenAPI path: `{*rest}` becomes `{rest}`.
pub fn openapi_path(pattern: &str) -> String {
    pattern.replace("{*", "{")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(methods: &[&str], path: &str) -> Route {
        Route {
            methods: methods.iter().map(|m| m.to_string()).collect(),
            path: path.into(),
        }
    }

    const DOC: &str = r#"{
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/a/{id}": {"get": {"responses": {"200": {"description": "ok"}}}},
            "/files/{rest}": {"post": {"responses": {"200": {"description": "ok"}}}}
        }
    }"#;

    #[test]
    fn a_route_missing_from_the_document_is_named_with_its_method() {
        let doc = check(DOC).unwrap();
        let routes = [
            route(&["GET", "POST"], "/a/{id}"),
            route(&["POST"], "/files/{*rest}"),
            route(&["GET"], "/b"),
        ];
        assert_eq!(
            undocumented_routes(&doc, &routes),
            vec!["POST /a/{id}".to_string(), "GET /b".to_string()]
        );
    }

    #[test]
    fn documents_that_are_not_openapi_3_are_refused_with_the_reason() {
        assert!(matches!(check("{"), Err(OpenApiError::NotJson(_))));
        assert_eq!(
            check(r#"{"swagger": "2.0"}"#).unwrap_err(),
            OpenApiError::NotOpenApi3(String::new())
        );
        assert!(matches!(
            check(r#"{"openapi": "3.0.3", "paths": {}}"#),
            Err(OpenApiError::Invalid(e)) if e.contains("info")
        ));
        let huge = " ".repeat(MAX_DOCUMENT_BYTES + 1);
        assert!(matches!(check(&huge), Err(OpenApiError::TooLarge(_))));
    }
}
