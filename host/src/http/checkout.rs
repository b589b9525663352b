//! The hosted checkout page and its read-only feed, on the public listener.
//!
//! - `GET /pay/{invoice_id}`: the page (a Vue 3 single-page app from `host/checkout/`,
//!   built by `host/build.rs` and embedded in the binary): the same `index.html` for every
//!   invoice id, answered with 404 when the id is unknown so the status is honest while
//!   the page itself explains.
//! - `GET /pay/assets/{*path}`: the page's scripts and styles. Their names carry a content
//!   hash, so they are cached as immutable.
//! - `GET /api/checkout/{invoice_id}`: [`CheckoutView`], what a payer may see of an invoice
//!   (JSON; 404 `{"error": "not found"}` for an unknown id).
//! - `POST /api/checkout/{invoice_id}/dev-pay` (development mode with a dev wallet only;
//!   404 otherwise): pays what is still due from the dev wallet, as `polypay dev pay`
//!   does (see [`crate::dev::wallet`]), and answers `{"tx_hash", "amount"}`. The request
//!   must be JSON (`content-type: application/json`), which a cross-site form cannot
//!   send without a CORS preflight this server never grants.
//! - `GET /api/checkout/{invoice_id}/events`: server-sent events, event name `invoice`,
//!   data the same JSON: once at connect, then whenever the status, the outcome, the
//!   amount due (a re-quote) or paid, the quote or the transaction change. The stream
//!   ends after a final view is sent (`"final": true`: `paid` or `cancelled`, or
//!   `expired` once the post-expiry monitoring window is over; until then a late payment
//!   can still arrive and is shown), after [`STREAM_LIFETIME`] in any case (the browser's
//!   `EventSource` reconnects by itself and gets the current state first), and at
//!   shutdown. At most `checkout.max_streams` are open at once (503 with `Retry-After`
//!   beyond). All streams of one invoice follow one shared watcher ([`feed`]).
//!
//! Anyone holding the link sees the view, so it carries nothing a payer should not see:
//! no merchant id, no plugin name, no notify URL, no plugin data beyond the title.
//!
//! Conventions the page relies on:
//! - the title is the invoice's `plugin_data.title` when that is a string (a plugin that
//!   wants a title on the page puts it there);
//! - an invoice priced in fiat carries `fiat` (the price exactly as it was given, "20.00
//!   USD", and until when its quote holds); the page shows it beside the crypto amount
//!   with a countdown to the quote's end (the rate provider's name stays off the view);
//! - `return_url` is only passed on when it is an `http(s)://` URL, so the page never
//!   navigates to a `javascript:` or other URL a merchant's caller slipped in;
//! - the live status is polled from the store once per `checkout.poll_interval_ms` per
//!   watched invoice (not per stream); a change feed from the store (PostgreSQL
//!   `LISTEN/NOTIFY`) can replace the poll inside [`feed`] without changing the contract.

pub mod feed;

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::Stream;
use serde::Serialize;
use tokio::time::Instant;

use super::ApiError;
use crate::app::AppContext;
use crate::chain::{ChainConfig, ChainKind};
use crate::invoice::Invoice;
use crate::invoice::{Amount, InvoiceStatus, MatchStrategy, Outcome};

/// The page's files, built into `OUT_DIR` by `build.rs`: `ASSETS`, a list of
/// (path relative to the build output, bytes).
mod embedded {
    include!(concat!(env!("OUT_DIR"), "/checkout_assets.rs"));
}

pub use feed::{CheckoutFeed, FeedStats, STREAM_LIFETIME};
/// What the page's `EventSource` waits before reconnecting.
const RECONNECT_AFTER: Duration = Duration::from_secs(2);
/// Comment lines keep idle connections open through proxies.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// The page may load only its own files and talk only to its own origin.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The checkout routes, merged into the public router.
pub fn router() -> Router<AppContext> {
    Router::new()
        .route("/pay/{invoice_id}", get(page))
        .route("/pay/assets/{*path}", get(asset))
        .route("/api/checkout/{invoice_id}", get(invoice_json))
        .route("/api/checkout/{invoice_id}/events", get(invoice_events))
        .route("/api/checkout/{invoice_id}/dev-pay", post(dev_pay))
}

