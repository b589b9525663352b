//! Fuzzing every dialect through the real host: every route of every dialect plugin
//! (`polypay_plugin_artifacts::DIALECTS`, so a new dialect joins by being built) gets
//! random and adversarial requests over real HTTP — wrong types, huge, negative and
//! fractional numbers, unicode, 1 MiB bodies, duplicate keys, missing or forged
//! credentials, invalid UTF-8, path traversal in ids — mixed with mutations of valid
//! requests and ids the dialect handed out. Asserted for every answer:
//! - the host did not panic and the plugin did not trap (no fault of any kind);
//! - an answer that is not a success is in the dialect's error shape (the
//!   [`profile`] table says how each dialect's is recognised), and is never a 500;
//! - a refused request wrote nothing (row counts and change markers of every table a
//!   plugin can reach are unchanged).
//!
//! The seed is fixed and the case count small in `cargo test`; run longer with
//! `POLYPAY_FUZZ_CASES=20000` and other seeds with `POLYPAY_FUZZ_SEED=N`. A failure
//! prints the seed, the case number and the request, which replays it.

mod common;

use polypay_host::plugin::PluginConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What the fuzzer knows about one dialect.
struct Profile {
    /// Recognises an answer in the dialect's error shape: (status, body) → true.
    error_shape: fn(u16, &[u8]) -> bool,
    /// The headers with which a merchant presents its credential's secret.
    present: fn(&str) -> Vec<(String, String)>,
    /// Valid request bodies, by route pattern, to mutate.
    samples: fn() -> Vec<(&'static str, Value)>,
    /// The plugin's `settings`.
    settings: fn() -> Value,
}

/// The profile of each dialect, by mount name (the package name without `polypay-`).
/// A dialect without one fails the suite: add its entry when adding a dialect.
fn profile(dialect: &str) -> Option<Profile> {
    match dialect {
        "trino" => Some(Profile {
            error_shape: trino_error_shape,
            present: |secret| vec![("authorization".into(), format!("Bearer {secret}"))],
            samples: || {
                vec![(
                    "/api/v1/invoices/create",
                    json!({
                        "amount": 10000000,
                        "jump_url": "https://trino.network/#/order/2022062214060769050",
                        "metadata": "e29c1B698F98BdFe6Ca4012dEE6FB350D73E40AE",
                        "network": NETWORK,
                        "notify_url": "https://trino.network/pay/notify",
                        "recipient": "0x889fB20cA7D3B2Bbb7bc888F18d1fE68742087Af",
                        "title": "支付订单NO：23435435646"
                    }),
                )]
            },
            settings: || json!({}),
        }),
        "pay-orders" => Some(Profile {
            error_shape: pay_orders_error_shape,
            // The secure key signs the body (`sign`); no header carries it.
            present: |_| Vec::new(),
            samples: || {
                vec![(
                    "/api/web/pay-orders/store",
                    json!({
                        "title": "标题",
                        "fee": 2000,
                        "remark": "备注",
                        "app_id": "AbCdEfGh12345678",
                        "salt": "随机字符",
                        "sign": "0123456789abcdef0123456789abcdef",
                        "currency": 1
                    }),
                )]
            },
            settings: || {
                json!({ "pay_currencies": { "2": {
                    "chain": NETWORK, "asset": "USDT",
                    "receipt_account": "0x889fB20cA7D3B2Bbb7bc888F18d1fE68742087Af"
                } } })
            },
        }),
        "wopay" => Some(Profile {
            error_shape: wopay_error_shape,
            present: |secret| vec![("x-api-key".into(), secret.to_owned())],
            samples: || {
                vec![
                    (
                        "/api/v1/merchants",
                        json!({ "name": "My Store", "email": "store@example.com",
                                "webhook_url": "https://mystore.com/webhook" }),
                    ),
                    (
                        "/api/v1/merchants/{id}",
                        json!({ "name": "Updated Store Name",
                                "webhook_url": "https://newdomain.com/webhook" }),
                    ),
                    (
                        "/api/v1/payments",
                        json!({ "order_id": "ORDER_20240101_001", "amount": "99.99",
                                "currency": "USDT",
                                "callback_url": "https://mystore.com/payment-callback",
                                "expires_in": 3600 }),
                    ),
                    (
                        "/api/v1/webhooks/test",
                        json!({ "event_type": "payment.completed",
                                "test_data": { "message": "This is a test webhook" } }),
                    ),
                ]
            },
            // Limits high enough that the fuzzer's pace is never throttled (429s would
            // hide the handlers behind them).
            settings: || {
                json!({ "network": NETWORK, "xpub": common::anvil::TEST_XPUB,
                        "key_requests_per_second": 1_000_000,
                        "ip_requests_per_hour": 1_000_000,
                        "webhook_requests_per_second": 1_000_000 })
            },
        }),
        "tron-php" => Some(Profile {
            error_shape: tron_php_error_shape,
            // `api_key` travels in the body, not in a header.
            present: |_| Vec::new(),
            samples: || {
                vec![
                    (
                        "/initiate_payment.php",
                        json!({
                            "amount": 0.1,
                            "currency": "TRX",
                            "order_id": "123456789",
                            "description": "商品购买",
                            "api_key": "{secret}",
                            "to_address": TRON_ADDRESS
                        }),
                    ),
                    (
                        "/check_payment_status.php",
                        json!({ "order_id": "123456789" }),
                    ),
                ]
            },
            settings: || json!({ "monitoring_address": TRON_ADDRESS, "network": TRON_NETWORK }),
        }),
        "bhop-pay" => Some(Profile {
            error_shape: bhop_pay_error_shape,
            // Requests are signed (`signature` over the sorted parameters); the access key
            // travels in `X-ACCESS-KEY`.
            present: |secret| vec![("x-access-key".into(), secret.to_owned())],
            samples: || {
                vec![(
                    "/api/v2/org/payment/order/create",
                    json!({
                        "client_order_id": "Activity201910200001",
                        "payer_user_id": "83214971450163200",
                        "pay_info": "[{\"pay_type\":\"PAY\",\"token_id\":\"USDT\",\"amount\":\"100\"}]",
                        "timestamp": 1571561027984u64,
                        "signature": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
                    }),
                )]
            },
            settings: || json!({ "tokens": { "USDT": NETWORK } }),
        }),
        _ => None,
    }
}

/// pay-srv: `{"status": <the HTTP status>, "type": "...", "title": "..."}`, optionally
/// `detail` and `validationErrors: [{key, in, error}]`, nothing else.
fn trino_error_shape(status: u16, body: &[u8]) -> bool {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let text = |k: &str| {
        map.get(k)
            .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()))
    };
    let validation_ok = map.get("validationErrors").is_none_or(|v| {
        v.as_array().is_some_and(|list| {
            !list.is_empty()
                && list.iter().all(|e| {
                    e.as_object().is_some_and(|e| {
                        e.len() == 3
                            && ["key", "in", "error"]
                                .iter()
                                .all(|k| e.get(*k).is_some_and(Value::is_string))
                    })
                })
        })
    });
    map.get("status").and_then(Value::as_u64) == Some(u64::from(status))
        && text("type")
        && text("title")
        && map.get("detail").is_none_or(Value::is_string)
        && validation_ok
        && map.keys().all(|k| {
            ["status", "type", "title", "detail", "validationErrors"].contains(&k.as_str())
        })
}

