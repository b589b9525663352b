//! Payments: create, read, list, and the QR code of the EIP-681 payment URI.

use crate::envelope::{self, ok, rfc3339};
use crate::{Body, Settings, is_url, qr};
use polypay_plugin_sdk::chains::NetworkInfo;
use polypay_plugin_sdk::invoices::{Invoice, PageSelector};
use polypay_plugin_sdk::is_uuid;
use polypay_plugin_sdk::prelude::*;
use serde_json::{Value, json};

/// Longest merchant order id.
const MAX_ORDER_ID: usize = 128;
/// Longest `expires_in`: 30 days.
const MAX_EXPIRES_IN: u64 = 30 * 86_400;
/// Shortest `expires_in`.
const MIN_EXPIRES_IN: u64 = 60;

/// WoPay's status name of a host invoice status (the one place it is decided).
pub fn status_name(status: InvoiceStatus) -> &'static str {
    match status {
        InvoiceStatus::Pending => "pending",
        InvoiceStatus::Confirming => "confirmed",
        InvoiceStatus::Paid => "completed",
        InvoiceStatus::Expired => "expired",
        InvoiceStatus::Cancelled => "failed",
    }
}

/// The host statuses behind a WoPay status name.
fn statuses_named(name: &str) -> Option<InvoiceStatus> {
    [
        InvoiceStatus::Pending,
        InvoiceStatus::Confirming,
        InvoiceStatus::Paid,
        InvoiceStatus::Expired,
        InvoiceStatus::Cancelled,
    ]
    .into_iter()
    .find(|s| status_name(*s) == name)
}

/// The amount as the merchant sent it ("99.99"), kept in the invoice's plugin data.
pub fn amount_as_sent(invoice: &Invoice) -> String {
    serde_json::from_str::<Value>(&invoice.plugin_data)
        .ok()
        .and_then(|d| d["amount"].as_str().map(str::to_owned))
        .unwrap_or_else(|| invoice.amount_due_decimal.clone())
}

fn network(settings: &Settings) -> Result<NetworkInfo, Response> {
    chains::networks()
        .into_iter()
        .find(|n| n.name == settings.network && n.family == "evm")
        .ok_or_else(|| {
            log::log(
                log::Level::Error,
                "the configured network is not an EVM network of this server",
                &[("network".into(), settings.network.clone())],
            );
            envelope::error(
                503,
                "Service unavailable: the payment network is not configured",
            )
        })
}

/// EIP-681: `ethereum:<token>@<chainId>/transfer?address=<to>&uint256=<units>` for a
/// token, `ethereum:<to>@<chainId>?value=<wei>` for the native coin.
pub fn payment_url(network: &NetworkInfo, asset: &str, to: &str, base_units: &str) -> String {
    let chain_id = network.chain_id.unwrap_or(1);
    let contract = network
        .assets
        .iter()
        .find(|a| a.symbol == asset)
        .and_then(|a| a.contract.clone());
    match contract {
        Some(token) => {
            format!("ethereum:{token}@{chain_id}/transfer?address={to}&uint256={base_units}")
        }
        None => format!("ethereum:{to}@{chain_id}?value={base_units}"),
    }
}