/// What a payer sees of an invoice. Amounts are base-unit decimal strings; `*_display`
/// are the same amounts in the asset's units, exact (`"10.5"`). Times are Unix ms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckoutView {
    pub invoice_id: String,
    /// `plugin_data.title` when it is a string.
    pub title: Option<String>,
    /// The host lifecycle status: `pending`, `confirming`, `paid`, `expired`, `cancelled`.
    pub status: InvoiceStatus,
    /// `underpaid`, `overpaid`, `paid_late`.
    pub outcome: Outcome,
    pub amount: Amount,
    pub amount_display: String,
    pub amount_paid: Amount,
    pub amount_paid_display: String,
    /// What is still due (`amount - amount_paid`, never negative): what the page asks for.
    pub amount_remaining: Amount,
    pub amount_remaining_display: String,
    /// The fiat price beside the crypto amount, when the invoice was priced in fiat.
    pub fiat: Option<CheckoutFiat>,
    pub decimals: u8,
    pub symbol: String,
    /// The network's config name (`ethereum`, `sepolia`, `bsc`, …).
    pub network: String,
    /// `evm` or `tron`; null when the network is no longer configured.
    pub chain_kind: Option<ChainKind>,
    /// EIP-155 chain id (EVM networks).
    pub chain_id: Option<u64>,
    pub strategy: MatchStrategy,
    /// Where the money goes: the address to pay, or for `contract-reference` the
    /// recipient the payment contract call names.
    pub pay_address: String,
    /// The token contract; null for the native coin.
    pub token_address: Option<String>,
    /// For `contract-reference`: the payment contract to approve and call.
    pub payment_contract: Option<String>,
    /// The id the payment contract call must carry (`pay(pay_reference, recipient, amount)`).
    pub pay_reference: String,
    /// Payment request for the remaining amount, for QR codes: EIP-681 on EVM networks,
    /// `tron:<address>?amount=…` on TRON ([`tron_uri`]); null where a plain transfer cannot
    /// pay the invoice (`contract-reference`) or the network is not configured.
    pub payment_uri: Option<String>,
    pub expires_at: i64,
    /// The server's clock when the view was made, so the page's countdown does not
    /// depend on the payer's clock.
    pub server_time: i64,
    pub confirmations_required: u32,
    pub txn_hash: Option<String>,
    /// Where the page sends the payer once paid (`http(s)` only).
    pub return_url: Option<String>,
    /// Nothing the page shows can change any more: `paid`, `cancelled`, or `expired`
    /// after the post-expiry monitoring window (within it a late payment still counts).
    #[serde(rename = "final")]
    pub is_final: bool,
    /// Development mode: the page offers "Pay with the dev wallet"
    /// (`POST /api/checkout/{invoice_id}/dev-pay`). Always false in production.
    pub dev_wallet: bool,
}

/// The fiat price of an invoice priced in fiat, and its quote, as the page shows them:
/// "20.00 USD" beside the crypto amount, and a countdown to `quote_valid_until` (on the
/// server's clock, like the payment countdown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckoutFiat {
    /// The price as the merchant's caller gave it ("20.00"): never reformatted.
    pub amount: String,
    /// ISO 4217 code ("USD").
    pub currency: String,
    /// Fiat units per whole asset unit the amount was quoted at ("7.25").
    pub rate: String,
    pub quoted_at: i64,
    /// When the quote stops holding (Unix ms).
    pub quote_valid_until: i64,
}

impl CheckoutView {
    /// Builds the view of `invoice` with the network settings in `chains` at time `now`.
    pub fn of(invoice: &Invoice, chains: &[ChainConfig], now: i64) -> CheckoutView {
        let chain = chains.iter().find(|c| c.name == invoice.chain);
        let asset = chain.and_then(|c| c.asset(&invoice.asset));
        let evm = chain.filter(|c| c.kind == ChainKind::Evm);
        let address = |text: &str| match evm {
            Some(_) => evm_address_text(text),
            None => text.to_string(),
        };
        let token_address = asset.and_then(|a| a.contract.as_deref()).map(address);
        let contract_reference = invoice.strategy == MatchStrategy::ContractReference;
        let payment_contract = chain
            .filter(|_| contract_reference)
            .and_then(|c| {
                c.payment_contracts
                    .iter()
                    .find(|p| p.asset == invoice.asset)
            })
            .map(|p| address(&p.address));
        let remaining = invoice.amount_due.saturating_sub(invoice.amount_paid);
        let tron = chain.filter(|c| c.kind == ChainKind::Tron);
        let payment_uri = match (evm.and_then(|c| c.chain_id), tron, asset) {
            (Some(chain_id), _, Some(asset)) if !contract_reference => Some(eip681_uri(
                chain_id,
                token_address.as_deref().filter(|_| !asset.native),
                &invoice.pay_address,
                remaining,
            )),
            (None, Some(_), Some(asset)) if !contract_reference => Some(tron_uri(
                token_address.as_deref().filter(|_| !asset.native),
                &invoice.pay_address,
                &remaining.format_decimal(invoice.decimals),
            )),
            _ => None,
        };
        CheckoutView {
            invoice_id: invoice.id.clone(),
            title: invoice
                .plugin_data
                .get("title")
                .and_then(|t| t.as_str())
                .map(str::to_string),
            status: invoice.status,
            outcome: invoice.outcome,
            amount: invoice.amount_due,
            amount_display: invoice.amount_due.format_decimal(invoice.decimals),
            amount_paid: invoice.amount_paid,
            amount_paid_display: invoice.amount_paid.format_decimal(invoice.decimals),
            amount_remaining: remaining,
            amount_remaining_display: remaining.format_decimal(invoice.decimals),
            fiat: invoice.fiat.as_ref().map(|f| CheckoutFiat {
                amount: f.amount.clone(),
                currency: f.currency.clone(),
                rate: f.rate.clone(),
                quoted_at: f.quoted_at,
                quote_valid_until: f.valid_until,
            }),
            decimals: invoice.decimals,
            symbol: invoice.asset.clone(),
            network: invoice.chain.clone(),
            chain_kind: chain.map(|c| c.kind),
            chain_id: evm.and_then(|c| c.chain_id),
            strategy: invoice.strategy,
            pay_address: invoice.pay_address.clone(),
            token_address,
            payment_contract,
            pay_reference: invoice
                .pay_reference
                .clone()
                .unwrap_or_else(|| invoice.id.clone()),
            payment_uri,
            expires_at: invoice.expires_at,
            server_time: now,
            confirmations_required: invoice.confirmations_required,
            txn_hash: invoice.txn_hash.clone(),
            return_url: invoice.return_url.clone().filter(|u| is_web_url(u)),
            is_final: match invoice.status {
                InvoiceStatus::Paid | InvoiceStatus::Cancelled => true,
                InvoiceStatus::Expired => now >= invoice.monitor_until,
                _ => false,
            },
            dev_wallet: false,
        }
    }

