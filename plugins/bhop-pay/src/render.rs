//! Orders in the seed's shape: every field name and type as its examples (ids, amounts
//! and times as strings).

use polypay_plugin_sdk::kv;
use polypay_plugin_sdk::ledger::{Order, OrderItem, PayType};
use serde_json::{Value, json};

use crate::status;

/// Whether an order was invalidated by three failed verifications.
pub fn invalidated(order_id: &str) -> bool {
    matches!(kv::get(&invalid_key(order_id)), Ok(Some(_)))
}

/// Marks an order invalidated (before it is cancelled in the ledger).
pub fn mark_invalidated(order_id: &str) -> Result<(), polypay_plugin_sdk::HostError> {
    kv::set(&invalid_key(order_id), b"1", None)
}

fn invalid_key(order_id: &str) -> String {
    format!("invalid:{order_id}")
}

pub fn pay_type(t: PayType) -> &'static str {
    match t {
        PayType::Pay => "PAY",
        PayType::Prepay => "PREPAY",
    }
}

fn item(i: &OrderItem) -> Value {
    json!({
        "itemId": i.id,
        "payType": pay_type(i.pay_type),
        "tokenId": i.asset,
        "amount": i.amount_decimal,
        "paidAmount": i.paid_decimal,
        "refundedAmount": i.refunded_decimal,
        "unlockedAmount": i.unlocked_decimal,
    })
}

/// The dialect's (code, name, description) of an order.
pub fn status_of(order: &Order) -> (u8, &'static str, &'static str) {
    status::of(order.status, invalidated(&order.id))
}

/// An order as the seed shows it.
pub fn order(order: &Order) -> Value {
    let data: Value = serde_json::from_str(&order.plugin_data).unwrap_or(Value::Null);
    let (_, name, desc) = status_of(order);
    json!({
        "orderId": order.id,
        "clientOrderId": order.client_order_id,
        "payerUserId": order.payer_user_id,
        "payeeUserId": order.payee_user_id,
        "isMapping": data["isMapping"].as_bool().unwrap_or(true),
        "payInfo": order.items.iter().map(item).collect::<Vec<_>>(),
        "productInfo": data.get("productInfo").cloned().unwrap_or_else(|| json!([])),
        "status": name,
        "statusDesc": desc,
        "expired": order.expires_at.to_string(),
        "desc": data["desc"].as_str().unwrap_or_default(),
        "extendInfo": data["extendInfo"].as_str().unwrap_or_default(),
        "created": order.created_at.to_string(),
        "updated": order.updated_at.to_string(),
    })
}

/// `186****0001`: the first three and last four digits.
pub fn mask_mobile(mobile: &str) -> String {
    let chars: Vec<char> = mobile.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

/// `z********n@163.com`: the first and last character of the local part.
pub fn mask_email(email: &str) -> String {
    let Some((local, domain)) = email.split_once('@') else {
        return "*".repeat(email.chars().count());
    };
    let chars: Vec<char> = local.chars().collect();
    let masked = match chars.len() {
        0 => String::new(),
        1 | 2 => "*".repeat(chars.len()),
        n => format!("{}{}{}", chars[0], "*".repeat(n - 2), chars[n - 1]),
    };
    format!("{masked}@{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_as_the_seed_shows() {
        assert_eq!(mask_mobile("18600000001"), "186****0001");
        assert_eq!(mask_email("zhangsan@163.com"), "z******n@163.com");
        assert_eq!(mask_email("zhangsann1@163.com"), "z********1@163.com");
    }
}