/// `POST /api/v1/payments`.
pub fn create(req: &Request, settings: &Settings) -> Result<Response, Response> {
    let merchant = crate::authenticate(req, settings)?;
    let body = Body::parse(req)?;
    let order_id = body.required_string("order_id")?;
    if order_id.trim().is_empty()
        || order_id.len() > MAX_ORDER_ID
        || order_id.chars().any(char::is_control)
    {
        return Err(envelope::bad_request(&format!(
            "order_id must be 1 to {MAX_ORDER_ID} printable characters"
        )));
    }
    let amount = match body.value("amount") {
        None => return Err(envelope::bad_request("amount is required")),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => {
            return Err(envelope::bad_request(
                "amount must be a decimal string, e.g. \"99.99\"",
            ));
        }
    };
    let currency = body.required_string("currency")?;
    let callback_url = body.string("callback_url")?;
    if let Some(url) = callback_url
        && !is_url(url)
    {
        return Err(envelope::bad_request("callback_url must be an http(s) URL"));
    }
    let expires_in = match body.value("expires_in") {
        None => u64::from(settings.default_expires_in),
        Some(v) => v
            .as_u64()
            .filter(|s| (MIN_EXPIRES_IN..=MAX_EXPIRES_IN).contains(s))
            .ok_or_else(|| {
                envelope::bad_request(&format!(
                    "expires_in must be an integer number of seconds from {MIN_EXPIRES_IN} to {MAX_EXPIRES_IN}"
                ))
            })?,
    };
    let network = network(settings)?;
    if !network.assets.iter().any(|a| a.symbol == currency) {
        let known: Vec<&str> = network.assets.iter().map(|a| a.symbol.as_str()).collect();
        return Err(envelope::bad_request(&format!(
            "Unsupported currency: {currency} (supported: {})",
            known.join(", ")
        )));
    }
    let base_units =
        money::to_base_units(&network.name, currency, amount).map_err(|e| match e {
            HostError::Invalid(why) => envelope::bad_request(&format!("Invalid amount: {why}")),
            HostError::Unsupported(_) => {
                envelope::bad_request(&format!("Unsupported currency: {currency}"))
            }
            other => envelope::host_failure("money.to-base-units", other),
        })?;
    if base_units.bytes().all(|b| b == b'0') {
        return Err(envelope::bad_request(
            "Invalid amount: must be greater than 0",
        ));
    }
    let Some(xpub) = settings.xpub.clone() else {
        log::log(
            log::Level::Error,
            "no xpub is configured: payments cannot get addresses",
            &[],
        );
        return Err(envelope::error(
            503,
            "Service unavailable: payments are not configured",
        ));
    };
    let notify_url = callback_url
        .map(str::to_owned)
        .or_else(|| crate::merchant::Profile::of(&merchant).webhook_url);
    let invoice = invoices::create(&NewInvoice {
        merchant_order_id: Some(order_id.into()),
        price: Price::decimal(amount),
        chain: network.name.clone(),
        asset: currency.into(),
        matching: MatchStrategy::DerivedAddress(xpub),
        expires_in_secs: expires_in as u32,
        notify_url,
        return_url: None,
        plugin_data: Some(json!({ "amount": amount }).to_string()),
    })
    .map_err(|e| match e {
        HostError::Conflict(_) => {
            envelope::error(409, &format!("order_id {order_id} already exists"))
        }
        HostError::Invalid(why) => envelope::bad_request(&why),
        HostError::Unsupported(why) => envelope::bad_request(&why),
        other => envelope::host_failure("invoices.create", other),
    })?;
    let url = payment_url(
        &network,
        &invoice.asset,
        &invoice.pay_to,
        &invoice.amount_due,
    );
    Ok(ok(
        201,
        &json!({
            "payment_id": invoice.id,
            "payment_address": invoice.pay_to,
            "amount": amount,
            "currency": invoice.asset,
            "expires_at": rfc3339(invoice.expires_at),
            "qr_code": qr::data_url(&url),
            "payment_url": url,
        }),
    ))
}

/// The merchant's payment named by the path (404 for an unknown id or another
/// merchant's payment).
fn own_payment(req: &Request, settings: &Settings) -> Result<Invoice, Response> {
    crate::authenticate(req, settings)?;
    let id = req.param("id").unwrap_or_default();
    if !is_uuid(id) {
        return Err(envelope::not_found("Payment"));
    }
    invoices::get(id).map_err(|e| match e {
        HostError::NotFound | HostError::Unauthorized | HostError::Forbidden => {
            envelope::not_found("Payment")
        }
        other => envelope::host_failure("invoices.get", other),
    })
}

/// `GET /api/v1/payments/{id}`.
pub fn get(req: &Request, settings: &Settings) -> Result<Response, Response> {
    let invoice = own_payment(req, settings)?;
    Ok(ok(
        200,
        &json!({
            "payment_id": invoice.id,
            "order_id": invoice.merchant_order_id,
            "amount": amount_as_sent(&invoice),
            "currency": invoice.asset,
            "payment_address": invoice.pay_to,
            "status": status_name(invoice.status),
            "transaction_hash": invoice.txn_hash,
            "confirmations": invoice.confirmations,
            "expires_at": rfc3339(invoice.expires_at),
            "created_at": rfc3339(invoice.created_at),
            "updated_at": rfc3339(invoice.updated_at),
        }),
    ))
}

