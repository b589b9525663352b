//! The invoice aggregate and what a new one is made of.
//!
//! [`Invoice::open`] is the one constructor of an invoice: the service uses it to create
//! invoices, and so do tests and sample events, so the fields of a new invoice are decided
//! in one place.

use serde::{Deserialize, Serialize};

use super::{Amount, InvoiceStatus, MatchStrategy, Outcome};

/// How long after its deadline a full payment is still watched for by default
/// (`paid_late`): 24 hours.
pub const DEFAULT_MONITOR_AFTER_EXPIRY_MS: i64 = 24 * 3600 * 1000;

/// An invoice: what is asked, where it is to be paid, and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub id: String,
    pub merchant_id: String,
    pub plugin: String,
    pub merchant_order_id: Option<String>,
    pub status: InvoiceStatus,
    pub outcome: Outcome,
    pub chain: String,
    pub asset: String,
    pub decimals: u8,
    pub amount_due: Amount,
    pub amount_paid: Amount,
    pub amount_confirmed: Amount,
    /// Underpayment accepted as full payment (from the asset's `payment_tolerance`).
    pub tolerance: Amount,
    pub confirmations_required: u32,
    pub strategy: MatchStrategy,
    pub pay_address: String,
    pub pay_reference: Option<String>,
    pub txn_hash: Option<String>,
    /// The sender of `txn_hash` (the payment that completed the invoice, else the latest
    /// one), as the chain stores addresses: what a dialect shows as the payer's address.
    pub payer_address: Option<String>,
    /// The fiat price and the quote `amount_due` came from, when the invoice was priced
    /// in fiat (`None` when it was priced in the asset itself).
    #[serde(default)]
    pub fiat: Option<FiatQuote>,
    /// After a re-quote to another amount: the amount it replaced, still accepted as full
    /// payment for a grace period (see `invoice::service`).
    #[serde(default)]
    pub previous_due: Option<PreviousDue>,
    pub notify_url: Option<String>,
    pub return_url: Option<String>,
    pub plugin_data: serde_json::Value,
    pub expires_at: i64,
    pub monitor_until: i64,
    /// Block time of the transfer that completed the payment (see `invoice::tally`).
    pub first_paid_at: Option<i64>,
    pub paid_at: Option<i64>,
    pub submitted_at: Option<i64>,
    pub cancelled_at: Option<i64>,
    /// Set when settling this invoice failed and it was set aside so its chain could move
    /// on; cleared by an operator's retry. See `invoice::service`.
    #[serde(default)]
    pub quarantined_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub version: i64,
}

/// What a caller asks for: everything but where the payment goes, which the matcher's
/// allocation decides ([`Allocation`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvoice {
    pub merchant_id: String,
    pub plugin: String,
    pub merchant_order_id: Option<String>,
    pub chain: String,
    pub asset: String,
    pub decimals: u8,
    /// The price, before any unique-amount increment.
    pub amount_due: Amount,
    pub notify_url: Option<String>,
    pub return_url: Option<String>,
    pub plugin_data: serde_json::Value,
    pub expires_at: i64,
    /// End of the post-expiry monitoring window (at least `expires_at`).
    pub monitor_until: i64,
    /// Makes creation happen at most once per key (see `invoice::service`).
    pub idempotency: Option<Idempotency>,
    /// The fiat price `amount_due` was quoted from, if any.
    pub fiat: Option<FiatQuote>,
}

/// The amount due before a re-quote, and until when a payment of it still pays the
/// invoice in full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousDue {
    pub amount: Amount,
    /// Unix ms: a payment completed (block time) at or before it counts.
    pub until: i64,
}

/// A fiat price and the quote that turned it into an on-chain amount, kept on the
/// invoice so the amount can always be explained (and shown beside the price).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiatQuote {
    /// The price as the caller gave it, a decimal string ("20.00").
    pub amount: String,
    /// ISO 4217 code, upper-case ("USD").
    pub currency: String,
    /// Fiat units per whole asset unit, a decimal string ("7.25").
    pub rate: String,
    /// The rate provider's configured name.
    pub source: String,
    /// When the quote was made (Unix ms).
    pub quoted_at: i64,
    /// Until when the quote holds (Unix ms): the checkout page counts down to it.
    pub valid_until: i64,
}

