//! Plugins are untrusted code: each test here mounts `test-rogue`, a plugin written to
//! abuse one host capability, next to a well-behaved dialect, and checks that the abuse is
//! refused and the others are unaffected. Real components, real HTTP over loopback, a
//! real SQLite database.

mod common;
mod webhook_support;

use common::plugins::{TestApp, hmac_sha256_hex};
use polypay_host::merchant::{CredentialSpec, IssuedCredential, SecretFormat};
use polypay_host::plugin::{FaultKind, Overload, PluginConfig};
use polypay_host::store::kv::KvQuota;
use polypay_host::store::now_ms;
use polypay_host::store::outbox::DeliveryState;
use polypay_host::webhook::{WebhookEvent, WebhookEventKind, WebhookRenderer};
use polypay_plugin_artifacts::{TEST_ECHO, TEST_MULTI_MEMORY, TEST_ROGUE};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use webhook_support::eventually;

fn bearer() -> CredentialSpec {
    CredentialSpec {
        kind: "bearer".into(),
        secret: SecretFormat::uuid(),
        public_id: None,
    }
}

fn signing() -> CredentialSpec {
    CredentialSpec {
        kind: "signing".into(),
        secret: SecretFormat::hex(32),
        public_id: Some(SecretFormat::alphanumeric("app-", 16)),
    }
}

impl TestApp {
    /// An operator merchant (served by every plugin) with no credentials yet.
    async fn operator_merchant(&self, name: &str) -> String {
        self.storage()
            .merchants
            .create(name, None, json!({}), &[])
            .await
            .expect("create merchant")
            .merchant
            .id
    }

    /// Issues `plugin`'s own credentials to a merchant, as `polypay merchant rotate ID
    /// --plugin NAME` does.
    async fn credentials_for(
        &self,
        merchant: &str,
        plugin: &str,
        specs: &[CredentialSpec],
    ) -> Vec<IssuedCredential> {
        self.storage()
            .merchants
            .rotate(merchant, Some(plugin), specs)
            .await
            .expect("issue credentials")
    }

    async fn json(&self, request: reqwest::RequestBuilder) -> Value {
        let response = request.send().await.expect("request completes");
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
        response.json().await.expect("JSON body")
    }

    /// Writes the `release` key `test-rogue` waits for.
    async fn release_rogue(&self, plugin: &str) {
        self.storage()
            .store
            .kv_set(plugin, "release", b"1", None, KvQuota::UNLIMITED, now_ms())
            .await
            .unwrap();
    }
}

// ---- 1. digest proofs ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_proof_that_never_uses_the_secret_authenticates_nobody() {
    let app = TestApp::init()
        .with_storage()
        .await
        .with_plugin(PluginConfig::new("rogue", TEST_ROGUE))
        .start()
        .await;
    // A credential the rogue plugin may authenticate with: the operator's generic one.
    let created = app
        .storage()
        .merchants
        .create("Operator shop", None, json!({}), &[signing()])
        .await
        .unwrap();
    let public_id = created.credentials[0].public_id.clone().unwrap();

    let forge = |public_id: String| {
        let app = &app;
        async move {
            app.json(
                app.request(reqwest::Method::POST, "/rogue/forge-signed", None)
                    .json(&json!({ "kind": "signing", "public_id": public_id })),
            )
            .await
        }
    };
    let report = forge(public_id).await;
    assert_eq!(
        report,
        json!({
            "no_secret_part": "refused:invalid",
            "no_parts": "refused:invalid",
            "empty_part": "refused:invalid",
        }),
        "a proof that does not involve the secret proves nothing"
    );
    // The refusal does not depend on whether the public id exists.
    assert_eq!(forge("app-doesnotexist0000".into()).await, report);
}

