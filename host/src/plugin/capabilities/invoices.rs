//! `invoices`: create, read, list and change invoices, scoped to the plugin
//! and (when authenticated) to the merchant.
//!
//! Scoping rules, all enforced here:
//! - every read and write is limited to invoices whose `plugin` is this
//!   plugin; another plugin's invoice is `not-found`;
//! - authenticated: only the merchant's own invoices (others: `not-found`);
//! - unauthenticated: `get`, `find-by-order-id`, `mark-submitted` and `requote` over all
//!   of the plugin's invoices (payment pages, payer status polling);
//!   `create` only for the plugin's `default_merchant`; everything else is
//!   `unauthorized`.
//!
//! Every change goes through the invoice service (`crate::invoice::service`),
//! one transaction with its outbox event. `create-idempotent` keys the
//! creation by (plugin, merchant, key) and a fingerprint of the request as the
//! plugin sent it.

use super::money::{asset_of, parse_base_units, parse_decimal};
use super::{HostResult, guest, store_error, store_failure};
use crate::invoice::service::request_fingerprint;
use crate::invoice::{self, Amount, Idempotency, InvoiceError, InvoiceService};
use crate::matcher::{AllocationError, TargetSpec};
use crate::plugin::bindings::HostError;
use crate::plugin::bindings::polypay::plugin::invoices::{
    AssetVolume, DeliveryState, FiatPrice, FiatQuote, Host, Invoice, InvoiceFilter, InvoicePage,
    InvoiceStats, InvoiceStatus, MatchKind, MatchStrategy, NewInvoice, PageSelector, Price,
    WebhookSummary,
};
use crate::plugin::state::{CallScope, PluginState};
use crate::store::outbox::{self, SummaryState};
use crate::store::plugin_queries::{InvoiceQuery, PageStart};

/// Longest invoice lifetime a plugin may ask for: 30 days.
const MAX_EXPIRY_SECS: u32 = 30 * 24 * 3600;
const MAX_PLUGIN_DATA: usize = 64 * 1024;
const MAX_IDEMPOTENCY_KEY: usize = 128;

pub(crate) fn status_to_wit(s: invoice::InvoiceStatus) -> InvoiceStatus {
    match s {
        invoice::InvoiceStatus::Pending => InvoiceStatus::Pending,
        invoice::InvoiceStatus::Confirming => InvoiceStatus::Confirming,
        invoice::InvoiceStatus::Paid => InvoiceStatus::Paid,
        invoice::InvoiceStatus::Expired => InvoiceStatus::Expired,
        invoice::InvoiceStatus::Cancelled => InvoiceStatus::Cancelled,
    }
}

fn status_from_wit(s: InvoiceStatus) -> invoice::InvoiceStatus {
    match s {
        InvoiceStatus::Pending => invoice::InvoiceStatus::Pending,
        InvoiceStatus::Confirming => invoice::InvoiceStatus::Confirming,
        InvoiceStatus::Paid => invoice::InvoiceStatus::Paid,
        InvoiceStatus::Expired => invoice::InvoiceStatus::Expired,
        InvoiceStatus::Cancelled => invoice::InvoiceStatus::Cancelled,
    }
}

fn kind_to_wit(s: invoice::MatchStrategy) -> MatchKind {
    match s {
        invoice::MatchStrategy::ContractReference => MatchKind::ContractReference,
        invoice::MatchStrategy::UniqueAmount => MatchKind::UniqueAmount,
        invoice::MatchStrategy::DerivedAddress => MatchKind::DerivedAddress,
        invoice::MatchStrategy::FixedAddress => MatchKind::FixedAddress,
    }
}

fn delivery_state(state: SummaryState) -> DeliveryState {
    match state {
        SummaryState::None => DeliveryState::None,
        SummaryState::Pending => DeliveryState::Pending,
        SummaryState::Delivered => DeliveryState::Delivered,
        SummaryState::Failed => DeliveryState::Failed,
    }
}

