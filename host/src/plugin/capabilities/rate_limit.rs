//! `rate-limit`: keyed GCRA limiters, per plugin (see `services::RateLimiter`).

use crate::plugin::bindings::HostError;
use crate::plugin::bindings::polypay::plugin::rate_limit::{Decision, Host};
use crate::plugin::state::PluginState;

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
        let checked = self.scope.services.inner.rate_limiter.check(
            &self.scope.plugin.name,
            &bucket,
            limit,
            window_ms,
        );
        Ok(checked
            .map(|d| Decision {
                allowed: d.allowed,
                remaining: d.remaining,
                reset_after_ms: d.reset_after_ms,
            })
            .map_err(|e| HostError::Invalid(e.to_string())))
    }
}
