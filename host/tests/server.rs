//! The server and the command line as an operator uses them: the real binary, real HTTP
//! over loopback, the embedded SQLite database it creates.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::polypay::{ADMIN_TOKEN, admin_client, server_config as config_in};
use polypay_host::app::Server;

const POLYPAY: &str = env!("CARGO_BIN_EXE_polypay");

/// Runs `polypay ARGS` in `dir`, in development mode (secrets generated into `./data`),
/// and returns its stdout; fails the test on a non-zero exit.
fn polypay(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(POLYPAY)
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env("POLYPAY_MODE", "development")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "polypay {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn admin_listener_serves_health_readiness_and_request_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config_in(dir.path())).await.unwrap();
    let admin = format!("http://{}", server.admin_addr);
    let http = admin_client();

    let health = http.get(format!("{admin}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        health.headers().contains_key("x-request-id"),
        "every response names its request id"
    );
    assert_eq!(
        http.get(format!("{admin}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let missing = http
        .get(format!("http://{}/no/such/route", server.public_addr))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let metrics = http
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"polypay_http_requests_total{listener="admin",route="/healthz",status="200"}"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"polypay_http_requests_total{listener="public",route="unmatched",status="404"}"#
        ),
        "{metrics}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn readiness_fails_while_a_migration_is_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(config_in(dir.path())).await.unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations")
        .execute(server.context.store.pool())
        .await
        .unwrap();
    let ready = reqwest::get(format!("http://{}/readyz", server.admin_addr))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("polypay migrate"));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn oversized_request_bodies_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(dir.path());
    config.http.max_body_bytes = 1024;
    let server = Server::start(config).await.unwrap();
    let response = reqwest::Client::new()
        .post(format!("http://{}/healthz", server.admin_addr))
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    server.shutdown().await.unwrap();
}

#[test]
fn merchant_commands_print_credentials_once_and_store_no_plaintext_secret() {
    let dir = tempfile::tempdir().unwrap();
    let created: serde_json::Value = serde_json::from_str(&polypay(
        dir.path(),
        &["merchant", "create", "--name", "Shop A"],
    ))
    .unwrap();
    let merchant_id = created["merchant"]["id"].as_str().unwrap().to_string();
    let secret = created["credentials"][0]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(secret.len(), 64);

    let listed = polypay(dir.path(), &["merchant", "list"]);
    assert!(
        listed.contains(&merchant_id) && listed.contains("Shop A"),
        "{listed}"
    );
    assert!(!listed.contains(&secret), "list never shows secrets");

    let rotated: serde_json::Value =
        serde_json::from_str(&polypay(dir.path(), &["merchant", "rotate", &merchant_id])).unwrap();
    let new_secret = rotated["credentials"][0]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_secret, secret);

    // Neither secret appears anywhere in the database files (main file and WAL).
    let data = dir.path().join("data");
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("polypay.db")
        {
            let bytes = std::fs::read(&path).unwrap();
            for s in [&secret, &new_secret] {
                assert!(
                    !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                    "{} contains a plaintext secret",
                    path.display()
                );
            }
            assert!(
                bytes
                    .windows(merchant_id.len())
                    .any(|w| w == merchant_id.as_bytes())
                    || path.to_string_lossy().ends_with("-shm")
            );
        }
    }
}

#[test]
fn unknown_merchant_rotation_and_bad_config_fail_with_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(POLYPAY)
        .args(["merchant", "rotate", "nope"])
        .current_dir(dir.path())
        .env("POLYPAY_MODE", "development")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("merchant nope not found"));

    std::fs::write(dir.path().join("bad.toml"), "[listen]\nadmin = 12\n").unwrap();
    let output = Command::new(POLYPAY)
        .args(["--config", "bad.toml", "migrate"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("listen.admin") && stderr.contains("bad.toml"),
        "{stderr}"
    );
}