/// The guest's view of a stored invoice (plus its webhook delivery summary).
pub(crate) async fn invoice_to_wit(
    scope: &CallScope,
    i: &invoice::Invoice,
) -> Result<Invoice, HostError> {
    let storage = scope.storage()?;
    let mut conn = storage
        .store
        .pool()
        .acquire()
        .await
        .map_err(|e| store_failure(scope, &e))?;
    let summary = outbox::invoice_summary(&mut conn, &i.id)
        .await
        .map_err(|e| store_error(scope, e))?;
    let webhook = WebhookSummary {
        state: delivery_state(summary.state),
        attempts: summary.attempts,
        last_attempt_at: summary.last_attempt_at,
    };
    let mut wit = invoice_wit(i, &scope.services.inner.public_base_url, webhook);
    // Live confirmations: the record knows only "all of them" once paid; a read tells
    // how deep the paying transfer is now (at least the required depth once paid,
    // fewer than it while confirming, even when the listener lags the head).
    if matches!(
        i.status,
        invoice::InvoiceStatus::Confirming | invoice::InvoiceStatus::Paid
    ) {
        let depth = storage
            .store
            .invoice_depth(&i.id)
            .await
            .map_err(|e| store_error(scope, e))?;
        if let Some(depth) = depth {
            let depth = u32::try_from(depth).unwrap_or(u32::MAX);
            wit.confirmations = if i.status == invoice::InvoiceStatus::Paid {
                depth.max(i.confirmations_required)
            } else {
                depth.min(i.confirmations_required.saturating_sub(1))
            };
        }
    }
    Ok(wit)
}

/// The one conversion of an invoice to the WIT record, for live reads and for the
/// snapshots webhooks carry.
pub(crate) fn invoice_wit(
    i: &invoice::Invoice,
    base_url: &str,
    webhook: WebhookSummary,
) -> Invoice {
    Invoice {
        id: i.id.clone(),
        merchant_id: i.merchant_id.clone(),
        merchant_order_id: i.merchant_order_id.clone(),
        status: status_to_wit(i.status),
        underpaid: i.outcome.underpaid,
        overpaid: i.outcome.overpaid,
        paid_late: i.outcome.paid_late,
        submitted_at: i.submitted_at,
        chain: i.chain.clone(),
        asset: i.asset.clone(),
        decimals: i.decimals,
        amount_due: i.amount_due.to_string(),
        amount_paid: i.amount_paid.to_string(),
        amount_due_decimal: i.amount_due.format_decimal(i.decimals),
        amount_paid_decimal: i.amount_paid.format_decimal(i.decimals),
        payer_address: i.payer_address.clone(),
        fiat_quote: i.fiat.as_ref().map(|f| FiatQuote {
            rate: f.rate.clone(),
            source: f.source.clone(),
            quoted_at: f.quoted_at,
            valid_until: f.valid_until,
        }),
        fiat: i.fiat.as_ref().map(|f| FiatPrice {
            amount: f.amount.clone(),
            currency: f.currency.clone(),
        }),
        matching: kind_to_wit(i.strategy),
        pay_to: i.pay_address.clone(),
        payment_reference: i.pay_reference.clone(),
        txn_hash: i.txn_hash.clone(),
        // As far as the invoice record tells: all required once paid (live reads,
        // `invoice_to_wit`, replace it with the paying transfer's depth).
        confirmations: if i.status == invoice::InvoiceStatus::Paid {
            i.confirmations_required
        } else {
            0
        },
        required_confirmations: i.confirmations_required,
        created_at: i.created_at,
        expires_at: i.expires_at,
        paid_at: i.paid_at,
        updated_at: i.updated_at,
        notify_url: i.notify_url.clone(),
        return_url: i.return_url.clone(),
        payment_page_url: format!("{base_url}/pay/{}", i.id),
        plugin_data: i.plugin_data.to_string(),
        webhook,
    }
}

fn allocation_error(scope: &CallScope, e: AllocationError) -> HostError {
    match e {
        AllocationError::UnknownAsset { chain, asset } => {
            HostError::Unsupported(format!("chain `{chain}` has no asset `{asset}`"))
        }
        AllocationError::NoPaymentContract { chain, asset } => HostError::Unsupported(format!(
            "chain `{chain}` has no payment contract for `{asset}`"
        )),
        AllocationError::Address(why) => HostError::Invalid(format!("invalid address: {why}")),
        AllocationError::Derivation(d) => {
            HostError::Invalid(format!("invalid extended public key: {d}"))
        }
        other => store_failure(scope, &other),
    }
}

