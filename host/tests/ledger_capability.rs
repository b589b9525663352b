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
