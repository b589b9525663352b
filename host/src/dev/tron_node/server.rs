//! The HTTP side of a simulated node: java-tron's paths, parameters and answers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::chain::{SimBlock, SimChain};
use super::render::{self, Form};

/// A way a node fails a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 503, as a load balancer in front of a dead node answers.
    Unavailable,
    /// java-tron's rate limiter: HTTP 200 with `{"Error": "… lack of computing resources"}`.
    RateLimited,
    /// A lite full node's bare-text refusal of historical queries (HTTP 200, not JSON).
    LiteFullNode,
}

#[derive(Default)]
pub(super) struct NodeState {
    /// Faults by path; the `None` key fails every path.
    faults: Mutex<HashMap<Option<String>, Fault>>,
    api_key: Mutex<Option<String>>,
    /// The node serves the chain as if its head were this many blocks lower.
    behind: AtomicU64,
    requests: Mutex<HashMap<String, u64>>,
    /// Every request's path and parameters, in arrival order.
    log: Mutex<Vec<(String, Value)>>,
}

/// A java-tron HTTP API over a [`SimChain`], on a loopback port.
pub struct SimNode {
    pub chain: SimChain,
    state: Arc<NodeState>,
    addr: SocketAddr,
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    /// Also answer the development routes of [`super::control`].
    control: bool,
}

#[derive(Clone)]
struct Shared {
    chain: SimChain,
    node: Arc<NodeState>,
}

impl SimNode {
    /// A node over a new chain (genesis only).
    pub async fn start() -> SimNode {
        SimNode::serve(SimChain::new()).await
    }

    /// Another node over `chain`, with its own faults, key and lag.
    pub async fn serve(chain: SimChain) -> SimNode {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind simulator");
        let addr = listener.local_addr().expect("simulator address");
        let mut node = SimNode {
            chain,
            state: Arc::new(NodeState::default()),
            addr,
            server: None,
            control: false,
        };
        node.spawn(listener);
        node
    }

    /// The development node of `polypay dev`: `chain` served on `addr`, with the
    /// development routes of [`super::control`] beside java-tron's.
    pub async fn serve_dev(chain: SimChain, addr: SocketAddr) -> std::io::Result<SimNode> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let mut node = SimNode {
            chain,
            state: Arc::new(NodeState::default()),
            addr,
            server: None,
            control: true,
        };
        node.spawn(listener);
        Ok(node)
    }

    fn spawn(&mut self, listener: tokio::net::TcpListener) {
        let shared = Shared {
            chain: self.chain.clone(),
            node: self.state.clone(),
        };
        let mut app = axum::Router::new().fallback(handle).with_state(shared);
        if self.control {
            app = app.nest("/polypay-dev", super::control::routes(self.chain.clone()));
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .expect("simulator server");
        });
        self.server = Some((stop, task));
    }

    /// The base URL, as a `rpc_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Fails every request with `fault` until [`SimNode::heal`].
    pub fn fail(&self, fault: Fault) {
        self.state.faults.lock().unwrap().insert(None, fault);
    }

    /// Fails requests to `path` with `fault` until [`SimNode::heal`].
    pub fn fail_path(&self, path: &str, fault: Fault) {
        self.state
            .faults
            .lock()
            .unwrap()
            .insert(Some(path.to_string()), fault);
    }

    /// Ends every fault.
    pub fn heal(&self) {
        self.state.faults.lock().unwrap().clear();
    }

    /// Answers only requests carrying `TRON-PRO-API-KEY: key` (others get HTTP 401).
    pub fn require_api_key(&self, key: &str) {
        *self.state.api_key.lock().unwrap() = Some(key.to_string());
    }

    /// Serves the chain as a node still syncing would: its head `blocks` below the
    /// chain's, no newer block known.
    pub fn set_behind(&self, blocks: u64) {
        self.state.behind.store(blocks, Ordering::SeqCst);
    }

    /// Requests received on `path` (faulted ones included).
    pub fn requests(&self, path: &str) -> u64 {
        self.state
            .requests
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Every request answered (not faulted), path and parameters, oldest first.
    pub fn request_log(&self) -> Vec<(String, Value)> {
        self.state.log.lock().unwrap().clone()
    }

    /// The block numbers asked for by `getblockbynum` and `getblockbylimitnext` since
    /// request `since` of the log.
    pub fn blocks_requested(&self, since: usize) -> Vec<u64> {
        let number = |v: &Value| match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        };
        let mut blocks = Vec::new();
        for (path, params) in self.request_log().iter().skip(since) {
            if path.ends_with("/getblockbynum") {
                blocks.extend(number(&params["num"]));
            } else if path.ends_with("/getblockbylimitnext")
                && let (Some(start), Some(end)) =
                    (number(&params["startNum"]), number(&params["endNum"]))
            {
                blocks.extend(start..end);
            }
        }
        blocks
    }

    /// Requests received on any path.
    pub fn total_requests(&self) -> u64 {
        self.state.requests.lock().unwrap().values().sum()
    }

    /// Stops listening: connections are refused until [`SimNode::restart`].
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        self.stop().await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(e) if std::time::Instant::now() < deadline => {
                    tracing::debug!("simulator rebind: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => panic!("simulator cannot listen on {} again: {e}", self.addr),
            }
        };
        self.spawn(listener);
    }
}

