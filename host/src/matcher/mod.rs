//! The matcher: which invoice an observed transfer pays, and where an invoice's payment is
//! expected in the first place.
//!
//! This module owns
//!
//! - **allocation** ([`plan`], [`TargetSpec`]): the payment target of a new invoice, by
//!   strategy (see `ARCHITECTURE.md`, "Matching strategies"); the invoice service stores
//!   the first allocation of the plan that is free;
//! - **attribution** ([`record_transfers`]): stores each observed transfer once, matched
//!   to the invoice it pays (or to none), and returns the invoices to settle. A batch
//!   costs a fixed number of statements whatever its length (every lookup an index
//!   search), so its cost per transfer does not grow with the number of open invoices;
//! - **expiry** ([`expiry`]): the scheduler that expires unpaid invoices on time and ends
//!   reservations that can no longer be paid.
//!
//! Settling the invoices a chain event touched is the invoice service's
//! (`crate::invoice::service`).
//!
//! # Matching rules
//!
//! A payment-contract event (`Pay(invoice_id, recipient, amount)`) pays the invoice on
//! the same chain whose `pay_reference` is `invoice_id` (references are unique per chain),
//! if that invoice uses the `contract-reference` strategy, is in the contract's asset, and
//! its `pay_address` is the event's `recipient`. The amount is credited as paid; the
//! lifecycle then says whether it is short, exact or over.
//!
//! Any other transfer is matched through the *active* targets at its (chain, recipient,
//! asset):
//!
//! 1. a `unique-amount` target reserving exactly the transferred amount;
//! 2. else the `derived-address` target (a derived address belongs to one invoice only),
//!    whatever the amount: partial payments accumulate;
//! 3. else the `fixed-address` target (at most one is open per address and asset), if
//!    the transfer alone pays what the invoice still awaits: no more than the remaining
//!    amount and at most the asset's tolerance less. A fixed address is the merchant's
//!    own wallet and receives unrelated transfers, so nothing else is attributed to it;
//! 4. else nothing: the transfer is stored unmatched, for the operator to see.
//!
//! Underpayment within the configured tolerance, overpayment and late payment are decided
//! by the invoice lifecycle (`crate::invoice::lifecycle`).
//!
//! # Reservations
//!
//! A target stays active, and what it holds (a unique amount, a fixed address) reserved,
//! until the invoice is `paid` or `cancelled`, or until its `release_at`: the deadline
//! for `unique-amount` and `fixed-address` targets nothing was paid to, the end of the
//! post-expiry monitoring window otherwise (partial payments, derived addresses, payment
//! references). A target is released at `release_at` only once its chain has been read up
//! to a block at least that recent, so no payment mined in time is ever missed. A reorg
//! that moves a paid invoice back re-activates its target unless what it held has been
//! given to another invoice meanwhile. Required confirmations should cover the reorg depth
//! a chain can see, so that a released amount is never reused for a payment that could
//! vanish.

mod allocate;
mod derive;
pub mod expiry;

pub use allocate::{AllocationError, Plan, TargetSpec, plan};
pub use derive::{DerivationError, derive_evm_address, derive_tron_address, parse_xpub, xpub_id};

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::invoice::{Amount, MatchStrategy, ObservedTransfer};
use crate::store::chain_queries::{
    self, KnownTransfer, OpenTarget, PlaceKey, ReferenceTarget, TransferKey,
};
use crate::store::{StoreError, Tx};

