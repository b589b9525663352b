//! HTTP surfaces (axum): the public listener (plugin routes, checkout page, the plugins'
//! API documentation in [`plugin_docs`]) and the admin listener (health, readiness,
//! metrics, operator API).
//!
//! Both routers share the request pipeline ([`with_pipeline`]): [`crate::telemetry::observe`]
//! (request id, span, access log, metrics), load shedding (`http.max_in_flight` requests
//! handled at once; more are answered 503 with `Retry-After` at once), the resolved
//! client address ([`client_ip`], `http.trusted_proxies`), a request body cap
//! (`http.max_body_bytes`) and a deadline for receiving the body
//! (`http.body_read_timeout_ms`, else 408). Connection-level limits (connection cap,
//! header-read and idle timeouts) are in [`serve`], which runs both listeners.
//! Errors a client can cause are [`ApiError`] variants that know their status code;
//! anything else is logged with the request id and answered with a generic 500.
//!
//! With the `bench-native` cargo feature (off by default, for the end-to-end load
//! benchmark only) the public router also serves `bench_native`'s two routes.

pub mod admin;
#[cfg(feature = "bench-native")]
pub mod bench_native;
pub mod checkout;
pub mod client_ip;
pub mod plugin_docs;
pub mod serve;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::RequestBodyDeadlineLayer;

use crate::app::AppContext;
use crate::config::HttpConfig;

/// Errors of the host's own JSON endpoints.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    /// The request is valid but the resource's state refuses it.
    #[error("{0}")]
    Conflict(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// Too busy right now; the client may retry after this many seconds.
    #[error("too busy: {what}; retry later")]
    Overloaded {
        what: &'static str,
        retry_after_s: u32,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) | ApiError::Overloaded { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(e) => {
                // The span of the request carries its id; the client sees nothing internal.
                tracing::error!(error = %format!("{e:#}"), "internal error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let message = match &self {
            ApiError::Internal(_) => "internal error".to_string(),
            other => other.to_string(),
        };
        let mut response =
            (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
        if let ApiError::Overloaded { retry_after_s, .. } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after_s.into());
        }
        response
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::Internal(e.into())
    }
}

/// Wraps a router in the shared request pipeline (see the module docs). `listener` names
/// the listener in metrics ("public" or "admin").
pub fn with_pipeline(router: Router, listener: &'static str, http: &HttpConfig) -> Router {
    // A route layer on a router without routes is refused by axum (it would do nothing).
    let router = if router.has_routes() {
        router.route_layer(axum::middleware::from_fn(crate::telemetry::label_route))
    } else {
        router
    };
    // `Router::layer` wraps every route on its own: the limit's semaphore is shared
    // explicitly so that it bounds the listener, not each route.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(http.max_in_flight));
    let shed = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(
            move |_: tower::BoxError| async move {
                metrics::counter!("polypay_http_shed_total", "listener" => listener).increment(1);
                ApiError::Overloaded {
                    what: "too many requests in progress",
                    retry_after_s: 1,
                }
            },
        ))
        .load_shed()
        .layer(tower::limit::GlobalConcurrencyLimitLayer::with_semaphore(
            in_flight,
        ));
    let proxies = client_ip::TrustedProxies::new(
        crate::config::parse_networks(&http.trusted_proxies)
            .expect("validated with the configuration"),
    );
    router
        .layer(RequestBodyLimitLayer::new(http.max_body_bytes))
        .layer(RequestBodyDeadlineLayer::new(Duration::from_millis(
            http.body_read_timeout_ms,
        )))
        .layer(axum::middleware::from_fn(move |req, next| {
            client_ip::resolve(proxies.clone(), req, next)
        }))
        .layer(shed)
        .layer(axum::middleware::from_fn(move |req, next| {
            crate::telemetry::observe(listener, req, next)
        }))
}

/// Whether reading a request body failed because it did not arrive within
/// `http.body_read_timeout_ms`.
pub fn body_timed_out(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Paths the host serves itself on the public listener; plugins may not claim them.
pub const HOST_PUBLIC_PREFIXES: &[&str] = &["/pay/", "/api/checkout/", plugin_docs::PREFIX];

/// The public listener's router: the host's own pages plus `plugins` (the router of the
/// plugin runtime, whose routes were checked against [`HOST_PUBLIC_PREFIXES`]).
pub fn public_router(ctx: AppContext, plugins: Router<AppContext>) -> Router {
    let router = Router::new().merge(checkout::router());
    #[cfg(feature = "bench-native")]
    let router = router.merge(bench_native::router());
    let router = router
        .merge(plugins)
        .fallback(|| async { ApiError::NotFound });
    with_pipeline(router.with_state(ctx.clone()), "public", &ctx.config.http)
}
