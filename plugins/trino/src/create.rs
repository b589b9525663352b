//! Validation of `POST /api/v1/invoices/create`.
//!
//! Every field is required; all failed checks are reported together, each worded like the
//! original validator (`amount in body must be of type integer: "string"`). The amount is
//! read from the raw JSON number so that token amounts beyond 2^64 base units (18-decimal
//! tokens) stay exact: it is never parsed into a float.

use crate::errors::FieldError;
use serde_json::value::RawValue;
use std::collections::HashMap;

/// A create request that passed every field check (the recipient's and the network's
/// meaning are checked against the host afterwards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateInvoice {
    /// Base units as decimal digits, no leading zeros, greater than zero.
    pub amount: String,
    pub jump_url: String,
    pub metadata: String,
    pub network: String,
    pub notify_url: String,
    pub recipient: String,
    pub title: String,
}

pub const MAX_TITLE_CHARS: usize = 256;
pub const MAX_METADATA_CHARS: usize = 512;
pub const MAX_URL_CHARS: usize = 2048;

/// Why a body was refused: not a JSON object at all, or failed field checks.
#[derive(Debug)]
pub enum Refusal {
    NotAnObject(String),
    Fields(Vec<FieldError>),
}

/// Checks a create body.
pub fn parse(body: &[u8]) -> Result<CreateInvoice, Refusal> {
    let fields: HashMap<String, Box<RawValue>> = serde_json::from_slice(body)
        .map_err(|e| Refusal::NotAnObject(format!("the body must be a JSON object: {e}")))?;
    let mut errors = Vec::new();
    let mut text = |key: &str, min: usize, max: usize| -> String {
        let Some(raw) = fields.get(key) else {
            errors.push(FieldError::body(key, format!("{key} in body is required")));
            return String::new();
        };
        let Ok(value) = serde_json::from_str::<String>(raw.get()) else {
            errors.push(FieldError::body(
                key,
                format!(
                    "{key} in body must be of type string: \"{}\"",
                    json_type(raw.get())
                ),
            ));
            return String::new();
        };
        let chars = value.chars().count();
        if chars < min {
            errors.push(FieldError::body(
                key,
                format!("{key} in body should be at least {min} chars long"),
            ));
        } else if chars > max {
            errors.push(FieldError::body(
                key,
                format!("{key} in body should be at most {max} chars long"),
            ));
        }
        value
    };
    let title = text("title", 1, MAX_TITLE_CHARS);
    let network = text("network", 1, 64);
    let recipient = text("recipient", 1, 128);
    let jump_url = text("jump_url", 1, MAX_URL_CHARS);
    let notify_url = text("notify_url", 1, MAX_URL_CHARS);
    let metadata = text("metadata", 0, MAX_METADATA_CHARS);
    for (key, url) in [("jump_url", &jump_url), ("notify_url", &notify_url)] {
        if !url.is_empty() && !is_http_url(url) {
            errors.push(FieldError::body(
                key,
                format!("{key} in body must be of type uri: \"{url}\""),
            ));
        }
    }
    let amount = match fields.get("amount") {
        None => {
            errors.push(FieldError::body(
                "amount",
                "amount in body is required".into(),
            ));
            String::new()
        }
        Some(raw) => match integer_literal(raw.get()) {
            Some("0") => {
                errors.push(FieldError::body(
                    "amount",
                    "amount in body should be greater than or equal to 1".into(),
                ));
                String::new()
            }
            Some(digits) => digits.to_owned(),
            None if raw.get().trim_start().starts_with('-') && is_number(raw.get()) => {
                errors.push(FieldError::body(
                    "amount",
                    "amount in body should be greater than or equal to 1".into(),
                ));
                String::new()
            }
            None => {
                errors.push(FieldError::body(
                    "amount",
                    format!(
                        "amount in body must be of type integer: \"{}\"",
                        json_type(raw.get())
                    ),
                ));
                String::new()
            }
        },
    };
    if !errors.is_empty() {
        return Err(Refusal::Fields(errors));
    }
    Ok(CreateInvoice {
        amount,
        jump_url,
        metadata,
        network,
        notify_url,
        recipient,
        title,
    })
}

/// The digits of a non-negative JSON integer literal (`10000000`), without leading zeros.
/// Fractions and exponents (`1.0`, `1e6`) are not integers here: pay-srv took integer
/// base units only, and a float literal may already have lost precision at the client.
fn integer_literal(raw: &str) -> Option<&str> {
    let raw = raw.trim();
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if raw.len() > 1 && raw.starts_with('0') {
        return None; // not valid JSON anyway
    }
    // 78 digits is past 2^256; the host refuses amounts that large with its own message.
    (raw.len() <= 78).then_some(raw)
}

