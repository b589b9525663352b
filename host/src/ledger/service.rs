//! [`Ledger`]: the ledger's reads and writes over the store (see the module docs of
//! `crate::ledger` for the rules they keep).

use super::*;
use crate::store::{Backend, Store, Tx, now_ms};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::BTreeMap;

/// Account kinds; `available`, `locked` and `outflow` are credit-normal, `debt` and
/// `external` debit-normal. `external` (what came in: deposits, operator credits) and
/// `outflow` (what went back out: reversed deposits, operator debits) only grow, so
/// neither needs a sign.
const AVAILABLE: &str = "available";
const LOCKED: &str = "locked";
const DEBT: &str = "debt";
const EXTERNAL: &str = "external";
const OUTFLOW: &str = "outflow";
/// The owner of a plugin's external accounts.
const NO_USER: i64 = 0;

fn credit_normal(kind: &str) -> bool {
    kind == AVAILABLE || kind == LOCKED || kind == OUTFLOW
}

/// The ledger of every plugin, over one store.
#[derive(Clone, Debug)]
pub struct Ledger {
    store: Store,
}

/// An account named by what it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct AccountKey {
    owner: i64,
    chain: String,
    asset: String,
    kind: &'static str,
}

impl AccountKey {
    fn user(owner: i64, item: &OrderItem, kind: &'static str) -> AccountKey {
        AccountKey {
            owner,
            chain: item.chain.clone(),
            asset: item.asset.clone(),
            kind,
        }
    }
}

/// A balanced set of postings being assembled.
#[derive(Default)]
struct Entry {
    /// (account, debit?, amount, item id)
    lines: Vec<(AccountKey, bool, Amount, Option<i64>)>,
}

impl Entry {
    /// Moves `amount` from `from` (debited) to `to` (credited).
    fn transfer(&mut self, from: AccountKey, to: AccountKey, amount: Amount, item: Option<i64>) {
        if amount.is_zero() {
            return;
        }
        self.lines.push((from, true, amount, item));
        self.lines.push((to, false, amount, item));
    }
}

fn row_amount(row: &AnyRow, column: &str) -> Result<Amount, LedgerError> {
    let text: String = row.try_get(column)?;
    Amount::from_base_units(&text).map_err(|e| {
        LedgerError::Store(crate::store::StoreError::Corrupt(format!(
            "ledger {column} `{text}`: {e}"
        )))
    })
}

fn corrupt(what: String) -> LedgerError {
    LedgerError::Store(crate::store::StoreError::Corrupt(what))
}

