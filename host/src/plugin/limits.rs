//! Per-instance resource limits and the faults they produce.
//!
//! Memory is capped by a per-store [`MemoryLimiter`]: growing past the cap
//! traps the instance at once (rather than letting `memory.grow` fail and the
//! guest's allocator abort), so the fault is reported as `memory`. Time is
//! capped by epoch interruption (see `runtime`): the deadline check raises
//! [`DeadlineExceeded`].

use std::fmt;
use wasmtime::ResourceLimiter;

/// Raised by the epoch callback when a call runs past its deadline.
#[derive(Debug)]
pub(crate) struct DeadlineExceeded;

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("plugin exceeded its deadline")
    }
}

impl std::error::Error for DeadlineExceeded {}

/// Raised by [`MemoryLimiter`] when an instance asks for more than its cap.
#[derive(Debug)]
pub(crate) struct MemoryExhausted {
    pub limit: usize,
    pub desired: usize,
}

impl fmt::Display for MemoryExhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "plugin asked for {} bytes of memory; its cap is {}",
            self.desired, self.limit
        )
    }
}

impl std::error::Error for MemoryExhausted {}

/// Caps the linear memory (and table size) of one store.
pub(crate) struct MemoryLimiter {
    max_memory_bytes: usize,
    max_table_elements: usize,
    /// Set once a growth was refused, so the fault is classified as memory
    /// even if the guest turned the refusal into some other trap.
    pub exhausted: bool,
}

impl MemoryLimiter {
    pub fn new(max_memory_bytes: usize) -> Self {
        MemoryLimiter {
            max_memory_bytes,
            max_table_elements: 100_000,
            exhausted: false,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            self.exhausted = true;
            return Err(MemoryExhausted {
                limit: self.max_memory_bytes,
                desired,
            }
            .into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_table_elements)
    }
}

/// Why a plugin call failed; the `kind` label of `polypay_plugin_faults_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// The call ran past its deadline (CPU loop or a stuck host call).
    Deadline,
    /// The instance asked for more memory than its cap.
    Memory,
    /// The guest panicked (Rust panics abort with a message on stderr).
    Panic,
    /// Any other trap: `unreachable`, out-of-bounds access, a host bug.
    Trap,
    /// The plugin returned a response the host refuses to send (bad status
    /// or header, body over the cap).
    InvalidResponse,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Deadline => "deadline",
            FaultKind::Memory => "memory",
            FaultKind::Panic => "panic",
            FaultKind::Trap => "trap",
            FaultKind::InvalidResponse => "invalid-response",
        }
    }

    /// Classifies a failed call from its error, the limiter's flag and the
    /// guest's stderr.
    pub(crate) fn classify(
        error: &wasmtime::Error,
        memory_exhausted: bool,
        stderr: &[u8],
    ) -> FaultKind {
        if memory_exhausted || error.downcast_ref::<MemoryExhausted>().is_some() {
            FaultKind::Memory
        } else if error.downcast_ref::<DeadlineExceeded>().is_some()
            || error.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt)
        {
            FaultKind::Deadline
        } else if contains(stderr, b"panicked at") {
            FaultKind::Panic
        } else {
            FaultKind::Trap
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_refuses_and_flags_growth_past_the_cap() {
        let mut limiter = MemoryLimiter::new(1 << 20);
        assert!(limiter.memory_growing(0, 1 << 20, None).unwrap());
        assert!(!limiter.exhausted);
        let err = limiter.memory_growing(1 << 20, 2 << 20, None).unwrap_err();
        assert!(limiter.exhausted);
        assert_eq!(FaultKind::classify(&err, false, b""), FaultKind::Memory);
    }

    #[test]
    fn faults_are_classified_by_cause() {
        let deadline = wasmtime::Error::new(DeadlineExceeded);
        assert_eq!(
            FaultKind::classify(&deadline, false, b""),
            FaultKind::Deadline
        );
        let trap = wasmtime::Error::new(wasmtime::Trap::UnreachableCodeReached);
        assert_eq!(FaultKind::classify(&trap, false, b""), FaultKind::Trap);
        assert_eq!(
            FaultKind::classify(
                &trap,
                false,
                b"thread '<unnamed>' panicked at src/lib.rs:1:1"
            ),
            FaultKind::Panic
        );
        assert_eq!(FaultKind::classify(&trap, true, b""), FaultKind::Memory);
    }
}
