//! The `two-factor` capability: TOTP (RFC 6238 vectors read through the host's clock,
//! replay, the ±1 step window), one-time codes (delivery through the outbox to a loopback
//! gateway, expiry, single use), failure counting and exhaustion at three, what is stored
//! (raw rows), and scoping between two plugins, on both database backends; then the same
//! capability through a real plugin over loopback HTTP.

mod common;
mod webhook_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use common::db::TestDb;
use common::plugins::TestApp;
use common::two_factor::{delivered_code, otpauth_seed, totp_code, wrong_code};
use polypay_host::merchant::MasterKey;
use polypay_host::plugin::PluginConfig;
use polypay_host::store::Store;
use polypay_host::store::outbox::DeliveryState;
use polypay_host::two_factor::{
    Channel, Delivery, TwoFactor, TwoFactorConfig, TwoFactorError, Verification,
};
use polypay_host::webhook::NoPlugins;
use polypay_plugin_artifacts::TEST_ECHO;
use serde_json::{Value, json};
use sqlx::Row;
use webhook_support::{Receiver, Running, eventually, fast_config};

/// The RFC 6238 SHA-1 seed, ASCII "12345678901234567890", in base32.
const RFC_SEED_BASE32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const PLUGIN: &str = "bank";
const OTHER_PLUGIN: &str = "other";

/// A clock the test sets (unix ms).
#[derive(Clone, Default)]
struct TestClock(Arc<AtomicI64>);

impl TestClock {
    fn at(ms: i64) -> TestClock {
        TestClock(Arc::new(AtomicI64::new(ms)))
    }
    fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
    fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    fn clock(&self) -> polypay_host::two_factor::Clock {
        let inner = self.0.clone();
        Arc::new(move || inner.load(Ordering::SeqCst))
    }
}

fn key() -> MasterKey {
    MasterKey::from_bytes(&[7; 32])
}

async fn service(store: &Store, delivery: Delivery, clock: &TestClock) -> TwoFactor {
    TwoFactor::new(store.clone(), key(), TwoFactorConfig::default(), delivery)
        .with_clock(clock.clock())
}

fn webhook_delivery(url: &str) -> Delivery {
    Delivery::Webhook {
        url: url.to_string(),
        secret: Some("gateway-secret".into()),
    }
}

on_both_backends!(
    totp_accepts_the_rfc_6238_vectors_at_their_times,
    a_totp_code_is_accepted_once_and_no_earlier_step_after_it,
    totp_window_is_one_step_either_side,
    wrong_codes_count_and_the_third_exhausts_the_context,
    one_time_code_is_delivered_through_the_outbox_and_accepted_once,
    one_time_codes_expire,
    one_time_code_is_bound_to_its_subject_and_context,
    seeds_and_codes_are_not_stored_in_clear,
    everything_is_scoped_to_the_calling_plugin,
    sending_codes_is_rate_limited_per_subject,
);

async fn totp_accepts_the_rfc_6238_vectors_at_their_times(db: TestDb) {
    let store = db.store().await;
    let clock = TestClock::at(0);
    let tf = service(&store, Delivery::None, &clock).await;
    tf.import_totp(PLUGIN, "u1", RFC_SEED_BASE32).await.unwrap();
    // RFC 6238 appendix B (SHA-1), the last six of the eight digits.
    for (time, code) in [
        (59i64, "287082"),
        (1111111109, "081804"),
        (1111111111, "050471"),
        (1234567890, "005924"),
        (2000000000, "279037"),
        (20000000000, "353130"),
    ] {
        clock.set(time * 1000);
        let context = format!("order-{time}");
        assert_eq!(
            tf.verify_totp(PLUGIN, "u1", &context, code).await.unwrap(),
            Verification::Accepted,
            "RFC 6238 vector at T={time}"
        );
    }
}

