//! The org API (DIALECTS.md): create, list, detail, refund and cancel orders, plus the
//! user registration this deployment needs (`user/create`, an addition). Every request is
//! signed with the org's `api-key` ([`crate::auth`]); an org sees only orders payable to it.

use polypay_plugin_sdk::ledger::{self, ItemAmount, NewOrder, NewOrderItem, NewUser, PayType};
use polypay_plugin_sdk::merchants::{CredentialRequest, SecretEncoding, SecretFormat};
use polypay_plugin_sdk::{Request, Response, clock, merchants, random, two_factor};
use serde_json::{Value, json};

use crate::auth::{self, Signed};
use crate::error::{ApiError, ApiResult, org_ok, respond};
use crate::{ORG_KEY_KIND, USER_KEY_KIND, render};

/// Default order lifetime, seconds.
pub const DEFAULT_EFFECTIVE_TIME: i64 = 600;

fn signed(req: &Request) -> ApiResult<Signed> {
    auth::verify(req, ORG_KEY_KIND)
}

/// The org's payee user (created on first use).
fn payee(signed: &Signed) -> ApiResult<String> {
    let merchant = &signed.credential.merchant_id;
    match ledger::merchant_user(merchant) {
        Ok(user) => Ok(user.id),
        Err(polypay_plugin_sdk::HostError::NotFound) => Ok(ledger::create_user(&NewUser {
            merchant_id: Some(merchant.clone()),
            contact: ledger::Contact {
                national_code: None,
                mobile: None,
                email: None,
            },
            plugin_data: None,
        })?
        .id),
        Err(e) => Err(e.into()),
    }
}

fn bounded<'a>(signed: &'a Signed, name: &str, max: usize) -> ApiResult<Option<&'a str>> {
    match signed.get(name) {
        Some(v) if v.chars().count() > max => Err(ApiError::invalid(format!(
            "'{name}' is longer than {max} characters."
        ))),
        other => Ok(other),
    }
}

fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `pay_info`: `[{pay_type: PAY|PREPAY, token_id, amount}]` (camelCase accepted too).
fn pay_items(text: &str) -> ApiResult<Vec<NewOrderItem>> {
    let items: Vec<Value> = serde_json::from_str(text)
        .map_err(|_| ApiError::invalid("'pay_info' must be a JSON array."))?;
    if items.is_empty() || items.len() > 20 {
        return Err(ApiError::invalid("'pay_info' holds 1 to 20 items."));
    }
    items
        .iter()
        .map(|item| {
            let field = |a: &str, b: &str| item.get(a).or_else(|| item.get(b));
            let pay_type = match field("pay_type", "payType").and_then(Value::as_str) {
                Some("PAY") => PayType::Pay,
                Some("PREPAY") => PayType::Prepay,
                _ => return Err(ApiError::invalid("'pay_type' must be PAY or PREPAY.")),
            };
            let token = field("token_id", "tokenId")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::missing("token_id"))?;
            let amount = field("amount", "amount")
                .and_then(text_of)
                .ok_or_else(|| ApiError::missing("amount"))?;
            let chain = crate::network_of(token)
                .ok_or_else(|| ApiError::invalid(format!("Unsupported token '{token}'.")))?;
            Ok(NewOrderItem {
                pay_type,
                chain,
                asset: token.to_string(),
                amount,
            })
        })
        .collect()
}

/// `product_info`, rendered in the seed's item shape.
fn product_items(text: Option<&str>) -> ApiResult<Value> {
    let Some(text) = text else {
        return Ok(json!([]));
    };
    let items: Vec<Value> = serde_json::from_str(text)
        .map_err(|_| ApiError::invalid("'product_info' must be a JSON array."))?;
    let rendered = items
        .iter()
        .map(|item| {
            let field = |a: &str, b: &str| item.get(a).or_else(|| item.get(b)).and_then(text_of);
            let id = u64::from_le_bytes(random::bytes(8).try_into().unwrap_or([1; 8])) >> 1;
            json!({
                "itemId": id.to_string(),
                "payType": field("pay_type", "payType").unwrap_or_else(|| "PAY".into()),
                "tokenId": field("token_id", "tokenId").unwrap_or_default(),
                "amount": field("amount", "amount").unwrap_or_else(|| "0".into()),
                "paidAmount": "0",
                "refundedAmount": "0",
                "unlockedAmount": "0",
            })
        })
        .collect();
    Ok(Value::Array(rendered))
}