// ---- 2. per-plugin credentials and data of a shared merchant ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_sharing_an_operator_merchant_cannot_reach_another_dialects_credentials_or_data() {
    let app = TestApp::init()
        .with_storage()
        .await
        .with_plugin(PluginConfig::new("victim", TEST_ECHO).with_prefix("/v"))
        .with_plugin(PluginConfig::new("rogue", TEST_ROGUE))
        .start()
        .await;
    let shared = app.operator_merchant("Shop on two dialects").await;
    let victim = app
        .credentials_for(&shared, "victim", &[bearer(), signing()])
        .await;
    let (victim_token, victim_signing) = (victim[0].secret.clone(), victim[1].clone());
    let victim_data = json!({ "notify_url": "https://shop.example/notify" });
    app.storage()
        .store
        .plugin_update_merchant(&shared, "victim", None, Some(&victim_data))
        .await
        .unwrap();
    let rogue = app.credentials_for(&shared, "rogue", &[bearer()]).await;

    // The merchant uses the rogue dialect too; the rogue plugin abuses that request.
    let report = app
        .json(
            app.request(
                reqwest::Method::POST,
                "/rogue/abuse",
                Some(&rogue[0].secret),
            )
            .json(&json!({
                "credential_id": victim_signing.id,
                "kind": "signing",
                "public_id": victim_signing.public_id,
            })),
        )
        .await;
    assert_eq!(report["merchant"], shared.as_str());
    assert_eq!(
        report["list"],
        format!("ok:{}", rogue[0].id),
        "only its own credentials are listed"
    );
    for attempt in ["sign", "digest", "find", "rotate", "revoke"] {
        assert_eq!(report[attempt], "refused:not-found", "{attempt}: {report}");
    }
    assert_eq!(report["rename"], "refused:forbidden", "{report}");
    assert_eq!(report["overwrite_data"], "ok", "its own data it may write");
    assert_eq!(
        report["data_seen_after"],
        json!({ "notify_url": "https://attacker.example/" })
    );

    // A credential of the victim's kind issued by the rogue plugin is the rogue's: the
    // victim dialect does not accept it.
    let issued = report["issue"].as_str().unwrap();
    let forged_token = issued.strip_prefix("ok:").expect("issuing its own works");
    assert_eq!(
        app.status_of(reqwest::Method::GET, "/v/echo/stats", Some(forged_token))
            .await,
        401
    );
    // The victim's token still works, its signing secret is unchanged, its data intact.
    assert_eq!(
        app.status_of(reqwest::Method::GET, "/v/echo/stats", Some(&victim_token))
            .await,
        200
    );
    let signed = app
        .json(
            app.request(
                reqwest::Method::POST,
                &format!("/v/echo/sign/{}", victim_signing.id),
                Some(&victim_token),
            )
            .body("message"),
        )
        .await;
    assert_eq!(
        signed["mac"],
        hmac_sha256_hex(victim_signing.secret.as_bytes(), b"message")
    );
    let mut conn = app.storage().store.pool().acquire().await.unwrap();
    assert_eq!(
        polypay_host::store::merchants::plugin_data(&mut conn, &shared, "victim")
            .await
            .unwrap(),
        Some(victim_data)
    );
    let merchant = polypay_host::store::merchants::get_merchant(&mut conn, &shared)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(merchant.name, "Shop on two dialects");
}