async fn a_totp_code_is_accepted_once_and_no_earlier_step_after_it(db: TestDb) {
    let store = db.store().await;
    let clock = TestClock::at(1_111_111_111_000);
    let tf = service(&store, Delivery::None, &clock).await;
    tf.import_totp(PLUGIN, "u1", RFC_SEED_BASE32).await.unwrap();
    let seed = b"12345678901234567890";
    let now = 1_111_111_111u64;
    let code = totp_code(seed, now);
    assert_eq!(
        tf.verify_totp(PLUGIN, "u1", "o1", &code).await.unwrap(),
        Verification::Accepted
    );
    assert_eq!(
        tf.verify_totp(PLUGIN, "u1", "o2", &code).await.unwrap(),
        Verification::Rejected { remaining: 2 },
        "the same code again, even in another context, is a failure"
    );
    // The previous step's code is inside the window but older than the used one.
    let earlier = totp_code(seed, now - 30);
    assert_eq!(
        tf.verify_totp(PLUGIN, "u1", "o3", &earlier).await.unwrap(),
        Verification::Rejected { remaining: 2 }
    );
    // The next step's code is still fresh.
    clock.advance(30_000);
    assert_eq!(
        tf.verify_totp(PLUGIN, "u1", "o4", &totp_code(seed, now + 30))
            .await
            .unwrap(),
        Verification::Accepted
    );
}

async fn totp_window_is_one_step_either_side(db: TestDb) {
    let store = db.store().await;
    let clock = TestClock::at(0);
    let tf = service(&store, Delivery::None, &clock).await;
    let seed = b"12345678901234567890";
    let t = 1_234_567_890u64; // step 41152263, 0 s into it
    for (subject, code_time, accepted) in [
        ("behind", t - 30, true),
        ("ahead", t + 30, true),
        ("two-behind", t - 60, false),
        ("two-ahead", t + 60, false),
    ] {
        tf.import_totp(PLUGIN, subject, RFC_SEED_BASE32)
            .await
            .unwrap();
        clock.set(t as i64 * 1000);
        let verdict = tf
            .verify_totp(PLUGIN, subject, "o", &totp_code(seed, code_time))
            .await
            .unwrap();
        assert_eq!(
            verdict == Verification::Accepted,
            accepted,
            "{subject}: {verdict:?}"
        );
    }
}

async fn wrong_codes_count_and_the_third_exhausts_the_context(db: TestDb) {
    let store = db.store().await;
    let clock = TestClock::at(1_700_000_000_000);
    let receiver = Receiver::accepting().await;
    let tf = service(&store, webhook_delivery(&receiver.url("/sms")), &clock).await;
    tf.import_totp(PLUGIN, "u1", RFC_SEED_BASE32).await.unwrap();
    let seed = b"12345678901234567890";
    let wrong = wrong_code(seed, 1_700_000_000);
    let verdicts = [
        tf.verify_totp(PLUGIN, "u1", "order-1", &wrong)
            .await
            .unwrap(),
        tf.verify_totp(PLUGIN, "u1", "order-1", "not a code")
            .await
            .unwrap(),
    ];
    assert_eq!(
        verdicts,
        [
            Verification::Rejected { remaining: 2 },
            Verification::Rejected { remaining: 1 }
        ]
    );
    // A wrong one-time code counts in the same context.
    let challenge = tf
        .send_code(PLUGIN, "u1", "order-1", Channel::Mobile, "+8618600000001")
        .await
        .unwrap();
    assert_eq!(
        tf.verify_code(PLUGIN, "u1", "order-1", &challenge, "000000x")
            .await
            .unwrap(),
        Verification::Exhausted
    );
    let state = tf.context_state(PLUGIN, "u1", "order-1").await.unwrap();
    assert_eq!((state.failures, state.exhausted), (3, true));
    // Exhausted: even the right codes are refused, and no new code is sent.
    let right = totp_code(seed, 1_700_000_000);
    assert_eq!(
        tf.verify_totp(PLUGIN, "u1", "order-1", &right)
            .await
            .unwrap(),
        Verification::Exhausted
    );
    let code = delivered_code(&store, &challenge).await;
    assert_eq!(
        tf.verify_code(PLUGIN, "u1", "order-1", &challenge, &code)
            .await
            .unwrap(),
        Verification::Exhausted
    );
    assert!(matches!(
        tf.send_code(PLUGIN, "u1", "order-1", Channel::Mobile, "+8618600000001")
            .await,
        Err(TwoFactorError::Conflict(_))
    ));
    assert_eq!(
        tf.context_state(PLUGIN, "u1", "order-1")
            .await
            .unwrap()
            .failures,
        3,
        "verifications in an exhausted context are not counted further"
    );
    // Another context of the same user is untouched.
    assert_eq!(
        tf.verify_totp(PLUGIN, "u1", "order-2", &right)
            .await
            .unwrap(),
        Verification::Accepted
    );
}

