//! Validation of `POST /api/web/pay-orders/store`.
//!
//! The body is JSON (as the seed shows it) or `application/x-www-form-urlencoded` (what
//! a PHP client posting the same fields sends). Integers (`fee`, `currency`,
//! `pay_currency`) are JSON integer literals or strings of digits; a fraction, an
//! exponent, a sign or anything else is refused. The first failed check is reported,
//! naming the field. Nothing is written before every check has passed.

use std::collections::BTreeMap;

use serde_json::value::RawValue;

use crate::errors;
use polypay_plugin_sdk::prelude::*;

/// Largest body this dialect reads (the host's cap is larger and answers in its own shape).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
pub const MAX_TITLE_CHARS: usize = 255;
pub const MAX_REMARK_CHARS: usize = 255;
pub const MAX_URL_CHARS: usize = 2048;
pub const MAX_SALT_CHARS: usize = 128;
/// Largest fee: ten billion in fiat units, in cents.
pub const MAX_FEE_CENTS: u64 = 1_000_000_000_000;

/// A store request that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOrder {
    pub app_id: String,
    pub salt: String,
    /// Lower-case hex of the 16-byte MD5 signature.
    pub sign: Vec<u8>,
    pub title: String,
    /// Fiat cents, > 0.
    pub fee: u64,
    /// 1 USD, 2 CNY.
    pub currency: u8,
    pub remark: String,
    pub callback_url: String,
    pub redirect_url: String,
    /// Requested pay currency, if the client named one.
    pub pay_currency: Option<u8>,
}

/// The ISO code of a dialect currency number.
pub fn fiat_code(currency: u8) -> Option<&'static str> {
    match currency {
        1 => Some("USD"),
        2 => Some("CNY"),
        _ => None,
    }
}

/// One field as received.
enum Field {
    /// A JSON value (its source text).
    Json(Box<RawValue>),
    /// A form value.
    Text(String),
}

impl Field {
    /// The field as a string, if it is one (`null` counts as absent).
    fn string(&self) -> Result<Option<String>, &'static str> {
        match self {
            Field::Text(t) => Ok(Some(t.clone())),
            Field::Json(raw) => {
                let text = raw.get().trim();
                if text == "null" {
                    return Ok(None);
                }
                serde_json::from_str::<String>(text)
                    .map(Some)
                    .map_err(|_| "必须是字符串")
            }
        }
    }

    /// The field as a non-negative integer: a JSON integer literal or a string of digits.
    fn integer(&self) -> Result<Option<u64>, &'static str> {
        let digits = match self {
            Field::Text(t) => t.trim().to_owned(),
            Field::Json(raw) => {
                let text = raw.get().trim();
                if text == "null" {
                    return Ok(None);
                }
                match serde_json::from_str::<String>(text) {
                    Ok(s) => s.trim().to_owned(),
                    Err(_) => text.to_owned(),
                }
            }
        };
        if digits.is_empty() {
            return Ok(None);
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("必须是整数");
        }
        digits.parse().map(Some).map_err(|_| "超出范围")
    }
}

fn fields(req: &Request) -> Result<BTreeMap<String, Field>, Response> {
    if req.body.len() > MAX_BODY_BYTES {
        return Err(errors::error(413, "请求体过大"));
    }
    let form = req.header("content-type").is_some_and(|c| {
        c.to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    if form {
        let mut map = BTreeMap::new();
        for (k, v) in req.form_pairs() {
            map.entry(k).or_insert(Field::Text(v));
        }
        return Ok(map);
    }
    let parsed: BTreeMap<String, Box<RawValue>> =
        serde_json::from_slice(&req.body).map_err(|_| errors::invalid("请求体必须是 JSON 对象"))?;
    Ok(parsed
        .into_iter()
        .map(|(k, v)| (k, Field::Json(v)))
        .collect())
}

fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| {
        !r.is_empty()
            && !r.starts_with('/')
            && !url.chars().any(|c| c.is_whitespace() || c.is_control())
    })
}

