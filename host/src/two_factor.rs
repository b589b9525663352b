//! Two-factor confirmation of a user's action: TOTP authenticators ("GA") and one-time
//! codes sent by SMS or e-mail. Plugins reach it through the WIT `two-factor` interface
//! (`crate::plugin`), which passes the calling plugin's name: every row here belongs to a
//! plugin, so two plugins' users never meet.
//!
//! What it owns and the decisions taken where the contract is silent:
//! - **TOTP** (RFC 6238 through `totp-rs`): HMAC-SHA1, 6 digits, 30-second steps, the
//!   current step ±1 accepted. The step a code matched is stored as the subject's
//!   `last_step`; a code of that step or any earlier one is refused afterwards, so a code
//!   works once even inside its window. Seeds are 160 random bits (the RFC's SHA-1 key
//!   length), or imported (128 to 512 bits), and are sealed with the master key like
//!   merchant secrets ([`MasterKey::seal`], associated data naming plugin and subject, so a
//!   sealed seed copied to another row does not open). The plaintext leaves once, in the
//!   `otpauth://` URI of the enrolment.
//! - **One-time codes**: 6 digits drawn uniformly from the operating system's CSPRNG
//!   (`rand`'s thread generator, reseeded from it), stored only as a keyed hash
//!   ([`MasterKey::lookup_hash`], keyed by a master-key derivative, the challenge id mixed
//!   in), valid for `code_ttl_secs` and once. A subject gets at most
//!   `max_codes_per_window` codes per `send_window_secs`, counted in the database (so
//!   across instances): a plugin cannot turn the operator's gateway into a message
//!   cannon. The challenge id is a random positive 63-bit integer in decimal (the
//!   seeds' `verify_code_order_id` is a 64-bit id).
//! - **Delivery** ([`Delivery`]): with `[two_factor] delivery_url` the code is handed to
//!   the operator's SMS / e-mail gateway as a webhook through the outbox (event kind
//!   [`DELIVERY_EVENT_KIND`], written in the transaction that creates the challenge, sent by
//!   the webhook workers with their retries and target policy; see [`render_delivery`] for
//!   the body). The outbox row holds the code until the event finishes: the gateway needs
//!   it in clear, and it expires within minutes. A delivery still pending when the code
//!   has expired is skipped, not sent. Without a URL, development mode writes the code to
//!   the log and production refuses to send (`unsupported`).
//! - **Failures** are counted per (plugin, subject, context) over both methods: a wrong,
//!   malformed, replayed or expired code or an unknown challenge is one failure; the third
//!   exhausts the context, after which nothing in it is checked any more. Verification
//!   runs in one transaction that first takes the context's row (PostgreSQL: `FOR UPDATE`;
//!   SQLite: the single writer), so concurrent guesses cannot exceed three checks.
//! - Codes are compared in constant time; the three TOTP candidates are all compared.

use std::sync::Arc;

use hmac::{Hmac, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use totp_rs::{Algorithm, Secret, TOTP};

use crate::merchant::{MasterKey, constant_time_eq};
use crate::store::two_factor as queries;
use crate::store::{Store, StoreError};

/// Failed verifications that exhaust a context.
pub const MAX_FAILURES: u32 = 3;
/// TOTP time step in seconds.
pub const TOTP_STEP_SECS: i64 = 30;
/// Digits of every code.
pub const CODE_DIGITS: usize = 6;
/// The outbox event kind of a code delivery.
pub const DELIVERY_EVENT_KIND: &str = "two_factor.code";
/// Version of the delivery payload stored in the outbox.
const DELIVERY_PAYLOAD_VERSION: u32 = 1;
/// Longest subject, context and issuer/label accepted.
const MAX_NAME: usize = 128;
const MAX_LABEL: usize = 64;
const MAX_DESTINATION: usize = 256;

/// The `[two_factor]` config section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TwoFactorConfig {
    /// The operator's SMS / e-mail gateway: every one-time code is POSTed there as JSON
    /// (see [`render_delivery`]). Unset: codes are logged in development mode and not sent
    /// at all in production.
    pub delivery_url: Option<String>,
    /// When set, each delivery carries `x-polypay-signature: sha256=<hex HMAC-SHA256 of
    /// the body keyed with this text>`, so the gateway can tell it comes from polypay.
    pub delivery_secret: Option<String>,
    /// How long a one-time code is valid, in seconds.
    pub code_ttl_secs: u32,
    /// Codes one subject may be sent per `send_window_secs`.
    pub max_codes_per_window: u32,
    pub send_window_secs: u32,
}

