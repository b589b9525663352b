//! The process-wide wasmtime engine, its epoch ticker, and the compiled-component cache.
//!
//! One [`Engine`] serves every plugin runtime in the process: components are
//! tied to the engine that compiled them, so sharing it lets a restarted or
//! second runtime (tests, reloads) reuse compiled code instead of paying
//! Cranelift again. The engine uses:
//! - the pooling instance allocator, sized for [`MAX_CONCURRENT_INSTANCES`]
//!   live instances; instantiation is then a few slot resets, not mmaps;
//! - epoch interruption, driven by a ticker on its own OS thread every
//!   [`EPOCH_TICK`] (so the tick keeps time even when every async worker is
//!   busy running guests).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

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

static ENGINE: OnceLock<Result<Engine, EngineError>> = OnceLock::new();

/// The shared engine, created (and its ticker started) on first use.
pub(crate) fn shared() -> Result<Engine, EngineError> {
    ENGINE
        .get_or_init(|| build().map_err(EngineError::from))
        .clone()
}

fn build() -> wasmtime::Result<Engine> {
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
        .max_memory_size(MAX_MEMORY_BYTES);

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
