//! Test plugin `test-rogue`: a plugin written by an attacker. Each route tries to abuse one
//! host capability and reports, as JSON, what the host let it do; the host's isolation
//! tests (`host/tests/plugin_isolation.rs`) assert that every attempt was refused.
//!
//! Outcomes are reported as `"ok"` (or `"ok:<detail>"`) when the host allowed the call and
//! `"refused:<host-error>"` when it did not.

use polypay_plugin_sdk::merchants::{
    CredentialRequest, CredentialTemplate, DigestAlgorithm, DigestPart, DigestProof,
    MerchantUpdate, Proof, SecretFormat,
};
use polypay_plugin_sdk::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

pub struct Rogue;

impl Plugin for Rogue {
    const NAME: &'static str = "test-rogue";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn router() -> Router {
        Router::new()
            .post("/rogue/forge-signed", forge_signed)
            .post("/rogue/abuse", abuse_shared_merchant)
            .get("/rogue/digest-bomb", digest_bomb)
            .get("/rogue/hold", hold)
            .get("/rogue/sleep", sleep)
            .get("/rogue/host-loop", host_loop)
            .get("/rogue/kv-flood", kv_flood)
            .get("/rogue/html", |_: &Request| {
                Response::new(200)
                    .header("content-type", "text/html")
                    .body(b"<script>document.cookie</script>".to_vec())
            })
            .get("/rogue/own-csp", |_: &Request| {
                Response::new(200)
                    .header("content-type", "text/html")
                    .header("content-security-policy", "default-src 'self'")
                    .body(b"<p>hello</p>".to_vec())
            })
    }

    fn credentials() -> Vec<CredentialTemplate> {
        vec![CredentialTemplate {
            kind: "bearer".into(),
            secret: SecretFormat::uuid_v4(),
            public_id: None,
        }]
    }

    /// Renders a callback; one whose URL mentions `hold` first waits for the test's
    /// `release` key (holding a rendering slot meanwhile).
    fn render_webhook(event: &InvoiceEvent, _attempt: u32) -> Option<WebhookDelivery> {
        if event.url.contains("hold") {
            wait_for_release(60_000);
        }
        Some(WebhookDelivery {
            request: OutgoingRequest {
                method: "POST".into(),
                url: event.url.clone(),
                headers: Vec::new(),
                body: event.id.clone().into_bytes(),
            },
            accept: Acceptance::AnySuccess,
            retry_after_secs: Some(0),
        })
    }
}

polypay_plugin_sdk::export_plugin!(Rogue);

fn outcome<T>(r: Result<T, HostError>, detail: impl FnOnce(T) -> String) -> String {
    match r {
        Ok(v) => {
            let d = detail(v);
            if d.is_empty() {
                "ok".into()
            } else {
                format!("ok:{d}")
            }
        }
        Err(e) => format!("refused:{}", error_kind(&e)),
    }
}

fn error_kind(e: &HostError) -> &'static str {
    match e {
        HostError::NotFound => "not-found",
        HostError::Invalid(_) => "invalid",
        HostError::Conflict(_) => "conflict",
        HostError::Unauthorized => "unauthorized",
        HostError::Forbidden => "forbidden",
        HostError::RateLimited(_) => "rate-limited",
        HostError::Unavailable(_) => "unavailable",
        HostError::Unsupported(_) => "unsupported",
    }
}

fn bad_request(why: impl std::fmt::Display) -> Response {
    Response::json(400, &json!({ "error": why.to_string() }))
}

#[derive(Deserialize)]
struct Target {
    kind: String,
    public_id: String,
}

/// Tries to authenticate as the owner of `public_id` with digest "proofs" that never
/// involve the secret.
fn forge_signed(req: &Request) -> Result<Response, Response> {
    let target: Target = req.json().map_err(bad_request)?;
    let forged = |parts: Vec<DigestPart>, message: &[u8]| {
        let proof = Proof::Digest(DigestProof {
            algorithm: DigestAlgorithm::Sha256,
            parts,
            expected: crypto::digest(DigestAlgorithm::Sha256, message),
        });
        outcome(
            merchants::authenticate_signed(&target.kind, &target.public_id, &proof),
            |c| c.merchant_id,
        )
    };
    Ok(Response::json(
        200,
        &json!({
            "no_secret_part": forged(vec![DigestPart::Bytes(b"forged".to_vec())], b"forged"),
            "no_parts": forged(Vec::new(), b""),
            "empty_part": forged(vec![DigestPart::Bytes(Vec::new())], b""),
        }),
    ))
}

#[derive(Deserialize)]
struct Victim {
    credential_id: String,
    kind: String,
    public_id: String,
}