fn user_from_row(row: &AnyRow) -> Result<User, LedgerError> {
    let data: String = row.try_get("plugin_data")?;
    Ok(User {
        id: row.try_get("id")?,
        plugin: row.try_get("plugin")?,
        merchant_id: row.try_get("merchant_id")?,
        contact: Contact {
            national_code: row.try_get("national_code")?,
            mobile: row.try_get("mobile")?,
            email: row.try_get("email")?,
        },
        plugin_data: serde_json::from_str(&data).map_err(|e| corrupt(e.to_string()))?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Writes a ledger outbox event (kind `ledger.*`, no invoice).
async fn write_event(
    tx: &mut Tx,
    plugin: &str,
    merchant_id: Option<&str>,
    at: i64,
    payload: &LedgerEventPayload,
) -> Result<(), LedgerError> {
    let json = serde_json::to_string(payload).map_err(|e| corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO outbox_events (merchant_id, plugin, kind, payload, created_at, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(merchant_id.unwrap_or_default().to_owned())
    .bind(plugin.to_owned())
    .bind(payload.action.event_kind())
    .bind(json)
    .bind(at)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn deposit_from_row(row: &AnyRow) -> Result<Deposit, LedgerError> {
    let status: String = row.try_get("status")?;
    Ok(Deposit {
        id: row.try_get("id")?,
        plugin: row.try_get("plugin")?,
        user_id: row.try_get("user_id")?,
        chain: row.try_get("chain")?,
        asset: row.try_get("asset")?,
        amount: row_amount(row, "amount")?,
        address: row.try_get("address")?,
        txn_hash: row.try_get("txn_hash")?,
        log_index: row.try_get("log_index")?,
        status: if status == "reversed" {
            DepositStatus::Reversed
        } else {
            DepositStatus::Credited
        },
        credited_at: row.try_get("credited_at")?,
        reversed_at: row.try_get("reversed_at")?,
    })
}

fn check_json(value: Option<serde_json::Value>) -> serde_json::Value {
    value.unwrap_or_else(|| serde_json::json!({}))
}

fn check_contact(contact: &Contact) -> Result<(), LedgerError> {
    let digits = |s: &Option<String>, name: &str, max: usize| match s {
        Some(v) if v.is_empty() || v.len() > max || !v.bytes().all(|b| b.is_ascii_digit()) => Err(
            LedgerError::Invalid(format!("{name} must be 1 to {max} digits")),
        ),
        _ => Ok(()),
    };
    digits(&contact.national_code, "national code", 4)?;
    digits(&contact.mobile, "mobile", 15)?;
    if contact.mobile.is_some() != contact.national_code.is_some() {
        return Err(LedgerError::Invalid(
            "mobile and national code go together".into(),
        ));
    }
    if let Some(email) = &contact.email
        && (email.len() > 254
            || email.split('@').count() != 2
            || email.starts_with('@')
            || email.ends_with('@')
            || email.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(LedgerError::Invalid(format!(
            "email `{email}` is not valid"
        )));
    }
    Ok(())
}

impl Ledger {
    pub fn new(store: Store) -> Ledger {
        Ledger { store }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    fn for_update(&self) -> &'static str {
        match self.store.backend() {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }

    // ----- users -----

    pub async fn create_user(&self, plugin: &str, new: NewUser) -> Result<User, LedgerError> {
        check_contact(&new.contact)?;
        let now = now_ms();
        let user = User {
            id: next_id(),
            plugin: plugin.to_owned(),
            merchant_id: new.merchant_id,
            contact: new.contact,
            plugin_data: check_json(new.plugin_data),
            created_at: now,
            updated_at: now,
        };
        // Through a transaction, like every write: bounded by a plugin call's deadline.
        let mut tx = self.store.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO ledger_users (id, plugin, merchant_id, national_code, mobile, email, \
             plugin_data, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(user.id)
        .bind(plugin)
        .bind(user.merchant_id.clone())
        .bind(user.contact.national_code.clone())
        .bind(user.contact.mobile.clone())
        .bind(user.contact.email.clone())
        .bind(user.plugin_data.to_string())
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match inserted.map_err(crate::store::StoreError::from) {
            Ok(_) => {
                tx.commit().await?;
                Ok(user)
            }
            Err(crate::store::StoreError::Conflict(_)) => Err(LedgerError::Conflict(
                "duplicate: the merchant already has a payee user".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn user(&self, plugin: &str, id: i64) -> Result<User, LedgerError> {
        let row = sqlx::query("SELECT * FROM ledger_users WHERE id = $1 AND plugin = $2")
            .bind(id)
            .bind(plugin)
            .fetch_optional(self.store.pool())
            .await?
            .ok_or(LedgerError::NotFound)?;
        user_from_row(&row)
    }

    pub async fn merchant_user(
        &self,
        plugin: &str,
        merchant_id: &str,
    ) -> Result<User, LedgerError> {
        let row = sqlx::query("SELECT * FROM ledger_users WHERE plugin = $1 AND merchant_id = $2")
            .bind(plugin)
            .bind(merchant_id)
            .fetch_optional(self.store.pool())
            .await?
            .ok_or(LedgerError::NotFound)?;
        user_from_row(&row)
    }

    pub async fn update_user(
        &self,
        plugin: &str,
        id: i64,
        contact: Option<Contact>,
        plugin_data: Option<serde_json::Value>,
    ) -> Result<User, LedgerError> {
        let mut user = self.user(plugin, id).await?;
        if let Some(contact) = contact {
            check_contact(&contact)?;
            user.contact = contact;
        }
        if let Some(data) = plugin_data {
            user.plugin_data = data;
        }
        user.updated_at = now_ms();
        let mut tx = self.store.begin().await?;
        sqlx::query(
            "UPDATE ledger_users SET national_code = $1, mobile = $2, email = $3, plugin_data = $4, \
             updated_at = $5 WHERE id = $6 AND plugin = $7",
        )
        .bind(user.contact.national_code.clone())
        .bind(user.contact.mobile.clone())
        .bind(user.contact.email.clone())
        .bind(user.plugin_data.to_string())
        .bind(user.updated_at)
        .bind(id)
        .bind(plugin)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(user)
    }

    /// The users of `plugin` (all plugins when `None`), oldest first, for the operator.
    pub async fn users(&self, plugin: Option<&str>) -> Result<Vec<User>, LedgerError> {
        let rows = sqlx::query(
            "SELECT * FROM ledger_users WHERE ($1 IS NULL OR plugin = $2) ORDER BY id LIMIT 10000",
        )
        .bind(plugin.map(str::to_owned))
        .bind(plugin.map(str::to_owned))
        .fetch_all(self.store.pool())
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    // ----- balances and postings -----

    /// Every asset `user_id` holds or has held.
    pub async fn balances(&self, plugin: &str, user_id: i64) -> Result<Vec<Balance>, LedgerError> {
        self.user(plugin, user_id).await?;
        let rows = sqlx::query(
            "SELECT chain, asset, kind, balance FROM ledger_accounts \
             WHERE plugin = $1 AND owner = $2 ORDER BY chain, asset",
        )
        .bind(plugin)
        .bind(user_id)
        .fetch_all(self.store.pool())
        .await?;
        let mut by_asset: BTreeMap<(String, String), Balance> = BTreeMap::new();
        for row in &rows {
            let chain: String = row.try_get("chain")?;
            let asset: String = row.try_get("asset")?;
            let kind: String = row.try_get("kind")?;
            let amount = row_amount(row, "balance")?;
            let b = by_asset
                .entry((chain.clone(), asset.clone()))
                .or_insert(Balance {
                    chain,
                    asset,
                    available: Amount::ZERO,
                    locked: Amount::ZERO,
                    debt: Amount::ZERO,
                });
            match kind.as_str() {
                AVAILABLE => b.available = amount,
                LOCKED => b.locked = amount,
                DEBT => b.debt = amount,
                _ => {}
            }
        }
        Ok(by_asset.into_values().collect())
    }

    /// The postings on `user_id`'s accounts (or the plugin's external accounts when
    /// `user_id` is `None`), newest first.
    pub async fn postings(
        &self,
        plugin: &str,
        user_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Posting>, LedgerError> {
        let rows = sqlx::query(
            "SELECT p.id, p.entry_id, a.owner, a.chain, a.asset, a.kind, p.side, p.amount, p.memo, \
             p.order_id, p.created_at FROM ledger_postings p \
             JOIN ledger_accounts a ON a.id = p.account_id \
             WHERE p.plugin = $1 AND a.owner = $2 ORDER BY p.id DESC LIMIT $3",
        )
        .bind(plugin)
        .bind(user_id.unwrap_or(NO_USER))
        .bind(i64::from(limit))
        .fetch_all(self.store.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Posting {
                    id: row.try_get("id")?,
                    entry_id: row.try_get("entry_id")?,
                    owner: row.try_get("owner")?,
                    chain: row.try_get("chain")?,
                    asset: row.try_get("asset")?,
                    kind: row.try_get("kind")?,
                    side: row.try_get("side")?,
                    amount: row_amount(row, "amount")?,
                    memo: row.try_get("memo")?,
                    order_id: row.try_get("order_id")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Accounts whose cached balance is not what their postings add up to (empty when
    /// the ledger is consistent), and entries whose debits differ from their credits
    /// (reported with account id 0).
    pub async fn recompute(&self) -> Result<Vec<BalanceMismatch>, LedgerError> {
        let accounts = sqlx::query("SELECT id, kind, balance FROM ledger_accounts ORDER BY id")
            .fetch_all(self.store.pool())
            .await?;
        let postings =
            sqlx::query("SELECT entry_id, account_id, side, amount FROM ledger_postings")
                .fetch_all(self.store.pool())
                .await?;
        // Signed sums as (debits, credits) per account and per entry.
        let mut per_account: BTreeMap<i64, (Amount, Amount)> = BTreeMap::new();
        let mut per_entry: BTreeMap<i64, (Amount, Amount)> = BTreeMap::new();
        for row in &postings {
            let account: i64 = row.try_get("account_id")?;
            let entry: i64 = row.try_get("entry_id")?;
            let side: String = row.try_get("side")?;
            let amount = row_amount(row, "amount")?;
            for sums in [
                per_account.entry(account).or_default(),
                per_entry.entry(entry).or_default(),
            ] {
                if side == "debit" {
                    sums.0 = sums.0.saturating_add(amount);
                } else {
                    sums.1 = sums.1.saturating_add(amount);
                }
            }
        }
        let mut mismatches = Vec::new();
        for row in &accounts {
            let id: i64 = row.try_get("id")?;
            let kind: String = row.try_get("kind")?;
            let cached = row_amount(row, "balance")?;
            let (debits, credits) = per_account.get(&id).copied().unwrap_or_default();
            let from_postings = if credit_normal(&kind) {
                credits.checked_sub(debits)
            } else {
                debits.checked_sub(credits)
            };
            if from_postings != Some(cached) {
                mismatches.push(BalanceMismatch {
                    account_id: id,
                    cached,
                    from_postings,
                });
            }
        }
        for (_, (debits, credits)) in per_entry {
            if debits != credits {
                mismatches.push(BalanceMismatch {
                    account_id: 0,
                    cached: debits,
                    from_postings: Some(credits),
                });
            }
        }
        Ok(mismatches)
    }

    /// Per (plugin, chain, asset): what came in and went out against what users hold.
    pub async fn reconcile(&self) -> Result<Vec<Reconciliation>, LedgerError> {
        let rows = sqlx::query(
            "SELECT plugin, chain, asset, kind, balance FROM ledger_accounts ORDER BY plugin, chain, asset",
        )
        .fetch_all(self.store.pool())
        .await?;
        let mut sums: BTreeMap<(String, String, String), Reconciliation> = BTreeMap::new();
        for row in &rows {
            let (plugin, chain, asset): (String, String, String) = (
                row.try_get("plugin")?,
                row.try_get("chain")?,
                row.try_get("asset")?,
            );
            let kind: String = row.try_get("kind")?;
            let amount = row_amount(row, "balance")?;
            let r = sums
                .entry((plugin.clone(), chain.clone(), asset.clone()))
                .or_insert(Reconciliation {
                    plugin,
                    chain,
                    asset,
                    external: Amount::ZERO,
                    outflow: Amount::ZERO,
                    held: Amount::ZERO,
                    debt: Amount::ZERO,
                    balanced: false,
                });
            let slot = match kind.as_str() {
                EXTERNAL => &mut r.external,
                OUTFLOW => &mut r.outflow,
                DEBT => &mut r.debt,
                _ => &mut r.held,
            };
            *slot = slot.saturating_add(amount);
        }
        let entries_balance = self.recompute().await?.is_empty();
        Ok(sums
            .into_values()
            .map(|mut r| {
                r.balanced = entries_balance
                    && r.held.checked_add(r.outflow) == r.external.checked_add(r.debt);
                r
            })
            .collect())
    }

    /// An operator adjustment: credits (`credit`) or debits `amount` of (chain, asset)
    /// to `user_id`'s available balance against the plugin's external account. A debit
    /// beyond the available balance is refused.
    pub async fn adjust(
        &self,
        plugin: &str,
        user_id: i64,
        chain: &str,
        asset: &str,
        amount: Amount,
        credit: bool,
    ) -> Result<Balance, LedgerError> {
        self.user(plugin, user_id).await?;
        if amount.is_zero() {
            return Err(LedgerError::Invalid("amount must be more than zero".into()));
        }
        let key = |owner, kind| AccountKey {
            owner,
            chain: chain.to_owned(),
            asset: asset.to_owned(),
            kind,
        };
        let mut entry = Entry::default();
        let (external, user) = (key(NO_USER, EXTERNAL), key(user_id, AVAILABLE));
        if credit {
            entry.transfer(external, user, amount, None);
        } else {
            entry.transfer(user, key(NO_USER, OUTFLOW), amount, None);
        }
        let mut tx = self.store.begin().await?;
        self.post(&mut tx, plugin, entry, "adjustment", None, now_ms())
            .await?;
        tx.commit().await?;
        let balances = self.balances(plugin, user_id).await?;
        balances
            .into_iter()
            .find(|b| b.chain == chain && b.asset == asset)
            .ok_or(LedgerError::NotFound)
    }

    /// Writes `entry`: locks its accounts in id order (creating missing ones), refuses
    /// any balance that would go below zero, writes the postings and the new balances.
    async fn post(
        &self,
        tx: &mut Tx,
        plugin: &str,
        entry: Entry,
        memo: &str,
        order_id: Option<i64>,
        now: i64,
    ) -> Result<(), LedgerError> {
        if entry.lines.is_empty() {
            return Ok(());
        }
        let mut keys: Vec<AccountKey> = entry.lines.iter().map(|l| l.0.clone()).collect();
        keys.sort();
        keys.dedup();
        // Create missing accounts first (no lock needed: the unique key settles races),
        // then lock them all in id order.
        let mut ids: BTreeMap<AccountKey, i64> = BTreeMap::new();
        for key in &keys {
            sqlx::query(
                "INSERT INTO ledger_accounts (id, plugin, owner, chain, asset, kind, balance, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, '0', $7) \
                 ON CONFLICT (plugin, owner, chain, asset, kind) DO NOTHING",
            )
            .bind(next_id())
            .bind(plugin)
            .bind(key.owner)
            .bind(key.chain.clone())
            .bind(key.asset.clone())
            .bind(key.kind)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            let row = sqlx::query(
                "SELECT id FROM ledger_accounts WHERE plugin = $1 AND owner = $2 AND chain = $3 \
                 AND asset = $4 AND kind = $5",
            )
            .bind(plugin)
            .bind(key.owner)
            .bind(key.chain.clone())
            .bind(key.asset.clone())
            .bind(key.kind)
            .fetch_one(&mut **tx)
            .await?;
            ids.insert(key.clone(), row.try_get("id")?);
        }
        let mut by_id: Vec<(i64, AccountKey)> =
            ids.iter().map(|(k, id)| (*id, k.clone())).collect();
        by_id.sort();
        let mut balances: BTreeMap<i64, Amount> = BTreeMap::new();
        for (id, _) in &by_id {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT balance FROM ledger_accounts WHERE id = $1{}",
                self.for_update()
            )))
            .bind(*id)
            .fetch_one(&mut **tx)
            .await?;
            balances.insert(*id, row_amount(&row, "balance")?);
        }
        for (key, debit, amount, _) in &entry.lines {
            let id = ids[key];
            let balance = balances[&id];
            let increases = credit_normal(key.kind) != *debit;
            let next = if increases {
                balance
                    .checked_add(*amount)
                    .ok_or_else(|| LedgerError::Invalid("amount too large".into()))?
            } else {
                balance.checked_sub(*amount).ok_or_else(|| {
                    LedgerError::Conflict(format!(
                        "insufficient-balance: the {} {} balance on {} is short",
                        key.kind, key.asset, key.chain
                    ))
                })?
            };
            balances.insert(id, next);
        }
        let entry_id = next_id();
        for (key, debit, amount, item) in &entry.lines {
            sqlx::query(
                "INSERT INTO ledger_postings (id, entry_id, plugin, account_id, side, amount, memo, \
                 order_id, item_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(next_id())
            .bind(entry_id)
            .bind(plugin)
            .bind(ids[key])
            .bind(if *debit { "debit" } else { "credit" })
            .bind(amount.to_base_units_string())
            .bind(memo)
            .bind(order_id)
            .bind(*item)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        }
        for (id, balance) in balances {
            sqlx::query("UPDATE ledger_accounts SET balance = $1, updated_at = $2 WHERE id = $3")
                .bind(balance.to_base_units_string())
                .bind(now)
                .bind(id)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    // ----- deposits -----

    /// The balance of one of `user_id`'s accounts, read inside `tx`.
    async fn account_balance(
        &self,
        tx: &mut Tx,
        plugin: &str,
        user_id: i64,
        chain: &str,
        asset: &str,
        kind: &str,
    ) -> Result<Amount, LedgerError> {
        let row = sqlx::query(
            "SELECT balance FROM ledger_accounts WHERE plugin = $1 AND owner = $2 AND chain = $3 \
             AND asset = $4 AND kind = $5",
        )
        .bind(plugin)
        .bind(user_id)
        .bind(chain)
        .bind(asset)
        .bind(kind)
        .fetch_optional(&mut **tx)
        .await?;
        match row {
            Some(row) => row_amount(&row, "balance"),
            None => Ok(Amount::ZERO),
        }
    }

    async fn deposit_event(
        &self,
        tx: &mut Tx,
        deposit: &Deposit,
        action: LedgerAction,
        at: i64,
    ) -> Result<(), LedgerError> {
        let merchant: Option<String> =
            sqlx::query("SELECT merchant_id FROM ledger_users WHERE id = $1")
                .bind(deposit.user_id)
                .fetch_one(&mut **tx)
                .await?
                .try_get("merchant_id")?;
        let payload = LedgerEventPayload {
            version: 1,
            action,
            previous_status: None,
            order: None,
            moved: Vec::new(),
            deposit: Some(deposit.clone()),
        };
        write_event(tx, &deposit.plugin, merchant.as_deref(), at, &payload).await
    }

    /// Credits a confirmed transfer to `user_id` once: `None` when this transfer is
    /// already credited. A credit pays off the user's debt in the asset first.
    pub async fn credit_deposit(
        &self,
        plugin: &str,
        user_id: i64,
        transfer: &DepositTransfer,
    ) -> Result<Option<Deposit>, LedgerError> {
        self.user(plugin, user_id).await?;
        let mut tx = self.store.begin().await?;
        let credited = self
            .credit_deposit_in(&mut tx, plugin, user_id, transfer, now_ms())
            .await?;
        tx.commit().await?;
        Ok(credited)
    }

    /// [`Ledger::credit_deposit`] in the caller's transaction (the chain listener's step),
    /// for a user the caller knows exists.
    pub async fn credit_deposit_in(
        &self,
        tx: &mut Tx,
        plugin: &str,
        user_id: i64,
        transfer: &DepositTransfer,
        now: i64,
    ) -> Result<Option<Deposit>, LedgerError> {
        if transfer.amount.is_zero() {
            return Err(LedgerError::Invalid(
                "a deposit of zero credits nothing".into(),
            ));
        }
        let existing = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT * FROM ledger_deposits WHERE chain = $1 AND txn_hash = $2 AND log_index = $3{}",
            self.for_update()
        )))
        .bind(transfer.chain.clone())
        .bind(transfer.txn_hash.clone())
        .bind(transfer.log_index)
        .fetch_optional(&mut **tx)
        .await?;
        let deposit = match existing {
            Some(row) => {
                let mut d = deposit_from_row(&row)?;
                if d.status == DepositStatus::Credited {
                    return Ok(None);
                }
                if d.plugin != plugin || d.user_id != user_id {
                    return Err(LedgerError::Conflict(
                        "duplicate: the transfer was credited to another user".into(),
                    ));
                }
                d.status = DepositStatus::Credited;
                d.credited_at = now;
                d.reversed_at = None;
                sqlx::query(
                    "UPDATE ledger_deposits SET status = 'credited', credited_at = $1, \
                     reversed_at = NULL WHERE id = $2",
                )
                .bind(now)
                .bind(d.id)
                .execute(&mut **tx)
                .await?;
                d
            }
            None => {
                let d = Deposit {
                    id: next_id(),
                    plugin: plugin.to_owned(),
                    user_id,
                    chain: transfer.chain.clone(),
                    asset: transfer.asset.clone(),
                    amount: transfer.amount,
                    address: transfer.address.clone(),
                    txn_hash: transfer.txn_hash.clone(),
                    log_index: transfer.log_index,
                    status: DepositStatus::Credited,
                    credited_at: now,
                    reversed_at: None,
                };
                sqlx::query(
                    "INSERT INTO ledger_deposits (id, plugin, user_id, chain, asset, amount, address, \
                     txn_hash, log_index, status, credited_at, reversed_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'credited', $10, NULL)",
                )
                .bind(d.id)
                .bind(plugin)
                .bind(user_id)
                .bind(d.chain.clone())
                .bind(d.asset.clone())
                .bind(d.amount.to_base_units_string())
                .bind(d.address.clone())
                .bind(d.txn_hash.clone())
                .bind(d.log_index)
                .bind(now)
                .execute(&mut **tx)
                .await?;
                d
            }
        };
        let (chain, asset) = (&deposit.chain, &deposit.asset);
        let key = |owner, kind| AccountKey {
            owner,
            chain: chain.clone(),
            asset: asset.clone(),
            kind,
        };
        let debt = self
            .account_balance(tx, plugin, user_id, chain, asset, DEBT)
            .await?;
        let pay_off = debt.min(deposit.amount);
        let mut entry = Entry::default();
        entry.transfer(key(NO_USER, EXTERNAL), key(user_id, DEBT), pay_off, None);
        entry.transfer(
            key(NO_USER, EXTERNAL),
            key(user_id, AVAILABLE),
            deposit.amount.saturating_sub(pay_off),
            None,
        );
        self.post(tx, plugin, entry, "deposit", None, now).await?;
        self.deposit_event(tx, &deposit, LedgerAction::DepositCredited, now)
            .await?;
        Ok(Some(deposit))
    }

    /// Reverses the credit of a transfer whose block left the chain: `None` when it was
    /// never credited or is already reversed. What the available balance cannot cover
    /// becomes debt.
    pub async fn reverse_deposit(
        &self,
        chain: &str,
        txn_hash: &str,
        log_index: i64,
    ) -> Result<Option<Deposit>, LedgerError> {
        let mut tx = self.store.begin().await?;
        let reversed = self
            .reverse_deposit_in(&mut tx, chain, txn_hash, log_index, now_ms())
            .await?;
        tx.commit().await?;
        Ok(reversed)
    }

    /// [`Ledger::reverse_deposit`] in the caller's transaction (the chain listener's step).
    pub async fn reverse_deposit_in(
        &self,
        tx: &mut Tx,
        chain: &str,
        txn_hash: &str,
        log_index: i64,
        now: i64,
    ) -> Result<Option<Deposit>, LedgerError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT * FROM ledger_deposits WHERE chain = $1 AND txn_hash = $2 AND log_index = $3{}",
            self.for_update()
        )))
        .bind(chain)
        .bind(txn_hash)
        .bind(log_index)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut d = deposit_from_row(&row)?;
        if d.status == DepositStatus::Reversed {
            return Ok(None);
        }
        let plugin = d.plugin.clone();
        let key = |owner, kind| AccountKey {
            owner,
            chain: d.chain.clone(),
            asset: d.asset.clone(),
            kind,
        };
        let available = self
            .account_balance(tx, &plugin, d.user_id, &d.chain, &d.asset, AVAILABLE)
            .await?;
        let take = available.min(d.amount);
        let mut entry = Entry::default();
        entry.transfer(key(d.user_id, AVAILABLE), key(NO_USER, OUTFLOW), take, None);
        entry.transfer(
            key(d.user_id, DEBT),
            key(NO_USER, OUTFLOW),
            d.amount.saturating_sub(take),
            None,
        );
        // A spend between the read above and these postings makes `post` refuse
        // (insufficient balance): the caller retries; nothing is lost.
        self.post(tx, &plugin, entry, "reversal", None, now).await?;
        sqlx::query(
            "UPDATE ledger_deposits SET status = 'reversed', reversed_at = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(d.id)
        .execute(&mut **tx)
        .await?;
        d.status = DepositStatus::Reversed;
        d.reversed_at = Some(now);
        self.deposit_event(tx, &d, LedgerAction::DepositReversed, now)
            .await?;
        Ok(Some(d))
    }

    /// `user_id`'s deposit address on `chain`: derived from `xpub` (the operator's key for
    /// this plugin and chain) on the first call, stored, and the same on every later
    /// call. Concurrent first calls store one address (the loser's derivation index
    /// stays unused: a gap the operator's wallet scans past).
    pub async fn deposit_address(
        &self,
        plugin: &str,
        user_id: i64,
        chain: &crate::chain::ChainConfig,
        xpub: &str,
    ) -> Result<String, LedgerError> {
        self.user(plugin, user_id).await?;
        if let Some(address) = self
            .stored_deposit_address(plugin, user_id, &chain.name)
            .await?
        {
            return Ok(address);
        }
        let invalid = |e: crate::matcher::DerivationError| LedgerError::Invalid(e.to_string());
        let key = crate::matcher::parse_xpub(xpub).map_err(invalid)?;
        let index = self
            .store
            .next_derivation_index(&crate::matcher::xpub_id(xpub))
            .await?;
        let address = match chain.kind {
            crate::chain::ChainKind::Evm => crate::chain::evm::address_text(
                crate::matcher::derive_evm_address(&key, index).map_err(invalid)?,
            ),
            crate::chain::ChainKind::Tron => crate::matcher::derive_tron_address(&key, index)
                .map_err(invalid)?
                .to_string(),
        };
        let mut tx = self.store.begin().await?;
        sqlx::query(
            "INSERT INTO ledger_deposit_addresses (plugin, user_id, chain, address, derivation_index, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (plugin, user_id, chain) DO NOTHING",
        )
        .bind(plugin)
        .bind(user_id)
        .bind(&chain.name)
        .bind(&address)
        .bind(i64::from(index))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.stored_deposit_address(plugin, user_id, &chain.name)
            .await?
            .ok_or_else(|| {
                LedgerError::Store(crate::store::StoreError::Corrupt(
                    "a stored deposit address vanished".into(),
                ))
            })
    }

    async fn stored_deposit_address(
        &self,
        plugin: &str,
        user_id: i64,
        chain: &str,
    ) -> Result<Option<String>, LedgerError> {
        Ok(sqlx::query_scalar(
            "SELECT address FROM ledger_deposit_addresses WHERE plugin = $1 AND user_id = $2 AND chain = $3",
        )
        .bind(plugin)
        .bind(user_id)
        .bind(chain)
        .fetch_optional(self.store.pool())
        .await?)
    }

    /// `user_id`'s deposits, newest first, at most `limit` (1..=1000).
    pub async fn deposits(
        &self,
        plugin: &str,
        user_id: i64,
        limit: u32,
    ) -> Result<Vec<Deposit>, LedgerError> {
        if !(1..=1000).contains(&limit) {
            return Err(LedgerError::Invalid("limit must be 1 to 1000".into()));
        }
        self.user(plugin, user_id).await?;
        let rows = sqlx::query(
            "SELECT * FROM ledger_deposits WHERE plugin = $1 AND user_id = $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(plugin)
        .bind(user_id)
        .bind(i64::from(limit))
        .fetch_all(self.store.pool())
        .await?;
        rows.iter().map(deposit_from_row).collect()
    }

    // ----- orders -----

    pub async fn create_order(&self, plugin: &str, new: NewOrder) -> Result<Order, LedgerError> {
        let client = &new.client_order_id;
        if client.is_empty() || client.len() > 64 || !client.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(LedgerError::Invalid(
                "client order id must be 1 to 64 printable ASCII characters".into(),
            ));
        }
        if new.items.is_empty() || new.items.len() > 20 {
            return Err(LedgerError::Invalid("an order has 1 to 20 items".into()));
        }
        if new.payer_user_id == new.payee_user_id {
            return Err(LedgerError::Invalid(
                "payer and payee must be different users".into(),
            ));
        }
        let now = now_ms();
        if new.expires_at <= now {
            return Err(LedgerError::Invalid(
                "expires-at must be in the future".into(),
            ));
        }
        let mut items = Vec::with_capacity(new.items.len());
        for item in &new.items {
            items.push(OrderItem {
                id: next_id(),
                pay_type: item.pay_type,
                chain: item.chain.clone(),
                asset: item.asset.clone(),
                decimals: item.decimals,
                amount: parse_amount(&item.amount, item.decimals)?,
                paid: Amount::ZERO,
                locked: Amount::ZERO,
                unlocked: Amount::ZERO,
                refunded: Amount::ZERO,
            });
        }
        self.user(plugin, new.payer_user_id).await?;
        let payee = self.user(plugin, new.payee_user_id).await?;
        let order = Order {
            id: next_id(),
            plugin: plugin.to_owned(),
            payer_user_id: new.payer_user_id,
            payee_user_id: new.payee_user_id,
            merchant_id: payee.merchant_id,
            client_order_id: new.client_order_id,
            status: OrderStatus::Waiting,
            items,
            expires_at: new.expires_at,
            paid_at: None,
            created_at: now,
            updated_at: now,
            notify_url: new.notify_url,
            plugin_data: check_json(new.plugin_data),
        };
        let mut tx = self.store.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO ledger_orders (id, plugin, payer_user_id, payee_user_id, merchant_id, \
             client_order_id, status, expires_at, paid_at, created_at, updated_at, notify_url, \
             plugin_data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(order.id)
        .bind(plugin)
        .bind(order.payer_user_id)
        .bind(order.payee_user_id)
        .bind(order.merchant_id.clone())
        .bind(order.client_order_id.clone())
        .bind(order.status.as_str())
        .bind(order.expires_at)
        .bind(order.paid_at)
        .bind(now)
        .bind(now)
        .bind(order.notify_url.clone())
        .bind(order.plugin_data.to_string())
        .execute(&mut *tx)
        .await
        .map_err(crate::store::StoreError::from);
        match inserted {
            Ok(_) => {}
            Err(crate::store::StoreError::Conflict(_)) => {
                return Err(LedgerError::Conflict(
                    "duplicate: the client order id is already used for this payee".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        for (position, item) in order.items.iter().enumerate() {
            sqlx::query(
                "INSERT INTO ledger_order_items (id, order_id, position, pay_type, chain, asset, \
                 decimals, amount, paid, locked, unlocked, refunded) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '0', '0', '0', '0')",
            )
            .bind(item.id)
            .bind(order.id)
            .bind(position as i64)
            .bind(item.pay_type.as_str())
            .bind(item.chain.clone())
            .bind(item.asset.clone())
            .bind(i64::from(item.decimals))
            .bind(item.amount.to_base_units_string())
            .execute(&mut *tx)
            .await?;
        }
        self.event(
            &mut tx,
            &order,
            LedgerAction::OrderCreated,
            None,
            Vec::new(),
        )
        .await?;
        tx.commit().await?;
        Ok(order)
    }

    async fn items(
        &self,
        conn: &mut sqlx::AnyConnection,
        order_id: i64,
    ) -> Result<Vec<OrderItem>, LedgerError> {
        let rows =
            sqlx::query("SELECT * FROM ledger_order_items WHERE order_id = $1 ORDER BY position")
                .bind(order_id)
                .fetch_all(&mut *conn)
                .await?;
        rows.iter()
            .map(|row| {
                let pay_type: String = row.try_get("pay_type")?;
                let decimals: i64 = row.try_get("decimals")?;
                Ok(OrderItem {
                    id: row.try_get("id")?,
                    pay_type: if pay_type == "prepay" {
                        PayType::Prepay
                    } else {
                        PayType::Pay
                    },
                    chain: row.try_get("chain")?,
                    asset: row.try_get("asset")?,
                    decimals: u8::try_from(decimals).map_err(|e| corrupt(e.to_string()))?,
                    amount: row_amount(row, "amount")?,
                    paid: row_amount(row, "paid")?,
                    locked: row_amount(row, "locked")?,
                    unlocked: row_amount(row, "unlocked")?,
                    refunded: row_amount(row, "refunded")?,
                })
            })
            .collect()
    }

    async fn order_from_row(
        &self,
        conn: &mut sqlx::AnyConnection,
        row: &AnyRow,
    ) -> Result<Order, LedgerError> {
        let id: i64 = row.try_get("id")?;
        let status: String = row.try_get("status")?;
        let data: String = row.try_get("plugin_data")?;
        Ok(Order {
            id,
            plugin: row.try_get("plugin")?,
            payer_user_id: row.try_get("payer_user_id")?,
            payee_user_id: row.try_get("payee_user_id")?,
            merchant_id: row.try_get("merchant_id")?,
            client_order_id: row.try_get("client_order_id")?,
            status: OrderStatus::parse(&status)
                .ok_or_else(|| corrupt(format!("order status `{status}`")))?,
            items: self.items(&mut *conn, id).await?,
            expires_at: row.try_get("expires_at")?,
            paid_at: row.try_get("paid_at")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            notify_url: row.try_get("notify_url")?,
            plugin_data: serde_json::from_str(&data).map_err(|e| corrupt(e.to_string()))?,
        })
    }

    pub async fn order(&self, plugin: &str, id: i64) -> Result<Order, LedgerError> {
        let mut conn = self.store.pool().acquire().await?;
        let row = sqlx::query("SELECT * FROM ledger_orders WHERE id = $1 AND plugin = $2")
            .bind(id)
            .bind(plugin)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(LedgerError::NotFound)?;
        self.order_from_row(&mut conn, &row).await
    }

    pub async fn find_order(
        &self,
        plugin: &str,
        payee_user_id: i64,
        client_order_id: &str,
    ) -> Result<Order, LedgerError> {
        let mut conn = self.store.pool().acquire().await?;
        let row = sqlx::query(
            "SELECT * FROM ledger_orders WHERE plugin = $1 AND payee_user_id = $2 AND client_order_id = $3",
        )
        .bind(plugin)
        .bind(payee_user_id)
        .bind(client_order_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(LedgerError::NotFound)?;
        self.order_from_row(&mut conn, &row).await
    }

    /// Newest first, at most `limit` (1..=1000).
    pub async fn list_orders(
        &self,
        plugin: &str,
        filter: &OrderFilter,
        limit: u32,
    ) -> Result<Vec<Order>, LedgerError> {
        if !(1..=1000).contains(&limit) {
            return Err(LedgerError::Invalid("limit must be 1 to 1000".into()));
        }
        let mut sql = String::from("SELECT * FROM ledger_orders WHERE plugin = $1");
        let mut n = 1;
        let mut ints: Vec<i64> = Vec::new();
        let mut push = |sql: &mut String, clause: &str, value: i64| {
            n += 1;
            sql.push_str(&format!(" AND {clause} ${n}"));
            ints.push(value);
        };
        if let Some(v) = filter.payer_user_id {
            push(&mut sql, "payer_user_id =", v);
        }
        if let Some(v) = filter.payee_user_id {
            push(&mut sql, "payee_user_id =", v);
        }
        if let Some(v) = filter.min_id {
            push(&mut sql, "id >=", v);
        }
        if let Some(v) = filter.max_id {
            push(&mut sql, "id <=", v);
        }
        if let Some(v) = filter.created_from {
            push(&mut sql, "created_at >=", v);
        }
        if let Some(v) = filter.created_to {
            push(&mut sql, "created_at <=", v);
        }
        if !filter.statuses.is_empty() {
            // Fixed words from the enum, not caller text.
            let list: Vec<String> = filter
                .statuses
                .iter()
                .map(|s| format!("'{}'", s.as_str()))
                .collect();
            sql.push_str(&format!(" AND status IN ({})", list.join(", ")));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {limit}"));
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(plugin);
        for v in ints {
            query = query.bind(v);
        }
        let mut conn = self.store.pool().acquire().await?;
        let rows = query.fetch_all(&mut *conn).await?;
        let mut orders = Vec::with_capacity(rows.len());
        for row in &rows {
            orders.push(self.order_from_row(&mut conn, row).await?);
        }
        Ok(orders)
    }

    /// Begins a change of order `id`: the order locked and read inside the transaction.
    async fn lock_order(&self, plugin: &str, id: i64) -> Result<(Tx, Order), LedgerError> {
        let mut tx = self.store.begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT * FROM ledger_orders WHERE id = $1 AND plugin = $2{}",
            self.for_update()
        )))
        .bind(id)
        .bind(plugin)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(LedgerError::NotFound)?;
        let order = self.order_from_row(&mut tx, &row).await?;
        Ok((tx, order))
    }

    /// Writes the order's new state, its entry and its event, and commits.
    #[allow(clippy::too_many_arguments)]
    async fn commit_change(
        &self,
        mut tx: Tx,
        mut order: Order,
        previous: OrderStatus,
        entry: Entry,
        action: LedgerAction,
        moved: Vec<(i64, Amount)>,
        memo: &str,
        now: i64,
    ) -> Result<Order, LedgerError> {
        let plugin = order.plugin.clone();
        self.post(&mut tx, &plugin, entry, memo, Some(order.id), now)
            .await?;
        order.updated_at = now;
        sqlx::query(
            "UPDATE ledger_orders SET status = $1, paid_at = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(order.status.as_str())
        .bind(order.paid_at)
        .bind(now)
        .bind(order.id)
        .execute(&mut *tx)
        .await?;
        for item in &order.items {
            sqlx::query(
                "UPDATE ledger_order_items SET paid = $1, locked = $2, unlocked = $3, refunded = $4 \
                 WHERE id = $5",
            )
            .bind(item.paid.to_base_units_string())
            .bind(item.locked.to_base_units_string())
            .bind(item.unlocked.to_base_units_string())
            .bind(item.refunded.to_base_units_string())
            .bind(item.id)
            .execute(&mut *tx)
            .await?;
        }
        self.event(&mut tx, &order, action, Some(previous), moved)
            .await?;
        tx.commit().await?;
        Ok(order)
    }

    async fn event(
        &self,
        tx: &mut Tx,
        order: &Order,
        action: LedgerAction,
        previous_status: Option<OrderStatus>,
        moved: Vec<(i64, Amount)>,
    ) -> Result<(), LedgerError> {
        let payload = LedgerEventPayload {
            version: 1,
            action,
            previous_status,
            order: Some(order.clone()),
            moved,
            deposit: None,
        };
        write_event(
            tx,
            &order.plugin,
            order.merchant_id.as_deref(),
            order.updated_at,
            &payload,
        )
        .await
    }

    /// Pays a `waiting` order from the payer's balances (see the WIT `ledger.pay`).
    pub async fn pay(&self, plugin: &str, id: i64) -> Result<Order, LedgerError> {
        let now = now_ms();
        let (mut tx, mut order) = self.lock_order(plugin, id).await?;
        if order.status != OrderStatus::Waiting {
            return Err(LedgerError::Conflict(format!(
                "status: the order is {}",
                order.status.as_str()
            )));
        }
        if now >= order.expires_at {
            return Err(LedgerError::Conflict(
                "expired: the order has expired".into(),
            ));
        }
        let mut entry = Entry::default();
        let mut moved = Vec::new();
        let (payer, payee) = (order.payer_user_id, order.payee_user_id);
        for item in &mut order.items {
            if !self
                .account_balance(&mut tx, plugin, payer, &item.chain, &item.asset, DEBT)
                .await?
                .is_zero()
            {
                return Err(LedgerError::Conflict(format!(
                    "debt: the payer owes {} on {}; spending is blocked",
                    item.asset, item.chain
                )));
            }
            let from = AccountKey::user(payer, item, AVAILABLE);
            match item.pay_type {
                PayType::Pay => {
                    entry.transfer(
                        from,
                        AccountKey::user(payee, item, AVAILABLE),
                        item.amount,
                        Some(item.id),
                    );
                    item.paid = item.amount;
                }
                PayType::Prepay => {
                    entry.transfer(
                        from,
                        AccountKey::user(payer, item, LOCKED),
                        item.amount,
                        Some(item.id),
                    );
                    item.locked = item.amount;
                }
            }
            moved.push((item.id, item.amount));
        }
        let previous = order.status;
        order.status = if order.items.iter().any(|i| !i.locked.is_zero()) {
            OrderStatus::Processing
        } else {
            OrderStatus::Completed
        };
        order.paid_at = Some(now);
        self.commit_change(
            tx,
            order,
            previous,
            entry,
            LedgerAction::OrderPaid,
            moved,
            "pay",
            now,
        )
        .await
    }

    /// The (item index, amount) pairs a settle/unlock/refund names; an empty list means
    /// every item's whole `remaining` amount.
    fn pick(
        order: &Order,
        items: &[(String, String)],
        remaining: impl Fn(&OrderItem) -> Amount,
        over: &str,
    ) -> Result<Vec<(usize, Amount)>, LedgerError> {
        if items.is_empty() {
            return Ok(order
                .items
                .iter()
                .enumerate()
                .map(|(i, item)| (i, remaining(item)))
                .filter(|(_, a)| !a.is_zero())
                .collect());
        }
        let mut picked: Vec<(usize, Amount)> = Vec::new();
        for (item_id, text) in items {
            let index = order
                .items
                .iter()
                .position(|i| i.id.to_string() == *item_id)
                .ok_or_else(|| LedgerError::Invalid(format!("no item `{item_id}` in the order")))?;
            let amount = parse_amount(text, order.items[index].decimals)?;
            let already: Amount = picked
                .iter()
                .filter(|(i, _)| *i == index)
                .fold(Amount::ZERO, |s, (_, a)| s.saturating_add(*a));
            if already.saturating_add(amount) > remaining(&order.items[index]) {
                return Err(LedgerError::Conflict(format!(
                    "{over}: item {item_id} has less than {text} left"
                )));
            }
            picked.push((index, amount));
        }
        Ok(picked)
    }

    fn after_locks(order: &mut Order) {
        if order.status == OrderStatus::Processing && order.items.iter().all(|i| i.locked.is_zero())
        {
            order.status = OrderStatus::Completed;
        }
    }

    /// Moves locked PREPAY amounts to the payee; `items` empty settles every lock.
    pub async fn settle(
        &self,
        plugin: &str,
        id: i64,
        items: &[(String, String)],
    ) -> Result<Order, LedgerError> {
        self.release(plugin, id, items, true).await
    }

    /// Releases locked PREPAY amounts to the payer; `items` empty releases every lock.
    pub async fn unlock(
        &self,
        plugin: &str,
        id: i64,
        items: &[(String, String)],
    ) -> Result<Order, LedgerError> {
        self.release(plugin, id, items, false).await
    }

    async fn release(
        &self,
        plugin: &str,
        id: i64,
        items: &[(String, String)],
        settle: bool,
    ) -> Result<Order, LedgerError> {
        let now = now_ms();
        let (tx, mut order) = self.lock_order(plugin, id).await?;
        if order.status != OrderStatus::Processing {
            return Err(LedgerError::Conflict(format!(
                "status: the order is {}, nothing is locked",
                order.status.as_str()
            )));
        }
        let picked = Self::pick(&order, items, |i| i.locked, "over-lock")?;
        let mut entry = Entry::default();
        let mut moved = Vec::new();
        let (payer, payee) = (order.payer_user_id, order.payee_user_id);
        for (index, amount) in picked {
            let item = &mut order.items[index];
            let to = if settle {
                AccountKey::user(payee, item, AVAILABLE)
            } else {
                AccountKey::user(payer, item, AVAILABLE)
            };
            entry.transfer(
                AccountKey::user(payer, item, LOCKED),
                to,
                amount,
                Some(item.id),
            );
            item.locked = item.locked.saturating_sub(amount);
            if settle {
                item.paid = item.paid.saturating_add(amount);
            } else {
                item.unlocked = item.unlocked.saturating_add(amount);
            }
            moved.push((item.id, amount));
        }
        let previous = order.status;
        Self::after_locks(&mut order);
        let (action, memo) = if settle {
            (LedgerAction::OrderSettled, "settle")
        } else {
            (LedgerAction::OrderUnlocked, "unlock")
        };
        self.commit_change(tx, order, previous, entry, action, moved, memo, now)
            .await
    }

    /// Moves paid amounts back to the payer, never more than paid and not yet refunded.
    pub async fn refund(
        &self,
        plugin: &str,
        id: i64,
        items: &[(String, String)],
    ) -> Result<Order, LedgerError> {
        let now = now_ms();
        let (tx, mut order) = self.lock_order(plugin, id).await?;
        let picked = Self::pick(
            &order,
            items,
            |i| i.paid.saturating_sub(i.refunded),
            "over-refund",
        )?;
        if picked.is_empty() {
            return Err(LedgerError::Conflict(
                "over-refund: nothing paid is left to refund".into(),
            ));
        }
        let mut entry = Entry::default();
        let mut moved = Vec::new();
        let (payer, payee) = (order.payer_user_id, order.payee_user_id);
        for (index, amount) in picked {
            let item = &mut order.items[index];
            entry.transfer(
                AccountKey::user(payee, item, AVAILABLE),
                AccountKey::user(payer, item, AVAILABLE),
                amount,
                Some(item.id),
            );
            item.refunded = item.refunded.saturating_add(amount);
            moved.push((item.id, amount));
        }
        let previous = order.status;
        self.commit_change(
            tx,
            order,
            previous,
            entry,
            LedgerAction::OrderRefunded,
            moved,
            "refund",
            now,
        )
        .await
    }

    /// Cancels a `waiting` or `processing` order, releasing its locks.
    pub async fn cancel(&self, plugin: &str, id: i64) -> Result<Order, LedgerError> {
        let now = now_ms();
        let (tx, order) = self.lock_order(plugin, id).await?;
        self.end(tx, order, OrderStatus::Cancelled, now).await
    }

    async fn end(
        &self,
        tx: Tx,
        mut order: Order,
        status: OrderStatus,
        now: i64,
    ) -> Result<Order, LedgerError> {
        if !matches!(order.status, OrderStatus::Waiting | OrderStatus::Processing) {
            return Err(LedgerError::Conflict(format!(
                "status: the order is {}",
                order.status.as_str()
            )));
        }
        let mut entry = Entry::default();
        let mut moved = Vec::new();
        let payer = order.payer_user_id;
        for item in &mut order.items {
            if item.locked.is_zero() {
                continue;
            }
            let amount = item.locked;
            entry.transfer(
                AccountKey::user(payer, item, LOCKED),
                AccountKey::user(payer, item, AVAILABLE),
                amount,
                Some(item.id),
            );
            item.unlocked = item.unlocked.saturating_add(amount);
            item.locked = Amount::ZERO;
            moved.push((item.id, amount));
        }
        let previous = order.status;
        order.status = status;
        let (action, memo) = if status == OrderStatus::Expired {
            (LedgerAction::OrderExpired, "expire")
        } else {
            (LedgerAction::OrderCancelled, "cancel")
        };
        self.commit_change(tx, order, previous, entry, action, moved, memo, now)
            .await
    }

    /// Expires up to `limit` orders whose `expires_at` is at or before `now` while still
    /// `waiting` or `processing` (the host's expiry task). Returns how many it expired.
    pub async fn expire_due(&self, now: i64, limit: u32) -> Result<usize, LedgerError> {
        let rows = sqlx::query(
            "SELECT id, plugin FROM ledger_orders WHERE status IN ('waiting', 'processing') \
             AND expires_at <= $1 ORDER BY expires_at LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(self.store.pool())
        .await?;
        let mut expired = 0;
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let plugin: String = row.try_get("plugin")?;
            let (tx, order) = self.lock_order(&plugin, id).await?;
            // Re-checked under the lock: a pay or cancel may have come first.
            if order.expires_at > now
                || !matches!(order.status, OrderStatus::Waiting | OrderStatus::Processing)
            {
                continue;
            }
            self.end(tx, order, OrderStatus::Expired, now).await?;
            expired += 1;
        }
        Ok(expired)
    }

    /// Runs [`Ledger::expire_due`] every `interval` until `stop` resolves.
    pub async fn run_expiry(
        &self,
        interval: std::time::Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut stop = std::pin::pin!(stop);
        loop {
            match self.expire_due(now_ms(), 500).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "ledger orders expired"),
                Err(e) => tracing::warn!(error = %e, "ledger expiry failed; retrying later"),
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = &mut stop => return,
            }
        }
    }
}
