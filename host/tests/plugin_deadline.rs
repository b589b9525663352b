//! A plugin call cut off at its deadline must never leave an invoice committed while the
//! client is told the request failed (a retry would then create a duplicate).
//!
//! The test holds SQLite's write lock from its own connection while the `test-echo`
//! plugin creates an invoice:
//! - held longer than the plugin's CPU budget: time spent waiting in the host is not the
//!   plugin's, so the create waits, commits, and succeeds;
//! - held past the plugin's wall: the host answers 503 with `Retry-After` (the host was
//!   too slow, not the plugin) and the write, which gave up at the wall, left nothing.

mod common;

use common::plugins::TestApp;
use polypay_host::plugin::{Overload, PluginConfig};
use polypay_plugin_artifacts::TEST_ECHO;
use serde_json::{Value, json};
use sqlx::{Connection, SqliteConnection};
use std::sync::Arc;
use std::time::Duration;

/// A connection of the test's own holding the database's write lock until dropped or
/// committed.
async fn hold_write_lock(app: &TestApp) -> SqliteConnection {
    let mut conn = SqliteConnection::connect(&app.storage().db.url)
        .await
        .expect("connect to the test database");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut conn)
        .await
        .expect("take the write lock");
    conn
}

async fn release(mut lock: SqliteConnection) {
    sqlx::query("COMMIT").execute(&mut lock).await.unwrap();
}

/// `POST /echo/invoices` as the merchant with `token`: (status, Retry-After, body).
async fn create(app: &TestApp, token: &str, order_id: &str) -> (u16, Option<String>, Value) {
    let r = app
        .request(reqwest::Method::POST, "/echo/invoices", Some(token))
        .json(
            &json!({ "amount": "1500000", "chain": "ethereum", "asset": "USDT",
                       "order_id": order_id, "fixed_address": common::plugins::PAY_TO }),
        )
        .send()
        .await
        .expect("an answer");
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), retry_after, r.json().await.unwrap())
}

async fn invoice_ids(app: &TestApp, order_id: &str) -> Vec<String> {
    // Our own write waits for any transaction still under way, so what we read after it
    // is final.
    let tx = app.storage().store.begin().await.unwrap();
    tx.commit().await.unwrap();
    sqlx::query_scalar("SELECT id FROM invoices WHERE merchant_order_id = $1")
        .bind(order_id)
        .fetch_all(app.storage().store.pool())
        .await
        .unwrap()
}

/// `test-echo` with a 300 ms CPU budget and the given wall, on a fresh SQLite database.
async fn echo_app(wall_ms: u64) -> Arc<TestApp> {
    Arc::new(
        TestApp::init()
            .with_storage()
            .await
            .with_plugin(
                PluginConfig::new("echo", TEST_ECHO)
                    .with_deadline_ms(300)
                    .with_wall_ms(wall_ms),
            )
            .start()
            .await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_waiting_on_the_database_past_the_cpu_budget_commits_once_and_succeeds() {
    let app = echo_app(20_000).await;
    let merchant = app.register("", "Shop").await;
    let lock = hold_write_lock(&app).await;
    let creating = tokio::spawn({
        let (app, token) = (app.clone(), merchant.token.clone());
        async move { create(&app, &token, "order-1").await }
    });
    // Longer than the plugin's 300 ms CPU budget, all of it spent waiting in the host.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    release(lock).await;

    let (status, _, body) = creating.await.unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        invoice_ids(&app, "order-1").await,
        [body["id"].as_str().unwrap()]
    );
    assert_eq!(app.runtime.total_faults("echo"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_wall_the_host_answers_503_with_retry_after_and_nothing_is_committed() {
    let app = echo_app(1000).await;
    let merchant = app.register("", "Shop").await;
    let lock = hold_write_lock(&app).await;
    let creating = tokio::spawn({
        let (app, token) = (app.clone(), merchant.token.clone());
        async move { create(&app, &token, "order-2").await }
    });
    let (status, retry_after, body) = creating.await.unwrap();
    release(lock).await;

    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("5"));
    assert!(
        invoice_ids(&app, "order-2").await.is_empty(),
        "a refused request wrote nothing"
    );
    assert_eq!(app.runtime.overload_count("echo", Overload::HostSlow), 1);
    assert_eq!(
        app.runtime.total_faults("echo"),
        0,
        "not the plugin's fault"
    );

    // Once the database is free again the same request succeeds.
    let (status, _, _) = create(&app, &merchant.token, "order-2").await;
    assert_eq!(status, 201);
    assert_eq!(invoice_ids(&app, "order-2").await.len(), 1);
}