impl Default for TwoFactorConfig {
    fn default() -> Self {
        TwoFactorConfig {
            delivery_url: None,
            delivery_secret: None,
            code_ttl_secs: 300,
            max_codes_per_window: 5,
            send_window_secs: 600,
        }
    }
}

impl TwoFactorConfig {
    /// Checks the section (start-up).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(url) = &self.delivery_url {
            let parsed = reqwest::Url::parse(url).map_err(|e| format!("delivery_url: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err("delivery_url must be an http(s) URL".into());
            }
        }
        if !(30..=3600).contains(&self.code_ttl_secs) {
            return Err("code_ttl_secs must be 30 to 3600".into());
        }
        if self.max_codes_per_window == 0 || self.send_window_secs == 0 {
            return Err("max_codes_per_window and send_window_secs must be positive".into());
        }
        Ok(())
    }

    /// Where codes go, given the server's mode.
    pub fn delivery(&self, development: bool) -> Delivery {
        match &self.delivery_url {
            Some(url) => Delivery::Webhook {
                url: url.clone(),
                secret: self.delivery_secret.clone(),
            },
            None if development => Delivery::Log,
            None => Delivery::None,
        }
    }
}

/// Where one-time codes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// POSTed to the operator's gateway through the webhook outbox.
    Webhook { url: String, secret: Option<String> },
    /// Written to the host's log (development only).
    Log,
    /// Not configured: `send-code` is unsupported.
    None,
}

/// Where a one-time code is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Mobile,
    Email,
}

crate::stable_names!(Channel, "two-factor channel", {
    Mobile => "mobile",
    Email => "email",
});

/// The outcome of one verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    Accepted,
    /// Failures left before the context is exhausted.
    Rejected {
        remaining: u32,
    },
    Exhausted,
}

/// The failures recorded in a context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextState {
    pub failures: u32,
    pub exhausted: bool,
}

/// What the caller got wrong, or what went wrong underneath.
#[derive(Debug, thiserror::Error)]
pub enum TwoFactorError {
    #[error("{0}")]
    Invalid(String),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error(
        "at most {limit} codes per subject every {window_secs} s; retry after {retry_after_ms} ms"
    )]
    RateLimited {
        limit: u32,
        window_secs: u32,
        retry_after_ms: u64,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("a stored TOTP seed does not open with this master key")]
    Corrupt,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for TwoFactorError {
    fn from(e: sqlx::Error) -> Self {
        TwoFactorError::Store(e.into())
    }
}

/// The host's clock in unix milliseconds; replaceable so tests can stand at fixed times.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The two-factor service. Cheap to clone.
#[derive(Clone)]
pub struct TwoFactor {
    store: Store,
    key: MasterKey,
    config: Arc<TwoFactorConfig>,
    delivery: Arc<Delivery>,
    clock: Clock,
}

impl std::fmt::Debug for TwoFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwoFactor")
            .field("delivery", &self.delivery)
            .finish_non_exhaustive()
    }
}

impl TwoFactor {
    pub fn new(
        store: Store,
        key: MasterKey,
        config: TwoFactorConfig,
        delivery: Delivery,
    ) -> TwoFactor {
        TwoFactor {
            store,
            key,
            config: Arc::new(config),
            delivery: Arc::new(delivery),
            clock: Arc::new(crate::store::now_ms),
        }
    }

