//! The user API, one handler per endpoint of the seed. Requests are signed with the
//! user's key ([`crate::auth`]); a user sees and pays only orders it is the payer of.

use polypay_plugin_sdk::ledger::{self, Order, OrderFilter};
use polypay_plugin_sdk::two_factor::{self, Channel, Verification};
use polypay_plugin_sdk::{HostError, Request, Response, clock, kv};
use serde_json::{Value, json};

use crate::auth::{self, Signed};
use crate::error::{ApiError, ApiResult, respond, user_ok};
use crate::{USER_KEY_KIND, render, status};

fn key_entry(credential_id: &str) -> String {
    format!("user-key:{credential_id}")
}

/// Remembers which user a user key names.
pub fn remember_key(credential_id: &str, user_id: &str) -> Result<(), HostError> {
    kv::set(&key_entry(credential_id), user_id.as_bytes(), None)
}

/// The signed request and the user it acts as.
fn signed(req: &Request) -> ApiResult<(Signed, String)> {
    let s = auth::verify(req, USER_KEY_KIND)?;
    let user = kv::get(&key_entry(&s.credential.id))?
        .and_then(|v| String::from_utf8(v).ok())
        .ok_or_else(|| ApiError::unauthorized("Unknown user key."))?;
    Ok((s, user))
}

fn number<T: std::str::FromStr>(s: &Signed, name: &str) -> ApiResult<Option<T>> {
    s.get(name)
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::invalid(format!("'{name}' must be a number.")))
        })
        .transpose()
}

/// Orders matching the list parameters (`status`, `from_id`, `to_id`, `start_time`,
/// `end_time` inclusive, `limit` default 20, at most 100) of a payer or a payee.
pub fn list(s: &Signed, payer: Option<String>, payee: Option<String>) -> ApiResult<Vec<Value>> {
    let limit: u32 = number(s, "limit")?.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid("'limit' must be 1 to 100."));
    }
    let wanted = s.get("status");
    let statuses = match wanted {
        None => Vec::new(),
        Some(code) => {
            status::filter(code).ok_or_else(|| ApiError::invalid("'status' must be 0 to 4."))?
        }
    };
    let id = |name: &str| -> ApiResult<Option<String>> {
        Ok(number::<u64>(s, name)?.map(|n| n.to_string()))
    };
    let filter = OrderFilter {
        payer_user_id: payer,
        payee_user_id: payee,
        statuses,
        min_id: id("from_id")?,
        max_id: id("to_id")?,
        created_from: number(s, "start_time")?,
        created_to: number(s, "end_time")?,
    };
    // EXPIRED also covers invalidated (cancelled) orders: fetch more, keep the code asked.
    let orders = ledger::list_orders(&filter, limit.saturating_mul(2).min(1000))?;
    Ok(orders
        .iter()
        .filter(|o| wanted.is_none_or(|w| render::status_of(o).0.to_string() == w))
        .take(limit as usize)
        .map(render::order)
        .collect())
}

/// The user's order named by `order_id`.
fn payers_order(s: &Signed, user: &str) -> ApiResult<Order> {
    let order = ledger::get_order(s.required("order_id")?)?;
    if order.payer_user_id != user {
        return Err(ApiError::order_not_found());
    }
    Ok(order)
}

/// GA when the user has a TOTP seed, else MOBILE, else EMAIL.
fn auth_type(user: &ledger::User) -> ApiResult<&'static str> {
    if two_factor::has_totp(&user.id)? {
        Ok("GA")
    } else if user.contact.mobile.is_some() {
        Ok("MOBILE")
    } else if user.contact.email.is_some() {
        Ok("EMAIL")
    } else {
        Err(ApiError::no_second_factor())
    }
}

pub fn orders(req: &Request) -> Response {
    respond((|| {
        let (s, user) = signed(req)?;
        Ok(user_ok(Value::Array(list(&s, Some(user), None)?)))
    })())
}

