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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_plugin_renders_signs_and_judges_its_callbacks() {
    let db = TestDb::sqlite().await;
    let store = db.store().await;
    let merchants = Merchants::new(store.clone(), MasterKey::from_bytes(&[9; 32]));
    let created = merchants
        .create(
            "Echo shop",
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
    let merchant = created.merchant.id.clone();
    let bearer = created.credentials[0].secret.clone();
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
