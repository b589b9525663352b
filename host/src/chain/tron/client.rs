//! An HTTP client for the java-tron full-node API, over several endpoints with failover.
//!
//! Each chain lists its endpoints in order of preference (`rpc_url`, then
//! `fallback_rpc_urls`; separately the solidity endpoints, see [`super::Network`]). Every
//! request goes to the first endpoint that is not resting; an endpoint that fails (no
//! connection, timeout, HTTP status other than 200, an `{"Error": …}` answer, a body that
//! is not the expected JSON) rests for [`ENDPOINT_REST`] and the same request goes to the
//! next one. When every endpoint fails the request fails, and the listener retries the
//! same blocks later: failover never skips a block. Once its rest is over the preferred
//! endpoint is tried first again.
//!
//! A provider key (`api_key`) is sent as the `TRON-PRO-API-KEY` header (TronGrid and
//! compatible providers) to every endpoint of the chain. Endpoints are named in logs and
//! errors by scheme, host and port only: some providers put a key in the URL path.
//!
//! Answers are read up to [`MAX_ANSWER_BYTES`]; a block of a busy chain is a few MiB.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

use super::wire::{Answer, DecodeError};

/// How long a failed endpoint is passed over before it is tried first again.
pub const ENDPOINT_REST: Duration = Duration::from_secs(15);
/// The largest answer read from a node.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;
/// The header TronGrid-compatible providers read an API key from.
pub const API_KEY_HEADER: &str = "TRON-PRO-API-KEY";

/// A request that no endpoint answered usefully.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{path}: every endpoint failed: {}", .failures.join("; "))]
    AllFailed {
        path: &'static str,
        /// One line per endpoint tried: `http://host:port: what went wrong`.
        failures: Vec<String>,
    },
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// Which endpoint list a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `/wallet/*`: the full node.
    Full,
    /// `/walletsolidity/*`: the node's solidified view.
    Solidity,
}

/// One answer, with the endpoint that gave it.
#[derive(Debug)]
pub struct Answered<T> {
    pub value: T,
    /// Index of the endpoint in its list; [`TronClient::call_at`] asks it again.
    pub endpoint: usize,
}

#[derive(Debug)]
struct Endpoints {
    urls: Vec<String>,
    /// Until when each endpoint rests after a failure.
    resting_until: Mutex<Vec<Option<Instant>>>,
}

impl Endpoints {
    fn new(urls: &[String]) -> Endpoints {
        Endpoints {
            urls: urls
                .iter()
                .map(|u| u.trim_end_matches('/').to_string())
                .collect(),
            resting_until: Mutex::new(vec![None; urls.len()]),
        }
    }

    /// Endpoint indexes in the order to try now: those not resting, by preference, then
    /// the resting ones (better a resting endpoint than none).
    fn order(&self) -> Vec<usize> {
        let now = Instant::now();
        let resting = self.resting_until.lock().expect("endpoint state");
        let (awake, asleep): (Vec<usize>, Vec<usize>) =
            (0..self.urls.len()).partition(|&i| resting[i].is_none_or(|until| until <= now));
        awake.into_iter().chain(asleep).collect()
    }

    fn rest(&self, index: usize) -> bool {
        let mut resting = self.resting_until.lock().expect("endpoint state");
        let was_awake = resting[index].is_none_or(|until| until <= Instant::now());
        resting[index] = Some(Instant::now() + ENDPOINT_REST);
        was_awake
    }

    fn wake(&self, index: usize) {
        self.resting_until.lock().expect("endpoint state")[index] = None;
    }
}

/// The java-tron HTTP API of one chain. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct TronClient {
    chain: String,
    http: reqwest::Client,
    full: Endpoints,
    solidity: Endpoints,
}

/// `scheme://host:port` of a URL, never its path or query (which may hold a key).
pub fn endpoint_label(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}", u.scheme()),
            (Some(host), None) => format!("{}://{host}", u.scheme()),
            _ => u.scheme().to_string(),
        },
        Err(_) => "<invalid url>".into(),
    }
}

impl TronClient {
    /// A client of `chain`'s endpoints; each request is bounded by `timeout`.
    pub fn new(
        chain: &str,
        full: &[String],
        solidity: &[String],
        api_key: Option<&str>,
        timeout: Duration,
    ) -> Result<TronClient, ClientError> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = api_key {
            let mut value =
                HeaderValue::from_str(key).map_err(|e| ClientError::Build(e.to_string()))?;
            value.set_sensitive(true);
            headers.insert(API_KEY_HEADER, value);
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .default_headers(headers)
            .build()
            .map_err(|e| ClientError::Build(e.to_string()))?;
        Ok(TronClient {
            chain: chain.to_string(),
            http,
            full: Endpoints::new(full),
            solidity: Endpoints::new(solidity),
        })
    }

    fn endpoints(&self, api: Api) -> &Endpoints {
        match api {
            Api::Full => &self.full,
            Api::Solidity => &self.solidity,
        }
    }

