//! What the host lends plugins: the services behind the capabilities.

use crate::chain::ChainConfig;
use crate::merchant::Merchants;
use crate::store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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

    fn inner_mut(&mut self) -> &mut ServicesInner {
        Arc::get_mut(&mut self.inner).expect("configure PluginServices before cloning it")
    }
}

/// Fixed-window counters, per (plugin, bucket), in this process's memory.
///
/// Rate limits protect this instance; with several instances each counts on
/// its own, which is the usual trade-off for per-key API limits.
#[derive(Default)]
pub(crate) struct RateLimiter {
    windows: Mutex<HashMap<(String, String), Window>>,
}

struct Window {
    started_ms: i64,
    window_ms: i64,
    hits: u32,
}

/// The outcome of one [`RateLimiter::hit`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Decision {
    pub allowed: bool,
    pub remaining: u32,
    pub reset_after_ms: u64,
}

impl RateLimiter {
    /// Counts one hit on `bucket` of `plugin` at `now_ms`.
    pub fn hit(
        &self,
        plugin: &str,
        bucket: &str,
        limit: u32,
        window_ms: u64,
        now_ms: i64,
    ) -> Decision {
        let window_ms = window_ms.clamp(1, i64::MAX as u64) as i64;
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if windows.len() > 100_000 {
            // Forget expired windows so the map stays bounded by active keys.
            windows.retain(|_, w| now_ms - w.started_ms < w.window_ms);
        }
        let w = windows
            .entry((plugin.to_owned(), bucket.to_owned()))
            .or_insert(Window {
                started_ms: now_ms,
                window_ms,
                hits: 0,
            });
        if now_ms - w.started_ms >= w.window_ms || w.window_ms != window_ms {
            *w = Window {
                started_ms: now_ms,
                window_ms,
                hits: 0,
            };
        }
        w.hits = w.hits.saturating_add(1);
        Decision {
            allowed: w.hits <= limit,
            remaining: limit.saturating_sub(w.hits),
            reset_after_ms: (w.started_ms + w.window_ms - now_ms).max(0) as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_allows_up_to_the_limit_per_window_and_resets() {
        let rl = RateLimiter::default();
        assert!(rl.hit("p", "k", 2, 1000, 0).allowed);
        assert_eq!(
            rl.hit("p", "k", 2, 1000, 10),
            Decision {
                allowed: true,
                remaining: 0,
                reset_after_ms: 990
            }
        );
        assert!(!rl.hit("p", "k", 2, 1000, 20).allowed);
        assert!(
            rl.hit("other-plugin", "k", 2, 1000, 20).allowed,
            "buckets are per plugin"
        );
        assert!(
            rl.hit("p", "k", 2, 1000, 1000).allowed,
            "a new window starts"
        );
    }
}
