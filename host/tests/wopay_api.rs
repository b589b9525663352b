//! Conformance of the `wopay` plugin with the WoPay document (seeds/003_wopay.md): every
//! request/response example replayed against the real server over HTTP, compared field by
//! field in shape and type; the envelope on every answer; every bad input answered with
//! the envelope's error and no row written; 401/403/404; key regeneration; rate limits;
//! and, on a local anvil chain, USDT and ETH payments to their derived addresses going
//! `pending → confirmed → completed` with signed callbacks that the seed's own
//! `verifyWebhookSignature` accepts under node.
//!
//! The server is the real `polypay` binary following a local anvil chain.

mod common;
mod webhook_support;
mod wopay_support;

use std::time::Duration;

use common::anvil::{CHAIN_ID, TestChain, eth, usdt};
use common::shape::assert_same_shape;
use reqwest::Client;
use serde_json::{Value, json};
use webhook_support::{Receiver, Reply, eventually};
use wopay_support::*;

fn seed_register_response() -> Value {
    json!({
        "merchant_id": "123e4567-e89b-12d3-a456-426614174000",
        "name": "My Store",
        "email": "store@example.com",
        "api_key": "wopay_live_1234567890abcdef",
        "api_secret": "wopay_secret_abcdef1234567890",
        "created_at": "2024-01-01T00:00:00Z"
    })
}

fn seed_merchant_response() -> Value {
    json!({
        "id": "123e4567-e89b-12d3-a456-426614174000",
        "name": "My Store",
        "email": "store@example.com",
        "webhook_url": "https://mystore.com/webhook",
        "status": "active",
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z"
    })
}

fn seed_regenerate_response() -> Value {
    json!({
        "api_key": "wopay_live_new1234567890abcdef",
        "api_secret": "wopay_secret_newabcdef1234567890",
        "generated_at": "2024-01-01T00:00:00Z"
    })
}

fn seed_merchant_stats_response() -> Value {
    json!({
        "total_payments": 150,
        "completed_payments": 142,
        "pending_payments": 5,
        "failed_payments": 3,
        "total_volume": "1250.50",
        "success_rate": 94.67
    })
}

fn seed_create_payment_response() -> Value {
    json!({
        "payment_id": "456e7890-e89b-12d3-a456-426614174000",
        "payment_address": "0x1234567890abcdef1234567890abcdef12345678",
        "amount": "99.99",
        "currency": "USDT",
        "expires_at": "2024-01-01T01:00:00Z",
        "qr_code": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA...",
        "payment_url": "ethereum:0x1234567890abcdef1234567890abcdef12345678@1/transfer?address=0x1234567890abcdef1234567890abcdef12345678&uint256=99990000"
    })
}

fn seed_payment_response() -> Value {
    json!({
        "payment_id": "456e7890-e89b-12d3-a456-426614174000",
        "order_id": "ORDER_20240101_001",
        "amount": "99.99",
        "currency": "USDT",
        "payment_address": "0x1234567890abcdef1234567890abcdef12345678",
        "status": "completed",
        "transaction_hash": "0xabcdef1234567890abcdef1234567890abcdef1234567890abcdef1234567890",
        "confirmations": 15,
        "expires_at": "2024-01-01T01:00:00Z",
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:05:00Z"
    })
}

fn seed_list_item() -> Value {
    json!({
        "payment_id": "456e7890-e89b-12d3-a456-426614174000",
        "order_id": "ORDER_20240101_001",
        "amount": "99.99",
        "currency": "USDT",
        "status": "completed",
        "created_at": "2024-01-01T00:00:00Z"
    })
}

fn seed_webhook_stats_response() -> Value {
    json!({
        "total_webhooks": 500,
        "successful_webhooks": 485,
        "failed_webhooks": 10,
        "pending_webhooks": 5,
        "success_rate": 97.0,
        "average_attempts": 1.2
    })
}

fn seed_health_response() -> Value {
    json!({
        "status": "healthy",
        "version": "1.0.0",
        "database": "connected",
        "blockchain": "connected",
        "timestamp": "2024-01-01T00:00:00Z"
    })
}

fn seed_network_status() -> Value {
    json!({
        "chain_id": 1,
        "block_number": 18500000,
        "gas_price": 25000000000u64,
        "is_syncing": false,
        "confirmation_blocks": 12
    })
}

