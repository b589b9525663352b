//! Per-instance resource limits and the faults they produce.
//!
//! Memory is capped per instance, over all its linear memories and tables together
//! ([`MemoryLimiter`]): a component may declare several memories (and tables), so a
//! per-memory cap would multiply. Growing past the cap traps the instance at once (rather
//! than letting `memory.grow` fail and the guest's allocator abort), so the fault is
//! reported as `memory`.
//!
//! Time ([`CallClock`]) has two bounds:
//! - the CPU budget (`deadline_ms`) counts time spent in guest code only: time inside
//!   host calls (a database query, a lock wait, an epoch yield while other requests run)
//!   is the host's, not the plugin's. Running past it is the fault `deadline`.
//! - the wall (`wall_ms`) counts everything, so a plugin cannot keep an instance alive
//!   forever by looping on host calls. Which side is to blame depends on where the wall
//!   is reached: during a host call that has itself been running for a while (at least
//!   [`SLOW_HOST_CALL`], or a tenth of the wall if that is less), the host was slow: the
//!   call ends as [`HostOverloaded`] (503 with `Retry-After`, counted as an overload, not
//!   as a plugin fault). Anywhere else (in guest code, at the entry of a further host
//!   call, or in a quick host call of a plugin calling the host in a loop) the plugin kept
//!   working: fault `deadline`.
//!
//! Once a call has written something (a host call that changes state returned success),
//! the host never turns the call into a failure for its own slowness: a client must not
//! be told "failed" about something that was done. From then on the wall only bounds the
//! guest (at twice `wall_ms`), and host calls are never cut. Writes themselves cannot
//! commit after the wall: the store bounds their lock waits by it (see
//! `crate::store::with_write_deadline`), so a write either commits before the wall or
//! fails with nothing written.

use std::fmt;
use std::time::{Duration, Instant};
use wasmtime::ResourceLimiter;

/// Raised when a call runs past one of its time limits in guest code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeadlineExceeded {
    /// Guest code ran for longer than the CPU budget.
    Cpu(Duration),
    /// The call as a whole ran past its wall while the guest was working.
    Wall(Duration),
}

impl fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeadlineExceeded::Cpu(budget) => {
                write!(
                    f,
                    "plugin code ran past its {} ms CPU budget",
                    budget.as_millis()
                )
            }
            DeadlineExceeded::Wall(wall) => write!(
                f,
                "plugin kept working past its {} ms wall (host calls included)",
                wall.as_millis()
            ),
        }
    }
}

impl std::error::Error for DeadlineExceeded {}

/// Raised when a host call is still running when the call's wall passes and nothing has
/// been written: the host is too slow to serve this request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HostOverloaded {
    pub wall: Duration,
}

impl fmt::Display for HostOverloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a host call was still running at the {} ms wall: the host is overloaded",
            self.wall.as_millis()
        )
    }
}

impl std::error::Error for HostOverloaded {}

/// A host call running at least this long when the wall passes means the host is slow
/// (healthy host calls take milliseconds).
pub(crate) const SLOW_HOST_CALL: Duration = Duration::from_millis(100);

/// Why a host call may not return to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WallReached {
    /// The plugin kept working past its wall.
    ByGuest(DeadlineExceeded),
    /// The host was too slow.
    ByHost(HostOverloaded),
}

impl From<WallReached> for wasmtime::Error {
    fn from(w: WallReached) -> Self {
        match w {
            WallReached::ByGuest(e) => wasmtime::Error::new(e),
            WallReached::ByHost(e) => wasmtime::Error::new(e),
        }
    }
}

/// The time limits of one call (see the module docs), fed by the epoch callback and the
/// store's call hook. All methods take `now` so the rules are testable without waiting.
#[derive(Debug)]
pub(crate) struct CallClock {
    started: Instant,
    budget: Duration,
    wall_len: Duration,
    /// Time spent in completed host calls.
    host_time: Duration,
    /// When the host call in progress started, if one is.
    in_host_since: Option<Instant>,
    /// Host calls in progress: a host call may call back into the guest (to allocate
    /// memory for its result), which may call the host again (an epoch check).
    host_depth: u32,
    /// A host call that changes state succeeded during this call.
    wrote: bool,
}

impl CallClock {
    pub fn new(started: Instant, budget: Duration, wall_len: Duration) -> Self {
        CallClock {
            started,
            budget,
            wall_len,
            host_time: Duration::ZERO,
            in_host_since: None,
            host_depth: 0,
            wrote: false,
        }
    }

