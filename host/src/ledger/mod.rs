//! The ledger of custodial dialects: users holding balances inside polypay, orders paid
//! from them, double-entry postings. The WIT `ledger` capability
//! (`crate::plugin::capabilities`) is a thin, plugin-scoped view of [`Ledger`]; the
//! operator's `polypay ledger` CLI uses it too.
//!
//! # What it owns, and the decisions taken where the spec is silent
//!
//! - **Scope.** Every user, account, order and posting belongs to one plugin (the
//!   `plugin` column); every read and write names the plugin and finds nothing of
//!   another (`NotFound`, never a different error).
//! - **Ids.** Users, orders, order items, accounts, postings and entries get 64-bit
//!   snowflake-style ids ([`next_id`]): milliseconds since 2020-01-01 (41 bits), a node
//!   number chosen at random when the process starts (10 bits) and a per-millisecond
//!   sequence (12 bits). Time-ordered, so "newest first" is "highest id first". Two
//!   instances drawing the same node number could make the same id in the same
//!   millisecond: the primary key refuses the second write (the caller sees a conflict
//!   and retries); no money moves twice.
//! - **Accounts and postings.** Each (plugin, user, chain, asset) has an `available` and
//!   a `locked` account (credit-normal: the operator owes the user), and a `debt` account
//!   (debit-normal: the user owes the operator after a reversed deposit was already
//!   spent). Each (plugin, chain, asset) has one `external` account (debit-normal: what
//!   came in from the chain or the operator) and one `outflow` account (credit-normal:
//!   what went back out: reversed deposits, operator debits); both only grow. Every movement is one entry of postings whose debits equal
//!   its credits; the accounts' cached balances are updated in the same transaction
//!   (never below zero: a movement that would is refused and writes nothing), and
//!   [`Ledger::recompute`] checks them against the postings.
//! - **Assets** are (chain, asset) pairs of the config: the same token on two networks
//!   is two balances, since their decimals may differ.
//! - **Money** is base units ([`Amount`]); amounts arrive as decimal text in the asset's
//!   units and are parsed here with the asset's decimals (zero, negative and
//!   over-precise amounts are refused before anything is written).
//! - **Order lifecycle** ([`OrderStatus`]): `waiting` → `completed` (paid, nothing locked)
//!   or `processing` (PREPAY amounts locked) → `completed` once every lock is settled or
//!   unlocked; `waiting`/`processing` → `expired` (by [`Ledger::expire_due`], after
//!   `expires_at`) or `cancelled`, both releasing locks. Refunds move paid amounts back
//!   without changing the status. A pay at or after `expires_at` is refused even before
//!   the expiry task has run.
//! - **Concurrency.** Each change runs in one transaction that first locks the order row
//!   and then the accounts it touches in id order (`FOR UPDATE` on PostgreSQL; SQLite
//!   transactions are `BEGIN IMMEDIATE`, one writer at a time), then re-reads and
//!   re-checks: of concurrent pays of one order exactly one finds it `waiting`, and two
//!   orders paid from one balance see each other's debit. The same lock order everywhere
//!   keeps PostgreSQL free of deadlocks between ledger writers.
//! - **Events.** Every change writes an outbox event (`ledger.order.paid`, ...) in its
//!   transaction, with the order as it is after the change ([`LedgerEventPayload`]).
//!   Its merchant is the order's (the payee's merchant; empty when the payee is not a
//!   merchant's user) and its URL the order's `notify_url`.
//! - **Deposits** ([`Ledger::credit_deposit`], [`Ledger::reverse_deposit`]): one row per
//!   transfer (chain, transaction, log index), so a confirmed transfer credits once however
//!   often it is reported; a credit first pays off the user's debt in that asset, the rest
//!   becomes available. A reversal (the block left the chain) takes the amount back from
//!   the available balance and records what is missing as debt, which blocks paying with
//!   that asset until a later deposit covers it: never a silent loss, never a negative
//!   balance. A reversed transfer mined again is credited again.
//! - **Deposit addresses** ([`Ledger::deposit_address`]): one per (plugin, user, chain),
//!   the next non-hardened child of the extended public key the operator configured for
//!   the plugin and chain (`deposit_xpubs`), drawn from the same per-key counter as
//!   `derived-address` invoices (so one key may serve both without reusing an address),
//!   derived on first request and stored (`ledger_deposit_addresses`); the same address
//!   ever after, even if the key is later changed. An address belongs to one user.
//! - **Deposits on chain** (`deposits`): the listeners watch every deposit address for
//!   every asset of its chain; a transfer to one is stored unmatched by the matcher (it is
//!   no invoice's target) and credited to the address's user in the listener step that
//!   gives it the chain's required confirmations, in that step's transaction; a reorg
//!   step reverses the credits of the transfers it removed. Transfers matched to an
//!   invoice, payment-contract events and zero amounts are never credited.
//! - **Withdrawals.** Custodial dialects here have no on-chain withdrawal. Money leaves a
//!   user only through orders, or through an operator adjustment ([`Ledger::adjust`]),
//!   posted against the plugin's external (credit) or outflow (debit) account, so that per
//!   asset `external - outflow` always equals what users hold net of their debts.