fn invoice_error(scope: &CallScope, e: InvoiceError) -> HostError {
    match e {
        InvoiceError::NotFound(_) => HostError::NotFound,
        InvoiceError::Illegal(t) => HostError::Conflict(t.to_string()),
        InvoiceError::DuplicateOrderId(id) => {
            HostError::Conflict(format!("merchant order id `{id}` already exists"))
        }
        e @ (InvoiceError::IdempotencyMismatch(_)
        | InvoiceError::AddressBusy { .. }
        | InvoiceError::DuplicateReference(_)) => HostError::Conflict(e.to_string()),
        InvoiceError::NoFreeAmount { .. } => {
            HostError::Unavailable("no unique amount is free; retry later".into())
        }
        e @ InvoiceError::NotRequotable { .. } => HostError::Conflict(e.to_string()),
        InvoiceError::Concurrent(_) => {
            HostError::Unavailable("the invoice changed concurrently; retry".into())
        }
        InvoiceError::Allocation(a) => allocation_error(scope, a),
        other => store_failure(scope, &other),
    }
}

fn query(
    scope: &CallScope,
    merchant: Option<&str>,
    f: &InvoiceFilter,
) -> Result<InvoiceQuery, HostError> {
    if f.merchant_order_id_prefix
        .as_ref()
        .is_some_and(|p| p.len() > 128)
    {
        return Err(HostError::Invalid(
            "order id prefix is at most 128 bytes".into(),
        ));
    }
    Ok(InvoiceQuery {
        plugin: scope.plugin_name().to_owned(),
        merchant_id: merchant.map(str::to_owned),
        statuses: f.statuses.iter().copied().map(status_from_wit).collect(),
        chain: f.chain.clone(),
        asset: f.asset.clone(),
        created_from: f.created_from,
        created_to: f.created_to,
        order_id_prefix: f.merchant_order_id_prefix.clone(),
    })
}

/// A stored invoice this call may see: the plugin's own, and the
/// merchant's own when authenticated. Anything else is `not-found`.
async fn visible_invoice(scope: &CallScope, id: &str) -> Result<invoice::Invoice, HostError> {
    let storage = scope.storage()?;
    let invoice = storage
        .store
        .invoice(id)
        .await
        .map_err(|e| store_error(scope, e))?
        .ok_or(HostError::NotFound)?;
    let merchant_ok = scope
        .merchant_id
        .as_ref()
        .is_none_or(|m| *m == invoice.merchant_id);
    if invoice.plugin != scope.plugin_name() || !merchant_ok {
        return Err(HostError::NotFound);
    }
    Ok(invoice)
}

