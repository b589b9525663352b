//! `ledger`: custodial users, balances and orders over [`crate::ledger::Ledger`],
//! scoped to the calling plugin: every call passes the plugin's name, and the ledger
//! finds nothing of another plugin (`not-found`).
//!
//! Amounts arrive as decimals and are parsed with the configured asset's decimals (an
//! unknown chain or asset is `unsupported`); every amount goes back out both as base
//! units and formatted. The only merchant rule the host adds: a plugin makes a user the
//! payee of a merchant only while authenticated as that merchant.
//!
//! `deposit-address` derives the user's address on a chain from the extended public key
//! the operator configured for the calling plugin and that chain (`deposit_xpubs` of its
//! `[[plugins]]` entry); a chain without a key answers `unsupported`, so no address is
//! handed out that nobody watches. `deposits` lists what the chain listeners credited.

use super::money::asset_of;
use super::{HostResult, guest, store_failure};
use crate::invoice::Amount;
use crate::ledger::{self as domain, Ledger, LedgerError};
use crate::plugin::bindings::HostError;
use crate::plugin::bindings::polypay::plugin::ledger::*;
use crate::plugin::state::{CallScope, PluginState};

fn ledger(scope: &CallScope) -> Result<Ledger, HostError> {
    Ok(Ledger::new(scope.storage()?.store.clone()))
}

fn error(scope: &CallScope, e: LedgerError) -> HostError {
    match e {
        LedgerError::NotFound => HostError::NotFound,
        LedgerError::Invalid(text) => HostError::Invalid(text),
        LedgerError::Conflict(text) => HostError::Conflict(text),
        LedgerError::Store(crate::store::StoreError::Conflict(_)) => {
            HostError::Conflict("duplicate: already exists".into())
        }
        LedgerError::Store(e) => store_failure(scope, &e),
    }
}

fn id(text: &str) -> Result<i64, HostError> {
    domain::parse_id(text).map_err(|_| HostError::NotFound)
}

fn json(text: Option<String>) -> Result<Option<serde_json::Value>, HostError> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| HostError::Invalid(format!("plugin-data: {e}")))
    })
    .transpose()
}

fn units(a: Amount, decimals: u8) -> (String, String) {
    (a.to_base_units_string(), a.format_decimal(decimals))
}

fn contact_in(c: Contact) -> domain::Contact {
    domain::Contact {
        national_code: c.national_code,
        mobile: c.mobile,
        email: c.email,
    }
}

fn user_wit(u: domain::User) -> User {
    User {
        id: u.id.to_string(),
        merchant_id: u.merchant_id,
        contact: Contact {
            national_code: u.contact.national_code,
            mobile: u.contact.mobile,
            email: u.contact.email,
        },
        plugin_data: u.plugin_data.to_string(),
        created_at: u.created_at,
        updated_at: u.updated_at,
    }
}

fn status_wit(s: domain::OrderStatus) -> OrderStatus {
    match s {
        domain::OrderStatus::Waiting => OrderStatus::Waiting,
        domain::OrderStatus::Processing => OrderStatus::Processing,
        domain::OrderStatus::Completed => OrderStatus::Completed,
        domain::OrderStatus::Expired => OrderStatus::Expired,
        domain::OrderStatus::Cancelled => OrderStatus::Cancelled,
    }
}

fn status_in(s: OrderStatus) -> domain::OrderStatus {
    match s {
        OrderStatus::Waiting => domain::OrderStatus::Waiting,
        OrderStatus::Processing => domain::OrderStatus::Processing,
        OrderStatus::Completed => domain::OrderStatus::Completed,
        OrderStatus::Expired => domain::OrderStatus::Expired,
        OrderStatus::Cancelled => domain::OrderStatus::Cancelled,
    }
}

pub(crate) fn order_wit(o: domain::Order) -> Order {
    Order {
        id: o.id.to_string(),
        payer_user_id: o.payer_user_id.to_string(),
        payee_user_id: o.payee_user_id.to_string(),
        merchant_id: o.merchant_id,
        client_order_id: o.client_order_id,
        status: status_wit(o.status),
        items: o
            .items
            .into_iter()
            .map(|i| {
                let d = i.decimals;
                let (amount, amount_decimal) = units(i.amount, d);
                let (paid, paid_decimal) = units(i.paid, d);
                let (locked, locked_decimal) = units(i.locked, d);
                let (unlocked, unlocked_decimal) = units(i.unlocked, d);
                let (refunded, refunded_decimal) = units(i.refunded, d);
                OrderItem {
                    id: i.id.to_string(),
                    pay_type: match i.pay_type {
                        domain::PayType::Pay => PayType::Pay,
                        domain::PayType::Prepay => PayType::Prepay,
                    },
                    chain: i.chain,
                    asset: i.asset,
                    decimals: d,
                    amount,
                    paid,
                    locked,
                    unlocked,
                    refunded,
                    amount_decimal,
                    paid_decimal,
                    locked_decimal,
                    unlocked_decimal,
                    refunded_decimal,
                }
            })
            .collect(),
        expires_at: o.expires_at,
        paid_at: o.paid_at,
        created_at: o.created_at,
        updated_at: o.updated_at,
        notify_url: o.notify_url,
        plugin_data: o.plugin_data.to_string(),
    }
}

