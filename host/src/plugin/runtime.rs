//! Loading plugins and running one call on a fresh instance.

use super::PluginError;
use super::bindings::polypay::plugin::plugin_types::{InvoiceEvent, Manifest, WebhookDelivery};
use super::bindings::{HttpRequest, HttpResponse, Plugin, PluginPre};
use super::capabilities;
use super::config::PluginConfig;
use super::engine;
use super::limits::{DeadlineExceeded, FaultKind};
use super::routes::{self, Claim};
use super::services::PluginServices;
use super::state::{CallKind, CallScope, PluginIdentity, PluginState};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};

/// Extra wall-clock time granted beyond a call's deadline before the host
/// abandons a call stuck in a host function (the guest itself is stopped
/// at the deadline by the epoch check).
const HOST_CALL_GRACE: Duration = Duration::from_millis(250);

/// A mounted plugin: its compiled component, ready to instantiate.
pub(crate) struct LoadedPlugin {
    pub identity: Arc<PluginIdentity>,
    pub config: PluginConfig,
    pub manifest: Manifest,
    pre: PluginPre<PluginState>,
}

pub(crate) struct RuntimeInner {
    engine: Engine,
    pub plugins: Vec<LoadedPlugin>,
    pub claims: Vec<Claim>,
    pub services: PluginServices,
    /// Instances created so far (for tests and the admin API).
    pub instances_started: AtomicU64,
    /// Faults so far, per (plugin index, kind); mirrors the metric.
    faults: Mutex<HashMap<(usize, FaultKind), u64>>,
}

/// A failed plugin call: why, and what the log should say.
#[derive(Debug)]
pub struct Fault {
    pub kind: FaultKind,
    pub detail: String,
}

/// What one call asks of the guest.
pub(crate) enum Call {
    Manifest,
    Handle(Box<HttpRequest>),
    RenderWebhook(Box<InvoiceEvent>, u32),
}

pub(crate) enum CallOutput {
    Manifest(Manifest),
    Handle(HttpResponse),
    RenderWebhook(Option<WebhookDelivery>),
}

impl RuntimeInner {
    pub async fn load(
        configs: &[PluginConfig],
        services: PluginServices,
    ) -> Result<RuntimeInner, PluginError> {
        let engine = engine::shared().map_err(PluginError::Engine)?;
        let mut linker: Linker<PluginState> = Linker::new(&engine);
        super::wasi::add_to_linker(&mut linker)
            .map_err(|e| PluginError::Engine(format!("{e:#}")))?;
        Plugin::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)
            .map_err(|e| PluginError::Engine(format!("{e:#}")))?;

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
            names.push(c.name.clone());
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
                .map_err(load_err)?;
            // A component importing anything else (e.g. wasi:sockets) fails here, by name.
            let instance_pre = linker
                .instantiate_pre(&component)
                .map_err(|e| load_err(format!("{e:#}")))?;
            let pre = PluginPre::new(instance_pre)
                .map_err(|e| load_err(format!("not a polypay plugin: {e:#}")))?;
            let settings_json =
                serde_json::to_string(&config.settings).map_err(|e| load_err(e.to_string()))?;
            let identity = Arc::new(PluginIdentity {
                name: config.name.clone(),
                settings_json,
                default_merchant: config.default_merchant.clone(),
            });
            let placeholder = Manifest {
                name: String::new(),
                version: String::new(),
                routes: Vec::new(),
                settings_schema: None,
                credentials: Vec::new(),
            };
            plugins.push(LoadedPlugin {
                identity,
                config: config.clone(),
                manifest: placeholder,
                pre,
            });
        }

        let mut inner = RuntimeInner {
            engine,
            plugins,
            claims: Vec::new(),
            services,
            instances_started: AtomicU64::new(0),
            faults: Mutex::new(HashMap::new()),
        };
        let mut claims = Vec::new();
        for index in 0..inner.plugins.len() {
            let name = inner.plugins[index].identity.name.clone();
            let manifest = match inner
                .call(
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
                Err(fault) => {
                    return Err(PluginError::Load {
                        plugin: name,
                        reason: format!("manifest() failed: {}", fault.detail),
                    });
                }
            };
            let prefix = routes::normalize_prefix(inner.plugins[index].config.prefix.as_deref())
                .map_err(|reason| PluginError::Config {
                    plugin: name.clone(),
                    reason,
                })?;
            capabilities::check_credential_templates(&manifest.credentials).map_err(|reason| {
                PluginError::Load {
                    plugin: name.clone(),
                    reason: format!("manifest() declares a bad credential: {reason}"),
                }
            })?;
            let declared: Vec<(Vec<String>, String)> = manifest
                .routes
                .iter()
                .map(|r| (r.methods.clone(), r.path.clone()))
                .collect();
            claims.extend(routes::claims(index, &name, &prefix, &declared)?);
            tracing::info!(
                plugin = %name,
                manifest_name = %manifest.name,
                version = %manifest.version,
                routes = manifest.routes.len(),
                prefix = %prefix,
                "plugin loaded"
            );
            inner.plugins[index].manifest = manifest;
        }
        routes::check_conflicts(&claims, &names)?;
        inner.claims = claims;
        Ok(inner)
    }

    pub fn index_of(&self, plugin: &str) -> Option<usize> {
        self.plugins.iter().position(|p| p.identity.name == plugin)
    }

    /// Runs `call` on a fresh instance of plugin `index`, within its limits.
    pub async fn call(
        &self,
        index: usize,
        kind: CallKind,
        request_id: String,
        merchant_id: Option<String>,
        call: Call,
    ) -> Result<CallOutput, Fault> {
        let plugin = &self.plugins[index];
        let budget = Duration::from_millis(plugin.config.deadline_ms);
        let started = Instant::now();
        let scope = CallScope {
            plugin: plugin.identity.clone(),
            services: self.services.clone(),
            kind,
            request_id: request_id.clone(),
            merchant_id,
        };
        let mut store = Store::new(
            &self.engine,
            PluginState::new(scope, plugin.config.memory_bytes(), started + budget),
        );
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        // Each tick: past the deadline → trap; otherwise yield to the executor
        // so a busy guest never starves other requests on the same worker.
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Err(DeadlineExceeded.into())
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });

        self.instances_started.fetch_add(1, Ordering::Relaxed);
        let run = async {
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            Ok::<_, wasmtime::Error>(match call {
                Call::Manifest => CallOutput::Manifest(instance.call_manifest(&mut store).await?),
                Call::Handle(request) => {
                    CallOutput::Handle(instance.call_handle(&mut store, &request).await?)
                }
                Call::RenderWebhook(event, attempt) => CallOutput::RenderWebhook(
                    instance
                        .call_render_webhook(&mut store, &event, attempt)
                        .await?,
                ),
            })
        };
        let outcome = match tokio::time::timeout(budget + HOST_CALL_GRACE, run).await {
            Ok(result) => result,
            Err(_) => Err(wasmtime::Error::new(DeadlineExceeded)),
        };

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
            let kind = FaultKind::classify(&error, state.limiter.exhausted, &stderr);
            Fault {
                kind,
                detail: format!("{error:?}"),
            }
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
        *self
            .faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((index, fault.kind))
            .or_default() += 1;
    }

    pub fn fault_count(&self, index: usize, kind: FaultKind) -> u64 {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(index, kind))
            .copied()
            .unwrap_or(0)
    }
}
