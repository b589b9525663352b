//! Reading `POST /initiate_payment.php`: the body's fields, checked in the dialect's
//! words, before anything touches storage.
//!
//! `amount` is a JSON number in TRX or USDT (`0.1`). Its literal text is taken as it stands
//! in the body (never through a float) and handed to the host, which converts it with the
//! asset's decimals or refuses it (more than 6 decimals, an exponent). The plugin itself only
//! tells the kinds of wrong apart: not a number, not above zero, not representable.

use serde_json::value::RawValue;
use std::collections::HashMap;

/// The currencies of the dialect, as the asset symbols of the TRON network.
pub const CURRENCIES: [&str; 2] = ["TRX", "USDT"];
/// Longest order id accepted.
pub const MAX_ORDER_ID_CHARS: usize = 64;
/// Longest description accepted.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;

/// A request whose fields passed every check that needs no host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initiate {
    /// The JSON number's literal text, e.g. `0.1`; not yet converted.
    pub amount: String,
    /// `TRX` or `USDT`.
    pub currency: &'static str,
    pub order_id: Option<String>,
    pub api_key: Option<String>,
    pub description: String,
}

/// Why a body was refused; each is a 400 with its dialect message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NotJson,
    Missing(&'static str),
    AmountNotANumber,
    AmountNotPositive,
    UnsupportedCurrency,
    NotAString(&'static str),
    TooLong(&'static str, usize),
    BadOrderId,
}

impl Refusal {
    /// The `error` text of the dialect's answer.
    pub fn message(&self) -> String {
        match self {
            Refusal::NotJson => "无效的JSON数据".into(),
            Refusal::Missing(field) => format!("缺少必需字段: {field}"),
            Refusal::AmountNotANumber => "金额必须是数字".into(),
            Refusal::AmountNotPositive => "金额必须大于0".into(),
            Refusal::UnsupportedCurrency => {
                format!("不支持的货币类型, 支持: {}", CURRENCIES.join(", "))
            }
            Refusal::NotAString(field) => format!("{field} 必须是字符串"),
            Refusal::TooLong(field, max) => format!("{field} 长度不能超过 {max} 个字符"),
            Refusal::BadOrderId => "订单ID只能包含可见字符, 不能包含空格".into(),
        }
    }
}

/// Checks an initiate body.
pub fn parse(body: &[u8]) -> Result<Initiate, Refusal> {
    let fields: HashMap<String, Box<RawValue>> =
        serde_json::from_slice(body).map_err(|_| Refusal::NotJson)?;
    let amount = match fields.get("amount").map(|raw| raw.get()) {
        None | Some("null") => return Err(Refusal::Missing("amount")),
        Some(raw) => amount_literal(raw)?,
    };
    let currency = match fields.get("currency").map(|raw| raw.get()) {
        None | Some("null") => return Err(Refusal::Missing("currency")),
        Some(raw) => {
            let text: String =
                serde_json::from_str(raw).map_err(|_| Refusal::UnsupportedCurrency)?;
            CURRENCIES
                .into_iter()
                .find(|c| c.eq_ignore_ascii_case(text.trim()))
                .ok_or(Refusal::UnsupportedCurrency)?
        }
    };
    let order_id = match optional_text(&fields, "order_id", MAX_ORDER_ID_CHARS, true)? {
        Some(id) if id.is_empty() => None,
        Some(id) if !is_order_id(&id) => return Err(Refusal::BadOrderId),
        other => other,
    };
    let api_key = optional_text(&fields, "api_key", 256, false)?.filter(|k| !k.is_empty());
    let description =
        optional_text(&fields, "description", MAX_DESCRIPTION_CHARS, false)?.unwrap_or_default();
    Ok(Initiate {
        amount,
        currency,
        order_id,
        api_key,
        description,
    })
}

/// What an order id may be: 1 to 64 visible ASCII characters.
pub fn is_order_id(id: &str) -> bool {
    (1..=MAX_ORDER_ID_CHARS).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The literal of a JSON number greater than zero, as written. Strings, booleans and
/// other values are not numbers (`"0.1"` included: the seed's clients send numbers).
fn amount_literal(raw: &str) -> Result<String, Refusal> {
    serde_json::from_str::<serde_json::Number>(raw).map_err(|_| Refusal::AmountNotANumber)?;
    let literal = raw.trim();
    if literal.starts_with('-') {
        return Err(Refusal::AmountNotPositive);
    }
    // Zero in any spelling (`0`, `0.0`, `0e5`): no digit other than 0 in the mantissa.
    let mantissa = literal.split(['e', 'E']).next().unwrap_or_default();
    if !mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
        return Err(Refusal::AmountNotPositive);
    }
    Ok(literal.to_owned())
}

/// An optional string field, trimmed; `integers` also takes a JSON integer as its digits
/// (order ids are often numbers in a merchant's code).
fn optional_text(
    fields: &HashMap<String, Box<RawValue>>,
    key: &'static str,
    max_chars: usize,
    integers: bool,
) -> Result<Option<String>, Refusal> {
    let Some(raw) = fields.get(key).map(|raw| raw.get()) else {
        return Ok(None);
    };
    if raw == "null" {
        return Ok(None);
    }
    let text = match serde_json::from_str::<String>(raw) {
        Ok(text) => text.trim().to_owned(),
        Err(_) if integers && !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) => {
            raw.to_owned()
        }
        Err(_) => return Err(Refusal::NotAString(key)),
    };
    if text.chars().count() > max_chars {
        return Err(Refusal::TooLong(key, max_chars));
    }
    Ok(Some(text))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// The seed's request example.
    pub(crate) fn seed_request() -> serde_json::Value {
        json!({
            "amount": 0.1,
            "currency": "TRX",
            "api_key": "your_api_key_here",
            "order_id": "123456789",
            "description": "商品购买"
        })
    }

    fn with_amount(literal: &str) -> Result<Initiate, Refusal> {
        parse(format!(r#"{{"amount": {literal}, "currency": "TRX"}}"#).as_bytes())
    }

    #[test]
    fn the_seed_request_passes_with_the_amounts_literal_text() {
        let parsed = parse(seed_request().to_string().as_bytes()).unwrap();
        assert_eq!(
            parsed,
            Initiate {
                amount: "0.1".into(),
                currency: "TRX",
                order_id: Some("123456789".into()),
                api_key: Some("your_api_key_here".into()),
                description: "商品购买".into(),
            }
        );
    }

    #[test]
    fn amount_literals_are_kept_exactly_as_written() {
        for literal in [
            "0.1",
            "0.10",
            "25",
            "0.0000001",
            "12345678901234567890.123456",
            "1e3",
        ] {
            assert_eq!(with_amount(literal).unwrap().amount, literal);
        }
    }

    #[test]
    fn amounts_that_are_not_positive_numbers_are_refused() {
        for (literal, refusal) in [
            ("0", Refusal::AmountNotPositive),
            ("0.000", Refusal::AmountNotPositive),
            ("0e10", Refusal::AmountNotPositive),
            ("-0.1", Refusal::AmountNotPositive),
            ("-0", Refusal::AmountNotPositive),
            ("\"0.1\"", Refusal::AmountNotANumber),
            ("\"NaN\"", Refusal::AmountNotANumber),
            ("true", Refusal::AmountNotANumber),
            ("[1]", Refusal::AmountNotANumber),
            ("null", Refusal::Missing("amount")),
        ] {
            assert_eq!(with_amount(literal), Err(refusal), "{literal}");
        }
        // NaN and Infinity are not JSON at all.
        assert_eq!(with_amount("NaN"), Err(Refusal::NotJson));
        assert_eq!(with_amount("Infinity"), Err(Refusal::NotJson));
    }

    #[test]
    fn currencies_are_trx_and_usdt_only() {
        let currency = |c: serde_json::Value| {
            parse(json!({"amount": 1, "currency": c}).to_string().as_bytes())
        };
        assert_eq!(currency(json!("usdt")).unwrap().currency, "USDT");
        assert_eq!(currency(json!("ETH")), Err(Refusal::UnsupportedCurrency));
        assert_eq!(currency(json!(1)), Err(Refusal::UnsupportedCurrency));
        assert_eq!(
            parse(br#"{"amount": 1}"#),
            Err(Refusal::Missing("currency"))
        );
        assert_eq!(
            parse(br#"{"currency": "TRX"}"#),
            Err(Refusal::Missing("amount"))
        );
    }

    #[test]
    fn order_ids_are_visible_text_or_integers() {
        let order = |o: serde_json::Value| {
            parse(
                json!({"amount": 1, "currency": "TRX", "order_id": o})
                    .to_string()
                    .as_bytes(),
            )
            .map(|i| i.order_id)
        };
        assert_eq!(order(json!("ORD-1")), Ok(Some("ORD-1".into())));
        assert_eq!(order(json!(123456789)), Ok(Some("123456789".into())));
        assert_eq!(order(json!("")), Ok(None));
        assert_eq!(order(json!("a b")), Err(Refusal::BadOrderId));
        assert_eq!(order(json!(1.5)), Err(Refusal::NotAString("order_id")));
        assert_eq!(
            order(json!("x".repeat(65))),
            Err(Refusal::TooLong("order_id", 64))
        );
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_refused() {
        assert_eq!(parse(b"amount=1"), Err(Refusal::NotJson));
        assert_eq!(parse(b"[1]"), Err(Refusal::NotJson));
        assert_eq!(parse(b""), Err(Refusal::NotJson));
    }
}