pub mod cli;
mod deposits;
mod service;

pub use deposits::DepositWindow;
pub use service::Ledger;

use crate::invoice::{Amount, MoneyError};
use serde::{Deserialize, Serialize};

/// Why a ledger call was refused. `Conflict` texts start with a stable token
/// (`insufficient-balance`, `debt`, `status`, `expired`, `over-refund`, `over-lock`,
/// `duplicate`), documented in the WIT.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl From<sqlx::Error> for LedgerError {
    fn from(e: sqlx::Error) -> Self {
        LedgerError::Store(e.into())
    }
}

/// A second factor's address book entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub national_code: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub plugin: String,
    pub merchant_id: Option<String>,
    pub contact: Contact,
    pub plugin_data: serde_json::Value,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub merchant_id: Option<String>,
    pub contact: Contact,
    pub plugin_data: Option<serde_json::Value>,
}

/// A user's holding of one asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Balance {
    pub chain: String,
    pub asset: String,
    pub available: Amount,
    pub locked: Amount,
    pub debt: Amount,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayType {
    Pay,
    Prepay,
}

impl PayType {
    fn as_str(self) -> &'static str {
        match self {
            PayType::Pay => "pay",
            PayType::Prepay => "prepay",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Waiting,
    Processing,
    Completed,
    Expired,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Waiting => "waiting",
            OrderStatus::Processing => "processing",
            OrderStatus::Completed => "completed",
            OrderStatus::Expired => "expired",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<OrderStatus> {
        [
            OrderStatus::Waiting,
            OrderStatus::Processing,
            OrderStatus::Completed,
            OrderStatus::Expired,
            OrderStatus::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

#[derive(Debug, Clone)]
pub struct NewOrderItem {
    pub pay_type: PayType,
    pub chain: String,
    pub asset: String,
    /// The asset's decimals (from the config).
    pub decimals: u8,
    /// In the asset's units, e.g. "0.1575".
    pub amount: String,
}

#[derive(Debug, Clone)]
pub struct NewOrder {
    pub payer_user_id: i64,
    pub payee_user_id: i64,
    pub client_order_id: String,
    pub items: Vec<NewOrderItem>,
    pub expires_at: i64,
    pub notify_url: Option<String>,
    pub plugin_data: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    pub id: i64,
    pub pay_type: PayType,
    pub chain: String,
    pub asset: String,
    pub decimals: u8,
    pub amount: Amount,
    pub paid: Amount,
    pub locked: Amount,
    pub unlocked: Amount,
    pub refunded: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: i64,
    pub plugin: String,
    pub payer_user_id: i64,
    pub payee_user_id: i64,
    pub merchant_id: Option<String>,
    pub client_order_id: String,
    pub status: OrderStatus,
    pub items: Vec<OrderItem>,
    pub expires_at: i64,
    pub paid_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub notify_url: Option<String>,
    pub plugin_data: serde_json::Value,
}

/// Narrows [`Ledger::list_orders`]; every bound inclusive.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    pub payer_user_id: Option<i64>,
    pub payee_user_id: Option<i64>,
    pub statuses: Vec<OrderStatus>,
    pub min_id: Option<i64>,
    pub max_id: Option<i64>,
    pub created_from: Option<i64>,
    pub created_to: Option<i64>,
}

/// What a change did, as its outbox event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LedgerAction {
    OrderCreated,
    OrderPaid,
    OrderSettled,
    OrderUnlocked,
    OrderRefunded,
    OrderCancelled,
    OrderExpired,
    DepositCredited,
    DepositReversed,
}

impl LedgerAction {
    /// The outbox kind: `ledger.order.paid`, ...
    pub fn event_kind(self) -> &'static str {
        match self {
            LedgerAction::OrderCreated => "ledger.order.created",
            LedgerAction::OrderPaid => "ledger.order.paid",
            LedgerAction::OrderSettled => "ledger.order.settled",
            LedgerAction::OrderUnlocked => "ledger.order.unlocked",
            LedgerAction::OrderRefunded => "ledger.order.refunded",
            LedgerAction::OrderCancelled => "ledger.order.cancelled",
            LedgerAction::OrderExpired => "ledger.order.expired",
            LedgerAction::DepositCredited => "ledger.deposit.credited",
            LedgerAction::DepositReversed => "ledger.deposit.reversed",
        }
    }
}

/// Prefix of every ledger outbox kind.
pub const EVENT_KIND_PREFIX: &str = "ledger.";

/// The payload of a ledger outbox event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEventPayload {
    pub version: u32,
    pub action: LedgerAction,
    pub previous_status: Option<OrderStatus>,
    /// The order after the change (order actions).
    pub order: Option<Order>,
    /// (item id, amount) this change moved.
    pub moved: Vec<(i64, Amount)>,
    /// The deposit (deposit actions).
    #[serde(default)]
    pub deposit: Option<Deposit>,
}

