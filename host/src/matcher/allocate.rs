//! Allocating a new invoice's payment target, by strategy: the [`Plan`] of allocations the
//! invoice service tries, in order, until one is stored.
//!
//! `unique-amount` is race-free without locks: the candidate amounts are tried smallest
//! first, and the store's insert of the target is what claims one; the partial unique
//! index on active reservations refuses a second claim of the same (chain, asset,
//! address, amount), and the loser simply tries the next free amount. Amounts released
//! less than the asset's `unique_amount_reuse_after_secs` ago are skipped: a payer who
//! pays an invoice just after its deadline must not pay a new invoice that was handed the
//! same amount.
//!
//! `fixed-address` allows one open invoice per (chain, asset, address): the partial unique
//! index on active fixed-address targets refuses a second one, which the service reports
//! as the address being busy (see the matching rules in the module docs of `matcher`).

use std::collections::HashSet;

use crate::chain::evm::{address_text, parse_address};
use crate::chain::{ChainConfig, ChainKind};
use crate::invoice::{Allocation, Amount, MatchStrategy, NewInvoice, NewTarget};
use crate::store::{Store, StoreError};

use super::derive::{
    DerivationError, derive_evm_address, derive_tron_address, parse_xpub, xpub_id,
};

/// Where and how a new invoice's payment is expected: one variant per strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// Paid through one of the chain's payment contracts for the invoice's asset, whose
    /// `Pay` event names `reference` (default: the invoice id) and sends to `recipient`.
    ContractReference {
        recipient: String,
        reference: Option<String>,
    },
    /// Paid to the shared `address`; the amount due is raised by the smallest free
    /// multiple of the asset's `unique_amount_step` so the amount identifies the invoice.
    UniqueAmount { address: String },
    /// Paid to a fresh address derived from the merchant's extended public key.
    DerivedAddress { xpub: String },
    /// Paid to the merchant's own `address`.
    FixedAddress { address: String },
}

impl TargetSpec {
    pub fn strategy(&self) -> MatchStrategy {
        match self {
            TargetSpec::ContractReference { .. } => MatchStrategy::ContractReference,
            TargetSpec::UniqueAmount { .. } => MatchStrategy::UniqueAmount,
            TargetSpec::DerivedAddress { .. } => MatchStrategy::DerivedAddress,
            TargetSpec::FixedAddress { .. } => MatchStrategy::FixedAddress,
        }
    }
}