impl NewInvoice {
    /// An invoice of `plugin` for `merchant_id` asking `amount_due` of `asset` on `chain`,
    /// due by `expires_at`, watched for late payments for the default window after it;
    /// everything optional unset.
    pub fn new(
        merchant_id: &str,
        plugin: &str,
        chain: &str,
        (asset, decimals): (&str, u8),
        amount_due: Amount,
        expires_at: i64,
    ) -> NewInvoice {
        NewInvoice {
            merchant_id: merchant_id.to_string(),
            plugin: plugin.to_string(),
            merchant_order_id: None,
            chain: chain.to_string(),
            asset: asset.to_string(),
            decimals,
            amount_due,
            notify_url: None,
            return_url: None,
            plugin_data: serde_json::json!({}),
            expires_at,
            monitor_until: expires_at.saturating_add(DEFAULT_MONITOR_AFTER_EXPIRY_MS),
            idempotency: None,
            fiat: None,
        }
    }
}

/// An idempotency key and a fingerprint of the request it was sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// Unique per (plugin, merchant).
    pub key: String,
    /// A digest of the request as the caller made it (before any unique-amount
    /// increment); a second request with the same key must have the same fingerprint.
    pub fingerprint: String,
}

/// Where and how a new invoice's payment is expected, as the matcher allocated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub strategy: MatchStrategy,
    pub target: NewTarget,
    /// The reference a payment-contract event must name (`contract-reference`).
    pub pay_reference: Option<String>,
    /// The amount due, raised to the reserved amount for `unique-amount`.
    pub amount_due: Amount,
    pub tolerance: Amount,
    pub confirmations_required: u32,
}

/// The payment target of a new invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTarget {
    pub address: String,
    /// The exact amount reserved (unique-amount matching); `None` when any amount matches.
    pub reserved_amount: Option<Amount>,
    pub derivation_index: Option<i64>,
}

impl Allocation {
    /// A target at a fixed `address` for exactly `new`'s amount, no tolerance: what tests
    /// and sample events use when no chain configuration is at hand.
    pub fn fixed_address(new: &NewInvoice, address: &str, confirmations_required: u32) -> Self {
        Allocation {
            strategy: MatchStrategy::FixedAddress,
            target: NewTarget {
                address: address.to_string(),
                reserved_amount: None,
                derivation_index: None,
            },
            pay_reference: None,
            amount_due: new.amount_due,
            tolerance: Amount::ZERO,
            confirmations_required,
        }
    }
}

/// Invoice ids are UUIDs, stored hyphenated and lower-case. A dialect may show one in
/// another of its forms (tron-php's `payment_token` is the 32 hex digits without hyphens):
/// this gives the stored form of any form of a UUID, and any other text unchanged (it
/// then names no invoice).
pub fn canonical_invoice_id(text: &str) -> std::borrow::Cow<'_, str> {
    match uuid::Uuid::try_parse(text) {
        Ok(id) => id.hyphenated().to_string().into(),
        Err(_) => text.into(),
    }
}

impl Invoice {
    /// A new, pending invoice with id `id` created at `now`.
    pub fn open(id: String, new: &NewInvoice, allocation: &Allocation, now: i64) -> Invoice {
        Invoice {
            id,
            merchant_id: new.merchant_id.clone(),
            plugin: new.plugin.clone(),
            merchant_order_id: new.merchant_order_id.clone(),
            status: InvoiceStatus::Pending,
            outcome: Outcome::default(),
            chain: new.chain.clone(),
            asset: new.asset.clone(),
            decimals: new.decimals,
            amount_due: allocation.amount_due,
            amount_paid: Amount::ZERO,
            amount_confirmed: Amount::ZERO,
            tolerance: allocation.tolerance,
            confirmations_required: allocation.confirmations_required,
            strategy: allocation.strategy,
            pay_address: allocation.target.address.clone(),
            pay_reference: allocation.pay_reference.clone(),
            txn_hash: None,
            payer_address: None,
            fiat: new.fiat.clone(),
            previous_due: None,
            notify_url: new.notify_url.clone(),
            return_url: new.return_url.clone(),
            plugin_data: new.plugin_data.clone(),
            expires_at: new.expires_at,
            monitor_until: new.monitor_until.max(new.expires_at),
            first_paid_at: None,
            paid_at: None,
            submitted_at: None,
            cancelled_at: None,
            quarantined_at: None,
            created_at: now,
            updated_at: now,
            version: 0,
        }
    }
}
