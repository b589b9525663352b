//! The bhop-pay dialect through the real host over loopback HTTP: the seed's examples
//! (field names and JSON types), the flow from order to completion with a TOTP code the
//! test computes from the user's seed, the signed callback to the org and a partial
//! refund, and bad input everywhere answered in the dialect's error shape with no posting
//! written; and the whole custodial path on a real anvil chain: a USDT deposit to the
//! user's derived address credits the balance the user then pays an order from.

mod common;
mod webhook_support;

use std::sync::Arc;

use common::plugins::{TestApp, hmac_sha256_hex};
use common::shape::assert_same_shape;
use common::two_factor::{delivery_of, otpauth_seed, totp_code, wrong_code};
use polypay_host::invoice::Amount;
use polypay_host::ledger::Ledger;
use polypay_host::merchant::{CredentialSpec, SecretFormat};
use polypay_host::plugin::PluginConfig;
use polypay_host::store::now_ms;
use polypay_host::two_factor::{Delivery, TwoFactor, TwoFactorConfig};
use polypay_plugin_artifacts::BHOP_PAY;
use serde_json::{Value, json};
use sqlx::Row;
use webhook_support::{Receiver, Running, eventually, fast_config};

const PLUGIN: &str = "bhop-pay";

/// The seed's examples, comments removed.
fn totp_now(seed: &[u8]) -> String {
    totp_code(seed, (now_ms() / 1000) as u64)
}

fn wrong_totp(seed: &[u8]) -> String {
    wrong_code(seed, (now_ms() / 1000) as u64)
}

/// The code the host handed to the SMS gateway for a challenge.
async fn sms_code(bhop: &Bhop, challenge: &str) -> String {
    let body = delivery_of(&bhop.app.storage().store, challenge).await;
    assert_eq!(body["destination"], "+8618600000001");
    body["code"].as_str().unwrap().to_string()
}

fn seed_order() -> Value {
    json!({
        "orderId": "476682884348973312",
        "clientOrderId": "Activity201910200001",
        "payerUserId": "83214971450163200",
        "payeeUserId": "231215678785585152",
        "isMapping": true,
        "payInfo": [{
            "itemId": "428843489733161027", "payType": "PAY", "tokenId": "USDT",
            "amount": "100", "paidAmount": "0", "refundedAmount": "0", "unlockedAmount": "0"
        }],
        "productInfo": [{
            "itemId": "428828843489762083", "payType": "PAY", "tokenId": "BTC",
            "amount": "0.1575", "paidAmount": "0", "refundedAmount": "0", "unlockedAmount": "0"
        }],
        "status": "WAIT_FOR_PAYMENT",
        "statusDesc": "待支付",
        "expired": "1571561027984",
        "desc": "Order description",
        "extendInfo": "{\"value\":\"Extend info for order\"}",
        "created": "1571561027984",
        "updated": "1571561027984"
    })
}

fn seed_user_info() -> Value {
    json!({
        "userId": "83214971450163200", "registerType": 2, "mobile": "186****0001",
        "nationalCode": "86", "email": "z********n@163.com", "bindGA": true,
        "bindTradePwd": true, "userType": 1, "verifyStatus": 2, "source": "jinse"
    })
}

struct Org {
    key: String,
    secret: String,
}

struct User {
    id: String,
    key: String,
    secret: String,
    /// The GA seed, when bound.
    seed: Option<Vec<u8>>,
}

struct Bhop {
    app: TestApp,
    org: Org,
    ledger: Ledger,
}

async fn start() -> Bhop {
    start_on(None).await
}