/// A confirmed transfer to a user's deposit address, as the chain side reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepositTransfer {
    pub chain: String,
    pub asset: String,
    pub amount: Amount,
    pub address: String,
    pub txn_hash: String,
    pub log_index: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DepositStatus {
    Credited,
    Reversed,
}

/// A deposit credited (or reversed) once per transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deposit {
    pub id: i64,
    pub plugin: String,
    pub user_id: i64,
    pub chain: String,
    pub asset: String,
    pub amount: Amount,
    pub address: String,
    pub txn_hash: String,
    pub log_index: i64,
    pub status: DepositStatus,
    pub credited_at: i64,
    pub reversed_at: Option<i64>,
}

/// One line of an entry, for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Posting {
    pub id: i64,
    pub entry_id: i64,
    pub owner: i64,
    pub chain: String,
    pub asset: String,
    pub kind: String,
    pub side: String,
    pub amount: Amount,
    pub memo: String,
    pub order_id: Option<i64>,
    pub created_at: i64,
}

/// An account whose cached balance differs from its postings ([`Ledger::recompute`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BalanceMismatch {
    pub account_id: i64,
    pub cached: Amount,
    pub from_postings: Option<Amount>,
}

/// Per (plugin, chain, asset): what came in and went out against what users hold
/// ([`Ledger::reconcile`]). Balanced when `held + outflow == external + debt`, i.e.
/// confirmed deposits (and operator credits) minus reversals (and operator debits) equal
/// the users' balances net of their debts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reconciliation {
    pub plugin: String,
    pub chain: String,
    pub asset: String,
    /// Deposits credited and operator credits.
    pub external: Amount,
    /// Deposits reversed and operator debits.
    pub outflow: Amount,
    /// Users' available and locked balances.
    pub held: Amount,
    /// Users' debts.
    pub debt: Amount,
    /// The equation above holds, every entry balances and every cached balance equals
    /// its postings.
    pub balanced: bool,
}

/// A decimal amount of an asset with `decimals` decimals, more than zero.
pub fn parse_amount(text: &str, decimals: u8) -> Result<Amount, LedgerError> {
    let amount = Amount::parse_decimal(text, decimals)
        .map_err(|e: MoneyError| LedgerError::Invalid(format!("amount `{text}`: {e}")))?;
    if amount.is_zero() {
        return Err(LedgerError::Invalid(format!(
            "amount `{text}` must be more than zero"
        )));
    }
    Ok(amount)
}

/// A decimal id as it crosses the WIT boundary.
pub fn parse_id(text: &str) -> Result<i64, LedgerError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(LedgerError::NotFound)
}

const EPOCH_MS: i64 = 1_577_836_800_000; // 2020-01-01T00:00:00Z

/// A new snowflake-style id (see the module docs).
pub fn next_id() -> i64 {
    use std::sync::Mutex;
    use std::sync::OnceLock;
    static NODE: OnceLock<i64> = OnceLock::new();
    static LAST: Mutex<(i64, i64)> = Mutex::new((0, 0));
    let node = *NODE.get_or_init(|| rand::random::<u16>() as i64 & 0x3ff);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let mut ms = (crate::store::now_ms() - EPOCH_MS).max(0);
    if ms < last.0 {
        ms = last.0; // the clock went back: stay on the last millisecond
    }
    if ms == last.0 {
        last.1 += 1;
        if last.1 > 0xfff {
            ms += 1; // sequence exhausted: borrow the next millisecond
            last.1 = 0;
        }
    } else {
        last.1 = 0;
    }
    last.0 = ms;
    (ms << 22) | (node << 12) | last.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_increasing() {
        let ids: Vec<i64> = (0..20_000).map(|_| next_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.iter().all(|id| *id > 0));
    }

    #[test]
    fn amounts_must_be_positive_and_exact() {
        assert_eq!(parse_amount("0.1575", 6).unwrap(), Amount::from(157_500u64));
        for bad in ["0", "-1", "0.0000001", "1e3", ""] {
            assert!(
                matches!(parse_amount(bad, 6), Err(LedgerError::Invalid(_))),
                "{bad}"
            );
        }
    }
}