/// Authenticated as a merchant shared with another dialect (with this plugin's own
/// token), reaches for that dialect's credentials and data.
fn abuse_shared_merchant(req: &Request) -> Result<Response, Response> {
    let victim: Victim = req.json().map_err(bad_request)?;
    let token = req.bearer_token().unwrap_or_default();
    let me = merchants::authenticate("bearer", token)
        .map_err(|e| Response::json(401, &json!({ "error": error_kind(&e) })))?;
    let merchant = me.merchant_id.clone();
    let listed = outcome(merchants::list_credentials(&merchant), |list| {
        list.iter()
            .map(|c| c.id.clone())
            .collect::<Vec<_>>()
            .join(",")
    });
    let sign = outcome(
        crypto::hmac_sha256_sign(&victim.credential_id, b"forged callback"),
        |_| String::new(),
    );
    let digest = outcome(
        crypto::digest_with_secret(
            &victim.credential_id,
            DigestAlgorithm::Md5,
            &[DigestPart::Secret],
        ),
        |_| String::new(),
    );
    let find = outcome(
        merchants::find_credential(&victim.kind, &victim.public_id),
        |c| c.id,
    );
    let rotate = outcome(
        merchants::rotate_credential(&victim.credential_id, &SecretFormat::uuid_v4()),
        |issued| issued.secret,
    );
    let revoke = outcome(merchants::revoke_credential(&victim.credential_id), |()| {
        String::new()
    });
    let issued = merchants::issue_credential(
        &merchant,
        &CredentialRequest {
            kind: victim.kind.clone(),
            public_id: None,
            format: SecretFormat::uuid_v4(),
        },
    );
    let issued = outcome(issued, |i| i.secret);
    let overwrite = outcome(
        merchants::update_merchant(
            &merchant,
            &MerchantUpdate {
                name: None,
                plugin_data: Some(json!({ "notify_url": "https://attacker.example/" }).to_string()),
            },
        ),
        |_| String::new(),
    );
    let rename = outcome(
        merchants::update_merchant(
            &merchant,
            &MerchantUpdate {
                name: Some("pwned".into()),
                plugin_data: None,
            },
        ),
        |_| String::new(),
    );
    let seen_data = merchants::get_merchant(&merchant)
        .map(|m| m.plugin_data)
        .unwrap_or_default();
    Ok(Response::json(
        200,
        &json!({
            "merchant": merchant,
            "list": listed,
            "sign": sign,
            "digest": digest,
            "find": find,
            "rotate": rotate,
            "revoke": revoke,
            "issue": issued,
            "overwrite_data": overwrite,
            "rename": rename,
            "data_seen_after": serde_json::from_str::<Value>(&seen_data).unwrap_or(Value::Null),
        }),
    ))
}

/// Asks the host to digest its own secret a hundred thousand times over.
fn digest_bomb(req: &Request) -> Result<Response, Response> {
    let token = req.bearer_token().unwrap_or_default();
    let me = merchants::authenticate("bearer", token)
        .map_err(|e| Response::json(401, &json!({ "error": error_kind(&e) })))?;
    let parts = vec![DigestPart::SecretDigestHex(DigestAlgorithm::Sha512); 100_000];
    let result = outcome(
        crypto::digest_with_secret(&me.id, DigestAlgorithm::Sha256, &parts),
        |_| String::new(),
    );
    Ok(Response::json(200, &json!({ "digest": result })))
}

/// Polls the key-value store until the test writes `release` (or `ms` pass).
fn wait_for_release(ms: u64) -> bool {
    let until = clock::now() + ms as i64;
    while clock::now() < until {
        if matches!(kv::get("release"), Ok(Some(_))) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

/// Holds its instance until released: the test's stand-in for a flood of slow requests.
fn hold(req: &Request) -> Response {
    let ms = req
        .query_param("ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(60_000);
    Response::json(200, &json!({ "released": wait_for_release(ms) }))
}

/// Sleeps in the host (`wasi:clocks` + poll), using no CPU.
fn sleep(req: &Request) -> Response {
    let ms = req
        .query_param("ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    std::thread::sleep(std::time::Duration::from_millis(ms));
    Response::json(200, &json!({ "slept_ms": ms }))
}

/// Calls the host forever, each call quick: only the wall stops it.
fn host_loop(_: &Request) -> Response {
    let mut n: u64 = 0;
    loop {
        let _ = kv::get("anything");
        n = std::hint::black_box(n + 1);
    }
}

/// Writes `count` keys of `size` bytes; reports how many the host took and why it stopped.
fn kv_flood(req: &Request) -> Response {
    let count: u32 = req
        .query_param("count")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let size: usize = req
        .query_param("size")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let value = vec![b'x'; size];
    let mut written = 0;
    let mut stopped = None;
    for i in 0..count {
        match kv::set(&format!("flood-{i}"), &value, None) {
            Ok(()) => written += 1,
            Err(e) => {
                stopped = Some(error_kind(&e));
                break;
            }
        }
    }
    Response::json(200, &json!({ "written": written, "stopped": stopped }))
}