impl Drop for SimNode {
    fn drop(&mut self) {
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            task.abort();
        }
    }
}

fn json(body: impl Into<String>) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.into(),
    )
        .into_response()
}

/// An answer other than the requested data: java-tron's `{"Error": …}` (HTTP 200), or a
/// bare status.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self.0 {
            StatusCode::OK => json(self.1),
            status => (status, self.1).into_response(),
        }
    }
}

fn java_error(class: &str, message: &str) -> Refusal {
    Refusal(
        StatusCode::OK,
        serde_json::json!({ "Error": format!("class {class} : {message}") }).to_string(),
    )
}

fn not_found() -> Refusal {
    Refusal(StatusCode::NOT_FOUND, "404 Not Found".into())
}

/// A request's parameters: the query for GET, the JSON body for POST.
fn params(method: &Method, uri: &Uri, body: &[u8]) -> Result<Value, Refusal> {
    if *method == Method::GET {
        let mut map = serde_json::Map::new();
        for pair in uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(k.to_string(), Value::String(v.to_string()));
        }
        return Ok(Value::Object(map));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(body)
        .map_err(|e| java_error("org.tron.json.JSONException", &e.to_string()))
}

fn number(params: &Value, key: &str) -> Result<i64, Refusal> {
    match &params[key] {
        Value::Null => Ok(0),
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| java_error("java.lang.NumberFormatException", &n.to_string())),
        Value::String(s) => s.parse().map_err(|_| {
            java_error(
                "java.lang.NumberFormatException",
                &format!("For input string: \"{s}\""),
            )
        }),
        other => Err(java_error(
            "org.tron.core.services.http.JsonFormat$ParseException",
            &format!("Expected a number for {key}, got {other}"),
        )),
    }
}

fn visible(params: &Value) -> Form {
    match &params["visible"] {
        Value::Bool(true) => Form::Base58,
        Value::String(s) if s == "true" => Form::Base58,
        _ => Form::Hex,
    }
}

