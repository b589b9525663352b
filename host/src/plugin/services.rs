//! What the host lends plugins: the services behind the capabilities.

use crate::chain::ChainConfig;
use crate::merchant::Merchants;
use crate::store::Store;
use governor::Quota;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::{NoOpMiddleware, StateInformationMiddleware};
use governor::state::keyed::DefaultKeyedStateStore;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The host services plugin capabilities are implemented with. Cheap to clone.
///
/// Built once at start-up:
///
/// ```no_run
/// # fn demo(store: polypay_host::store::Store, merchants: polypay_host::merchant::Merchants,
/// #         chains: Vec<polypay_host::chain::ChainConfig>) {
/// use polypay_host::plugin::PluginServices;
/// let services = PluginServices::new("https://pay.example.com")
///     .with_storage(store, merchants)
///     .with_chains(chains);
/// # }
/// ```
///
/// Without storage, every capability that needs it answers `unavailable`
/// (useful for routing tests and benchmarks).
#[derive(Clone)]
pub struct PluginServices {
    pub(crate) inner: Arc<ServicesInner>,
}

pub(crate) struct ServicesInner {
    /// Public base URL of the server, e.g. `https://pay.example.com`, used for
    /// hosted checkout links (`/pay/{invoice_id}`).
    pub public_base_url: String,
    pub rate_limiter: RateLimiter,
    pub storage: Option<Storage>,
    pub chains: Vec<ChainConfig>,
    /// Fiat rates (`rates.quote`, fiat prices); none configured by default.
    pub rates: Arc<crate::rates::Rates>,
    /// The `two-factor` capability; unset, it answers `unavailable`.
    pub two_factor: Option<crate::two_factor::TwoFactor>,
}

/// The database and the merchant secrets service (which holds the master key).
pub(crate) struct Storage {
    pub store: Store,
    pub merchants: Merchants,
}

impl PluginServices {
    /// Services for a server reachable at `public_base_url`.
    pub fn new(public_base_url: impl Into<String>) -> Self {
        PluginServices {
            inner: Arc::new(ServicesInner {
                public_base_url: public_base_url.into().trim_end_matches('/').to_owned(),
                rate_limiter: RateLimiter::default(),
                storage: None,
                chains: Vec::new(),
                rates: Arc::new(crate::rates::Rates::default()),
                two_factor: None,
            }),
        }
    }

    /// Backs merchants, invoices, kv, crypto and webhooks with the database.
    pub fn with_storage(mut self, store: Store, merchants: Merchants) -> Self {
        self.inner_mut().storage = Some(Storage { store, merchants });
        self
    }

    /// The configured networks (what `chains.networks` reports and invoices may use).
    pub fn with_chains(mut self, chains: Vec<ChainConfig>) -> Self {
        self.inner_mut().chains = chains;
        self
    }

    /// The two-factor service (`[two_factor]`) behind the `two-factor` capability.
    pub fn with_two_factor(mut self, two_factor: crate::two_factor::TwoFactor) -> Self {
        self.inner_mut().two_factor = Some(two_factor);
        self
    }

    /// The fiat rate service (`[rates]`).
    pub fn with_rates(mut self, rates: Arc<crate::rates::Rates>) -> Self {
        self.inner_mut().rates = rates;
        self
    }

    fn inner_mut(&mut self) -> &mut ServicesInner {
        Arc::get_mut(&mut self.inner).expect("configure PluginServices before cloning it")
    }
}

/// The `rate-limit` capability: GCRA limiters from the `governor` crate, one keyed limiter
/// (key: the plugin's bucket name) per (plugin, limit, window), in this process's memory.
///
/// A check with `limit` per `window_ms` allows a burst of `limit` hits, then one more every
/// `window_ms / limit` (a smoothly refilling bucket rather than a fixed window, so there is
/// no double burst at a window boundary). Buckets never shared between plugins. Memory is
/// bounded by active keys: [`RateLimiter::evict_idle`] (run by the plugin runtime's
/// maintenance task) forgets every bucket that is back to full, and a plugin may use at
/// most [`MAX_SHAPES_PER_PLUGIN`] distinct (limit, window) pairs.
///
/// Rate limits protect this instance; with several instances each counts on its own,
/// which is the usual trade-off for per-key API limits.
pub(crate) struct RateLimiter<C: Clock = DefaultClock> {
    clock: C,
    limiters: Mutex<HashMap<Shape, Arc<Keyed<C>>>>,
}

/// Distinct (limit, window) pairs one plugin may use.
pub(crate) const MAX_SHAPES_PER_PLUGIN: usize = 64;

type Shape = (Arc<str>, u32, u64);
type Keyed<C> =
    governor::RateLimiter<String, DefaultKeyedStateStore<String>, C, StateInformationMiddleware>;

/// Why a rate-limit check was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RateLimitError {
    #[error("a plugin may use at most {MAX_SHAPES_PER_PLUGIN} different (limit, window) pairs")]
    TooManyShapes,
}

/// The outcome of one [`RateLimiter::check`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    pub allowed: bool,
    pub remaining: u32,
    /// Allowed: until the bucket is full again. Refused: until the next hit is allowed.
    pub reset_after_ms: u64,
}