/// pay-orders: `{"code": <the HTTP status>, "message": "...", "result": null}`, nothing else.
fn pay_orders_error_shape(status: u16, body: &[u8]) -> bool {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    map.len() == 3
        && map.get("code").and_then(Value::as_u64) == Some(u64::from(status))
        && map
            .get("message")
            .is_some_and(|m| m.as_str().is_some_and(|s| !s.is_empty()))
        && map.get("result") == Some(&Value::Null)
}

/// WoPay: `{"success": false, "data": null, "error": "<text>", "timestamp": "<RFC 3339>"}`,
/// nothing else; or `/health`'s own bare object when unhealthy (503: the fuzz suite runs
/// no chain node).
fn wopay_error_shape(status: u16, body: &[u8]) -> bool {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    if status == 503 && map.get("status") == Some(&json!("unhealthy")) {
        return true;
    }
    map.len() == 4
        && map.get("success") == Some(&Value::Bool(false))
        && map.get("data") == Some(&Value::Null)
        && map
            .get("error")
            .is_some_and(|e| e.as_str().is_some_and(|e| !e.is_empty()))
        && map.get("timestamp").is_some_and(Value::is_string)
}

/// The network every dialect can take payments on in this suite (its node is not
/// running: nothing here needs the chain).
const NETWORK: &str = "goerli";
/// The TRON network of the fuzzed server, and an address on it.
const TRON_NETWORK: &str = "tron";
const TRON_ADDRESS: &str = "TY72iA3SBtrds3QLYsS7LwYfkzXwAXCRWT";