async fn one_time_code_is_delivered_through_the_outbox_and_accepted_once(db: TestDb) {
    let store = db.store().await;
    let clock = TestClock::at(polypay_host::store::now_ms());
    let receiver = Receiver::accepting().await;
    let tf = service(&store, webhook_delivery(&receiver.url("/sms")), &clock).await;
    let challenge = tf
        .send_code(PLUGIN, "u1", "order-9", Channel::Email, "z.n@163.com")
        .await
        .unwrap();
    assert!(
        challenge.parse::<u64>().is_ok(),
        "a decimal 64-bit id: {challenge}"
    );

    let running = Running::start(&store, fast_config(), Arc::new(NoPlugins));
    eventually(
        "the code reaches the gateway",
        Duration::from_secs(10),
        || {
            let receiver = receiver.clone();
            async move { (receiver.count() == 1).then_some(()) }
        },
    )
    .await;
    running.stop().await;
    let got = receiver.received().remove(0);
    assert_eq!((got.method.as_str(), got.path.as_str()), ("POST", "/sms"));
    assert_eq!(got.header("content-type"), Some("application/json"));
    let expected_signature = format!(
        "sha256={}",
        common::plugins::hmac_sha256_hex(b"gateway-secret", &got.body)
    );
    assert_eq!(
        got.header("x-polypay-signature"),
        Some(expected_signature.as_str())
    );
    let body = got.json();
    assert_eq!(body["type"], "two_factor.code");
    assert_eq!(body["plugin"], PLUGIN);
    assert_eq!(body["channel"], "email");
    assert_eq!(body["destination"], "z.n@163.com");
    assert_eq!(body["challenge_id"], challenge.as_str());
    let code = body["code"].as_str().unwrap().to_string();
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()));
    let state: String =
        sqlx::query_scalar("SELECT state FROM outbox_events WHERE kind = 'two_factor.code'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(state, DeliveryState::Delivered.as_str());

    assert_eq!(
        tf.verify_code(PLUGIN, "u1", "order-9", &challenge, &code)
            .await
            .unwrap(),
        Verification::Accepted
    );
    assert_eq!(
        tf.verify_code(PLUGIN, "u1", "order-9", &challenge, &code)
            .await
            .unwrap(),
        Verification::Rejected { remaining: 2 },
        "a code is accepted once"
    );
}

async fn one_time_codes_expire(db: TestDb) {
    let store = db.store().await;
    let clock = TestClock::at(1_700_000_000_000);
    let tf = service(&store, webhook_delivery("https://sms.example/send"), &clock).await;
    let challenge = tf
        .send_code(PLUGIN, "u1", "order-1", Channel::Mobile, "+8618600000001")
        .await
        .unwrap();
    let code = delivered_code(&store, &challenge).await;
    let ttl_ms = i64::from(TwoFactorConfig::default().code_ttl_secs) * 1000;
    clock.advance(ttl_ms);
    assert_eq!(
        tf.verify_code(PLUGIN, "u1", "order-1", &challenge, &code)
            .await
            .unwrap(),
        Verification::Rejected { remaining: 2 },
        "at its expiry the code is refused"
    );
    // Just before expiry it would have been accepted.
    let second = tf
        .send_code(PLUGIN, "u1", "order-1", Channel::Mobile, "+8618600000001")
        .await
        .unwrap();
    let code = delivered_code(&store, &second).await;
    clock.advance(ttl_ms - 1);
    assert_eq!(
        tf.verify_code(PLUGIN, "u1", "order-1", &second, &code)
            .await
            .unwrap(),
        Verification::Accepted
    );
}

