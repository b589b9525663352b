//! Conformance of the `tron-php` plugin with its seed (seeds/004_tron_php.md), through the
//! real `polypay` binary following a simulated TRON node: every request and response
//! example replayed over HTTP and compared in shape, type and value; the CORS header on
//! every answer and the preflight; every bad input answered `{"error": …}` with nothing
//! written; and orders paid in TRX and USDT-TRC20 on the simulator going pending → paid →
//! confirmed, with the callbacks checked by a receiver that recomputes their signature.

mod common;
mod tron_php_support;
mod webhook_support;

use std::time::Duration;

use common::shape::assert_same_shape;
use reqwest::Client;
use serde_json::{Value, json};
use tron_php_support::*;
use webhook_support::{Receiver, eventually};

/// The seed's create success response example (its missing comma restored).
fn seed_create_response() -> Value {
    json!({
        "status": "success",
        "message": "支付请求已创建",
        "data": {
            "order_id": "123456789",
            "payment_token": "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6",
            "to_address": "TAbcdef123456789abcdef123456789abcdef12",
            "amount": 0.1,
            "currency": "TRX",
            "description": "商品购买",
            "status": "pending",
            "created_at": "2023-12-01 10:30:00"
        }
    })
}

/// The seed's status success response example (its stray commas removed).
fn seed_status_response() -> Value {
    json!({
        "status": "success",
        "data": {
            "order_id": "123456789",
            "transaction_hash": "0xabcdef123456789...",
            "from_address": "T123456789abcdef123456789abcdef123456789",
            "to_address": "TAbcdef123456789abcdef123456789abcdef12",
            "amount": 0.1,
            "currency": "TRX",
            "status": "paid",
            "description": "商品购买",
            "created_at": "2023-12-01 10:30:00",
            "updated_at": "2023-12-01 10:35:00"
        }
    })
}

/// The seed's callback body example.
fn seed_callback() -> Value {
    json!({
        "event": "payment_status_changed",
        "order_id": "123456789",
        "status": "paid",
        "amount": 0.1,
        "currency": "TRX",
        "transaction_hash": "0xabcdef123456789...",
        "timestamp": "2023-12-01 10:35:00",
        "signature": "签名值"
    })
}

/// A `YYYY-MM-DD HH:MM:SS` date within a day of now in the tests' time zone.
fn assert_local_datetime(text: &str) {
    let bytes = text.as_bytes();
    assert!(
        text.len() == 19
            && bytes[4] == b'-'
            && bytes[7] == b'-'
            && bytes[10] == b' '
            && bytes[13] == b':'
            && bytes[16] == b':',
        "{text} is not YYYY-MM-DD HH:MM:SS"
    );
    let day = text[..10].replace('-', "");
    let now = unix_now();
    assert!(
        [now - 86_400, now, now + 86_400]
            .iter()
            .any(|t| compact_day(*t) == day),
        "{text} is not near now in UTC+{TIME_ZONE_HOURS}"
    );
}

/// Asserts a dialect error: the status and a body that is exactly `{"error": "<text>"}`.
fn assert_error((status, body): (u16, Value), want: u16) -> String {
    assert_eq!(status, want, "{body}");
    let map = body.as_object().expect("an object");
    assert_eq!(map.len(), 1, "only `error`: {body}");
    let text = map["error"].as_str().expect("error is text");
    assert!(!text.is_empty());
    text.to_owned()
}

