//! The invoice service: every change of an invoice goes through here, in one transaction
//! with the outbox event it emits.
//!
//! - [`InvoiceService::open`] allocates the payment target (the matcher's [`plan`]) and
//!   creates the invoice with its target and its `invoice.created` event; with an
//!   idempotency key, at most once per key.
//! - [`InvoiceService::settle_in`] re-evaluates the invoices a chain event touched, inside
//!   the listener's transaction: it sums their credits ([`super::tally`]), asks the
//!   lifecycle for their status ([`super::evaluate`]), writes each change with its event,
//!   and keeps their targets' reservations in step.
//! - [`InvoiceService::requote`] moves an unpaid fiat-priced invoice to a fresh quote
//!   (below, "Re-quotes").
//! - [`InvoiceService::cancel`], [`InvoiceService::mark_submitted`],
//!   [`InvoiceService::expire_due`] and [`InvoiceService::release_due_targets`] are the
//!   merchant's and the scheduler's changes.
//!
//! # Quarantine
//!
//! Settling one invoice must never stop a chain. Each invoice is settled in its own
//! savepoint; if that fails for a reason that belongs to the invoice (its row cannot be
//! read, the facts ask for an illegal transition, a constraint refuses the write), the
//! savepoint is rolled back and the invoice is *set aside*: `quarantined_at` and the
//! reason are recorded in the same transaction, the error is logged, counted in
//! `polypay_invoice_quarantines_total{chain}` and listed by the admin API. The listener's
//! transfers are stored regardless (attributed to the invoice), so nothing is lost: once
//! an operator has repaired the cause, [`InvoiceService::retry_quarantined`] takes the
//! invoice back and settles it from its stored credits. Failures of the database itself
//! (a lost connection, a lock timeout, a serialisation failure) are not the invoice's: the
//! whole step fails and the listener retries it.
//!
//! # Reservations
//!
//! A new target is released at the latest at its `release_at`: the deadline for shared
//! targets (`unique-amount`, `fixed-address`) while nothing has been paid to them, the end
//! of the post-expiry monitoring window otherwise. Settling moves `release_at` when the
//! first credit arrives or a reorg removes the last one; a paid invoice releases its
//! targets at once; a reorg that takes the payment back re-activates them.
//! [`InvoiceService::release_due_targets`] releases the due ones only once their chain has
//! been processed past `release_at`, so a payment mined before a deadline but not yet read
//! still finds its reservation.

//!
//! # Re-quotes
//!
//! A fiat-priced invoice's amount follows its rate only while nothing has been paid: a
//! re-quote of a pending, unpaid invoice before its deadline replaces the amount due and
//! the quote. The payer may still be sending the amount shown before, so the replaced
//! amount stays acceptable until the end of a grace period (`previous_due`): settling
//! counts it as full payment when the transfer completing it was mined by then. For
//! `unique-amount`, the new amount gets a reservation of its own, and the replaced one
//! keeps its reservation until the grace ends (so no other invoice is handed it while a
//! payment of it can still arrive; released like any other once the chain has been read
//! past that time), after which a transfer of it matches nothing. Only the latest replaced
//! amount is accepted; an older one's reservation still runs out its own grace, so it is
//! never handed to another invoice early. Fixed-address invoices are not re-quoted: their
//! matching compares a transfer with the single amount the invoice awaits.

use sha2::{Digest, Sha256};
use sqlx::{Acquire, AnyConnection};

use super::tally::{TallyRules, tally};
use super::{
    Allocation, Amount, EventKind, EventPayload, FiatQuote, Invoice, InvoiceStatus, MatchStrategy,
    NewInvoice, PaymentFacts, PreviousDue, check_transition, evaluate,
};
use crate::chain::ChainConfig;
use crate::matcher::{self, AllocationError, TargetSpec};
use crate::store::invoices::{self as queries, InsertError, InvoiceConflict};
use crate::store::{Backend, Store, StoreError, Tx, now_ms};

/// The chain position a settlement is judged at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainView {
    /// The highest block the listener has processed (and checked for reorgs):
    /// confirmations are counted from it.
    pub processed_block: i64,
    /// The newest block the chain declares irreversible (TRON's solidified block), on
    /// chains that have one: a credit in a later block is not confirmed, however deep.
    pub final_block: Option<i64>,
}

