//! The plugin runtime: API dialects as sandboxed WebAssembly components.
//!
//! Each `[[plugins]]` entry names a component built against one supported version of
//! the WIT contract `polypay:plugin` (`plugin-sdk/wit/<version>/`; [`version`] tells
//! which from its imports, refuses the rest, and serves older versions through the same
//! capabilities, `compat` converting what changed). At start-up
//! [`PluginRuntime::load`] compiles every component once, links it against
//! the host capabilities, asks each for its `manifest()`, and builds the
//! public route table; a route claimed by two plugins fails start-up with
//! both names ([`routes`]). [`PluginRuntime::router`] then serves each claimed
//! route on a fresh instance per request.
//!
//! ```no_run
//! # async fn demo(store: polypay_host::store::Store, merchants: polypay_host::merchant::Merchants,
//! #               chains: Vec<polypay_host::chain::ChainConfig>) -> Result<(), Box<dyn std::error::Error>> {
//! use polypay_host::plugin::{PluginConfig, PluginRuntime, PluginServices};
//!
//! let configs = vec![PluginConfig::new("echo", "plugins/echo.wasm").with_prefix("/echo-api")];
//! let services = PluginServices::new("https://pay.example.com").with_storage(store, merchants).with_chains(chains);
//! let runtime = PluginRuntime::load(&configs, services).await?;
//! let app: axum::Router = runtime.router();
//! // The webhook worker renders callbacks through the same runtime:
//! let renderer: std::sync::Arc<dyn polypay_host::webhook::WebhookRenderer> = std::sync::Arc::new(runtime.clone());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
//! # Ok(()) }
//! ```
//!
//! Rooms: `config` ([`PluginConfig`], the `[[plugins]]` entries; [`PluginRuntimeConfig`]),
//! [`bindings`] (generated from the WIT, one module per version), [`version`] (which
//! version a component speaks, linking all of them, calling exports), `compat` (0.1.0
//! ↔ 0.2.0 conversions), `engine` (shared engine, epoch ticker,
//! compiled-component cache), `runtime` (load, slots, one call on a fresh instance),
//! `dispatch` (the axum router), [`routes`] (route table and conflicts), [`openapi`] (a
//! plugin's OpenAPI document, checked at load), `limits`
//! (memory cap, time limits, fault kinds), `wasi` (the WASI subset), `state` (per-call
//! store data and scope), `capabilities` (one module per WIT import), `webhook_render`
//! (the `WebhookRenderer` for the webhook worker), [`PluginServices`] (what the
//! capabilities are built on, the rate limiter), and for plugin authors: [`scaffold`]
//! (`polypay plugin new`), [`check`] (`polypay plugin check`), [`cli`] (both commands).
//!
//! # Isolation
//!
//! - One compiled component per plugin and a cached `InstancePre`; a fresh
//!   instance per request from the pooling allocator (`engine`). Instances are never
//!   reused: a guest's globals, tables and linear memory last one call. Between
//!   instances the pool resets a slot in place, copying the pages the last instance
//!   dirtied back to the component's initial image (`engine`), so the next instance
//!   starts from exactly the state a brand-new one would, without page faults.
//! - Capacity: each plugin has its own request slots (`max_concurrent_requests`)
//!   and, apart from them, webhook rendering slots (`webhook_render_slots`); the
//!   instance pool holds the sum of all plugins' slots (checked at start-up), so a
//!   flooded plugin exhausts only its own slots. A request finding its slots taken is
//!   answered at once with 503 and `Retry-After`; a rendering waits up to a second for
//!   a slot, then is postponed without counting an attempt (`runtime`).
//! - CPU: epoch interruption with the ticker on its own OS thread; a call
//!   yields to the executor every tick and traps once its guest code has run for
//!   its budget (`deadline_ms`, default 1 s). Time inside host calls does not count.
//! - Wall: a call, host calls included, ends at `wall_ms` (default 10 s): in guest
//!   code that is the plugin's fault; inside a host call the host was too slow and
//!   the request gets 503 with `Retry-After`. A call that has written is never
//!   failed for the host's slowness, and writes cannot commit after the wall
//!   (`limits`, `crate::store::with_write_deadline`).
//! - A call runs on its own task: a client that goes away cannot cancel a host call
//!   half-way through a write.
//! - Memory: a per-store limiter over all memories and tables of the instance
//!   together (`memory_mb`, default 64 MiB) (`limits`).
//! - Bodies: requests and responses are capped (`max_body_bytes`, default
//!   1 MiB); an oversized request is a 413 before any instance exists.
//! - Responses share the checkout page's origin: the host adds
//!   `X-Content-Type-Options: nosniff` and a `Content-Security-Policy` that allows
//!   nothing to every plugin response that does not set its own (`dispatch`). The
//!   request id the plugin sees is the host's sanitised one.
//! - WASI: only what the Rust standard library imports, with nothing
//!   ambient: no preopened directories, no sockets, no environment, empty
//!   stdin; stdout/stderr go to the host log (`wasi`).
//! - Secrets never enter the guest: credentials are used by id through the
//!   `crypto` and `merchants` capabilities (`capabilities`). Host-side digest work
//!   over secret parts is bounded in size.
//! - Shared things are kept per plugin: credentials (each records its issuing
//!   plugin), a merchant's `plugin-data`, key-value entries (with a quota,
//!   `kv_max_entries` / `kv_max_bytes`, and an expiry sweep), rate-limit buckets.
//!   The maintenance task ([`PluginRuntime::maintain`]) sweeps expired entries and
//!   forgets idle buckets.
//!
//! A trap, panic, CPU overrun or memory exhaustion ends only its own
//! request: a generic 500 carrying the request id, the details in the log,
//! and `polypay_plugin_faults_total{plugin,kind}` incremented. An overload (no
//! free slot, host too slow) is a 503 with `Retry-After`, counted in
//! `polypay_plugin_overloads_total{plugin,cause}`, never as a fault.
//!
//! # Scoping
//!
//! Enforced here, on every capability call (see the WIT header comment): a
//! plugin sees only invoices it created; a call authenticated as a merchant
//! sees only that merchant's data; unauthenticated calls get read-only
//! views (plus `mark-submitted`), and may create invoices only for the
//! plugin's configured `default_merchant`. An operator merchant serves every
//! plugin, but each plugin sees only its own credentials and `plugin-data` of it.

