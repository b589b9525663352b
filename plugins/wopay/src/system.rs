//! `/health`, `/api/v1/status` and `/api/v1/network/status`, from the host's real state:
//! the database is "connected" when a storage read succeeds, the blockchain when the
//! listener has seen the node's head.

use crate::Settings;
use crate::envelope::{self, ok, rfc3339};
use polypay_plugin_sdk::chains::ChainStatus;
use polypay_plugin_sdk::prelude::*;
use serde_json::{Value, json};

struct Health {
    database: bool,
    chain: Option<ChainStatus>,
}

impl Health {
    fn probe(settings: &Settings) -> Health {
        Health {
            database: kv::get("health-probe").is_ok(),
            chain: chains::status(&settings.network).ok(),
        }
    }

    fn blockchain(&self) -> bool {
        self.chain.as_ref().is_some_and(|c| c.head_block.is_some())
    }

    fn healthy(&self) -> bool {
        self.database && self.blockchain()
    }

    fn view(&self) -> Value {
        let state = |up: bool| if up { "connected" } else { "disconnected" };
        json!({
            "status": if self.healthy() { "healthy" } else { "unhealthy" },
            "version": <crate::WoPay as Plugin>::VERSION,
            "database": state(self.database),
            "blockchain": state(self.blockchain()),
            "timestamp": rfc3339(clock::now()),
        })
    }
}

/// `GET /health`: the seed's bare object (no envelope); 503 when unhealthy.
pub fn health(_: &Request) -> Response {
    let settings = match crate::settings() {
        Ok(s) => s,
        Err(response) => return response,
    };
    let health = Health::probe(&settings);
    Response::json(if health.healthy() { 200 } else { 503 }, &health.view())
}

/// `GET /api/v1/status`: the same, in the envelope, with the network's progress.
pub fn status(_: &Request, settings: &Settings) -> Result<Response, Response> {
    let health = Health::probe(settings);
    let mut data = health.view();
    data["network"] = json!(settings.network);
    data["block_number"] = json!(health.chain.as_ref().and_then(|c| c.head_block));
    data["processed_block"] = json!(health.chain.as_ref().and_then(|c| c.processed_block));
    Ok(ok(200, &data))
}

/// `GET /api/v1/network/status`: `{<network>: {chain_id, block_number, gas_price,
/// is_syncing, confirmation_blocks}}`.
pub fn network_status(_: &Request, settings: &Settings) -> Result<Response, Response> {
    let status = chains::status(&settings.network).map_err(|e| match e {
        HostError::NotFound => envelope::error(
            503,
            "Service unavailable: the payment network is not configured",
        ),
        other => envelope::host_failure("chains.status", other),
    })?;
    // Gas price in wei as a JSON number, as in the seed (the host's decimal digits are a
    // valid JSON number as they are).
    let gas_price: Value = status
        .gas_price
        .as_deref()
        .and_then(|g| serde_json::from_str(g).ok())
        .unwrap_or(Value::Null);
    Ok(ok(
        200,
        &json!({
            status.name.clone(): {
                "chain_id": status.chain_id,
                "block_number": status.head_block,
                "gas_price": gas_price,
                "is_syncing": status.syncing,
                "confirmation_blocks": status.required_confirmations,
            }
        }),
    ))
}
