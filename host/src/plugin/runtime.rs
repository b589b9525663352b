//! Loading plugins and running one call on a fresh instance.
//!
//! A call runs on its own task ([`RuntimeInner::call`]): whoever waits for it (an HTTP
//! handler whose client went away, a webhook worker's timeout) may stop waiting, but the
//! call itself is never dropped half-way, so a host call that writes always finishes or
//! rolls back. What bounds a call is the guest's CPU budget, its wall and the store's
//! write deadline (see `limits`), not the waiter.
//!
//! Capacity: each plugin has its own slots for requests (`max_concurrent_requests`) and,
//! apart from them, for webhook rendering (`webhook_render_slots`). A request finding
//! its slots taken is refused at once as [`Overload::Concurrency`] (the client gets a 503
//! with `Retry-After`); a rendering waits up to [`RENDER_SLOT_WAIT`] for a slot first,
//! because the webhook worker runs many deliveries at once and a refused rendering costs
//! it a postponement, then is refused the same way. The engine's instance pool
//! holds at least the sum of every plugin's slots (checked at load), so a plugin can only
//! exhaust its own slots, never another plugin's instances.

use super::PluginError;
use super::bindings::polypay::plugin::ledger::LedgerEvent;
use super::bindings::polypay::plugin::plugin_types::{InvoiceEvent, Manifest, WebhookDelivery};
use super::bindings::{HttpRequest, HttpResponse};
use super::capabilities;
use super::config::PluginConfig;
use super::engine::{self, EngineError};
use super::limits::{CallClock, FaultKind, HostOverloaded};
use super::openapi;
use super::routes::{self, Claim};
use super::services::PluginServices;
use super::state::{CallKind, CallScope, PluginIdentity, PluginState};
use super::version::{self, PluginPre, PrepareError, WitVersion};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime::component::Linker;
use wasmtime::{CallHook, Engine, Store, UpdateDeadline};

/// How long a webhook rendering waits for one of its plugin's rendering slots before it
/// is refused as [`Overload::Concurrency`] (and the event postponed without an attempt).
pub const RENDER_SLOT_WAIT: Duration = Duration::from_secs(1);

/// A mounted plugin: its compiled component, ready to instantiate.
pub(crate) struct LoadedPlugin {
    pub identity: Arc<PluginIdentity>,
    /// The name as a metric label (shared, so a label costs no allocation).
    pub label: Arc<str>,
    pub config: PluginConfig,
    pub manifest: Manifest,
    /// The contract version it was built against.
    pub version: WitVersion,
    pre: PluginPre,
    /// Instances serving requests.
    requests: Arc<Semaphore>,
    /// Instances rendering webhooks, apart from requests.
    renders: Arc<Semaphore>,
}

pub(crate) struct RuntimeInner {
    engine: Engine,
    pub plugins: Vec<LoadedPlugin>,
    pub claims: Vec<Claim>,
    pub services: PluginServices,
    /// Instances created so far (for tests and the admin API).
    pub instances_started: AtomicU64,
    /// Faults so far, per (plugin index, kind); mirrors the metric.
    faults: Tally<(usize, FaultKind)>,
    /// Overloads so far, per (plugin index, cause); mirrors the metric.
    overloads: Tally<(usize, Overload)>,
}

/// Counts per key, for tests and the admin API (the metrics say the same).
struct Tally<K>(Mutex<HashMap<K, u64>>);

impl<K: std::hash::Hash + Eq> Tally<K> {
    fn new() -> Self {
        Tally(Mutex::new(HashMap::new()))
    }

    fn add(&self, key: K) {
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default() += 1;
    }

    fn get(&self, key: &K) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
            .unwrap_or(0)
    }
}

/// A failed plugin call: why, and what the log should say.
#[derive(Debug)]
pub struct Fault {
    pub kind: FaultKind,
    pub detail: String,
}

/// Why the host could not serve a call now; the caller should retry later. Never the
/// plugin's fault: answered 503 with `Retry-After`, counted in
/// `polypay_plugin_overloads_total{plugin,cause}`, and for a webhook rendering retried
/// without counting as a delivery attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Overload {
    /// Every slot of the plugin for this kind of call is taken.
    Concurrency,
    /// The engine's instance pool is exhausted (another runtime in the process).
    Pool,
    /// A host call was still running when the call's wall passed.
    HostSlow,
}

