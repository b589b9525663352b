//! Webhook delivery rendered by a real plugin: the test-echo component, mounted in the
//! plugin runtime, renders and signs the callback; the dispatcher sends it to a local
//! receiver under the plugin's acceptance rule and retry advice.

mod common;
mod webhook_support;

use std::sync::Arc;

use common::db::TestDb;
use hmac::{Hmac, Mac};
use polypay_host::merchant::{CredentialSpec, MasterKey, Merchants, SecretFormat};
use polypay_host::plugin::{PluginConfig, PluginRuntime, PluginServices};
use polypay_host::store::outbox::{AttemptOutcome, DeliveryState};
use polypay_plugin_artifacts::TEST_ECHO;
use webhook_support::*;

/// A merchant of the echo plugin with a bearer credential: (merchants, its id, the secret).
async fn echo_merchant(
    store: &polypay_host::store::Store,
    name: &str,
) -> (Merchants, String, String) {
    let merchants = Merchants::new(store.clone(), MasterKey::from_bytes(&[9; 32]));
    let created = merchants
        .create(
            name,
            Some(PLUGIN),
            serde_json::json!({}),
            &[CredentialSpec {
                kind: "bearer".into(),
                secret: SecretFormat::uuid(),
                public_id: None,
            }],
        )
        .await
        .unwrap();
    let bearer = created.credentials[0].secret.clone();
    (merchants, created.merchant.id, bearer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_plugin_renders_signs_and_judges_its_callbacks() {
    let db = TestDb::sqlite().await;
    let store = db.store().await;
    let (merchants, merchant, bearer) = echo_merchant(&store, "Echo shop").await;
    let services = PluginServices::new("http://127.0.0.1:1").with_storage(store.clone(), merchants);
    let runtime = PluginRuntime::load(&[PluginConfig::new(PLUGIN, TEST_ECHO)], services)
        .await
        .expect("echo plugin loads");
    // The echo dialect accepts exactly 200.
    let receiver = Receiver::start(|request, _| {
        if request.path == "/created" {
            Reply::Status(201)
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let accepted = invoice(&store, &merchant, Some(&receiver.url("/notify"))).await;
    let rejected = invoice(&store, &merchant, Some(&receiver.url("/created"))).await;
    let (accepted_event, rejected_event) = (
        events_of(&store, &accepted.id).await.remove(0),
        events_of(&store, &rejected.id).await.remove(0),
    );
    let running = Running::start(&store, fast_config(), Arc::new(runtime));

    wait_for_state(&store, accepted_event.id, DeliveryState::Delivered).await;
    let retrying = eventually(
        "the 201 to be judged not accepted",
        std::time::Duration::from_secs(20),
        || async {
            Some(delivery(&store, rejected_event.id).await)
                .filter(|d| d.attempts == 1 && d.state == DeliveryState::Pending)
        },
    )
    .await;
    running.stop().await;

    let request = receiver
        .received()
        .into_iter()
        .find(|r| r.path == "/notify")
        .expect("callback received");
    let body = request.json();
    assert_eq!(body["invoice_id"], accepted.id.as_str());
    assert_eq!(body["event_id"], accepted_event.id.to_string().as_str());
    assert_eq!(body["attempt"], 1);
    assert_eq!(body["status"], "pending");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(bearer.as_bytes()).unwrap();
    mac.update(&request.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        request.header("x-echo-signature"),
        Some(expected.as_str()),
        "signed by the plugin through the host"
    );

    let attempt = attempts(&store, rejected_event.id).await.remove(0);
    assert_eq!(
        (attempt.outcome, attempt.status_code),
        (AttemptOutcome::Rejected, Some(201))
    );
    let delay = retrying.next_attempt_at - retrying.last_attempt_at.unwrap();
    assert!(
        delay >= 10_000,
        "echo asks for 10 s after attempt 1 (the host schedule says 100 ms): {delay} ms"
    );
}

/// Ledger events (custodial orders) are rendered by the plugin's `render-ledger-webhook`,
/// authenticated as the order's merchant (the plugin signs with its credential), and
/// delivered; an order without a notify URL gets none from this plugin (skipped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_events_are_rendered_by_the_plugin_and_delivered() {
    use polypay_host::invoice::Amount;
    use polypay_host::ledger::{Ledger, NewOrder, NewOrderItem, NewUser, PayType};
    use sqlx::Row;

    let db = TestDb::sqlite().await;
    let store = db.store().await;
    let (merchants, merchant, bearer) = echo_merchant(&store, "Org").await;
    let ledger = Ledger::new(store.clone());
    let payee = ledger
        .create_user(
            PLUGIN,
            NewUser {
                merchant_id: Some(merchant.clone()),
                ..NewUser::default()
            },
        )
        .await
        .unwrap();
    let payer = ledger
        .create_user(PLUGIN, NewUser::default())
        .await
        .unwrap();
    ledger
        .adjust(
            PLUGIN,
            payer.id,
            "ethereum",
            "USDT",
            Amount::from(9_000_000u64),
            true,
        )
        .await
        .unwrap();
    let receiver = Receiver::accepting().await;
    let new_order = |client: &str, notify: Option<String>| NewOrder {
        payer_user_id: payer.id,
        payee_user_id: payee.id,
        client_order_id: client.into(),
        items: vec![NewOrderItem {
            pay_type: PayType::Pay,
            chain: "ethereum".into(),
            asset: "USDT".into(),
            decimals: 6,
            amount: "2.5".into(),
        }],
        expires_at: polypay_host::store::now_ms() + 600_000,
        notify_url: notify,
        plugin_data: None,
    };
    let notified = ledger
        .create_order(PLUGIN, new_order("N-1", Some(receiver.url("/org"))))
        .await
        .unwrap();
    ledger.pay(PLUGIN, notified.id).await.unwrap();
    let silent = ledger
        .create_order(PLUGIN, new_order("N-2", None))
        .await
        .unwrap();
    ledger.pay(PLUGIN, silent.id).await.unwrap();
    let events = sqlx::query("SELECT id, kind, payload FROM outbox_events ORDER BY id")
        .fetch_all(store.pool())
        .await
        .unwrap();
    let id_of = |kind: &str, order: i64| -> i64 {
        events
            .iter()
            .find(|r| {
                r.get::<String, _>("kind") == kind
                    && r.get::<String, _>("payload")
                        .contains(&format!("\"id\":{order}"))
            })
            .map(|r| r.get("id"))
            .unwrap_or_else(|| panic!("{kind} of {order}"))
    };
    let (paid_event, silent_event) = (
        id_of("ledger.order.paid", notified.id),
        id_of("ledger.order.paid", silent.id),
    );
    let services = PluginServices::new("http://127.0.0.1:1").with_storage(store.clone(), merchants);
    let runtime = PluginRuntime::load(&[PluginConfig::new(PLUGIN, TEST_ECHO)], services)
        .await
        .expect("echo plugin loads");
    let running = Running::start(&store, fast_config(), Arc::new(runtime));
    wait_for_state(&store, paid_event, DeliveryState::Delivered).await;
    wait_for_state(&store, silent_event, DeliveryState::Skipped).await;
    running.stop().await;

    let request = receiver
        .received()
        .into_iter()
        .find(|r| r.json()["action"] == "order-paid")
        .expect("the paid callback");
    let body = request.json();
    assert_eq!(body["order_id"], notified.id.to_string().as_str());
    assert_eq!(body["event_id"], paid_event.to_string().as_str());
    assert_eq!(
        body["moved"],
        serde_json::json!(["2.5"]),
        "formatted with the item's decimals"
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(bearer.as_bytes()).unwrap();
    mac.update(&request.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        request.header("x-echo-signature"),
        Some(expected.as_str()),
        "rendered as the order's merchant"
    );
}
