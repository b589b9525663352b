//! The operator's control of webhook delivery: the admin API, `polypay webhook
//! list|show|replay`, and the `[webhooks]` config section.

mod common;
mod webhook_support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use polypay_host::app::Server;
use polypay_host::config::Config;
use polypay_host::store::Store;
use polypay_host::store::outbox::DeliveryState;
use polypay_host::webhook::WebhookConfig;
use serde_json::Value;
use webhook_support::*;

const POLYPAY: &str = env!("CARGO_BIN_EXE_polypay");

/// A dead-lettered event (two refused attempts) of a fresh merchant; returns
/// (merchant, event id).
async fn dead_event(store: &Store, receiver: &Receiver) -> (String, i64) {
    let merchant = merchant(store).await;
    let invoice = invoice(store, &merchant, Some(&receiver.url("/notify"))).await;
    let event = events_of(store, &invoice.id).await.remove(0);
    let mut config = fast_config();
    config.retry.max_attempts = 2;
    let running = Running::start(store, config, Arc::new(TestRenderer::default()));
    wait_for_state(store, event.id, DeliveryState::Dead).await;
    running.stop().await;
    (merchant, event.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_lists_shows_replays_and_reports_stats() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        // This test delivers with its own dispatcher; the server only answers the operator.
        webhooks: WebhookConfig {
            workers: 0,
            ..WebhookConfig::default()
        },
        ..common::polypay::server_config(dir.path())
    };
    let server = Server::start(config).await.unwrap();
    let receiver = Receiver::start(|_, _| Reply::Status(500)).await;
    let (merchant, id) = dead_event(&server.context.store, &receiver).await;
    let admin = format!("http://{}", server.admin_addr);
    let http = common::polypay::admin_client();
    let get = |path: String| {
        let http = http.clone();
        async move { http.get(path).send().await.unwrap() }
    };

    let listed: Value = get(format!(
        "{admin}/webhooks/deliveries?merchant_id={merchant}&state=dead"
    ))
    .await
    .json()
    .await
    .unwrap();
    let deliveries = listed["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(
        (
            deliveries[0]["id"].as_i64(),
            deliveries[0]["state"].as_str()
        ),
        (Some(id), Some("dead"))
    );
    let none: Value = get(format!(
        "{admin}/webhooks/deliveries?merchant_id={merchant}&state=delivered"
    ))
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(none["deliveries"].as_array().unwrap().len(), 0);
    assert_eq!(
        get(format!("{admin}/webhooks/deliveries?state=lost"))
            .await
            .status(),
        400
    );

    let shown: Value = get(format!("{admin}/webhooks/deliveries/{id}"))
        .await
        .json()
        .await
        .unwrap();
    let attempts = shown["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(
        (
            attempts[0]["outcome"].as_str(),
            attempts[0]["status_code"].as_i64()
        ),
        (Some("rejected"), Some(500))
    );
    assert_eq!(shown["payload"]["kind"], "invoice.created");
    assert_eq!(
        get(format!("{admin}/webhooks/deliveries/999999"))
            .await
            .status(),
        404
    );

    let replayed = http
        .post(format!("{admin}/webhooks/deliveries/{id}/replay"))
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 200);
    let replayed: Value = replayed.json().await.unwrap();
    assert_eq!(
        (
            replayed["delivery"]["state"].as_str(),
            replayed["delivery"]["replays"].as_i64()
        ),
        (Some("pending"), Some(1))
    );
    let again = http
        .post(format!("{admin}/webhooks/deliveries/{id}/replay"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409, "a pending event is not replayed");
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("only delivered or dead")
    );

    let stats: Value = get(format!(
        "{admin}/webhooks/stats?merchant_id={merchant}&days=1"
    ))
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        (
            stats["total"].as_u64(),
            stats["pending"].as_u64(),
            stats["failed"].as_u64()
        ),
        (Some(1), Some(1), Some(0))
    );
    assert_eq!(
        get(format!(
            "{admin}/webhooks/stats?merchant_id={merchant}&days=0"
        ))
        .await
        .status(),
        400
    );
    server.shutdown().await.unwrap();
}

/// Runs `polypay ARGS` with its data in `data_dir`; returns (success, stdout, stderr).
///
/// The child gets a clean environment and its own working directory: the figment jail of
/// the config test in this binary sets `POLYPAY_*` variables and changes the working
/// directory of the whole process while it runs, and a child spawned meanwhile would
/// inherit both.
fn polypay(data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(POLYPAY)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("POLYPAY_DATA_DIR", data_dir)
        .current_dir(data_dir)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_lists_shows_and_replays_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let store = Store::open(
        &format!("sqlite://{}", data_dir.join("polypay.db").display()),
        4,
    )
    .await
    .unwrap();
    let receiver = Receiver::start(|_, _| Reply::Body(503, "maintenance".into())).await;
    let (merchant, id) = dead_event(&store, &receiver).await;
    store.close().await;

    let (ok, out, err) = polypay(
        &data_dir,
        &[
            "webhook",
            "list",
            "--state",
            "dead",
            "--merchant",
            &merchant,
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["id"].as_i64(), Some(id));
    let (ok, out, _) = polypay(&data_dir, &["webhook", "list"]);
    assert!(
        ok && out.contains("dead") && out.contains("invoice.created"),
        "{out}"
    );

    let (ok, out, err) = polypay(&data_dir, &["webhook", "show", &id.to_string()]);
    assert!(ok, "{err}");
    assert!(
        out.contains("state:      dead") && out.contains("rejected") && out.contains("maintenance"),
        "{out}"
    );

    let (ok, out, err) = polypay(&data_dir, &["webhook", "replay", &id.to_string()]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("webhook event {id} replayed: pending")),
        "{out}"
    );
    let (ok, _, err) = polypay(&data_dir, &["webhook", "replay", &id.to_string()]);
    assert!(!ok && err.contains("only delivered or dead"), "{err}");
    let (ok, _, err) = polypay(&data_dir, &["webhook", "list", "--state", "lost"]);
    assert!(!ok && err.contains("unknown delivery state"), "{err}");
    let (ok, _, err) = polypay(&data_dir, &["webhook", "show", "424242"]);
    assert!(!ok && err.contains("not found"), "{err}");
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail API
fn webhooks_section_is_read_from_file_and_environment_and_validated() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "p.toml",
            "[webhooks]\nworkers = 3\nallowed_networks = [\"10.20.0.0/16\"]\n\n[webhooks.plugin_retry.pay-orders]\nmax_attempts = 6\n",
        )?;
        jail.set_env("POLYPAY_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true");
        let config = Config::load(Some(Path::new("p.toml"))).unwrap();
        assert_eq!(config.webhooks.workers, 3);
        assert!(config.webhooks.allow_private_targets);
        assert_eq!(config.webhooks.schedule_for("pay-orders").max_attempts, 6);
        assert_eq!(
            config.webhooks.schedule_for("other"),
            &config.webhooks.retry
        );

        jail.set_env("POLYPAY_WEBHOOKS__LEASE_MS", "1000");
        let err = Config::load(Some(Path::new("p.toml")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("webhooks.lease_ms"), "{err}");
        Ok(())
    });
}
