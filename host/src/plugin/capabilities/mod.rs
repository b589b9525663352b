//! Host implementations of the WIT imports, one module per capability.
//!
//! Every capability follows the same shape: an `impl Host for PluginState`
//! whose methods read the call's [`CallScope`](super::state::CallScope)
//! first (who is asking, authenticated as whom) and only then touch a
//! service. Guest-caused failures are `Ok(Err(HostError))`; a host bug is
//! `Err(..)` and traps the instance.

mod chains;
mod context;
mod crypto;
mod invoices;
pub(crate) use invoices::{invoice_wit, status_to_wit};
mod kv;
mod ledger;
pub(crate) use ledger::event_wit as ledger_event_wit;
mod log;
mod merchants;
pub(crate) use merchants::{check_credential_templates, credential_spec};
mod money;
mod rate_limit;
mod rates;
mod system;
mod two_factor;
mod webhooks;

use super::bindings::HostError;
use super::bindings::polypay::plugin::{plugin_types, types};
use super::services::Storage;
use super::state::{CallKind, CallScope, PluginState};

impl types::Host for PluginState {}
impl plugin_types::Host for PluginState {}

/// What a host call returns: outer error traps, inner error is the guest's.
pub(crate) type HostResult<T> = wasmtime::Result<Result<T, HostError>>;

impl CallScope {
    /// The merchant this call is authenticated as, or `unauthorized`.
    pub(crate) fn merchant(&self) -> Result<&str, HostError> {
        self.merchant_id.as_deref().ok_or(HostError::Unauthorized)
    }

    /// The database, unless this is the start-up manifest call or the
    /// server runs without storage.
    pub(crate) fn storage(&self) -> Result<&Storage, HostError> {
        if self.kind == CallKind::Manifest {
            return Err(HostError::Unavailable(
                "storage is not available during manifest()".into(),
            ));
        }
        self.services
            .inner
            .storage
            .as_ref()
            .ok_or_else(|| HostError::Unavailable("storage is not configured".into()))
    }

    /// Authenticates this call as `merchant_id`; a call already
    /// authenticated as another merchant may not switch.
    pub(crate) fn become_merchant(&mut self, merchant_id: &str) -> Result<(), HostError> {
        match &self.merchant_id {
            Some(current) if current != merchant_id => Err(HostError::Forbidden),
            _ => {
                self.merchant_id = Some(merchant_id.to_owned());
                Ok(())
            }
        }
    }

    /// Fails unless the call is authenticated as exactly `merchant_id`.
    pub(crate) fn require_self(&self, merchant_id: &str) -> Result<(), HostError> {
        if self.merchant()? == merchant_id {
            Ok(())
        } else {
            Err(HostError::Forbidden)
        }
    }

    pub(crate) fn plugin_name(&self) -> &str {
        &self.plugin.name
    }
}

/// A storage failure as the guest sees it; the details go to the log only.
pub(crate) fn store_failure(scope: &CallScope, error: &dyn std::fmt::Display) -> HostError {
    tracing::error!(plugin = %scope.plugin.name, request_id = %scope.request_id, %error, "plugin host call failed in storage");
    HostError::Unavailable("storage error".into())
}

/// Maps a store error: unique violations are conflicts, the rest unavailable.
pub(crate) fn store_error(scope: &CallScope, error: crate::store::StoreError) -> HostError {
    match error {
        crate::store::StoreError::Conflict(_) => HostError::Conflict("already exists".into()),
        other => store_failure(scope, &other),
    }
}

/// Shorthand: turn `Result<T, HostError>` into a host call result.
pub(crate) fn guest<T>(r: Result<T, HostError>) -> HostResult<T> {
    Ok(r)
}