/// tron-php: `{"error": "<text>"}` and nothing else, with the dialect's statuses, and the
/// CORS header (checked by the conformance tests; the shape here).
fn bhop_pay_error_shape(status: u16, body: &[u8]) -> bool {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    [400, 401, 404, 405, 413, 429].contains(&status)
        && map.len() == 2
        && map.get("code").is_some_and(Value::is_i64)
        && map
            .get("msg")
            .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()))
}

fn tron_php_error_shape(status: u16, body: &[u8]) -> bool {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    [400, 401, 404, 405, 409, 413].contains(&status)
        && map.len() == 1
        && map
            .get("error")
            .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()))
}

fn cases() -> usize {
    std::env::var("POLYPAY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}

fn seed() -> u64 {
    std::env::var("POLYPAY_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x00C0_FFEE)
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts every panic in this process (the host runs in it), then reports it as usual.
fn count_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_of_every_dialect_survives_adversarial_input() {
    count_panics();
    assert!(
        !polypay_plugin_artifacts::DIALECTS.is_empty(),
        "no dialect is built"
    );
    for (package, wasm) in polypay_plugin_artifacts::DIALECTS {
        let name = package.trim_start_matches("polypay-");
        let profile = profile(name).unwrap_or_else(|| {
            panic!("dialect `{name}` has no fuzz profile: add its entry to `profile` in this file")
        });
        fuzz_dialect(name, wasm, &profile).await;
    }
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "the host panicked");
}

async fn fuzz_dialect(name: &str, wasm: &str, profile: &Profile) {
    let plugin = PluginConfig::new(name, wasm).with_settings((profile.settings)());
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::polypay::server_config(dir.path());
    config.webhooks.workers = 0;
    config.chains = vec![
        serde_json::from_value(json!({
            "name": NETWORK, "kind": "evm", "chain_id": 5, "rpc_url": "http://127.0.0.1:9",
            "max_retry_interval_ms": 60000,
            "assets": [{ "symbol": "USDT", "decimals": 6,
                         "contract": "0x5FbDB2315678afecb367f032d93F642f64180aa3" }],
            "payment_contracts": [{ "address": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
                                    "asset": "USDT" }]
        }))
        .unwrap(),
        serde_json::from_value(json!({
            "name": TRON_NETWORK, "kind": "tron", "rpc_url": "http://127.0.0.1:9",
            "max_retry_interval_ms": 60000,
            "assets": [{ "symbol": "TRX", "decimals": 6, "native": true },
                       { "symbol": "USDT", "decimals": 6,
                         "contract": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t" }]
        }))
        .unwrap(),
    ];
    config.plugins = vec![plugin];
    let server = polypay_host::app::Server::start(config).await.unwrap();
    let base = format!("http://{}", server.public_addr);

    // The routes and operator credentials the dialect declares in its manifest.
    let routes: Vec<(String, String)> = server.plugins.plugins()[0].routes.clone();
    let specs = server.plugins.operator_credentials(name).unwrap();
    let merchant = server
        .context
        .merchants
        .create("Fuzz shop", Some(name), json!({}), &specs)
        .await
        .unwrap();
    let secret = merchant.credentials[0].secret.clone();

    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    let store = server.context.store.clone();
    let mut fuzzer = Fuzzer {
        rng: StdRng::seed_from_u64(seed()),
        secret: secret.clone(),
        // A sample's "{secret}" is the merchant's credential (dialects that take it in
        // the body).
        samples: (profile.samples)()
            .into_iter()
            .map(|(pattern, sample)| {
                let text = sample.to_string().replace("{secret}", &secret);
                (pattern, serde_json::from_str(&text).unwrap())
            })
            .collect(),
        ids: Vec::new(),
        present: profile.present,
    };
    let (cases, seed) = (cases(), seed());
    eprintln!(
        "fuzzing `{name}`: {} routes, {cases} cases, seed {seed}",
        routes.len()
    );
    let mut statuses = std::collections::BTreeMap::new();
    // First every single-field edge case of every valid sample, authenticated, then
    // random cases.
    let mut edge_cases = fuzzer.edge_cases(&routes).into_iter();
    let total = edge_cases.len() + cases;
    for case in 0..total {
        let request = match edge_cases.next() {
            Some(request) => request,
            None => fuzzer.request(&routes),
        };
        let before = snapshot(&store).await;
        let what = || {
            format!(
                "dialect `{name}`, seed {seed}, case {case}: {} {} headers {:?} body {}",
                request.method,
                request.path,
                request.headers,
                excerpt(&request.body)
            )
        };
        let mut builder = http.request(
            request.method.parse().unwrap(),
            format!("{base}{}", request.path),
        );
        for (k, v) in &request.headers {
            // Raw bytes: non-ASCII goes out as obs-text, as a hostile client may send it.
            let value = reqwest::header::HeaderValue::from_bytes(v.as_bytes())
                .unwrap_or_else(|e| panic!("the fuzzer made an unsendable header {v:?}: {e}"));
            builder = builder.header(k, value);
        }
        let response = builder
            .body(request.body.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("no answer ({e}) to {}", what()));
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        *statuses.entry(status).or_insert(0u32) += 1;
        assert_ne!(status, 500, "a 500 ({}) for {}", excerpt(&body), what());
        if (200..300).contains(&status) {
            fuzzer.harvest_ids(&body);
        } else {
            assert!(
                (profile.error_shape)(status, &body),
                "answer {status} {} is not in the dialect's error shape, for {}",
                excerpt(&body),
                what()
            );
            assert_eq!(
                snapshot(&store).await,
                before,
                "a refused request ({status}) wrote to the database: {}",
                what()
            );
        }
    }
    eprintln!("`{name}` answered {statuses:?}");
    assert_eq!(
        server.plugins.total_faults(name),
        0,
        "the plugin trapped; see the log"
    );
    server.shutdown().await.unwrap();
}

/// Row counts and change markers of every table a plugin's requests can write.
async fn snapshot(store: &polypay_host::store::Store) -> Vec<(String, String)> {
    let queries = [
        "SELECT COUNT(*) || '/' || COALESCE(SUM(version), 0) || '/' || COALESCE(MAX(updated_at), 0) FROM invoices",
        "SELECT COUNT(*) || '' FROM payment_targets",
        "SELECT COUNT(*) || '' FROM outbox_events",
        "SELECT COUNT(*) || '/' || COALESCE(MAX(updated_at), 0) FROM merchants",
        "SELECT COUNT(*) || '/' || COUNT(revoked_at) FROM credentials",
        "SELECT COUNT(*) || '/' || COALESCE(MAX(updated_at), 0) FROM merchant_plugin_data",
        "SELECT COUNT(*) || '/' || COALESCE(SUM(LENGTH(value)), 0) FROM plugin_kv",
    ];
    let mut out = Vec::new();
    for q in queries {
        let value: String = sqlx::query_scalar(q).fetch_one(store.pool()).await.unwrap();
        out.push((q.rsplit(' ').next().unwrap().to_owned(), value));
    }
    out
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    if body.len() > 300 {
        format!("{text}… ({} bytes)", body.len())
    } else {
        text
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

struct Fuzzer {
    rng: StdRng,
    secret: String,
    samples: Vec<(&'static str, Value)>,
    /// Ids the dialect handed out in successful answers.
    ids: Vec<String>,
    present: fn(&str) -> Vec<(String, String)>,
}

/// Values that break naive parsers, as JSON text.
const ADVERSARIAL_JSON: &[&str] = &[
    "null",
    "true",
    "0",
    "-1",
    "-0",
    "1.5",
    "-10000000",
    "1e6",
    "1E400",
    "-1e-400",
    "18446744073709551616",
    "115792089237316195423570985008687907853269984665640564039457584007913129639936",
    "123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890",
    "\"\"",
    "\"10000000\"",
    "\"１０\"",
    "\"0x889fB20cA7D3B2Bbb7bc888F18d1fE68742087Af\"",
    "\"javascript:alert(1)\"",
    "\"https://\"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\u202e\\u0041\"",
    "\"💸💸💸\"",
    "\"../../etc/passwd\"",
    "[]",
    "[1,2,3]",
    "{}",
    "{\"a\":{\"b\":{\"c\":[]}}}",
];

impl Fuzzer {
    /// Each sample body with one field removed, duplicated with an adversarial value, or
    /// replaced by each adversarial value, sent with a valid credential.
    fn edge_cases(&mut self, routes: &[(String, String)]) -> Vec<Request> {
        let mut out = Vec::new();
        for (pattern, sample) in self.samples.clone() {
            // POST where the route takes it: the method samples are bodies for.
            let methods: Vec<&String> = routes
                .iter()
                .filter(|(_, p)| *p == pattern)
                .map(|(m, _)| m)
                .collect();
            let Some(method) = methods.iter().find(|m| **m == "POST").or(methods.first()) else {
                panic!("a sample names {pattern}, which the dialect does not route");
            };
            let Value::Object(map) = sample else { continue };
            let mut bodies = Vec::new();
            for key in map.keys() {
                let mut without = map.clone();
                without.remove(key);
                bodies.push(Value::Object(without).to_string());
                for bad in ADVERSARIAL_JSON {
                    let mut text = Value::Object(map.clone()).to_string();
                    text.pop();
                    bodies.push(format!("{text},{}:{bad}}}", Value::String(key.clone())));
                    let mut replaced = map.clone();
                    if let Ok(value) = serde_json::from_str(bad) {
                        replaced.insert(key.clone(), value);
                        bodies.push(Value::Object(replaced).to_string());
                    }
                }
            }
            for body in bodies {
                let mut headers = (self.present)(&self.secret);
                headers.push(("content-type".into(), "application/json".into()));
                out.push(Request {
                    method: method.to_string(),
                    path: self.path(pattern),
                    headers,
                    body: body.into_bytes(),
                });
            }
        }
        out
    }

    fn request(&mut self, routes: &[(String, String)]) -> Request {
        let (method, pattern) = routes[self.rng.random_range(0..routes.len())].clone();
        let path = self.path(&pattern);
        let mut headers = Vec::new();
        match self.rng.random_range(0..10) {
            0..=4 => headers.extend((self.present)(&self.secret)),
            5 => headers.push(("authorization".into(), "Bearer ".into())),
            6 => {
                // What can travel in a header: no control characters.
                let junk: String = self
                    .adversarial_text()
                    .chars()
                    .filter(|c| !c.is_control())
                    .collect();
                headers.push(("authorization".into(), format!("Bearer {junk}")));
            }
            7 => headers.extend((self.present)(&uuid::Uuid::new_v4().to_string())),
            _ => {}
        }
        if self.rng.random_bool(0.7) {
            let content_type = [
                "application/json",
                "application/x-www-form-urlencoded",
                "text/plain; charset=utf-8",
                "application/json; charset=latin1",
            ][self.rng.random_range(0..4)];
            headers.push(("content-type".into(), content_type.into()));
        }
        let body = if method == "GET" && self.rng.random_bool(0.8) {
            Vec::new()
        } else {
            self.body(&pattern)
        };
        let path = if self.rng.random_bool(0.2) {
            format!("{path}?{}", percent_encode(&self.adversarial_text()))
        } else {
            path
        };
        Request {
            method,
            path,
            headers,
            body,
        }
    }

    /// The route's pattern with every `{param}` filled in.
    fn path(&mut self, pattern: &str) -> String {
        pattern
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    self.segment()
                } else {
                    segment.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    fn segment(&mut self) -> String {
        let raw = match self.rng.random_range(0..8) {
            0 | 1 if !self.ids.is_empty() => {
                self.ids[self.rng.random_range(0..self.ids.len())].clone()
            }
            2 => uuid::Uuid::new_v4().to_string(),
            3 => "../../../etc/passwd".into(),
            4 => "x".repeat(self.rng.random_range(1..4000)),
            5 => "00000000-0000-0000-0000-000000000000".into(),
            _ => self.adversarial_text(),
        };
        let encoded = percent_encode(&raw);
        // The host's router never sees dot segments or empty ones (clients remove them).
        if encoded.is_empty() || encoded.trim_matches('.').is_empty() {
            "x".into()
        } else {
            encoded
        }
    }

    fn adversarial_text(&mut self) -> String {
        let choices = [
            "",
            " ",
            "💸",
            "\u{202e}gnp.exe",
            "<script>alert(1)</script>",
            "' OR '1'='1",
            "%00",
            "\0",
            "-1",
            "1e400",
            "ünïcödé",
            "\r\nX-Injected: 1",
        ];
        let mut text = choices[self.rng.random_range(0..choices.len())].to_owned();
        if self.rng.random_bool(0.3) {
            text = text.repeat(self.rng.random_range(2..200));
        }
        text
    }

    fn body(&mut self, pattern: &str) -> Vec<u8> {
        let sample = self
            .samples
            .iter()
            .find(|(p, _)| *p == pattern)
            .map(|(_, v)| v.clone());
        match (self.rng.random_range(0..10), sample) {
            (0..=5, Some(sample)) => self.mutate(sample),
            (6, _) => (0..self.rng.random_range(0..512))
                .map(|_| self.rng.random::<u8>())
                .collect(),
            (7, _) => {
                // Exactly the body cap: a JSON string of 1 MiB.
                let mut body = b"{\"title\":\"".to_vec();
                body.resize((1 << 20) - 2, b'a');
                body.extend_from_slice(b"\"}");
                body
            }
            (8, _) => {
                let depth = self.rng.random_range(1..300);
                format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
            }
            _ => ADVERSARIAL_JSON[self.rng.random_range(0..ADVERSARIAL_JSON.len())]
                .as_bytes()
                .to_vec(),
        }
    }

    /// A valid body with one thing wrong (or a few).
    fn mutate(&mut self, sample: Value) -> Vec<u8> {
        let Value::Object(mut map) = sample else {
            return sample.to_string().into_bytes();
        };
        let keys: Vec<String> = map.keys().cloned().collect();
        let mut duplicate = None;
        for _ in 0..self.rng.random_range(1..3) {
            let key = keys[self.rng.random_range(0..keys.len())].clone();
            match self.rng.random_range(0..6) {
                0 => {
                    map.remove(&key);
                }
                1 => {
                    let bad = ADVERSARIAL_JSON[self.rng.random_range(0..ADVERSARIAL_JSON.len())];
                    duplicate = Some((key, bad.to_owned()));
                }
                2 => {
                    map.insert(key, Value::String(self.adversarial_text()));
                }
                3 => {
                    map.insert(
                        key,
                        Value::String("x".repeat(self.rng.random_range(1..100_000))),
                    );
                }
                _ => {
                    let bad = ADVERSARIAL_JSON[self.rng.random_range(0..ADVERSARIAL_JSON.len())];
                    map.insert(key, serde_json::from_str(bad).unwrap_or(Value::Null));
                }
            }
        }
        let mut text = Value::Object(map).to_string();
        if let Some((key, value)) = duplicate {
            // The same key twice, the second one adversarial: raw text, as JSON allows it.
            text.pop();
            text.push_str(&format!(",{}:{value}}}", Value::String(key)));
        }
        text.into_bytes()
    }

    /// Remembers the ids (UUIDs) in a successful answer, to use them in later paths.
    fn harvest_ids(&mut self, body: &[u8]) {
        let text = String::from_utf8_lossy(body);
        for word in text.split(|c: char| !(c.is_ascii_hexdigit() || c == '-')) {
            if word.len() == 36
                && uuid::Uuid::parse_str(word).is_ok()
                && !self.ids.contains(&word.to_owned())
            {
                self.ids.push(word.to_owned());
            }
        }
    }
}

/// Percent-encodes everything but unreserved characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn the_error_shape_predicate_recognises_trino_errors_only() {
    let shape = trino_error_shape;
    assert!(shape(
        404,
        br#"{"status":404,"type":"INVOICE_NOT_FOUND","title":"Invoice not found"}"#
    ));
    assert!(shape(
        400,
        br#"{"status":400,"type":"generic","title":"Bad Request","validationErrors":[{"key":"a","in":"body","error":"e"}]}"#
    ));
    assert!(!shape(
        400,
        br#"{"status":404,"type":"generic","title":"Bad Request"}"#
    ));
    assert!(!shape(
        500,
        br#"{"error":"internal error","request_id":"x"}"#
    ));
    assert!(!shape(401, b""));
}
