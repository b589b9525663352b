//! Second-factor fixtures: the codes an authenticator app shows, and the one-time codes the
//! host handed to the operator's gateway (read from the outbox, where the delivery waits).

use polypay_host::store::Store;
use serde_json::Value;
use sqlx::Row;

/// The code an authenticator shows for `seed` at `unix_secs` (RFC 6238: SHA-1, 6 digits,
/// 30 s).
pub fn totp_code(seed: &[u8], unix_secs: u64) -> String {
    totp_rs::TOTP::new_unchecked(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        seed.to_vec(),
        None,
        String::new(),
    )
    .generate(unix_secs)
}

/// A code that is wrong for `seed` around `unix_secs` (the step before it to two after).
pub fn wrong_code(seed: &[u8], unix_secs: u64) -> String {
    let near: Vec<String> = [unix_secs - 30, unix_secs, unix_secs + 30, unix_secs + 60]
        .iter()
        .map(|t| totp_code(seed, *t))
        .collect();
    (1..)
        .map(|n| format!("{:06}", n * 7919 % 1_000_000))
        .find(|c| !near.contains(c))
        .unwrap()
}

/// The seed in an `otpauth://` URI.
pub fn otpauth_seed(uri: &str) -> Vec<u8> {
    let secret = reqwest::Url::parse(uri)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "secret")
        .expect("a secret in the URI")
        .1
        .into_owned();
    totp_rs::Secret::Encoded(secret).to_bytes().unwrap()
}

/// The body of the delivery the host queued for a challenge.
pub async fn delivery_of(store: &Store, challenge_id: &str) -> Value {
    let rows = sqlx::query("SELECT payload FROM outbox_events WHERE kind = 'two_factor.code'")
        .fetch_all(store.pool())
        .await
        .unwrap();
    for row in rows {
        let payload: Value = serde_json::from_str(&row.get::<String, _>("payload")).unwrap();
        let body: Value = serde_json::from_str(payload["body"].as_str().unwrap()).unwrap();
        if body["challenge_id"] == challenge_id {
            return body;
        }
    }
    panic!("no delivery for challenge {challenge_id}");
}

/// The code of a challenge, as the gateway receives it.
pub async fn delivered_code(store: &Store, challenge_id: &str) -> String {
    delivery_of(store, challenge_id).await["code"]
        .as_str()
        .unwrap()
        .to_string()
}
