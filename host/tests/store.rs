//! The store suite: the same tests on SQLite and on PostgreSQL, each on a fresh database.

mod common;

use common::db::TestDb;
use polypay_host::invoice::{
    Allocation, Amount, ChainView, FiatQuote, Invoice, InvoiceError, InvoiceService, InvoiceStatus,
    MatchStrategy, NewInvoice,
};
use polypay_host::merchant::{CredentialSpec, MasterKey, Merchants, SecretFormat};
use polypay_host::store::invoices;
use polypay_host::store::kv::{KvError, KvQuota};
use polypay_host::store::{Store, now_ms};

on_both_backends!(
    migrations_apply_once_and_leave_nothing_pending,
    merchant_secret_authenticates_and_wrong_secret_does_not,
    rotation_revokes_old_secrets_and_keeps_public_ids,
    invoice_creation_writes_its_created_event,
    a_fiat_quote_is_stored_with_its_invoice,
    duplicate_merchant_order_id_is_refused_without_partial_write,
    concurrent_reservations_of_one_amount_admit_exactly_one,
    released_reservation_can_be_taken_again,
    cancel_moves_pending_to_cancelled_once,
    settle_walks_pending_confirming_paid_and_back_on_reorg,
    underpayment_is_flagged_and_expiry_applies,
    underpayment_within_the_tolerance_pays_without_the_underpaid_flag,
    plugin_kv_values_expire_and_insert_if_absent_is_exclusive,
    an_operator_merchant_keeps_one_credential_set_per_plugin,
    plugin_data_of_a_merchant_is_kept_per_plugin,
    plugin_kv_quota_counts_entries_and_bytes_and_expired_entries_make_room,
);

fn key() -> MasterKey {
    MasterKey::from_bytes(&[42; 32])
}

async fn merchant(store: &Store) -> String {
    Merchants::new(store.clone(), key())
        .create(
            "Shop",
            Some("test"),
            serde_json::json!({}),
            &CredentialSpec::default_set(),
        )
        .await
        .unwrap()
        .merchant
        .id
}

fn new_invoice(merchant_id: &str, order_id: Option<&str>) -> NewInvoice {
    let now = now_ms();
    let mut new = NewInvoice::new(
        merchant_id,
        "test",
        "ethereum",
        ("USDT", 6),
        Amount::from(1_000_000u64),
        now + 600_000,
    );
    new.merchant_order_id = order_id.map(str::to_string);
    new.notify_url = Some("https://merchant.example/notify".into());
    new.plugin_data = serde_json::json!({"title": "t"});
    new.monitor_until = now + 1_200_000;
    new
}

/// A fixed-address target, or a unique-amount reservation of `reserved`.
fn allocation(new: &NewInvoice, reserved: Option<u64>) -> Allocation {
    let mut allocation =
        Allocation::fixed_address(new, "0x00000000000000000000000000000000000000aa", 3);
    if let Some(amount) = reserved {
        allocation.strategy = MatchStrategy::UniqueAmount;
        allocation.target.reserved_amount = Some(Amount::from(amount));
        allocation.amount_due = Amount::from(amount);
    }
    allocation
}

async fn create(
    store: &Store,
    new: &NewInvoice,
    reserved: Option<u64>,
) -> Result<Invoice, InvoiceError> {
    InvoiceService::new(store.clone())
        .create(new, &allocation(new, reserved))
        .await
}

async fn events(store: &Store, invoice_id: &str) -> Vec<String> {
    let mut conn = store.pool().acquire().await.unwrap();
    polypay_host::store::outbox::invoice_events(&mut conn, invoice_id)
        .await
        .unwrap()
        .into_iter()
        .map(|(e, _)| e.kind)
        .collect()
}