fn is_number(raw: &str) -> bool {
    serde_json::from_str::<serde_json::Number>(raw).is_ok()
}

/// The JSON type name of a raw value, for error messages.
fn json_type(raw: &str) -> &'static str {
    match raw.trim().as_bytes().first() {
        Some(b'"') => "string",
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    }
}

/// An absolute `http://` or `https://` URL with a host.
fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            !host.is_empty() && !url.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

/// `0x` followed by 40 hex digits.
pub fn is_evm_address(text: &str) -> bool {
    text.len() == 42 && text.starts_with("0x") && text[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// The seed document's create request.
    pub(crate) fn seed_body() -> serde_json::Value {
        json!({
            "amount": 10000000,
            "jump_url": "https://trino.network/#/order/2022062214060769050",
            "metadata": "e29c1B698F98BdFe6Ca4012dEE6FB350D73E40AE",
            "network": "goerli",
            "notify_url": "https://trino.network/pay/notify",
            "recipient": "0x889fB20cA7D3B2Bbb7bc888F18d1fE68742087Af",
            "title": "支付订单NO：23435435646"
        })
    }

    fn errors(body: &str) -> Vec<String> {
        match parse(body.as_bytes()) {
            Err(Refusal::Fields(e)) => e.into_iter().map(|e| e.error).collect(),
            other => panic!("expected field errors, got {other:?}"),
        }
    }

    #[test]
    fn the_seed_request_passes() {
        let parsed = parse(seed_body().to_string().as_bytes()).unwrap();
        assert_eq!(parsed.amount, "10000000");
        assert_eq!(parsed.title, "支付订单NO：23435435646");
    }

    #[test]
    fn amounts_beyond_u64_stay_exact() {
        let mut body = seed_body().to_string();
        body = body.replace("10000000", "123456789012345678901234567890");
        assert_eq!(
            parse(body.as_bytes()).unwrap().amount,
            "123456789012345678901234567890"
        );
    }

    #[test]
    fn every_missing_field_is_reported() {
        let errs = errors("{}");
        for key in [
            "title",
            "network",
            "recipient",
            "jump_url",
            "notify_url",
            "metadata",
            "amount",
        ] {
            assert!(
                errs.contains(&format!("{key} in body is required")),
                "{key}: {errs:?}"
            );
        }
    }

    #[test]
    fn amounts_must_be_positive_integers() {
        for (amount, message) in [
            (
                "\"10\"",
                "amount in body must be of type integer: \"string\"",
            ),
            ("1.5", "amount in body must be of type integer: \"number\""),
            ("1e6", "amount in body must be of type integer: \"number\""),
            ("0", "amount in body should be greater than or equal to 1"),
            ("-5", "amount in body should be greater than or equal to 1"),
            ("null", "amount in body must be of type integer: \"null\""),
        ] {
            let mut body = seed_body();
            body["amount"] = serde_json::from_str(amount).unwrap();
            assert_eq!(
                errors(&body.to_string()),
                vec![message.to_string()],
                "{amount}"
            );
        }
    }

    #[test]
    fn lengths_types_and_urls_are_checked() {
        let mut body = seed_body();
        body["title"] = json!("");
        body["metadata"] = json!("m".repeat(513));
        body["network"] = json!(5);
        body["notify_url"] = json!("ftp://example.com/x");
        assert_eq!(
            errors(&body.to_string()),
            vec![
                "title in body should be at least 1 chars long",
                "network in body must be of type string: \"number\"",
                "metadata in body should be at most 512 chars long",
                "notify_url in body must be of type uri: \"ftp://example.com/x\"",
            ]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused_as_such() {
        assert!(matches!(parse(b"[1]"), Err(Refusal::NotAnObject(_))));
        assert!(matches!(parse(b"not json"), Err(Refusal::NotAnObject(_))));
    }

    #[test]
    fn evm_addresses_are_0x_and_40_hex_digits() {
        assert!(is_evm_address("0x889fB20cA7D3B2Bbb7bc888F18d1fE68742087Af"));
        assert!(!is_evm_address("889fB20cA7D3B2Bbb7bc888F18d1fE68742087Af"));
        assert!(!is_evm_address("0x889fB20cA7D3B2Bbb7bc888F18d1fE68742087A"));
        assert!(!is_evm_address(
            "0x889fB20cA7D3B2Bbb7bc888F18d1fE68742087Ag"
        ));
    }
}