/// Validates and stores a new invoice (committed when this returns `Ok`).
async fn create_invoice(
    scope: &CallScope,
    new: NewInvoice,
    idempotency_key: Option<String>,
) -> Result<invoice::Invoice, HostError> {
    let storage = scope.storage()?;
    let merchant_id = match (&scope.merchant_id, &scope.plugin.default_merchant) {
        (Some(m), _) => m.clone(),
        (None, Some(default)) => default.clone(),
        (None, None) => return Err(HostError::Unauthorized),
    };
    let (chain, asset) = asset_of(scope, &new.chain, &new.asset)?;
    let (amount_due, fiat) = match &new.price {
        Price::BaseUnits(text) => (parse_base_units(text)?, None),
        Price::Decimal(text) => (parse_decimal(text, asset.decimals)?, None),
        Price::Fiat(fiat) => {
            let (quote, _) =
                super::rates::quote(scope, &fiat.currency, &fiat.amount, &new.chain, &new.asset)
                    .await?;
            let kept = invoice::FiatQuote {
                amount: fiat.amount.clone(),
                currency: fiat.currency.to_ascii_uppercase(),
                rate: quote.rate.rate.to_string(),
                source: quote.rate.source.clone(),
                quoted_at: quote.quoted_at,
                valid_until: quote.valid_until,
            };
            (on_step_grid(quote.amount, asset)?, Some(kept))
        }
    };
    if amount_due == Amount::ZERO {
        return Err(HostError::Invalid(
            "amount must be greater than zero".into(),
        ));
    }
    if new.expires_in_secs == 0 || new.expires_in_secs > MAX_EXPIRY_SECS {
        return Err(HostError::Invalid(format!(
            "expiry must be 1 to {MAX_EXPIRY_SECS} seconds"
        )));
    }
    if new
        .merchant_order_id
        .as_ref()
        .is_some_and(|o| o.is_empty() || o.len() > 128)
    {
        return Err(HostError::Invalid(
            "merchant order id must be 1 to 128 bytes".into(),
        ));
    }
    for url in [&new.notify_url, &new.return_url].into_iter().flatten() {
        if url.len() > 2048 || !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(HostError::Invalid(format!("`{url}` is not an http(s) URL")));
        }
    }
    let plugin_data = match &new.plugin_data {
        Some(text) if text.len() > MAX_PLUGIN_DATA => {
            return Err(HostError::Invalid(format!(
                "plugin-data is over {MAX_PLUGIN_DATA} bytes"
            )));
        }
        Some(text) => serde_json::from_str(text)
            .map_err(|e| HostError::Invalid(format!("plugin-data is not JSON: {e}")))?,
        None => serde_json::json!({}),
    };
    if idempotency_key
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY)
    {
        return Err(HostError::Invalid(format!(
            "idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY} bytes"
        )));
    }
    // What the plugin asked, before the host raises a unique amount: a retried request
    // must match it exactly.
    let idempotency = idempotency_key.map(|key| Idempotency {
        fingerprint: request_fingerprint(&[
            &format!("{:?}", new.price),
            &new.chain,
            &new.asset,
            &format!("{:?}", new.matching),
            &new.expires_in_secs.to_string(),
            new.merchant_order_id.as_deref().unwrap_or(""),
            new.notify_url.as_deref().unwrap_or(""),
            new.return_url.as_deref().unwrap_or(""),
            new.plugin_data.as_deref().unwrap_or(""),
        ]),
        key,
    });
    let spec = match new.matching {
        MatchStrategy::ContractReference(recipient) => TargetSpec::ContractReference {
            recipient,
            reference: None,
        },
        MatchStrategy::UniqueAmount(address) => TargetSpec::UniqueAmount { address },
        MatchStrategy::DerivedAddress(xpub) => TargetSpec::DerivedAddress { xpub },
        MatchStrategy::FixedAddress(address) => TargetSpec::FixedAddress { address },
    };
    let now = crate::store::now_ms();
    let expires_at = now + i64::from(new.expires_in_secs) * 1000;
    let mut record = invoice::NewInvoice::new(
        &merchant_id,
        scope.plugin_name(),
        &chain.name,
        (&asset.symbol, asset.decimals),
        amount_due,
        expires_at,
    );
    record.merchant_order_id = new.merchant_order_id;
    record.notify_url = new.notify_url;
    record.return_url = new.return_url;
    record.plugin_data = plugin_data;
    record.idempotency = idempotency;
    record.fiat = fiat;
    let service = InvoiceService::new(storage.store.clone());
    service
        .open(chain, &record, &spec)
        .await
        .map_err(|e| invoice_error(scope, e))
}

/// A quoted amount rounded up to a multiple of the asset's `unique_amount_step` (one base
/// unit unless configured): a fiat price comes to an amount on the grid the operator
/// chose for the asset (e.g. whole cents of USDT), which unique amounts (price + k·step)
/// then keep, so a dialect can show the amount in those units exactly. Rounded up, like
/// every conversion of a fiat price: the merchant never receives less than the price.
fn on_step_grid(amount: Amount, asset: &crate::chain::AssetConfig) -> Result<Amount, HostError> {
    let step = asset
        .unique_step()
        .map_err(|e| HostError::Unsupported(format!("asset `{}`: {e}", asset.symbol)))?
        .as_u256();
    let units = amount.as_u256().div_ceil(step);
    units
        .checked_mul(step)
        .map(Amount::from)
        .ok_or_else(|| HostError::Invalid("the converted amount is too large".into()))
}

