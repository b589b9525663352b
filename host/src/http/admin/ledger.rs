//! The operator's API for the custodial ledger (`crate::ledger`); the CLI twin is
//! `polypay ledger`.
//!
//! - `POST /ledger/users` `{plugin, merchant_id?, contact?: {national_code, mobile, email},
//!   plugin_data?}`: creates a user, 201 with it.
//! - `GET /ledger/users?plugin=`: users, oldest first.
//! - `GET /ledger/users/{plugin}/{id}/balances`: balances in base units.
//! - `GET /ledger/users/{plugin}/{id}/postings?limit=`: postings, newest first.
//! - `GET /ledger/reconcile`: per (plugin, chain, asset) the external account against
//!   what users hold, and any account whose cached balance differs from its postings.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::super::ApiError;
use crate::app::AppContext;
use crate::ledger::{Contact, Ledger, LedgerError, NewUser};

/// The routes above, to merge into the admin router.
pub fn routes() -> Router<AppContext> {
    Router::new()
        .route("/ledger/users", get(users).post(create_user))
        .route("/ledger/users/{plugin}/{id}/balances", get(balances))
        .route("/ledger/users/{plugin}/{id}/postings", get(postings))
        .route("/ledger/reconcile", get(reconcile))
}

fn api_error(e: LedgerError) -> ApiError {
    match e {
        LedgerError::NotFound => ApiError::NotFound,
        LedgerError::Invalid(text) => ApiError::BadRequest(text),
        LedgerError::Conflict(text) => ApiError::Conflict(text),
        LedgerError::Store(e) => ApiError::Internal(e.into()),
    }
}

#[derive(Deserialize)]
struct NewUserBody {
    plugin: String,
    merchant_id: Option<String>,
    #[serde(default)]
    contact: Contact,
    plugin_data: Option<serde_json::Value>,
}

async fn create_user(
    State(ctx): State<AppContext>,
    Json(body): Json<NewUserBody>,
) -> Result<(StatusCode, Json<crate::ledger::User>), ApiError> {
    let user = Ledger::new(ctx.store.clone())
        .create_user(
            &body.plugin,
            NewUser {
                merchant_id: body.merchant_id,
                contact: body.contact,
                plugin_data: body.plugin_data,
            },
        )
        .await
        .map_err(api_error)?;
    tracing::info!(plugin = %user.plugin, user = user.id, "ledger user created by the operator");
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Deserialize)]
struct UsersQuery {
    plugin: Option<String>,
}

async fn users(
    State(ctx): State<AppContext>,
    Query(q): Query<UsersQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let users = Ledger::new(ctx.store.clone())
        .users(q.plugin.as_deref())
        .await
        .map_err(api_error)?;
    Ok(Json(serde_json::json!({ "users": users })))
}

async fn balances(
    State(ctx): State<AppContext>,
    Path((plugin, id)): Path<(String, i64)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let balances = Ledger::new(ctx.store.clone())
        .balances(&plugin, id)
        .await
        .map_err(api_error)?;
    Ok(Json(serde_json::json!({ "balances": balances })))
}

#[derive(Deserialize)]
struct PostingsQuery {
    limit: Option<u32>,
}

async fn postings(
    State(ctx): State<AppContext>,
    Path((plugin, id)): Path<(String, i64)>,
    Query(q): Query<PostingsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let postings = Ledger::new(ctx.store.clone())
        .postings(&plugin, Some(id), limit)
        .await
        .map_err(api_error)?;
    Ok(Json(serde_json::json!({ "postings": postings })))
}

async fn reconcile(State(ctx): State<AppContext>) -> Result<Json<serde_json::Value>, ApiError> {
    let ledger = Ledger::new(ctx.store.clone());
    let assets = ledger.reconcile().await.map_err(api_error)?;
    let mismatches = ledger.recompute().await.map_err(api_error)?;
    Ok(Json(
        serde_json::json!({ "assets": assets, "mismatches": mismatches }),
    ))
}
