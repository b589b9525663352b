//! Support for the webhook tests and benchmark: a real local HTTP receiver that records
//! what it gets and answers as told, a small renderer standing in for a plugin (the
//! rendering boundary is a trait inside the host), and fixtures.
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use polypay_host::invoice::{Allocation, Amount, Invoice, InvoiceService, NewInvoice};
use polypay_host::merchant::{CredentialSpec, MasterKey, Merchants};
use polypay_host::store::outbox::{self, Attempt, Delivery};
use polypay_host::store::{Store, now_ms};
use polypay_host::webhook::{
    Acceptance, RenderError, RenderedWebhook, RetryAdvice, RetrySchedule, WebhookConfig,
    WebhookEvent, WebhookRenderer,
};
use sha2::Digest;
use tokio::sync::watch;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("callback body is JSON")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The event id the test renderer put in the body.
    pub fn event_id(&self) -> i64 {
        self.json()["event_id"].as_i64().expect("event_id")
    }

    pub fn attempt(&self) -> u32 {
        self.json()["attempt"].as_u64().expect("attempt") as u32
    }
}

/// How the receiver answers.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    /// Status and body.
    Body(u16, String),
    /// A 302 to this location.
    Redirect(String),
    /// Holds the request until [`Receiver::release`], then answers 200.
    Hang,
    /// Answers 200 `ok` after this long (a slow receiver).
    Delay(Duration),
}

type Script = dyn Fn(&Received, usize) -> Reply + Send + Sync;

struct Shared {
    received: Mutex<Vec<Received>>,
    script: Box<Script>,
    released: watch::Sender<bool>,
}

/// A local HTTP server on 127.0.0.1 recording every request. `script(request, n)` decides
/// the answer, `n` being the number of requests received before this one.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Receiver {
    pub async fn start(
        script: impl Fn(&Received, usize) -> Reply + Send + Sync + 'static,
    ) -> Receiver {
        let (released, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            script: Box::new(script),
            released,
        });
        let app = axum::Router::new()
            .fallback(record)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, shared }
    }

    /// Always answers 200 `ok`.
    pub async fn accepting() -> Receiver {
        Receiver::start(|_, _| Reply::Body(200, "ok".into())).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.shared.received.lock().unwrap().len()
    }

    /// Lets every held ([`Reply::Hang`]) request, and every later one, through.
    pub fn release(&self) {
        self.shared.released.send_replace(true);
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Received {
        at: Instant::now(),
        method: method.to_string(),
        path: uri.path().to_string(),
        headers,
        body: body.to_vec(),
    };
    let reply = {
        let mut received = shared.received.lock().unwrap();
        let reply = (shared.script)(&request, received.len());
        received.push(request);
        reply
    };
    match reply {
        Reply::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Reply::Body(code, body) => (StatusCode::from_u16(code).unwrap(), body).into_response(),
        Reply::Redirect(to) => (StatusCode::FOUND, [("location", to)]).into_response(),
        Reply::Delay(delay) => {
            tokio::time::sleep(delay).await;
            (StatusCode::OK, "ok").into_response()
        }
        Reply::Hang => {
            let mut released = shared.released.subscribe();
            let _ = released.wait_for(|r| *r).await;
            (StatusCode::OK, "ok").into_response()
        }
    }
}

/// Stands in for a plugin: renders a JSON callback naming the event and attempt, signed
/// with a header that depends on the attempt (as a time-dependent signature would).
pub struct TestRenderer {
    pub accept: Acceptance,
    pub retry: RetryAdvice,
    /// Kinds (`invoice.created`, …) for which it sends no callback.
    pub skip_kinds: Vec<String>,
    /// Fails rendering instead (a plugin trap).
    pub fail: bool,
    /// Every (event id, attempt) it was asked to render.
    pub calls: Mutex<Vec<(i64, u32)>>,
}

impl Default for TestRenderer {
    fn default() -> Self {
        TestRenderer {
            accept: Acceptance::ExactlyOk,
            retry: RetryAdvice::HostSchedule,
            skip_kinds: Vec::new(),
            fail: false,
            calls: Mutex::new(Vec::new()),
        }
    }
}

impl TestRenderer {
    pub fn body_of(event: &WebhookEvent, attempt: u32) -> serde_json::Value {
        serde_json::json!({
            "event_id": event.id,
            "attempt": attempt,
            "kind": event.name,
            "test": event.kind == polypay_host::webhook::WebhookEventKind::Test,
            "invoice_id": event.invoice_id,
            "status": event.invoice.status,
            "previous_status": event.previous_status.map(|s| s.as_str()),
        })
    }

    pub fn signature(body: &[u8], attempt: u32) -> String {
        let mut hash = sha2::Sha256::new();
        hash.update(attempt.to_be_bytes());
        hash.update(body);
        format!("sha256={}", hex::encode(hash.finalize()))
    }
}

