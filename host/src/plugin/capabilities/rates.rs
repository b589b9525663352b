//! `rates`: fiat quotes. The host has no rate source yet, so every quote is
//! `unsupported`; the contract is in place for the pricing module.

use super::{HostResult, guest};
use crate::plugin::bindings::HostError;
use crate::plugin::bindings::polypay::plugin::rates::{Host, RateQuote};
use crate::plugin::state::PluginState;

impl Host for PluginState {
    async fn quote(
        &mut self,
        currency: String,
        _fiat_amount: String,
        _chain: String,
        asset: String,
    ) -> HostResult<RateQuote> {
        guest(Err(HostError::Unsupported(format!(
            "no rate source is configured for {currency} → {asset}"
        ))))
    }
}