fn deposit_wit(d: domain::Deposit, decimals: impl Fn(&str, &str) -> u8) -> Deposit {
    let dec = decimals(&d.chain, &d.asset);
    let (amount, amount_decimal) = units(d.amount, dec);
    Deposit {
        id: d.id.to_string(),
        user_id: d.user_id.to_string(),
        chain: d.chain,
        asset: d.asset,
        decimals: dec,
        amount,
        amount_decimal,
        address: d.address,
        txn_hash: d.txn_hash,
        status: match d.status {
            domain::DepositStatus::Credited => DepositStatus::Credited,
            domain::DepositStatus::Reversed => DepositStatus::Reversed,
        },
        credited_at: d.credited_at,
    }
}

/// A ledger event for `render-ledger-webhook`; `decimals_of` gives a (chain, asset)'s
/// configured decimals (0 for one no longer configured: base units then).
pub(crate) fn event_wit(
    id: i64,
    p: domain::LedgerEventPayload,
    occurred_at: i64,
    decimals_of: impl Fn(&str, &str) -> u8,
) -> LedgerEvent {
    let decimals = |item: i64| {
        p.order
            .iter()
            .flat_map(|o| o.items.iter())
            .find(|i| i.id == item)
            .map_or(0, |i| i.decimals)
    };
    let moved = p
        .moved
        .iter()
        .map(|(item, amount)| {
            let (amount, amount_decimal) = units(*amount, decimals(*item));
            MovedAmount {
                item_id: item.to_string(),
                amount,
                amount_decimal,
            }
        })
        .collect();
    let url = p.order.as_ref().and_then(|o| o.notify_url.clone());
    LedgerEvent {
        id: id.to_string(),
        action: match p.action {
            domain::LedgerAction::OrderCreated => LedgerAction::OrderCreated,
            domain::LedgerAction::OrderPaid => LedgerAction::OrderPaid,
            domain::LedgerAction::OrderSettled => LedgerAction::OrderSettled,
            domain::LedgerAction::OrderUnlocked => LedgerAction::OrderUnlocked,
            domain::LedgerAction::OrderRefunded => LedgerAction::OrderRefunded,
            domain::LedgerAction::OrderCancelled => LedgerAction::OrderCancelled,
            domain::LedgerAction::OrderExpired => LedgerAction::OrderExpired,
            domain::LedgerAction::DepositCredited => LedgerAction::DepositCredited,
            domain::LedgerAction::DepositReversed => LedgerAction::DepositReversed,
        },
        previous_status: p.previous_status.map(status_wit),
        moved,
        order: p.order.map(order_wit),
        deposit: p.deposit.map(|d| deposit_wit(d, decimals_of)),
        occurred_at,
        url,
    }
}

/// The configured decimals of (chain, asset); 0 for one no longer configured.
fn decimals_in(scope: &CallScope, chain: &str, asset: &str) -> u8 {
    asset_of(scope, chain, asset).map_or(0, |(_, a)| a.decimals)
}

fn item_amounts(items: Vec<ItemAmount>) -> Vec<(String, String)> {
    items.into_iter().map(|i| (i.item_id, i.amount)).collect()
}

/// Runs a ledger call: the scope's ledger and plugin name in, errors mapped out.
async fn on_ledger<T, F, Fut>(scope: &CallScope, f: F) -> Result<T, HostError>
where
    F: FnOnce(Ledger, String) -> Fut,
    Fut: std::future::Future<Output = Result<T, LedgerError>>,
{
    let ledger = ledger(scope)?;
    f(ledger, scope.plugin_name().to_owned())
        .await
        .map_err(|e| error(scope, e))
}

impl PluginState {
    async fn order_change<F, Fut>(&mut self, f: F) -> HostResult<Order>
    where
        F: FnOnce(Ledger, String) -> Fut,
        Fut: std::future::Future<Output = Result<domain::Order, LedgerError>>,
    {
        let result = on_ledger(&self.scope, f).await.map(order_wit);
        self.after_write(result)
    }
}