pub fn create(req: &Request) -> Response {
    respond((|| {
        let s = signed(req)?;
        let client_order_id = s.required("client_order_id")?;
        if client_order_id.chars().count() > 32 {
            return Err(ApiError::invalid(
                "'client_order_id' is at most 32 characters.",
            ));
        }
        let payer = s.required("payer_user_id")?;
        let items = pay_items(s.required("pay_info")?)?;
        let product = product_items(s.get("product_info"))?;
        let effective: i64 = match s.get("effective_time") {
            None => DEFAULT_EFFECTIVE_TIME,
            Some(t) => t
                .parse()
                .ok()
                .filter(|t| (1..=30 * 86_400).contains(t))
                .ok_or_else(|| {
                    ApiError::invalid("'effective_time' must be 1 to 2592000 seconds.")
                })?,
        };
        let desc = bounded(&s, "desc", 200)?.unwrap_or_default();
        let extend = bounded(&s, "extend_info", 500)?.unwrap_or_default();
        let payee = payee(&s)?;
        let order = ledger::create_order(&NewOrder {
            payer_user_id: payer.to_string(),
            payee_user_id: payee,
            client_order_id: client_order_id.to_string(),
            items,
            expires_at: clock::now() + effective * 1000,
            notify_url: s.get("notify_url").map(str::to_string),
            plugin_data: Some(
                json!({ "desc": desc, "extendInfo": extend, "productInfo": product, "isMapping": true })
                    .to_string(),
            ),
        })?;
        Ok(org_ok(render::order(&order)))
    })())
}

/// The org's order named by `order_id` or `client_order_id`.
fn own_order(s: &Signed) -> ApiResult<ledger::Order> {
    let payee = payee(s)?;
    let order = match (s.get("order_id"), s.get("client_order_id")) {
        (Some(id), _) => ledger::get_order(id)?,
        (None, Some(client)) => ledger::find_order(&payee, client)?,
        (None, None) => return Err(ApiError::missing("order_id")),
    };
    if order.payee_user_id != payee {
        return Err(ApiError::order_not_found());
    }
    Ok(order)
}

pub fn orders(req: &Request) -> Response {
    respond((|| {
        let s = signed(req)?;
        let payee = payee(&s)?;
        let found = crate::user::list(&s, None, Some(payee))?;
        Ok(org_ok(Value::Array(found)))
    })())
}

pub fn detail(req: &Request) -> Response {
    respond((|| {
        let s = signed(req)?;
        Ok(org_ok(render::order(&own_order(&s)?)))
    })())
}

pub fn refund(req: &Request) -> Response {
    respond((|| {
        let s = signed(req)?;
        let order = own_order(&s)?;
        let amount = s.required("amount")?;
        let item_id = match s.get("item_id") {
            Some(id) => id.to_string(),
            None => order
                .items
                .first()
                .map(|i| i.id.clone())
                .ok_or_else(ApiError::order_not_found)?,
        };
        let order = ledger::refund(
            &order.id,
            &[ItemAmount {
                item_id,
                amount: amount.to_string(),
            }],
        )?;
        Ok(org_ok(render::order(&order)))
    })())
}

pub fn cancel(req: &Request) -> Response {
    respond((|| {
        let s = signed(req)?;
        let order = own_order(&s)?;
        Ok(org_ok(render::order(&ledger::cancel(&order.id)?)))
    })())
}

/// Registers a user of the exchange: its contact, a user API key (shown once) and, with
/// `bind_ga=true`, a GA seed (its `otpauth://` URI, shown once).
pub fn create_user(req: &Request) -> Response {
    respond((|| {
        let s = signed(req)?;
        let contact = ledger::Contact {
            national_code: s.get("national_code").map(str::to_string),
            mobile: s.get("mobile").map(str::to_string),
            email: s.get("email").map(str::to_string),
        };
        let user = ledger::create_user(&NewUser {
            merchant_id: None,
            contact,
            plugin_data: None,
        })?;
        let access_key = polypay_plugin_sdk::hex(&random::bytes(16));
        let issued = merchants::issue_credential(
            &s.credential.merchant_id,
            &CredentialRequest {
                kind: USER_KEY_KIND.into(),
                public_id: Some(access_key.clone()),
                format: SecretFormat {
                    prefix: String::new(),
                    encoding: SecretEncoding::Alphanumeric,
                    bytes: 48,
                },
            },
        )?;
        crate::user::remember_key(&issued.credential.id, &user.id)?;
        let ga = if s.get("bind_ga") == Some("true") {
            let issuer = crate::settings().issuer.unwrap_or_else(|| "polypay".into());
            Some(two_factor::enrol_totp(&user.id, &issuer, &user.id)?)
        } else {
            None
        };
        Ok(org_ok(json!({
            "userId": user.id,
            "apiKey": access_key,
            "secretKey": issued.secret,
            "gaUri": ga,
        })))
    })())
}