impl WebhookRenderer for TestRenderer {
    fn render<'a>(
        &'a self,
        event: &'a WebhookEvent,
        attempt: u32,
    ) -> BoxFuture<'a, Result<Option<RenderedWebhook>, RenderError>> {
        Box::pin(async move {
            self.calls.lock().unwrap().push((event.id, attempt));
            if self.fail {
                return Err(RenderError::Failed("trap: unreachable executed".into()));
            }
            if self.skip_kinds.contains(&event.name) {
                return Ok(None);
            }
            let body = Self::body_of(event, attempt).to_string().into_bytes();
            Ok(Some(RenderedWebhook {
                method: "POST".into(),
                url: event.url.clone(),
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("x-test-event".into(), event.id.to_string()),
                    ("x-test-signature".into(), Self::signature(&body, attempt)),
                    // Ignored: the host sets it.
                    ("content-length".into(), "999999".into()),
                ],
                body,
                accept: self.accept.clone(),
                retry: self.retry,
            }))
        })
    }
}

/// A fast configuration for tests: one worker, millisecond schedule without jitter,
/// loopback allowed (and nothing else that is not public).
pub fn fast_config() -> WebhookConfig {
    WebhookConfig {
        workers: 1,
        batch_size: 8,
        max_in_flight: 64,
        per_receiver_in_flight: 16,
        poll_interval_ms: 10,
        connect_timeout_ms: 1_000,
        request_timeout_ms: 2_000,
        lease_ms: 5_000,
        max_response_bytes: 1_024,
        allow_private_targets: false,
        allowed_networks: vec!["127.0.0.1/32".into()],
        unmounted_plugin_retry_ms: 60_000,
        retry: RetrySchedule {
            initial_delay_ms: 100,
            multiplier: 2,
            max_delay_ms: 1_000,
            max_attempts: 4,
            jitter: 0.0,
        },
        plugin_retry: Default::default(),
    }
}

pub const PLUGIN: &str = "test-plugin";

/// A merchant of the test plugin.
pub async fn merchant(store: &Store) -> String {
    Merchants::new(store.clone(), MasterKey::from_bytes(&[7; 32]))
        .create(
            "Webhook shop",
            Some(PLUGIN),
            serde_json::json!({}),
            &CredentialSpec::default_set(),
        )
        .await
        .expect("create merchant")
        .merchant
        .id
}

/// An invoice of the test plugin whose callbacks go to `notify_url`; creating it writes
/// its `invoice.created` event.
pub async fn invoice(store: &Store, merchant_id: &str, notify_url: Option<&str>) -> Invoice {
    let now = now_ms();
    let mut new = NewInvoice::new(
        merchant_id,
        PLUGIN,
        "ethereum",
        ("USDT", 6),
        Amount::from(1_000_000u64),
        now + 3_600_000,
    );
    new.notify_url = notify_url.map(str::to_string);
    new.monitor_until = now + 7_200_000;
    let allocation = Allocation::fixed_address(&new, &format!("0x{:040x}", rand_u64()), 1);
    InvoiceService::new(store.clone())
        .create(&new, &allocation)
        .await
        .expect("create invoice")
}

fn rand_u64() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0
}

/// The outbox events of an invoice, oldest first.
pub async fn events_of(store: &Store, invoice_id: &str) -> Vec<Delivery> {
    let mut conn = store.pool().acquire().await.unwrap();
    let filter = outbox::DeliveryFilter {
        invoice_id: Some(invoice_id.into()),
        limit: 1_000,
        ..Default::default()
    };
    let mut events = outbox::list(&mut conn, &filter).await.unwrap();
    events.reverse();
    events
}

pub async fn delivery(store: &Store, id: i64) -> Delivery {
    let mut conn = store.pool().acquire().await.unwrap();
    outbox::delivery(&mut conn, id)
        .await
        .unwrap()
        .expect("delivery exists")
}

pub async fn attempts(store: &Store, id: i64) -> Vec<Attempt> {
    let mut conn = store.pool().acquire().await.unwrap();
    outbox::attempts_of(&mut conn, id).await.unwrap()
}

/// (attempt number, outcome) of every recorded attempt of an event, oldest first.
pub async fn outcomes(
    store: &Store,
    id: i64,
) -> Vec<(i64, polypay_host::store::outbox::AttemptOutcome)> {
    attempts(store, id)
        .await
        .iter()
        .map(|a| (a.attempt, a.outcome))
        .collect()
}

/// Polls `check` until it returns `Some` or `timeout` passes (then panics naming `what`).
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until event `id` is in `state`.
pub async fn wait_for_state(store: &Store, id: i64, state: outbox::DeliveryState) -> Delivery {
    let what = format!("event {id} to be {state}");
    eventually(&what, Duration::from_secs(20), || async {
        Some(delivery(store, id).await).filter(|d| d.state == state)
    })
    .await
}

/// Counts of requests per event id.
pub fn per_event(received: &[Received]) -> HashMap<i64, usize> {
    let mut counts = HashMap::new();
    for r in received {
        *counts.entry(r.event_id()).or_insert(0) += 1;
    }
    counts
}

/// A dispatcher running its workers until [`Running::stop`].
pub struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn start(
        store: &Store,
        config: WebhookConfig,
        renderer: Arc<dyn WebhookRenderer>,
    ) -> Running {
        let dispatcher = Arc::new(
            polypay_host::webhook::Dispatcher::new(store.clone(), config, renderer)
                .expect("valid webhook config"),
        );
        let (stop, stopped) = watch::channel(false);
        Running {
            stop,
            task: tokio::spawn(dispatcher.run(stopped)),
        }
    }

    pub async fn stop(self) {
        self.stop.send_replace(true);
        self.task.await.expect("dispatcher task");
    }
}
