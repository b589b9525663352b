//! `rates`: fiat quotes from the host's rate service ([`crate::rates`]). A pair no
//! provider knows is `unsupported`; a pair whose providers all fail is `unavailable`
//! (a plugin answers "try again later"); a bad fiat amount is `invalid`.

use super::money::asset_of;
use super::{HostResult, guest};
use crate::plugin::bindings::HostError;
use crate::plugin::bindings::polypay::plugin::rates::{Host, RateQuote};
use crate::plugin::state::{CallScope, PluginState};
use crate::rates::{Quote, RateError};

/// The guest's view of a rate error.
pub(crate) fn rate_error(e: RateError) -> HostError {
    match e {
        RateError::Unsupported(_) => HostError::Unsupported(e.to_string()),
        RateError::Unavailable { .. } => HostError::Unavailable(e.to_string()),
        RateError::InvalidAmount(_) | RateError::Overflow => HostError::Invalid(e.to_string()),
    }
}

/// `fiat_amount` of `currency` in base units of `asset` on `chain`.
pub(crate) async fn quote(
    scope: &CallScope,
    currency: &str,
    fiat_amount: &str,
    chain: &str,
    asset: &str,
) -> Result<(Quote, u8), HostError> {
    let (_, asset) = asset_of(scope, chain, asset)?;
    if currency.is_empty() || currency.len() > 16 {
        return Err(HostError::Invalid(format!(
            "currency `{currency}` must be 1 to 16 characters"
        )));
    }
    let quote = scope
        .services
        .inner
        .rates
        .quote(currency, fiat_amount, &asset.symbol, asset.decimals)
        .await
        .map_err(rate_error)?;
    Ok((quote, asset.decimals))
}

impl Host for PluginState {
    async fn quote(
        &mut self,
        currency: String,
        fiat_amount: String,
        chain: String,
        asset: String,
    ) -> HostResult<RateQuote> {
        guest(
            quote(&self.scope, &currency, &fiat_amount, &chain, &asset)
                .await
                .map(|(q, decimals)| RateQuote {
                    amount: q.amount.to_string(),
                    decimals,
                    rate: q.rate.rate.to_string(),
                    quoted_at: q.quoted_at,
                    valid_until: q.valid_until,
                }),
        )
    }
}
