//! Giving memory the process no longer uses back to the system.
//!
//! With glibc, memory freed by the process mostly stays with the process: every thread
//! that meets contention gets a malloc arena of its own (up to eight per core), and an
//! arena returns only the free space at its very top. A burst of requests (plugin calls
//! allocate and free their canonical-ABI copies, JSON and database rows on every worker
//! and blocking thread) leaves its high-water mark resident for good. Two measures,
//! both glibc-only (no-ops elsewhere):
//! - [`limit_arenas`]: at most [`ARENAS`] arenas, unless the operator set
//!   `MALLOC_ARENA_MAX` (glibc reads it itself);
//! - [`trim_periodically`]: `malloc_trim(0)` every `memory_trim_interval_ms`
//!   (`[plugin_runtime]`, default 10 s; 0 turns it off), which hands the free pages of
//!   every arena back to the kernel. It runs on a blocking thread; a trim of an idle
//!   heap takes well under a millisecond.
//!
//! The plugin instance pool keeps what it keeps on purpose, bounded (see
//! `plugin::engine`).

use std::time::Duration;

/// Most glibc malloc arenas (see the module docs).
pub const ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at [`ARENAS`] unless `MALLOC_ARENA_MAX` is set. Call it
/// first thing in `main`, before threads allocate.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes a malloc tunable.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    }
}

/// Gives the free pages of every malloc arena back to the kernel; `true` if any were.
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes the allocator's own locks.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

/// Runs [`trim`] every `interval` until `stop` resolves.
pub async fn trim_periodically(interval: Duration, stop: impl std::future::Future<Output = ()>) {
    let mut stop = std::pin::pin!(stop);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = &mut stop => return,
        }
        if let Ok(released) = tokio::task::spawn_blocking(trim).await {
            tracing::trace!(released, "malloc_trim");
        }
    }
}