/// Re-quotes the invoice `id` (if this call may see it) at the current rate of its fiat
/// price (committed when this returns `Ok`).
async fn requote_visible(scope: &CallScope, id: &str) -> Result<invoice::Invoice, HostError> {
    let invoice = visible_invoice(scope, id).await?;
    let Some(fiat) = invoice.fiat.clone() else {
        return Err(HostError::Conflict(
            "the invoice is not priced in fiat".into(),
        ));
    };
    let (chain, asset) = asset_of(scope, &invoice.chain, &invoice.asset)?;
    let (quote, _) = super::rates::quote(
        scope,
        &fiat.currency,
        &fiat.amount,
        &invoice.chain,
        &invoice.asset,
    )
    .await?;
    let fresh = invoice::FiatQuote {
        rate: quote.rate.rate.to_string(),
        source: quote.rate.source.clone(),
        quoted_at: quote.quoted_at,
        valid_until: quote.valid_until,
        ..fiat
    };
    let grace_ms = scope.services.inner.rates.requote_grace_ms();
    InvoiceService::new(scope.storage()?.store.clone())
        .requote(
            chain,
            &invoice.id,
            fresh,
            on_step_grid(quote.amount, asset)?,
            grace_ms,
        )
        .await
        .map_err(|e| invoice_error(scope, e))
}

/// A change a plugin may make to one of its invoices.
enum Change {
    Cancel,
    MarkSubmitted,
}

/// Applies `change` to the invoice `id`, if this call may see it (committed when this
/// returns `Ok`).
async fn change_visible(
    scope: &CallScope,
    id: &str,
    change: Change,
) -> Result<invoice::Invoice, HostError> {
    let invoice = visible_invoice(scope, id).await?;
    let service = InvoiceService::new(scope.storage()?.store.clone());
    let changed = match change {
        Change::Cancel => service.cancel(&invoice.id).await,
        Change::MarkSubmitted => service.mark_submitted(&invoice.id).await,
    };
    changed.map_err(|e| invoice_error(scope, e))
}

impl PluginState {
    /// The guest's view of an invoice this call just wrote (the write is recorded first:
    /// whatever happens next, the call has changed state).
    async fn written(
        &mut self,
        written: Result<invoice::Invoice, HostError>,
    ) -> HostResult<Invoice> {
        match written {
            Ok(invoice) => {
                self.wrote();
                guest(invoice_to_wit(&self.scope, &invoice).await)
            }
            Err(e) => guest(Err(e)),
        }
    }
}

impl Host for PluginState {
    async fn create(&mut self, invoice: NewInvoice) -> HostResult<Invoice> {
        let created = create_invoice(&self.scope, invoice, None).await;
        self.written(created).await
    }

    async fn create_idempotent(
        &mut self,
        invoice: NewInvoice,
        idempotency_key: String,
    ) -> HostResult<Invoice> {
        let created = create_invoice(&self.scope, invoice, Some(idempotency_key)).await;
        self.written(created).await
    }

    async fn get(&mut self, id: String) -> HostResult<Invoice> {
        guest(match visible_invoice(&self.scope, &id).await {
            Ok(i) => invoice_to_wit(&self.scope, &i).await,
            Err(e) => Err(e),
        })
    }

    async fn find_by_order_id(&mut self, merchant_order_id: String) -> HostResult<Invoice> {
        let scope = &self.scope;
        let storage = match scope.storage() {
            Ok(s) => s,
            Err(e) => return guest(Err(e)),
        };
        let found = storage
            .store
            .plugin_find_by_order_id(
                scope.plugin_name(),
                scope.merchant_id.as_deref(),
                &merchant_order_id,
            )
            .await;
        guest(match found {
            Ok(Some(i)) => invoice_to_wit(scope, &i).await,
            Ok(None) => Err(HostError::NotFound),
            Err(e) => Err(store_error(scope, e)),
        })
    }

    async fn list(
        &mut self,
        filter: InvoiceFilter,
        page: PageSelector,
        limit: u32,
    ) -> HostResult<InvoicePage> {
        let scope = &self.scope;
        let prepared = scope.storage().and_then(|s| {
            let me = scope.merchant()?;
            if !(1..=1000).contains(&limit) {
                return Err(HostError::Invalid("limit must be 1 to 1000".into()));
            }
            Ok((s, query(scope, Some(me), &filter)?))
        });
        let (storage, q) = match prepared {
            Ok(p) => p,
            Err(e) => return guest(Err(e)),
        };
        let start = match page {
            PageSelector::First => PageStart::First,
            PageSelector::Number(0) => {
                return guest(Err(HostError::Invalid("page numbers start at 1".into())));
            }
            PageSelector::Number(n) => PageStart::Number(n),
            PageSelector::After(id) => PageStart::After(id),
            PageSelector::Before(id) => PageStart::Before(id),
        };
        let rows = match storage.store.plugin_list_invoices(&q, &start, limit).await {
            Ok(Some(rows)) => rows,
            Ok(None) => return guest(Err(HostError::Invalid("unknown page cursor".into()))),
            Err(e) => return guest(Err(store_error(scope, e))),
        };
        let mut items = Vec::with_capacity(rows.items.len());
        for i in &rows.items {
            match invoice_to_wit(scope, i).await {
                Ok(v) => items.push(v),
                Err(e) => return guest(Err(e)),
            }
        }
        let next_cursor = if rows.more {
            items.last().map(|i| i.id.clone())
        } else {
            None
        };
        guest(Ok(InvoicePage {
            items,
            total: rows.total,
            pages: u32::try_from(rows.total.div_ceil(u64::from(limit))).unwrap_or(u32::MAX),
            next_cursor,
        }))
    }

