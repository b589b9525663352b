//! Requests and responses as a plugin handler sees them.

use crate::bindings::polypay::plugin::types::{HttpRequest, HttpResponse};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A buffered HTTP request routed to this plugin (see [`HttpRequest`] in the WIT
/// for what each field holds). Header names are lower-case.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub request_id: String,
    pub method: String,
    pub route: String,
    pub params: Vec<(String, String)>,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The client's address: the peer, or behind the operator's trusted reverse proxies
    /// the address they forwarded; never one the client chose. Key per-IP limits on it.
    pub client_ip: Option<String>,
}

impl From<HttpRequest> for Request {
    fn from(r: HttpRequest) -> Self {
        Request {
            request_id: r.request_id,
            method: r.method,
            route: r.route,
            params: r.params,
            path: r.path,
            query: r.query,
            headers: r.headers,
            body: r.body,
            client_ip: r.client_ip,
        }
    }
}

impl Request {
    /// The value of the route's `{name}` segment.
    pub fn param(&self, name: &str) -> Option<&str> {
        lookup(&self.params, name)
    }

    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The query string decoded as `application/x-www-form-urlencoded` pairs.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded(&self.query)
    }

    /// The first value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The body decoded as `application/x-www-form-urlencoded` pairs.
    pub fn form_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded(&String::from_utf8_lossy(&self.body))
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.body)
    }

    /// The body parsed as JSON into `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The bearer token of an `Authorization: Bearer <token>` header.
    pub fn bearer_token(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }
}

fn lookup<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Decodes `a=1&b=x%20y+z` into pairs; malformed escapes are kept verbatim.
pub fn form_urlencoded(input: &str) -> Vec<(String, String)> {
    input
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Percent-decodes `input`; with `plus_as_space`, `+` becomes a space.
pub fn percent_decode(input: &str, plus_as_space: bool) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_as_space => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// An HTTP response under construction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// `value` serialized as JSON with `content-type: application/json`.
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Response::new(status)
                .header("content-type", "application/json")
                .body(body),
            // Serializing plain data structures does not fail; if it does, say so plainly.
            Err(e) => Response::text(500, &format!("response serialization failed: {e}")),
        }
    }

    /// `text` with `content-type: text/plain; charset=utf-8`.
    pub fn text(status: u16, text: &str) -> Self {
        Response::new(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(text.as_bytes().to_vec())
    }

    /// Adds a header (names are sent lower-case by the host).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// The body as UTF-8 text (for tests).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON (for tests).
    pub fn body_json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The first value of a header (for tests).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        lookup(&self.headers, &name.to_ascii_lowercase())
    }
}

impl From<Response> for HttpResponse {
    fn from(r: Response) -> Self {
        HttpResponse {
            status: r.status,
            headers: r.headers,
            body: r.body,
        }
    }
}

/// Anything a handler may return.
pub trait IntoResponse {
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(v) => v.into_response(),
            Err(e) => e.into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_handles_plus_percent_and_missing_values() {
        let pairs = form_urlencoded("a=1&b=x%20y+z&flag&c=%E4%B8%AD&bad=%zz");
        assert_eq!(
            pairs,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y z".into()),
                ("flag".into(), "".into()),
                ("c".into(), "中".into()),
                ("bad".into(), "%zz".into()),
            ]
        );
    }

    #[test]
    fn trailing_percent_is_kept_verbatim() {
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("a%4", false), "a%4");
    }

    #[test]
    fn bearer_token_is_case_insensitive_on_scheme() {
        let req = Request {
            headers: vec![("authorization".into(), "bearer abc".into())],
            ..Default::default()
        };
        assert_eq!(req.bearer_token(), Some("abc"));
    }
}
