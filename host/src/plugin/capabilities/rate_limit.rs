//! `rate-limit`: fixed-window counters, per plugin.

use crate::plugin::bindings::HostError;
use crate::plugin::bindings::polypay::plugin::rate_limit::{Decision, Host};
use crate::plugin::state::PluginState;
use crate::store::now_ms;

impl Host for PluginState {
    fn check(
        &mut self,
        bucket: String,
        limit: u32,
        window_ms: u64,
    ) -> wasmtime::Result<Result<Decision, HostError>> {
        if bucket.len() > 512 {
            return Ok(Err(HostError::Invalid(
                "bucket names are at most 512 bytes".into(),
            )));
        }
        let d = self.scope.services.inner.rate_limiter.hit(
            &self.scope.plugin.name,
            &bucket,
            limit,
            window_ms,
            now_ms(),
        );
        Ok(Ok(Decision {
            allowed: d.allowed,
            remaining: d.remaining,
            reset_after_ms: d.reset_after_ms,
        }))
    }
}
