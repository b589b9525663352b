//! The public router: each claimed route → a fresh instance of its plugin.
//!
//! Routing happens in the host, before any instance exists: an unknown
//! path is a 404 and a known path with another method a 405 (with `Allow`),
//! both from axum's router built from the manifests. Only a matched route
//! reads the body (up to the plugin's cap, else 413) and instantiates.
//!
//! Every response leaving here carries `X-Content-Type-Options: nosniff` and,
//! unless the plugin set its own, a `Content-Security-Policy` that allows
//! nothing ([`PLUGIN_CSP`]): plugin routes share an origin with the hosted
//! checkout page, so a plugin response must never run as a page there. The
//! request id is the host's sanitised one (the pipeline's, see
//! [`crate::telemetry`]), never the raw header.

use super::bindings::HttpRequest;
use super::limits::FaultKind;
use super::runtime::{Call, CallError, CallOutput, Fault, Overload, RuntimeInner};
use super::state::CallKind;
use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequestParts, RawPathParams, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Which plugin route a public route leads to.
#[derive(Clone)]
struct Target {
    plugin: usize,
    pattern: Arc<str>,
}

pub(crate) fn router(inner: Arc<RuntimeInner>) -> Router {
    let mut by_path: BTreeMap<String, MethodRouter> = BTreeMap::new();
    for claim in &inner.claims {
        let target = Target {
            plugin: claim.plugin,
            pattern: Arc::from(claim.pattern.as_str()),
        };
        let mut method_router = by_path.remove(&claim.full_path).unwrap_or_default();
        for method in &claim.methods {
            let filter = method_filter(method);
            let (inner, target) = (inner.clone(), target.clone());
            method_router = method_router.on(filter, move |request: Request| {
                serve(inner, target, request)
            });
        }
        by_path.insert(claim.full_path.clone(), method_router);
    }
    by_path
        .into_iter()
        .fold(Router::new(), |router, (path, method_router)| {
            router.route(&path, method_router)
        })
}

fn method_filter(method: &str) -> MethodFilter {
    match method {
        "GET" => MethodFilter::GET,
        "HEAD" => MethodFilter::HEAD,
        "POST" => MethodFilter::POST,
        "PUT" => MethodFilter::PUT,
        "PATCH" => MethodFilter::PATCH,
        "DELETE" => MethodFilter::DELETE,
        "OPTIONS" => MethodFilter::OPTIONS,
        other => unreachable!("routes::claims admits only known methods, got {other}"),
    }
}

/// The `Content-Security-Policy` of plugin responses that set none: payment APIs answer
/// data, never pages, so nothing may load, run, frame or submit.
pub(crate) const PLUGIN_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; sandbox";

async fn serve(inner: Arc<RuntimeInner>, target: Target, request: Request) -> Response {
    let request_id = match request.extensions().get::<crate::telemetry::RequestId>() {
        Some(id) => id.0.clone(),
        None => crate::telemetry::request_id(request.headers()),
    };
    let mut response = respond(inner, target, request, &request_id).await;
    let headers = response.headers_mut();
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", id);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PLUGIN_CSP),
        );
    }
    response
}

