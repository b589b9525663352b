//! Sending one rendered callback over HTTP(S) (reqwest, rustls): connect and total
//! timeouts, the target policy at connection time, no redirects, no proxy, and the
//! response body read up to a cap.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::config::WebhookConfig;
use super::render::RenderedWebhook;
use super::target::{GuardedResolver, TargetPolicy, TargetRefused};

/// What the receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// At most `max_response_bytes` of the body.
    pub body: Vec<u8>,
    /// The body was longer than the cap; the rest was not read.
    pub truncated: bool,
}

/// Why no answer was obtained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The target policy refused the URL; nothing was sent.
    #[error(transparent)]
    Refused(#[from] TargetRefused),
    /// The plugin rendered something that is not a valid request (bad URL, method or
    /// header); nothing was sent.
    #[error("invalid callback request: {0}")]
    Invalid(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Network(String),
}

/// Headers the host sets itself; a plugin's values for them are ignored.
const HOST_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
];

/// The HTTP client of webhook delivery. Cheap to clone (connection pool shared).
#[derive(Clone)]
pub struct Transport {
    client: reqwest::Client,
    policy: Arc<TargetPolicy>,
    request_timeout: Duration,
    max_response_bytes: usize,
}

/// Why no transport could be built.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("webhooks.allowed_networks: {0}")]
    Network(#[from] crate::config::InvalidNetwork),
    #[error("building the webhook HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

impl Transport {
    pub fn new(config: &WebhookConfig) -> Result<Transport, TransportError> {
        let policy = Arc::new(TargetPolicy::from_config(config)?);
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout())
            .timeout(config.request_timeout())
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(GuardedResolver::new(policy.clone()))
            .user_agent(concat!("polypay-webhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(TransportError::Client)?;
        Ok(Transport {
            client,
            policy,
            request_timeout: config.request_timeout(),
            max_response_bytes: config.max_response_bytes,
        })
    }

    /// Sends `request` once and reads the answer.
    pub async fn send(&self, request: &RenderedWebhook) -> Result<Answer, SendError> {
        let url: reqwest::Url = request
            .url
            .parse()
            .map_err(|e| SendError::Invalid(format!("URL `{}`: {e}", request.url)))?;
        self.policy.check_url(&url)?;
        let method = reqwest::Method::from_bytes(request.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| SendError::Invalid(format!("method `{}`", request.method)))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &request.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SendError::Invalid(format!("header name `{name}`")))?;
            if HOST_HEADERS.contains(&name.as_str()) {
                continue;
            }
            let value = HeaderValue::from_str(value)
                .map_err(|_| SendError::Invalid(format!("value of header `{name}`")))?;
            headers.append(name, value);
        }
        let exchange = async {
            let mut response = self
                .client
                .request(method, url)
                .headers(headers)
                .body(request.body.clone())
                .send()
                .await?;
            let status = response.status().as_u16();
            let mut body = Vec::new();
            let mut truncated = false;
            while let Some(chunk) = response.chunk().await? {
                let room = self.max_response_bytes - body.len();
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    truncated = true;
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            Ok::<_, reqwest::Error>(Answer {
                status,
                body,
                truncated,
            })
        };
        // reqwest's own timeout covers the same span; this one also bounds anything it
        // might not (and names the budget in the error).
        match tokio::time::timeout(self.request_timeout, exchange).await {
            Err(_) => Err(SendError::Timeout(self.request_timeout)),
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(classify(e, self.request_timeout)),
        }
    }
}

/// Turns a reqwest error into a [`SendError`], finding a refusal of the resolver in its
/// source chain.
fn classify(error: reqwest::Error, timeout: Duration) -> SendError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<TargetRefused>() {
            return SendError::Refused(refused.clone());
        }
        source = e.source();
    }
    if error.is_timeout() {
        return SendError::Timeout(timeout);
    }
    // The chain carries the useful part ("connection refused", "dns error: …").
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    SendError::Network(text)
}