/// Settings for tests that send many requests with one key in a moment.
const UNTHROTTLED: &str = "key_requests_per_second = 1000\nwebhook_requests_per_second = 1000";

/// Requests with the merchant's key.
struct Api<'a> {
    server: &'a WoPayServer,
    http: Client,
}

impl Api<'_> {
    fn get(&self, path: &str, key: &str) -> reqwest::RequestBuilder {
        self.http
            .get(self.server.url(path))
            .header("X-API-Key", key)
    }
    fn post(&self, path: &str, key: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http
            .post(self.server.url(path))
            .header("X-API-Key", key)
            .json(body)
    }
    fn put(&self, path: &str, key: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http
            .put(self.server.url(path))
            .header("X-API-Key", key)
            .json(body)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_examples_replay_with_their_shapes_in_the_envelope() {
    let chain = TestChain::start().await;
    // The per-key limit has its own test; this one's pace must not be throttled.
    let server = WoPayServer::start(&chain, 12, UNTHROTTLED).await;
    let api = Api {
        server: &server,
        http: Client::new(),
    };

    // Registration: the seed's request verbatim; the keys in their documented forms.
    let (status, body) = call(
        api.http
            .post(server.url("/api/v1/merchants"))
            .json(&seed_register_request()),
    )
    .await;
    let registered = assert_ok((status, body), 201);
    assert_same_shape(&registered, &seed_register_response(), &[]);
    let merchant_id = registered["merchant_id"].as_str().unwrap().to_owned();
    let key = registered["api_key"].as_str().unwrap().to_owned();
    let secret = registered["api_secret"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&merchant_id).is_ok());
    assert!(
        key.starts_with("wopay_live_") && key.len() == 11 + 32,
        "{key}"
    );
    assert!(
        secret.starts_with("wopay_secret_") && secret.len() == 13 + 64,
        "{secret}"
    );
    assert_eq!(registered["name"], "My Store");
    assert_eq!(registered["email"], "store@example.com");

    // The merchant, read and updated with its own key.
    let merchant_path = format!("/api/v1/merchants/{merchant_id}");
    let merchant = assert_ok(call(api.get(&merchant_path, &key)).await, 200);
    assert_same_shape(&merchant, &seed_merchant_response(), &[]);
    assert_eq!(merchant["id"], merchant_id.as_str());
    assert_eq!(merchant["webhook_url"], "https://mystore.com/webhook");
    assert_eq!(merchant["status"], "active");
    let updated = assert_ok(
        call(api.put(
            &merchant_path,
            &key,
            &json!({ "name": "Updated Store Name", "webhook_url": "https://newdomain.com/webhook" }),
        ))
        .await,
        200,
    );
    assert_same_shape(&updated, &seed_merchant_response(), &[]);
    assert_eq!(updated["name"], "Updated Store Name");
    assert_eq!(updated["webhook_url"], "https://newdomain.com/webhook");
    assert_eq!(updated["email"], "store@example.com");

    // A payment: the seed's request verbatim.
    let created = assert_ok(
        call(api.post("/api/v1/payments", &key, &seed_payment_request())).await,
        201,
    );
    assert_same_shape(&created, &seed_create_payment_response(), &[]);
    assert_eq!(created["amount"], "99.99");
    assert_eq!(created["currency"], "USDT");
    let address = created["payment_address"].as_str().unwrap().to_owned();
    let token = chain.token.to_checksum(None);
    assert_eq!(
        created["payment_url"],
        format!("ethereum:{token}@{CHAIN_ID}/transfer?address={address}&uint256=99990000")
    );
    let qr = created["qr_code"].as_str().unwrap();
    assert!(qr.starts_with("data:image/png;base64,iVBORw0KGgo"), "{qr}");
    let payment_id = created["payment_id"].as_str().unwrap().to_owned();

    // Read back: pending, no transaction, nothing confirmed.
    let payment_path = format!("/api/v1/payments/{payment_id}");
    let payment = assert_ok(call(api.get(&payment_path, &key)).await, 200);
    assert_same_shape(&payment, &seed_payment_response(), &["transaction_hash"]);
    assert_eq!(payment["order_id"], "ORDER_20240101_001");
    assert_eq!(payment["status"], "pending");
    assert_eq!(payment["transaction_hash"], Value::Null);
    assert_eq!(payment["confirmations"], 0);
    assert_eq!(payment["payment_address"], address.as_str());
    assert_eq!(payment["expires_at"], created["expires_at"]);

    // An ETH payment gets its own address and a value URI in wei; the amount stays as
    // sent, trailing zero included.
    let eth_payment = assert_ok(
        call(api.post(
            "/api/v1/payments",
            &key,
            &json!({ "order_id": "ORDER_ETH", "amount": "0.50", "currency": "ETH" }),
        ))
        .await,
        201,
    );
    let eth_address = eth_payment["payment_address"].as_str().unwrap();
    assert_ne!(eth_address, address, "each payment has its own address");
    assert_eq!(eth_payment["amount"], "0.50");
    assert_eq!(
        eth_payment["payment_url"],
        format!("ethereum:{eth_address}@{CHAIN_ID}?value=500000000000000000")
    );

    // The list, with the seed's filters, and pagination over both.
    let list = assert_ok(
        call(api.get(
            "/api/v1/payments?status=pending&currency=USDT&page=1&limit=20",
            &key,
        ))
        .await,
        200,
    );
    assert_eq!(list["payments"].as_array().unwrap().len(), 1, "{list}");
    assert_same_shape(&list["payments"][0], &seed_list_item(), &[]);
    assert_eq!(list["payments"][0]["payment_id"], payment_id.as_str());
    assert_eq!(
        list["pagination"],
        json!({ "page": 1, "limit": 20, "total": 1, "pages": 1 })
    );
    let page2 = assert_ok(
        call(api.get("/api/v1/payments?page=2&limit=1", &key)).await,
        200,
    );
    assert_eq!(
        page2["pagination"],
        json!({ "page": 2, "limit": 1, "total": 2, "pages": 2 })
    );
    assert_eq!(
        page2["payments"][0]["payment_id"],
        payment_id.as_str(),
        "newest first"
    );
    let completed = assert_ok(
        call(api.get("/api/v1/payments?status=completed", &key)).await,
        200,
    );
    assert_eq!(completed["payments"], json!([]));
    assert_eq!(completed["pagination"]["total"], 0);

    // The QR code as an image.
    let png = api
        .get(&format!("{payment_path}/qrcode"), &key)
        .send()
        .await
        .unwrap();
    assert_eq!(png.status(), 200);
    assert_eq!(png.headers()["content-type"], "image/png");
    assert!(png.bytes().await.unwrap().starts_with(b"\x89PNG\r\n\x1a\n"));

    // Statistics.
    let stats = assert_ok(
        call(api.get(&format!("{merchant_path}/stats"), &key)).await,
        200,
    );
    assert_same_shape(&stats, &seed_merchant_stats_response(), &[]);
    assert_eq!(stats["total_payments"], 2);
    assert_eq!(stats["pending_payments"], 2);
    assert_eq!(stats["total_volume"], "0");
    let webhook_stats = assert_ok(
        call(api.get("/api/v1/webhooks/stats?days=30", &key)).await,
        200,
    );
    assert_same_shape(&webhook_stats, &seed_webhook_stats_response(), &[]);

    // System status: real chain facts.
    let status = assert_ok(call(api.http.get(server.url("/api/v1/status"))).await, 200);
    assert_eq!(status["database"], "connected");
    let network = eventually(
        "the listener to see the head",
        Duration::from_secs(30),
        || async {
            let network = assert_ok(
                call(api.http.get(server.url("/api/v1/network/status"))).await,
                200,
            );
            Some(network)
                .filter(|n| n[NETWORK]["block_number"].is_u64() && n[NETWORK]["gas_price"].is_u64())
        },
    )
    .await;
    assert_eq!(network.as_object().unwrap().len(), 1, "{network}");
    assert_same_shape(&network[NETWORK], &seed_network_status(), &[]);
    assert_eq!(network[NETWORK]["chain_id"], CHAIN_ID);
    assert_eq!(network[NETWORK]["confirmation_blocks"], 12);
    let health = api.http.get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let health: Value = health.json().await.unwrap();
    assert_same_shape(&health, &seed_health_response(), &[]);
    assert_eq!(health["database"], "connected");

    // Regenerated keys: the old key stops at once, the new one works.
    let renewed = assert_ok(
        call(api.post(
            &format!("{merchant_path}/regenerate-keys"),
            &key,
            &json!({}),
        ))
        .await,
        200,
    );
    assert_same_shape(&renewed, &seed_regenerate_response(), &[]);
    let new_key = renewed["api_key"].as_str().unwrap();
    assert_ne!(new_key, key);
    assert_ne!(renewed["api_secret"], secret.as_str());
    assert_error(call(api.get(&merchant_path, &key)).await, 401);
    assert_ok(call(api.get(&merchant_path, new_key)).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_answers_the_envelope_error_and_writes_nothing() {
    let chain = TestChain::start().await;
    // The per-key limit has its own test; this one's pace must not be throttled.
    let server = WoPayServer::start(&chain, 12, UNTHROTTLED).await;
    let api = Api {
        server: &server,
        http: Client::new(),
    };
    let me = server.register(&seed_register_request()).await;
    let other = server
        .register(&json!({ "name": "Other", "email": "other@example.com" }))
        .await;
    let theirs = assert_ok(
        call(api.post("/api/v1/payments", &other.api_key, &seed_payment_request())).await,
        201,
    );
    let mine = assert_ok(
        call(api.post("/api/v1/payments", &me.api_key, &seed_payment_request())).await,
        201,
    );
    let key = me.api_key.as_str();
    let before = server.rows().await;

    // (request, expected status)
    let with = |change: Value| {
        let mut body = seed_payment_request();
        for (k, v) in change.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    };
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        (
            "create without a key",
            api.http
                .post(server.url("/api/v1/payments"))
                .json(&with(json!({"order_id": "N1"}))),
            401,
        ),
        (
            "create with an unknown key",
            api.post(
                "/api/v1/payments",
                "wopay_live_00000000000000000000000000000000",
                &with(json!({"order_id": "N1"})),
            ),
            401,
        ),
        (
            "duplicate order_id",
            api.post("/api/v1/payments", key, &seed_payment_request()),
            409,
        ),
        (
            "amount as a number",
            api.post(
                "/api/v1/payments",
                key,
                &with(json!({"order_id": "N1", "amount": 99.99})),
            ),
            400,
        ),
        (
            "amount zero",
            api.post(
                "/api/v1/payments",
                key,
                &with(json!({"order_id": "N1", "amount": "0"})),
            ),
            400,
        ),
        (
            "amount negative",
            api.post(
                "/api/v1/payments",
                key,
                &with(json!({"order_id": "N1", "amount": "-1"})),
            ),
            400,
        ),
        (
            "amount with too many decimals",
            api.post(
                "/api/v1/payments",
                key,
                &with(json!({"order_id": "N1", "amount": "1.0000001"})),
            ),
            400,
        ),
        (
            "amount with an exponent",
            api.post(
                "/api/v1/payments",
                key,
                &with(json!({"order_id": "N1", "amount": "1e6"})),
            ),
            400,
        ),
        (
            "amount missing",
            api.post(
                "/api/v1/payments",
                key,
                &with(json!({"order_id": "N1", "amount": null})),
            ),
            400,
        ),
        (
            "order_id missing",
            api.post("/api/v1/payments", key, &with(json!({"order_id": null}))),
            400,
        ),
        (
            "order_id empty",
            api.post("/api/v1/payments", key, &with(json!({"order_id": ""}))),
            400,
        ),
        (
            "unsupported currency",
            api.post(
                "/api/v1/payments",
                key,
                &with(json!({"order_id": "N1", "currency": "BTC"})),
            ),
            400,
        ),
        (
            "currency missing",
            api.post(
                "/api/v1/payments",
                key,
                &with(json!({"order_id": "N1", "currency": null})),
            ),
            400,
        ),
        (
            "callback_url not a URL",
            api.post(
                "/api/v1/payments",
                key,
                &with(json!({"order_id": "N1", "callback_url": "javascript:alert(1)"})),
            ),
            400,
        ),
        (
            "expires_in negative",
            api.post(
                "/api/v1/payments",
                key,
                &with(json!({"order_id": "N1", "expires_in": -1})),
            ),
            400,
        ),
        (
            "expires_in a string",
            api.post(
                "/api/v1/payments",
                key,
                &with(json!({"order_id": "N1", "expires_in": "3600"})),
            ),
            400,
        ),
        (
            "body not JSON",
            api.http
                .post(server.url("/api/v1/payments"))
                .header("X-API-Key", key)
                .header("content-type", "application/json")
                .body("{\"order_id\": "),
            400,
        ),
        (
            "body an array",
            api.post("/api/v1/payments", key, &json!([1])),
            400,
        ),
        (
            "register without email",
            api.http
                .post(server.url("/api/v1/merchants"))
                .json(&json!({"name": "X"})),
            400,
        ),
        (
            "register with a bad email",
            api.http
                .post(server.url("/api/v1/merchants"))
                .json(&json!({"name": "X", "email": "not-an-email"})),
            400,
        ),
        (
            "register with a bad webhook_url",
            api.http
                .post(server.url("/api/v1/merchants"))
                .json(&json!({"name": "X", "email": "x@example.com", "webhook_url": "ftp://x"})),
            400,
        ),
        (
            "register with an empty name",
            api.http
                .post(server.url("/api/v1/merchants"))
                .json(&json!({"name": " ", "email": "x@example.com"})),
            400,
        ),
        (
            "update with a bad email",
            api.put(
                &format!("/api/v1/merchants/{}", me.merchant_id),
                key,
                &json!({"email": "nope"}),
            ),
            400,
        ),
        (
            "update with nothing",
            api.put(
                &format!("/api/v1/merchants/{}", me.merchant_id),
                key,
                &json!({}),
            ),
            400,
        ),
        (
            "another merchant's record",
            api.get(&format!("/api/v1/merchants/{}", other.merchant_id), key),
            403,
        ),
        (
            "another merchant's update",
            api.put(
                &format!("/api/v1/merchants/{}", other.merchant_id),
                key,
                &json!({"name": "Mine"}),
            ),
            403,
        ),
        (
            "another merchant's keys",
            api.post(
                &format!("/api/v1/merchants/{}/regenerate-keys", other.merchant_id),
                key,
                &json!({}),
            ),
            403,
        ),
        (
            "another merchant's stats",
            api.get(
                &format!("/api/v1/merchants/{}/stats", other.merchant_id),
                key,
            ),
            403,
        ),
        (
            "merchant without a key",
            api.http
                .get(server.url(&format!("/api/v1/merchants/{}", me.merchant_id))),
            401,
        ),
        (
            "another merchant's payment",
            api.get(
                &format!(
                    "/api/v1/payments/{}",
                    theirs["payment_id"].as_str().unwrap()
                ),
                key,
            ),
            404,
        ),
        (
            "another merchant's QR code",
            api.get(
                &format!(
                    "/api/v1/payments/{}/qrcode",
                    theirs["payment_id"].as_str().unwrap()
                ),
                key,
            ),
            404,
        ),
        (
            "an unknown payment",
            api.get("/api/v1/payments/13af45c9-17ed-4682-b75b-8b8d252cca69", key),
            404,
        ),
        (
            "a payment id that is no id",
            api.get("/api/v1/payments/..%2F..%2Fetc", key),
            404,
        ),
        (
            "list with a bad status",
            api.get("/api/v1/payments?status=paid", key),
            400,
        ),
        (
            "list with limit 0",
            api.get("/api/v1/payments?limit=0", key),
            400,
        ),
        (
            "list with page -1",
            api.get("/api/v1/payments?page=-1", key),
            400,
        ),
        (
            "webhook stats with days 0",
            api.get("/api/v1/webhooks/stats?days=0", key),
            400,
        ),
        (
            "webhook test with test_data not an object",
            api.post("/api/v1/webhooks/test", key, &json!({"test_data": "x"})),
            400,
        ),
    ];
    for (what, request, status) in cases {
        let error = assert_error(call(request).await, status);
        assert_eq!(server.rows().await, before, "{what} ({error}) wrote a row");
    }
    // My own payment is still readable, with my key only.
    assert_ok(
        call(api.get(
            &format!("/api/v1/payments/{}", mine["payment_id"].as_str().unwrap()),
            key,
        ))
        .await,
        200,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_registration_and_rate_limits_answer_in_the_envelope() {
    let chain = TestChain::start().await;
    let server = WoPayServer::start(
        &chain,
        12,
        "registration_open = false\nip_requests_per_hour = 3\nkey_requests_per_second = 2",
    )
    .await;
    let http = Client::new();
    let closed = assert_error(
        call(
            http.post(server.url("/api/v1/merchants"))
                .json(&seed_register_request()),
        )
        .await,
        403,
    );
    assert!(closed.contains("closed"), "{closed}");
    // Two more requests from this IP are allowed this hour; the fourth is refused.
    for _ in 0..2 {
        assert_ok(call(http.get(server.url("/api/v1/status"))).await, 200);
    }
    let refused = http.get(server.url("/api/v1/status")).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0 && retry_after <= 3600, "{retry_after}");
    assert_error((429, refused.json().await.unwrap()), 429);
    // `/health` is for load balancers: not limited (200 once the listener has seen the
    // chain's head, 503 before).
    let health = http.get(server.url("/health")).send().await.unwrap();
    assert!(
        [200, 503].contains(&health.status().as_u16()),
        "{}",
        health.status()
    );
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["database"], "connected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_per_key_limit_is_refused_with_retry_after() {
    let chain = TestChain::start().await;
    let server = WoPayServer::start(&chain, 12, "key_requests_per_second = 2").await;
    let me = server.register(&seed_register_request()).await;
    let http = Client::new();
    // Twenty requests at once with a burst of two: most are refused.
    let requests = (0..20).map(|_| {
        http.get(server.url("/api/v1/payments"))
            .header("X-API-Key", &me.api_key)
            .send()
    });
    let responses = futures::future::join_all(requests).await;
    let refused: Vec<_> = responses
        .into_iter()
        .map(|r| r.unwrap())
        .filter(|r| r.status() == 429)
        .collect();
    assert!(!refused.is_empty(), "no request was refused");
    for r in refused {
        let secs: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(secs, 1);
    }

    // The webhook endpoints have their own, tighter limit (5/s in the seed; 1 here).
    let server = WoPayServer::start(
        &chain,
        12,
        "key_requests_per_second = 1000\nwebhook_requests_per_second = 1",
    )
    .await;
    let me = server.register(&seed_register_request()).await;
    let stats = |path: &'static str| {
        http.get(server.url(path))
            .header("X-API-Key", &me.api_key)
            .send()
    };
    let responses =
        futures::future::join_all((0..10).map(|_| stats("/api/v1/webhooks/stats"))).await;
    assert!(
        responses
            .iter()
            .any(|r| r.as_ref().unwrap().status() == 429),
        "the webhook endpoints were not limited"
    );
    let responses = futures::future::join_all((0..10).map(|_| stats("/api/v1/payments"))).await;
    assert!(
        responses
            .iter()
            .all(|r| r.as_ref().unwrap().status() == 200),
        "the other endpoints keep the per-key limit"
    );
}

/// Reads a payment until `want` holds; returns it.
async fn wait_for_payment(
    api: &Api<'_>,
    key: &str,
    id: &str,
    what: &str,
    want: impl Fn(&Value) -> bool,
) -> Value {
    eventually(what, Duration::from_secs(60), || async {
        let payment = assert_ok(
            call(api.get(&format!("/api/v1/payments/{id}"), key)).await,
            200,
        );
        Some(payment).filter(|p| want(p))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usdt_and_eth_payments_to_derived_addresses_complete_with_signed_callbacks() {
    let chain = TestChain::start().await;
    let server = WoPayServer::start(
        &chain,
        3,
        &format!("{UNTHROTTLED}\nretry_delays_secs = [1, 1, 1, 1, 1]"),
    )
    .await;
    let api = Api {
        server: &server,
        http: Client::new(),
    };
    // The merchant's endpoint refuses the first delivery it gets (500), accepts the rest.
    let receiver = Receiver::start(|_, n| Reply::Status(if n == 0 { 500 } else { 204 })).await;
    let me = server
        .register(&json!({
            "name": "My Store", "email": "store@example.com",
            "webhook_url": receiver.url("/webhook")
        }))
        .await;
    let key = me.api_key.clone();
    let payer = chain.account(1);

    let usdt_payment = assert_ok(
        call(api.post(
            "/api/v1/payments",
            &key,
            &json!({ "order_id": "ORDER_USDT", "amount": "99.99", "currency": "USDT",
                     "callback_url": receiver.url("/payment-callback") }),
        ))
        .await,
        201,
    );
    let eth_payment = assert_ok(
        call(api.post(
            "/api/v1/payments",
            &key,
            &json!({ "order_id": "ORDER_ETH", "amount": "0.25", "currency": "ETH" }),
        ))
        .await,
        201,
    );
    let usdt_id = usdt_payment["payment_id"].as_str().unwrap().to_owned();
    let eth_id = eth_payment["payment_id"].as_str().unwrap().to_owned();
    let usdt_to = usdt_payment["payment_address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let eth_to = eth_payment["payment_address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // Pay each to its own derived address, in one block each.
    chain.mint(payer, usdt("99.99")).await;
    let usdt_tx = chain.transfer_token(payer, usdt_to, usdt("99.99")).await;
    let eth_tx = chain.anvil.send_eth(payer, eth_to, eth("0.25")).await;

    // Seen, fewer confirmations than required: confirmed, counting up block by block.
    let mut seen = Vec::new();
    for (id, tx) in [(&usdt_id, &usdt_tx), (&eth_id, &eth_tx)] {
        let confirmed =
            wait_for_payment(&api, &key, id, "confirmed", |p| p["status"] == "confirmed").await;
        assert_eq!(confirmed["transaction_hash"], format!("{:#x}", tx.tx_hash));
        seen.push(confirmed["confirmations"].as_u64().unwrap());
    }
    assert!(seen.iter().all(|c| (1..3).contains(c)), "{seen:?}");
    let before = seen[0];
    chain.anvil.mine(1).await;
    let later = wait_for_payment(&api, &key, &usdt_id, "one more confirmation", |p| {
        p["confirmations"].as_u64().unwrap() > before || p["status"] == "completed"
    })
    .await;
    assert!(later["confirmations"].as_u64().unwrap() > before, "{later}");
    chain.anvil.mine(2).await;
    for id in [&usdt_id, &eth_id] {
        let completed =
            wait_for_payment(&api, &key, id, "completed", |p| p["status"] == "completed").await;
        assert!(
            completed["confirmations"].as_u64().unwrap() >= 3,
            "{completed}"
        );
    }

    // Callbacks: confirmed and completed for each payment, the first refused once and
    // retried with the same webhook id; every one verified by the seed's JavaScript.
    let callbacks = eventually("the callbacks", Duration::from_secs(60), || async {
        let got = receiver.received();
        Some(got).filter(|g| g.len() >= 5)
    })
    .await;
    for callback in &callbacks {
        let signature = callback.header("x-wopay-signature").expect("signed");
        assert!(
            node_verifies(&callback.body, signature, &me.api_secret),
            "the seed's verifyWebhookSignature refused {signature}"
        );
        assert!(!node_verifies(
            &callback.body,
            signature,
            "wopay_secret_wrong"
        ));
        let id = callback.header("x-wopay-webhook-id").expect("webhook id");
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        let body = callback.json();
        assert_eq!(body["event_type"], "payment_status_changed");
        assert_rfc3339(body["timestamp"].as_str().unwrap());
    }
    // One event was refused once: its retry carries the same webhook id and body.
    let mut by_id: std::collections::BTreeMap<String, Vec<&webhook_support::Received>> =
        Default::default();
    for c in &callbacks {
        by_id
            .entry(c.header("x-wopay-webhook-id").unwrap().to_owned())
            .or_default()
            .push(c);
    }
    assert_eq!(by_id.len(), 4, "one webhook id per event");
    let retried: Vec<_> = by_id.values().filter(|v| v.len() > 1).collect();
    assert_eq!(retried.len(), 1, "exactly the refused event was retried");
    assert_eq!(retried[0].len(), 2);
    assert_eq!(retried[0][0].body, retried[0][1].body);
    let events: Vec<(String, String, String)> = by_id
        .values()
        .map(|attempts| {
            let b = attempts[0].json();
            (
                attempts[0].path.clone(),
                b["data"]["payment_id"].as_str().unwrap().to_owned(),
                b["data"]["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (path, id, status) in [
        ("/payment-callback", &usdt_id, "confirmed"),
        ("/payment-callback", &usdt_id, "completed"),
        ("/webhook", &eth_id, "confirmed"),
        ("/webhook", &eth_id, "completed"),
    ] {
        assert!(
            events.contains(&(path.to_owned(), id.clone(), status.to_owned())),
            "no {status} callback of {id} to {path}: {events:?}"
        );
    }
    let completed_usdt = callbacks
        .iter()
        .map(|c| c.json())
        .find(|b| b["data"]["payment_id"] == usdt_id.as_str() && b["data"]["status"] == "completed")
        .unwrap();
    assert_eq!(
        completed_usdt["data"],
        json!({
            "payment_id": usdt_id, "order_id": "ORDER_USDT", "status": "completed",
            "amount": "99.99", "currency": "USDT",
            "transaction_hash": format!("{:#x}", usdt_tx.tx_hash),
            "confirmations": completed_usdt["data"]["confirmations"],
        })
    );
    let stats = eventually("the stats to settle", Duration::from_secs(30), || async {
        let stats = assert_ok(call(api.get("/api/v1/webhooks/stats", &key)).await, 200);
        Some(stats).filter(|s| s["pending_webhooks"] == 0)
    })
    .await;
    assert_eq!(stats["total_webhooks"], 4);
    assert_eq!(stats["successful_webhooks"], 4);
    assert_eq!(stats["failed_webhooks"], 0);
    assert_eq!(stats["success_rate"], 100.0);
    assert_eq!(
        stats["average_attempts"], 1.25,
        "five attempts for four callbacks"
    );

    let merchant_stats = assert_ok(
        call(api.get(&format!("/api/v1/merchants/{}/stats", me.merchant_id), &key)).await,
        200,
    );
    assert_eq!(merchant_stats["completed_payments"], 2);
    assert_eq!(merchant_stats["total_volume"], "99.99");
    assert_eq!(merchant_stats["success_rate"], 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_regenerating_the_keys_is_signed_with_the_new_secret() {
    let chain = TestChain::start().await;
    let server = WoPayServer::start(
        &chain,
        1,
        &format!("{UNTHROTTLED}\nretry_delays_secs = [2, 2, 2, 2, 2]"),
    )
    .await;
    let api = Api {
        server: &server,
        http: Client::new(),
    };
    // Refuses everything until told otherwise.
    let receiver = Receiver::start(|_, n| Reply::Status(if n < 1 { 503 } else { 200 })).await;
    let me = server
        .register(&json!({
            "name": "My Store", "email": "store@example.com",
            "webhook_url": receiver.url("/webhook")
        }))
        .await;

    // A test delivery through the same outbox, with the seed's test request.
    let queued = assert_ok(
        call(api.post(
            "/api/v1/webhooks/test",
            &me.api_key,
            &json!({ "event_type": "payment.completed",
                     "test_data": { "message": "This is a test webhook" } }),
        ))
        .await,
        200,
    );
    let first = eventually("the first attempt", Duration::from_secs(30), || async {
        receiver.received().into_iter().next()
    })
    .await;
    let renewed = assert_ok(
        call(api.post(
            &format!("/api/v1/merchants/{}/regenerate-keys", me.merchant_id),
            &me.api_key,
            &json!({}),
        ))
        .await,
        200,
    );
    let new_secret = renewed["api_secret"].as_str().unwrap();
    let retry = eventually("the retry", Duration::from_secs(30), || async {
        receiver.received().into_iter().nth(1)
    })
    .await;

    assert_eq!(
        first.header("x-wopay-webhook-id"),
        queued["webhook_id"].as_str()
    );
    assert_eq!(
        retry.header("x-wopay-webhook-id"),
        queued["webhook_id"].as_str()
    );
    let body = retry.json();
    assert_eq!(body["event_type"], "payment.completed");
    assert_eq!(body["data"], json!({ "message": "This is a test webhook" }));
    let (old_sig, new_sig) = (
        first.header("x-wopay-signature").unwrap(),
        retry.header("x-wopay-signature").unwrap(),
    );
    assert!(node_verifies(&first.body, old_sig, &me.api_secret));
    assert!(node_verifies(&retry.body, new_sig, new_secret));
    assert!(!node_verifies(&retry.body, new_sig, &me.api_secret));
}