impl Overload {
    pub fn as_str(self) -> &'static str {
        match self {
            Overload::Concurrency => "concurrency",
            Overload::Pool => "pool",
            Overload::HostSlow => "host-slow",
        }
    }

    /// How long a client should wait before retrying.
    pub fn retry_after(self) -> Duration {
        match self {
            Overload::Concurrency | Overload::Pool => Duration::from_secs(1),
            Overload::HostSlow => Duration::from_secs(5),
        }
    }
}

/// Why a call produced no output.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The plugin failed.
    Fault(Fault),
    /// The host could not serve the call now.
    Overload(Overload),
}

/// What one call asks of the guest.
pub(crate) enum Call {
    Manifest,
    Handle(Box<HttpRequest>),
    RenderWebhook(Box<InvoiceEvent>, u32),
    RenderLedgerWebhook(Box<LedgerEvent>, u32),
}

pub(crate) enum CallOutput {
    Manifest(Manifest),
    Handle(HttpResponse),
    RenderWebhook(Option<WebhookDelivery>),
    RenderLedgerWebhook(Option<WebhookDelivery>),
}

impl RuntimeInner {
    pub async fn load(
        configs: &[PluginConfig],
        services: PluginServices,
    ) -> Result<RuntimeInner, PluginError> {
        let mut inner = Self::load_manifests(configs, services).await?;
        inner.claim_routes()?;
        Ok(inner)
    }