/// Kills the child on drop so a failing test leaves no server behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_in_development_creates_sqlite_and_secrets_warns_of_a_public_admin_and_logs_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Running(
        Command::new(POLYPAY)
            .arg("serve")
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .env("POLYPAY_MODE", "development")
            .env("POLYPAY_LISTEN__PUBLIC", "127.0.0.1:0")
            .env("POLYPAY_LISTEN__ADMIN", "0.0.0.0:0")
            .env("POLYPAY_LOG__FORMAT", "json")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_json = |what: &str| -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let line = lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("no log line with {what}"));
            let json: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
            if line.contains(what) {
                return json;
            }
        }
    };
    let warning = next_json("non-loopback");
    assert_eq!(warning["level"], "WARN", "{warning}");
    let started = next_json("polypay started");
    let admin = started["admin_addr"].as_str().unwrap().to_string();
    assert!(admin.starts_with("0.0.0.0:"), "{admin}");
    let admin = admin.replace("0.0.0.0", "127.0.0.1");
    assert!(
        dir.path().join("data/polypay.db").is_file(),
        "embedded SQLite database created on first start"
    );
    let token = std::fs::read_to_string(dir.path().join("data/admin.token")).unwrap();
    assert!(
        token.trim().len() >= 32,
        "an admin token generated: {token}"
    );
    assert!(dir.path().join("data/master.key").is_file());
    let metrics = |token: &str| {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&admin).unwrap();
        write!(stream, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text[9..12].to_string()
    };
    assert_eq!(
        metrics(token.trim()),
        "200",
        "the generated token opens the admin API"
    );
    assert_eq!(metrics("wrong-token-wrong-token-wrong-token"), "401");

    let status = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&admin).unwrap();
        write!(stream, "GET /healthz HTTP/1.1\r\nHost: x\r\nx-request-id: test-req-42\r\nConnection: close\r\n\r\n").unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text[9..12].to_string()
    };
    assert_eq!(status, "200");
    let logged = next_json("test-req-42");
    assert_eq!(logged["status"], 200, "{logged}");
}

#[tokio::test]
async fn plugins_from_config_serve_on_the_public_listener_with_route_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(dir.path());
    config.plugins = vec![
        polypay_host::plugin::PluginConfig::new("echo", polypay_plugin_artifacts::TEST_ECHO)
            .with_settings(serde_json::json!({"greeting": "hi"})),
    ];
    let server = Server::start(config).await.unwrap();
    let public = format!("http://{}", server.public_addr);
    let settings = reqwest::get(format!("{public}/echo/settings"))
        .await
        .unwrap();
    assert_eq!(settings.status(), 200);
    assert!(
        settings.text().await.unwrap().contains("hi"),
        "settings reach the plugin"
    );
    let wrong_method = reqwest::Client::new()
        .delete(format!("{public}/echo/settings"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    let metrics = admin_client()
        .get(format!("http://{}/metrics", server.admin_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"polypay_http_requests_total{listener="public",route="/echo/settings",status="200"}"#
        ),
        "{metrics}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_plugin_claiming_a_host_path_fails_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(dir.path());
    config.plugins = vec![
        polypay_host::plugin::PluginConfig::new("echo", polypay_plugin_artifacts::TEST_ECHO)
            .with_prefix("/pay"),
    ];
    let err = Server::start(config)
        .await
        .err()
        .expect("start-up refused")
        .to_string();
    assert!(err.contains("`echo`") && err.contains("/pay/"), "{err}");
}

#[test]
fn serve_outside_development_without_a_master_key_refuses_to_start_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    for mode in [None, Some("production")] {
        let mut command = Command::new(POLYPAY);
        command
            .arg("serve")
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .env("POLYPAY_LISTEN__PUBLIC", "127.0.0.1:0")
            .env("POLYPAY_LISTEN__ADMIN", "127.0.0.1:0")
            .env("POLYPAY_ADMIN__TOKEN", ADMIN_TOKEN);
        if let Some(mode) = mode {
            command.env("POLYPAY_MODE", mode);
        }
        let output = command.output().unwrap();
        assert!(
            !output.status.success(),
            "mode {mode:?} started without a key"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("no master key configured") && stderr.contains("secrets.master_key"),
            "{stderr}"
        );
        assert!(
            !dir.path().join("data/master.key").exists(),
            "no key generated next to the database"
        );
        assert!(
            !dir.path().join("data/polypay.db").exists(),
            "refused before creating the database"
        );
    }
}

#[tokio::test]
async fn production_without_an_admin_token_refuses_to_start_naming_every_missing_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(dir.path());
    config.admin.token = None;
    let err = Server::start(config.clone()).await.err().expect("refused");
    let err = format!("{err:#}");
    assert!(
        err.contains("no admin token configured") && err.contains("admin.token"),
        "{err}"
    );
    assert!(
        !dir.path().join("data/admin.token").exists(),
        "nothing generated"
    );
    config.secrets.master_key = None;
    let err = format!("{:#}", Server::start(config).await.err().expect("refused"));
    assert!(
        err.contains("no admin token configured") && err.contains("no master key configured"),
        "{err}"
    );
}