    /// The same service reading time from `clock` (unix ms).
    pub fn with_clock(mut self, clock: Clock) -> TwoFactor {
        self.clock = clock;
        self
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    /// Creates `subject`'s seed and returns its `otpauth://` URI, the one time it is shown.
    pub async fn enrol_totp(
        &self,
        plugin: &str,
        subject: &str,
        issuer: &str,
        label: &str,
    ) -> Result<String, TwoFactorError> {
        check_name("subject", subject)?;
        check_label("issuer", issuer)?;
        check_label("label", label)?;
        let mut seed = vec![0u8; 20];
        rand::rng().fill(&mut seed[..]);
        let totp = TOTP::new(
            Algorithm::SHA1,
            CODE_DIGITS,
            1,
            TOTP_STEP_SECS as u64,
            seed.clone(),
            Some(issuer.to_owned()),
            label.to_owned(),
        )
        .map_err(|e| TwoFactorError::Invalid(format!("{e:?}")))?;
        self.store_seed(plugin, subject, &seed).await?;
        Ok(totp.get_url())
    }

    /// Imports an existing base32 seed for `subject`.
    pub async fn import_totp(
        &self,
        plugin: &str,
        subject: &str,
        secret_base32: &str,
    ) -> Result<(), TwoFactorError> {
        check_name("subject", subject)?;
        let cleaned: String = secret_base32
            .trim_end_matches('=')
            .to_ascii_uppercase()
            .chars()
            .collect();
        let seed = Secret::Encoded(cleaned)
            .to_bytes()
            .map_err(|_| TwoFactorError::Invalid("the seed is not base32".into()))?;
        if !(16..=64).contains(&seed.len()) {
            return Err(TwoFactorError::Invalid(
                "the seed must be 128 to 512 bits".into(),
            ));
        }
        self.store_seed(plugin, subject, &seed).await
    }

    async fn store_seed(
        &self,
        plugin: &str,
        subject: &str,
        seed: &[u8],
    ) -> Result<(), TwoFactorError> {
        let sealed = self.key.seal(&seal_label(plugin, subject), seed);
        let mut tx = self.store.begin().await?;
        match queries::insert_totp(&mut tx, plugin, subject, &sealed, self.now()).await {
            Err(StoreError::Conflict(_)) => {
                return Err(TwoFactorError::Conflict(
                    "the subject already has a TOTP seed".into(),
                ));
            }
            other => other?,
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn has_totp(&self, plugin: &str, subject: &str) -> Result<bool, TwoFactorError> {
        check_name("subject", subject)?;
        let mut conn = self.store.pool().acquire().await?;
        Ok(queries::totp(&mut conn, plugin, subject, false)
            .await?
            .is_some())
    }

    pub async fn remove_totp(&self, plugin: &str, subject: &str) -> Result<(), TwoFactorError> {
        check_name("subject", subject)?;
        let mut tx = self.store.begin().await?;
        if !queries::delete_totp(&mut tx, plugin, subject).await? {
            return Err(TwoFactorError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    /// Checks a TOTP code of `subject` in `context`.
    pub async fn verify_totp(
        &self,
        plugin: &str,
        subject: &str,
        context: &str,
        code: &str,
    ) -> Result<Verification, TwoFactorError> {
        check_name("subject", subject)?;
        check_name("context", context)?;
        let backend = self.store.backend();
        let mut tx = self.store.begin().await?;
        let failures =
            queries::lock_context(&mut tx, backend, plugin, subject, context, self.now()).await?;
        if failures >= MAX_FAILURES {
            return Ok(Verification::Exhausted);
        }
        let Some(row) = queries::totp(
            &mut tx,
            plugin,
            subject,
            backend == crate::store::Backend::Postgres,
        )
        .await?
        else {
            return Err(TwoFactorError::NotFound);
        };
        let seed = self
            .key
            .open(&seal_label(plugin, subject), &row.sealed)
            .map_err(|_| TwoFactorError::Corrupt)?;
        let step = self.now().div_euclid(1000) / TOTP_STEP_SECS;
        let matched = matching_step(&seed, code, step, row.last_step);
        let verdict = match matched {
            Some(step) if queries::advance_totp_step(&mut tx, plugin, subject, step).await? => {
                Verification::Accepted
            }
            _ => fail(&mut tx, plugin, subject, context, failures, self.now()).await?,
        };
        tx.commit().await?;
        Ok(verdict)
    }

    /// Generates a one-time code for `subject` in `context`, hands it to the delivery,
    /// and returns the challenge id.
    pub async fn send_code(
        &self,
        plugin: &str,
        subject: &str,
        context: &str,
        channel: Channel,
        destination: &str,
    ) -> Result<String, TwoFactorError> {
        check_name("subject", subject)?;
        check_name("context", context)?;
        if destination.is_empty()
            || destination.len() > MAX_DESTINATION
            || destination.chars().any(char::is_control)
        {
            return Err(TwoFactorError::Invalid(format!(
                "destination: 1 to {MAX_DESTINATION} printable characters"
            )));
        }
        if *self.delivery == Delivery::None {
            return Err(TwoFactorError::Unsupported(
                "no delivery for one-time codes is configured ([two_factor] delivery_url)".into(),
            ));
        }
        let now = self.now();
        let backend = self.store.backend();
        let mut tx = self.store.begin().await?;
        let failures =
            queries::lock_context(&mut tx, backend, plugin, subject, context, now).await?;
        if failures >= MAX_FAILURES {
            return Err(TwoFactorError::Conflict("the context is exhausted".into()));
        }
        let window_ms = i64::from(self.config.send_window_secs) * 1000;
        let (sent, oldest) =
            queries::codes_sent_since(&mut tx, plugin, subject, now - window_ms).await?;
        if sent >= u64::from(self.config.max_codes_per_window) {
            return Err(TwoFactorError::RateLimited {
                limit: self.config.max_codes_per_window,
                window_secs: self.config.send_window_secs,
                retry_after_ms: (oldest.unwrap_or(now) + window_ms - now).max(1) as u64,
            });
        }
        let (id, code) = {
            let mut rng = rand::rng();
            let id = rng.random_range(1..=i64::MAX).to_string();
            let code = format!("{:06}", rng.random_range(0..1_000_000u32));
            (id, code)
        };
        let expires_at = now + i64::from(self.config.code_ttl_secs) * 1000;
        let challenge = queries::NewChallenge {
            id: &id,
            plugin,
            subject,
            context,
            channel: channel.as_str(),
            code_hash: &self.code_hash(&id, &code),
            created_at: now,
            expires_at,
        };
        queries::insert_challenge(&mut tx, &challenge).await?;
        if let Delivery::Webhook { url, secret } = &*self.delivery {
            let body = serde_json::json!({
                "type": DELIVERY_EVENT_KIND,
                "plugin": plugin,
                "challenge_id": id,
                "channel": channel.as_str(),
                "destination": destination,
                "code": code,
                "expires_at": expires_at,
            })
            .to_string();
            let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
            if let Some(secret) = secret {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
                    .expect("HMAC takes any key length");
                mac.update(body.as_bytes());
                headers.push((
                    "x-polypay-signature".to_owned(),
                    format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
                ));
            }
            let payload = DeliveryPayload {
                version: DELIVERY_PAYLOAD_VERSION,
                url: url.clone(),
                headers,
                body,
                expires_at,
            };
            queries::insert_delivery_event(&mut tx, plugin, &payload.to_json(), now).await?;
        }
        tx.commit().await?;
        if *self.delivery == Delivery::Log {
            tracing::info!(%plugin, %subject, channel = channel.as_str(), %destination, challenge_id = %id, %code, "two-factor code (development: logged, not sent)");
        }
        Ok(id)
    }

    /// Checks a one-time code against its challenge.
    pub async fn verify_code(
        &self,
        plugin: &str,
        subject: &str,
        context: &str,
        challenge_id: &str,
        code: &str,
    ) -> Result<Verification, TwoFactorError> {
        check_name("subject", subject)?;
        check_name("context", context)?;
        let now = self.now();
        let backend = self.store.backend();
        let mut tx = self.store.begin().await?;
        let failures =
            queries::lock_context(&mut tx, backend, plugin, subject, context, now).await?;
        if failures >= MAX_FAILURES {
            return Ok(Verification::Exhausted);
        }
        let challenge = if challenge_id.len() <= 20 {
            queries::challenge(&mut tx, challenge_id).await?
        } else {
            None
        };
        let usable = challenge.filter(|c| {
            c.plugin == plugin
                && c.subject == subject
                && c.context == context
                && c.used_at.is_none()
                && now < c.expires_at
        });
        let right = match &usable {
            Some(c) => {
                well_formed(code)
                    && constant_time_eq(
                        self.code_hash(challenge_id, code).as_bytes(),
                        c.code_hash.as_bytes(),
                    )
            }
            None => false,
        };
        let verdict = if right && queries::use_challenge(&mut tx, challenge_id, now).await? {
            Verification::Accepted
        } else {
            fail(&mut tx, plugin, subject, context, failures, now).await?
        };
        tx.commit().await?;
        Ok(verdict)
    }

    pub async fn context_state(
        &self,
        plugin: &str,
        subject: &str,
        context: &str,
    ) -> Result<ContextState, TwoFactorError> {
        check_name("subject", subject)?;
        check_name("context", context)?;
        let mut conn = self.store.pool().acquire().await?;
        let failures = queries::context_failures(&mut conn, plugin, subject, context).await?;
        Ok(ContextState {
            failures,
            exhausted: failures >= MAX_FAILURES,
        })
    }

    fn code_hash(&self, challenge_id: &str, code: &str) -> String {
        self.key
            .lookup_hash(&format!("two-factor-code/{challenge_id}"), code.as_bytes())
    }
}

/// Records one failure in a context (whose row the transaction holds) and says what it
/// means.
async fn fail(
    tx: &mut crate::store::Tx,
    plugin: &str,
    subject: &str,
    context: &str,
    failures_before: u32,
    now: i64,
) -> Result<Verification, TwoFactorError> {
    let failures = failures_before + 1;
    queries::set_failures(tx, plugin, subject, context, failures, now).await?;
    Ok(if failures >= MAX_FAILURES {
        Verification::Exhausted
    } else {
        Verification::Rejected {
            remaining: MAX_FAILURES - failures,
        }
    })
}

/// The step among `step - 1 ..= step + 1` (and after `last_step`) whose code is `code`.
/// Every candidate is computed and compared, in constant time.
fn matching_step(seed: &[u8], code: &str, step: i64, last_step: Option<i64>) -> Option<i64> {
    let totp = TOTP::new_unchecked(
        Algorithm::SHA1,
        CODE_DIGITS,
        1,
        TOTP_STEP_SECS as u64,
        seed.to_vec(),
        None,
        String::new(),
    );
    let mut matched = None;
    for candidate in [step - 1, step, step + 1] {
        if candidate < 0 {
            continue;
        }
        let expected = totp.generate((candidate * TOTP_STEP_SECS) as u64);
        let fresh = last_step.is_none_or(|last| candidate > last);
        if constant_time_eq(expected.as_bytes(), code.as_bytes()) && fresh && matched.is_none() {
            matched = Some(candidate);
        }
    }
    matched
}

fn well_formed(code: &str) -> bool {
    code.len() == CODE_DIGITS && code.bytes().all(|b| b.is_ascii_digit())
}

fn seal_label(plugin: &str, subject: &str) -> String {
    format!("two-factor/totp\0{plugin}\0{subject}")
}

fn check_name(what: &str, value: &str) -> Result<(), TwoFactorError> {
    if value.is_empty() || value.len() > MAX_NAME {
        return Err(TwoFactorError::Invalid(format!(
            "{what}: 1 to {MAX_NAME} bytes"
        )));
    }
    Ok(())
}

fn check_label(what: &str, value: &str) -> Result<(), TwoFactorError> {
    if value.is_empty()
        || value.chars().count() > MAX_LABEL
        || value.contains(':')
        || value.chars().any(char::is_control)
    {
        return Err(TwoFactorError::Invalid(format!(
            "{what}: 1 to {MAX_LABEL} printable characters, no `:`"
        )));
    }
    Ok(())
}

/// A code delivery as the outbox keeps it: the request, rendered when the code is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryPayload {
    pub version: u32,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub expires_at: i64,
}

impl DeliveryPayload {
    fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a delivery payload serializes")
    }
}

/// The request that delivers a code to the operator's gateway, or `None` when the code has
/// expired (nothing worth sending). The body is JSON:
///
/// ```json
/// {"type": "two_factor.code", "plugin": "bhop-pay", "challenge_id": "4711...",
///  "channel": "mobile" | "email", "destination": "+8618600000001", "code": "123456",
///  "expires_at": 1764581400000}
/// ```
///
/// with `content-type: application/json` and, when `delivery_secret` is set,
/// `x-polypay-signature: sha256=<hex HMAC-SHA256(body)>`. Any 2xx answer counts as
/// delivered; other answers are retried on the host's schedule until the code expires.
pub fn render_delivery(
    payload: &str,
    now: i64,
) -> Result<Option<crate::webhook::RenderedWebhook>, String> {
    let payload: DeliveryPayload =
        serde_json::from_str(payload).map_err(|e| format!("two-factor delivery payload: {e}"))?;
    if payload.version > DELIVERY_PAYLOAD_VERSION {
        return Err(format!(
            "two-factor delivery payload version {} is newer than this polypay reads",
            payload.version
        ));
    }
    if now >= payload.expires_at {
        return Ok(None);
    }
    Ok(Some(crate::webhook::RenderedWebhook {
        method: "POST".into(),
        url: payload.url,
        headers: payload.headers,
        body: payload.body.into_bytes(),
        accept: crate::webhook::Acceptance::AnySuccess,
        retry: crate::webhook::RetryAdvice::HostSchedule,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 seed: the 6-digit code is the last six digits of the
    /// RFC's 8-digit value (the truncation is the same modulo 10^6).
    #[test]
    fn totp_matches_the_rfc_6238_vectors() {
        let seed = b"12345678901234567890";
        for (time, code) in [
            (59i64, "287082"),
            (1111111109, "081804"),
            (1111111111, "050471"),
            (1234567890, "005924"),
            (2000000000, "279037"),
        ] {
            let step = time / TOTP_STEP_SECS;
            assert_eq!(
                matching_step(seed, code, step, None),
                Some(step),
                "t={time}"
            );
        }
    }

    #[test]
    fn the_window_is_one_step_either_side_and_never_backwards() {
        let seed = b"12345678901234567890";
        let step = 1111111109 / TOTP_STEP_SECS;
        assert_eq!(matching_step(seed, "081804", step + 1, None), Some(step));
        assert_eq!(matching_step(seed, "081804", step - 1, None), Some(step));
        assert_eq!(matching_step(seed, "081804", step + 2, None), None);
        assert_eq!(matching_step(seed, "081804", step, Some(step)), None);
        assert_eq!(matching_step(seed, "08180", step, None), None);
    }

    #[test]
    fn expired_deliveries_are_not_sent() {
        let payload = DeliveryPayload {
            version: 1,
            url: "https://sms.example/send".into(),
            headers: vec![],
            body: "{}".into(),
            expires_at: 1000,
        };
        let json = payload.to_json();
        assert!(render_delivery(&json, 999).unwrap().is_some());
        assert!(render_delivery(&json, 1000).unwrap().is_none());
    }
}