pub fn load_pay_data(req: &Request) -> Response {
    respond((|| {
        let (s, user_id) = signed(req)?;
        let order = payers_order(&s, &user_id)?;
        let user = ledger::get_user(&user_id)?;
        let bind_ga = two_factor::has_totp(&user_id)?;
        let contact = &user.contact;
        let user_info = json!({
            "userId": user.id,
            "registerType": if contact.mobile.is_some() { 1 } else { 2 },
            "mobile": contact.mobile.as_deref().map(render::mask_mobile).unwrap_or_default(),
            "nationalCode": contact.national_code.clone().unwrap_or_default(),
            "email": contact.email.as_deref().map(render::mask_email).unwrap_or_default(),
            "bindGA": bind_ga,
            "bindTradePwd": false,
            "userType": 1,
            "verifyStatus": 0,
            "source": "",
        });
        Ok(user_ok(json!({
            "orderInfo": render::order(&order),
            "userInfo": user_info,
            "need2FA": true,
            "authType": auth_type(&user)?,
        })))
    })())
}

pub fn send_payment_verify_code(req: &Request) -> Response {
    respond((|| {
        let (s, user_id) = signed(req)?;
        let order = payable(&s, &user_id)?;
        let user = ledger::get_user(&user_id)?;
        let contact = &user.contact;
        let (channel, destination) = match auth_type(&user)? {
            "MOBILE" => (
                Channel::Mobile,
                format!(
                    "+{}{}",
                    contact.national_code.as_deref().unwrap_or_default(),
                    contact.mobile.as_deref().unwrap_or_default()
                ),
            ),
            "EMAIL" => (Channel::Email, contact.email.clone().unwrap_or_default()),
            _ => {
                return Err(ApiError::invalid(
                    "authType is GA: no verify code is sent, use the authenticator's code.",
                ));
            }
        };
        let challenge = two_factor::send_code(&user_id, &order.id, channel, &destination).map_err(
            |e| match e {
                HostError::Conflict(_) => ApiError::verify_exhausted(),
                other => other.into(),
            },
        )?;
        Ok(user_ok(json!({ "orderId": challenge })))
    })())
}

/// The user's order, still payable: waiting, not expired, not invalidated.
fn payable(s: &Signed, user: &str) -> ApiResult<Order> {
    let order = payers_order(s, user)?;
    if render::invalidated(&order.id) {
        return Err(ApiError::verify_exhausted());
    }
    if order.status != ledger::OrderStatus::Waiting {
        return Err(ApiError::from_host(HostError::Conflict(
            "status: the order is not waiting for payment".into(),
        )));
    }
    if order.expires_at <= clock::now() {
        return Err(ApiError::from_host(HostError::Conflict(
            "expired: the order has expired".into(),
        )));
    }
    Ok(order)
}

/// Checks the second factor for paying `order`; three failures invalidate the order.
fn confirm(s: &Signed, user_id: &str, order: &Order, code: &str) -> ApiResult<()> {
    let user = ledger::get_user(user_id)?;
    let verdict = match auth_type(&user)? {
        "GA" => two_factor::verify_totp(user_id, &order.id, code)?,
        _ => {
            let challenge = s
                .get("verify_code_order_id")
                .filter(|c| *c != "0")
                .ok_or_else(|| ApiError::missing("verify_code_order_id"))?;
            two_factor::verify_code(user_id, &order.id, challenge, code)?
        }
    };
    match verdict {
        Verification::Accepted => Ok(()),
        Verification::Rejected(remaining) => Err(ApiError::verify_code_error(remaining)),
        Verification::Exhausted => {
            render::mark_invalidated(&order.id)?;
            // Releases whatever the order holds; an order already ended stays as it is.
            let _ = ledger::cancel(&order.id);
            Err(ApiError::verify_exhausted())
        }
    }
}

pub fn pay(req: &Request) -> Response {
    respond((|| {
        let (s, user_id) = signed(req)?;
        let order = payable(&s, &user_id)?;
        confirm(&s, &user_id, &order, s.required("verify_code")?)?;
        let paid = ledger::pay(&order.id)?;
        Ok(user_ok(render::order(&paid)))
    })())
}

pub fn quick_pay(req: &Request) -> Response {
    respond((|| {
        let (s, user_id) = signed(req)?;
        let order = payable(&s, &user_id)?;
        let Some(code) = s.get("verify_code") else {
            return Ok(user_ok(
                json!({ "processIsEnd": "false", "need2FA": "true" }),
            ));
        };
        confirm(&s, &user_id, &order, code)?;
        let paid = ledger::pay(&order.id)?;
        let ended = paid.status == ledger::OrderStatus::Completed;
        Ok(user_ok(json!({
            "processIsEnd": ended.to_string(),
            "need2FA": "false",
        })))
    })())
}