/// With `chain` (an anvil chain's config), the plugin's USDT is that chain's and the
/// host's capabilities know it; else an unreachable `ethereum` chain.
async fn start_on(chain: Option<polypay_host::chain::ChainConfig>) -> Bhop {
    let chain_name = chain
        .as_ref()
        .map_or("ethereum".to_string(), |c| c.name.clone());
    let mut builder = TestApp::init()
        .with_plugin(
            PluginConfig::new(PLUGIN, BHOP_PAY)
                .with_settings(json!({ "tokens": { "USDT": chain_name }, "issuer": "Bhop" })),
        )
        .with_storage()
        .await;
    if let Some(chain) = chain {
        builder.services = builder.services.with_chains(vec![chain]);
    }
    let storage = builder.storage.as_ref().unwrap();
    let tf = TwoFactor::new(
        storage.store.clone(),
        storage.merchants.master_key().clone(),
        TwoFactorConfig::default(),
        Delivery::Webhook {
            url: "https://sms.example/send".into(),
            secret: None,
        },
    );
    builder.services = builder.services.with_two_factor(tf);
    let created = storage
        .merchants
        .create(
            "org",
            Some(PLUGIN),
            json!({}),
            &[CredentialSpec {
                kind: "api-key".into(),
                secret: SecretFormat::alphanumeric("", 48),
                public_id: Some(SecretFormat::alphanumeric("", 32)),
            }],
        )
        .await
        .unwrap();
    let credential = &created.credentials[0];
    let org = Org {
        key: credential.public_id.clone().unwrap(),
        secret: credential.secret.clone(),
    };
    let ledger = Ledger::new(storage.store.clone());
    Bhop {
        app: builder.start().await,
        org,
        ledger,
    }
}

/// `params` plus `timestamp` and the `signature` over them, as a form body.
fn signed_body(secret: &str, params: &[(&str, &str)], timestamp: i64) -> String {
    let mut all: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    all.push(("timestamp".into(), timestamp.to_string()));
    all.sort();
    let text = all
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    all.push((
        "signature".into(),
        hmac_sha256_hex(secret.as_bytes(), text.as_bytes()),
    ));
    reqwest::Url::parse_with_params("http://x/", &all)
        .unwrap()
        .query()
        .unwrap()
        .to_string()
}