#[tokio::test]
async fn admin_api_needs_the_bearer_token_and_a_host_that_cannot_be_rebound() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(dir.path());
    config.admin.allowed_hosts = vec!["ops.internal".into()];
    let server = Server::start(config).await.unwrap();
    let admin = format!("http://{}", server.admin_addr);
    let anonymous = reqwest::Client::new();
    let operator = admin_client();
    let status = |request: reqwest::RequestBuilder| async move {
        request.send().await.unwrap().status().as_u16()
    };

    // Probes stay open, whatever the Host.
    for path in ["/healthz", "/readyz"] {
        assert_eq!(status(anonymous.get(format!("{admin}{path}"))).await, 200);
        assert_eq!(
            status(
                anonymous
                    .get(format!("{admin}{path}"))
                    .header("host", "evil.example")
            )
            .await,
            200
        );
    }
    // Everything else needs the token.
    for path in [
        "/metrics",
        "/webhooks/deliveries",
        "/webhooks/stats?merchant_id=m",
    ] {
        let refused = anonymous
            .get(format!("{admin}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401, "{path}");
        assert!(refused.headers().contains_key("www-authenticate"));
        assert_eq!(
            status(
                anonymous
                    .get(format!("{admin}{path}"))
                    .bearer_auth("not-the-token-not-the-token-not-the-token")
            )
            .await,
            401
        );
        assert_eq!(
            status(operator.get(format!("{admin}{path}"))).await,
            200,
            "{path}"
        );
    }
    assert_eq!(
        status(anonymous.post(format!("{admin}/webhooks/deliveries/1/replay"))).await,
        401
    );
    // DNS rebinding: a name the operator did not configure, even with the token.
    assert_eq!(
        status(
            operator
                .get(format!("{admin}/metrics"))
                .header("host", "attacker.example:9090")
        )
        .await,
        403
    );
    assert_eq!(
        status(
            operator
                .get(format!("{admin}/metrics"))
                .header("host", "ops.internal:9090")
        )
        .await,
        200
    );
    // A browser page elsewhere (CSRF) names its origin.
    assert_eq!(
        status(
            operator
                .get(format!("{admin}/metrics"))
                .header("origin", "https://attacker.example")
        )
        .await,
        403
    );
    server.shutdown().await.unwrap();
}

#[test]
fn secrets_never_appear_in_debug_or_serialised_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_in(dir.path());
    let key = common::polypay::test_master_key();
    let debug = format!("{config:?}");
    let serialised = serde_json::to_string(&config).unwrap();
    for text in [&debug, &serialised] {
        assert!(!text.contains(&key), "master key printed: {text}");
        assert!(!text.contains(ADMIN_TOKEN), "admin token printed: {text}");
    }
    assert!(debug.contains("[redacted]"), "{debug}");
}