    /// POSTs `body` to `path` on the first endpoint that answers usefully (see the module
    /// docs).
    pub async fn call<T: Answer>(
        &self,
        api: Api,
        path: &'static str,
        body: &serde_json::Value,
    ) -> Result<Answered<T>, ClientError> {
        let endpoints = self.endpoints(api);
        let mut failures = Vec::new();
        for index in endpoints.order() {
            match self.attempt(endpoints, index, path, body).await {
                Ok(value) => {
                    endpoints.wake(index);
                    if !failures.is_empty() {
                        tracing::info!(chain = %self.chain, path, endpoint = %endpoint_label(&endpoints.urls[index]), "answered by a fallback endpoint");
                    }
                    return Ok(Answered {
                        value,
                        endpoint: index,
                    });
                }
                Err(problem) => {
                    let label = endpoint_label(&endpoints.urls[index]);
                    self.count_error(&label);
                    if endpoints.rest(index) {
                        tracing::warn!(chain = %self.chain, path, endpoint = %label, %problem, "endpoint failed; trying the next one");
                    }
                    failures.push(format!("{label}: {problem}"));
                }
            }
        }
        Err(ClientError::AllFailed { path, failures })
    }

    /// POSTs `body` to `path` on endpoint `index` only (to ask the node that gave an
    /// answer about it).
    pub async fn call_at<T: Answer>(
        &self,
        api: Api,
        index: usize,
        path: &'static str,
        body: &serde_json::Value,
    ) -> Result<T, ClientError> {
        let endpoints = self.endpoints(api);
        self.attempt(endpoints, index, path, body)
            .await
            .map_err(|problem| {
                let label = endpoint_label(&endpoints.urls[index]);
                self.count_error(&label);
                endpoints.rest(index);
                ClientError::AllFailed {
                    path,
                    failures: vec![format!("{label}: {problem}")],
                }
            })
    }

    async fn attempt<T: Answer>(
        &self,
        endpoints: &Endpoints,
        index: usize,
        path: &'static str,
        body: &serde_json::Value,
    ) -> Result<T, AttemptError> {
        let url = format!("{}{path}", endpoints.urls[index]);
        let body = serde_json::to_vec(body).map_err(|e| AttemptError::Malformed(e.to_string()))?;
        let mut response = self
            .http
            .post(&url)
            .body(body)
            .send()
            .await
            .map_err(|e| AttemptError::Transport(without_url(&e)))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            return Err(AttemptError::Status(status));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
        {
            return Err(AttemptError::TooLarge);
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| AttemptError::Transport(without_url(&e)))?
        {
            if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(AttemptError::TooLarge);
            }
            bytes.extend_from_slice(&chunk);
        }
        T::decode(&bytes).map_err(|e| match e {
            DecodeError::Node(message) => AttemptError::Node(message),
            DecodeError::Malformed(message) => AttemptError::Malformed(message),
        })
    }

    /// One failed request to one endpoint (the listener's step may still succeed on
    /// another): `polypay_chain_endpoint_errors_total{chain, endpoint}`.
    fn count_error(&self, endpoint: &str) {
        metrics::counter!(
            "polypay_chain_endpoint_errors_total",
            "chain" => self.chain.clone(),
            "endpoint" => endpoint.to_string()
        )
        .increment(1);
    }
}

/// Why one request to one endpoint failed (logged and collected, never shown with the
/// endpoint's URL, which may hold an API key).
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("{0}")]
    Transport(String),
    #[error("HTTP {0}")]
    Status(reqwest::StatusCode),
    #[error("answer larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
    #[error("node error: {0}")]
    Node(String),
    #[error("{0}")]
    Malformed(String),
}

/// A reqwest error's text without the URL it names.
fn without_url(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "answer cut off"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(error);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_labels_never_show_a_path_or_query() {
        assert_eq!(
            endpoint_label("https://tron.example/abc123secret/?key=1"),
            "https://tron.example"
        );
        assert_eq!(
            endpoint_label("http://127.0.0.1:8090"),
            "http://127.0.0.1:8090"
        );
        assert_eq!(endpoint_label("not a url"), "<invalid url>");
    }

    #[test]
    fn a_failed_endpoint_rests_and_the_next_one_is_asked_first() {
        let e = Endpoints::new(&["http://a/".into(), "http://b".into(), "http://c".into()]);
        assert_eq!(e.urls[0], "http://a");
        assert_eq!(e.order(), [0, 1, 2]);
        assert!(e.rest(0), "first failure is reported");
        assert!(!e.rest(0), "a resting endpoint failing again is not");
        assert_eq!(e.order(), [1, 2, 0]);
        e.rest(1);
        assert_eq!(e.order(), [2, 0, 1]);
        e.wake(0);
        assert_eq!(e.order(), [0, 2, 1]);
    }
}