async fn respond(
    inner: Arc<RuntimeInner>,
    target: Target,
    request: Request,
    request_id: &str,
) -> Response {
    let plugin = &inner.plugins[target.plugin];
    let max_body = plugin.config.max_body_bytes;
    let (mut parts, body) = request.into_parts();
    let request_id = request_id.to_owned();

    let params: Vec<(String, String)> =
        match RawPathParams::from_request_parts(&mut parts, &()).await {
            Ok(raw) => raw
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            Err(rejection) => return rejection.into_response(),
        };
    let declared_len = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared_len.is_some_and(|len| len > max_body as u64) {
        return too_large(&request_id);
    }
    let body = match axum::body::to_bytes(body, max_body).await {
        // Takes the buffer over when it is not shared (the usual case), no copy.
        Ok(bytes) => Vec::from(bytes),
        Err(e) if crate::http::body_timed_out(&e) => {
            return refused(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received in time",
                &request_id,
            );
        }
        Err(_) => return too_large(&request_id),
    };
    // Resolved by the public listener (trusted proxies); the peer when that did not run.
    let client_ip = parts
        .extensions
        .get::<crate::http::client_ip::ClientIp>()
        .map(|c| c.0)
        .or_else(|| {
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ci| ci.0.ip())
        })
        .map(|ip| ip.to_string());
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let wit_request = HttpRequest {
        request_id: request_id.clone(),
        method: parts.method.as_str().to_owned(),
        route: target.pattern.to_string(),
        params,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers,
        body,
        client_ip,
    };

    let outcome = inner
        .call(
            target.plugin,
            CallKind::Request,
            request_id.clone(),
            None,
            Call::Handle(Box::new(wit_request)),
        )
        .await;
    let response = match outcome {
        Ok(CallOutput::Handle(response)) => {
            to_http(response, max_body, parts.method == Method::HEAD).map_err(CallError::Fault)
        }
        Ok(_) => unreachable!("handle returns a response"),
        Err(e) => Err(e),
    };
    let response = match response {
        Ok(response) => response,
        Err(CallError::Fault(fault)) => {
            inner.record_fault(target.plugin, &request_id, &fault);
            internal_error(&request_id)
        }
        Err(CallError::Overload(overload)) => {
            inner.record_overload(target.plugin, overload);
            overloaded(&request_id, overload)
        }
    };
    metrics::counter!(
        "polypay_plugin_requests_total",
        "plugin" => metrics::SharedString::from_shared(plugin.label.clone()),
        "status" => status_label(response.status()),
    )
    .increment(1);
    response
}

/// The `status` label of a response, without an allocation for the usual ones.
fn status_label(status: StatusCode) -> metrics::SharedString {
    let known = match status.as_u16() {
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        409 => "409",
        413 => "413",
        422 => "422",
        429 => "429",
        500 => "500",
        503 => "503",
        other => return metrics::SharedString::from_owned(other.to_string()),
    };
    metrics::SharedString::const_str(known)
}

/// Converts the guest's response, refusing what HTTP or the caps do not allow.
fn to_http(
    r: super::bindings::HttpResponse,
    max_body: usize,
    head: bool,
) -> Result<Response, Fault> {
    let invalid = |detail: String| Fault {
        kind: FaultKind::InvalidResponse,
        detail,
    };
    let status = StatusCode::from_u16(r.status)
        .ok()
        .filter(|s| (200..=599).contains(&s.as_u16()))
        .ok_or_else(|| invalid(format!("status {} is not a final HTTP status", r.status)))?;
    if r.body.len() > max_body {
        return Err(invalid(format!(
            "response body of {} bytes exceeds the {max_body}-byte cap",
            r.body.len()
        )));
    }
    let mut builder = Response::builder().status(status);
    for (name, value) in &r.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(format!("invalid header name {name:?}")))?;
        // The host frames the body itself.
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::CONNECTION
        {
            continue;
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| invalid(format!("invalid value for header {name}")))?;
        builder = builder.header(name, value);
    }
    let body = if head {
        Body::empty()
    } else {
        Body::from(r.body)
    };
    builder.body(body).map_err(|e| invalid(e.to_string()))
}

fn too_large(request_id: &str) -> Response {
    refused(
        StatusCode::PAYLOAD_TOO_LARGE,
        "request body too large",
        request_id,
    )
}

fn refused(status: StatusCode, error: &str, request_id: &str) -> Response {
    let body = serde_json::json!({ "error": error, "request_id": request_id });
    (
        status,
        [("x-request-id", request_id.to_owned())],
        axum::Json(body),
    )
        .into_response()
}

/// The 503 of an overload: retry after a moment.
fn overloaded(request_id: &str, overload: Overload) -> Response {
    let body = serde_json::json!({
        "error": "the server is busy, retry later",
        "request_id": request_id,
    });
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [
            ("x-request-id", request_id.to_owned()),
            (
                header::RETRY_AFTER.as_str(),
                overload.retry_after().as_secs().max(1).to_string(),
            ),
        ],
        axum::Json(body),
    )
        .into_response()
}

/// The generic 500 of a plugin fault: the details are in the log, not here.
fn internal_error(request_id: &str) -> Response {
    let body = serde_json::json!({ "error": "internal error", "request_id": request_id });
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [("x-request-id", request_id.to_owned())],
        axum::Json(body),
    )
        .into_response()
}