    /// The instant the wall passes; pushed to twice `wall_ms` once the call has written.
    pub fn wall(&self) -> Instant {
        if self.wrote {
            self.started + self.wall_len * 2
        } else {
            self.started + self.wall_len
        }
    }

    /// Time spent in guest code so far.
    pub fn guest_time(&self, now: Instant) -> Duration {
        let in_host = self
            .in_host_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        now.saturating_duration_since(self.started)
            .saturating_sub(self.host_time + in_host)
    }

    /// An epoch tick: the checks of [`CallClock::check_guest`], unless the guest code
    /// running is a callback of a host call in progress (whose time is the host's, and
    /// whose end is judged when it returns). The tick itself runs as a host call of depth 1.
    pub fn on_tick(&self, now: Instant) -> Result<(), DeadlineExceeded> {
        if self.host_depth > 1 {
            return Ok(());
        }
        self.check_guest(now)
    }

    /// Checks made while the guest runs (every epoch tick, every host-call entry).
    pub fn check_guest(&self, now: Instant) -> Result<(), DeadlineExceeded> {
        if self.guest_time(now) >= self.budget {
            return Err(DeadlineExceeded::Cpu(self.budget));
        }
        if now >= self.wall() {
            return Err(DeadlineExceeded::Wall(self.wall_len));
        }
        Ok(())
    }

    /// The guest calls into the host.
    pub fn enter_host(&mut self, now: Instant) -> Result<(), DeadlineExceeded> {
        if self.host_depth == 0 {
            self.check_guest(now)?;
            self.in_host_since = Some(now);
        }
        self.host_depth += 1;
        Ok(())
    }

    /// A host call returns to the guest.
    pub fn leave_host(&mut self, now: Instant) -> Result<(), WallReached> {
        self.host_depth = self.host_depth.saturating_sub(1);
        if self.host_depth > 0 {
            return Ok(());
        }
        let since = self.in_host_since.take().unwrap_or(now);
        let took = now.saturating_duration_since(since);
        self.host_time += took;
        if self.wrote || now < self.wall() {
            return Ok(());
        }
        if since < self.wall() && took >= SLOW_HOST_CALL.min(self.wall_len / 10) {
            Err(WallReached::ByHost(HostOverloaded {
                wall: self.wall_len,
            }))
        } else {
            Err(WallReached::ByGuest(DeadlineExceeded::Wall(self.wall_len)))
        }
    }

    /// A host call that changes state succeeded.
    pub fn wrote(&mut self) {
        self.wrote = true;
    }

    pub fn has_written(&self) -> bool {
        self.wrote
    }
}

/// How many bytes one table element costs the host (a pointer).
const TABLE_ELEMENT_BYTES: usize = 8;

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
            "plugin asked for {} bytes of memories and tables in total; its cap is {}",
            self.desired, self.limit
        )
    }
}

impl std::error::Error for MemoryExhausted {}

/// Caps the linear memories and tables of one store, together.
pub(crate) struct MemoryLimiter {
    max_bytes: usize,
    /// Bytes granted so far, over every memory and table of the instance.
    used: usize,
    /// The last grant, taken back if wasmtime then fails the growth itself.
    last_grant: usize,
    /// Set once a growth was refused, so the fault is classified as memory
    /// even if the guest turned the refusal into some other trap.
    pub exhausted: bool,
}

impl MemoryLimiter {
    pub fn new(max_bytes: usize) -> Self {
        MemoryLimiter {
            max_bytes,
            used: 0,
            last_grant: 0,
            exhausted: false,
        }
    }

    fn grow(&mut self, current: usize, desired: usize) -> wasmtime::Result<bool> {
        let extra = desired.saturating_sub(current);
        let total = self.used.saturating_add(extra);
        if total > self.max_bytes {
            self.exhausted = true;
            return Err(MemoryExhausted {
                limit: self.max_bytes,
                desired: total,
            }
            .into());
        }
        self.used = total;
        self.last_grant = extra;
        Ok(true)
    }

    fn grow_failed(&mut self) {
        self.used = self
            .used
            .saturating_sub(std::mem::take(&mut self.last_grant));
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(current, desired)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.grow_failed();
        Ok(())
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(
            current.saturating_mul(TABLE_ELEMENT_BYTES),
            desired.saturating_mul(TABLE_ELEMENT_BYTES),
        )
    }

    fn table_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.grow_failed();
        Ok(())
    }
}

