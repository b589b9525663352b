//! `webhooks`: the authenticated merchant's view of callback delivery, over
//! the webhook module's outbox (only this plugin's events).

use super::{HostResult, guest, store_error, store_failure};
use crate::plugin::bindings::HostError;
use crate::plugin::bindings::polypay::plugin::webhooks::{DeliveryStats, Host};
use crate::plugin::state::PluginState;
use crate::webhook::{self, TestEventError};

impl Host for PluginState {
    async fn stats(&mut self, days: u32) -> HostResult<DeliveryStats> {
        let scope = &self.scope;
        let prepared = scope.storage().and_then(|s| Ok((s, scope.merchant()?)));
        let (storage, me) = match prepared {
            Ok(p) => p,
            Err(e) => return guest(Err(e)),
        };
        if !(1..=365).contains(&days) {
            return guest(Err(HostError::Invalid("days must be 1 to 365".into())));
        }
        guest(
            match webhook::merchant_stats(&storage.store, me, Some(scope.plugin_name()), days).await
            {
                Ok(s) => Ok(DeliveryStats {
                    days,
                    total: s.total,
                    delivered: s.delivered,
                    failed: s.failed,
                    pending: s.pending,
                    average_latency_ms: s.average_latency_ms,
                    attempts: s.attempts,
                    finished_attempts: s.finished_attempts,
                }),
                Err(e) => Err(store_error(scope, e)),
            },
        )
    }

    async fn send_test(&mut self, url: String) -> HostResult<String> {
        let scope = &self.scope;
        let prepared = scope.storage().and_then(|s| Ok((s, scope.merchant()?)));
        let (storage, me) = match prepared {
            Ok(p) => p,
            Err(e) => return guest(Err(e)),
        };
        let queued =
            match webhook::queue_test_event(&storage.store, scope.plugin_name(), me, &url).await {
                Ok(id) => Ok(id.to_string()),
                Err(TestEventError::InvalidUrl { url, reason }) => {
                    Err(HostError::Invalid(format!("`{url}`: {reason}")))
                }
                Err(TestEventError::RateLimited { retry_after_ms }) => {
                    Err(HostError::RateLimited(retry_after_ms))
                }
                Err(TestEventError::Store(e)) => Err(store_failure(scope, &e)),
            };
        self.after_write(queued)
    }
}
