//! The store suite: the same tests on SQLite and on PostgreSQL, each on a fresh database.

mod common;

use common::db::TestDb;
use polypay_host::invoice::{
    Allocation, Amount, ChainView, Invoice, InvoiceError, InvoiceService, InvoiceStatus,
    MatchStrategy, NewInvoice,
};
use polypay_host::merchant::{CredentialSpec, MasterKey, Merchants, SecretFormat};
use polypay_host::store::invoices;
use polypay_host::store::{Store, now_ms};

on_both_backends!(
    migrations_apply_once_and_leave_nothing_pending,
    merchant_secret_authenticates_and_wrong_secret_does_not,
    rotation_revokes_old_secrets_and_keeps_public_ids,
    invoice_creation_writes_its_created_event,
    duplicate_merchant_order_id_is_refused_without_partial_write,
    concurrent_reservations_of_one_amount_admit_exactly_one,
    released_reservation_can_be_taken_again,
    cancel_moves_pending_to_cancelled_once,
    settle_walks_pending_confirming_paid_and_back_on_reorg,
    underpayment_is_flagged_and_expiry_applies,
    underpayment_within_the_tolerance_pays_without_the_underpaid_flag,
    plugin_kv_values_expire_and_insert_if_absent_is_exclusive,
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
        .authenticate("api-key", secret)
        .await
        .unwrap()
        .expect("authenticates");
    assert_eq!(found.id, created.merchant.id);
    assert_eq!(credential.kind, "api-key");
    assert!(
        merchants
            .authenticate("api-key", "not-the-secret")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        merchants
            .authenticate("bearer", secret)
            .await
            .unwrap()
            .is_none(),
        "the kind is part of the lookup"
    );
    // Another master key cannot find it either.
    let other = Merchants::new(store.clone(), MasterKey::from_bytes(&[1; 32]));
    assert!(
        other
            .authenticate("api-key", secret)
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
        .rotate(&created.merchant.id, &specs)
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
            .authenticate("secure-key", &old.secret)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        merchants
            .authenticate("secure-key", &rotated[0].secret)
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
    store.kv_set("p1", "k", b"v1", None).await.unwrap();
    store
        .kv_set("p2", "k", b"other", Some(now + 1000))
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
            .kv_insert_if_absent("p1", "salt", b"1", Some(now + 1000), now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .kv_insert_if_absent("p1", "salt", b"1", Some(now + 1000), now)
            .await
            .unwrap()
    );
    assert!(
        store
            .kv_insert_if_absent("p1", "salt", b"1", Some(now + 5000), now + 1000)
            .await
            .unwrap(),
        "an expired key is free again"
    );
    assert!(store.kv_delete("p1", "k").await.unwrap());
    assert_eq!(store.kv_sweep(now + 10_000).await.unwrap(), 2);
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
