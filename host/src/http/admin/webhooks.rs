//! The operator's webhook API on the admin listener:
//!
//! - `GET /webhooks/deliveries?merchant_id=&invoice_id=&plugin=&state=&before=&limit=`:
//!   deliveries newest first; `next_before` pages on.
//! - `GET /webhooks/deliveries/{id}`: one delivery, its payload and every attempt.
//! - `POST /webhooks/deliveries/{id}/replay`: sends a delivered or dead-lettered event
//!   again (409 for an event in any other state).
//! - `GET /webhooks/stats?merchant_id=&days=&plugin=`: a merchant's delivery statistics.

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::super::ApiError;
use crate::app::AppContext;
use crate::store::now_ms;
use crate::store::outbox::{self, DeliveryFilter, DeliveryState, ReplayError};

/// The routes above, to merge into the admin router.
pub fn routes() -> Router<AppContext> {
    Router::new()
        .route("/webhooks/deliveries", get(list))
        .route("/webhooks/deliveries/{id}", get(show))
        .route("/webhooks/deliveries/{id}/replay", post(replay))
        .route("/webhooks/stats", get(stats))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    merchant_id: Option<String>,
    invoice_id: Option<String>,
    plugin: Option<String>,
    state: Option<String>,
    before: Option<i64>,
    limit: Option<u32>,
}

async fn list(
    State(ctx): State<AppContext>,
    Query(query): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 1000".into(),
        ));
    }
    let filter = DeliveryFilter {
        merchant_id: query.merchant_id,
        invoice_id: query.invoice_id,
        plugin: query.plugin,
        state: DeliveryState::parse_filter(query.state.as_deref())
            .map_err(|e| ApiError::BadRequest(e.to_string()))?,
        before_id: query.before,
        limit,
    };
    let mut conn = ctx
        .store
        .pool()
        .acquire()
        .await
        .map_err(crate::store::StoreError::from)?;
    let deliveries = outbox::list(&mut conn, &filter).await?;
    let next_before = (deliveries.len() == limit as usize)
        .then(|| deliveries.last().map(|d| d.id))
        .flatten();
    Ok(Json(
        serde_json::json!({ "deliveries": deliveries, "next_before": next_before }),
    ))
}

async fn show(
    State(ctx): State<AppContext>,
    Path(id): Path<i64>,
) -> Result<Json<outbox::DeliveryDetail>, ApiError> {
    let mut conn = ctx
        .store
        .pool()
        .acquire()
        .await
        .map_err(crate::store::StoreError::from)?;
    outbox::detail(&mut conn, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound)
}

async fn replay(
    State(ctx): State<AppContext>,
    Path(id): Path<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    match outbox::replay(&ctx.store, id, now_ms()).await {
        Ok(delivery) => {
            tracing::info!(event_id = id, "webhook replayed by the operator");
            Ok(Json(serde_json::json!({ "delivery": delivery })))
        }
        Err(ReplayError::NotFound(_)) => Err(ApiError::NotFound),
        Err(e @ ReplayError::NotReplayable { .. }) => Err(ApiError::Conflict(e.to_string())),
        Err(ReplayError::Store(e)) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
struct StatsQuery {
    merchant_id: String,
    days: Option<u32>,
    plugin: Option<String>,
}

async fn stats(
    State(ctx): State<AppContext>,
    Query(query): Query<StatsQuery>,
) -> Result<Json<outbox::DeliveryStats>, ApiError> {
    let days = query.days.unwrap_or(7);
    if !(1..=3_650).contains(&days) {
        return Err(ApiError::BadRequest(
            "days must be between 1 and 3650".into(),
        ));
    }
    Ok(Json(
        crate::webhook::merchant_stats(
            &ctx.store,
            &query.merchant_id,
            query.plugin.as_deref(),
            days,
        )
        .await?,
    ))
}
