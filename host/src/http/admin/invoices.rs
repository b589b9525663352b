//! The operator's API for invoices set aside because settling them failed (see
//! `crate::invoice::service`, "Quarantine"); the CLI twin is `polypay invoice`.
//!
//! - `GET /invoices/quarantined`: every quarantined invoice with the reason, oldest first.
//! - `POST /invoices/{id}/retry`: takes it back and settles it from its stored payments;
//!   404 when it is not quarantined, 409 (and still quarantined) when settling fails again.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::super::ApiError;
use crate::app::AppContext;
use crate::invoice::{InvoiceError, InvoiceService};

/// The routes above, to merge into the admin router.
pub fn routes() -> Router<AppContext> {
    Router::new()
        .route("/invoices/quarantined", get(quarantined))
        .route("/invoices/{id}/retry", post(retry))
}

async fn quarantined(State(ctx): State<AppContext>) -> Result<Json<serde_json::Value>, ApiError> {
    let mut conn = ctx
        .store
        .pool()
        .acquire()
        .await
        .map_err(crate::store::StoreError::from)?;
    let invoices = crate::store::invoices::quarantined(&mut conn).await?;
    Ok(Json(serde_json::json!({ "invoices": invoices })))
}

async fn retry(
    State(ctx): State<AppContext>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    match InvoiceService::new(ctx.store.clone())
        .retry_quarantined(&id)
        .await
    {
        Ok(invoice) => {
            tracing::info!(invoice = %id, status = %invoice.status, "quarantined invoice retried by the operator");
            Ok(Json(
                serde_json::json!({ "id": id, "status": invoice.status }),
            ))
        }
        Err(InvoiceError::NotFound(_)) => Err(ApiError::NotFound),
        Err(e @ InvoiceError::Store(crate::store::StoreError::Database(_))) => {
            Err(ApiError::Internal(e.into()))
        }
        Err(e) => Err(ApiError::Conflict(format!(
            "settling failed again; the invoice stays quarantined: {e}"
        ))),
    }
}
