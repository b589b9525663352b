//! The pay-srv error shape: `{"status": <http code>, "type": "<TYPE>", "title": "<text>"}`,
//! an optional `detail`, and `validationErrors: [{key, in, error}]` on validation failures.
//! Types are those of the original server: `INVOICE_NOT_FOUND`, `INVALID_RECIPIENT`,
//! `MALFORMED_TOKEN`, and `generic` with the HTTP reason phrase as title.

use polypay_plugin_sdk::prelude::*;
use serde::Serialize;

/// One failed check of a request field, worded like the original's validator:
/// `title in body is required`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub key: String,
    #[serde(rename = "in")]
    pub location: &'static str,
    pub error: String,
}

impl FieldError {
    pub fn body(key: &str, error: String) -> Self {
        FieldError {
            key: key.to_owned(),
            location: "body",
            error,
        }
    }

    pub fn path(key: &str, error: String) -> Self {
        FieldError {
            key: key.to_owned(),
            location: "path",
            error,
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    status: u16,
    #[serde(rename = "type")]
    kind: &'a str,
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(rename = "validationErrors", skip_serializing_if = "<[_]>::is_empty")]
    validation_errors: &'a [FieldError],
}

fn error(status: u16, kind: &str, title: &str, detail: Option<&str>) -> Response {
    Response::json(
        status,
        &ErrorBody {
            status,
            kind,
            title,
            detail,
            validation_errors: &[],
        },
    )
}

/// 401, no or unknown token.
pub fn unauthorized(detail: &str) -> Response {
    error(401, "generic", "Unauthorized", Some(detail))
}

/// 400, a token that is not a UUID.
pub fn malformed_token() -> Response {
    error(
        400,
        "MALFORMED_TOKEN",
        "Auth token is malformed",
        Some("the bearer token must be a UUID"),
    )
}

/// 404, no such invoice (or not this merchant's: the two are indistinguishable).
pub fn invoice_not_found() -> Response {
    error(404, "INVOICE_NOT_FOUND", "Invoice not found", None)
}

/// 400, a recipient that is not an EVM address.
pub fn invalid_recipient(detail: &str) -> Response {
    error(
        400,
        "INVALID_RECIPIENT",
        "Invalid recipient address",
        Some(detail),
    )
}

/// 400, a body that is not a JSON object.
pub fn bad_request(detail: &str) -> Response {
    error(400, "generic", "Bad Request", Some(detail))
}

/// 400 with every failed field check.
pub fn validation(errors: &[FieldError]) -> Response {
    Response::json(
        400,
        &ErrorBody {
            status: 400,
            kind: "generic",
            title: "Bad Request",
            detail: None,
            validation_errors: errors,
        },
    )
}

/// A host failure the client cannot fix: logged with its detail, answered generically.
pub fn host_failure(context: &str, e: HostError) -> Response {
    let (status, title) = match &e {
        HostError::RateLimited(_) => (429, "Too Many Requests"),
        HostError::Unavailable(_) => (503, "Service Unavailable"),
        _ => (500, "Internal Server Error"),
    };
    log::log(
        log::Level::Error,
        "host call failed",
        &[
            ("during".into(), context.into()),
            ("error".into(), e.to_string()),
        ],
    );
    error(status, "generic", title, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn plain_errors_have_status_type_title_and_no_validation_list() {
        let r = invoice_not_found();
        assert_eq!(r.status, 404);
        assert_eq!(
            r.body_json::<Value>().unwrap(),
            json!({ "status": 404, "type": "INVOICE_NOT_FOUND", "title": "Invoice not found" })
        );
    }

    #[test]
    fn validation_errors_list_key_location_and_message() {
        let r = validation(&[FieldError::body(
            "title",
            "title in body is required".into(),
        )]);
        assert_eq!(
            r.body_json::<Value>().unwrap(),
            json!({
                "status": 400, "type": "generic", "title": "Bad Request",
                "validationErrors": [{ "key": "title", "in": "body", "error": "title in body is required" }]
            })
        );
    }
}