async fn initiate(server: &TronPhpServer, body: &Value) -> (u16, Value, String) {
    let response = Client::new()
        .post(server.url("/initiate_payment.php"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "*",
        "CORS on create"
    );
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_examples_replay_with_their_shapes_and_values() {
    let receiver = Receiver::accepting().await;
    let server = TronPhpServer::start(&receiver.url("/callback")).await;
    let http = Client::new();

    // 1. The seed's create request, with our api_key.
    let mut request = seed_request();
    request["api_key"] = json!(server.api_key);
    let (status, created, text) = initiate(&server, &request).await;
    assert_eq!(status, 200, "{created}");
    assert_same_shape(&created, &seed_create_response(), &[]);
    let data = &created["data"];
    assert_eq!(created["message"], "支付请求已创建");
    assert_eq!(data["order_id"], "123456789");
    assert_eq!(data["currency"], "TRX");
    assert_eq!(data["description"], "商品购买");
    assert_eq!(data["status"], "pending");
    assert_eq!(data["to_address"], monitoring_address().to_string());
    // The first open 0.1 TRX order pays exactly 0.1, written as the client wrote it.
    assert_eq!(amount_literal(&text), "0.1");
    let token = data["payment_token"].as_str().unwrap().to_owned();
    assert!(
        token.len() == 32
            && token
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "payment_token {token} is 32 lower-case hex digits"
    );
    assert_local_datetime(data["created_at"].as_str().unwrap());

    // 2. Its status: by order_id (GET, the seed's example), by JSON and form POST, and by
    // payment_token; all the same answer in the seed's shape.
    let by_get = call(http.get(server.url("/check_payment_status.php?order_id=123456789"))).await;
    assert_eq!(by_get.0, 200, "{}", by_get.1);
    assert_same_shape(
        &by_get.1,
        &seed_status_response(),
        &["transaction_hash", "from_address"],
    );
    let status_data = &by_get.1["data"];
    assert_eq!(status_data["status"], "pending");
    assert_eq!(status_data["transaction_hash"], Value::Null);
    assert_eq!(status_data["amount"], data["amount"]);
    assert_eq!(status_data["to_address"], data["to_address"]);
    assert_eq!(status_data["created_at"], data["created_at"]);
    assert_local_datetime(status_data["updated_at"].as_str().unwrap());
    for answer in [
        call(
            http.post(server.url("/check_payment_status.php"))
                .json(&json!({"order_id": "123456789"})),
        )
        .await,
        call(
            http.post(server.url("/check_payment_status.php"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("order_id=123456789"),
        )
        .await,
        call(http.get(server.url(&format!("/check_payment_status.php?payment_token={token}"))))
            .await,
        call(
            http.post(server.url("/check_payment_status.php"))
                .json(&json!({"payment_token": token})),
        )
        .await,
    ] {
        assert_eq!(answer, by_get);
    }

    // The order's hosted checkout page: the monitoring address, a QR payment request
    // with the exact amount, the expiry for its countdown, the live status.
    let invoice_id = format!(
        "{}-{}-{}-{}-{}",
        &token[..8],
        &token[8..12],
        &token[12..16],
        &token[16..20],
        &token[20..]
    );
    let view: Value = http
        .get(server.url(&format!("/api/checkout/{invoice_id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["chain_kind"], "tron", "{view}");
    assert_eq!(view["pay_address"], monitoring_address().to_string());
    assert_eq!(view["amount_display"], "0.1");
    assert_eq!(view["symbol"], "TRX");
    assert_eq!(
        view["payment_uri"],
        format!("tron:{}?amount=0.1", monitoring_address())
    );
    assert_eq!(view["status"], "pending");
    assert!(view["expires_at"].as_i64().unwrap() > view["server_time"].as_i64().unwrap());
    let page = http
        .get(server.url(&format!("/pay/{invoice_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);

    // 3. The JavaScript example's order: no api_key (the operator's default merchant), no
    // order_id (generated), the same amount while the first is open (made unique).
    let (status, js, text) = initiate(
        &server,
        &json!({ "amount": 0.1, "currency": "TRX", "description": "商品购买" }),
    )
    .await;
    assert_eq!(status, 200, "{js}");
    assert_eq!(amount_literal(&text), "0.100001");
    let generated = js["data"]["order_id"].as_str().unwrap();
    assert!(
        generated.len() == 9 && generated.bytes().all(|b| b.is_ascii_digit()),
        "generated order id {generated}: 6 digits of the Unix time and 3 random ones"
    );
    let time_digits = format!("{:06}", unix_now() % 1_000_000);
    assert!(
        (generated[..6].parse::<i64>().unwrap() - time_digits.parse::<i64>().unwrap()).abs() < 120,
        "{generated} starts with the last 6 digits of the Unix time ({time_digits})"
    );

    // 4. The PHP example's order: `'ORD-' . time()`, no api_key. USDT amounts are unique
    // on their own: 0.1 USDT is free.
    let php_order = format!("ORD-{}", unix_now());
    let (status, php, text) = initiate(
        &server,
        &json!({ "amount": 0.1, "currency": "USDT", "order_id": php_order, "description": "商品购买" }),
    )
    .await;
    assert_eq!(status, 200, "{php}");
    assert_eq!(php["data"]["order_id"], php_order.as_str());
    assert_eq!(amount_literal(&text), "0.1");

    // 5. The seed's order id again, by another merchant: taken over the whole dialect.
    let (status, duplicate, _) = initiate(
        &server,
        &json!({ "amount": 5, "currency": "TRX", "order_id": "123456789" }),
    )
    .await;
    assert_error((status, duplicate), 409);
}

/// A valid create body padded to exactly 1 MiB, the host's body cap: it reaches the
/// plugin, whose own cap refuses it.
fn exactly_one_mib() -> String {
    let (head, tail) = (
        r#"{"amount": 1, "currency": "TRX", "description": ""#,
        r#""}"#,
    );
    let body = format!(
        "{head}{}{tail}",
        "x".repeat(1024 * 1024 - head.len() - tail.len())
    );
    assert_eq!(body.len(), 1024 * 1024);
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_dialects_error_and_writes_nothing() {
    let receiver = Receiver::accepting().await;
    let server = TronPhpServer::start(&receiver.url("/callback")).await;
    let http = Client::new();
    let (status, _, _) = initiate(
        &server,
        &json!({ "amount": 1, "currency": "TRX", "order_id": "taken", "api_key": server.api_key }),
    )
    .await;
    assert_eq!(status, 200);
    let before = server.row_counts().await;

    let key = server.api_key.clone();
    let create = |body: &str| {
        http.post(server.url("/initiate_payment.php"))
            .header("content-type", "application/json")
            .body(body.to_owned())
    };
    let with_amount =
        |amount: &str| format!(r#"{{"amount": {amount}, "currency": "TRX", "api_key": "{key}"}}"#);
    let cases: Vec<(&str, reqwest::RequestBuilder, u16)> = vec![
        ("amount 0", create(&with_amount("0")), 400),
        ("amount 0.0", create(&with_amount("0.0")), 400),
        ("negative amount", create(&with_amount("-1")), 400),
        ("amount as a string", create(&with_amount("\"0.1\"")), 400),
        ("7 decimals", create(&with_amount("0.1234567")), 400),
        ("exponent", create(&with_amount("1e-7")), 400),
        ("NaN", create(&with_amount("NaN")), 400),
        ("\"NaN\"", create(&with_amount("\"NaN\"")), 400),
        ("Infinity", create(&with_amount("Infinity")), 400),
        ("amount null", create(&with_amount("null")), 400),
        (
            "amount beyond 256 bits",
            create(&with_amount(&"9".repeat(90))),
            400,
        ),
        ("missing amount", create(r#"{"currency": "TRX"}"#), 400),
        (
            "unknown currency",
            create(r#"{"amount": 1, "currency": "ETH"}"#),
            400,
        ),
        ("missing currency", create(r#"{"amount": 1}"#), 400),
        ("not JSON", create("amount=1&currency=TRX"), 400),
        ("JSON array", create("[1]"), 400),
        (
            "duplicate order_id",
            create(r#"{"amount": 2, "currency": "TRX", "order_id": "taken"}"#),
            409,
        ),
        (
            "unknown api_key",
            create(
                r#"{"amount": 2, "currency": "TRX", "api_key": "0123456789abcdef0123456789abcdef"}"#,
            ),
            401,
        ),
        (
            "unknown order_id",
            http.get(server.url("/check_payment_status.php?order_id=nope")),
            404,
        ),
        (
            "unknown payment_token",
            http.get(
                server.url(
                    "/check_payment_status.php?payment_token=0123456789abcdef0123456789abcdef",
                ),
            ),
            404,
        ),
        (
            "malformed payment_token",
            http.get(
                server.url(
                    "/check_payment_status.php?payment_token=a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6",
                ),
            ),
            400,
        ),
        (
            "status without a key",
            http.get(server.url("/check_payment_status.php")),
            400,
        ),
        (
            "GET on create",
            http.get(server.url("/initiate_payment.php")),
            405,
        ),
        (
            "PUT on create",
            http.put(server.url("/initiate_payment.php"))
                .body(with_amount("1")),
            405,
        ),
        (
            "DELETE on status",
            http.delete(server.url("/check_payment_status.php?order_id=taken")),
            405,
        ),
        ("1 MiB body", create(&exactly_one_mib()), 413),
    ];
    for (what, request, want) in cases {
        let text = assert_error(call(request).await, want);
        assert_eq!(
            server.row_counts().await,
            before,
            "{what} ({want} {text}) wrote a row"
        );
    }

    // Wrong methods name the right ones.
    let r = http
        .get(server.url("/initiate_payment.php"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "POST, OPTIONS");

    // The preflight of a cross-origin JSON POST, as a browser sends it.
    for path in ["/initiate_payment.php", "/check_payment_status.php"] {
        let r = http
            .request(reqwest::Method::OPTIONS, server.url(path))
            .header("origin", "https://shop.example")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{path}");
        let header = |name: &str| r.headers()[name].to_str().unwrap().to_owned();
        assert_eq!(header("access-control-allow-origin"), "*");
        assert!(header("access-control-allow-methods").contains("POST"));
        assert!(header("access-control-allow-headers").eq_ignore_ascii_case("content-type"));
    }
    assert_eq!(server.row_counts().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trx_and_usdt_orders_are_paid_then_confirmed_with_signed_callbacks() {
    let receiver = Receiver::accepting().await;
    let server = TronPhpServer::start(&receiver.url("/callback")).await;

    // Two merchant orders (callbacks) and one of the default merchant (none).
    let mut orders = Vec::new();
    for (order_id, currency, amount, api_key) in [
        ("trx-1", "TRX", "1.5", Some(&server.api_key)),
        ("usdt-1", "USDT", "2", Some(&server.api_key)),
        ("quiet-1", "TRX", "1.5", None),
    ] {
        let mut body = json!({ "order_id": order_id, "currency": currency, "amount": amount.parse::<serde_json::Number>().unwrap() });
        if let Some(key) = api_key {
            body["api_key"] = json!(key);
        }
        let (status, created, text) = initiate(&server, &body).await;
        assert_eq!(status, 200, "{created}");
        orders.push((order_id, currency, amount_literal(&text)));
    }
    // The second 1.5 TRX order pays 1.500001.
    assert_eq!(orders[2].2, "1.500001");

    let mut paying_blocks = Vec::new();
    for (order_id, currency, amount) in &orders {
        let (tx, block) = server.pay(currency, amount);
        let paid = server.wait_status(order_id, "paid").await;
        assert_eq!(paid["transaction_hash"], tx.as_str(), "{order_id}");
        paying_blocks.push(block);
    }
    server
        .chain()
        .mine_until_solidified(*paying_blocks.iter().max().unwrap());
    for (order_id, _, _) in &orders {
        server.wait_status(order_id, "confirmed").await;
    }

    // Two callbacks per merchant order, paid then confirmed; none for the default
    // merchant's order.
    let received = eventually("four callbacks", Duration::from_secs(30), || async {
        Some(receiver.received()).filter(|r| r.len() >= 4)
    })
    .await;
    let mut seen = Vec::new();
    for callback in &received {
        assert_eq!(callback.method, "POST");
        assert_eq!(callback.path, "/callback");
        let body = callback.json();
        assert_same_shape(&body, &seed_callback(), &[]);
        let order_id = body["order_id"].as_str().unwrap();
        let status = body["status"].as_str().unwrap();
        let (_, currency, amount) = orders
            .iter()
            .find(|o| o.0 == order_id)
            .expect("a merchant order");
        assert_eq!(body["currency"], *currency);
        let raw: std::collections::HashMap<String, Box<serde_json::value::RawValue>> =
            serde_json::from_slice(&callback.body).unwrap();
        assert_eq!(raw["amount"].get(), amount);
        assert_eq!(body["event"], "payment_status_changed");
        let timestamp = body["timestamp"].as_str().unwrap();
        assert_local_datetime(timestamp);
        // The receiver's own day in UTC+8 (the day before too, should the delivery have
        // crossed midnight on its way).
        let now = unix_now();
        let days: Vec<String> = [now, now - 300].iter().map(|t| compact_day(*t)).collect();
        assert!(
            days.iter().any(
                |day| body["signature"] == expected_signature(order_id, status, day)
                    && timestamp[..10].replace('-', "") == *day
            ),
            "signature of {body} is not sha256(order_id . status . day) for {days:?}"
        );
        seen.push((order_id.to_owned(), status.to_owned()));
    }
    seen.sort();
    let want: Vec<(String, String)> = [
        ("trx-1", "confirmed"),
        ("trx-1", "paid"),
        ("usdt-1", "confirmed"),
        ("usdt-1", "paid"),
    ]
    .iter()
    .map(|(o, s)| (o.to_string(), s.to_string()))
    .collect();
    assert_eq!(seen, want, "one callback per order and status");
    assert_eq!(received.len(), 4, "{seen:?}");
}