    async fn stats(&mut self, filter: InvoiceFilter) -> HostResult<InvoiceStats> {
        let scope = &self.scope;
        let prepared = scope
            .storage()
            .and_then(|s| Ok((s, query(scope, Some(scope.merchant()?), &filter)?)));
        let (storage, q) = match prepared {
            Ok(p) => p,
            Err(e) => return guest(Err(e)),
        };
        let counts = match storage.store.plugin_invoice_counts(&q).await {
            Ok(c) => c,
            Err(e) => return guest(Err(store_error(scope, e))),
        };
        let count = |s: invoice::InvoiceStatus| {
            counts
                .by_status
                .iter()
                .find(|(k, _)| *k == s)
                .map_or(0, |(_, n)| *n)
        };
        guest(Ok(InvoiceStats {
            total: counts.by_status.iter().map(|(_, n)| n).sum(),
            pending: count(invoice::InvoiceStatus::Pending),
            confirming: count(invoice::InvoiceStatus::Confirming),
            paid: count(invoice::InvoiceStatus::Paid),
            expired: count(invoice::InvoiceStatus::Expired),
            cancelled: count(invoice::InvoiceStatus::Cancelled),
            volumes: counts
                .volumes
                .into_iter()
                .map(|(chain, asset, decimals, paid_count, amount)| AssetVolume {
                    chain,
                    asset,
                    decimals,
                    paid_count,
                    amount_paid: amount.to_string(),
                    amount_paid_decimal: amount.format_decimal(decimals),
                })
                .collect(),
        }))
    }

    async fn cancel(&mut self, id: String) -> HostResult<Invoice> {
        if let Err(e) = self.scope.merchant() {
            return guest(Err(e));
        }
        let changed = change_visible(&self.scope, &id, Change::Cancel).await;
        self.written(changed).await
    }

    async fn mark_submitted(&mut self, id: String) -> HostResult<Invoice> {
        let changed = change_visible(&self.scope, &id, Change::MarkSubmitted).await;
        self.written(changed).await
    }

    async fn requote(&mut self, id: String) -> HostResult<Invoice> {
        let changed = requote_visible(&self.scope, &id).await;
        self.written(changed).await
    }

    async fn set_plugin_data(&mut self, id: String, plugin_data: String) -> HostResult<Invoice> {
        if let Err(e) = self.scope.merchant() {
            return guest(Err(e));
        }
        let value: serde_json::Value = match serde_json::from_str(&plugin_data) {
            Ok(v) if plugin_data.len() <= MAX_PLUGIN_DATA => v,
            Ok(_) => {
                return guest(Err(HostError::Invalid(format!(
                    "plugin-data is over {MAX_PLUGIN_DATA} bytes"
                ))));
            }
            Err(e) => {
                return guest(Err(HostError::Invalid(format!(
                    "plugin-data is not JSON: {e}"
                ))));
            }
        };
        let mut invoice = match visible_invoice(&self.scope, &id).await {
            Ok(i) => i,
            Err(e) => return guest(Err(e)),
        };
        let scope = &self.scope;
        let storage = scope
            .storage()
            .map_err(|e| wasmtime::format_err!("storage vanished: {e:?}"))?;
        let set = storage
            .store
            .plugin_set_invoice_data(&invoice.id, &value)
            .await
            .map(|()| {
                invoice.plugin_data = value;
                invoice
            })
            .map_err(|e| store_error(scope, e));
        self.written(set).await
    }
}
