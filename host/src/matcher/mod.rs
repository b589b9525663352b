//! The matcher: which invoice an observed transfer pays, and where an invoice's payment is
//! expected in the first place.
//!
//! This module owns
//!
//! - **allocation** ([`open_invoice`], [`TargetSpec`]): the payment target of a new
//!   invoice, by strategy (see `ARCHITECTURE.md`, "Matching strategies");
//! - **attribution** ([`record_transfers`]): stores each observed transfer once, matched
//!   to the invoice it pays (or to none);
//! - **settlement after chain events** ([`settle_invoices`]): re-evaluates the invoices a
//!   range or a reorg touched through the store's one `settle`, and keeps their targets'
//!   reservations in step with their status;
//! - **expiry** ([`expiry`]): the scheduler that expires unpaid invoices on time and ends
//!   reservations whose monitoring window has closed.
//!
//! # Matching rules
//!
//! A payment-contract event (`Pay(invoice_id, recipient, amount)`) pays the invoice on
//! the same chain whose `pay_reference` is `invoice_id`, if that invoice uses the
//! `contract-reference` strategy, is in the contract's asset, and its `pay_address` is the
//! event's `recipient`. The amount is credited as paid; the lifecycle then says whether
//! it is short, exact or over.
//!
//! Any other transfer is matched through the *active* targets at its (chain, recipient,
//! asset), oldest first:
//!
//! 1. a `unique-amount` target reserving exactly the transferred amount;
//! 2. else a `derived-address` target (its address belongs to one invoice only);
//! 3. else a `fixed-address` target: the one whose remaining due equals the amount, else
//!    the oldest not yet fully paid, else the oldest;
//! 4. else nothing: the transfer is stored unmatched (an amount that fits no unique-amount
//!    reservation cannot be attributed safely).
//!
//! Partial payments accumulate: every matched transfer counts towards its invoice until it
//! is paid. Underpayment within the configured tolerance, overpayment and late payment
//! are decided by the invoice lifecycle (`crate::invoice::lifecycle`).
//!
//! # Reservations
//!
//! A target stays active, and a unique amount reserved, while a payment can still count:
//! until the invoice is `paid` or `cancelled`, or, once `expired`, until its post-expiry
//! monitoring window closes (so a late payment is still unambiguous). A reorg that moves
//! a paid invoice back re-activates its target unless its unique amount has been given to
//! another invoice meanwhile. Required confirmations should cover the reorg depth a chain
//! can see, so that a released amount is never reused for a payment that could vanish.

mod allocate;
mod derive;
pub mod expiry;

pub use allocate::{AllocationError, TargetSpec, open_invoice};
pub use derive::{DerivationError, derive_evm_address, derive_tron_address, parse_xpub, xpub_id};

use std::collections::{BTreeSet, HashMap};

use crate::chain::ObservedTransfer;
use crate::invoice::{Amount, InvoiceStatus, MatchStrategy};
use crate::store::Backend;
use crate::store::chain_queries::{self, OpenTarget};
use crate::store::invoices::{self, ChainView, Invoice, InvoiceError};
use crate::store::{StoreError, Tx};

/// Stores `transfers` once each, matched to the invoices they pay, in the caller's
/// transaction. Returns the invoices that received a new (or reorg-revived) credit; they
/// need settling. A transfer already stored and live changes nothing.
pub async fn record_transfers(
    tx: &mut Tx,
    transfers: &[ObservedTransfer],
    now: i64,
) -> Result<BTreeSet<String>, StoreError> {
    let mut credited = BTreeSet::new();
    // Credits of this batch, not yet settled into the invoices' amount_paid.
    let mut batch: HashMap<String, Amount> = HashMap::new();
    for transfer in transfers {
        let invoice = match_transfer(tx, transfer, &batch).await?;
        let Some(counted_for) =
            chain_queries::record_transfer(tx, transfer, invoice.as_deref(), now).await?
        else {
            continue;
        };
        metrics::counter!("polypay_chain_transfers_total", "chain" => transfer.chain.clone())
            .increment(1);
        if let Some(id) = counted_for {
            let credit = batch.entry(id.clone()).or_insert(Amount::ZERO);
            *credit = credit.saturating_add(transfer.amount);
            credited.insert(id);
        }
    }
    Ok(credited)
}

/// The invoice `transfer` pays, by the rules in the module docs.
async fn match_transfer(
    tx: &mut Tx,
    transfer: &ObservedTransfer,
    batch: &HashMap<String, Amount>,
) -> Result<Option<String>, StoreError> {
    if let Some(reference) = &transfer.reference {
        let Some(invoice) =
            chain_queries::invoice_by_reference(tx, &transfer.chain, reference).await?
        else {
            tracing::info!(chain = %transfer.chain, tx = %transfer.tx_hash, reference, "payment names no known invoice");
            return Ok(None);
        };
        let fits = invoice.strategy == MatchStrategy::ContractReference
            && invoice.asset == transfer.asset
            && invoice.pay_address.eq_ignore_ascii_case(&transfer.to);
        if !fits {
            tracing::warn!(
                chain = %transfer.chain, tx = %transfer.tx_hash, invoice = %invoice.id,
                "payment-contract event names an invoice but not its recipient or asset; left unmatched"
            );
            return Ok(None);
        }
        return Ok(Some(invoice.id));
    }
    // Rule 1 is an index lookup: a shared address may hold a million reservations.
    let (chain, to, asset) = (&transfer.chain, &transfer.to, &transfer.asset);
    if let Some(id) =
        chain_queries::reserving_invoice(tx, chain, to, asset, transfer.amount).await?
    {
        return Ok(Some(id));
    }
    let targets = chain_queries::open_targets_at(tx, chain, to, asset).await?;
    Ok(choose_target(&targets, transfer.amount, batch).map(|t| t.invoice_id.clone()))
}

