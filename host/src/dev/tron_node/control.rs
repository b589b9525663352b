//! The development routes of the dev TRON node, and their client.
//!
//! java-tron would need a signed transaction broadcast by a wallet holding keys; the dev
//! node instead takes what a wallet would have sent and signs it itself:
//!
//! - `POST /polypay-dev/transfer` `{"to", "amount", "token"?, "from"?, "at_ms"?}`: a TRX
//!   transfer (`amount` in sun) or, with `token` (a TRC20 contract), a TRC20 `transfer`
//!   (`amount` in the token's base units, a decimal string), mined at once in its own
//!   block; `at_ms` sets the block's time (a late payment). Answers `{"txid", "block",
//!   "timestamp"}` (block time in Unix ms).
//! - `POST /polypay-dev/mine` `{"blocks"}`: empty blocks. Answers `{"head"}`.
//! - `POST /polypay-dev/reorg` `{"depth"}`: the newest `depth` blocks are replaced by as
//!   many empty ones from other witnesses; their transactions are dropped, as when a
//!   payer's transaction is lost with an orphaned block. Answers `{"orphaned", "head"}`.
//!
//! These routes exist only on the node `polypay dev` starts ([`super::SimNode::serve_dev`]).

use alloy::primitives::U256;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};

use super::chain::{Outcome, Payload, SimChain};
use crate::chain::tron::TronAddress;

/// The account transfers come from when a request names none: the dev wallet's TRON
/// address.
pub fn dev_wallet() -> TronAddress {
    SimChain::account(0)
}

/// The TRC20 contract of the dev node's test USDT (6 decimals).
pub fn dev_usdt() -> TronAddress {
    SimChain::contract(0)
}

/// Most blocks one `mine` or `reorg` request may make.
const MAX_BLOCKS: u64 = 10_000;

#[derive(Debug, Serialize, Deserialize)]
pub struct TransferRequest {
    pub to: String,
    /// Base units, decimal.
    pub amount: String,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub at_ms: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Transferred {
    pub txid: String,
    pub block: u64,
    /// Block time, Unix ms.
    pub timestamp: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct MineRequest {
    blocks: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Mined {
    pub head: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct ReorgRequest {
    depth: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Reorged {
    /// Ids of the transactions the replaced blocks held.
    pub orphaned: Vec<String>,
    pub head: u64,
}

pub(super) fn routes(chain: SimChain) -> axum::Router {
    axum::Router::new()
        .route("/transfer", post(transfer))
        .route("/mine", post(mine))
        .route("/reorg", post(reorg))
        .with_state(chain)
}

fn refuse(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": message })),
    )
        .into_response()
}

async fn transfer(State(chain): State<SimChain>, Json(request): Json<TransferRequest>) -> Response {
    let address = |what: &str, text: &str| {
        TronAddress::parse(text).map_err(|e| format!("{what} `{text}`: {e}"))
    };
    let to = match address("to", &request.to) {
        Ok(a) => a,
        Err(message) => return refuse(message),
    };
    let from = match request
        .from
        .as_deref()
        .map(|f| address("from", f))
        .transpose()
    {
        Ok(a) => a.unwrap_or_else(dev_wallet),
        Err(message) => return refuse(message),
    };
    let Ok(amount) = U256::from_str_radix(&request.amount, 10) else {
        return refuse(format!(
            "amount `{}` is not a base-unit integer",
            request.amount
        ));
    };
    if amount.is_zero() {
        return refuse("amount must be more than zero".into());
    }
    let payload = match request.token.as_deref() {
        None => match i64::try_from(amount) {
            Ok(amount) => Payload::Trx { from, to, amount },
            Err(_) => return refuse(format!("{amount} sun is more than a TRX transfer holds")),
        },
        Some(token) => match address("token", token) {
            Ok(contract) => Payload::Trc20 {
                contract,
                from,
                to,
                amount,
                outcome: Outcome::Success,
            },
            Err(message) => return refuse(message),
        },
    };
    let tx = chain.submit(payload);
    let block = match request.at_ms {
        Some(at) => chain.mine_at(at),
        None => chain.mine(),
    };
    Json(Transferred {
        txid: tx.id,
        block: block.number,
        timestamp: block.timestamp,
    })
    .into_response()
}

async fn mine(State(chain): State<SimChain>, Json(request): Json<MineRequest>) -> Response {
    if request.blocks > MAX_BLOCKS {
        return refuse(format!("at most {MAX_BLOCKS} blocks at once"));
    }
    chain.mine_blocks(request.blocks);
    Json(Mined { head: chain.head() }).into_response()
}

async fn reorg(State(chain): State<SimChain>, Json(request): Json<ReorgRequest>) -> Response {
    // Every block but the genesis block can be replaced.
    let head = chain.head();
    if request.depth == 0 || request.depth > MAX_BLOCKS || request.depth > head {
        return refuse(format!(
            "the chain is at block {head}: depth must be between 1 and {}",
            head.min(MAX_BLOCKS)
        ));
    }
    let orphaned = chain.fork(request.depth);
    chain.mine_blocks(request.depth);
    Json(Reorged {
        orphaned: orphaned.into_iter().map(|t| t.id).collect(),
        head: chain.head(),
    })
    .into_response()
}

/// Why a development request to the dev TRON node failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the dev TRON node does not answer at {url}: is `polypay dev` running? ({source})")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("the dev TRON node refused: {0}")]
    Refused(String),
}

/// A client of the development routes.
#[derive(Debug, Clone)]
pub struct DevTronClient {
    base: String,
    http: reqwest::Client,
}

impl DevTronClient {
    /// `base`: the node's URL (the TRON network's `rpc_url` in the dev config).
    pub fn new(base: &str) -> DevTronClient {
        DevTronClient {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        route: &str,
        body: serde_json::Value,
    ) -> Result<T, ControlError> {
        let url = format!("{}/polypay-dev/{route}", self.base);
        let unreachable = |source| ControlError::Unreachable {
            url: self.base.clone(),
            source,
        };
        let response = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)));
            return Err(ControlError::Refused(message));
        }
        serde_json::from_slice(&bytes).map_err(|e| ControlError::Refused(e.to_string()))
    }

    /// Pays `amount` base units to `to`: TRX, or the TRC20 `token`; mined at once (at
    /// `at_ms` when given).
    pub async fn transfer(
        &self,
        to: &str,
        amount: U256,
        token: Option<&str>,
        at_ms: Option<i64>,
    ) -> Result<Transferred, ControlError> {
        let request = TransferRequest {
            to: to.to_string(),
            amount: amount.to_string(),
            token: token.map(str::to_string),
            from: None,
            at_ms,
        };
        self.post(
            "transfer",
            serde_json::to_value(request).expect("a plain record"),
        )
        .await
    }

    /// Mines `blocks` empty blocks; the new head.
    pub async fn mine(&self, blocks: u64) -> Result<u64, ControlError> {
        let mined: Mined = self
            .post("mine", serde_json::json!({ "blocks": blocks }))
            .await?;
        Ok(mined.head)
    }

    /// Replaces the newest `depth` blocks (see the module docs).
    pub async fn reorg(&self, depth: u64) -> Result<Reorged, ControlError> {
        self.post("reorg", serde_json::json!({ "depth": depth }))
            .await
    }
}
