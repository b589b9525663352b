//! The process-wide wasmtime engine, its epoch ticker, and the compiled-component cache.
//!
//! One [`Engine`] serves every plugin runtime in the process: components are
//! tied to the engine that compiled them, so sharing it lets a restarted or
//! second runtime (tests, reloads) reuse compiled code instead of paying
//! Cranelift again. The engine uses:
//! - the pooling instance allocator, sized for [`MAX_CONCURRENT_INSTANCES`]
//!   live instances; instantiation is then a few slot resets, not mmaps;
//! - slots reset in place ([`PoolTuning`]): when an instance ends, the pages its
//!   memories and tables dirtied (found with Linux's `PAGEMAP_SCAN`, kernel ≥ 6.7) are
//!   copied back to their initial contents, up to [`PoolTuning::memory_keep_resident`]
//!   bytes per memory, instead of being given back to the kernel; the next instance in
//!   the slot then takes no page faults for them. The reset restores exactly the
//!   initial image, so a fresh instance sees nothing of the previous one. Without
//!   `PAGEMAP_SCAN` the pool falls back to wasmtime's default (every slot given back
//!   with `madvise`): resetting a fixed low range instead would `memset` the guest's
//!   whole 1 MiB stack on every request. What stays resident is bounded by the slots
//!   ever used at once (warm slots are reused first, [`PoolTuning::max_unused_warm_slots`])
//!   times the per-memory bound; `/metrics` shows it as
//!   `polypay_plugin_pool_idle_resident_bytes`.
//! - epoch interruption, driven by a ticker on its own OS thread every
//!   [`EPOCH_TICK`] (so the tick keeps time even when every async worker is
//!   busy running guests).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};
use wasmtime::component::Component;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Epoch period: the granularity of deadlines and of yielding to the executor.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Instances alive at once across all plugins; beyond it requests get 503.
pub(crate) const MAX_CONCURRENT_INSTANCES: u32 = 256;

/// Largest per-plugin memory cap (`memory_mb`) the pool can honour.
pub(crate) const MAX_MEMORY_BYTES: usize = 1 << 30;

/// Why the WebAssembly engine or the host's linker could not be set up (a host
/// problem, not a plugin's).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0:#}")]
pub struct EngineError(Arc<wasmtime::Error>);

impl From<wasmtime::Error> for EngineError {
    fn from(e: wasmtime::Error) -> Self {
        EngineError(Arc::new(e))
    }
}

/// Why a plugin's component could not be compiled.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ComponentError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0:#}")]
    Compile(wasmtime::Error),
}

/// How the instance pool reuses its slots (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolTuning {
    /// Bytes of each linear memory reset in place rather than decommitted.
    pub memory_keep_resident: usize,
    /// Bytes of each table reset in place rather than decommitted.
    pub table_keep_resident: usize,
    /// Unused warm slots the pool keeps before it prefers cold ones.
    pub max_unused_warm_slots: u32,
}

impl PoolTuning {
    /// The settings the server runs with: in-place reset where `PAGEMAP_SCAN` is
    /// available, wasmtime's defaults otherwise.
    pub fn default_for_host() -> PoolTuning {
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            PoolTuning {
                memory_keep_resident: 2 << 20,
                table_keep_resident: 64 << 10,
                max_unused_warm_slots: 0,
            }
        } else {
            PoolTuning::wasmtime_defaults()
        }
    }

    /// wasmtime's own defaults: every slot given back to the kernel after use.
    pub fn wasmtime_defaults() -> PoolTuning {
        PoolTuning {
            memory_keep_resident: 0,
            table_keep_resident: 0,
            max_unused_warm_slots: 100,
        }
    }
}

static TUNING: OnceLock<PoolTuning> = OnceLock::new();

/// Sets the pool's tuning, before the engine is first used (benchmarks comparing
/// settings in separate processes); `false` if it is too late.
pub fn set_pool_tuning(tuning: PoolTuning) -> bool {
    TUNING.set(tuning).is_ok() && ENGINE.get().is_none()
}

static ENGINE: OnceLock<Result<Engine, EngineError>> = OnceLock::new();

/// The shared engine, created (and its ticker started) on first use.
pub(crate) fn shared() -> Result<Engine, EngineError> {
    ENGINE
        .get_or_init(|| {
            let tuning = *TUNING.get_or_init(PoolTuning::default_for_host);
            build(tuning).map_err(EngineError::from)
        })
        .clone()
}

/// Bytes the pool keeps resident in slots no instance uses now (0 before the engine
/// exists).
pub(crate) fn idle_resident_bytes() -> usize {
    match ENGINE.get() {
        Some(Ok(engine)) => engine.pooling_allocator_metrics().map_or(0, |m| {
            m.unused_memory_bytes_resident() + m.unused_table_bytes_resident()
        }),
        _ => 0,
    }
}

fn build(tuning: PoolTuning) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(MAX_CONCURRENT_INSTANCES)
        .total_core_instances(MAX_CONCURRENT_INSTANCES * 8)
        .total_memories(MAX_CONCURRENT_INSTANCES * 2)
        .total_tables(MAX_CONCURRENT_INSTANCES * 8)
        .total_stacks(MAX_CONCURRENT_INSTANCES)
        .max_core_instances_per_component(32)
        // Several memories per component (and per module, as wasm allows) are fine: the
        // per-instance cap covers all of them together (`limits::MemoryLimiter`).
        .max_memories_per_component(4)
        .max_memories_per_module(4)
        .max_tables_per_component(32)
        .max_memory_size(MAX_MEMORY_BYTES)
        .linear_memory_keep_resident(tuning.memory_keep_resident)
        .table_keep_resident(tuning.table_keep_resident)
        .max_unused_warm_slots(tuning.max_unused_warm_slots)
        .pagemap_scan(Enabled::Auto);

    let mut config = Config::new();
    config
        .epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .wasm_component_model(true);
    let engine = Engine::new(&config)?;

    let ticker = engine.weak();
    std::thread::Builder::new()
        .name("polypay-plugin-epoch".into())
        .spawn(move || {
            while let Some(engine) = ticker.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map_err(|e| wasmtime::format_err!("cannot start the epoch ticker thread: {e}"))?;
    Ok(engine)
}

type CacheKey = (PathBuf, u64, Option<SystemTime>);

static COMPONENTS: OnceLock<Mutex<HashMap<CacheKey, Component>>> = OnceLock::new();

/// Compiles the component at `path`, or returns the cached compilation of the
/// same file (same path, size and modification time).
pub(crate) fn component(engine: &Engine, path: &Path) -> Result<Component, ComponentError> {
    let meta = std::fs::metadata(path).map_err(|source| ComponentError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    let cache = COMPONENTS.get_or_init(Default::default);
    if let Some(c) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return Ok(c.clone());
    }
    let compiled = Component::from_file(engine, path).map_err(ComponentError::Compile)?;
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, compiled.clone());
    Ok(compiled)
}