    /// Whether nothing the page shows can change any more.
    pub fn is_final(&self) -> bool {
        self.is_final
    }

    /// The fields whose change is pushed to an open event stream.
    fn change_key(&self) -> ChangeKey {
        (
            self.status,
            self.outcome,
            (self.amount, self.amount_paid),
            self.txn_hash.clone(),
            self.is_final,
            // A re-quote: a new amount due and a new quote to count down to.
            self.fiat.as_ref().map(|f| f.quote_valid_until),
        )
    }
}

type ChangeKey = (
    InvoiceStatus,
    Outcome,
    (Amount, Amount),
    Option<String>,
    bool,
    Option<i64>,
);

/// The EIP-681 payment request for `amount` base units to `to` on chain `chain_id`: a
/// native transfer (`ethereum:<to>@<chainId>?value=<wei>`), or with `token` an ERC20
/// `transfer` (`ethereum:<token>@<chainId>/transfer?address=<to>&uint256=<amount>`).
/// Amounts are plain base-unit integers (no exponent notation), which every wallet reads.
pub fn eip681_uri(chain_id: u64, token: Option<&str>, to: &str, amount: Amount) -> String {
    match token {
        None => format!("ethereum:{to}@{chain_id}?value={amount}"),
        Some(token) => {
            format!("ethereum:{token}@{chain_id}/transfer?address={to}&uint256={amount}")
        }
    }
}

/// A TRON payment request for QR codes, BIP21-style as TRON wallets read it:
/// `tron:<address>?amount=<amount in TRX or the token's units>`, and `&token=<TRC20
/// contract>` for a token. The amount is the exact decimal the invoice awaits (on a
/// unique-amount address its last digits are what identifies the payment).
pub fn tron_uri(token: Option<&str>, to: &str, amount: &str) -> String {
    match token {
        None => format!("tron:{to}?amount={amount}"),
        Some(token) => format!("tron:{to}?amount={amount}&token={token}"),
    }
}

/// An EVM address in its EIP-55 form; text that is not an address is left as it is.
fn evm_address_text(text: &str) -> String {
    crate::chain::evm::parse_address(text)
        .map(crate::chain::evm::address_text)
        .unwrap_or_else(|_| text.to_string())
}

/// An absolute `http://` or `https://` URL without whitespace or control characters.
fn is_web_url(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return false;
    };
    !rest.is_empty() && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

async fn load_view(ctx: &AppContext, id: &str) -> Result<CheckoutView, ApiError> {
    let invoice = ctx.store.invoice(id).await?.ok_or(ApiError::NotFound)?;
    Ok(ctx.checkout.view(&invoice))
}

