//! Signed requests: `X-ACCESS-KEY`, `timestamp`, `signature` = hex HMAC-SHA256 over the
//! other parameters sorted by key and joined `k=v&k=v` (see the crate docs). The host
//! checks the MAC against the credential's secret (constant time); this module checks the
//! timestamp window and remembers signatures to refuse replays.

use std::collections::BTreeMap;

use polypay_plugin_sdk::merchants::{Credential, HmacProof, Proof};
use polypay_plugin_sdk::{Request, clock, kv, merchants};

use crate::error::{ApiError, ApiResult};

/// How far a request's `timestamp` may be from the host's clock.
pub const MAX_SKEW_MS: i64 = 30_000;

/// A request whose signature the host accepted.
pub struct Signed {
    pub params: BTreeMap<String, String>,
    pub credential: Credential,
}

impl Signed {
    /// A parameter, `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn required(&self, name: &str) -> ApiResult<&str> {
        self.get(name).ok_or_else(|| ApiError::missing(name))
    }
}

/// Every parameter of the request: the query, then a form-urlencoded body.
pub fn params(req: &Request) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    for (k, v) in req.query_pairs().into_iter().chain(req.form_pairs()) {
        if !k.is_empty() {
            params.entry(k).or_insert(v);
        }
    }
    params
}

/// The text that is signed: every parameter but `signature`, sorted, `k=v&k=v`.
pub fn signing_text(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .filter(|(k, _)| k.as_str() != "signature")
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Authenticates a request signed with a credential of `kind`.
pub fn verify(req: &Request, kind: &str) -> ApiResult<Signed> {
    let access_key = req
        .header("x-access-key")
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::unauthorized("Missing X-ACCESS-KEY header."))?;
    let params = params(req);
    let signature = params
        .get("signature")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::missing("signature"))?;
    let timestamp: i64 = params
        .get("timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| ApiError::missing("timestamp"))?;
    if (clock::now() - timestamp).abs() > MAX_SKEW_MS {
        return Err(ApiError::stale_timestamp());
    }
    let mac = polypay_plugin_sdk::unhex(signature)
        .filter(|m| m.len() == 32)
        .ok_or_else(ApiError::bad_signature)?;
    let proof = Proof::HmacSha256(HmacProof {
        message: signing_text(&params).into_bytes(),
        mac,
    });
    let credential = merchants::authenticate_signed(kind, access_key, &proof)
        .map_err(|_| ApiError::bad_signature())?;
    // A signature is accepted once: remembered for as long as its timestamp is valid.
    let ttl = (2 * MAX_SKEW_MS / 1000 + 1) as u32;
    let key = format!("sig:{}", signature.to_ascii_lowercase());
    if !kv::set_if_absent(&key, b"1", Some(ttl)).map_err(ApiError::from_host)? {
        return Err(ApiError::bad_signature());
    }
    Ok(Signed { params, credential })
}
