//! Conformance of the `trino` plugin with the Trino pay-srv document
//! (seeds/000_trino_pay_srv.md): every request/response example replayed against the real
//! server over HTTP, with our ids and token substituted, compared field by field in shape
//! and type; every error case; and the paid callback, signed and retried until HTTP 200.
//!
//! The server is the real `polypay` binary following a local anvil chain; the merchant and
//! its token come from `polypay merchant create --plugin trino`.

mod common;
mod trino_support;
mod webhook_support;

use std::time::Duration;

use alloy::primitives::U256;
use common::anvil::TestChain;
use common::polypay::cli_json;
use common::shape::assert_same_shape;
use reqwest::{Client, RequestBuilder};
use serde_json::{Value, json};
use trino_support::*;
use webhook_support::{Receiver, Reply, eventually};

/// The seed's create response example.
fn seed_create_response() -> Value {
    json!({
        "invoice_id": "7503cd8a-c921-4368-a32d-6c1d01d86da9",
        "jump_url": "https://xxx.com/payment/page"
    })
}

/// The seed's payment-information response example.
fn seed_payment_response() -> Value {
    json!({
        "amount": 100000000000u64,
        "jump_url": "https://trino.network/#/order/2022062214060769050",
        "network": "goerli",
        "recipient": "0x164B4c5F9ca1A1BC0Fe0Fa39A76a12aAb85683e1",
        "title": "支付订单NO：23435435646"
    })
}

/// The seed's invoice-status response example.
fn seed_status_response() -> Value {
    json!({
        "metadata": "e29c1B698F98BdFe6Ca4012dEE6FB350D73E40AE",
        "status": "paid",
        "txn_hash": "0xa477aae4aa81df7c7b108bcc65450c7fa36b77f671b2768759e6485acd10f507"
    })
}

/// Sends `request`, returns (status, JSON body).
async fn call(request: RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("HTTP {status}: body is not JSON ({e}): {text}"));
    (status, body)
}

