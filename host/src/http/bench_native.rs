//! The native side of the end-to-end load benchmark (`scripts/bench-load/run.sh`),
//! compiled only with the `bench-native` cargo feature (off by default, never in a
//! release): two axum routes that do the store work of the `trino` plugin's invoice create
//! and status read without a plugin, so that the benchmark can put the plugin's cost
//! beside the same work done natively.
//!
//! - `POST /bench/native/invoices/create`: the trino create body (same JSON, same bearer
//!   token); authenticates the token as the plugin's host call does (keyed lookup hash,
//!   sealed secret opened and compared in constant time), creates the invoice through
//!   [`InvoiceService::open`] as plugin `trino` with a contract-reference target (one
//!   transaction: invoice, target, `invoice.created` event), reads its delivery summary as
//!   the host does before handing an invoice to a plugin, and answers
//!   `{"invoice_id", "jump_url"}`.
//! - `GET /bench/native/invoices/{id}`: authenticates, reads the invoice and its delivery
//!   summary, answers `{"metadata", "status", "txn_hash"}`.
//!
//! Validation is reduced to what the store calls need (the plugin's field checks are guest
//! CPU, which is part of what the benchmark measures on the plugin side). The network is
//! the first configured chain with a payment contract, as trino picks it by default.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::app::AppContext;
use crate::invoice::{self, Amount, InvoiceService, InvoiceStatus};
use crate::matcher::TargetSpec;
use crate::store::outbox::{self, SummaryState};

/// The plugin whose work these routes repeat, and its credential kind.
const PLUGIN: &str = "trino";
const TOKEN_KIND: &str = "bearer";
const EXPIRES_IN_MS: i64 = 24 * 3600 * 1000;

pub fn router() -> Router<AppContext> {
    Router::new()
        .route("/bench/native/invoices/create", post(create))
        .route("/bench/native/invoices/{id}", get(status))
}

#[derive(Deserialize)]
struct CreateBody<'a> {
    #[serde(borrow)]
    amount: &'a RawValue,
    network: String,
    recipient: String,
    title: String,
    metadata: String,
    jump_url: String,
    notify_url: String,
}

#[derive(Serialize)]
struct Created<'a> {
    invoice_id: &'a str,
    jump_url: &'a str,
}

#[derive(Serialize)]
struct Status<'a> {
    metadata: &'a str,
    status: &'static str,
    txn_hash: &'a str,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": message.into() })),
    )
        .into_response()
}

fn failed(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "bench-native request failed");
    refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// The merchant id the bearer token of `headers` authenticates for the plugin.
async fn authenticate(ctx: &AppContext, headers: &HeaderMap) -> Result<String, Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| refuse(StatusCode::UNAUTHORIZED, "missing bearer token"))?;
    match ctx.merchants.authenticate(PLUGIN, TOKEN_KIND, token).await {
        Ok(Some((m, _))) if m.plugin.as_deref().is_none_or(|p| p == PLUGIN) => Ok(m.id),
        Ok(_) => Err(refuse(StatusCode::UNAUTHORIZED, "unknown or revoked token")),
        Err(e) => Err(failed(e)),
    }
}

async fn delivery(ctx: &AppContext, id: &str) -> Result<SummaryState, Response> {
    let mut conn = ctx.store.pool().acquire().await.map_err(failed)?;
    let summary = outbox::invoice_summary(&mut conn, id)
        .await
        .map_err(failed)?;
    Ok(summary.state)
}

async fn create(State(ctx): State<AppContext>, headers: HeaderMap, body: String) -> Response {
    let merchant_id = match authenticate(&ctx, &headers).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Ok(body) = serde_json::from_str::<CreateBody>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "not a create body");
    };
    let Some((chain, contract)) = ctx
        .config
        .chains
        .iter()
        .find(|c| c.name == body.network)
        .and_then(|c| c.payment_contracts.first().map(|p| (c, p)))
    else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "no payment contract on that network",
        );
    };
    let Some(asset) = chain.asset(&contract.asset) else {
        return refuse(StatusCode::BAD_REQUEST, "unknown asset");
    };
    let amount = match Amount::from_base_units(body.amount.get()) {
        Ok(a) if a != Amount::ZERO => a,
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "amount must be positive base units",
            );
        }
    };
    let mut record = invoice::NewInvoice::new(
        &merchant_id,
        PLUGIN,
        &chain.name,
        (&asset.symbol, asset.decimals),
        amount,
        crate::store::now_ms() + EXPIRES_IN_MS,
    );
    record.notify_url = Some(body.notify_url);
    record.return_url = Some(body.jump_url.clone());
    record.plugin_data = serde_json::json!({
        "title": body.title,
        "metadata": body.metadata,
        "jump_url": body.jump_url,
    });
    let spec = TargetSpec::ContractReference {
        recipient: body.recipient,
        reference: None,
    };
    let created = match InvoiceService::new(ctx.store.clone())
        .open(chain, &record, &spec)
        .await
    {
        Ok(i) => i,
        Err(e) => return failed(e),
    };
    if let Err(r) = delivery(&ctx, &created.id).await {
        return r;
    }
    let page = format!("{}/pay/{}", ctx.config.public_base_url, created.id);
    axum::Json(Created {
        invoice_id: &created.id,
        jump_url: &page,
    })
    .into_response()
}

async fn status(
    State(ctx): State<AppContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let merchant_id = match authenticate(&ctx, &headers).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let invoice = match ctx.store.invoice(&id).await {
        Ok(Some(i)) if i.plugin == PLUGIN && i.merchant_id == merchant_id => i,
        Ok(_) => return refuse(StatusCode::NOT_FOUND, "invoice not found"),
        Err(e) => return failed(e),
    };
    let state = match delivery(&ctx, &invoice.id).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let status = match invoice.status {
        InvoiceStatus::Paid if state == SummaryState::Delivered => "notified",
        InvoiceStatus::Paid => "paid",
        _ => "unpaid",
    };
    axum::Json(Status {
        metadata: invoice.plugin_data["metadata"].as_str().unwrap_or_default(),
        status,
        txn_hash: invoice.txn_hash.as_deref().unwrap_or_default(),
    })
    .into_response()
}