/// Records a transfer to the invoice as a listener would.
async fn credit(store: &Store, invoice_id: &str, tx_hash: &str, amount: u64, block: i64) {
    sqlx::query(
        "INSERT INTO observed_transfers (chain, tx_hash, log_index, block_number, block_hash, from_address, to_address, asset, amount, invoice_id, observed_at, block_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind("ethereum")
    .bind(tx_hash)
    .bind(0i64)
    .bind(block)
    .bind(format!("0xblock{block}"))
    .bind("0xfrom")
    .bind("0xto")
    .bind("USDT")
    .bind(amount.to_string())
    .bind(invoice_id)
    .bind(now_ms())
    .bind(now_ms())
    .execute(store.pool())
    .await
    .unwrap();
}

async fn settle(store: &Store, invoice_id: &str, processed: i64, now: i64) -> Option<Invoice> {
    let mut tx = store.begin().await.unwrap();
    let settlement = InvoiceService::new(store.clone())
        .settle_in(
            &mut tx,
            [&invoice_id.to_string()],
            ChainView {
                processed_block: processed,
                final_block: None,
            },
            now,
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(settlement.quarantined.is_empty(), "{settlement:?}");
    settlement.changed.into_iter().next()
}

async fn migrations_apply_once_and_leave_nothing_pending(db: TestDb) {
    let store = db.store().await;
    assert!(store.pending_migrations().await.unwrap().is_empty());
    store.migrate().await.unwrap();
    assert!(store.pending_migrations().await.unwrap().is_empty());
    store.ping().await.unwrap();
}

async fn merchant_secret_authenticates_and_wrong_secret_does_not(db: TestDb) {
    let store = db.store().await;
    let merchants = Merchants::new(store.clone(), key());
    let created = merchants
        .create(
            "Shop A",
            None,
            serde_json::json!({}),
            &CredentialSpec::default_set(),
        )
        .await
        .unwrap();
    let secret = &created.credentials[0].secret;
    let (found, credential) = merchants
        .authenticate("any-plugin", "api-key", secret)
        .await
        .unwrap()
        .expect("authenticates");
    assert_eq!(found.id, created.merchant.id);
    assert_eq!(credential.kind, "api-key");
    assert!(
        merchants
            .authenticate("any-plugin", "api-key", "not-the-secret")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        merchants
            .authenticate("any-plugin", "bearer", secret)
            .await
            .unwrap()
            .is_none(),
        "the kind is part of the lookup"
    );
    // Another master key cannot find it either.
    let other = Merchants::new(store.clone(), MasterKey::from_bytes(&[1; 32]));
    assert!(
        other
            .authenticate("any-plugin", "api-key", secret)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        merchants
            .secret_for_signing(&credential.id)
            .await
            .unwrap()
            .unwrap(),
        secret.as_bytes()
    );
}

async fn rotation_revokes_old_secrets_and_keeps_public_ids(db: TestDb) {
    let store = db.store().await;
    let merchants = Merchants::new(store.clone(), key());
    let specs = vec![CredentialSpec {
        kind: "secure-key".into(),
        secret: SecretFormat::hex(16),
        public_id: Some(SecretFormat::alphanumeric("", 16)),
    }];
    let created = merchants
        .create("App", None, serde_json::json!({}), &specs)
        .await
        .unwrap();
    let old = created.credentials[0].clone();
    let rotated = merchants
        .rotate(&created.merchant.id, None, &specs)
        .await
        .unwrap();
    assert_eq!(rotated.len(), 1);
    assert_eq!(
        rotated[0].public_id, old.public_id,
        "clients keep their app id"
    );
    assert_ne!(rotated[0].secret, old.secret);
    assert!(
        merchants
            .authenticate("any-plugin", "secure-key", &old.secret)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        merchants
            .authenticate("any-plugin", "secure-key", &rotated[0].secret)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        merchants
            .secret_for_signing(&old.id)
            .await
            .unwrap()
            .is_none(),
        "revoked secrets are not usable"
    );
    let by_public = polypay_host::store::merchants::find_by_public_id(
        store.pool(),
        "any-plugin",
        "secure-key",
        old.public_id.as_deref().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(by_public.unwrap().1.id, rotated[0].id);
}

async fn invoice_creation_writes_its_created_event(db: TestDb) {
    let store = db.store().await;
    let merchant_id = merchant(&store).await;
    let created = create(&store, &new_invoice(&merchant_id, Some("A-1")), None)
        .await
        .unwrap();
    assert_eq!(created.status, InvoiceStatus::Pending);
    let read = store.invoice(&created.id).await.unwrap().unwrap();
    assert_eq!(read, created, "what is read back is what was returned");
    assert_eq!(events(&store, &created.id).await, vec!["invoice.created"]);
    let mut conn = store.pool().acquire().await.unwrap();
    let found = invoices::find_by_order_id(&mut conn, "test", &merchant_id, "A-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, created.id);
    assert!(
        invoices::find_by_order_id(&mut conn, "other-plugin", &merchant_id, "A-1")
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_fiat_quote_is_stored_with_its_invoice(db: TestDb) {
    let store = db.store().await;
    let merchant_id = merchant(&store).await;
    let mut new = new_invoice(&merchant_id, Some("F-1"));
    let quote = FiatQuote {
        amount: "7.25".into(),
        currency: "CNY".into(),
        rate: "7.25".into(),
        source: "cny-feed".into(),
        quoted_at: 1_700_000_000_000,
        valid_until: 1_700_000_120_000,
    };
    new.fiat = Some(quote.clone());
    let created = create(&store, &new, None).await.unwrap();
    assert_eq!(created.fiat.as_ref(), Some(&quote));
    let read = store.invoice(&created.id).await.unwrap().unwrap();
    assert_eq!(read.fiat, Some(quote));
    assert_eq!(read, created);
}

async fn duplicate_merchant_order_id_is_refused_without_partial_write(db: TestDb) {
    let store = db.store().await;
    let merchant_id = merchant(&store).await;
    create(&store, &new_invoice(&merchant_id, Some("A-1")), None)
        .await
        .unwrap();
    let duplicate = new_invoice(&merchant_id, Some("A-1"));
    let err = create(&store, &duplicate, Some(5)).await.unwrap_err();
    assert!(
        matches!(err, InvoiceError::DuplicateOrderId(ref id) if id == "A-1"),
        "{err:?}"
    );
    let invoices: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM invoices")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(invoices, 1, "the refused invoice was not written");
    let targets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payment_targets")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(targets, 1, "the refused invoice left no reservation");
}

async fn concurrent_reservations_of_one_amount_admit_exactly_one(db: TestDb) {
    let store = db.store().await;
    let merchant_id = merchant(&store).await;
    let attempts = (0..8).map(|_| {
        let store = store.clone();
        let invoice = new_invoice(&merchant_id, None);
        tokio::spawn(async move { create(&store, &invoice, Some(1_000_001)).await })
    });
    let results = futures::future::join_all(attempts).await;
    let won = results.iter().filter(|r| matches!(r, Ok(Ok(_)))).count();
    let taken = results
        .iter()
        .filter(|r| matches!(r, Ok(Err(InvoiceError::NoFreeAmount { .. }))))
        .count();
    assert_eq!((won, taken), (1, 7), "{results:?}");
}

async fn released_reservation_can_be_taken_again(db: TestDb) {
    let store = db.store().await;
    let merchant_id = merchant(&store).await;
    let first = create(&store, &new_invoice(&merchant_id, None), Some(7))
        .await
        .unwrap();
    assert!(matches!(
        create(&store, &new_invoice(&merchant_id, None), Some(7)).await,
        Err(InvoiceError::NoFreeAmount { .. })
    ));
    InvoiceService::new(store.clone())
        .cancel(&first.id)
        .await
        .unwrap();
    create(&store, &new_invoice(&merchant_id, None), Some(7))
        .await
        .expect("the cancelled invoice released its amount");
}

async fn cancel_moves_pending_to_cancelled_once(db: TestDb) {
    let store = db.store().await;
    let merchant_id = merchant(&store).await;
    let invoice = create(&store, &new_invoice(&merchant_id, None), None)
        .await
        .unwrap();
    let service = InvoiceService::new(store.clone());
    let cancelled = service.cancel(&invoice.id).await.unwrap();
    assert_eq!(cancelled.status, InvoiceStatus::Cancelled);
    assert!(cancelled.cancelled_at.is_some());
    let again = service.cancel(&invoice.id).await.unwrap_err();
    assert!(matches!(again, InvoiceError::Illegal(_)), "{again:?}");
    assert_eq!(
        events(&store, &invoice.id).await,
        vec!["invoice.created", "invoice.cancelled"]
    );
    assert!(matches!(
        service.cancel("no-such-id").await,
        Err(InvoiceError::NotFound(_))
    ));
}

async fn settle_walks_pending_confirming_paid_and_back_on_reorg(db: TestDb) {
    let store = db.store().await;
    let merchant_id = merchant(&store).await;
    let invoice = create(&store, &new_invoice(&merchant_id, None), None)
        .await
        .unwrap();
    credit(&store, &invoice.id, "0xpay", 1_000_000, 100).await;
    let now = now_ms();
    let confirming = settle(&store, &invoice.id, 100, now).await.unwrap();
    assert_eq!(confirming.status, InvoiceStatus::Confirming);
    assert_eq!(confirming.txn_hash.as_deref(), Some("0xpay"));
    assert!(
        settle(&store, &invoice.id, 101, now).await.is_none(),
        "two confirmations of three change nothing"
    );
    let paid = settle(&store, &invoice.id, 102, now).await.unwrap();
    assert_eq!(paid.status, InvoiceStatus::Paid);
    assert!(paid.paid_at.is_some());
    assert!(
        settle(&store, &invoice.id, 103, now).await.is_none(),
        "settling again is idempotent"
    );
    // A reorg removes the paying block.
    sqlx::query("UPDATE observed_transfers SET removed = 1 WHERE invoice_id = $1")
        .bind(&invoice.id)
        .execute(store.pool())
        .await
        .unwrap();
    let reverted = settle(&store, &invoice.id, 103, now).await.unwrap();
    assert_eq!(reverted.status, InvoiceStatus::Pending);
    assert_eq!(reverted.amount_paid, Amount::ZERO);
    assert_eq!(reverted.paid_at, None);
    assert_eq!(
        events(&store, &invoice.id).await,
        vec![
            "invoice.created",
            "invoice.confirming",
            "invoice.paid",
            "invoice.reverted"
        ]
    );
}

async fn underpayment_is_flagged_and_expiry_applies(db: TestDb) {
    let store = db.store().await;
    let merchant_id = merchant(&store).await;
    let mut new = new_invoice(&merchant_id, None);
    new.expires_at = now_ms() + 60_000;
    let invoice = create(&store, &new, None).await.unwrap();
    credit(&store, &invoice.id, "0xpart", 400_000, 10).await;
    let partial = settle(&store, &invoice.id, 20, now_ms()).await.unwrap();
    assert_eq!(partial.status, InvoiceStatus::Pending);
    assert!(partial.outcome.underpaid);
    assert_eq!(partial.amount_paid, Amount::from(400_000u64));
    assert_eq!(
        events(&store, &invoice.id).await.last().map(String::as_str),
        Some("invoice.payment_detected")
    );
    // Nothing is due yet; at the deadline the scheduler expires it.
    let service = InvoiceService::new(store.clone());
    assert!(service.expire_due(now_ms(), 100).await.unwrap().is_empty());
    let expired = service.expire_due(new.expires_at + 1, 100).await.unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].status, InvoiceStatus::Expired);
    assert!(expired[0].outcome.underpaid);
    assert_eq!(
        events(&store, &invoice.id).await.last().map(String::as_str),
        Some("invoice.expired")
    );
}

async fn plugin_kv_values_expire_and_insert_if_absent_is_exclusive(db: TestDb) {
    let store = db.store().await;
    let now = now_ms();
    let quota = KvQuota::UNLIMITED;
    store
        .kv_set("p1", "k", b"v1", None, quota, now)
        .await
        .unwrap();
    store
        .kv_set("p2", "k", b"other", Some(now + 1000), quota, now)
        .await
        .unwrap();
    assert_eq!(
        store.kv_get("p1", "k", now).await.unwrap().as_deref(),
        Some(&b"v1"[..])
    );
    assert_eq!(
        store.kv_get("p2", "k", now).await.unwrap().as_deref(),
        Some(&b"other"[..]),
        "plugins have separate keys"
    );
    assert_eq!(
        store.kv_get("p2", "k", now + 1000).await.unwrap(),
        None,
        "expired values read as absent"
    );
    assert!(
        store
            .kv_insert_if_absent("p1", "salt", b"1", Some(now + 1000), quota, now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .kv_insert_if_absent("p1", "salt", b"1", Some(now + 1000), quota, now)
            .await
            .unwrap()
    );
    assert!(
        store
            .kv_insert_if_absent("p1", "salt", b"1", Some(now + 5000), quota, now + 1000)
            .await
            .unwrap(),
        "an expired key is free again"
    );
    assert!(store.kv_delete("p1", "k").await.unwrap());
    assert_eq!(store.kv_sweep(now + 10_000).await.unwrap(), 2);
    assert_eq!(store.kv_usage("p1").await.unwrap(), (0, 0));
    assert_eq!(store.kv_usage("p2").await.unwrap(), (0, 0));
}

async fn plugin_kv_quota_counts_entries_and_bytes_and_expired_entries_make_room(db: TestDb) {
    let store = db.store().await;
    let now = now_ms();
    let quota = KvQuota {
        max_entries: 3,
        max_bytes: 100,
    };
    for key in ["a", "b", "c"] {
        store
            .kv_set("p", key, &[b'x'; 10], None, quota, now)
            .await
            .unwrap();
    }
    assert_eq!(store.kv_usage("p").await.unwrap(), (3, 30));
    let full = store.kv_set("p", "d", b"x", None, quota, now).await;
    assert!(
        matches!(full, Err(KvError::QuotaExceeded { .. })),
        "{full:?}"
    );
    assert!(
        store.kv_get("p", "d", now).await.unwrap().is_none(),
        "nothing written"
    );
    // Replacing an entry adds no entry; its bytes count once.
    store
        .kv_set("p", "a", &[b'y'; 80], None, quota, now)
        .await
        .unwrap();
    assert_eq!(store.kv_usage("p").await.unwrap(), (3, 100));
    assert!(matches!(
        store.kv_set("p", "b", &[b'y'; 11], None, quota, now).await,
        Err(KvError::QuotaExceeded { .. })
    ));
    // Other plugins have their own quota.
    store
        .kv_set("q", "d", b"x", None, quota, now)
        .await
        .unwrap();
    // An entry that expired makes room for a write that needs it.
    store.kv_delete("p", "c").await.unwrap();
    store
        .kv_set("p", "c", b"", Some(now + 10), quota, now)
        .await
        .unwrap();
    assert!(matches!(
        store
            .kv_insert_if_absent("p", "d", b"x", None, quota, now)
            .await,
        Err(KvError::QuotaExceeded { .. })
    ));
    assert!(
        store
            .kv_insert_if_absent("p", "d", b"x", None, quota, now + 10)
            .await
            .unwrap()
    );
    assert_eq!(store.kv_usage("p").await.unwrap(), (3, 91));
    // Counters are entries too, and their digits are bytes.
    assert!(matches!(
        store
            .plugin_kv_increment("p", "n", 1, None, quota, now)
            .await,
        Err(KvError::QuotaExceeded { .. })
    ));
    assert_eq!(
        store
            .plugin_kv_increment("q", "n", 41, None, quota, now)
            .await
            .unwrap(),
        41
    );
    assert_eq!(store.kv_usage("q").await.unwrap(), (2, 3));
}

async fn an_operator_merchant_keeps_one_credential_set_per_plugin(db: TestDb) {
    use polypay_host::store::merchants::{find_by_public_id, live_credentials};
    let store = db.store().await;
    let merchants = Merchants::new(store.clone(), key());
    let specs = |kind: &str| {
        vec![CredentialSpec {
            kind: kind.into(),
            secret: SecretFormat::hex(16),
            public_id: Some(SecretFormat::alphanumeric("app-", 16)),
        }]
    };
    let created = merchants
        .create("Shared", None, serde_json::json!({}), &specs("api-key"))
        .await
        .unwrap();
    let id = &created.merchant.id;
    let alpha = merchants
        .rotate(id, Some("alpha"), &specs("bearer"))
        .await
        .unwrap();
    let beta = merchants
        .rotate(id, Some("beta"), &specs("bearer"))
        .await
        .unwrap();
    assert_eq!(alpha[0].plugin.as_deref(), Some("alpha"));

    // Each plugin authenticates with its own set and the operator's generic one only.
    let auth = |plugin: &'static str, kind: &'static str, secret: String| {
        let merchants = merchants.clone();
        async move {
            merchants
                .authenticate(plugin, kind, &secret)
                .await
                .unwrap()
                .map(|(_, c)| c.id)
        }
    };
    assert_eq!(
        auth("alpha", "bearer", alpha[0].secret.clone()).await,
        Some(alpha[0].id.clone())
    );
    assert_eq!(auth("beta", "bearer", alpha[0].secret.clone()).await, None);
    assert_eq!(auth("alpha", "bearer", beta[0].secret.clone()).await, None);
    let generic = created.credentials[0].secret.clone();
    assert!(auth("alpha", "api-key", generic.clone()).await.is_some());
    assert!(auth("beta", "api-key", generic).await.is_some());
    let alpha_public = alpha[0].public_id.clone().unwrap();
    assert!(
        find_by_public_id(store.pool(), "beta", "bearer", &alpha_public)
            .await
            .unwrap()
            .is_none()
    );

    // Rotating one plugin's set leaves the other's and the generic one alone.
    let again = merchants
        .rotate(id, Some("alpha"), &specs("bearer"))
        .await
        .unwrap();
    assert_eq!(again[0].public_id.as_deref(), Some(alpha_public.as_str()));
    let mut conn = store.pool().acquire().await.unwrap();
    let ids = |list: Vec<polypay_host::merchant::Credential>| -> Vec<String> {
        list.into_iter().map(|c| c.id).collect()
    };
    assert_eq!(
        ids(live_credentials(&mut conn, id, Some("alpha"))
            .await
            .unwrap()),
        vec![again[0].id.clone()]
    );
    assert_eq!(
        ids(live_credentials(&mut conn, id, Some("beta")).await.unwrap()),
        vec![beta[0].id.clone()]
    );
    assert_eq!(
        ids(live_credentials(&mut conn, id, None).await.unwrap()),
        vec![created.credentials[0].id.clone()]
    );

    // A merchant of a plugin holds that plugin's credentials only.
    let owned = merchants
        .create(
            "Own",
            Some("alpha"),
            serde_json::json!({}),
            &specs("bearer"),
        )
        .await
        .unwrap();
    assert!(matches!(
        merchants
            .rotate(&owned.merchant.id, Some("beta"), &specs("bearer"))
            .await,
        Err(polypay_host::merchant::MerchantError::OtherPlugin { .. })
    ));
}

async fn plugin_data_of_a_merchant_is_kept_per_plugin(db: TestDb) {
    use polypay_host::store::merchants::plugin_data;
    let store = db.store().await;
    let merchants = Merchants::new(store.clone(), key());
    let shared = merchants
        .create("Shared", None, serde_json::json!({ "operator": true }), &[])
        .await
        .unwrap()
        .merchant
        .id;
    store
        .plugin_update_merchant(
            &shared,
            "alpha",
            None,
            Some(&serde_json::json!({ "hook": "a" })),
        )
        .await
        .unwrap();
    let (_, beta) = store
        .plugin_update_merchant(
            &shared,
            "beta",
            None,
            Some(&serde_json::json!({ "hook": "b" })),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(beta, serde_json::json!({ "hook": "b" }));
    let mut conn = store.pool().acquire().await.unwrap();
    assert_eq!(
        plugin_data(&mut conn, &shared, "alpha").await.unwrap(),
        Some(serde_json::json!({ "hook": "a" })),
        "beta's write left alpha's data alone"
    );
    assert_eq!(
        plugin_data(&mut conn, &shared, "gamma").await.unwrap(),
        None
    );
    let own = merchants
        .create("Own", Some("alpha"), serde_json::json!({ "k": 1 }), &[])
        .await
        .unwrap()
        .merchant
        .id;
    assert_eq!(
        plugin_data(&mut conn, &own, "alpha").await.unwrap(),
        Some(serde_json::json!({ "k": 1 }))
    );
}

async fn underpayment_within_the_tolerance_pays_without_the_underpaid_flag(db: TestDb) {
    let store = db.store().await;
    let merchant_id = merchant(&store).await;
    let new = new_invoice(&merchant_id, None);
    let mut allocation = allocation(&new, None);
    allocation.tolerance = Amount::from(10_000u64);
    allocation.confirmations_required = 1;
    let invoice = InvoiceService::new(store.clone())
        .create(&new, &allocation)
        .await
        .unwrap();
    assert_eq!(invoice.tolerance, Amount::from(10_000u64));
    credit(&store, &invoice.id, "0xshort", 989_999, 10).await;
    let short = settle(&store, &invoice.id, 10, now_ms()).await.unwrap();
    assert_eq!(
        short.status,
        InvoiceStatus::Pending,
        "one base unit beyond the tolerance is not enough"
    );
    assert!(short.outcome.underpaid);
    credit(&store, &invoice.id, "0xtop", 1, 11).await;
    let paid = settle(&store, &invoice.id, 11, now_ms()).await.unwrap();
    assert_eq!(paid.status, InvoiceStatus::Paid);
    assert!(
        !paid.outcome.underpaid,
        "within the tolerance counts as full payment"
    );
}

/// SQLite commits without a WAL sync each (`synchronous = NORMAL`), on every connection:
/// the writer's and the readers'. See the store's module docs for what that keeps.
#[tokio::test]
async fn sqlite_runs_wal_with_synchronous_normal() {
    use sqlx::Row;
    let db = TestDb::sqlite().await;
    let store = db.store().await;
    let mut tx = store.begin().await.unwrap();
    let writer = sqlx::query("PRAGMA synchronous")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let reader = sqlx::query("PRAGMA synchronous")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let mode = sqlx::query("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    // 1 is NORMAL (2 would be FULL, SQLite's default).
    assert_eq!(writer.get::<i64, _>(0), 1);
    assert_eq!(reader.get::<i64, _>(0), 1);
    assert_eq!(mode.get::<String, _>(0), "wal");
}

/// Write transactions on SQLite wait for each other in the order they began, rather than
/// racing in SQLite's sleeping busy handler for the lock, and a reader is not held up by
/// a write transaction in progress.
#[tokio::test]
async fn sqlite_write_transactions_queue_in_arrival_order() {
    let db = TestDb::sqlite().await;
    let store = db.store().await;
    sqlx::query(
        "CREATE TABLE write_order (seq INTEGER PRIMARY KEY AUTOINCREMENT, writer INTEGER NOT NULL)",
    )
    .execute(store.writer())
    .await
    .unwrap();
    let first = store.begin().await.unwrap();
    let mut writers = Vec::new();
    for i in 0..8i64 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            sqlx::query("INSERT INTO write_order (writer) VALUES ($1)")
                .bind(i)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }));
        // Let writer `i` start waiting before the next one arrives.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Reads go on meanwhile.
    store.ping().await.unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM write_order")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(seen, 0);
    first.commit().await.unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let order: Vec<i64> = sqlx::query_scalar("SELECT writer FROM write_order ORDER BY seq")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(order, (0..8).collect::<Vec<_>>());
}