pub mod bindings;
mod capabilities;
pub mod check;
pub mod cli;
mod compat;
mod config;
mod dispatch;
mod engine;
mod limits;
pub mod openapi;
pub mod routes;
mod runtime;
pub mod scaffold;
mod services;
mod state;
pub mod version;
mod wasi;
mod webhook_render;

pub use config::{PluginConfig, PluginRuntimeConfig};
pub use engine::{EngineError, PoolTuning, set_pool_tuning};
pub use limits::FaultKind;
pub use routes::RouteError;
pub use runtime::{Fault, Overload};
pub use services::PluginServices;
pub use version::{ContractError, WitVersion};
/// The WASI interfaces plugins may import (by name, any 0.2.x version); anything else
/// outside `polypay:plugin` is refused at start-up.
pub use wasi::PROVIDED as PROVIDED_WASI;

use bindings::polypay::plugin::ledger::LedgerEvent;
use bindings::polypay::plugin::plugin_types::{InvoiceEvent, Manifest, WebhookDelivery};
use runtime::{Call, CallError, CallOutput, RuntimeInner};
use state::CallKind;
use std::sync::Arc;

/// Why the plugin runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(#[from] EngineError),
    #[error("plugin `{plugin}` is misconfigured: {reason}")]
    Config { plugin: String, reason: String },
    #[error("plugin `{plugin}` is misconfigured: {source}")]
    Prefix {
        plugin: String,
        source: routes::PrefixError,
    },
    #[error("plugin `{plugin}` cannot be loaded: {reason}")]
    Load { plugin: String, reason: String },
    #[error("plugin `{plugin}` cannot be loaded: {source}")]
    Contract {
        plugin: String,
        source: ContractError,
    },
    #[error(transparent)]
    Route(#[from] RouteError),
}

/// Why a webhook could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderFailure {
    #[error("no plugin named `{0}` is mounted")]
    UnknownPlugin(String),
    #[error("plugin `{plugin}` failed rendering the webhook ({kind}): see the log", kind = .fault.kind.as_str())]
    Fault { plugin: String, fault: Fault },
    #[error("plugin `{plugin}` cannot render now ({cause}); retry later", cause = .overload.as_str())]
    Overloaded { plugin: String, overload: Overload },
}

/// All mounted plugins, ready to serve. Cheap to clone.
#[derive(Clone)]
pub struct PluginRuntime {
    inner: Arc<RuntimeInner>,
}