/// A positive integer query parameter within `range`, or its default.
fn number_param(
    req: &Request,
    name: &str,
    default: u32,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, Response> {
    match req.query_param(name) {
        None => Ok(default),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                envelope::bad_request(&format!(
                    "{name} must be an integer from {} to {}",
                    range.start(),
                    range.end()
                ))
            }),
    }
}

/// `GET /api/v1/payments?status=&currency=&page=&limit=`.
pub fn list(req: &Request, settings: &Settings) -> Result<Response, Response> {
    crate::authenticate(req, settings)?;
    let page = number_param(req, "page", 1, 1..=1_000_000)?;
    let limit = number_param(req, "limit", 20, 1..=100)?;
    let mut filter = invoices::any();
    if let Some(status) = req.query_param("status").filter(|s| !s.is_empty()) {
        let status = statuses_named(&status).ok_or_else(|| {
            envelope::bad_request(
                "status must be one of pending, confirmed, completed, failed, expired",
            )
        })?;
        filter.statuses = vec![status];
    }
    if let Some(currency) = req.query_param("currency").filter(|s| !s.is_empty()) {
        filter.asset = Some(currency);
    }
    let found =
        invoices::list(&filter, &PageSelector::Number(page), limit).map_err(|e| match e {
            HostError::Invalid(why) => envelope::bad_request(&why),
            other => envelope::host_failure("invoices.list", other),
        })?;
    let payments: Vec<Value> = found
        .items
        .iter()
        .map(|i| {
            json!({
                "payment_id": i.id,
                "order_id": i.merchant_order_id,
                "amount": amount_as_sent(i),
                "currency": i.asset,
                "status": status_name(i.status),
                "created_at": rfc3339(i.created_at),
            })
        })
        .collect();
    Ok(ok(
        200,
        &json!({
            "payments": payments,
            "pagination": {
                "page": page,
                "limit": limit,
                "total": found.total,
                "pages": found.pages,
            },
        }),
    ))
}

/// `GET /api/v1/payments/{id}/qrcode`: the PNG itself.
pub fn qrcode(req: &Request, settings: &Settings) -> Result<Response, Response> {
    let invoice = own_payment(req, settings)?;
    let network = chains::networks()
        .into_iter()
        .find(|n| n.name == invoice.chain)
        .ok_or_else(|| envelope::not_found("Payment"))?;
    let url = payment_url(
        &network,
        &invoice.asset,
        &invoice.pay_to,
        &invoice.amount_due,
    );
    let png = qr::png(&url).ok_or_else(|| envelope::error(500, "Internal server error"))?;
    Ok(Response::new(200)
        .header("content-type", "image/png")
        .header("cache-control", "private, max-age=300")
        .body(png))
}

#[cfg(test)]
mod tests {
    use super::*;
    use polypay_plugin_sdk::chains::AssetInfo;

    fn ethereum() -> NetworkInfo {
        NetworkInfo {
            name: "ethereum".into(),
            family: "evm".into(),
            chain_id: Some(1),
            required_confirmations: 12,
            assets: vec![
                AssetInfo {
                    symbol: "ETH".into(),
                    decimals: 18,
                    contract: None,
                },
                AssetInfo {
                    symbol: "USDT".into(),
                    decimals: 6,
                    contract: Some("0xdAC17F958D2ee523a2206206994597C13D831ec7".into()),
                },
            ],
            payment_contracts: vec![],
        }
    }

    #[test]
    fn payment_urls_follow_eip_681() {
        let to = "0x1234567890abcdef1234567890abcdef12345678";
        assert_eq!(
            payment_url(&ethereum(), "USDT", to, "99990000"),
            format!(
                "ethereum:0xdAC17F958D2ee523a2206206994597C13D831ec7@1/transfer?address={to}&uint256=99990000"
            )
        );
        assert_eq!(
            payment_url(&ethereum(), "ETH", to, "500000000000000000"),
            format!("ethereum:{to}@1?value=500000000000000000")
        );
    }

    #[test]
    fn every_host_status_has_a_name_that_filters_back_to_it() {
        for status in [
            InvoiceStatus::Pending,
            InvoiceStatus::Confirming,
            InvoiceStatus::Paid,
            InvoiceStatus::Expired,
            InvoiceStatus::Cancelled,
        ] {
            assert_eq!(statuses_named(status_name(status)), Some(status));
        }
    }
}