impl Default for RateLimiter<DefaultClock> {
    fn default() -> Self {
        RateLimiter::with_clock(DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimiter<C>
where
    C::Instant: governor::clock::Reference,
{
    pub fn with_clock(clock: C) -> Self {
        RateLimiter {
            clock,
            limiters: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one hit on `bucket` of `plugin`, allowed up to `limit` per `window_ms`.
    pub fn check(
        &self,
        plugin: &str,
        bucket: &str,
        limit: u32,
        window_ms: u64,
    ) -> Result<Decision, RateLimitError> {
        let window = Duration::from_millis(window_ms.max(1));
        let Some(burst) = NonZeroU32::new(limit) else {
            return Ok(Decision {
                allowed: false,
                remaining: 0,
                reset_after_ms: window_ms,
            });
        };
        let period = (window / limit).max(Duration::from_nanos(1));
        let limiter = self.limiter((Arc::from(plugin), limit, window_ms), period, burst)?;
        Ok(match limiter.check_key(&bucket.to_owned()) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    allowed: true,
                    remaining,
                    reset_after_ms: millis(period * (limit - remaining.min(limit))),
                }
            }
            Err(not_until) => Decision {
                allowed: false,
                remaining: 0,
                reset_after_ms: millis(not_until.wait_time_from(self.clock.now())).max(1),
            },
        })
    }

    fn limiter(
        &self,
        shape: Shape,
        period: Duration,
        burst: NonZeroU32,
    ) -> Result<Arc<Keyed<C>>, RateLimitError> {
        let mut limiters = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = limiters.get(&shape) {
            return Ok(l.clone());
        }
        let shapes = limiters.keys().filter(|s| s.0 == shape.0).count();
        if shapes >= MAX_SHAPES_PER_PLUGIN {
            return Err(RateLimitError::TooManyShapes);
        }
        let quota = Quota::with_period(period)
            .expect("period is not zero")
            .allow_burst(burst);
        let limiter = Arc::new(
            governor::RateLimiter::<_, _, _, NoOpMiddleware<C::Instant>>::new(
                quota,
                DefaultKeyedStateStore::default(),
                self.clock.clone(),
            )
            .with_middleware::<StateInformationMiddleware>(),
        );
        limiters.insert(shape, limiter.clone());
        Ok(limiter)
    }

    /// Forgets every bucket that is back to full (it would behave exactly like a new one)
    /// and every limiter left without buckets. Returns the buckets still tracked.
    pub fn evict_idle(&self) -> usize {
        let mut limiters = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        limiters.retain(|_, l| {
            l.retain_recent();
            l.shrink_to_fit();
            !l.is_empty()
        });
        limiters.values().map(|l| l.len()).sum()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn rate_limiter_allows_a_burst_of_the_limit_then_refills_per_plugin() {
        let clock = FakeRelativeClock::default();
        let rl = RateLimiter::with_clock(clock.clone());
        let hit = |plugin: &str| rl.check(plugin, "k", 2, 1000).unwrap();
        assert_eq!(
            hit("p"),
            Decision {
                allowed: true,
                remaining: 1,
                reset_after_ms: 500
            }
        );
        assert_eq!(
            hit("p"),
            Decision {
                allowed: true,
                remaining: 0,
                reset_after_ms: 1000
            }
        );
        let refused = hit("p");
        assert!(!refused.allowed);
        assert_eq!(refused.reset_after_ms, 500, "one hit refills every 500 ms");
        assert!(hit("other-plugin").allowed, "buckets are per plugin");
        clock.advance(Duration::from_millis(500));
        assert!(hit("p").allowed, "a hit refilled");
        assert!(!hit("p").allowed);
        assert!(
            !rl.check("p", "k", 0, 1000).unwrap().allowed,
            "limit 0 allows nothing"
        );
    }

    #[test]
    fn idle_buckets_are_evicted_so_memory_follows_active_keys() {
        let clock = FakeRelativeClock::default();
        let rl = RateLimiter::with_clock(clock.clone());
        for i in 0..10_000 {
            assert!(
                rl.check("p", &format!("client-{i}"), 5, 1000)
                    .unwrap()
                    .allowed
            );
        }
        assert_eq!(rl.evict_idle(), 10_000, "every bucket is still refilling");
        clock.advance(Duration::from_millis(1000));
        assert!(rl.check("p", "client-busy", 5, 1000).unwrap().allowed);
        assert_eq!(
            rl.evict_idle(),
            1,
            "only the bucket hit in the last window is kept"
        );
    }

    #[test]
    fn a_plugin_cannot_grow_limiters_without_bound() {
        let rl = RateLimiter::with_clock(FakeRelativeClock::default());
        for limit in 1..=MAX_SHAPES_PER_PLUGIN as u32 {
            assert!(rl.check("p", "k", limit, 1000).is_ok());
        }
        assert_eq!(
            rl.check("p", "k", 1000, 1000),
            Err(RateLimitError::TooManyShapes)
        );
        assert!(rl.check("q", "k", 1000, 1000).is_ok(), "per plugin");
    }
}
