//! The data of one store: everything a single plugin call can reach.
//!
//! A store (and so a [`PluginState`]) lives for exactly one call — one HTTP
//! request, one webhook rendering, or the start-up manifest call — on a
//! fresh instance. Request scoping (which merchant the call is
//! authenticated as) lives here and is consulted by every capability.

use super::limits::{CallClock, MemoryLimiter};
use super::services::PluginServices;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// What the host knows about a mounted plugin, shared by all its calls.
#[derive(Debug)]
pub(crate) struct PluginIdentity {
    /// The configured name: the key of everything the plugin owns.
    pub name: String,
    /// The plugin's settings as JSON text.
    pub settings_json: String,
    /// Merchant that unauthenticated invoice creation is attributed to.
    pub default_merchant: Option<String>,
    /// What the plugin may hold in the key-value store.
    pub kv_quota: crate::store::kv::KvQuota,
    /// Extended public keys of the plugin's ledger deposit addresses, by chain name.
    pub deposit_xpubs: std::collections::BTreeMap<String, String>,
}

/// Why the guest is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallKind {
    /// The start-up `manifest()` call: no storage access.
    Manifest,
    /// Serving an HTTP request.
    Request,
    /// Rendering a webhook, authenticated as the event's merchant.
    Webhook,
}

/// Per-call scope: who the guest acts for.
pub(crate) struct CallScope {
    pub plugin: Arc<PluginIdentity>,
    pub services: PluginServices,
    pub kind: CallKind,
    pub request_id: String,
    /// The merchant this call is authenticated as, once it is.
    pub merchant_id: Option<String>,
}

/// The store data of one plugin call.
pub(crate) struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: MemoryLimiter,
    /// The call's time limits, checked on every epoch tick and host call.
    pub clock: CallClock,
    pub scope: CallScope,
    pub stdout: CapturedOutput,
    pub stderr: CapturedOutput,
}

impl PluginState {
    pub fn new(scope: CallScope, memory_bytes: usize, clock: CallClock) -> Self {
        let stdout = CapturedOutput::new();
        let stderr = CapturedOutput::new();
        // Nothing ambient: no args, no env, no preopened directories, no
        // network; stdin is empty; stdout/stderr go to the host log.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        PluginState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(memory_bytes),
            clock,
            scope,
            stdout,
            stderr,
        }
    }
}

impl PluginState {
    /// Records that a host call changed state (see `limits::CallClock`): every host
    /// function that writes calls this once its write has succeeded.
    pub fn wrote(&mut self) {
        self.clock.wrote();
    }

    /// The result of a host call that writes, recording the write when it succeeded.
    pub fn after_write<T>(
        &mut self,
        result: Result<T, super::bindings::HostError>,
    ) -> wasmtime::Result<Result<T, super::bindings::HostError>> {
        if result.is_ok() {
            self.wrote();
        }
        Ok(result)
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Guest stdout or stderr, kept in memory up to a cap (then truncated
/// silently: a chatty plugin must not fail because of its own logging).
#[derive(Clone, Default)]
pub(crate) struct CapturedOutput {
    buffer: Arc<Mutex<Vec<u8>>>,
}

const OUTPUT_CAP: usize = 64 * 1024;

impl CapturedOutput {
    fn new() -> Self {
        Self::default()
    }

    /// Everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.buffer.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Ok(mut buffer) = self.buffer.lock() {
            let room = OUTPUT_CAP.saturating_sub(buffer.len());
            buffer.extend_from_slice(&buf[..buf.len().min(room)]);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