/// Why no target could be allocated.
#[derive(Debug, thiserror::Error)]
pub enum AllocationError {
    #[error("the invoice is for chain `{invoice}` but chain `{config}` was given")]
    WrongChain { invoice: String, config: String },
    #[error("chain `{chain}` has no asset `{asset}`")]
    UnknownAsset { chain: String, asset: String },
    #[error("asset `{asset}` has {config} decimals, not {given}")]
    Decimals {
        asset: String,
        config: u8,
        given: u8,
    },
    #[error("chain `{chain}` has no payment contract for `{asset}`")]
    NoPaymentContract { chain: String, asset: String },
    #[error("invalid address: {0}")]
    Address(String),
    #[error("chain config: {0}")]
    Config(#[from] crate::chain::AssetAmountError),
    #[error(transparent)]
    Derivation(#[from] DerivationError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The allocations to try for one new invoice, in order.
#[derive(Debug, Clone)]
pub struct Plan {
    base: Allocation,
    unique: Option<UniqueAmounts>,
}

/// The candidate amounts of a unique-amount plan.
#[derive(Debug, Clone)]
struct UniqueAmounts {
    step: Amount,
    slots: u32,
    /// Reserved, or released too recently to hand out again.
    unavailable: HashSet<Amount>,
}

impl Plan {
    /// The allocations to try, in order: one, or for `unique-amount` every free amount
    /// from the price up, smallest first.
    pub fn candidates(&self) -> impl Iterator<Item = Allocation> + '_ {
        let base = &self.base;
        let single = self.unique.is_none().then(|| base.clone());
        let unique = self.unique.iter().flat_map(move |u| {
            (0..u.slots)
                .map_while(move |k| unique_candidate(base.amount_due, u.step, k))
                .filter(move |amount| !u.unavailable.contains(amount))
                .map(move |amount| Allocation {
                    amount_due: amount,
                    target: NewTarget {
                        reserved_amount: Some(amount),
                        ..base.target.clone()
                    },
                    ..base.clone()
                })
        });
        single.into_iter().chain(unique)
    }

    /// The same plan with `amount` counted as free (an invoice's own reservation, which a
    /// re-quote may keep).
    pub fn with_available(mut self, amount: Amount) -> Plan {
        if let Some(u) = &mut self.unique {
            u.unavailable.remove(&amount);
        }
        self
    }

    /// The range of amounts a unique-amount plan covers: (lowest, highest).
    pub fn unique_range(&self) -> Option<(Amount, Amount)> {
        self.unique.as_ref().map(|u| {
            let high =
                unique_candidate(self.base.amount_due, u.step, u.slots - 1).unwrap_or(Amount::MAX);
            (self.base.amount_due, high)
        })
    }

    /// The strategy of every allocation of this plan.
    pub fn strategy(&self) -> MatchStrategy {
        self.base.strategy
    }

    /// The address every allocation of this plan pays to.
    pub fn address(&self) -> &str {
        &self.base.target.address
    }
}

/// `base + k * step`, if it fits.
fn unique_candidate(base: Amount, step: Amount, k: u32) -> Option<Amount> {
    step.as_u256()
        .checked_mul(alloy::primitives::U256::from(k))
        .and_then(|inc| base.checked_add(Amount::from(inc)))
}

/// Plans the payment target `spec` asks for `new` on `chain` at `now`: validates the
/// chain, asset and address, and takes the asset's tolerance and the chain's
/// confirmations; for `derived-address` hands out the next derivation index; for
/// `unique-amount` reads which amounts are unavailable.
pub async fn plan(
    store: &Store,
    chain: &ChainConfig,
    new: &NewInvoice,
    spec: &TargetSpec,
    now: i64,
) -> Result<Plan, AllocationError> {
    if new.chain != chain.name {
        return Err(AllocationError::WrongChain {
            invoice: new.chain.clone(),
            config: chain.name.clone(),
        });
    }
    let asset = chain
        .asset(&new.asset)
        .ok_or_else(|| AllocationError::UnknownAsset {
            chain: chain.name.clone(),
            asset: new.asset.clone(),
        })?;
    if asset.decimals != new.decimals {
        return Err(AllocationError::Decimals {
            asset: asset.symbol.clone(),
            config: asset.decimals,
            given: new.decimals,
        });
    }
    let strategy = spec.strategy();
    let target = |address: String, derivation_index: Option<i64>| NewTarget {
        address,
        reserved_amount: None,
        derivation_index,
    };
    let mut pay_reference = None;
    let target = match spec {
        TargetSpec::ContractReference {
            recipient,
            reference,
        } => {
            if !chain.payment_contracts.iter().any(|p| p.asset == new.asset) {
                return Err(AllocationError::NoPaymentContract {
                    chain: chain.name.clone(),
                    asset: new.asset.clone(),
                });
            }
            // The default reference, the invoice id, is filled in by the service.
            pay_reference = reference.clone();
            target(canonical_address(chain, recipient)?, None)
        }
        TargetSpec::FixedAddress { address } | TargetSpec::UniqueAmount { address } => {
            target(canonical_address(chain, address)?, None)
        }
        TargetSpec::DerivedAddress { xpub } => {
            let key = parse_xpub(xpub)?;
            let index = store.next_derivation_index(&xpub_id(xpub)).await?;
            let address = match chain.kind {
                ChainKind::Evm => address_text(derive_evm_address(&key, index)?),
                ChainKind::Tron => derive_tron_address(&key, index)?.to_string(),
            };
            target(address, Some(i64::from(index)))
        }
    };
    let base = Allocation {
        strategy,
        target,
        pay_reference,
        amount_due: new.amount_due,
        // Validated with the config at start-up, so an error here cannot happen; zero is
        // the safe reading (the exact amount is due).
        tolerance: asset.tolerance().unwrap_or(Amount::ZERO),
        confirmations_required: chain.confirmations,
    };
    let unique = match spec {
        TargetSpec::UniqueAmount { .. } => {
            let step = asset.unique_step()?;
            let slots = asset.unique_amount_slots;
            let high = unique_candidate(new.amount_due, step, slots - 1).unwrap_or(Amount::MAX);
            let reuse_after_ms = i64::from(asset.unique_amount_reuse_after_secs) * 1000;
            let unavailable = store
                .unavailable_amounts(
                    &chain.name,
                    &new.asset,
                    &base.target.address,
                    (new.amount_due, high),
                    now - reuse_after_ms,
                )
                .await?;
            Some(UniqueAmounts {
                step,
                slots,
                unavailable: unavailable.into_iter().collect(),
            })
        }
        _ => None,
    };
    Ok(Plan { base, unique })
}

/// The stored form of an address on `chain`: EIP-55 on EVM chains, base58check on TRON.
/// Anything else is refused, so no invoice waits on an address nobody can pay.
fn canonical_address(chain: &ChainConfig, address: &str) -> Result<String, AllocationError> {
    match chain.kind {
        ChainKind::Evm => parse_address(address.trim())
            .map(address_text)
            .map_err(|e| AllocationError::Address(e.to_string())),
        ChainKind::Tron => crate::chain::tron::canonical_address(address)
            .map_err(|e| AllocationError::Address(e.to_string())),
    }
}