/// Rules 1–4 of the module docs over the active targets at one address, oldest first.
fn choose_target<'a>(
    targets: &'a [OpenTarget],
    amount: Amount,
    batch: &HashMap<String, Amount>,
) -> Option<&'a OpenTarget> {
    use MatchStrategy::*;
    if let Some(t) = targets
        .iter()
        .find(|t| t.strategy == UniqueAmount && t.amount == Some(amount))
    {
        return Some(t);
    }
    if let Some(t) = targets.iter().find(|t| t.strategy == DerivedAddress) {
        return Some(t);
    }
    let fixed: Vec<&OpenTarget> = targets
        .iter()
        .filter(|t| t.strategy == FixedAddress)
        .collect();
    let remaining = |t: &OpenTarget| {
        let paid = t
            .amount_paid
            .saturating_add(batch.get(&t.invoice_id).copied().unwrap_or(Amount::ZERO));
        t.amount_due.saturating_sub(paid)
    };
    fixed
        .iter()
        .find(|t| remaining(t) == amount)
        .or_else(|| fixed.iter().find(|t| !remaining(t).is_zero()))
        .or_else(|| fixed.first())
        .copied()
}

/// Settles each invoice in `ids` against the chain as processed up to
/// `view.head_block`, in the caller's transaction; releases the targets of those now
/// `paid`, and re-activates those of invoices a reorg moved back. Returns the invoices
/// that changed.
pub async fn settle_invoices(
    tx: &mut Tx,
    backend: Backend,
    ids: impl IntoIterator<Item = &String>,
    view: ChainView,
    now: i64,
) -> Result<Vec<Invoice>, InvoiceError> {
    let mut changed = Vec::new();
    for id in ids {
        let Some(invoice) = invoices::get_for_update(tx, backend, id).await? else {
            continue;
        };
        let Some(settled) = invoices::settle(tx, &invoice, Some(view), now).await? else {
            continue;
        };
        let was_paid = invoice.status == InvoiceStatus::Paid;
        match settled.status {
            InvoiceStatus::Paid if !was_paid => invoices::release_targets(tx, id, now).await?,
            InvoiceStatus::Pending | InvoiceStatus::Confirming | InvoiceStatus::Expired
                if was_paid =>
            {
                chain_queries::reactivate_targets(tx, id).await?
            }
            _ => {}
        }
        if settled.status != invoice.status {
            tracing::info!(invoice = %id, from = %invoice.status, to = %settled.status, "invoice settled");
        }
        changed.push(settled);
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use MatchStrategy::*;

    fn target(
        id: &str,
        strategy: MatchStrategy,
        reserved: Option<u64>,
        due: u64,
        paid: u64,
    ) -> OpenTarget {
        OpenTarget {
            invoice_id: id.into(),
            strategy,
            amount: reserved.map(Amount::from),
            status: InvoiceStatus::Pending,
            amount_due: Amount::from(due),
            amount_paid: Amount::from(paid),
        }
    }

    fn chosen(
        targets: &[OpenTarget],
        amount: u64,
        batch: &HashMap<String, Amount>,
    ) -> Option<String> {
        choose_target(targets, Amount::from(amount), batch).map(|t| t.invoice_id.clone())
    }

    #[test]
    fn unique_amount_matches_only_the_exact_reservation() {
        let targets = [
            target("a", UniqueAmount, Some(1_000_001), 1_000_001, 0),
            target("b", UniqueAmount, Some(1_000_002), 1_000_002, 0),
        ];
        let none = HashMap::new();
        assert_eq!(chosen(&targets, 1_000_002, &none).as_deref(), Some("b"));
        assert_eq!(chosen(&targets, 1_000_001, &none).as_deref(), Some("a"));
        assert_eq!(chosen(&targets, 1_000_000, &none), None);
        assert_eq!(chosen(&targets, 2_000_002, &none), None);
    }

    #[test]
    fn derived_address_takes_any_amount() {
        let targets = [target("d", DerivedAddress, None, 500, 0)];
        assert_eq!(chosen(&targets, 1, &HashMap::new()).as_deref(), Some("d"));
    }

    #[test]
    fn fixed_address_prefers_the_invoice_whose_remaining_due_is_the_amount() {
        let targets = [
            target("old", FixedAddress, None, 100, 0),
            target("new", FixedAddress, None, 250, 50),
        ];
        let none = HashMap::new();
        assert_eq!(chosen(&targets, 200, &none).as_deref(), Some("new"));
        assert_eq!(chosen(&targets, 100, &none).as_deref(), Some("old"));
        assert_eq!(chosen(&targets, 7, &none).as_deref(), Some("old"));
        // A credit earlier in the same batch counts as paid.
        let batch = HashMap::from([("old".to_string(), Amount::from(100))]);
        assert_eq!(chosen(&targets, 7, &batch).as_deref(), Some("new"));
        // Everyone paid: the oldest takes the overpayment.
        let batch = HashMap::from([
            ("old".to_string(), Amount::from(100)),
            ("new".to_string(), Amount::from(200)),
        ]);
        assert_eq!(chosen(&targets, 7, &batch).as_deref(), Some("old"));
    }
}