// ---- 3. capacity ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooded_plugin_answers_503_with_retry_after_while_other_plugins_and_its_webhooks_are_served()
 {
    let app = Arc::new(
        TestApp::init()
            .with_storage()
            .await
            .with_echo()
            .with_plugin(PluginConfig::new("rogue", TEST_ROGUE).with_wall_ms(120_000))
            .start()
            .await,
    );
    let limit = PluginConfig::new("x", "x").max_concurrent_requests as usize;
    let flood = 256;
    let mut held = Vec::new();
    for _ in 0..flood {
        let app = app.clone();
        held.push(tokio::spawn(async move {
            let r = app.get("/rogue/hold?ms=60000").await;
            let retry_after = r.headers().get("retry-after").cloned();
            (r.status().as_u16(), retry_after)
        }));
    }
    eventually(
        "the flood to fill the rogue plugin's slots",
        Duration::from_secs(60),
        || {
            let app = app.clone();
            async move {
                let refused = app.runtime.overload_count("rogue", Overload::Concurrency) as usize;
                (app.runtime.requests_in_flight("rogue") == limit && refused == flood - limit)
                    .then_some(())
            }
        },
    )
    .await;

    // Meanwhile another plugin answers, and the flooded plugin still renders its webhooks.
    assert_eq!(app.get("/echo/settings").await.status(), 200);
    let event = WebhookEvent {
        id: 7,
        kind: WebhookEventKind::Test,
        name: "webhook.test".into(),
        plugin: "rogue".into(),
        merchant_id: "m".into(),
        invoice_id: None,
        invoice: sample_invoice(),
        previous_status: None,
        occurred_at: now_ms(),
        url: "https://merchant.example/notify".into(),
    };
    let rendered = app.runtime.render(&event, 1).await.expect("rendered");
    assert!(rendered.is_some());

    app.release_rogue("rogue").await;
    let mut statuses = std::collections::BTreeMap::new();
    for h in held {
        let (status, retry_after) = h.await.unwrap();
        if status == 503 {
            assert_eq!(retry_after.as_ref().map(|v| v.to_str().unwrap()), Some("1"));
        }
        *statuses.entry(status).or_insert(0usize) += 1;
    }
    assert_eq!(
        statuses,
        [(200, limit), (503, flood - limit)].into_iter().collect()
    );
    assert_eq!(
        app.runtime.total_faults("rogue"),
        0,
        "being busy is not a fault"
    );
}

