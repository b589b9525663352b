//! Summing an invoice's credits: what has been paid, what is confirmed, and which transfer
//! completed the payment and when.
//!
//! A pure function of the matched, non-removed transfers of one invoice ([`Credit`]s, in
//! chain order) and the chain position they are judged at. The invoice service feeds the
//! result to the lifecycle ([`super::evaluate`]).
//!
//! - **Paid** is the sum of every credit; **confirmed** the sum of those at least
//!   `confirmations_required` blocks deep at the processed block (a block is 1 deep when
//!   it is the processed block itself; zero required counts as one) and, on a chain that
//!   declares a final block (TRON's solidified block), at or below it.
//! - **The completing credit** is the first one after which the running sum *covers* the
//!   amount due, with the same tolerance rule as the lifecycle ([`super::covers_due`]): a
//!   payment that is full only thanks to the asset's tolerance is complete at that credit.
//! - **When it was paid** is the completing credit's *block time*, never the time the host
//!   happened to process it: a payment mined before the deadline is on time even when a
//!   listener catches up on it hours later.

use super::{Amount, covers_due};

/// One matched transfer as it counts towards an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credit {
    pub amount: Amount,
    pub block_number: i64,
    /// The block's timestamp, unix milliseconds.
    pub block_time: i64,
    pub tx_hash: String,
    /// The sending address, as the chain layer stores it.
    pub from_address: String,
}

/// The sums and the completing credit of one invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Sum of every credit.
    pub paid: Amount,
    /// Sum of the credits with enough confirmations.
    pub confirmed: Amount,
    /// Block time of the credit that first made the payment cover the amount due.
    pub completed_at: Option<i64>,
    /// The transaction that completed the payment, else the latest credit's.
    pub txn_hash: Option<String>,
    /// Who sent that transaction.
    pub payer_address: Option<String>,
}

/// What the tally is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TallyRules {
    pub amount_due: Amount,
    pub tolerance: Amount,
    pub confirmations_required: u32,
    /// The highest block the listener has processed (and checked for reorgs).
    pub processed_block: i64,
    /// The chain's newest irreversible block, when it declares one.
    pub final_block: Option<i64>,
}

/// Sums `credits` (in chain order) under `rules`. See the module docs.
pub fn tally(credits: &[Credit], rules: TallyRules) -> Tally {
    let depth_needed = i64::from(rules.confirmations_required.max(1));
    let mut paid = Amount::ZERO;
    let mut confirmed = Amount::ZERO;
    let mut completing: Option<&Credit> = None;
    for credit in credits {
        paid = paid.saturating_add(credit.amount);
        let deep_enough = rules.processed_block - credit.block_number + 1 >= depth_needed;
        let is_final = rules.final_block.is_none_or(|f| credit.block_number <= f);
        if deep_enough && is_final {
            confirmed = confirmed.saturating_add(credit.amount);
        }
        if completing.is_none() && covers_due(paid, rules.amount_due, rules.tolerance) {
            completing = Some(credit);
        }
    }
    let shown = completing.or(credits.last());
    Tally {
        paid,
        confirmed,
        completed_at: completing.map(|c| c.block_time),
        txn_hash: shown.map(|c| c.tx_hash.clone()),
        payer_address: shown.map(|c| c.from_address.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credit(amount: u64, block: i64, time: i64) -> Credit {
        Credit {
            amount: Amount::from(amount),
            block_number: block,
            block_time: time,
            tx_hash: format!("0x{block:02x}{amount}"),
            from_address: format!("payer-{block}"),
        }
    }

    fn rules(due: u64, tolerance: u64, required: u32, processed: i64) -> TallyRules {
        TallyRules {
            amount_due: Amount::from(due),
            tolerance: Amount::from(tolerance),
            confirmations_required: required,
            processed_block: processed,
            final_block: None,
        }
    }

    #[test]
    fn a_payment_full_only_thanks_to_the_tolerance_is_complete_at_its_block_time() {
        let credits = [credit(990, 10, 5_000)];
        let t = tally(&credits, rules(1_000, 10, 1, 10));
        assert_eq!(t.completed_at, Some(5_000));
        assert_eq!(t.txn_hash.as_deref(), Some(credits[0].tx_hash.as_str()));
        // One base unit short of the tolerance: not complete.
        let t = tally(&[credit(989, 10, 5_000)], rules(1_000, 10, 1, 10));
        assert_eq!(t.completed_at, None);
    }

    #[test]
    fn completion_time_is_the_block_time_of_the_completing_credit() {
        let credits = [
            credit(400, 10, 1_000),
            credit(600, 12, 2_000),
            credit(5, 13, 3_000),
        ];
        let t = tally(&credits, rules(1_000, 0, 1, 13));
        assert_eq!(t.paid, Amount::from(1_005));
        assert_eq!(t.completed_at, Some(2_000));
        assert_eq!(t.txn_hash.as_deref(), Some(credits[1].tx_hash.as_str()));
        assert_eq!(
            t.payer_address.as_deref(),
            Some(credits[1].from_address.as_str()),
            "the payer is the completing transfer's sender"
        );
    }

    #[test]
    fn confirmations_count_from_the_processed_block() {
        let credits = [credit(400, 10, 1), credit(600, 12, 2)];
        // Two required: block 10 is 3 deep at 12, block 12 only 1.
        let t = tally(&credits, rules(1_000, 0, 2, 12));
        assert_eq!(t.confirmed, Amount::from(400));
        let t = tally(&credits, rules(1_000, 0, 2, 13));
        assert_eq!(t.confirmed, Amount::from(1_000));
        // Zero required counts as one: the processed block itself is confirmed.
        let t = tally(&credits, rules(1_000, 0, 0, 12));
        assert_eq!(t.confirmed, Amount::from(1_000));
    }

    #[test]
    fn on_a_chain_with_a_final_block_only_credits_at_or_below_it_are_confirmed() {
        let credits = [credit(400, 10, 1), credit(600, 12, 2)];
        let mut r = rules(1_000, 0, 1, 30);
        r.final_block = Some(11);
        assert_eq!(tally(&credits, r).confirmed, Amount::from(400));
        r.final_block = Some(12);
        assert_eq!(tally(&credits, r).confirmed, Amount::from(1_000));
        // Final, but not yet deep enough.
        r.confirmations_required = 20;
        assert_eq!(tally(&credits, r).confirmed, Amount::from(400));
    }

    #[test]
    fn nothing_paid_is_never_complete_whatever_the_tolerance() {
        let t = tally(&[], rules(1_000, 5_000, 1, 100));
        assert_eq!(t.paid, Amount::ZERO);
        assert_eq!(t.completed_at, None);
        assert_eq!(t.txn_hash, None);
    }
}
