//! Invoices: the host's payment domain, independent of any API dialect and of how a chain
//! is read.
//!
//! This module owns
//!
//! - **money** ([`money`]): [`Amount`], an exact non-negative integer of an asset's base
//!   units (`U256`), and the one parser/formatter between human amounts such as `"99.99"`
//!   and base units. No floats anywhere.
//! - **the invoice aggregate** ([`model`]): [`Invoice`] and its one constructor
//!   [`Invoice::open`], [`NewInvoice`], the matcher's [`Allocation`].
//! - **the lifecycle state machine** ([`lifecycle`]): [`InvoiceStatus`],
//!   [`check_transition`] (the single place that decides which status changes are legal),
//!   [`evaluate`] (which status and [`Outcome`] the payment facts call for), and the outbox
//!   [`EventKind`] a transition emits.
//! - **the tally** ([`tally`]): paid and confirmed sums and the completing payment of one
//!   invoice, from its credits.
//! - **the service** ([`service`]): [`InvoiceService`], through which every change of an
//!   invoice goes, in one transaction with its outbox event ([`EventPayload`], versioned).
//! - **observed transfers** ([`ObservedTransfer`]): what a chain listener hands over.
//! - **the operator's commands** ([`cli`]): `polypay invoice quarantined|retry`.
//!
//! Dialect plugins map the canonical statuses to their own vocabulary; that mapping lives
//! in each plugin, never here (see `ARCHITECTURE.md`, "Canonical invoice lifecycle").
//!
//! # The lifecycle
//!
//! An invoice is `pending` until enough has been paid; `confirming` while the payment has
//! fewer confirmations than its chain requires; `paid` once confirmed. Unpaid at its
//! deadline it becomes `expired`; the merchant may cancel it while `pending`
//! (`cancelled`, terminal). A reorg that removes a payment moves a `confirming` or `paid`
//! invoice back (to `pending` before the deadline, `expired` after it) with an
//! `invoice.reverted` event. Every status change is checked by [`check_transition`] and
//! written with its outbox event in one transaction; an illegal one is an error, never
//! applied. Amount outcomes sit beside the status: `underpaid`, `overpaid`, `paid_late`.
//!
//! # The lateness rule
//!
//! Whether a payment is on time is judged by the **block time** of the transfer that
//! completed it, never by when polypay happened to read it: a payment mined before the
//! deadline is on time even if the listener was down, lagging or catching up after a
//! restart, and an `expired` invoice it pays goes to `confirming`/`paid` without the
//! `paid_late` flag. A payment mined at or after the deadline but before the end of the
//! post-expiry monitoring window (`monitor_until`) pays the invoice with `paid_late`; one
//! mined later leaves it `expired` (the transfer stays recorded). Expiry itself follows
//! the host clock: an invoice with no full payment *seen* is `expired` at its deadline,
//! and a reservation is only released once the chain has been read past it (see
//! [`service`]), so a payment mined in time always finds its invoice.
//!
//! # The tolerance rule
//!
//! An asset may set a `payment_tolerance`: a payment short by at most that much counts as
//! full (`total + tolerance >= amount_due`, and something was paid). The same rule
//! ([`covers_due`]) decides the status, the `underpaid` flag (not set for a payment within
//! the tolerance), and *which* transfer completed the payment, hence its time and
//! lateness. `overpaid` is strict: more than the amount due.
//!
//! ```
//! use polypay_host::invoice::{Amount, InvoiceStatus, check_transition};
//!
//! let due = Amount::parse_decimal("99.99", 6).unwrap();
//! assert_eq!(due.to_string(), "99990000");
//! assert_eq!(due.format_decimal(6), "99.99");
//! assert!(check_transition(InvoiceStatus::Pending, InvoiceStatus::Confirming).is_ok());
//! assert!(check_transition(InvoiceStatus::Cancelled, InvoiceStatus::Paid).is_err());
//! ```

pub mod cli;
pub mod event;
pub mod lifecycle;
pub mod model;
pub mod money;
pub mod service;
pub mod tally;
mod transfer;

pub use event::{EventPayload, PayloadError, TEST_EVENT_KIND};
pub use lifecycle::*;
pub use model::{
    Allocation, DEFAULT_MONITOR_AFTER_EXPIRY_MS, FiatQuote, Idempotency, Invoice, NewInvoice,
    NewTarget, PreviousDue, canonical_invoice_id,
};
pub use money::{Amount, MAX_DECIMALS, MoneyError};
pub use service::{ChainView, InvoiceError, InvoiceService};
pub use transfer::{NATIVE_LOG_INDEX, ObservedTransfer};

pub use crate::names::UnknownName;

/// How incoming transfers are attributed to an invoice. Host-owned; each
/// invoice's strategy is chosen by the plugin that created it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchStrategy {
    /// A payment contract emits an event naming the invoice id; matched on
    /// id, recipient and amount.
    ContractReference,
    /// One shared receiving address; the host makes each open invoice's
    /// amount unique for (chain, asset, address), and the amount identifies
    /// the invoice.
    UniqueAmount,
    /// A fresh address per invoice, derived from the merchant's extended
    /// public key (no private key on the server).
    DerivedAddress,
    /// An address supplied by the merchant; matched by address and asset
    /// (and amount).
    FixedAddress,
}

stable_names!(MatchStrategy, "match strategy", {
    ContractReference => "contract-reference",
    UniqueAmount => "unique-amount",
    DerivedAddress => "derived-address",
    FixedAddress => "fixed-address",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_strategy_names_are_kebab_case_and_round_trip() {
        let names: Vec<_> = MatchStrategy::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "contract-reference",
                "unique-amount",
                "derived-address",
                "fixed-address"
            ]
        );
        for &strategy in MatchStrategy::ALL {
            assert_eq!(strategy.as_str().parse::<MatchStrategy>(), Ok(strategy));
            assert_eq!(strategy.to_string(), strategy.as_str());
            let json = serde_json::to_string(&strategy).unwrap();
            assert_eq!(json, format!("\"{}\"", strategy.as_str()));
            assert_eq!(
                serde_json::from_str::<MatchStrategy>(&json).unwrap(),
                strategy
            );
        }
    }

    #[test]
    fn unknown_match_strategy_is_a_precise_error() {
        let err = "UniqueAmount".parse::<MatchStrategy>().unwrap_err();
        assert_eq!(err.to_string(), "unknown match strategy `UniqueAmount`");
        assert!(serde_json::from_str::<MatchStrategy>("\"unique_amount\"").is_err());
    }
}
