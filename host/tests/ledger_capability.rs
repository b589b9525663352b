//! The WIT `ledger` capability through real components over HTTP: one plugin's users,
//! balances and orders are invisible to another plugin, which cannot pay, read or
//! order against them.

mod common;

use common::plugins::TestApp;
use polypay_host::invoice::Amount;
use polypay_host::ledger::Ledger;
use polypay_host::plugin::PluginConfig;
use polypay_plugin_artifacts::TEST_ECHO;
use serde_json::{Value, json};

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app.http.request(method, app.url(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request completes");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_cannot_reach_another_plugins_ledger() {
    let app = TestApp::init()
        .with_storage()
        .await
        .with_plugin(PluginConfig::new("victim", TEST_ECHO).with_prefix("/v"))
        .with_plugin(PluginConfig::new("thief", TEST_ECHO).with_prefix("/t"))
        .start()
        .await;
    use reqwest::Method;
    let (_, payer) = call(&app, Method::POST, "/v/echo/ledger/users", None).await;
    let (_, payee) = call(&app, Method::POST, "/v/echo/ledger/users", None).await;
    let (payer, payee) = (payer["id"].as_str().unwrap(), payee["id"].as_str().unwrap());
    Ledger::new(app.storage().store.clone())
        .adjust(
            "victim",
            payer.parse().unwrap(),
            "ethereum",
            "USDT",
            Amount::from(5_000_000u64),
            true,
        )
        .await
        .unwrap();
    let order =
        json!({ "payer": payer, "payee": payee, "client_order_id": "V-1", "amount": "1.5" });
    let (status, created) = call(
        &app,
        Method::POST,
        "/v/echo/ledger/orders",
        Some(order.clone()),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let id = created["id"].as_str().unwrap();

    // The thief sees nothing of it and can move nothing.
    for (method, path) in [
        (Method::GET, format!("/t/echo/ledger/orders/{id}")),
        (Method::POST, format!("/t/echo/ledger/orders/{id}/pay")),
        (
            Method::GET,
            format!("/t/echo/ledger/users/{payer}/balances"),
        ),
    ] {
        let (status, body) = call(&app, method, &path, None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("not-found")),
            "{path}"
        );
    }
    let (_, thief) = call(&app, Method::POST, "/t/echo/ledger/users", None).await;
    let stolen =
        json!({ "payer": payer, "payee": thief["id"], "client_order_id": "T-1", "amount": "1" });
    let (status, _) = call(&app, Method::POST, "/t/echo/ledger/orders", Some(stolen)).await;
    assert_eq!(status, 404, "another plugin's payer is not found");

    // Its owner pays it; an over-precise amount is the dialect's `invalid`.
    let (status, paid) = call(
        &app,
        Method::POST,
        &format!("/v/echo/ledger/orders/{id}/pay"),
        None,
    )
    .await;
    assert_eq!(
        (status, paid["status"].as_str()),
        (200, Some("completed")),
        "{paid}"
    );
    assert_eq!(paid["paid"], json!(["1.5"]));
    let (_, balances) = call(
        &app,
        Method::GET,
        &format!("/v/echo/ledger/users/{payer}/balances"),
        None,
    )
    .await;
    assert_eq!(balances["balances"][0]["available"], "3.5");
    let precise =
        json!({ "payer": payer, "payee": payee, "client_order_id": "V-2", "amount": "0.0000001" });
    let (status, body) = call(&app, Method::POST, "/v/echo/ledger/orders", Some(precise)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid")),
        "{body}"
    );
}

/// The external-chain key (m/44'/60'/0'/0) of the development mnemonic "test test … junk":
/// its children are anvil's well-known accounts.
const DEV_XPUB: &str = "xpub6DyUKdwoLWmUJ4Tn9Bbsdtx7B5Ws18mEN19e5HT52ikE53FiUheSQXrZUNPovqfyKmw4579A1Mm3GXXKM39N64uooBfJ4tNAzFsEbodRTx4";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_deposit_address_is_derived_once_and_only_its_plugin_sees_it() {
    let app = TestApp::init()
        .with_storage()
        .await
        .with_plugin(
            PluginConfig::new("owner", TEST_ECHO)
                .with_prefix("/o")
                .with_deposit_xpub("ethereum", DEV_XPUB),
        )
        .with_plugin(
            PluginConfig::new("other", TEST_ECHO)
                .with_prefix("/x")
                .with_deposit_xpub("ethereum", DEV_XPUB),
        )
        .with_plugin(PluginConfig::new("keyless", TEST_ECHO).with_prefix("/k"))
        .start()
        .await;
    use reqwest::Method;
    let (_, alice) = call(&app, Method::POST, "/o/echo/ledger/users", None).await;
    let (_, bob) = call(&app, Method::POST, "/o/echo/ledger/users", None).await;
    let (alice, bob) = (alice["id"].as_str().unwrap(), bob["id"].as_str().unwrap());
    let address = |prefix: &'static str, user: String| {
        let app = &app;
        async move {
            call(
                app,
                Method::GET,
                &format!("{prefix}/echo/ledger/users/{user}/deposit-address/ethereum"),
                None,
            )
            .await
        }
    };

    let (status, first) = address("/o", alice.to_owned()).await;
    assert_eq!(status, 200, "{first}");
    let first = first["address"].as_str().unwrap().to_owned();
    // A child of the configured key: one of the mnemonic's first accounts, checksummed.
    let children: Vec<String> = (0..4)
        .map(|i| {
            let key = polypay_host::matcher::parse_xpub(DEV_XPUB).unwrap();
            polypay_host::chain::evm::address_text(
                polypay_host::matcher::derive_evm_address(&key, i).unwrap(),
            )
        })
        .collect();
    assert!(
        children.contains(&first),
        "{first} is not derived from the key"
    );
    let (_, again) = address("/o", alice.to_owned()).await;
    assert_eq!(
        again["address"],
        first.as_str(),
        "the same address every time"
    );
    let (_, other_user) = address("/o", bob.to_owned()).await;
    let other_user = other_user["address"].as_str().unwrap();
    assert!(children.contains(&other_user.to_owned()));
    assert_ne!(other_user, first, "each user has an address of their own");

    // Another plugin, even with the same key, cannot see or derive for the owner's user.
    let (status, body) = address("/x", alice.to_owned()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("not-found")),
        "{body}"
    );
    // A plugin without a key, or a chain without one, has no deposits.
    let (_, kuser) = call(&app, Method::POST, "/k/echo/ledger/users", None).await;
    let kuser = kuser["id"].as_str().unwrap().to_owned();
    let (status, body) = address("/k", kuser).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("unsupported")),
        "{body}"
    );
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM ledger_deposit_addresses")
        .fetch_one(app.storage().store.pool())
        .await
        .unwrap();
    assert_eq!(stored, 2, "one row per (plugin, user, chain)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extended_private_deposit_key_is_refused_at_start_up() {
    // BIP32 test vector 1, m/0H/1: the private form of a key.
    let xprv = "xprv9wTYmMFdV23N2TdNG573QoEsfRrWKQgWeibmLntzniatZvR9BmLnvSxqu53Kw1UmYPxLgboyZQaXwTCg8MSY3H2EU4pWcQDnRnrVA1xe8fs";
    let refused = TestApp::init()
        .with_storage()
        .await
        .with_plugin(PluginConfig::new("owner", TEST_ECHO).with_deposit_xpub("ethereum", xprv))
        .try_start()
        .await;
    let error = refused.err().expect("refused").to_string();
    assert!(error.contains("deposit_xpubs.ethereum"), "{error}");
    assert!(error.contains("private key"), "{error}");
}
