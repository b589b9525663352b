//! The admin listener: `/healthz` (the process answers), `/readyz` (the database answers and
//! every migration is applied), `/metrics` (Prometheus text format). Bind it to loopback or
//! a private network only: it is not authenticated.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use super::{ApiError, with_pipeline};
use crate::app::AppContext;

pub fn router(ctx: AppContext) -> Router {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(crate::webhook::admin::routes())
        .fallback(|| async { ApiError::NotFound })
        .with_state(ctx.clone());
    with_pipeline(router, "admin", ctx.config.http.max_body_bytes)
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(ctx): State<AppContext>) -> Result<impl IntoResponse, ApiError> {
    ctx.store
        .ping()
        .await
        .map_err(|e| ApiError::Unavailable(format!("database unreachable: {e}")))?;
    let pending = ctx
        .store
        .pending_migrations()
        .await
        .map_err(|e| ApiError::Unavailable(format!("database unreachable: {e}")))?;
    if !pending.is_empty() {
        return Err(ApiError::Unavailable(format!(
            "migrations not applied: {pending:?}; run `polypay migrate`"
        )));
    }
    Ok((
        StatusCode::OK,
        Json(serde_json::json!({ "status": "ready" })),
    ))
}

async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::metrics_handle().render(),
    )
}