    /// Compiles and links every plugin and reads its manifest, without checking the
    /// manifest (`polypay plugin check` reports what is wrong with it instead).
    pub async fn load_manifests(
        configs: &[PluginConfig],
        services: PluginServices,
    ) -> Result<RuntimeInner, PluginError> {
        let engine = engine::shared().map_err(PluginError::Engine)?;
        let mut linker: Linker<PluginState> = Linker::new(&engine);
        super::wasi::add_to_linker(&mut linker).map_err(EngineError::from)?;
        version::add_to_linker(&mut linker).map_err(EngineError::from)?;

        let mut names: Vec<String> = Vec::new();
        for c in configs {
            if c.name.is_empty() || names.contains(&c.name) {
                return Err(PluginError::Config {
                    plugin: c.name.clone(),
                    reason: "plugin names must be unique and non-empty".into(),
                });
            }
            if c.memory_bytes() > engine::MAX_MEMORY_BYTES || c.memory_mb == 0 {
                return Err(PluginError::Config {
                    plugin: c.name.clone(),
                    reason: format!("memory_mb must be 1..={}", engine::MAX_MEMORY_BYTES >> 20),
                });
            }
            if c.deadline_ms == 0 || c.max_body_bytes == 0 {
                return Err(PluginError::Config {
                    plugin: c.name.clone(),
                    reason: "deadline_ms and max_body_bytes must be positive".into(),
                });
            }
            if c.wall_ms < c.deadline_ms {
                return Err(PluginError::Config {
                    plugin: c.name.clone(),
                    reason: format!(
                        "wall_ms ({}) must be at least deadline_ms ({})",
                        c.wall_ms, c.deadline_ms
                    ),
                });
            }
            if c.max_concurrent_requests == 0 || c.webhook_render_slots == 0 {
                return Err(PluginError::Config {
                    plugin: c.name.clone(),
                    reason: "max_concurrent_requests and webhook_render_slots must be positive"
                        .into(),
                });
            }
            names.push(c.name.clone());
        }
        let slots: u64 = configs
            .iter()
            .map(|c| u64::from(c.max_concurrent_requests) + u64::from(c.webhook_render_slots))
            .sum();
        if slots > u64::from(engine::MAX_CONCURRENT_INSTANCES) {
            return Err(PluginError::Config {
                plugin: names.join(", "),
                reason: format!(
                    "max_concurrent_requests + webhook_render_slots add up to {slots} over all \
                     plugins; the instance pool holds {}: lower them",
                    engine::MAX_CONCURRENT_INSTANCES
                ),
            });
        }

        check_default_merchants(configs, &services).await?;

        // Compile in parallel on blocking threads: Cranelift is CPU-bound.
        let compiles: Vec<_> = configs
            .iter()
            .map(|c| {
                let (engine, path) = (engine.clone(), c.wasm.clone());
                tokio::task::spawn_blocking(move || engine::component(&engine, &path))
            })
            .collect();
        let mut plugins = Vec::with_capacity(configs.len());
        for (config, compile) in configs.iter().zip(compiles) {
            let load_err = |reason: String| PluginError::Load {
                plugin: config.name.clone(),
                reason,
            };
            let component = compile
                .await
                .map_err(|e| load_err(e.to_string()))?
                .map_err(|e| load_err(e.to_string()))?;
            // An unsupported or mixed contract version, or an import the host does not
            // provide (e.g. wasi:sockets), fails here, by name.
            let (pre, version) = version::pre(&linker, &component).map_err(|e| match e {
                PrepareError::Contract(source) => PluginError::Contract {
                    plugin: config.name.clone(),
                    source,
                },
                PrepareError::Link(e) => load_err(format!("{e:#}")),
            })?;
            let settings_json =
                serde_json::to_string(&config.settings).map_err(|e| load_err(e.to_string()))?;
            for (chain, xpub) in &config.deposit_xpubs {
                crate::matcher::parse_xpub(xpub)
                    .map_err(|e| load_err(format!("deposit_xpubs.{chain}: {e}")))?;
            }
            let identity = Arc::new(PluginIdentity {
                name: config.name.clone(),
                settings_json,
                default_merchant: config.default_merchant.clone(),
                kv_quota: crate::store::kv::KvQuota {
                    max_entries: config.kv_max_entries,
                    max_bytes: config.kv_max_bytes,
                },
                deposit_xpubs: config.deposit_xpubs.clone(),
            });
            let placeholder = Manifest {
                name: String::new(),
                version: String::new(),
                routes: Vec::new(),
                settings_schema: None,
                credentials: Vec::new(),
                openapi: None,
            };
            plugins.push(LoadedPlugin {
                label: Arc::from(config.name.as_str()),
                identity,
                config: config.clone(),
                manifest: placeholder,
                version,
                pre,
                requests: Arc::new(Semaphore::new(config.max_concurrent_requests as usize)),
                renders: Arc::new(Semaphore::new(config.webhook_render_slots as usize)),
            });
        }

        let mut inner = RuntimeInner {
            engine,
            plugins,
            claims: Vec::new(),
            services,
            instances_started: AtomicU64::new(0),
            faults: Tally::new(),
            overloads: Tally::new(),
        };
        for index in 0..inner.plugins.len() {
            let name = inner.plugins[index].identity.name.clone();
            let manifest = match inner
                .run(
                    index,
                    CallKind::Manifest,
                    "startup".into(),
                    None,
                    Call::Manifest,
                )
                .await
            {
                Ok(CallOutput::Manifest(m)) => m,
                Ok(_) => unreachable!("manifest call returns a manifest"),
                Err(CallError::Fault(fault)) => {
                    return Err(PluginError::Load {
                        plugin: name,
                        reason: format!("manifest() failed: {}", fault.detail),
                    });
                }
                Err(CallError::Overload(overload)) => {
                    return Err(PluginError::Load {
                        plugin: name,
                        reason: format!(
                            "manifest() could not run: the host is overloaded ({})",
                            overload.as_str()
                        ),
                    });
                }
            };
            inner.plugins[index].manifest = manifest;
        }
        Ok(inner)
    }

    /// Checks every plugin's manifest (credentials, OpenAPI document, routes under the
    /// configured prefix) and builds the route table; any failure names the plugin.
    fn claim_routes(&mut self) -> Result<(), PluginError> {
        let names: Vec<String> = self
            .plugins
            .iter()
            .map(|p| p.identity.name.clone())
            .collect();
        let mut claims = Vec::new();
        for (index, plugin) in self.plugins.iter().enumerate() {
            let (name, manifest) = (&names[index], &plugin.manifest);
            let prefix =
                routes::normalize_prefix(plugin.config.prefix.as_deref()).map_err(|source| {
                    PluginError::Prefix {
                        plugin: name.clone(),
                        source,
                    }
                })?;
            capabilities::check_credential_templates(&manifest.credentials).map_err(|reason| {
                PluginError::Load {
                    plugin: name.clone(),
                    reason: format!("manifest() declares a bad credential: {reason}"),
                }
            })?;
            if let Some(document) = &manifest.openapi {
                openapi::check(document).map_err(|e| PluginError::Load {
                    plugin: name.clone(),
                    reason: format!("manifest() declares a bad OpenAPI document: {e}"),
                })?;
            }
            let declared: Vec<(Vec<String>, String)> = manifest
                .routes
                .iter()
                .map(|r| (r.methods.clone(), r.path.clone()))
                .collect();
            claims.extend(routes::claims(index, name, &prefix, &declared)?);
            tracing::info!(
                plugin = %name,
                manifest_name = %manifest.name,
                version = %manifest.version,
                contract = %plugin.version,
                routes = manifest.routes.len(),
                prefix = %prefix,
                "plugin loaded"
            );
        }
        routes::check_conflicts(&claims, &names)?;
        self.claims = claims;
        Ok(())
    }