/// Why an invoice could not be created or changed.
#[derive(Debug, thiserror::Error)]
pub enum InvoiceError {
    #[error("invoice {0} not found")]
    NotFound(String),
    #[error("an invoice with merchant order id `{0}` already exists")]
    DuplicateOrderId(String),
    #[error("payment reference `{0}` already names another invoice on this chain")]
    DuplicateReference(String),
    #[error("idempotency key `{0}` was used for a different request")]
    IdempotencyMismatch(String),
    #[error(
        "address {address} already has an open {asset} invoice; one fixed-address invoice per address may be open"
    )]
    AddressBusy { address: String, asset: String },
    #[error("every unique amount from {low} to {high} is reserved at {address}")]
    NoFreeAmount {
        address: String,
        low: super::Amount,
        high: super::Amount,
    },
    #[error(transparent)]
    Allocation(AllocationError),
    #[error(transparent)]
    Illegal(#[from] super::IllegalTransition),
    #[error("invoice {0} changed concurrently; retry")]
    Concurrent(String),
    #[error("invoice {0} is quarantined")]
    Quarantined(String),
    #[error("invoice {id} cannot be re-quoted: {why}")]
    NotRequotable { id: String, why: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for InvoiceError {
    fn from(e: sqlx::Error) -> Self {
        InvoiceError::Store(e.into())
    }
}

impl From<AllocationError> for InvoiceError {
    fn from(e: AllocationError) -> Self {
        match e {
            AllocationError::Store(s) => InvoiceError::Store(s),
            other => InvoiceError::Allocation(other),
        }
    }
}

impl InvoiceError {
    /// True when the failure is the database's, not the invoice's: retry the whole step
    /// rather than set the invoice aside.
    pub fn is_systemic(&self) -> bool {
        match self {
            InvoiceError::Concurrent(_) => true,
            InvoiceError::Store(StoreError::Database(e)) => match e {
                sqlx::Error::Database(db) => db.code().is_some_and(|c| transient_code(&c)),
                _ => true,
            },
            _ => false,
        }
    }
}

/// Database error codes that say "try again" rather than "this row is wrong": PostgreSQL
/// connection, serialisation, resource and shutdown classes and lock timeouts; SQLite's
/// busy and locked (with their extended codes).
fn transient_code(code: &str) -> bool {
    if let Ok(n) = code.parse::<i64>() {
        return matches!(n & 0xff, 5 | 6);
    }
    ["08", "40", "53", "57"].iter().any(|c| code.starts_with(c)) || code == "55P03"
}

/// What [`InvoiceService::settle_in`] did.
#[derive(Debug, Default)]
pub struct Settlement {
    /// The invoices that changed, as changed.
    pub changed: Vec<Invoice>,
    /// The invoices set aside by this settlement.
    pub quarantined: Vec<String>,
}

/// Changes invoices; see the module docs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct InvoiceService {
    store: Store,
}

/// A digest of what a caller asked for, to compare a repeated idempotent request with the
/// first. Fields are length-prefixed so no two requests share a fingerprint.
pub fn request_fingerprint(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

impl InvoiceService {
    pub fn new(store: Store) -> InvoiceService {
        InvoiceService { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Allocates the target `spec` asks for on `chain` and creates the invoice. With an
    /// idempotency key on `new`, a key already used with the same request returns the
    /// invoice created then; with another request it is
    /// [`InvoiceError::IdempotencyMismatch`].
    pub async fn open(
        &self,
        chain: &ChainConfig,
        new: &NewInvoice,
        spec: &TargetSpec,
    ) -> Result<Invoice, InvoiceError> {
        if let Some(existing) = self.replay(new).await? {
            return Ok(existing);
        }
        let plan = matcher::plan(&self.store, chain, new, spec, now_ms()).await?;
        for allocation in plan.candidates() {
            match self.create(new, &allocation).await {
                // Claimed by a concurrent creation since the plan was read: next amount.
                Err(InvoiceError::NoFreeAmount { .. })
                    if plan.strategy() == MatchStrategy::UniqueAmount =>
                {
                    continue;
                }
                Err(InvoiceError::IdempotencyMismatch(_)) if new.idempotency.is_some() => {
                    // A concurrent request with the same key won the insert.
                    return self
                        .replay(new)
                        .await?
                        .ok_or_else(|| InvoiceError::Concurrent(String::new()));
                }
                other => return other,
            }
        }
        let (low, high) = plan
            .unique_range()
            .unwrap_or((new.amount_due, new.amount_due));
        Err(InvoiceError::NoFreeAmount {
            address: plan.address().to_string(),
            low,
            high,
        })
    }

    /// The invoice an earlier request with `new`'s idempotency key created, if any.
    async fn replay(&self, new: &NewInvoice) -> Result<Option<Invoice>, InvoiceError> {
        let Some(idempotency) = &new.idempotency else {
            return Ok(None);
        };
        let mut conn = self.store.pool().acquire().await?;
        let found = queries::find_by_idempotency_key(
            &mut conn,
            &new.plugin,
            &new.merchant_id,
            &idempotency.key,
        )
        .await?;
        match found {
            None => Ok(None),
            Some((invoice, fingerprint)) if fingerprint == idempotency.fingerprint => {
                Ok(Some(invoice))
            }
            Some(_) => Err(InvoiceError::IdempotencyMismatch(idempotency.key.clone())),
        }
    }

    /// Creates the invoice `new` with `allocation` as its target, and its
    /// `invoice.created` event, in one transaction. A reserved amount taken meanwhile is
    /// [`InvoiceError::NoFreeAmount`]; a fixed address with an open invoice is
    /// [`InvoiceError::AddressBusy`].
    pub async fn create(
        &self,
        new: &NewInvoice,
        allocation: &Allocation,
    ) -> Result<Invoice, InvoiceError> {
        let now = now_ms();
        let id = uuid::Uuid::new_v4().to_string();
        let mut allocation = allocation.clone();
        if allocation.strategy == MatchStrategy::ContractReference
            && allocation.pay_reference.is_none()
        {
            allocation.pay_reference = Some(id.clone());
        }
        let invoice = Invoice::open(id, new, &allocation, now);
        let mut tx = self.store.begin().await?;
        match queries::insert(&mut tx, &invoice, new.idempotency.as_ref()).await {
            Ok(()) => {}
            Err(InsertError::Invoice(InvoiceConflict::OrderId)) => {
                return Err(InvoiceError::DuplicateOrderId(
                    new.merchant_order_id.clone().unwrap_or_default(),
                ));
            }
            Err(InsertError::Invoice(InvoiceConflict::IdempotencyKey)) => {
                let key = new.idempotency.as_ref().map(|i| i.key.clone());
                return Err(InvoiceError::IdempotencyMismatch(key.unwrap_or_default()));
            }
            Err(InsertError::Invoice(InvoiceConflict::Reference)) => {
                return Err(InvoiceError::DuplicateReference(
                    invoice.pay_reference.clone().unwrap_or_default(),
                ));
            }
            Err(InsertError::TargetTaken) => unreachable!("an invoice insert claims no target"),
            Err(InsertError::Store(e)) => return Err(e.into()),
        }
        match queries::insert_target(&mut tx, &invoice, &allocation.target, release_at(&invoice))
            .await
        {
            Ok(()) => {}
            Err(InsertError::TargetTaken) if invoice.strategy == MatchStrategy::FixedAddress => {
                return Err(InvoiceError::AddressBusy {
                    address: invoice.pay_address.clone(),
                    asset: invoice.asset.clone(),
                });
            }
            Err(InsertError::TargetTaken) => {
                return Err(InvoiceError::NoFreeAmount {
                    address: invoice.pay_address.clone(),
                    low: invoice.amount_due,
                    high: invoice.amount_due,
                });
            }
            Err(InsertError::Invoice(_)) => unreachable!("a target insert names no invoice"),
            Err(InsertError::Store(e)) => return Err(e.into()),
        }
        let payload = EventPayload::change(EventKind::Created, None, &invoice);
        queries::append_event(&mut tx, &payload, now).await?;
        tx.commit().await?;
        Ok(invoice)
    }

    /// Cancels an unpaid invoice (merchant request) and releases its payment target.
    pub async fn cancel(&self, id: &str) -> Result<Invoice, InvoiceError> {
        self.change(id, |invoice, now| {
            check_transition(invoice.status, InvoiceStatus::Cancelled)?;
            let mut changed = invoice.clone();
            changed.status = InvoiceStatus::Cancelled;
            changed.cancelled_at = Some(now);
            Ok(Some((changed, EventKind::Cancelled)))
        })
        .await
    }

    /// Records that the payer says it has paid; the status does not change. Idempotent.
    pub async fn mark_submitted(&self, id: &str) -> Result<Invoice, InvoiceError> {
        self.change(id, |invoice, now| {
            if invoice.submitted_at.is_some() {
                return Ok(None);
            }
            let mut changed = invoice.clone();
            changed.submitted_at = Some(now);
            Ok(Some((changed, EventKind::Submitted)))
        })
        .await
    }

    /// Reads invoice `id` under its lock, asks `decide` for the changed invoice and the
    /// event it emits (or nothing), and writes both in one transaction; a cancellation
    /// also releases the targets.
    async fn change(
        &self,
        id: &str,
        decide: impl FnOnce(&Invoice, i64) -> Result<Option<(Invoice, EventKind)>, InvoiceError>,
    ) -> Result<Invoice, InvoiceError> {
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        let invoice = queries::get_for_update(&mut tx, self.store.backend(), id)
            .await?
            .ok_or_else(|| InvoiceError::NotFound(id.into()))?;
        let Some((mut changed, kind)) = decide(&invoice, now)? else {
            return Ok(invoice);
        };
        changed.updated_at = now;
        changed.version = invoice.version + 1;
        write(&mut tx, &invoice, &changed).await?;
        if changed.status == InvoiceStatus::Cancelled {
            queries::release_targets(&mut tx, id, now).await?;
        }
        let previous = Some(invoice.status);
        queries::append_event(
            &mut tx,
            &EventPayload::change(kind, previous, &changed),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Re-quotes the unpaid, pending, fiat-priced invoice `id`: `quote` is the fresh quote
    /// of its fiat price and `amount` what it comes to in base units. In one transaction
    /// with its `invoice.requoted` event: the amount due becomes `amount` (for
    /// `unique-amount`, raised to a free unique amount of its own, claimed by a new
    /// target; the invoice's current reservation counts as free), and when it changes, the
    /// amount it replaces stays acceptable as full payment for `grace_ms` (its
    /// reservation is held until then, then released like any other). See the module docs.
    pub async fn requote(
        &self,
        chain: &ChainConfig,
        id: &str,
        quote: FiatQuote,
        amount: Amount,
        grace_ms: i64,
    ) -> Result<Invoice, InvoiceError> {
        let now = now_ms();
        let current = {
            let mut conn = self.store.pool().acquire().await?;
            queries::get(&mut conn, id)
                .await?
                .ok_or_else(|| InvoiceError::NotFound(id.into()))?
        };
        requotable(&current, now)?;
        let plan = match current.strategy {
            MatchStrategy::UniqueAmount => {
                let new = NewInvoice::new(
                    &current.merchant_id,
                    &current.plugin,
                    &current.chain,
                    (&current.asset, current.decimals),
                    amount,
                    current.expires_at,
                );
                let spec = TargetSpec::UniqueAmount {
                    address: current.pay_address.clone(),
                };
                Some(matcher::plan(&self.store, chain, &new, &spec, now).await?)
            }
            _ => None,
        };
        let mut tx = self.store.begin().await?;
        let invoice = queries::get_for_update(&mut tx, self.store.backend(), id)
            .await?
            .ok_or_else(|| InvoiceError::NotFound(id.into()))?;
        requotable(&invoice, now)?;
        let new_due = match plan {
            None => amount,
            Some(plan) => {
                let plan = plan.with_available(invoice.amount_due);
                let mut chosen = None;
                for allocation in plan.candidates() {
                    if allocation.amount_due == invoice.amount_due {
                        chosen = Some(invoice.amount_due);
                        break;
                    }
                    let mut savepoint = tx.begin().await?;
                    let target = &allocation.target;
                    match queries::insert_target(
                        &mut savepoint,
                        &invoice,
                        target,
                        release_at(&invoice),
                    )
                    .await
                    {
                        Ok(()) => {
                            savepoint.commit().await?;
                            chosen = Some(allocation.amount_due);
                            break;
                        }
                        Err(InsertError::TargetTaken) => savepoint.rollback().await?,
                        Err(InsertError::Store(e)) => return Err(e.into()),
                        Err(InsertError::Invoice(_)) => {
                            unreachable!("a target insert names no invoice")
                        }
                    }
                }
                let (low, high) = plan.unique_range().unwrap_or((amount, amount));
                chosen.ok_or_else(|| InvoiceError::NoFreeAmount {
                    address: invoice.pay_address.clone(),
                    low,
                    high,
                })?
            }
        };
        let mut changed = invoice.clone();
        if new_due != invoice.amount_due {
            let until = now.saturating_add(grace_ms);
            changed.previous_due = Some(PreviousDue {
                amount: invoice.amount_due,
                until,
            });
            queries::limit_reservation(&mut tx, id, invoice.amount_due, until).await?;
        }
        changed.amount_due = new_due;
        changed.fiat = Some(quote);
        changed.updated_at = now;
        changed.version = invoice.version + 1;
        write(&mut tx, &invoice, &changed).await?;
        let payload = EventPayload::change(EventKind::Requoted, Some(invoice.status), &changed);
        queries::append_event(&mut tx, &payload, now).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Settles each invoice in `ids` against the chain as processed up to `view`, in the
    /// caller's transaction, setting aside those whose settlement fails (module docs).
    /// Fails only for a failure of the database itself.
    pub async fn settle_in(
        &self,
        tx: &mut Tx,
        ids: impl IntoIterator<Item = &String>,
        view: ChainView,
        now: i64,
    ) -> Result<Settlement, InvoiceError> {
        let backend = self.store.backend();
        let mut settlement = Settlement::default();
        for id in ids {
            let mut savepoint = tx.begin().await?;
            match settle_by_id(&mut savepoint, backend, id, Some(view), now).await {
                Ok(changed) => {
                    savepoint.commit().await?;
                    settlement.changed.extend(changed);
                }
                Err(e) if e.is_systemic() => return Err(e),
                Err(e) => {
                    savepoint.rollback().await?;
                    quarantine(tx, id, &e, now).await?;
                    settlement.quarantined.push(id.clone());
                }
            }
        }
        Ok(settlement)
    }

    /// Expires every pending invoice whose deadline has passed at `now`, at most `limit`,
    /// each re-read under its lock and settled from its stored amounts (a payment that
    /// landed meanwhile wins); returns the invoices changed.
    pub async fn expire_due(&self, now: i64, limit: i64) -> Result<Vec<Invoice>, InvoiceError> {
        let ids = {
            let mut conn = self.store.pool().acquire().await?;
            queries::due_for_expiry(&mut conn, now, limit).await?
        };
        let mut expired = Vec::new();
        for id in ids {
            let mut tx = self.store.begin().await?;
            let changed = settle_by_id(&mut tx, self.store.backend(), &id, None, now).await;
            match changed {
                Ok(changed) => {
                    tx.commit().await?;
                    expired.extend(changed);
                }
                Err(e) if e.is_systemic() => return Err(e),
                Err(e) => {
                    tx.rollback().await?;
                    let mut tx = self.store.begin().await?;
                    quarantine(&mut tx, &id, &e, now).await?;
                    tx.commit().await?;
                }
            }
        }
        Ok(expired)
    }

    /// Releases the targets due for release at `now` whose chain has been processed past
    /// their `release_at` (module docs); returns how many.
    pub async fn release_due_targets(&self, now: i64) -> Result<u64, InvoiceError> {
        let mut conn = self.store.pool().acquire().await?;
        Ok(queries::release_due_targets(&mut conn, now).await?)
    }

    /// Takes a quarantined invoice back and settles it against its chain's processed
    /// block, in one transaction: if settling fails again, it stays quarantined and the
    /// error is returned. Returns the invoice as it is now.
    pub async fn retry_quarantined(&self, id: &str) -> Result<Invoice, InvoiceError> {
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        if !queries::clear_quarantine(&mut tx, id).await? {
            return Err(InvoiceError::NotFound(id.into()));
        }
        let invoice = queries::get_for_update(&mut tx, self.store.backend(), id)
            .await?
            .ok_or_else(|| InvoiceError::NotFound(id.into()))?;
        let cursor = self.store.chain_cursor(&invoice.chain).await?;
        let view = cursor.and_then(|c| {
            c.processed_block.map(|processed_block| ChainView {
                processed_block,
                final_block: c.final_block,
            })
        });
        let changed = settle(&mut tx, &invoice, view, now).await?;
        tx.commit().await?;
        Ok(changed.unwrap_or(invoice))
    }
}

/// Whether `invoice` may be re-quoted at `now`: pending, nothing paid, priced in fiat, not
/// past its deadline, not set aside, and not matched by a fixed address (whose matching
/// compares a transfer with the one amount the invoice awaits).
fn requotable(invoice: &Invoice, now: i64) -> Result<(), InvoiceError> {
    let why = if invoice.status != InvoiceStatus::Pending {
        Some("it is not pending")
    } else if !invoice.amount_paid.is_zero() {
        Some("a payment has been received")
    } else if invoice.fiat.is_none() {
        Some("it is not priced in fiat")
    } else if now >= invoice.expires_at {
        Some("it is past its deadline")
    } else if invoice.quarantined_at.is_some() {
        Some("it is set aside")
    } else if invoice.strategy == MatchStrategy::FixedAddress {
        Some("fixed-address invoices keep their amount")
    } else {
        None
    };
    match why {
        Some(why) => Err(InvoiceError::NotRequotable {
            id: invoice.id.clone(),
            why,
        }),
        None => Ok(()),
    }
}

/// Records `id` as set aside because of `error` (module docs).
async fn quarantine(
    conn: &mut AnyConnection,
    id: &str,
    error: &InvoiceError,
    now: i64,
) -> Result<(), StoreError> {
    let chain: Option<String> = sqlx::query_scalar("SELECT chain FROM invoices WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let chain = chain.unwrap_or_default();
    tracing::error!(invoice = %id, chain = %chain, error = %error, "settling the invoice failed; set aside for the operator");
    metrics::counter!("polypay_invoice_quarantines_total", "chain" => chain).increment(1);
    queries::quarantine(conn, id, &error.to_string(), now).await
}

/// Settles invoice `id` unless it is set aside or gone.
async fn settle_by_id(
    conn: &mut AnyConnection,
    backend: Backend,
    id: &str,
    view: Option<ChainView>,
    now: i64,
) -> Result<Option<Invoice>, InvoiceError> {
    if queries::is_quarantined(conn, id).await? {
        return Ok(None);
    }
    let Some(invoice) = queries::get_for_update(conn, backend, id).await? else {
        return Ok(None);
    };
    settle(conn, &invoice, view, now).await
}

/// Recomputes `invoice` from its credits (with a chain view; without one the stored
/// totals are kept), asks the lifecycle which status and outcome the facts call for, and
/// writes any change with its event and its targets' reservations. Returns the invoice if
/// anything changed.
async fn settle(
    conn: &mut AnyConnection,
    invoice: &Invoice,
    view: Option<ChainView>,
    now: i64,
) -> Result<Option<Invoice>, InvoiceError> {
    let mut changed = invoice.clone();
    if let Some(view) = view {
        let credits = queries::credits_of(conn, &invoice.id).await?;
        let rules = |amount_due| TallyRules {
            amount_due,
            tolerance: invoice.tolerance,
            confirmations_required: invoice.confirmations_required,
            processed_block: view.processed_block,
            final_block: view.final_block,
        };
        let mut t = tally(&credits, rules(invoice.amount_due));
        // A re-quote's grace: the amount it replaced still pays in full when the payment
        // completing it was made (block time) by the end of the grace. Of the amounts
        // the payment completes, the larger is due, so an exact payment of either is
        // neither over- nor underpaid.
        if let Some(previous) = invoice.previous_due {
            let by_previous = tally(&credits, rules(previous.amount));
            let in_grace = by_previous
                .completed_at
                .is_some_and(|at| at <= previous.until);
            let larger = t.completed_at.is_none() || previous.amount > invoice.amount_due;
            if in_grace && larger {
                changed.amount_due = previous.amount;
                t = by_previous;
            }
        }
        changed.amount_paid = t.paid;
        changed.amount_confirmed = t.confirmed;
        changed.first_paid_at = t.completed_at;
        changed.txn_hash = t.txn_hash;
        changed.payer_address = t.payer_address;
    }
    let evaluation = evaluate(&PaymentFacts {
        status: invoice.status,
        amount_due: changed.amount_due,
        paid_total: changed.amount_paid,
        confirmed_total: changed.amount_confirmed,
        tolerance: invoice.tolerance,
        now_ms: now,
        expires_at_ms: invoice.expires_at,
        monitor_until_ms: invoice.monitor_until,
        first_full_payment_at_ms: changed.first_paid_at,
    });
    changed.outcome = evaluation.outcome;
    let status_changed = evaluation.status != invoice.status;
    let paid_changed = changed.amount_paid != invoice.amount_paid;
    let anything_changed = status_changed
        || paid_changed
        || changed.amount_confirmed != invoice.amount_confirmed
        || changed.outcome != invoice.outcome
        || changed.txn_hash != invoice.txn_hash
        || changed.payer_address != invoice.payer_address
        || changed.amount_due != invoice.amount_due
        || changed.first_paid_at != invoice.first_paid_at;
    if !anything_changed {
        return Ok(None);
    }
    let kind = if status_changed {
        check_transition(invoice.status, evaluation.status)?;
        changed.status = evaluation.status;
        changed.paid_at = match evaluation.status {
            InvoiceStatus::Paid => Some(now),
            _ => None,
        };
        Some(EventKind::for_transition(invoice.status, evaluation.status))
    } else {
        paid_changed.then_some(EventKind::PaymentDetected)
    };
    changed.updated_at = now;
    changed.version = invoice.version + 1;
    write(conn, invoice, &changed).await?;
    keep_targets_in_step(conn, invoice, &changed, now).await?;
    if let Some(kind) = kind {
        let payload = EventPayload::change(kind, Some(invoice.status), &changed);
        queries::append_event(conn, &payload, now).await?;
    }
    if status_changed {
        tracing::info!(invoice = %invoice.id, from = %invoice.status, to = %changed.status, "invoice settled");
    }
    Ok(Some(changed))
}

/// Writes `changed` over `stored` (checked against the version read).
async fn write(
    conn: &mut AnyConnection,
    stored: &Invoice,
    changed: &Invoice,
) -> Result<(), InvoiceError> {
    if queries::update(conn, stored.version, changed).await? {
        Ok(())
    } else {
        Err(InvoiceError::Concurrent(stored.id.clone()))
    }
}

/// When the targets of `invoice` may be released if nothing settles it first (module
/// docs): the deadline for a shared target nothing was paid to, else the end of the
/// monitoring window.
fn release_at(invoice: &Invoice) -> i64 {
    let shared = matches!(
        invoice.strategy,
        MatchStrategy::UniqueAmount | MatchStrategy::FixedAddress
    );
    if shared && invoice.amount_paid.is_zero() {
        invoice.expires_at
    } else {
        invoice.monitor_until
    }
}

/// Releases, re-activates or re-times the targets of an invoice that moved from `before`
/// to `after`.
async fn keep_targets_in_step(
    conn: &mut AnyConnection,
    before: &Invoice,
    after: &Invoice,
    now: i64,
) -> Result<(), StoreError> {
    let was_paid = before.status == InvoiceStatus::Paid;
    let is_paid = after.status == InvoiceStatus::Paid;
    match (was_paid, is_paid) {
        (false, true) => queries::release_targets(conn, &after.id, now).await,
        (true, false) => queries::reactivate_targets(conn, &after.id, release_at(after)).await,
        _ if release_at(before) != release_at(after) => {
            queries::set_release_at(conn, &after.id, release_at(after)).await
        }
        _ => Ok(()),
    }
}
