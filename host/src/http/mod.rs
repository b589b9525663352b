//! HTTP surfaces (axum): the public listener (plugin routes, checkout page) and the admin
//! listener (health, readiness, metrics, operator API).
//!
//! Both routers share the request pipeline: [`crate::telemetry::observe`] (request id,
//! span, access log, metrics) and a request body cap (`http.max_body_bytes`).
//! Errors a client can cause are [`ApiError`] variants that know their status code;
//! anything else is logged with the request id and answered with a generic 500.

pub mod admin;
pub mod checkout;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower_http::limit::RequestBodyLimitLayer;

use crate::app::AppContext;

/// Errors of the host's own JSON endpoints.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
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
        (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::Internal(e.into())
    }
}

/// Wraps a router in the shared request pipeline.
pub fn with_pipeline(router: Router, listener: &'static str, max_body_bytes: usize) -> Router {
    // A route layer on a router without routes is refused by axum (it would do nothing).
    let router = if router.has_routes() {
        router.route_layer(axum::middleware::from_fn(crate::telemetry::label_route))
    } else {
        router
    };
    router
        .layer(RequestBodyLimitLayer::new(max_body_bytes))
        .layer(axum::middleware::from_fn(move |req, next| {
            crate::telemetry::observe(listener, req, next)
        }))
}

/// The public listener's router.
/// Paths the host serves itself on the public listener; plugins may not claim them.
pub const HOST_PUBLIC_PREFIXES: &[&str] = &["/pay/", "/api/checkout/"];

/// The public listener's router: the host's own pages plus `plugins` (the router of the
/// plugin runtime, whose routes were checked against [`HOST_PUBLIC_PREFIXES`]).
pub fn public_router(ctx: AppContext, plugins: Router<AppContext>) -> Router {
    let router = Router::new()
        .merge(checkout::router())
        .merge(plugins)
        .fallback(|| async { ApiError::NotFound });
    with_pipeline(
        router.with_state(ctx.clone()),
        "public",
        ctx.config.http.max_body_bytes,
    )
}
