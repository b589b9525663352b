//! WoPay's response envelope, `{success, data, error, timestamp}` on every answer, and
//! the RFC 3339 UTC timestamps the dialect writes everywhere.

use polypay_plugin_sdk::prelude::*;
use serde::Serialize;
use serde_json::Value;

/// `{"success": true, "data": data, "error": null, "timestamp": now}`.
pub fn ok<T: Serialize>(status: u16, data: &T) -> Response {
    let data = serde_json::to_value(data).unwrap_or(Value::Null);
    Response::json(
        status,
        &serde_json::json!({
            "success": true,
            "data": data,
            "error": null,
            "timestamp": rfc3339(clock::now()),
        }),
    )
}

/// `{"success": false, "data": null, "error": message, "timestamp": now}`.
pub fn error(status: u16, message: &str) -> Response {
    Response::json(
        status,
        &serde_json::json!({
            "success": false,
            "data": null,
            "error": message,
            "timestamp": rfc3339(clock::now()),
        }),
    )
}

pub fn bad_request(message: &str) -> Response {
    error(400, message)
}

pub fn unauthorized(message: &str) -> Response {
    error(401, message)
}

pub fn forbidden() -> Response {
    error(
        403,
        "Forbidden: the API key does not belong to this merchant",
    )
}

pub fn not_found(what: &str) -> Response {
    error(404, &format!("{what} not found"))
}

/// 429 with `Retry-After` in whole seconds (at least 1).
pub fn too_many_requests(retry_after_ms: u64) -> Response {
    let secs = retry_after_ms.div_ceil(1000).max(1);
    error(429, "Too many requests").header("retry-after", &secs.to_string())
}

/// A host failure the client cannot fix: logged, and answered without its details
/// (503 when a dependency is unavailable, 500 otherwise).
pub fn host_failure(call: &str, e: HostError) -> Response {
    log::log(
        log::Level::Error,
        "host call failed",
        &[
            ("call".into(), call.into()),
            ("error".into(), e.to_string()),
        ],
    );
    match e {
        HostError::Unavailable(_) => error(503, "Service unavailable"),
        HostError::RateLimited(ms) => too_many_requests(ms),
        _ => error(500, "Internal server error"),
    }
}

/// Milliseconds since the Unix epoch as `2024-01-01T00:00:00Z` (UTC, whole seconds).
pub fn rfc3339(ms: i64) -> String {
    let t = polypay_plugin_sdk::time::Civil::of_unix_ms(ms);
    format!("{}T{}Z", t.date(), t.time())
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_704_067_200_000), "2024-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_704_070_800_999), "2024-01-01T01:00:00Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