/// Development mode: pays what is due from the dev wallet. See the module docs.
async fn dev_pay(
    State(ctx): State<AppContext>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if ctx.config.dev_wallet().is_none() {
        return Err(ApiError::NotFound);
    }
    let id = crate::invoice::canonical_invoice_id(&id).into_owned();
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(ApiError::BadRequest(
            "send the request as application/json".into(),
        ));
    }
    let view = load_view(&ctx, &id).await?;
    if !view.dev_wallet {
        return Err(ApiError::BadRequest(format!(
            "the dev wallet cannot pay on network `{}`",
            view.network
        )));
    }
    use crate::dev::wallet::{DevNode, WalletError};
    let node = DevNode::of(&ctx.config, &view.network).map_err(|e| match e {
        WalletError::Rpc(_) => ApiError::Unavailable(e.to_string()),
        other => ApiError::BadRequest(other.to_string()),
    })?;
    let request = crate::dev::wallet::PayRequest::default();
    let paid = crate::dev::wallet::pay(&node, &view, request)
        .await
        .map_err(|e| match e {
            WalletError::Rpc(_) | WalletError::Contract(_) | WalletError::Tron(_) => {
                ApiError::Unavailable(e.to_string())
            }
            other => ApiError::BadRequest(other.to_string()),
        })?;
    tracing::info!(invoice = %id, tx = %paid.payment.tx, amount = %paid.amount, "paid from the dev wallet");
    Ok(axum::Json(serde_json::json!({
        "tx_hash": paid.payment.tx,
        "amount": paid.amount,
    }))
    .into_response())
}

async fn invoice_json(
    State(ctx): State<AppContext>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = crate::invoice::canonical_invoice_id(&id).into_owned();
    let view = load_view(&ctx, &id).await?;
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(view)).into_response())
}

async fn invoice_events(
    State(ctx): State<AppContext>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = crate::invoice::canonical_invoice_id(&id).into_owned();
    let slot = ctx.checkout.reserve().ok_or(ApiError::Overloaded {
        what: "too many open checkout streams",
        retry_after_s: 5,
    })?;
    // An unknown id is a plain 404, not a stream that says nothing.
    let first = load_view(&ctx, &id).await?;
    let subscription = ctx.checkout.subscribe(slot, &id, &first);
    Ok((
        // Tells nginx-style proxies not to buffer the stream.
        [("x-accel-buffering", "no")],
        Sse::new(follow(id, first, subscription))
            .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")),
    )
        .into_response())
}

/// Where one event stream is.
struct Following {
    id: String,
    subscription: feed::Subscription,
    /// The next view to send, if any.
    next: Option<CheckoutView>,
    last_sent: Option<ChangeKey>,
    ends_at: Instant,
    done: bool,
}

/// The stream of `invoice` events for one connection, starting with `first`.
fn follow(
    id: String,
    first: CheckoutView,
    subscription: feed::Subscription,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let state = Following {
        id,
        subscription,
        next: Some(first),
        last_sent: None,
        ends_at: Instant::now() + STREAM_LIFETIME,
        done: false,
    };
    futures::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            if let Some(view) = s.next.take()
                && s.last_sent.as_ref() != Some(&view.change_key())
            {
                let mut event = Event::default().event("invoice");
                if s.last_sent.is_none() {
                    event = event.retry(RECONNECT_AFTER);
                }
                s.last_sent = Some(view.change_key());
                s.done = view.is_final();
                let event = match event.json_data(&view) {
                    Ok(event) => event,
                    Err(e) => {
                        tracing::error!(invoice = %s.id, error = %e, "checkout event not serialisable");
                        return None;
                    }
                };
                return Some((Ok(event), s));
            }
            let updates = s.subscription.updates.as_mut()?;
            tokio::select! {
                changed = updates.changed() => {
                    // An error: the watcher is gone (invoice unreadable); the browser reconnects.
                    changed.ok()?;
                    s.next = Some(updates.borrow_and_update().clone());
                }
                _ = tokio::time::sleep_until(s.ends_at) => return None,
                _ = s.subscription.shutdown.cancelled() => return None,
            }
        }
    })
}

/// The page for any invoice id; 404 (same page) when the id is unknown.
async fn page(State(ctx): State<AppContext>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = crate::invoice::canonical_invoice_id(&id).into_owned();
    let status = if ctx.store.invoice(&id).await?.is_some() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    let Some(html) = embedded_file("index.html") else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "the checkout page was not embedded at build time"
        )));
    };
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Always revalidated: a new release changes which assets it names.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

/// A built asset (`/pay/assets/…`): content-hashed names, so immutable.
async fn asset(Path(path): Path<String>) -> Result<Response, ApiError> {
    let body = embedded_file(&format!("assets/{path}")).ok_or(ApiError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type(&path)),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response())
}

fn embedded_file(path: &str) -> Option<&'static [u8]> {
    embedded::ASSETS
        .iter()
        .find(|(name, _)| *name == path)
        .map(|(_, bytes)| *bytes)
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        Some("json" | "map") => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests;