async fn one_time_code_is_bound_to_its_subject_and_context(db: TestDb) {
    let store = db.store().await;
    let clock = TestClock::at(1_700_000_000_000);
    let tf = service(&store, webhook_delivery("https://sms.example/send"), &clock).await;
    let challenge = tf
        .send_code(PLUGIN, "u1", "order-1", Channel::Mobile, "+8618600000001")
        .await
        .unwrap();
    let code = delivered_code(&store, &challenge).await;
    for (subject, context) in [("u1", "order-2"), ("u2", "order-1")] {
        assert_eq!(
            tf.verify_code(PLUGIN, subject, context, &challenge, &code)
                .await
                .unwrap(),
            Verification::Rejected { remaining: 2 },
            "{subject}/{context}"
        );
    }
    assert_eq!(
        tf.verify_code(PLUGIN, "u1", "order-1", "12345", &code)
            .await
            .unwrap(),
        Verification::Rejected { remaining: 2 },
        "unknown challenge"
    );
    assert_eq!(
        tf.verify_code(PLUGIN, "u1", "order-1", &challenge, &code)
            .await
            .unwrap(),
        Verification::Accepted
    );
}

async fn seeds_and_codes_are_not_stored_in_clear(db: TestDb) {
    let store = db.store().await;
    let clock = TestClock::at(1_700_000_000_000);
    let tf = service(&store, webhook_delivery("https://sms.example/send"), &clock).await;
    let uri = tf.enrol_totp(PLUGIN, "u1", "Bank", "alice").await.unwrap();
    assert!(uri.starts_with("otpauth://totp/Bank:alice?"), "{uri}");
    let url = reqwest::Url::parse(&uri).unwrap();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["issuer"], "Bank");
    assert_eq!(query.get("digits").map_or("6", |d| d.as_str()), "6");
    assert_eq!(query.get("period").map_or("30", |d| d.as_str()), "30");
    assert_eq!(
        query.get("algorithm").map_or("SHA1", |d| d.as_str()),
        "SHA1"
    );
    let secret_b32 = query["secret"].clone();
    let seed = totp_rs::Secret::Encoded(secret_b32.clone())
        .to_bytes()
        .unwrap();
    assert_eq!(seed.len(), 20, "160-bit seed");

    let row = sqlx::query("SELECT * FROM two_factor_totp WHERE plugin = $1 AND subject = 'u1'")
        .bind(PLUGIN)
        .fetch_one(store.pool())
        .await
        .unwrap();
    let sealed: Vec<u8> = row.get("sealed");
    assert!(!contains(&sealed, &seed), "the raw seed is in the row");
    assert!(
        !contains(&sealed, secret_b32.as_bytes()),
        "the base32 seed is in the row"
    );
    assert_ne!(sealed.len(), seed.len());
    // The seed works: the enrolled authenticator's code is accepted.
    let code = totp_code(&seed, 1_700_000_000);
    assert_eq!(
        tf.verify_totp(PLUGIN, "u1", "o", &code).await.unwrap(),
        Verification::Accepted
    );
    // A second enrolment does not replace the seed.
    assert!(matches!(
        tf.enrol_totp(PLUGIN, "u1", "Bank", "alice").await,
        Err(TwoFactorError::Conflict(_))
    ));

    let challenge = tf
        .send_code(PLUGIN, "u1", "o2", Channel::Mobile, "+8618600000001")
        .await
        .unwrap();
    let row = sqlx::query("SELECT code_hash FROM two_factor_codes WHERE id = $1")
        .bind(&challenge)
        .fetch_one(store.pool())
        .await
        .unwrap();
    let hash: String = row.get("code_hash");
    let code = delivered_code(&store, &challenge).await;
    assert_eq!(hash.len(), 64, "a keyed SHA-256 hash");
    assert!(!hash.contains(&code));
    use sha2::Digest;
    assert_ne!(
        hash,
        hex::encode(sha2::Sha256::digest(code.as_bytes())),
        "the code hash is keyed: a dump cannot be brute-forced over a million codes"
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn everything_is_scoped_to_the_calling_plugin(db: TestDb) {
    let store = db.store().await;
    let clock = TestClock::at(1_700_000_000_000);
    let tf = service(&store, webhook_delivery("https://sms.example/send"), &clock).await;
    tf.import_totp(PLUGIN, "u1", RFC_SEED_BASE32).await.unwrap();
    let code = totp_code(b"12345678901234567890", 1_700_000_000);
    assert!(tf.has_totp(PLUGIN, "u1").await.unwrap());
    assert!(!tf.has_totp(OTHER_PLUGIN, "u1").await.unwrap());
    assert!(matches!(
        tf.verify_totp(OTHER_PLUGIN, "u1", "o", &code).await,
        Err(TwoFactorError::NotFound)
    ));
    assert!(matches!(
        tf.remove_totp(OTHER_PLUGIN, "u1").await,
        Err(TwoFactorError::NotFound)
    ));
    // The other plugin's user "u1" is another user: it may enrol its own seed.
    tf.enrol_totp(OTHER_PLUGIN, "u1", "Other", "bob")
        .await
        .unwrap();

    let challenge = tf
        .send_code(PLUGIN, "u1", "o", Channel::Mobile, "+8618600000001")
        .await
        .unwrap();
    let sms = delivered_code(&store, &challenge).await;
    assert_eq!(
        tf.verify_code(OTHER_PLUGIN, "u1", "o", &challenge, &sms)
            .await
            .unwrap(),
        Verification::Rejected { remaining: 2 },
        "another plugin cannot use the challenge"
    );
    // Failures of one plugin's context are not the other's.
    assert_eq!(
        tf.context_state(PLUGIN, "u1", "o").await.unwrap().failures,
        0
    );
    assert_eq!(
        tf.verify_totp(PLUGIN, "u1", "o", &code).await.unwrap(),
        Verification::Accepted
    );
    assert_eq!(
        tf.verify_code(PLUGIN, "u1", "o", &challenge, &sms)
            .await
            .unwrap(),
        Verification::Accepted
    );
}

async fn sending_codes_is_rate_limited_per_subject(db: TestDb) {
    let store = db.store().await;
    let clock = TestClock::at(1_700_000_000_000);
    let tf = service(&store, webhook_delivery("https://sms.example/send"), &clock).await;
    let limit = TwoFactorConfig::default().max_codes_per_window;
    for n in 0..limit {
        tf.send_code(PLUGIN, "u1", &format!("o{n}"), Channel::Mobile, "+861")
            .await
            .unwrap();
    }
    assert!(matches!(
        tf.send_code(PLUGIN, "u1", "again", Channel::Mobile, "+861")
            .await,
        Err(TwoFactorError::RateLimited { .. })
    ));
    tf.send_code(PLUGIN, "u2", "o", Channel::Mobile, "+862")
        .await
        .expect("another subject is not limited");
    clock.advance(i64::from(TwoFactorConfig::default().send_window_secs) * 1000 + 1);
    tf.send_code(PLUGIN, "u1", "again", Channel::Mobile, "+861")
        .await
        .expect("the window passed");
}

// Through a real plugin over loopback HTTP: the capability is wired, answers in the WIT's
// words, and keys everything by the calling plugin.

async fn two_echoes(delivery: Delivery) -> TestApp {
    let mut builder = TestApp::init()
        .with_plugin(PluginConfig::new("echo", TEST_ECHO))
        .with_plugin(PluginConfig::new("echo-b", TEST_ECHO).with_prefix("/b"))
        .with_storage()
        .await;
    let storage = builder.storage.as_ref().unwrap();
    let tf = TwoFactor::new(
        storage.store.clone(),
        storage.merchants.master_key().clone(),
        TwoFactorConfig::default(),
        delivery,
    );
    builder.services = builder.services.with_two_factor(tf);
    builder.start().await
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let response = app.post_json(path, &body).await;
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_enrol_and_verify_totp_through_the_capability_each_in_its_own_scope() {
    let app = two_echoes(Delivery::Log).await;
    let (status, enrolled) = post(&app, "/echo/2fa/alice/enrol", json!({})).await;
    assert_eq!(status, 200, "{enrolled}");
    let uri = enrolled["uri"].as_str().unwrap();
    let seed = otpauth_seed(uri);
    let now = polypay_host::store::now_ms() as u64 / 1000;
    let code = totp_code(&seed, now);

    // The other plugin does not know alice.
    let (status, answer) = post(
        &app,
        "/b/echo/2fa/alice/verify-totp",
        json!({ "context": "o1", "code": code }),
    )
    .await;
    assert_eq!((status, answer["error"].as_str()), (404, Some("not-found")));

    let (status, answer) = post(
        &app,
        "/echo/2fa/alice/verify-totp",
        json!({ "context": "o1", "code": code }),
    )
    .await;
    assert_eq!((status, answer), (200, json!({ "verdict": "accepted" })));
    let (_, answer) = post(
        &app,
        "/echo/2fa/alice/verify-totp",
        json!({ "context": "o1", "code": code }),
    )
    .await;
    assert_eq!(answer, json!({ "verdict": "rejected", "remaining": 2 }));

    // Failures in plugin A's context do not show in plugin B's context of the same names.
    let state_a = app
        .get("/echo/2fa/alice/context/o1")
        .await
        .json::<Value>()
        .await
        .unwrap();
    let state_b = app
        .get("/b/echo/2fa/alice/context/o1")
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(state_a, json!({ "failures": 1, "exhausted": false }));
    assert_eq!(state_b, json!({ "failures": 0, "exhausted": false }));

    // Bad input is the WIT's `invalid`.
    let (status, answer) = post(
        &app,
        "/echo/2fa/alice/verify-totp",
        json!({ "context": "", "code": code }),
    )
    .await;
    assert_eq!((status, answer["error"].as_str()), (400, Some("invalid")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_delivery_send_code_is_unsupported() {
    let app = two_echoes(Delivery::None).await;
    let (status, answer) = post(
        &app,
        "/echo/2fa/alice/send-code",
        json!({ "context": "o1", "channel": "mobile", "destination": "+8618600000001" }),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (422, Some("unsupported"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_sends_a_code_that_only_it_can_verify() {
    let app = two_echoes(webhook_delivery("https://sms.example/send")).await;
    let (status, sent) = post(
        &app,
        "/echo/2fa/alice/send-code",
        json!({ "context": "o1", "channel": "mobile", "destination": "+8618600000001" }),
    )
    .await;
    assert_eq!(status, 200, "{sent}");
    let challenge = sent["challenge_id"].as_str().unwrap().to_string();
    let store = &app.storage().store;
    let code = delivered_code(store, &challenge).await;
    let plugin: String =
        sqlx::query_scalar("SELECT plugin FROM outbox_events WHERE kind = 'two_factor.code'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(plugin, "echo");
    let body = json!({ "context": "o1", "challenge_id": challenge, "code": code });
    let (_, answer) = post(&app, "/b/echo/2fa/alice/verify-code", body.clone()).await;
    assert_eq!(answer, json!({ "verdict": "rejected", "remaining": 2 }));
    let (_, answer) = post(&app, "/echo/2fa/alice/verify-code", body).await;
    assert_eq!(answer, json!({ "verdict": "accepted" }));
}