/// What a mounted plugin declared, for the admin API and logs.
#[derive(Clone, Debug)]
pub struct MountedPlugin {
    pub name: String,
    pub manifest: Manifest,
    /// The contract version it was built against.
    pub version: WitVersion,
    /// Public routes as (method, full path).
    pub routes: Vec<(String, String)>,
    /// The prefix its routes are mounted under ("" for none, else "/a/b").
    pub prefix: String,
}

impl PluginRuntime {
    /// Compiles and links every plugin, reads the manifests, and checks the
    /// route table. Any failure names the plugin at fault.
    pub async fn load(
        configs: &[PluginConfig],
        services: PluginServices,
    ) -> Result<PluginRuntime, PluginError> {
        Ok(PluginRuntime {
            inner: Arc::new(RuntimeInner::load(configs, services).await?),
        })
    }

    /// The public router serving every plugin route (merge it into the public listener).
    pub fn router(&self) -> axum::Router {
        dispatch::router(self.inner.clone())
    }

    /// Builds a store for one request of `plugin` and, with `instantiate`, a fresh
    /// instance in it, then drops both: the first steps of a request alone, for the
    /// dispatch benchmark (`benches/plugin_dispatch.rs`). Not part of the API.
    #[doc(hidden)]
    pub async fn probe_call_setup(&self, plugin: &str, instantiate: bool) -> anyhow::Result<()> {
        let index = self
            .inner
            .index_of(plugin)
            .ok_or_else(|| anyhow::anyhow!("no plugin named `{plugin}`"))?;
        self.inner
            .probe(index, instantiate)
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}"))
    }

    /// The credentials an operator-created merchant of plugin `name` gets
    /// (`polypay merchant create --plugin NAME`): what its manifest declares,
    /// or the host default when it declares none. `None` if no such plugin
    /// is mounted. The templates were validated when the plugin was loaded.
    pub fn operator_credentials(&self, name: &str) -> Option<Vec<crate::merchant::CredentialSpec>> {
        let plugin = self
            .inner
            .plugins
            .iter()
            .find(|p| p.identity.name == name)?;
        let specs: Vec<_> = plugin
            .manifest
            .credentials
            .iter()
            .map(capabilities::credential_spec)
            .collect();
        Some(if specs.is_empty() {
            crate::merchant::CredentialSpec::default_set()
        } else {
            specs
        })
    }

    /// The mounted plugins and their routes.
    pub fn plugins(&self) -> Vec<MountedPlugin> {
        self.inner
            .plugins
            .iter()
            .enumerate()
            .map(|(i, p)| MountedPlugin {
                name: p.identity.name.clone(),
                manifest: p.manifest.clone(),
                version: p.version,
                routes: self
                    .inner
                    .claims
                    .iter()
                    .filter(|c| c.plugin == i)
                    .flat_map(|c| c.methods.iter().map(|m| (m.clone(), c.full_path.clone())))
                    .collect(),
                // Validated when the plugin was loaded.
                prefix: routes::normalize_prefix(p.config.prefix.as_deref()).unwrap_or_default(),
            })
            .collect()
    }

    /// Instances created so far, over all plugins (each request, webhook
    /// rendering and manifest read creates one).
    pub fn instances_started(&self) -> u64 {
        self.inner
            .instances_started
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Faults of `kind` recorded for `plugin` so far (also exported as the
    /// `polypay_plugin_faults_total` metric).
    pub fn fault_count(&self, plugin: &str, kind: FaultKind) -> u64 {
        self.inner
            .index_of(plugin)
            .map_or(0, |i| self.inner.fault_count(i, kind))
    }

    /// Faults of every kind recorded for `plugin` so far.
    pub fn total_faults(&self, plugin: &str) -> u64 {
        [
            FaultKind::Deadline,
            FaultKind::Memory,
            FaultKind::Panic,
            FaultKind::Trap,
            FaultKind::InvalidResponse,
        ]
        .into_iter()
        .map(|kind| self.fault_count(plugin, kind))
        .sum()
    }

    /// Overloads of `cause` recorded for `plugin` so far (also exported as the
    /// `polypay_plugin_overloads_total` metric).
    pub fn overload_count(&self, plugin: &str, cause: Overload) -> u64 {
        self.inner
            .index_of(plugin)
            .map_or(0, |i| self.inner.overload_count(i, cause))
    }

    /// Requests `plugin` is serving now.
    pub fn requests_in_flight(&self, plugin: &str) -> usize {
        self.inner
            .index_of(plugin)
            .map_or(0, |i| self.inner.in_flight(i, CallKind::Request))
    }

    /// Webhooks `plugin` is rendering now.
    pub fn renders_in_flight(&self, plugin: &str) -> usize {
        self.inner
            .index_of(plugin)
            .map_or(0, |i| self.inner.in_flight(i, CallKind::Webhook))
    }

    /// One maintenance pass: deletes expired key-value entries of every plugin and
    /// forgets idle rate-limit buckets. Returns the entries deleted.
    pub async fn maintain_once(&self) -> Result<u64, crate::store::StoreError> {
        let services = &self.inner.services.inner;
        let buckets = services.rate_limiter.evict_idle();
        metrics::gauge!("polypay_plugin_rate_limit_buckets").set(buckets as f64);
        metrics::gauge!("polypay_plugin_pool_idle_resident_bytes")
            .set(engine::idle_resident_bytes() as f64);
        let Some(storage) = &services.storage else {
            return Ok(0);
        };
        let swept = storage.store.kv_sweep(crate::store::now_ms()).await?;
        metrics::counter!("polypay_plugin_kv_expired_total").increment(swept);
        Ok(swept)
    }

    /// Runs [`PluginRuntime::maintain_once`] every `interval` until `stop` resolves.
    /// A failed pass is logged and retried at the next interval.
    pub async fn maintain(
        &self,
        interval: std::time::Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut stop = std::pin::pin!(stop);
        loop {
            match self.maintain_once().await {
                Ok(swept) if swept > 0 => {
                    tracing::debug!(swept, "expired plugin key-value entries deleted")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "plugin maintenance failed; retrying later"),
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = &mut stop => return,
            }
        }
    }

    /// Asks `plugin` to render the callback for a ledger event, on a fresh instance
    /// authenticated as `merchant` (the order's merchant, if it has one).
    pub async fn render_ledger_webhook(
        &self,
        plugin: &str,
        merchant: Option<String>,
        event: LedgerEvent,
        attempt: u32,
    ) -> Result<Option<WebhookDelivery>, RenderFailure> {
        let request_id = format!("webhook-{}-{attempt}", event.id);
        self.render_call(
            plugin,
            merchant,
            request_id,
            Call::RenderLedgerWebhook(Box::new(event), attempt),
        )
        .await
    }

    /// Runs a rendering call (`render-webhook`, `render-ledger-webhook`).
    async fn render_call(
        &self,
        plugin: &str,
        merchant: Option<String>,
        request_id: String,
        call: Call,
    ) -> Result<Option<WebhookDelivery>, RenderFailure> {
        let index = self
            .inner
            .index_of(plugin)
            .ok_or_else(|| RenderFailure::UnknownPlugin(plugin.to_owned()))?;
        match self
            .inner
            .call(index, CallKind::Webhook, request_id.clone(), merchant, call)
            .await
        {
            Ok(CallOutput::RenderWebhook(delivery) | CallOutput::RenderLedgerWebhook(delivery)) => {
                Ok(delivery)
            }
            Ok(_) => unreachable!("a rendering call returns a delivery"),
            Err(CallError::Fault(fault)) => {
                self.inner.record_fault(index, &request_id, &fault);
                Err(RenderFailure::Fault {
                    plugin: plugin.to_owned(),
                    fault,
                })
            }
            Err(CallError::Overload(overload)) => {
                self.inner.record_overload(index, overload);
                Err(RenderFailure::Overloaded {
                    plugin: plugin.to_owned(),
                    overload,
                })
            }
        }
    }

    /// Asks `plugin` to render the callback for `event` (attempt 1, 2, ...), on
    /// a fresh instance authenticated as the invoice's merchant. `Ok(None)`:
    /// the plugin sends no callback for this event.
    pub async fn render_webhook(
        &self,
        plugin: &str,
        event: InvoiceEvent,
        attempt: u32,
    ) -> Result<Option<WebhookDelivery>, RenderFailure> {
        let request_id = format!("webhook-{}-{attempt}", event.id);
        let merchant = Some(event.invoice.merchant_id.clone());
        self.render_call(
            plugin,
            merchant,
            request_id,
            Call::RenderWebhook(Box::new(event), attempt),
        )
        .await
    }
}