impl Host for PluginState {
    async fn create_user(&mut self, user: NewUser) -> HostResult<User> {
        if let Some(m) = &user.merchant_id
            && let Err(e) = self.scope.require_self(m)
        {
            return guest(Err(e));
        }
        let data = match json(user.plugin_data) {
            Ok(d) => d,
            Err(e) => return guest(Err(e)),
        };
        let new = domain::NewUser {
            merchant_id: user.merchant_id,
            contact: contact_in(user.contact),
            plugin_data: data,
        };
        let result = on_ledger(
            &self.scope,
            |l, p| async move { l.create_user(&p, new).await },
        )
        .await
        .map(user_wit);
        self.after_write(result)
    }

    async fn get_user(&mut self, user_id: String) -> HostResult<User> {
        let uid = match id(&user_id) {
            Ok(i) => i,
            Err(e) => return guest(Err(e)),
        };
        guest(
            on_ledger(&self.scope, |l, p| async move { l.user(&p, uid).await })
                .await
                .map(user_wit),
        )
    }

    async fn update_user(&mut self, user_id: String, update: UserUpdate) -> HostResult<User> {
        let prepared = id(&user_id).and_then(|i| Ok((i, json(update.plugin_data)?)));
        let (uid, data) = match prepared {
            Ok(p) => p,
            Err(e) => return guest(Err(e)),
        };
        let contact = update.contact.map(contact_in);
        let result = on_ledger(&self.scope, |l, p| async move {
            l.update_user(&p, uid, contact, data).await
        })
        .await
        .map(user_wit);
        self.after_write(result)
    }

    async fn merchant_user(&mut self, merchant_id: String) -> HostResult<User> {
        guest(
            on_ledger(&self.scope, |l, p| async move {
                l.merchant_user(&p, &merchant_id).await
            })
            .await
            .map(user_wit),
        )
    }

    async fn balances(&mut self, user_id: String) -> HostResult<Vec<Balance>> {
        let uid = match id(&user_id) {
            Ok(i) => i,
            Err(e) => return guest(Err(e)),
        };
        let balances =
            match on_ledger(&self.scope, |l, p| async move { l.balances(&p, uid).await }).await {
                Ok(b) => b,
                Err(e) => return guest(Err(e)),
            };
        let scope = &self.scope;
        guest(Ok(balances
            .into_iter()
            .map(|b| {
                // An asset no longer configured still shows, in base units.
                let d = decimals_in(scope, &b.chain, &b.asset);
                let (available, available_decimal) = units(b.available, d);
                let (locked, locked_decimal) = units(b.locked, d);
                let (debt, debt_decimal) = units(b.debt, d);
                Balance {
                    chain: b.chain,
                    asset: b.asset,
                    decimals: d,
                    available,
                    locked,
                    debt,
                    available_decimal,
                    locked_decimal,
                    debt_decimal,
                }
            })
            .collect()))
    }

    async fn deposit_address(&mut self, user_id: String, chain: String) -> HostResult<String> {
        let uid = match id(&user_id) {
            Ok(i) => i,
            Err(e) => return guest(Err(e)),
        };
        let scope = &self.scope;
        let Some(xpub) = scope.plugin.deposit_xpubs.get(&chain).cloned() else {
            return guest(Err(HostError::Unsupported(format!(
                "no ledger deposits on chain `{chain}` for this plugin"
            ))));
        };
        let Some(config) = scope.services.inner.chains.iter().find(|c| c.name == chain) else {
            return guest(Err(HostError::Unsupported(format!(
                "unknown chain `{chain}`"
            ))));
        };
        let config = config.clone();
        let result = on_ledger(scope, |l, p| async move {
            l.deposit_address(&p, uid, &config, &xpub).await
        })
        .await;
        self.after_write(result)
    }

    async fn deposits(&mut self, user_id: String, limit: u32) -> HostResult<Vec<Deposit>> {
        let uid = match id(&user_id) {
            Ok(i) => i,
            Err(e) => return guest(Err(e)),
        };
        let scope = &self.scope;
        guest(
            on_ledger(
                scope,
                |l, p| async move { l.deposits(&p, uid, limit).await },
            )
            .await
            .map(|list| {
                list.into_iter()
                    .map(|d| deposit_wit(d, |c, a| decimals_in(scope, c, a)))
                    .collect()
            }),
        )
    }

