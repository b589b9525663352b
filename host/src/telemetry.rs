//! Observability: logs (`tracing`, human or JSON), Prometheus metrics, request ids.
//!
//! Every HTTP request on either listener passes through [`observe`], which gives it an id
//! (the caller's `x-request-id` when it is a short token, else a fresh UUID), runs it inside
//! a span carrying that id so every log line the request causes names it, answers with the
//! id in `x-request-id`, and counts it in `polypay_http_requests_total{listener,route,status}`
//! (route = the matched route pattern, never the raw path, to keep label cardinality
//! bounded) and `polypay_http_request_duration_seconds`.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global log subscriber. `RUST_LOG` overrides the configured filter.
/// Calling it twice is harmless (the second call keeps the first subscriber).
pub fn init_logging(config: &LogConfig) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.filter));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match config.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
            .expect("bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (a test harness); ours then only
        // renders what was recorded through it, which is nothing. Keep going either way.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// The id of the request being handled, available to handlers as an extension.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The id of a request: the caller's `x-request-id` when it is a short token of
/// `[A-Za-z0-9_-]` (at most 64 characters), else a fresh UUID. Use this, never the raw
/// header: the id reaches logs, plugins and response headers.
pub fn request_id(headers: &axum::http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Middleware: request id, span, access log line, metrics. `listener` names the listener
/// in metrics ("public" or "admin").
pub async fn observe(listener: &'static str, mut request: Request, next: Next) -> Response {
    let id = request_id(request.headers());
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, %method, %path);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let route = response
        .extensions()
        .get::<RouteLabel>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| "unmatched".into());
    span.in_scope(|| tracing::info!(status, %route, elapsed_ms = elapsed.as_secs_f64() * 1000.0, "request finished"));
    metrics::counter!("polypay_http_requests_total", "listener" => listener, "route" => route.clone(), "status" => status.to_string()).increment(1);
    metrics::histogram!("polypay_http_request_duration_seconds", "listener" => listener, "route" => route).record(elapsed.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// The route a response was produced by, as a metrics label.
#[derive(Debug, Clone)]
pub struct RouteLabel(pub String);

/// Route layer: labels the response with the matched route pattern.
pub async fn label_route(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(RouteLabel(route));
    }
    response
}
