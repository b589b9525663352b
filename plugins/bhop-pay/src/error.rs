//! The dialect's errors: `{"code":<n>,"msg":"…"}`, codes in the exchange's style
//! (negative for request problems, 320xx for payment problems), one place for all.

use polypay_plugin_sdk::{HostError, Response};
use serde_json::json;

/// A client-visible error.
#[derive(Debug)]
pub struct ApiError {
    pub http: u16,
    pub code: i32,
    pub msg: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(http: u16, code: i32, msg: impl Into<String>) -> ApiError {
        ApiError {
            http,
            code,
            msg: msg.into(),
        }
    }
    pub fn unauthorized(msg: impl Into<String>) -> ApiError {
        ApiError::new(401, -1002, msg)
    }
    pub fn stale_timestamp() -> ApiError {
        ApiError::new(
            400,
            -1021,
            "Timestamp for this request is outside of the recvWindow.",
        )
    }
    pub fn bad_signature() -> ApiError {
        ApiError::new(401, -1022, "Signature for this request is not valid.")
    }
    pub fn missing(param: &str) -> ApiError {
        ApiError::new(
            400,
            -1102,
            format!("Mandatory parameter '{param}' was not sent, was empty/null, or malformed."),
        )
    }
    pub fn invalid(msg: impl Into<String>) -> ApiError {
        ApiError::new(400, -1130, msg)
    }
    pub fn order_not_found() -> ApiError {
        ApiError::new(404, -32001, "Order not found.")
    }
    pub fn verify_code_error(remaining: u32) -> ApiError {
        ApiError::new(
            400,
            -32004,
            format!("Verify code error, {remaining} attempt(s) left."),
        )
    }
    pub fn verify_exhausted() -> ApiError {
        ApiError::new(
            400,
            -32005,
            "Verify code error too many times, the order is invalid.",
        )
    }
    pub fn no_second_factor() -> ApiError {
        ApiError::new(400, -32009, "The user has no second factor bound.")
    }
    pub fn unavailable(msg: impl Into<String>) -> ApiError {
        ApiError::new(503, -1000, msg)
    }

    /// A host refusal in the dialect's words; ledger conflicts carry a stable token.
    pub fn from_host(e: HostError) -> ApiError {
        match e {
            HostError::NotFound => ApiError::order_not_found(),
            HostError::Invalid(text) => ApiError::invalid(text),
            HostError::Conflict(text) => {
                let token = text.split([':', ' ']).next().unwrap_or_default();
                let (code, msg) = match token {
                    "insufficient-balance" => (-32002, "Insufficient balance."),
                    "debt" => (-32002, "Insufficient balance: the account has a debt."),
                    "status" => (-32003, "The order status does not allow this."),
                    "expired" => (-32006, "The order has expired."),
                    "over-refund" => (-32008, "The refund amount exceeds the refundable amount."),
                    "duplicate" => (-32007, "Duplicate client_order_id."),
                    _ => (-32003, "The order status does not allow this."),
                };
                ApiError::new(400, code, format!("{msg} ({text})"))
            }
            HostError::Unauthorized | HostError::Forbidden => {
                ApiError::unauthorized("Unauthorized.")
            }
            HostError::RateLimited(ms) => ApiError::new(
                429,
                -1003,
                format!("Too many requests; retry after {ms} ms."),
            ),
            HostError::Unsupported(text) => ApiError::invalid(text),
            HostError::Unavailable(text) => ApiError::unavailable(text),
        }
    }

    pub fn response(&self) -> Response {
        Response::json(self.http, &json!({ "code": self.code, "msg": self.msg }))
    }
}

impl From<HostError> for ApiError {
    fn from(e: HostError) -> ApiError {
        ApiError::from_host(e)
    }
}

/// The user API's success envelope.
pub fn user_ok(data: serde_json::Value) -> Response {
    Response::json(200, &json!({ "status": 0, "data": data }))
}

/// The org API's success envelope.
pub fn org_ok(data: serde_json::Value) -> Response {
    Response::json(200, &json!({ "status": 0, "msg": "Success", "data": data }))
}

/// Turns a handler's result into its response.
pub fn respond(result: ApiResult<Response>) -> Response {
    result.unwrap_or_else(|e| e.response())
}
