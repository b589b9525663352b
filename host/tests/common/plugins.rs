//! A plugin runtime serving real components over real HTTP on loopback, for the plugin
//! tests: [`TestApp::init`] gives a builder on which each test states only what it needs
//! (`with_echo`, `with_plugin`, `with_storage`), then `start`s it on 127.0.0.1:0.

use super::db::TestDb;
use hmac::{Hmac, Mac};
use polypay_host::chain::ChainConfig;
use polypay_host::merchant::{MasterKey, Merchants};
use polypay_host::plugin::{FaultKind, PluginConfig, PluginError, PluginRuntime, PluginServices};
use polypay_host::store::Store;
use polypay_plugin_artifacts::{TEST_ECHO, TEST_FAULTS};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;

pub struct TestApp {
    pub runtime: PluginRuntime,
    pub base: String,
    pub http: reqwest::Client,
    pub storage: Option<TestStorage>,
    pub invoices_created: std::sync::atomic::AtomicU64,
}

/// The database behind a [`TestApp`] started `with_storage`.
pub struct TestStorage {
    pub db: TestDb,
    pub store: Store,
    pub merchants: Merchants,
}

pub struct TestAppBuilder {
    pub configs: Vec<PluginConfig>,
    pub services: PluginServices,
    pub storage: Option<TestStorage>,
}

/// The fixed address of the first invoice an app creates; each later one gets the next
/// address (one fixed-address invoice may be open per address).
pub const PAY_TO: &str = "0x1111111111111111111111111111111111111111";

/// The fixed address of an app's `n`-th invoice (0-based).
pub fn pay_to(n: u64) -> String {
    if n == 0 {
        PAY_TO.to_string()
    } else {
        format!("0x{:040x}", 0x2222_0000_u64 + n)
    }
}

impl TestApp {
    pub fn init() -> TestAppBuilder {
        // Plugin faults and guest output are logged: show them with failing tests.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("polypay_host=debug")
            .try_init();
        TestAppBuilder {
            configs: Vec::new(),
            services: PluginServices::new("http://polypay.test"),
            storage: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("request completes")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request completes")
    }

    pub fn faults(&self, plugin: &str, kind: FaultKind) -> u64 {
        self.runtime.fault_count(plugin, kind)
    }

    pub fn storage(&self) -> &TestStorage {
        self.storage.as_ref().expect("started with_storage")
    }

    /// A request with `Authorization: Bearer token` when a token is given.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let r = self.http.request(method, self.url(path));
        match token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Self-registers a merchant through the echo plugin at `prefix`.
    pub async fn register(&self, prefix: &str, name: &str) -> Registration {
        let r = self
            .post_json(
                &format!("{prefix}/echo/merchants"),
                &json!({ "name": name }),
            )
            .await;
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        Registration {
            merchant_id: v["merchant_id"].as_str().unwrap().to_owned(),
            token: v["token"].as_str().unwrap().to_owned(),
            signing_credential_id: v["signing_credential_id"].as_str().unwrap().to_owned(),
            signing_secret: v["signing_secret"].as_str().unwrap().to_owned(),
        }
    }

    /// Creates an invoice through the echo plugin at `prefix`; returns (status, body).
    pub async fn create_invoice(
        &self,
        prefix: &str,
        token: Option<&str>,
        order_id: &str,
    ) -> (u16, Value) {
        let n = self
            .invoices_created
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let body = json!({ "amount": "1500000", "chain": "ethereum", "asset": "USDT", "order_id": order_id,
                           "fixed_address": pay_to(n), "notify_url": "https://merchant.example/cb" });
        let r = self
            .request(
                reqwest::Method::POST,
                &format!("{prefix}/echo/invoices"),
                token,
            )
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    pub async fn status_of(&self, method: reqwest::Method, path: &str, token: Option<&str>) -> u16 {
        self.request(method, path, token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

/// What `POST /echo/merchants` returns.
pub struct Registration {
    pub merchant_id: String,
    pub token: String,
    pub signing_credential_id: String,
    pub signing_secret: String,
}

/// A `status-changed` event of `plugin` about `invoice` (as stored), to
/// `https://merchant.example/cb`, as the webhook worker hands it to a renderer.
pub fn status_event(
    plugin: &str,
    id: i64,
    invoice: &polypay_host::invoice::Invoice,
    previous_status: Option<polypay_host::invoice::InvoiceStatus>,
) -> polypay_host::webhook::WebhookEvent {
    polypay_host::webhook::WebhookEvent {
        id,
        kind: polypay_host::webhook::WebhookEventKind::StatusChanged,
        name: "invoice.paid".into(),
        plugin: plugin.into(),
        merchant_id: invoice.merchant_id.clone(),
        invoice_id: Some(invoice.id.clone()),
        invoice: invoice.clone(),
        previous_status,
        occurred_at: 1,
        url: "https://merchant.example/cb".into(),
    }
}

pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

impl TestAppBuilder {
    pub fn with_plugin(mut self, config: PluginConfig) -> Self {
        self.configs.push(config);
        self
    }

    pub fn with_echo(self) -> Self {
        self.with_plugin(PluginConfig::new("echo", TEST_ECHO))
    }

    /// The faults plugin with tight limits so each fault is quick.
    pub fn with_faults(self) -> Self {
        self.with_plugin(
            PluginConfig::new("faults", TEST_FAULTS)
                .with_deadline_ms(300)
                .with_memory_mb(16),
        )
    }

    /// A fresh SQLite database, a master key, and one EVM chain `ethereum` with USDT.
    pub async fn with_storage(mut self) -> Self {
        let db = TestDb::sqlite().await;
        let store = db.store().await;
        let merchants = Merchants::new(store.clone(), MasterKey::from_bytes(&[7; 32]));
        let chain: ChainConfig = serde_json::from_value(json!({
            "name": "ethereum", "kind": "evm", "chain_id": 1, "rpc_url": "http://127.0.0.1:9",
            "assets": [{ "symbol": "USDT", "decimals": 6, "contract": "0xdAC17F958D2ee523a2206206994597C13D831ec7",
                         "unique_amount_step": "1" }]
        }))
        .expect("valid chain config");
        self.services = self
            .services
            .with_storage(store.clone(), merchants.clone())
            .with_chains(vec![chain]);
        self.storage = Some(TestStorage {
            db,
            store,
            merchants,
        });
        self
    }

    pub async fn try_start(self) -> Result<TestApp, PluginError> {
        let runtime = PluginRuntime::load(&self.configs, self.services).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let app = runtime
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await.expect("server runs") });
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Ok(TestApp {
            runtime,
            base,
            http,
            storage: self.storage,
            invoices_created: Default::default(),
        })
    }

    pub async fn start(self) -> TestApp {
        self.try_start().await.expect("plugins load")
    }
}
