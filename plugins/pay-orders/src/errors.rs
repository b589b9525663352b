//! The dialect's envelope: `{"code": 200, "message": "ok", "result": {...}}` on success,
//! `{"code": <4xx|5xx>, "message": "<text>", "result": null}` on failure, with the same
//! HTTP status as `code`. Messages are worded in the seed's language.

use polypay_plugin_sdk::prelude::*;
use serde::Serialize;

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    code: u16,
    message: &'a str,
    result: Option<T>,
}

/// `200 {"code":200,"message":"ok","result":result}`.
pub fn ok<T: Serialize>(result: &T) -> Response {
    Response::json(
        200,
        &Envelope {
            code: 200,
            message: "ok",
            result: Some(result),
        },
    )
}

/// `{code, message, result: null}` with `code` as the HTTP status.
pub fn error(code: u16, message: &str) -> Response {
    Response::json(
        code,
        &Envelope::<()> {
            code,
            message,
            result: None,
        },
    )
}

/// A request field failed validation (422, like the original's validator).
pub fn invalid(message: impl AsRef<str>) -> Response {
    error(422, message.as_ref())
}

/// Unknown application or wrong signature: the two are not told apart.
pub fn bad_sign() -> Response {
    error(401, "签名错误")
}

pub fn salt_reused() -> Response {
    error(409, "salt 已使用，请每次请求使用新的随机 salt")
}

pub fn order_not_found() -> Response {
    error(404, "订单不存在")
}

/// The rate source is down: the order cannot be priced now.
pub fn rate_unavailable() -> Response {
    error(503, "汇率暂时不可用，请稍后重试")
}

/// A host failure: logged with its detail, answered without it.
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
        HostError::Unavailable(_) | HostError::RateLimited(_) => {
            error(503, "服务暂时不可用，请稍后重试")
        }
        _ => error(500, "服务器错误"),
    }
}