/// An invoice of the rogue plugin, for rendering tests.
fn sample_invoice() -> polypay_host::invoice::Invoice {
    use polypay_host::invoice::{Allocation, Amount, Invoice, NewInvoice};
    let new = NewInvoice::new(
        "m",
        "rogue",
        "ethereum",
        ("USDT", 6),
        Amount::from(1_000_000u64),
        now_ms() + 60_000,
    );
    let allocation = Allocation::fixed_address(&new, "0x1", 1);
    Invoice::open(
        uuid::Uuid::new_v4().to_string(),
        &new,
        &allocation,
        now_ms(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_render_finding_every_slot_taken_is_retried_without_consuming_a_delivery_attempt() {
    let app = TestApp::init()
        .with_storage()
        .await
        .with_plugin(
            PluginConfig::new("rogue", TEST_ROGUE)
                .with_webhook_render_slots(1)
                .with_wall_ms(120_000),
        )
        .start()
        .await;
    let store = app.storage().store.clone();
    let receiver = webhook_support::Receiver::accepting().await;
    let merchant = app.operator_merchant("Shop").await;
    let queue = |path: &str| {
        let (store, merchant, url) = (store.clone(), merchant.clone(), receiver.url(path));
        async move {
            polypay_host::webhook::queue_test_event(&store, "rogue", &merchant, &url)
                .await
                .unwrap()
        }
    };
    // The first event's rendering holds the plugin's only rendering slot.
    let holding = queue("/hold").await;
    let waiting = queue("/other").await;
    let renderer: Arc<dyn WebhookRenderer> = Arc::new(app.runtime.clone());
    let mut config = webhook_support::fast_config();
    config.request_timeout_ms = 60_000;
    config.lease_ms = 180_000;
    let dispatcher =
        Arc::new(polypay_host::webhook::Dispatcher::new(store.clone(), config, renderer).unwrap());
    let pass = tokio::spawn({
        let dispatcher = dispatcher.clone();
        async move { dispatcher.run_once().await.unwrap() }
    });
    let deferred = eventually(
        "the second rendering to be deferred",
        Duration::from_secs(30),
        || {
            let store = store.clone();
            async move {
                let d = webhook_support::delivery(&store, waiting).await;
                (d.state == DeliveryState::Pending && d.last_error.is_some()).then_some(d)
            }
        },
    )
    .await;
    assert_eq!(deferred.attempts, 0, "no attempt was consumed");
    assert!(webhook_support::attempts(&store, waiting).await.is_empty());
    assert!(deferred.next_attempt_at > now_ms(), "retried later");
    assert_eq!(
        app.runtime.overload_count("rogue", Overload::Concurrency),
        1
    );

    app.release_rogue("rogue").await;
    assert_eq!(pass.await.unwrap().claimed, 2);
    webhook_support::wait_for_state(&store, holding, DeliveryState::Delivered).await;
    assert_eq!(app.runtime.total_faults("rogue"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renders_beyond_the_rendering_slots_wait_for_a_slot_instead_of_being_postponed() {
    // One rendering slot and twenty events delivered at once: each rendering is quick,
    // so every one gets the slot in turn and goes out in the same pass.
    let app = TestApp::init()
        .with_storage()
        .await
        .with_plugin(PluginConfig::new("rogue", TEST_ROGUE).with_webhook_render_slots(1))
        .start()
        .await;
    let store = app.storage().store.clone();
    let receiver = webhook_support::Receiver::accepting().await;
    // Two merchants: a merchant may queue ten test callbacks at a time.
    let merchants = [
        app.operator_merchant("Shop").await,
        app.operator_merchant("Other shop").await,
    ];
    let mut events = Vec::new();
    for i in 0..20 {
        let url = receiver.url(&format!("/quick/{i}"));
        let merchant = &merchants[i % 2];
        events.push(
            polypay_host::webhook::queue_test_event(&store, "rogue", merchant, &url)
                .await
                .unwrap(),
        );
    }
    let renderer: Arc<dyn WebhookRenderer> = Arc::new(app.runtime.clone());
    let mut config = webhook_support::fast_config();
    config.batch_size = 20;
    config.per_receiver_in_flight = 32;
    let dispatcher =
        polypay_host::webhook::Dispatcher::new(store.clone(), config, renderer).unwrap();
    assert_eq!(dispatcher.run_once().await.unwrap().claimed, 20);
    for event in events {
        let delivery = webhook_support::delivery(&store, event).await;
        assert_eq!(delivery.state, DeliveryState::Delivered, "{delivery:?}");
        assert_eq!(delivery.attempts, 1);
    }
    assert_eq!(
        app.runtime.overload_count("rogue", Overload::Concurrency),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_a_plugin_spends_waiting_on_the_host_does_not_count_against_its_cpu_budget() {
    let app = TestApp::init()
        .with_plugin(PluginConfig::new("rogue", TEST_ROGUE).with_deadline_ms(200))
        .start()
        .await;
    // 600 ms asleep in the host (wasi:clocks + poll) against a 200 ms CPU budget.
    let r = app.get("/rogue/sleep?ms=600").await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.runtime.total_faults("rogue"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_looping_on_quick_host_calls_is_stopped_at_its_wall_as_its_own_fault() {
    let app = TestApp::init()
        .with_storage()
        .await
        .with_plugin(
            PluginConfig::new("rogue", TEST_ROGUE)
                .with_deadline_ms(1000)
                .with_wall_ms(1500),
        )
        .start()
        .await;
    assert_eq!(app.get("/rogue/host-loop").await.status(), 500);
    assert_eq!(app.runtime.fault_count("rogue", FaultKind::Deadline), 1);
    assert_eq!(app.runtime.overload_count("rogue", Overload::HostSlow), 0);
}

// ---- 4. memory, digest work, key-value quota ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_cap_covers_all_memories_of_an_instance_together() {
    // Each request grows each of the component's two memories by 40 MiB.
    let app = TestApp::init()
        .with_plugin(PluginConfig::new("capped", TEST_MULTI_MEMORY).with_memory_mb(64))
        .with_plugin(
            PluginConfig::new("roomy", TEST_MULTI_MEMORY)
                .with_prefix("/roomy")
                .with_memory_mb(128),
        )
        .start()
        .await;
    assert_eq!(app.get("/roomy/memory/grow").await.status(), 200);
    assert_eq!(app.get("/memory/grow").await.status(), 500);
    assert_eq!(app.runtime.fault_count("capped", FaultKind::Memory), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_side_digest_work_over_repeated_secret_parts_is_refused() {
    let app = TestApp::init()
        .with_storage()
        .await
        .with_plugin(PluginConfig::new("rogue", TEST_ROGUE))
        .start()
        .await;
    let merchant = app.operator_merchant("Shop").await;
    let token = app.credentials_for(&merchant, "rogue", &[bearer()]).await[0]
        .secret
        .clone();
    let report = app
        .json(app.request(reqwest::Method::GET, "/rogue/digest-bomb", Some(&token)))
        .await;
    assert_eq!(report, json!({ "digest": "refused:invalid" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_value_quota_stops_a_plugin_and_leaves_others_unaffected() {
    let app = TestApp::init()
        .with_storage()
        .await
        .with_echo()
        .with_plugin(PluginConfig::new("rogue", TEST_ROGUE).with_kv_quota(10, 1 << 20))
        .with_plugin(
            PluginConfig::new("heavy", TEST_ROGUE)
                .with_prefix("/heavy")
                .with_kv_quota(1000, 100),
        )
        .start()
        .await;
    let flood = app
        .json(app.request(reqwest::Method::GET, "/rogue/kv-flood?count=50", None))
        .await;
    assert_eq!(flood, json!({ "written": 10, "stopped": "unavailable" }));
    assert_eq!(
        app.storage().store.kv_usage("rogue").await.unwrap(),
        (10, 10)
    );
    let heavy = app
        .json(app.request(
            reqwest::Method::GET,
            "/heavy/rogue/kv-flood?count=5&size=60",
            None,
        ))
        .await;
    assert_eq!(heavy, json!({ "written": 1, "stopped": "unavailable" }));
    let put = app
        .http
        .put(app.url("/echo/kv/still-works"))
        .body("yes")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_server_sweeps_expired_key_value_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::polypay::server_config(dir.path());
    config.webhooks.workers = 0;
    config.plugin_runtime.maintenance_interval_ms = 50;
    let server = polypay_host::app::Server::start(config).await.unwrap();
    let store = server.context.store.clone();
    let now = now_ms();
    for (key, expires) in [("stale", Some(now - 1)), ("fresh", None)] {
        store
            .kv_set(
                "some-plugin",
                key,
                b"v",
                expires,
                KvQuota::UNLIMITED,
                now - 10,
            )
            .await
            .unwrap();
    }
    eventually(
        "the sweep to delete the expired entry",
        Duration::from_secs(30),
        || {
            let store = store.clone();
            async move { (store.kv_usage("some-plugin").await.unwrap() == (1, 1)).then_some(()) }
        },
    )
    .await;
    let left: Vec<String> = sqlx::query_scalar("SELECT key FROM plugin_kv")
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert_eq!(left, ["fresh"]);
    server.shutdown().await.unwrap();
}

/// Every request runs on a fresh instance, whatever the pooling allocator keeps resident
/// between them (`engine`): a request sees nothing a previous one left in the guest's
/// globals or linear memory. `/echo/residue` reports what it finds of earlier calls in
/// this instance (a global counter, and marks on each 4 KiB page of a 256 KiB static
/// buffer), then leaves its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_never_sees_what_a_previous_request_left_in_the_guests_globals_or_memory() {
    let app = TestApp::init()
        .with_plugin(PluginConfig::new("echo", TEST_ECHO))
        .start()
        .await;
    let clean = json!([{ "calls": 0, "marked_pages": 0 }]);

    // The probe does see what survives inside one instance...
    let within = app
        .json(app.http.get(app.url("/echo/residue?times=2")))
        .await;
    assert_eq!(
        within,
        json!([{ "calls": 0, "marked_pages": 0 }, { "calls": 1, "marked_pages": 64 }])
    );
    // ...and nothing across requests, one after the other (the pool reuses the same
    // slot) or at the same time (several slots).
    for round in 0..20 {
        let seen = app.json(app.http.get(app.url("/echo/residue"))).await;
        assert_eq!(seen, clean, "sequential request {round}");
    }
    for round in 0..5 {
        let seen = futures::future::join_all(
            (0..8).map(|_| app.json(app.http.get(app.url("/echo/residue")))),
        )
        .await;
        for (i, seen) in seen.into_iter().enumerate() {
            assert_eq!(seen, clean, "concurrent round {round}, request {i}");
        }
    }
}

// ---- 5. responses share the checkout page's origin ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_responses_carry_nosniff_and_a_restrictive_csp_unless_the_plugin_sets_its_own() {
    let app = TestApp::init()
        .with_plugin(PluginConfig::new("rogue", TEST_ROGUE))
        .start()
        .await;
    let html = app.get("/rogue/html").await;
    assert_eq!(html.headers()["x-content-type-options"], "nosniff");
    let csp = html.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("sandbox"),
        "{csp}"
    );
    let own = app.get("/rogue/own-csp").await;
    assert_eq!(
        own.headers()["content-security-policy"],
        "default-src 'self'"
    );
    assert_eq!(own.headers()["x-content-type-options"], "nosniff");
    // The host's own answers on plugin routes too.
    let too_large = app
        .http
        .post(app.url("/rogue/forge-signed"))
        .body(vec![b'x'; (1 << 20) + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), 413);
    assert_eq!(too_large.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_sees_the_sanitised_request_id_never_the_raw_header() {
    let app = TestApp::init().with_echo().start().await;
    let echoed = |id: String| {
        let app = &app;
        async move {
            let r = app
                .http
                .get(app.url("/echo/request/x"))
                .header("x-request-id", id)
                .send()
                .await
                .unwrap();
            let header = r.headers()["x-request-id"].to_str().unwrap().to_owned();
            let body: Value = r.json().await.unwrap();
            (body["request_id"].as_str().unwrap().to_owned(), header)
        }
    };
    let (seen, answered) = echoed("order-42_retry".into()).await;
    assert_eq!(
        (seen.as_str(), answered.as_str()),
        ("order-42_retry", "order-42_retry")
    );
    for raw in ["<script>alert(1)</script>", "a b", &"x".repeat(100)] {
        let (seen, answered) = echoed(raw.to_string()).await;
        assert_ne!(seen, raw);
        assert!(uuid::Uuid::parse_str(&seen).is_ok(), "{seen}");
        assert_eq!(seen, answered, "one id for the plugin and the response");
    }
}

// ---- the operator's side: one credential set per plugin from the CLI ----

#[test]
fn the_cli_issues_and_rotates_one_plugins_credentials_of_an_operator_merchant() {
    use common::polypay::cli_json;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("polypay.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n{}\n[[plugins]]\nname = \"rogue\"\nwasm = \"{TEST_ROGUE}\"\n",
            dir.path().display(),
            common::polypay::secrets_toml()
        ),
    )
    .unwrap();
    let created = cli_json(&config, &["merchant", "create", "--name", "Shared"]);
    let id = created["merchant"]["id"].as_str().unwrap();
    assert_eq!(created["credentials"][0]["kind"], "api-key");
    assert_eq!(created["credentials"][0]["plugin"], Value::Null);
    let generic = created["credentials"][0]["id"].as_str().unwrap();

    let rogue = cli_json(&config, &["merchant", "rotate", id, "--plugin", "rogue"]);
    assert_eq!(
        rogue["credentials"][0]["kind"], "bearer",
        "the plugin's manifest decides"
    );
    assert_eq!(rogue["credentials"][0]["plugin"], "rogue");
    let rogue_id = rogue["credentials"][0]["id"].as_str().unwrap();

    // Rotating the generic set leaves the plugin's alone, and the other way round.
    let rotated = cli_json(&config, &["merchant", "rotate", id]);
    let new_generic = rotated["credentials"][0]["id"].as_str().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_polypay"))
        .args(["--config", config.to_str().unwrap(), "merchant", "list"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let listed = String::from_utf8(output.stdout).unwrap();
    assert!(
        listed.contains(&format!("credential {rogue_id} plugin=rogue kind=bearer")),
        "{listed}"
    );
    assert!(
        listed.contains(&format!("credential {new_generic} plugin=- kind=api-key")),
        "{listed}"
    );
    assert!(
        !listed.contains(generic),
        "the old generic key is revoked: {listed}"
    );
}