    async fn create_order(&mut self, order: NewOrder) -> HostResult<Order> {
        let scope = &self.scope;
        let prepared = (|| {
            let mut items = Vec::with_capacity(order.items.len());
            for item in order.items {
                let (_, asset) = asset_of(scope, &item.chain, &item.asset)?;
                items.push(domain::NewOrderItem {
                    pay_type: match item.pay_type {
                        PayType::Pay => domain::PayType::Pay,
                        PayType::Prepay => domain::PayType::Prepay,
                    },
                    decimals: asset.decimals,
                    chain: item.chain,
                    asset: item.asset,
                    amount: item.amount,
                });
            }
            if let Some(url) = &order.notify_url
                && !(url.starts_with("https://") || url.starts_with("http://"))
            {
                return Err(HostError::Invalid(
                    "notify-url must be an http(s) URL".into(),
                ));
            }
            Ok(domain::NewOrder {
                payer_user_id: id(&order.payer_user_id)?,
                payee_user_id: id(&order.payee_user_id)?,
                client_order_id: order.client_order_id,
                items,
                expires_at: order.expires_at,
                notify_url: order.notify_url,
                plugin_data: json(order.plugin_data)?,
            })
        })();
        let new = match prepared {
            Ok(n) => n,
            Err(e) => return guest(Err(e)),
        };
        self.order_change(|l, p| async move { l.create_order(&p, new).await })
            .await
    }

    async fn get_order(&mut self, order_id: String) -> HostResult<Order> {
        let oid = match id(&order_id) {
            Ok(i) => i,
            Err(e) => return guest(Err(e)),
        };
        guest(
            on_ledger(&self.scope, |l, p| async move { l.order(&p, oid).await })
                .await
                .map(order_wit),
        )
    }

    async fn find_order(&mut self, payee: String, client_order_id: String) -> HostResult<Order> {
        let payee = match id(&payee) {
            Ok(i) => i,
            Err(e) => return guest(Err(e)),
        };
        guest(
            on_ledger(&self.scope, |l, p| async move {
                l.find_order(&p, payee, &client_order_id).await
            })
            .await
            .map(order_wit),
        )
    }

    async fn list_orders(&mut self, filter: OrderFilter, limit: u32) -> HostResult<Vec<Order>> {
        // An id that is no id matches nothing: an empty page, like an unknown user.
        let opt = |v: Option<String>| match v {
            None => Ok(None),
            Some(t) => id(&t).map(Some),
        };
        let parsed = (|| {
            Ok::<_, HostError>(domain::OrderFilter {
                payer_user_id: opt(filter.payer_user_id)?,
                payee_user_id: opt(filter.payee_user_id)?,
                statuses: filter.statuses.into_iter().map(status_in).collect(),
                min_id: opt(filter.min_id)?,
                max_id: opt(filter.max_id)?,
                created_from: filter.created_from,
                created_to: filter.created_to,
            })
        })();
        let Ok(f) = parsed else {
            return guest(Ok(Vec::new()));
        };
        guest(
            on_ledger(&self.scope, |l, p| async move {
                l.list_orders(&p, &f, limit).await
            })
            .await
            .map(|orders| orders.into_iter().map(order_wit).collect()),
        )
    }

    async fn pay(&mut self, order_id: String) -> HostResult<Order> {
        let oid = match id(&order_id) {
            Ok(i) => i,
            Err(e) => return guest(Err(e)),
        };
        self.order_change(|l, p| async move { l.pay(&p, oid).await })
            .await
    }

    async fn settle(&mut self, order_id: String, items: Vec<ItemAmount>) -> HostResult<Order> {
        let oid = match id(&order_id) {
            Ok(i) => i,
            Err(e) => return guest(Err(e)),
        };
        let items = item_amounts(items);
        self.order_change(|l, p| async move { l.settle(&p, oid, &items).await })
            .await
    }

    async fn unlock(&mut self, order_id: String, items: Vec<ItemAmount>) -> HostResult<Order> {
        let oid = match id(&order_id) {
            Ok(i) => i,
            Err(e) => return guest(Err(e)),
        };
        let items = item_amounts(items);
        self.order_change(|l, p| async move { l.unlock(&p, oid, &items).await })
            .await
    }

    async fn refund(&mut self, order_id: String, items: Vec<ItemAmount>) -> HostResult<Order> {
        let oid = match id(&order_id) {
            Ok(i) => i,
            Err(e) => return guest(Err(e)),
        };
        let items = item_amounts(items);
        self.order_change(|l, p| async move { l.refund(&p, oid, &items).await })
            .await
    }

    async fn cancel(&mut self, order_id: String) -> HostResult<Order> {
        let oid = match id(&order_id) {
            Ok(i) => i,
            Err(e) => return guest(Err(e)),
        };
        self.order_change(|l, p| async move { l.cancel(&p, oid).await })
            .await
    }
}