/// Stores `transfers` once each, matched to the invoices they pay, in the caller's
/// transaction. Returns the invoices that received a new (or reorg-revived) credit; they
/// need settling. A transfer already stored and live changes nothing.
///
/// The batch costs a fixed number of statements, whatever its length (each an index
/// search per transfer; see `chain_queries`): which transfers are stored already, the
/// payment references, the unique-amount reservations, the targets at the remaining
/// addresses, then one write of every new or revived transfer. The decisions between the
/// reads and the write are taken in the batch's order, exactly as if each transfer were
/// stored before the next is matched: a transfer seen twice counts once, and the credits
/// of earlier transfers count against a fixed-address invoice's remaining amount.
pub async fn record_transfers(
    tx: &mut Tx,
    transfers: &[ObservedTransfer],
    now: i64,
) -> Result<BTreeSet<String>, StoreError> {
    let keys: Vec<TransferKey> = transfers.iter().map(chain_queries::transfer_key).collect();
    let known = chain_queries::known_transfers(tx, &distinct(keys.iter().cloned())).await?;
    // The transfers to write: the first sighting in the batch of each one that is not
    // stored and live (a live one, or a repeat within the batch, changes nothing).
    let mut seen = HashSet::new();
    let fresh: Vec<(&ObservedTransfer, &TransferKey)> = transfers
        .iter()
        .zip(&keys)
        .filter(|(_, key)| known.get(*key).is_none_or(|k| k.removed) && seen.insert(*key))
        .collect();
    let lookups = Lookups::read(tx, fresh.iter().map(|(t, _)| *t)).await?;

    // Credits of this batch, not yet settled into the invoices' amount_paid.
    let mut batch: HashMap<String, Amount> = HashMap::new();
    let mut rows = Vec::with_capacity(fresh.len());
    for (transfer, key) in &fresh {
        let invoice = lookups.match_transfer(transfer, &batch);
        // A revived row keeps the invoice it was matched to before (see the store).
        let counted_for = match known.get(*key) {
            Some(KnownTransfer {
                invoice_id: Some(before),
                ..
            }) => Some(before.clone()),
            _ => invoice.clone(),
        };
        if let Some(id) = counted_for {
            let credit = batch.entry(id).or_insert(Amount::ZERO);
            *credit = credit.saturating_add(transfer.amount);
        }
        rows.push((*transfer, invoice));
    }
    let rows: Vec<(&ObservedTransfer, Option<&str>)> =
        rows.iter().map(|(t, i)| (*t, i.as_deref())).collect();
    let written = chain_queries::record_transfers(tx, &rows, now).await?;

    let mut credited = BTreeSet::new();
    let mut per_chain: HashMap<&str, u64> = HashMap::new();
    for (transfer, key) in &fresh {
        let Some(counted_for) = written.get(*key) else {
            continue;
        };
        *per_chain.entry(transfer.chain.as_str()).or_default() += 1;
        if let Some(id) = counted_for {
            credited.insert(id.clone());
        }
    }
    for (chain, n) in per_chain {
        metrics::counter!("polypay_chain_transfers_total", "chain" => chain.to_string())
            .increment(n);
    }
    Ok(credited)
}

/// `items` without repeats, in first-seen order.
fn distinct<T: Eq + std::hash::Hash + Clone>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items.filter(|item| seen.insert(item.clone())).collect()
}

fn place_of(transfer: &ObservedTransfer) -> PlaceKey {
    (
        transfer.chain.clone(),
        transfer.to.clone(),
        transfer.asset.clone(),
    )
}

/// What the matching rules need to know about a batch's transfers, read in one statement
/// per rule.
struct Lookups {
    references: HashMap<(String, String), ReferenceTarget>,
    reserved: HashMap<(PlaceKey, Amount), String>,
    open: HashMap<PlaceKey, Vec<OpenTarget>>,
}

impl Lookups {
    async fn read(
        tx: &mut Tx,
        transfers: impl Iterator<Item = &ObservedTransfer> + Clone,
    ) -> Result<Lookups, StoreError> {
        let references = distinct(
            transfers
                .clone()
                .filter_map(|t| Some((t.chain.clone(), t.reference.clone()?))),
        );
        let references = chain_queries::reference_targets(tx, &references).await?;
        let plain = transfers.filter(|t| t.reference.is_none());
        // Rule 1 is an index lookup: a shared address may hold a million reservations.
        let amounts = distinct(plain.clone().map(|t| (place_of(t), t.amount)));
        let reserved = chain_queries::reserving_invoices(tx, &amounts).await?;
        let places = distinct(
            plain
                .filter(|t| !reserved.contains_key(&(place_of(t), t.amount)))
                .map(place_of),
        );
        let open = chain_queries::open_targets_at(tx, &places).await?;
        Ok(Lookups {
            references,
            reserved,
            open,
        })
    }

