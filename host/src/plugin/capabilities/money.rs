//! `money`: amounts in an asset's own units ("99.99") ↔ base units, for a configured
//! (chain, asset), by the host's one decimal parser and formatter
//! ([`crate::invoice::Amount::parse_decimal`], [`crate::invoice::Amount::format_decimal`]).
//! `invoices` uses the same functions for `price.decimal` and the invoice's `-decimal`
//! fields, so a plugin that checks an amount here gets exactly the answer invoice
//! creation would give.
//!
//! Error texts are those of [`crate::invoice::MoneyError`], prefixed with the amount as
//! the plugin sent it; the SDK's fake host reproduces them (a test pins that the two
//! agree on a table of inputs).

use super::{HostResult, guest};
use crate::chain::{AssetConfig, ChainConfig};
use crate::invoice::Amount;
use crate::plugin::bindings::HostError;
use crate::plugin::bindings::polypay::plugin::money::Host;
use crate::plugin::state::{CallScope, PluginState};

/// The configured chain `chain` and its asset `asset`, or `unsupported`.
pub(crate) fn asset_of<'a>(
    scope: &'a CallScope,
    chain: &str,
    asset: &str,
) -> Result<(&'a ChainConfig, &'a AssetConfig), HostError> {
    let config = scope
        .services
        .inner
        .chains
        .iter()
        .find(|c| c.name == chain)
        .ok_or_else(|| HostError::Unsupported(format!("unknown chain `{chain}`")))?;
    let asset = config
        .asset(asset)
        .ok_or_else(|| HostError::Unsupported(format!("chain `{chain}` has no asset `{asset}`")))?;
    Ok((config, asset))
}

/// A decimal amount (WIT `types.decimal`) of an asset with `decimals` decimals.
pub(crate) fn parse_decimal(text: &str, decimals: u8) -> Result<Amount, HostError> {
    Amount::parse_decimal(text, decimals)
        .map_err(|e| HostError::Invalid(format!("amount `{text}`: {e}")))
}

/// An amount of base units (WIT `types.base-units`).
pub(crate) fn parse_base_units(text: &str) -> Result<Amount, HostError> {
    Amount::from_base_units(text).map_err(|e| HostError::Invalid(format!("amount `{text}`: {e}")))
}

impl Host for PluginState {
    fn to_base_units(
        &mut self,
        chain: String,
        asset: String,
        amount: String,
    ) -> HostResult<String> {
        guest(
            asset_of(&self.scope, &chain, &asset)
                .and_then(|(_, a)| parse_decimal(&amount, a.decimals))
                .map(|a| a.to_base_units_string()),
        )
    }

    fn to_decimal(&mut self, chain: String, asset: String, amount: String) -> HostResult<String> {
        guest(
            asset_of(&self.scope, &chain, &asset)
                .and_then(|(_, a)| Ok(parse_base_units(&amount)?.format_decimal(a.decimals))),
        )
    }
}