/// Why a plugin call failed; the `kind` label of `polypay_plugin_faults_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// The guest ran past its CPU budget, or kept working past its wall.
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
    fn the_cap_covers_every_memory_and_table_of_the_instance_together() {
        let mut limiter = MemoryLimiter::new(10 << 20);
        // Two memories of 4 MiB each fit; a third does not, though each alone would.
        assert!(limiter.memory_growing(0, 4 << 20, None).unwrap());
        assert!(limiter.memory_growing(0, 4 << 20, None).unwrap());
        assert!(limiter.memory_growing(0, 4 << 20, None).is_err());
        assert!(limiter.exhausted);
        // Tables count too: 2 MiB are left, 300k elements of 8 bytes are more.
        let mut limiter = MemoryLimiter::new(10 << 20);
        assert!(limiter.memory_growing(0, 8 << 20, None).unwrap());
        assert!(limiter.table_growing(0, 300_000, None).is_err());
        // A growth wasmtime fails after the limiter allowed it is given back.
        let mut limiter = MemoryLimiter::new(10 << 20);
        assert!(limiter.memory_growing(0, 8 << 20, None).unwrap());
        limiter
            .memory_grow_failed(wasmtime::format_err!("beyond the maximum"))
            .unwrap();
        assert!(limiter.memory_growing(0, 8 << 20, None).unwrap());
    }

    #[test]
    fn only_guest_code_counts_against_the_cpu_budget() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut clock = CallClock::new(t0, ms(100), ms(1000));
        clock.enter_host(t0 + ms(50)).unwrap();
        // 400 ms in a host call (a lock wait) do not count.
        clock.leave_host(t0 + ms(450)).unwrap();
        assert_eq!(clock.guest_time(t0 + ms(480)), ms(80));
        assert!(clock.check_guest(t0 + ms(480)).is_ok());
        assert_eq!(
            clock.check_guest(t0 + ms(500)),
            Err(DeadlineExceeded::Cpu(ms(100)))
        );
    }

    #[test]
    fn guest_callbacks_inside_a_host_call_leave_its_time_to_the_host() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut clock = CallClock::new(t0, ms(100), ms(1000));
        clock.enter_host(t0 + ms(10)).unwrap();
        // The host allocates its result in guest memory; an epoch check fires in there.
        clock.enter_host(t0 + ms(900)).unwrap();
        assert!(
            clock.on_tick(t0 + ms(1100)).is_ok(),
            "judged when the host call returns"
        );
        assert!(clock.leave_host(t0 + ms(901)).is_ok());
        clock.wrote();
        assert!(clock.leave_host(t0 + ms(1200)).is_ok());
        assert_eq!(clock.guest_time(t0 + ms(1250)), ms(60));
    }

    #[test]
    fn the_wall_blames_whoever_was_running_when_it_passed() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // Reached inside a slow host call: the host was slow.
        let mut clock = CallClock::new(t0, ms(100), ms(1000));
        clock.enter_host(t0 + ms(10)).unwrap();
        assert_eq!(
            clock.leave_host(t0 + ms(1200)),
            Err(WallReached::ByHost(HostOverloaded { wall: ms(1000) }))
        );
        // Reached in guest code after many quick host calls: the plugin's doing.
        let mut clock = CallClock::new(t0, ms(500), ms(1000));
        for i in 0..99 {
            clock.enter_host(t0 + ms(i * 10)).unwrap();
            clock.leave_host(t0 + ms(i * 10 + 9)).unwrap();
        }
        assert_eq!(
            clock.check_guest(t0 + ms(1000)),
            Err(DeadlineExceeded::Wall(ms(1000)))
        );
        assert!(clock.enter_host(t0 + ms(1001)).is_err());
        // Reached inside one of those quick host calls: still the plugin's doing.
        let mut clock = CallClock::new(t0, ms(2000), ms(1000));
        clock.enter_host(t0 + ms(995)).unwrap();
        assert_eq!(
            clock.leave_host(t0 + ms(1004)),
            Err(WallReached::ByGuest(DeadlineExceeded::Wall(ms(1000))))
        );
    }

    #[test]
    fn a_call_that_wrote_is_never_failed_for_the_hosts_slowness() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut clock = CallClock::new(t0, ms(100), ms(1000));
        clock.enter_host(t0 + ms(10)).unwrap();
        clock.wrote();
        assert!(clock.leave_host(t0 + ms(1500)).is_ok());
        assert!(clock.check_guest(t0 + ms(1550)).is_ok());
        // The guest is still bounded: twice the wall.
        assert!(clock.check_guest(t0 + ms(2000)).is_err());
    }

    #[test]
    fn faults_are_classified_by_cause() {
        let deadline = wasmtime::Error::new(DeadlineExceeded::Cpu(Duration::from_secs(1)));
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