/// Asserts a pay-srv error: the HTTP status, the same `status` in the body, `type`, a
/// non-empty `title`; returns the body for further checks.
fn assert_error(got: (u16, Value), status: u16, kind: &str) -> Value {
    let (code, body) = got;
    assert_eq!(code, status, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["type"], kind, "{body}");
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    body
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_examples_replay_with_their_shapes_and_every_error_case_answers_as_pay_srv() {
    let chain = TestChain::start().await;
    let server = TrinoServer::start(&chain, 1).await;
    let http = Client::new();
    let create = || http.post(server.url("/api/v1/invoices/create"));
    // A create request by the merchant, with `body`.
    let create_as_merchant = |body: &Value| {
        create()
            .header("authorization", bearer(&server.token))
            .json(body)
    };

    // 1. Create: the seed's request verbatim, with our token.
    let (status, created) = call(create_as_merchant(&seed_create_request())).await;
    assert_eq!(status, 200, "{created}");
    assert_same_shape(&created, &seed_create_response(), &[]);
    let id = created["invoice_id"].as_str().unwrap().to_owned();
    assert!(
        uuid::Uuid::parse_str(&id).is_ok(),
        "invoice id {id} is a UUID"
    );
    assert_eq!(created["jump_url"], server.url(&format!("/pay/{id}")));

    // 2. Payment information: public, as the payment page calls it.
    let (status, payment) = call(
        http.get(server.url(&format!("/api/v1/invoices/payment/{id}")))
            .header("accept", "application/json"),
    )
    .await;
    assert_eq!(status, 200, "{payment}");
    assert_same_shape(&payment, &seed_payment_response(), &[]);
    let seed = seed_create_request();
    assert_eq!(payment["amount"], seed["amount"]);
    assert_eq!(payment["jump_url"], seed["jump_url"]);
    assert_eq!(payment["network"], seed["network"]);
    assert_eq!(payment["title"], seed["title"]);
    assert!(
        payment["recipient"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case(seed["recipient"].as_str().unwrap())
    );

    // 3. Status: the owner's view; unpaid, no transaction yet.
    let (status, invoice) = call(
        http.get(server.url(&format!("/api/v1/invoices/{id}")))
            .header("authorization", bearer(&server.token))
            .header("accept", "application/json"),
    )
    .await;
    assert_eq!(status, 200, "{invoice}");
    assert_same_shape(&invoice, &seed_status_response(), &[]);
    assert_eq!(invoice["metadata"], seed["metadata"]);
    assert_eq!(invoice["status"], "unpaid");
    assert_eq!(invoice["txn_hash"], "");

    // 4. Authentication failures.
    assert_error(
        call(create().json(&seed_create_request())).await,
        401,
        "generic",
    );
    assert_error(
        call(
            create()
                .header(
                    "authorization",
                    bearer("0b5bdc5c-9d43-4a5e-8d7c-1a2b3c4d5e6f"),
                )
                .json(&seed_create_request()),
        )
        .await,
        401,
        "generic",
    );
    assert_error(
        call(
            create()
                .header("authorization", "Basic dXNlcjpwYXNz")
                .json(&seed_create_request()),
        )
        .await,
        401,
        "generic",
    );
    for malformed in [
        "not-a-token",
        "f140004f1b514abea0d458beef45d70c",
        "eyJhbGciOi.x.y",
    ] {
        assert_error(
            call(
                create()
                    .header("authorization", bearer(malformed))
                    .json(&seed_create_request()),
            )
            .await,
            400,
            "MALFORMED_TOKEN",
        );
    }
    assert_error(
        call(http.get(server.url(&format!("/api/v1/invoices/{id}")))).await,
        401,
        "generic",
    );

    // 5. Invalid recipients: not an address, or a mixed-case address whose EIP-55
    //    checksum is wrong (a typo the checksum exists to catch).
    for recipient in [
        "0x123",
        "889fB20cA7D3B2Bbb7bc888F18d1fE68742087Af",
        "0x889fB20cA7D3B2Bbb7bc888F18d1fE68742087Ag",
        "0x889Fb20cA7D3B2Bbb7bc888F18d1fE68742087Af",
    ] {
        let mut request = seed_create_request();
        request["recipient"] = json!(recipient);
        assert_error(
            call(create_as_merchant(&request)).await,
            400,
            "INVALID_RECIPIENT",
        );
    }

    // 6. Unknown network.
    let mut request = seed_create_request();
    request["network"] = json!("ropsten");
    let body = assert_error(call(create_as_merchant(&request)).await, 400, "generic");
    assert_eq!(
        body["validationErrors"],
        json!([{ "key": "network", "in": "body", "error": "network in body should be one of [goerli]" }])
    );

    // 7. Each missing field, and a body that is not JSON.
    for field in seed.as_object().unwrap().keys() {
        let mut request = seed_create_request();
        request.as_object_mut().unwrap().remove(field);
        let body = assert_error(call(create_as_merchant(&request)).await, 400, "generic");
        assert_eq!(
            body["validationErrors"],
            json!([{ "key": field, "in": "body", "error": format!("{field} in body is required") }]),
            "without {field}"
        );
    }
    assert_error(
        call(
            create()
                .header("authorization", bearer(&server.token))
                .header("content-type", "application/json")
                .body("{\"amount\": "),
        )
        .await,
        400,
        "generic",
    );

    // 8. Unknown invoices, on both reads.
    let unknown = "13af45c9-17ed-4682-b75b-8b8d252cca69";
    assert_error(
        call(
            http.get(server.url(&format!("/api/v1/invoices/{unknown}")))
                .header("authorization", bearer(&server.token)),
        )
        .await,
        404,
        "INVOICE_NOT_FOUND",
    );
    assert_error(
        call(http.get(server.url(&format!("/api/v1/invoices/payment/{unknown}")))).await,
        404,
        "INVOICE_NOT_FOUND",
    );

    // 9. Someone else's invoice: indistinguishable from an unknown one.
    let (_, other_token) = server.create_merchant("Other shop");
    assert_error(
        call(
            http.get(server.url(&format!("/api/v1/invoices/{id}")))
                .header("authorization", bearer(&other_token)),
        )
        .await,
        404,
        "INVOICE_NOT_FOUND",
    );

    // 10. Rotating the token: the old one stops working at once, the new one works.
    let rotated = cli_json(&server.config, &["merchant", "rotate", &server.merchant_id]);
    let new_token = rotated["credentials"][0]["secret"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(new_token).is_ok(), "{rotated}");
    assert_error(
        call(
            http.get(server.url(&format!("/api/v1/invoices/{id}")))
                .header("authorization", bearer(&server.token)),
        )
        .await,
        401,
        "generic",
    );
    let (status, _) = call(
        http.get(server.url(&format!("/api/v1/invoices/{id}")))
            .header("authorization", bearer(new_token)),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_invoice_is_called_back_signed_until_http_200_and_then_reads_notified() {
    let chain = TestChain::start().await;
    let server = TrinoServer::start(&chain, 2).await;
    let http = Client::new();
    // The merchant's callback endpoint: the first delivery gets a 201, which pay-srv
    // callbacks do not count as accepted; the retry gets the 200.
    let receiver = Receiver::start(|_, n| Reply::Status(if n == 0 { 201 } else { 200 })).await;
    let merchant_wallet = chain.account(5);
    let payer = chain.account(1);

    let mut request = seed_create_request();
    request["notify_url"] = json!(receiver.url("/pay/notify"));
    request["recipient"] = json!(merchant_wallet.to_checksum(None));
    let (status, created) = call(
        http.post(server.url("/api/v1/invoices/create"))
            .header("authorization", bearer(&server.token))
            .json(&request),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let id = created["invoice_id"].as_str().unwrap().to_owned();

    let amount = U256::from(10_000_000u64);
    chain.mint(payer, amount).await;
    let paid = chain
        .pay_through_contract(payer, &id, merchant_wallet, amount)
        .await;
    // One block deep is not enough with two confirmations required.
    let read = || async {
        call(
            http.get(server.url(&format!("/api/v1/invoices/{id}")))
                .header("authorization", bearer(&server.token)),
        )
        .await
        .1
    };
    assert_eq!(read().await["status"], "unpaid");
    chain.anvil.mine(1).await;

    let notified = eventually(
        "the invoice to read notified",
        Duration::from_secs(30),
        || async { Some(read().await).filter(|i| i["status"] == "notified") },
    )
    .await;
    assert_eq!(notified["txn_hash"], format!("{:#x}", paid.tx_hash));
    assert_eq!(notified["metadata"], request["metadata"]);

    let callbacks = receiver.received();
    assert_eq!(
        callbacks.len(),
        2,
        "one refused (201) and one accepted (200)"
    );
    for callback in &callbacks {
        assert_eq!(callback.method, "POST");
        assert_eq!(callback.path, "/pay/notify");
        assert_eq!(
            String::from_utf8(callback.body.clone()).unwrap(),
            format!(r#"{{"invoice_id":"{id}","status":"paid"}}"#)
        );
        assert_eq!(
            callback.header("trino-pay-sig"),
            Some(expected_signature(&server.token, &callback.body).as_str())
        );
        assert_eq!(callback.header("content-type"), Some("application/json"));
    }
}
