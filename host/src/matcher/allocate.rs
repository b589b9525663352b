//! Allocating a new invoice's payment target, by strategy, and creating the invoice with it.
//!
//! `unique-amount` is race-free without locks: the candidate amounts are tried smallest
//! first, and the store's insert of the target is what claims one; the partial unique
//! index on active reservations refuses a second claim of the same (chain, asset,
//! address, amount), and the loser simply tries the next free amount.

use crate::chain::evm::{address_text, parse_address};
use crate::chain::{ChainConfig, ChainKind};
use crate::invoice::{Amount, MatchStrategy};
use crate::store::invoices::{Invoice, InvoiceError, NewInvoice, NewTarget};
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

/// Why no invoice could be opened.
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
    Config(String),
    #[error(transparent)]
    Derivation(#[from] DerivationError),
    #[error("every unique amount from {low} to {high} is reserved at {address}")]
    NoFreeAmount {
        address: String,
        low: Amount,
        high: Amount,
    },
    #[error(transparent)]
    Invoice(#[from] InvoiceError),
}

impl From<StoreError> for AllocationError {
    fn from(e: StoreError) -> Self {
        AllocationError::Invoice(InvoiceError::Store(e))
    }
}

/// Allocates the payment target `spec` asks for on `chain` and creates the invoice with it
/// (and its `invoice.created` event). Sets `new`'s strategy and target; for
/// `contract-reference` its payment reference; for `unique-amount` raises its amount due
/// to the unique amount reserved.
pub async fn open_invoice(
    store: &Store,
    chain: &ChainConfig,
    mut new: NewInvoice,
    spec: &TargetSpec,
) -> Result<Invoice, AllocationError> {
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
    new.strategy = spec.strategy();
    // Validated with the config at start-up, so an error here cannot happen; zero is the
    // safe reading (the exact amount is due).
    new.tolerance = asset.tolerance().unwrap_or(Amount::ZERO);
    match spec {
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
            new.pay_reference = Some(reference.clone().unwrap_or_else(|| new.id.clone()));
            new.target = NewTarget {
                address: canonical_address(chain, recipient)?,
                reserved_amount: None,
                derivation_index: None,
            };
            Ok(store.create_invoice(&new).await?)
        }
        TargetSpec::FixedAddress { address } => {
            new.target = NewTarget {
                address: canonical_address(chain, address)?,
                reserved_amount: None,
                derivation_index: None,
            };
            Ok(store.create_invoice(&new).await?)
        }
        TargetSpec::DerivedAddress { xpub } => {
            let key = parse_xpub(xpub)?;
            let index = store.next_derivation_index(&xpub_id(xpub)).await?;
            let address = match chain.kind {
                ChainKind::Evm => address_text(derive_evm_address(&key, index)?),
                ChainKind::Tron => derive_tron_address(&key, index)?.to_string(),
            };
            new.target = NewTarget {
                address,
                reserved_amount: None,
                derivation_index: Some(i64::from(index)),
            };
            Ok(store.create_invoice(&new).await?)
        }
        TargetSpec::UniqueAmount { address } => {
            let address = canonical_address(chain, address)?;
            let step = asset.unique_step().map_err(AllocationError::Config)?;
            let base = new.amount_due;
            let candidate = |k: u32| {
                step.as_u256()
                    .checked_mul(alloy::primitives::U256::from(k))
                    .and_then(|inc| base.checked_add(Amount::from(inc)))
            };
            let high = candidate(asset.unique_amount_slots - 1).unwrap_or(Amount::MAX);
            let taken = store
                .reserved_amounts(&chain.name, &new.asset, &address, base, high)
                .await?;
            for k in 0..asset.unique_amount_slots {
                let Some(amount) = candidate(k) else { break };
                if taken.contains(&amount) {
                    continue;
                }
                new.amount_due = amount;
                new.target = NewTarget {
                    address: address.clone(),
                    reserved_amount: Some(amount),
                    derivation_index: None,
                };
                match store.create_invoice(&new).await {
                    Ok(invoice) => return Ok(invoice),
                    // Claimed by a concurrent creation since `taken` was read: next one.
                    Err(InvoiceError::TargetTaken) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(AllocationError::NoFreeAmount {
                address,
                low: base,
                high,
            })
        }
    }
}

/// The stored form of an address on `chain`: EIP-55 on EVM chains, base58check on TRON.
/// Anything else is refused, so no invoice waits on an address nobody can pay.
fn canonical_address(chain: &ChainConfig, address: &str) -> Result<String, AllocationError> {
    match chain.kind {
        ChainKind::Evm => parse_address(address.trim())
            .map(address_text)
            .map_err(AllocationError::Address),
        ChainKind::Tron => crate::chain::tron::canonical_address(address)
            .map_err(|e| AllocationError::Address(e.to_string())),
    }
}