/// Decodes 32 hex digits (either case) into 16 bytes.
fn md5_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 32 {
        return None;
    }
    (0..16)
        .map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// Checks a store body.
pub fn parse(req: &Request) -> Result<StoreOrder, Response> {
    let fields = fields(req)?;
    let text = |key: &str, required: bool, max: usize| -> Result<String, Response> {
        let value = match fields.get(key).map(Field::string) {
            None | Some(Ok(None)) => None,
            Some(Ok(Some(v))) => Some(v),
            Some(Err(why)) => return Err(errors::invalid(format!("{key} {why}"))),
        };
        match value {
            None if required => Err(errors::invalid(format!("{key} 不能为空"))),
            Some(v) if required && v.trim().is_empty() => {
                Err(errors::invalid(format!("{key} 不能为空")))
            }
            Some(v) if v.chars().count() > max => {
                Err(errors::invalid(format!("{key} 不能超过 {max} 个字符")))
            }
            v => Ok(v.unwrap_or_default()),
        }
    };
    let integer = |key: &str, required: bool| -> Result<Option<u64>, Response> {
        match fields.get(key).map(Field::integer) {
            None | Some(Ok(None)) if required => Err(errors::invalid(format!("{key} 不能为空"))),
            None | Some(Ok(None)) => Ok(None),
            Some(Ok(Some(v))) => Ok(Some(v)),
            Some(Err(why)) => Err(errors::invalid(format!("{key} {why}"))),
        }
    };
    let app_id = text("app_id", true, 128)?;
    let salt = text("salt", true, MAX_SALT_CHARS)?;
    let sign_text = text("sign", true, 64)?;
    let sign =
        md5_hex(&sign_text).ok_or_else(|| errors::invalid("sign 必须是 32 位十六进制字符串"))?;
    let title = text("title", true, MAX_TITLE_CHARS)?;
    let fee = integer("fee", true)?.unwrap_or_default();
    if fee == 0 {
        return Err(errors::invalid("fee 必须大于 0"));
    }
    if fee > MAX_FEE_CENTS {
        return Err(errors::invalid("fee 超出范围"));
    }
    let currency = integer("currency", true)?.unwrap_or_default();
    let currency = u8::try_from(currency)
        .ok()
        .filter(|c| fiat_code(*c).is_some())
        .ok_or_else(|| errors::invalid("currency 不支持：1 USD，2 CNY"))?;
    let remark = text("remark", false, MAX_REMARK_CHARS)?;
    let callback_url = text("callback_url", false, MAX_URL_CHARS)?;
    let redirect_url = text("redirect_url", false, MAX_URL_CHARS)?;
    for (key, url) in [
        ("callback_url", &callback_url),
        ("redirect_url", &redirect_url),
    ] {
        if !url.is_empty() && !is_http_url(url) {
            return Err(errors::invalid(format!("{key} 必须是 http(s) 地址")));
        }
    }
    let pay_currency = match integer("pay_currency", false)? {
        None => None,
        Some(code) => Some(u8::try_from(code).map_err(|_| errors::invalid("pay_currency 不支持"))?),
    };
    Ok(StoreOrder {
        app_id,
        salt,
        sign,
        title,
        fee,
        currency,
        remark,
        callback_url,
        redirect_url,
        pay_currency,
    })
}

/// The fiat amount of `cents` as a decimal string ("20.00").
pub fn cents_to_decimal(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cents_format_exactly() {
        assert_eq!(cents_to_decimal(2000), "20.00");
        assert_eq!(cents_to_decimal(1), "0.01");
        assert_eq!(cents_to_decimal(123456), "1234.56");
    }

    #[test]
    fn signs_are_32_hex_digits() {
        assert_eq!(
            md5_hex("00ff00ff00ff00ff00ff00ff00ff00FF").unwrap()[15],
            0xff
        );
        assert!(md5_hex("00ff").is_none());
        assert!(md5_hex("zzff00ff00ff00ff00ff00ff00ff00ff").is_none());
        assert!(md5_hex("é0ff00ff00ff00ff00ff00ff00ff00f").is_none());
    }
}