fn render_block(block: &SimBlock, form: Form) -> String {
    match form {
        Form::Hex => block.block_json.to_string(),
        Form::Base58 => render::block(block, form),
    }
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    *shared
        .node
        .requests
        .lock()
        .unwrap()
        .entry(path.clone())
        .or_default() += 1;
    let fault = {
        let faults = shared.node.faults.lock().unwrap();
        faults
            .get(&Some(path.clone()))
            .or_else(|| faults.get(&None))
            .copied()
    };
    match fault {
        Some(Fault::Unavailable) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Temporarily Unavailable",
            )
                .into_response();
        }
        Some(Fault::RateLimited) => {
            return java_error(
                "java.lang.IllegalAccessException",
                "lack of computing resources",
            )
            .into_response();
        }
        Some(Fault::LiteFullNode) => {
            return (
                StatusCode::OK,
                "this API is closed because this node is a lite fullnode",
            )
                .into_response();
        }
        None => {}
    }
    if let Some(key) = shared.node.api_key.lock().unwrap().clone() {
        let given = headers
            .get("TRON-PRO-API-KEY")
            .and_then(|v| v.to_str().ok());
        if given != Some(key.as_str()) {
            return (
                StatusCode::UNAUTHORIZED,
                [("content-type", "application/json")],
                r#"{"Success":false,"Error":"ApiKey not exists"}"#,
            )
                .into_response();
        }
    }
    let params = match params(&method, &uri, &body) {
        Ok(p) => p,
        Err(refusal) => return refusal.into_response(),
    };
    shared
        .node
        .log
        .lock()
        .unwrap()
        .push((path.clone(), params.clone()));
    match answer(&shared, &path, &params) {
        Ok(body) => json(body),
        Err(refusal) => refusal.into_response(),
    }
}

fn answer(shared: &Shared, path: &str, params: &Value) -> Result<String, Refusal> {
    let form = visible(params);
    let state = shared.chain.lock();
    let behind = shared.node.behind.load(std::sync::atomic::Ordering::SeqCst);
    let head = state.head().number.saturating_sub(behind);
    let solidified = state.solidified().number.min(head);
    let (api, endpoint) = path
        .strip_prefix("/walletsolidity/")
        .map(|e| ("solidity", e))
        .or_else(|| path.strip_prefix("/wallet/").map(|e| ("full", e)))
        .ok_or_else(not_found)?;
    let newest = if api == "solidity" { solidified } else { head };
    let block = |n: i64| -> Option<&SimBlock> {
        (n >= 0 && n as u64 <= newest)
            .then(|| state.blocks.get(n as usize))
            .flatten()
    };
    Ok(match endpoint {
        "getnowblock" => render_block(block(newest as i64).expect("head exists"), form),
        "getblockbynum" => block(number(params, "num")?)
            .map(|b| render_block(b, form))
            .unwrap_or_else(|| "{}".into()),
        "getblockbylimitnext" => {
            let (start, end) = (number(params, "startNum")?, number(params, "endNum")?);
            if !(end > start && end - start <= 100 && start >= 0) {
                return Ok("{}".into());
            }
            let blocks: Vec<String> = (start..end)
                .filter_map(|n| block(n).map(|b| render_block(b, form)))
                .collect();
            if blocks.is_empty() {
                "{}".into()
            } else {
                format!(r#"{{"block":[{}]}}"#, blocks.join(","))
            }
        }
        "gettransactioninfobyblocknum" => {
            let n = number(params, "num")?;
            if n <= 0 {
                "{}".into()
            } else {
                match (block(n), form) {
                    (Some(b), Form::Hex) => b.infos_json.to_string(),
                    (Some(b), Form::Base58) => render::infos(b, form),
                    (None, _) => "[]".into(),
                }
            }
        }
        "gettransactionbyid" | "gettransactioninfobyid" => {
            let id = params["value"].as_str().unwrap_or("").to_ascii_lowercase();
            let found = state
                .tx_blocks
                .get(&id)
                .and_then(|&n| block(n as i64))
                .and_then(|b| b.transactions.iter().find(|t| t.id == id).map(|t| (t, b)));
            match found {
                None => "{}".into(),
                Some((tx, _)) if endpoint == "gettransactionbyid" => render::transaction(tx, form),
                Some((tx, b)) => render::info(tx, b, form),
            }
        }
        _ => return Err(not_found()),
    })
}