    pub fn index_of(&self, plugin: &str) -> Option<usize> {
        self.plugins.iter().position(|p| p.identity.name == plugin)
    }

    /// Runs `call` on a fresh instance of plugin `index`, in one of the plugin's slots for
    /// `kind`, on a task of its own (see the module docs).
    pub async fn call(
        self: &Arc<Self>,
        index: usize,
        kind: CallKind,
        request_id: String,
        merchant_id: Option<String>,
        call: Call,
    ) -> Result<CallOutput, CallError> {
        let plugin = &self.plugins[index];
        let permit: OwnedSemaphorePermit = match kind {
            // The webhook worker starts more deliveries at once than a plugin has
            // rendering slots; a rendering queues briefly for one rather than being
            // refused and postponed (which costs the worker a write and a claim).
            CallKind::Webhook => {
                tokio::time::timeout(RENDER_SLOT_WAIT, plugin.renders.clone().acquire_owned())
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
            CallKind::Request | CallKind::Manifest => {
                plugin.requests.clone().try_acquire_owned().ok()
            }
        }
        .ok_or(CallError::Overload(Overload::Concurrency))?;
        let inner = self.clone();
        let task = tokio::spawn(async move {
            let outcome = inner.run(index, kind, request_id, merchant_id, call).await;
            drop(permit);
            outcome
        });
        match task.await {
            Ok(outcome) => outcome,
            // A panic in host code: propagate it, as if the call had run here.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// A store for one call of plugin `index`: its scope, limits and call hooks.
    fn store(
        &self,
        index: usize,
        kind: CallKind,
        request_id: String,
        merchant_id: Option<String>,
        started: Instant,
    ) -> Store<PluginState> {
        let plugin = &self.plugins[index];
        let clock = CallClock::new(
            started,
            Duration::from_millis(plugin.config.deadline_ms),
            Duration::from_millis(plugin.config.wall_ms),
        );
        let scope = CallScope {
            plugin: plugin.identity.clone(),
            services: self.services.clone(),
            kind,
            request_id,
            merchant_id,
        };
        let mut store = Store::new(
            &self.engine,
            PluginState::new(scope, plugin.config.memory_bytes(), clock),
        );
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        // Each tick: past a limit → trap; otherwise yield to the executor so a busy
        // guest never starves other requests on the same worker.
        store.epoch_deadline_callback(|ctx| {
            ctx.data().clock.on_tick(Instant::now())?;
            Ok(UpdateDeadline::Yield(1))
        });
        // Host calls (and the yields above) are the host's time, not the guest's.
        store.call_hook(|mut ctx, hook| {
            let clock = &mut ctx.data_mut().clock;
            match hook {
                CallHook::CallingHost => clock.enter_host(Instant::now())?,
                CallHook::ReturningFromHost => clock.leave_host(Instant::now())?,
                CallHook::CallingWasm | CallHook::ReturningFromWasm => {}
            }
            Ok(())
        });
        store
    }

    /// Runs part of a call of plugin `index` and drops it, for the dispatch benchmark
    /// (`benches/plugin_dispatch.rs`): `instantiate` false builds the store only.
    pub async fn probe(&self, index: usize, instantiate: bool) -> wasmtime::Result<()> {
        let mut store = self.store(
            index,
            CallKind::Request,
            "probe".into(),
            None,
            Instant::now(),
        );
        if instantiate {
            self.plugins[index].pre.instantiate(&mut store).await?;
        }
        Ok(())
    }

    /// Runs `call` on a fresh instance of plugin `index`, within its limits, here.
    pub async fn run(
        &self,
        index: usize,
        kind: CallKind,
        request_id: String,
        merchant_id: Option<String>,
        call: Call,
    ) -> Result<CallOutput, CallError> {
        let plugin = &self.plugins[index];
        let started = Instant::now();
        let wall_len = Duration::from_millis(plugin.config.wall_ms);
        let mut store = self.store(index, kind, request_id.clone(), merchant_id, started);

        self.instances_started.fetch_add(1, Ordering::Relaxed);
        let run = plugin.pre.call(&mut store, call);
        // Writes begun by host calls of this call give up at its wall.
        let outcome = crate::store::with_write_deadline(started + wall_len, run).await;

        let state = store.data();
        let stderr = state.stderr.contents();
        log_output(
            &plugin.identity.name,
            &request_id,
            "stdout",
            &state.stdout.contents(),
        );
        log_output(&plugin.identity.name, &request_id, "stderr", &stderr);
        outcome.map_err(|error| {
            if error.downcast_ref::<HostOverloaded>().is_some() {
                tracing::warn!(plugin = %plugin.identity.name, %request_id, %error, written = state.clock.has_written(), "plugin call cut at its wall: the host is slow");
                return CallError::Overload(Overload::HostSlow);
            }
            if error.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some() {
                tracing::warn!(plugin = %plugin.identity.name, %request_id, %error, "no instance available");
                return CallError::Overload(Overload::Pool);
            }
            let kind = FaultKind::classify(&error, state.limiter.exhausted, &stderr);
            CallError::Fault(Fault {
                kind,
                detail: format!("{error:?}"),
            })
        })
    }
}

/// A configured `default_merchant` must exist (when the server has storage).
async fn check_default_merchants(
    configs: &[PluginConfig],
    services: &PluginServices,
) -> Result<(), PluginError> {
    let Some(storage) = &services.inner.storage else {
        return Ok(());
    };
    for c in configs {
        let Some(id) = &c.default_merchant else {
            continue;
        };
        let config_err = |reason: String| PluginError::Config {
            plugin: c.name.clone(),
            reason,
        };
        let mut conn = storage
            .store
            .pool()
            .acquire()
            .await
            .map_err(|e| config_err(e.to_string()))?;
        let found = crate::store::merchants::get_merchant(&mut conn, id)
            .await
            .map_err(|e| config_err(e.to_string()))?;
        if found.is_none() {
            return Err(config_err(format!(
                "default_merchant `{id}` does not exist"
            )));
        }
    }
    Ok(())
}

fn log_output(plugin: &str, request_id: &str, stream: &str, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    for line in String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        tracing::info!(plugin, request_id, stream, "{line}");
    }
}

impl RuntimeInner {
    /// Records a fault: one log line with the details, one metric increment.
    pub fn record_fault(&self, index: usize, request_id: &str, fault: &Fault) {
        let plugin = self.plugins[index].identity.name.as_str();
        tracing::error!(plugin, request_id, kind = fault.kind.as_str(), detail = %fault.detail, "plugin fault");
        metrics::counter!("polypay_plugin_faults_total", "plugin" => plugin.to_owned(), "kind" => fault.kind.as_str())
            .increment(1);
        self.faults.add((index, fault.kind));
    }

    pub fn fault_count(&self, index: usize, kind: FaultKind) -> u64 {
        self.faults.get(&(index, kind))
    }

    /// Records an overload: one metric increment (the log line was written where it
    /// happened, or the refusal is routine).
    pub fn record_overload(&self, index: usize, overload: Overload) {
        let plugin = self.plugins[index].identity.name.as_str();
        metrics::counter!("polypay_plugin_overloads_total", "plugin" => plugin.to_owned(), "cause" => overload.as_str())
            .increment(1);
        self.overloads.add((index, overload));
    }

    pub fn overload_count(&self, index: usize, overload: Overload) -> u64 {
        self.overloads.get(&(index, overload))
    }

    /// Calls of `kind` plugin `index` is running now.
    pub fn in_flight(&self, index: usize, kind: CallKind) -> usize {
        let plugin = &self.plugins[index];
        match kind {
            CallKind::Webhook => {
                plugin.config.webhook_render_slots as usize - plugin.renders.available_permits()
            }
            CallKind::Request | CallKind::Manifest => {
                plugin.config.max_concurrent_requests as usize - plugin.requests.available_permits()
            }
        }
    }
}