    /// The invoice `transfer` pays, by the rules in the module docs.
    fn match_transfer(
        &self,
        transfer: &ObservedTransfer,
        batch: &HashMap<String, Amount>,
    ) -> Option<String> {
        if let Some(reference) = &transfer.reference {
            let Some(target) = self
                .references
                .get(&(transfer.chain.clone(), reference.clone()))
            else {
                tracing::info!(chain = %transfer.chain, tx = %transfer.tx_hash, reference, "payment names no known invoice");
                return None;
            };
            let fits = target.strategy == MatchStrategy::ContractReference.as_str()
                && target.asset == transfer.asset
                && target.pay_address.eq_ignore_ascii_case(&transfer.to);
            if !fits {
                tracing::warn!(
                    chain = %transfer.chain, tx = %transfer.tx_hash, invoice = %target.invoice_id,
                    "payment-contract event names an invoice but not its recipient or asset; left unmatched"
                );
                return None;
            }
            return Some(target.invoice_id.clone());
        }
        let place = place_of(transfer);
        let reserved = (place, transfer.amount);
        if let Some(id) = self.reserved.get(&reserved) {
            return Some(id.clone());
        }
        let targets = self
            .open
            .get(&reserved.0)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let chosen = choose_target(targets, transfer.amount, batch);
        if chosen.is_none() && !targets.is_empty() {
            tracing::info!(
                chain = %transfer.chain, tx = %transfer.tx_hash, amount = %transfer.amount,
                "transfer to a fixed address does not pay its open invoice; left unmatched"
            );
        }
        chosen.map(|t| t.invoice_id.clone())
    }
}

/// Rules 2 and 3 of the module docs over the active targets at one address that reserve
/// no amount.
fn choose_target<'a>(
    targets: &'a [OpenTarget],
    amount: Amount,
    batch: &HashMap<String, Amount>,
) -> Option<&'a OpenTarget> {
    if let Some(t) = targets
        .iter()
        .find(|t| t.strategy == MatchStrategy::DerivedAddress)
    {
        return Some(t);
    }
    let fixed = targets
        .iter()
        .find(|t| t.strategy == MatchStrategy::FixedAddress)?;
    let Some(awaited) = fixed.awaited else {
        // The invoice cannot be read: attribute the transfer to the one open invoice at
        // the address and let settlement set it aside for the operator, rather than lose
        // the attribution.
        return Some(fixed);
    };
    let in_batch = batch
        .get(&fixed.invoice_id)
        .copied()
        .unwrap_or(Amount::ZERO);
    let remaining = awaited.remaining.saturating_sub(in_batch);
    let pays_the_rest = !remaining.is_zero()
        && amount <= remaining
        && amount.saturating_add(awaited.tolerance) >= remaining;
    pays_the_rest.then_some(fixed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::chain_queries::Awaited;
    use MatchStrategy::*;

    fn target(id: &str, strategy: MatchStrategy, remaining: u64, tolerance: u64) -> OpenTarget {
        OpenTarget {
            invoice_id: id.into(),
            strategy,
            awaited: Some(Awaited {
                remaining: Amount::from(remaining),
                tolerance: Amount::from(tolerance),
            }),
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
    fn derived_address_takes_any_amount() {
        let targets = [target("d", DerivedAddress, 500, 0)];
        assert_eq!(chosen(&targets, 1, &HashMap::new()).as_deref(), Some("d"));
        assert_eq!(
            chosen(&targets, 9_999, &HashMap::new()).as_deref(),
            Some("d")
        );
    }

    #[test]
    fn fixed_address_takes_only_a_transfer_that_pays_what_its_invoice_awaits() {
        let targets = [target("f", FixedAddress, 1_000, 0)];
        let none = HashMap::new();
        assert_eq!(chosen(&targets, 1_000, &none).as_deref(), Some("f"));
        // An unrelated transfer to the merchant's wallet, smaller or larger, pays nothing.
        assert_eq!(chosen(&targets, 7, &none), None);
        assert_eq!(chosen(&targets, 999, &none), None);
        assert_eq!(chosen(&targets, 1_001, &none), None);
    }

    #[test]
    fn fixed_address_accepts_an_underpayment_within_the_tolerance() {
        let targets = [target("f", FixedAddress, 1_000, 10)];
        let none = HashMap::new();
        assert_eq!(chosen(&targets, 990, &none).as_deref(), Some("f"));
        assert_eq!(chosen(&targets, 989, &none), None);
    }

    #[test]
    fn fixed_address_counts_credits_earlier_in_the_same_batch() {
        let targets = [target("f", FixedAddress, 1_000, 0)];
        let paid = HashMap::from([("f".to_string(), Amount::from(1_000))]);
        // Already paid in full by an earlier transfer of the batch: a second one is not
        // attributed.
        assert_eq!(chosen(&targets, 1_000, &paid), None);
    }

    #[test]
    fn an_unreadable_fixed_address_invoice_still_gets_the_transfer_for_quarantine() {
        let targets = [OpenTarget {
            invoice_id: "broken".into(),
            strategy: FixedAddress,
            awaited: None,
        }];
        assert_eq!(
            chosen(&targets, 5, &HashMap::new()).as_deref(),
            Some("broken")
        );
    }
}
