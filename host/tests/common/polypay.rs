//! The real `polypay` binary, driven as an operator would: a config file, CLI commands
//! whose JSON output the test reads, and `polypay serve` as a child process. Also the
//! production-mode secrets every test server is configured with, for the binary
//! ([`secrets_toml`]) and in process ([`server_config`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use polypay_host::config::{Config, Secret};
use serde_json::Value;

/// The master key of test servers (64 hex characters).
pub fn test_master_key() -> String {
    "42".repeat(32)
}

/// The admin listener's bearer token of test servers.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef0123456789";

/// The `[secrets]` and `[admin]` sections of a test server's config file.
pub fn secrets_toml() -> String {
    format!(
        "[secrets]\nmaster_key = \"{}\"\n\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n",
        test_master_key()
    )
}

/// The `[webhooks]` section of a test server whose merchants receive callbacks on
/// loopback: quick polling, and retries every 200 ms.
pub fn loopback_webhooks_toml() -> &'static str {
    r#"[webhooks]
poll_interval_ms = 50
# The merchant's callback receiver is on loopback in these tests.
allowed_networks = ["127.0.0.1/32"]

[webhooks.retry]
initial_delay_ms = 200
multiplier = 1
max_delay_ms = 200
max_attempts = 20
jitter = 0
"#
}

/// A production-mode config for an in-process server on free loopback ports with its
/// data in `dir`, with [`test_master_key`] and [`ADMIN_TOKEN`].
pub fn server_config(dir: &Path) -> Config {
    let mut config = Config {
        data_dir: dir.join("data"),
        ..Config::default()
    };
    config.listen.public = "127.0.0.1:0".parse().unwrap();
    config.listen.admin = "127.0.0.1:0".parse().unwrap();
    config.secrets.master_key = Some(Secret::new(test_master_key()));
    config.admin.token = Some(Secret::new(ADMIN_TOKEN));
    config
}

/// An HTTP client that sends [`ADMIN_TOKEN`] with every request, for the admin API.
pub fn admin_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {ADMIN_TOKEN}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// A free loopback port (free when asked; the server binds it moments later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// Runs `polypay --config CONFIG ARGS…`, asserts it succeeded, and parses its stdout as
/// JSON (what `merchant create` and `merchant rotate` print).
pub fn cli_json(config: &Path, args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_polypay"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run the polypay binary");
    assert!(
        output.status.success(),
        "polypay {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "polypay {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// `polypay serve`, SIGKILLed when dropped. Its log goes to a file next to the config,
/// printed if it fails to become ready.
pub struct PolypayProcess {
    child: Child,
    log: PathBuf,
}

impl PolypayProcess {
    pub fn serve(config: &Path) -> PolypayProcess {
        let log = config.with_extension("log");
        let log_file = std::fs::File::create(&log).expect("create the server log");
        let child = Command::new(env!("CARGO_BIN_EXE_polypay"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start polypay serve");
        PolypayProcess { child, log }
    }

    /// Waits until `GET {admin}/readyz` answers 200 (database up, migrations current).
    pub async fn wait_ready(&mut self, admin: &str) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(format!("{admin}/readyz")).send().await
                && r.status() == 200
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("polypay serve exited ({status}):\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "polypay serve not ready after 60 s:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The operating system's id of the server process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PolypayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