impl Bhop {
    async fn raw(&self, path: &str, key: &str, body: String) -> (u16, Value) {
        let response = self
            .app
            .http
            .post(self.app.url(path))
            .header("x-access-key", key)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
        )
    }

    async fn org(&self, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let body = signed_body(&self.org.secret, params, now_ms());
        self.raw(path, &self.org.key, body).await
    }

    async fn user(&self, user: &User, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let body = signed_body(&user.secret, params, now_ms());
        self.raw(path, &user.key, body).await
    }

    async fn new_user(&self, params: &[(&str, &str)]) -> User {
        let (status, answer) = self.org("/api/v2/org/user/create", params).await;
        assert_eq!(status, 200, "{answer}");
        let data = &answer["data"];
        let seed = data["gaUri"].as_str().map(otpauth_seed);
        User {
            id: data["userId"].as_str().unwrap().to_string(),
            key: data["apiKey"].as_str().unwrap().to_string(),
            secret: data["secretKey"].as_str().unwrap().to_string(),
            seed,
        }
    }

    async fn fund(&self, user: &User, usdt_units: u64) {
        self.ledger
            .adjust(
                PLUGIN,
                user.id.parse().unwrap(),
                "ethereum",
                "USDT",
                Amount::from(usdt_units),
                true,
            )
            .await
            .unwrap();
    }

    async fn create_order(&self, payer: &User, client: &str, amount: &str) -> (u16, Value) {
        let pay_info =
            json!([{ "pay_type": "PAY", "token_id": "USDT", "amount": amount }]).to_string();
        self.org(
            "/api/v2/org/payment/order/create",
            &[
                ("client_order_id", client),
                ("payer_user_id", &payer.id),
                ("pay_info", &pay_info),
            ],
        )
        .await
    }

    async fn postings(&self) -> i64 {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM ledger_postings")
            .fetch_one(self.app.storage().store.pool())
            .await
            .unwrap();
        row.get("n")
    }

    async fn balance(&self, user: &User) -> String {
        let balances = self
            .ledger
            .balances(PLUGIN, user.id.parse().unwrap())
            .await
            .unwrap();
        balances
            .iter()
            .find(|b| b.asset == "USDT")
            .map(|b| b.available.to_string())
            .unwrap_or_else(|| "0".into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_seed_example_has_its_fields_and_types() {
    let bhop = start().await;
    let user = bhop
        .new_user(&[
            ("national_code", "86"),
            ("mobile", "18600000001"),
            ("email", "zhangsann1@163.com"),
        ])
        .await;
    bhop.fund(&user, 1_000_000_000).await;
    let product = json!([{ "pay_type": "PAY", "token_id": "BTC", "amount": "0.1575" }]).to_string();
    let pay_info = json!([{ "pay_type": "PAY", "token_id": "USDT", "amount": "100" }]).to_string();
    let (status, created) = bhop
        .org(
            "/api/v2/org/payment/order/create",
            &[
                ("client_order_id", "Activity201910200001"),
                ("payer_user_id", &user.id),
                ("pay_info", &pay_info),
                ("product_info", &product),
                ("desc", "Order description"),
                ("extend_info", "{\"value\":\"Extend info for order\"}"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(
        (created["status"].clone(), created["msg"].clone()),
        (json!(0), json!("Success"))
    );
    assert_same_shape(&created["data"], &seed_order(), &[]);
    let order_id = created["data"]["orderId"].as_str().unwrap().to_string();
    assert!(order_id.parse::<u64>().is_ok());

    // List: {"status":0,"data":[order]}.
    let (status, list) = bhop.user(&user, "/api/payment/orders", &[]).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["status"], 0);
    assert_same_shape(&list["data"][0], &seed_order(), &[]);
    let order = &list["data"][0];
    assert_eq!(order["clientOrderId"], "Activity201910200001");
    assert_eq!(order["payerUserId"], user.id.as_str());
    assert_eq!(order["payInfo"][0]["amount"], "100");
    assert_eq!(order["productInfo"][0]["tokenId"], "BTC");
    assert_eq!(order["productInfo"][0]["amount"], "0.1575");
    assert_eq!(
        (order["status"].as_str(), order["statusDesc"].as_str()),
        (Some("WAIT_FOR_PAYMENT"), Some("待支付"))
    );
    assert_eq!(order["extendInfo"], "{\"value\":\"Extend info for order\"}");

    // load_pay_data: orderInfo, the masked userInfo, need2FA, authType.
    let (status, loaded) = bhop
        .user(
            &user,
            "/api/payment/order/load_pay_data",
            &[("order_id", &order_id)],
        )
        .await;
    assert_eq!(status, 200, "{loaded}");
    let data = &loaded["data"];
    assert_same_shape(&data["orderInfo"], &seed_order(), &[]);
    assert_same_shape(&data["userInfo"], &seed_user_info(), &[]);
    assert_eq!(data["userInfo"]["mobile"], "186****0001");
    assert_eq!(data["userInfo"]["email"], "z********1@163.com");
    assert_eq!(data["userInfo"]["bindGA"], false);
    assert_eq!(
        (data["need2FA"].clone(), data["authType"].clone()),
        (json!(true), json!("MOBILE"))
    );

    // quick_pay without a code: {"processIsEnd":"false","need2FA":"true"} (strings).
    let (_, quick) = bhop
        .user(
            &user,
            "/api/payment/order/quick_pay",
            &[("order_id", &order_id)],
        )
        .await;
    assert_eq!(
        quick["data"],
        json!({ "processIsEnd": "false", "need2FA": "true" })
    );

    // send_payment_verify_code: {"orderId": "<challenge id>"}.
    let (status, sent) = bhop
        .user(
            &user,
            "/api/payment/order/send_payment_verify_code",
            &[("order_id", &order_id)],
        )
        .await;
    assert_eq!(status, 200, "{sent}");
    assert_same_shape(&sent["data"], &json!({ "orderId": "1532327586794" }), &[]);
    let challenge = sent["data"]["orderId"].as_str().unwrap().to_string();
    assert!(challenge.parse::<u64>().is_ok());
    let code = sms_code(&bhop, &challenge).await;

    // pay: the order, COMPLETED 已完成.
    let (status, paid) = bhop
        .user(
            &user,
            "/api/payment/order/pay",
            &[
                ("order_id", &order_id),
                ("verify_code_order_id", &challenge),
                ("verify_code", &code),
            ],
        )
        .await;
    assert_eq!(status, 200, "{paid}");
    assert_same_shape(&paid["data"], &seed_order(), &[]);
    assert_eq!(
        (
            paid["data"]["status"].as_str(),
            paid["data"]["statusDesc"].as_str()
        ),
        (Some("COMPLETED"), Some("已完成"))
    );
    assert_eq!(paid["data"]["payInfo"][0]["paidAmount"], "100");
    assert_eq!(bhop.balance(&user).await, "900000000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_pays_with_ga_the_org_gets_signed_callbacks_and_refunds_part() {
    let bhop = start().await;
    let receiver = Receiver::accepting().await;
    let running = Running::start(
        &bhop.app.storage().store,
        fast_config(),
        Arc::new(bhop.app.runtime.clone()),
    );
    let user = bhop
        .new_user(&[("email", "alice@example.com"), ("bind_ga", "true")])
        .await;
    let seed = user.seed.clone().expect("GA bound");
    bhop.fund(&user, 250_000_000).await;
    let pay_info =
        json!([{ "pay_type": "PAY", "token_id": "USDT", "amount": "100.5" }]).to_string();
    let notify = receiver.url("/org/notify");
    let (status, created) = bhop
        .org(
            "/api/v2/org/payment/order/create",
            &[
                ("client_order_id", "shop-1"),
                ("payer_user_id", &user.id),
                ("pay_info", &pay_info),
                ("notify_url", &notify),
            ],
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let order_id = created["data"]["orderId"].as_str().unwrap().to_string();
    let expires: i64 = created["data"]["expired"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let made: i64 = created["data"]["created"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // The plugin reads the clock just before the host stamps `created`.
    assert!(
        (599_000..=600_000).contains(&(expires - made)),
        "effective_time defaults to 600 s: {}",
        expires - made
    );

    let (_, loaded) = bhop
        .user(
            &user,
            "/api/payment/order/load_pay_data",
            &[("order_id", &order_id)],
        )
        .await;
    assert_eq!(loaded["data"]["authType"], "GA");
    assert_eq!(loaded["data"]["userInfo"]["bindGA"], true);

    let code = totp_now(&seed);
    let (status, paid) = bhop
        .user(
            &user,
            "/api/payment/order/pay",
            &[("order_id", &order_id), ("verify_code", &code)],
        )
        .await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(paid["data"]["status"], "COMPLETED");
    assert_eq!(bhop.balance(&user).await, "149500000");

    let callback = eventually(
        "the completion callback",
        std::time::Duration::from_secs(20),
        || {
            let receiver = receiver.clone();
            async move { receiver.received().into_iter().next() }
        },
    )
    .await;
    assert_eq!(callback.path, "/org/notify");
    assert_eq!(callback.header("x-access-key"), Some(bhop.org.key.as_str()));
    let params: Vec<(String, String)> = reqwest::Url::parse(&format!(
        "http://x/?{}",
        String::from_utf8(callback.body.clone()).unwrap()
    ))
    .unwrap()
    .query_pairs()
    .into_owned()
    .collect();
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("event").as_deref(), Some("COMPLETED"));
    assert_eq!(get("orderId").as_deref(), Some(order_id.as_str()));
    assert_eq!(get("clientOrderId").as_deref(), Some("shop-1"));
    let mut unsigned: Vec<_> = params
        .iter()
        .filter(|(k, _)| k != "signature")
        .cloned()
        .collect();
    unsigned.sort();
    let text = unsigned
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    assert_eq!(
        get("signature").unwrap(),
        hmac_sha256_hex(bhop.org.secret.as_bytes(), text.as_bytes()),
        "the callback is signed with the org's secret over its sorted parameters"
    );

    // A partial refund.
    let (status, refunded) = bhop
        .org(
            "/api/v2/org/payment/order/refund",
            &[("order_id", &order_id), ("amount", "30.25")],
        )
        .await;
    assert_eq!(status, 200, "{refunded}");
    assert_eq!(refunded["data"]["payInfo"][0]["refundedAmount"], "30.25");
    assert_eq!(bhop.balance(&user).await, "179750000");
    eventually(
        "the refund callback",
        std::time::Duration::from_secs(20),
        || {
            let receiver = receiver.clone();
            async move {
                receiver
                    .received()
                    .iter()
                    .any(|r| String::from_utf8_lossy(&r.body).contains("event=REFUNDED"))
                    .then_some(())
            }
        },
    )
    .await;
    // The org sees it in its detail.
    let (_, detail) = bhop
        .org(
            "/api/v2/org/payment/order/detail",
            &[("client_order_id", "shop-1")],
        )
        .await;
    assert_eq!(detail["data"]["orderId"], order_id.as_str());
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_in_the_dialects_words_and_writes_no_posting() {
    let bhop = start().await;
    let user = bhop
        .new_user(&[("email", "bob@example.com"), ("bind_ga", "true")])
        .await;
    let seed = user.seed.clone().unwrap();
    bhop.fund(&user, 50_000_000).await;

    // Amounts: negative, zero, over-precise, and an unknown token.
    for amount in ["-1", "0", "1.0000001", "abc"] {
        let before = bhop.postings().await;
        let (status, answer) = bhop
            .create_order(&user, &format!("bad-{amount}"), amount)
            .await;
        assert_eq!(
            (status, answer["code"].as_i64()),
            (400, Some(-1130)),
            "{amount}: {answer}"
        );
        assert!(answer["msg"].is_string());
        assert_eq!(bhop.postings().await, before);
    }

    // Overspend: 60 USDT from 50.
    let (_, created) = bhop.create_order(&user, "big", "60").await;
    let big = created["data"]["orderId"].as_str().unwrap().to_string();
    let before = bhop.postings().await;
    let (status, answer) = bhop
        .user(
            &user,
            "/api/payment/order/pay",
            &[("order_id", &big), ("verify_code", &totp_now(&seed))],
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_i64()),
        (400, Some(-32002)),
        "{answer}"
    );
    assert_eq!(bhop.postings().await, before);

    // Wrong codes: the first two say how many are left, the third invalidates the order,
    // the fourth is refused without being checked.
    let (_, created) = bhop.create_order(&user, "guess", "1").await;
    let order = created["data"]["orderId"].as_str().unwrap().to_string();
    let wrong = wrong_totp(&seed);
    for expected in [-32004, -32004, -32005, -32005] {
        let (status, answer) = bhop
            .user(
                &user,
                "/api/payment/order/pay",
                &[("order_id", &order), ("verify_code", &wrong)],
            )
            .await;
        assert_eq!(
            (status, answer["code"].as_i64()),
            (400, Some(expected)),
            "{answer}"
        );
    }
    let (_, detail) = bhop
        .org("/api/v2/org/payment/order/detail", &[("order_id", &order)])
        .await;
    assert_eq!(
        (
            detail["data"]["status"].as_str(),
            detail["data"]["statusDesc"].as_str()
        ),
        (Some("EXPIRED"), Some("已失效"))
    );
    // Even the right code no longer pays it.
    let (_, answer) = bhop
        .user(
            &user,
            "/api/payment/order/pay",
            &[("order_id", &order), ("verify_code", &totp_now(&seed))],
        )
        .await;
    assert_eq!(answer["code"], -32005);
    assert_eq!(bhop.postings().await, before);

    // A reused code (of a user whose current code is still fresh): accepted once, then
    // refused on the next order.
    let carol = bhop
        .new_user(&[("email", "carol@example.com"), ("bind_ga", "true")])
        .await;
    bhop.fund(&carol, 5_000_000).await;
    let (_, a) = bhop.create_order(&carol, "a", "1").await;
    let (_, b) = bhop.create_order(&carol, "b", "1").await;
    let code = totp_now(carol.seed.as_ref().unwrap());
    let (status, paid) = bhop
        .user(
            &carol,
            "/api/payment/order/pay",
            &[
                ("order_id", a["data"]["orderId"].as_str().unwrap()),
                ("verify_code", &code),
            ],
        )
        .await;
    assert_eq!(status, 200, "{paid}");
    let before = bhop.postings().await;
    let (status, answer) = bhop
        .user(
            &carol,
            "/api/payment/order/pay",
            &[
                ("order_id", b["data"]["orderId"].as_str().unwrap()),
                ("verify_code", &code),
            ],
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_i64()),
        (400, Some(-32004)),
        "{answer}"
    );
    assert_eq!(bhop.postings().await, before);

    // An expired order.
    let pay_info = json!([{ "pay_type": "PAY", "token_id": "USDT", "amount": "1" }]).to_string();
    let (_, created) = bhop
        .org(
            "/api/v2/org/payment/order/create",
            &[
                ("client_order_id", "short"),
                ("payer_user_id", &user.id),
                ("pay_info", &pay_info),
                ("effective_time", "1"),
            ],
        )
        .await;
    let short = created["data"]["orderId"].as_str().unwrap().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let (status, answer) = bhop
        .user(
            &user,
            "/api/payment/order/pay",
            &[("order_id", &short), ("verify_code", &totp_now(&seed))],
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_i64()),
        (400, Some(-32006)),
        "{answer}"
    );
    assert_eq!(bhop.postings().await, before);

    // Signatures: a wrong one, a stale timestamp, a replay.
    let (_, c) = bhop.create_order(&user, "sig", "1").await;
    let sig_order = c["data"]["orderId"].as_str().unwrap().to_string();
    let params = [("order_id", sig_order.as_str()), ("verify_code", "123456")];
    let (status, answer) = bhop
        .raw(
            "/api/payment/order/pay",
            &user.key,
            signed_body("not the secret", &params, now_ms()),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_i64()),
        (401, Some(-1022)),
        "{answer}"
    );
    let (status, answer) = bhop
        .raw(
            "/api/payment/order/pay",
            &user.key,
            signed_body(&user.secret, &params, now_ms() - 31_000),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_i64()),
        (400, Some(-1021)),
        "{answer}"
    );
    let list = signed_body(&user.secret, &[], now_ms());
    let (status, _) = bhop
        .raw("/api/payment/orders", &user.key, list.clone())
        .await;
    assert_eq!(status, 200);
    let (status, answer) = bhop.raw("/api/payment/orders", &user.key, list).await;
    assert_eq!(
        (status, answer["code"].as_i64()),
        (401, Some(-1022)),
        "replayed: {answer}"
    );
    // Another user's order is not found, and an org key is not a user key.
    let other = bhop.new_user(&[("email", "eve@example.com")]).await;
    let (status, answer) = bhop
        .user(
            &other,
            "/api/payment/order/load_pay_data",
            &[("order_id", &sig_order)],
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_i64()),
        (404, Some(-32001)),
        "{answer}"
    );
    let (status, _) = bhop
        .raw(
            "/api/payment/orders",
            &bhop.org.key,
            signed_body(&bhop.org.secret, &[], now_ms()),
        )
        .await;
    assert_eq!(status, 401);
    // Refunds above what was paid.
    let (status, answer) = bhop
        .org(
            "/api/v2/org/payment/order/refund",
            &[
                ("order_id", a["data"]["orderId"].as_str().unwrap()),
                ("amount", "2"),
            ],
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_i64()),
        (400, Some(-32008)),
        "{answer}"
    );
    assert_eq!(bhop.postings().await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_list_filters_by_status_ids_and_time_inclusively_with_its_limits() {
    let bhop = start().await;
    let user = bhop
        .new_user(&[("email", "dave@example.com"), ("bind_ga", "true")])
        .await;
    bhop.fund(&user, 10_000_000).await;
    let mut ids = Vec::new();
    let mut created = Vec::new();
    for n in 0..3 {
        let (status, answer) = bhop.create_order(&user, &format!("list-{n}"), "1").await;
        assert_eq!(status, 200, "{answer}");
        ids.push(answer["data"]["orderId"].as_str().unwrap().to_string());
        created.push(answer["data"]["created"].as_str().unwrap().to_string());
    }
    let code = totp_now(user.seed.as_ref().unwrap());
    let (status, _) = bhop
        .user(
            &user,
            "/api/payment/order/pay",
            &[("order_id", &ids[1]), ("verify_code", &code)],
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = bhop
        .org("/api/v2/org/payment/order/cancel", &[("order_id", &ids[2])])
        .await;
    assert_eq!(status, 200);

    let listed = |answer: &Value| -> Vec<String> {
        answer["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["orderId"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, all) = bhop.user(&user, "/api/payment/orders", &[]).await;
    let mut got = listed(&all);
    got.sort();
    assert_eq!(got, ids);
    for (code, expected) in [("0", &ids[0]), ("1", &ids[1]), ("4", &ids[2])] {
        let (_, answer) = bhop
            .user(&user, "/api/payment/orders", &[("status", code)])
            .await;
        assert_eq!(listed(&answer), vec![expected.clone()], "status {code}");
    }
    // Ids and times are inclusive bounds.
    let (_, answer) = bhop
        .user(
            &user,
            "/api/payment/orders",
            &[("from_id", &ids[1]), ("to_id", &ids[1])],
        )
        .await;
    assert_eq!(listed(&answer), vec![ids[1].clone()]);
    let (_, answer) = bhop
        .user(
            &user,
            "/api/payment/orders",
            &[("start_time", &created[0]), ("end_time", &created[0])],
        )
        .await;
    assert!(listed(&answer).contains(&ids[0]), "{answer}");
    let (_, answer) = bhop
        .user(&user, "/api/payment/orders", &[("limit", "1")])
        .await;
    assert_eq!(listed(&answer).len(), 1);
    for bad in ["0", "101", "x"] {
        let (status, answer) = bhop
            .user(&user, "/api/payment/orders", &[("limit", bad)])
            .await;
        assert_eq!(
            (status, answer["code"].as_i64()),
            (400, Some(-1130)),
            "limit {bad}"
        );
    }
    // The org lists the orders payable to it.
    let (_, answer) = bhop
        .org("/api/v2/org/payment/orders", &[("status", "1")])
        .await;
    assert_eq!(listed(&answer), vec![ids[1].clone()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepay_order_is_processing_after_quick_pay_and_its_cancel_is_called_back() {
    let bhop = start().await;
    let receiver = Receiver::accepting().await;
    let running = Running::start(
        &bhop.app.storage().store,
        fast_config(),
        Arc::new(bhop.app.runtime.clone()),
    );
    let user = bhop
        .new_user(&[("email", "frank@example.com"), ("bind_ga", "true")])
        .await;
    bhop.fund(&user, 20_000_000).await;
    let pay_info =
        json!([{ "pay_type": "PREPAY", "token_id": "USDT", "amount": "12" }]).to_string();
    let notify = receiver.url("/org/notify");
    let (status, created) = bhop
        .org(
            "/api/v2/org/payment/order/create",
            &[
                ("client_order_id", "prepay-1"),
                ("payer_user_id", &user.id),
                ("pay_info", &pay_info),
                ("notify_url", &notify),
            ],
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let order_id = created["data"]["orderId"].as_str().unwrap().to_string();
    let code = totp_now(user.seed.as_ref().unwrap());
    let (status, quick) = bhop
        .user(
            &user,
            "/api/payment/order/quick_pay",
            &[("order_id", &order_id), ("verify_code", &code)],
        )
        .await;
    assert_eq!(status, 200, "{quick}");
    assert_eq!(
        quick["data"],
        json!({ "processIsEnd": "false", "need2FA": "false" }),
        "a PREPAY order stays locked: the process has not ended"
    );
    let (_, detail) = bhop
        .org(
            "/api/v2/org/payment/order/detail",
            &[("order_id", &order_id)],
        )
        .await;
    assert_eq!(
        (
            detail["data"]["status"].as_str(),
            detail["data"]["statusDesc"].as_str()
        ),
        (Some("PROCESSING"), Some("支付中"))
    );
    assert_eq!(bhop.balance(&user).await, "8000000", "12 USDT locked");

    let (status, cancelled) = bhop
        .org(
            "/api/v2/org/payment/order/cancel",
            &[("order_id", &order_id)],
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["data"]["status"], "CANCELLED");
    assert_eq!(cancelled["data"]["payInfo"][0]["unlockedAmount"], "12");
    assert_eq!(
        bhop.balance(&user).await,
        "20000000",
        "the lock is released"
    );
    eventually(
        "the cancel callback",
        std::time::Duration::from_secs(20),
        || {
            let receiver = receiver.clone();
            async move {
                receiver
                    .received()
                    .iter()
                    .any(|r| String::from_utf8_lossy(&r.body).contains("event=CANCELLED"))
                    .then_some(())
            }
        },
    )
    .await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_deposits_usdt_on_chain_then_pays_an_order_with_ga_and_gets_part_refunded() {
    use common::anvil::{TEST_XPUB, TestChain, usdt};

    let chain = TestChain::start().await; // 3 confirmations
    let config = chain.config().await;
    let bhop = start_on(Some(config.clone())).await;
    let store = bhop.app.storage().store.clone();
    let receiver = Receiver::accepting().await;
    let running = Running::start(&store, fast_config(), Arc::new(bhop.app.runtime.clone()));
    let user = bhop.new_user(&[("bind_ga", "true")]).await;
    let seed = user.seed.clone().expect("GA bound");

    // The user's deposit address, derived from the operator's extended public key.
    let address = bhop
        .ledger
        .deposit_address(PLUGIN, user.id.parse().unwrap(), &config, TEST_XPUB)
        .await
        .unwrap();
    let listener = polypay_host::chain::listeners(std::slice::from_ref(&config), &store)
        .expect("listener")
        .pop()
        .expect("one chain, one listener");
    let listener = tokio::spawn(listener.run(std::future::pending()));

    let payer = chain.account(1);
    chain.mint(payer, usdt("120")).await;
    chain
        .transfer_token(payer, address.parse().unwrap(), usdt("120"))
        .await;
    chain.anvil.mine(2).await; // 3 confirmations
    let credited = eventually(
        "the deposit credited",
        std::time::Duration::from_secs(30),
        || async { Some(bhop.balance(&user).await).filter(|b| b != "0") },
    )
    .await;
    assert_eq!(credited, "120000000", "the deposit, once");

    // The org's order, paid from the deposit after a TOTP code.
    let pay_info =
        json!([{ "pay_type": "PAY", "token_id": "USDT", "amount": "100.5" }]).to_string();
    let notify = receiver.url("/org/notify");
    let (status, created) = bhop
        .org(
            "/api/v2/org/payment/order/create",
            &[
                ("client_order_id", "chain-1"),
                ("payer_user_id", &user.id),
                ("pay_info", &pay_info),
                ("notify_url", &notify),
            ],
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let order_id = created["data"]["orderId"].as_str().unwrap().to_string();
    let (_, loaded) = bhop
        .user(
            &user,
            "/api/payment/order/load_pay_data",
            &[("order_id", &order_id)],
        )
        .await;
    assert_eq!(loaded["data"]["need2FA"], true);
    assert_eq!(loaded["data"]["authType"], "GA");
    let code = totp_now(&seed);
    let (status, paid) = bhop
        .user(
            &user,
            "/api/payment/order/pay",
            &[("order_id", &order_id), ("verify_code", &code)],
        )
        .await;
    assert_eq!(status, 200, "{paid}");
    assert_eq!(paid["data"]["status"], "COMPLETED");
    assert_eq!(bhop.balance(&user).await, "19500000");
    eventually(
        "the completion callback",
        std::time::Duration::from_secs(20),
        || {
            let receiver = receiver.clone();
            async move {
                receiver
                    .received()
                    .iter()
                    .any(|r| String::from_utf8_lossy(&r.body).contains("event=COMPLETED"))
                    .then_some(())
            }
        },
    )
    .await;

    // More than the user has left is refused and moves nothing.
    let postings = bhop.postings().await;
    let (_, second) = bhop.create_order(&user, "chain-2", "20").await;
    let second_id = second["data"]["orderId"].as_str().unwrap().to_string();
    // The code of the next 30 s step (inside the ±1 window; the current one is spent).
    let next_code = totp_code(&seed, (now_ms() / 1000) as u64 + 30);
    let (_, refused) = bhop
        .user(
            &user,
            "/api/payment/order/pay",
            &[("order_id", &second_id), ("verify_code", &next_code)],
        )
        .await;
    assert_eq!(refused["code"], -32002, "insufficient balance: {refused}");
    assert_eq!(
        bhop.postings().await,
        postings,
        "no posting for a refused pay"
    );

    // A partial refund goes back to the user's balance, and is called back.
    let (status, refunded) = bhop
        .org(
            "/api/v2/org/payment/order/refund",
            &[("order_id", &order_id), ("amount", "30.25")],
        )
        .await;
    assert_eq!(status, 200, "{refunded}");
    assert_eq!(bhop.balance(&user).await, "49750000");
    eventually(
        "the refund callback",
        std::time::Duration::from_secs(20),
        || {
            let receiver = receiver.clone();
            async move {
                receiver
                    .received()
                    .iter()
                    .any(|r| String::from_utf8_lossy(&r.body).contains("event=REFUNDED"))
                    .then_some(())
            }
        },
    )
    .await;
    // Every token's postings still balance against what came in on chain.
    let reconciled = bhop.ledger.reconcile().await.unwrap();
    let usdt_row = reconciled
        .iter()
        .find(|r| r.asset == "USDT")
        .expect("USDT reconciled");
    assert!(usdt_row.balanced, "{reconciled:?}");
    assert_eq!(
        usdt_row.external,
        Amount::from(120_000_000),
        "{reconciled:?}"
    );
    listener.abort();
    running.stop().await;
}
