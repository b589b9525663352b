//! A merchant in a fresh database, opening invoices on one configured chain through the
//! host's Rust API, running that chain's listener (of whatever kind the config names) and
//! watching invoices change: the chain-neutral half of an end-to-end payment harness
//! (`anvil::Harness`, `tron_chain::TronHarness`, which deref to it).

use std::time::{Duration, Instant};

use polypay_host::chain::{ChainConfig, ChainStatus};
use polypay_host::invoice::{Amount, EventPayload, Invoice, InvoiceService, NewInvoice};
use polypay_host::matcher::TargetSpec;
use polypay_host::matcher::expiry::ExpiryScheduler;
use polypay_host::store::Store;
use polypay_host::store::chain_queries::StoredTransfer;
use polypay_host::store::outbox::{self, Delivery};

use super::db::TestDb;

pub struct Merchant {
    pub config: ChainConfig,
    pub store: Store,
    pub merchant_id: String,
    listener: Option<tokio::task::JoinHandle<()>>,
    /// The status channel of the last listener spawned.
    pub status: Option<tokio::sync::watch::Receiver<ChainStatus>>,
    _db: TestDb,
}

impl Merchant {
    /// A merchant in `db`, selling on the chain `config` describes (validated here).
    pub async fn open_shop(db: TestDb, config: ChainConfig) -> Merchant {
        polypay_host::chain::validate_chains(std::slice::from_ref(&config))
            .expect("valid chain config");
        let store = db.store().await;
        let merchant_id = uuid::Uuid::new_v4().to_string();
        let now = polypay_host::store::now_ms();
        sqlx::query(
            "INSERT INTO merchants (id, name, plugin, profile, disabled, created_at, updated_at) \
             VALUES ($1, 'test merchant', NULL, '{}', 0, $2, $2)",
        )
        .bind(&merchant_id)
        .bind(now)
        .execute(store.pool())
        .await
        .expect("insert merchant");
        Merchant {
            config,
            store,
            merchant_id,
            listener: None,
            status: None,
            _db: db,
        }
    }

    /// Starts the chain's listener in a task (replacing a running one).
    pub fn spawn_listener(&mut self) {
        self.kill_listener();
        let listener =
            polypay_host::chain::listeners(std::slice::from_ref(&self.config), &self.store)
                .expect("listener")
                .pop()
                .expect("one chain, one listener");
        self.status = Some(listener.status());
        self.listener = Some(tokio::spawn(listener.run(std::future::pending())));
    }

    /// Kills the listener task wherever it is (the task is aborted, like a crash).
    pub fn kill_listener(&mut self) {
        if let Some(task) = self.listener.take() {
            task.abort();
        }
    }

    /// Starts the expiry scheduler (runs until the test ends).
    pub fn spawn_expiry(&self) {
        let scheduler = ExpiryScheduler::new(self.store.clone()).tick(Duration::from_millis(100));
        tokio::spawn(scheduler.run(std::future::pending()));
    }

    /// Opens an invoice for `amount` (a decimal in the asset's units) that expires after
    /// `expires_in`, with a post-expiry monitoring window of `window`.
    pub async fn open(
        &self,
        asset: &str,
        amount: &str,
        spec: TargetSpec,
        expires_in: Duration,
        window: Duration,
    ) -> Invoice {
        let decimals = self
            .config
            .asset(asset)
            .expect("asset of the test chain")
            .decimals;
        let now = polypay_host::store::now_ms();
        let expires_at = now + expires_in.as_millis() as i64;
        let mut new = NewInvoice::new(
            &self.merchant_id,
            "test",
            &self.config.name,
            (asset, decimals),
            Amount::parse_decimal(amount, decimals).expect("amount"),
            expires_at,
        );
        new.monitor_until = expires_at + window.as_millis() as i64;
        InvoiceService::new(self.store.clone())
            .open(&self.config, &new, &spec)
            .await
            .expect("open invoice")
    }

    /// Opens an invoice that expires in an hour.
    pub async fn open_for_an_hour(&self, asset: &str, amount: &str, spec: TargetSpec) -> Invoice {
        self.open(
            asset,
            amount,
            spec,
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        )
        .await
    }

    pub async fn invoice(&self, id: &str) -> Invoice {
        self.store
            .invoice(id)
            .await
            .expect("read invoice")
            .expect("invoice exists")
    }

    /// Polls the invoice until `condition` holds (up to 60 s), and returns it.
    pub async fn wait_for(
        &self,
        id: &str,
        what: &str,
        condition: impl Fn(&Invoice) -> bool,
    ) -> Invoice {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let invoice = self.invoice(id).await;
            if condition(&invoice) {
                return invoice;
            }
            assert!(
                Instant::now() < deadline,
                "invoice never became {what}: {invoice:#?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Polls until the listener has processed block `number` (up to 60 s).
    pub async fn wait_processed(&self, number: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let cursor = self
                .store
                .chain_cursor(&self.config.name)
                .await
                .expect("cursor");
            if cursor
                .and_then(|c| c.processed_block)
                .is_some_and(|p| p >= number as i64)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "block {number} never processed: {cursor:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Every transfer the listener stored on the chain, removed ones included.
    pub async fn observed_transfers(&self) -> Vec<StoredTransfer> {
        self.store
            .observed_transfers(&self.config.name)
            .await
            .expect("observed transfers")
    }

    /// The kinds of the invoice's outbox events, oldest first.
    pub async fn event_kinds(&self, id: &str) -> Vec<String> {
        self.events(id)
            .await
            .into_iter()
            .map(|(e, _)| e.kind)
            .collect()
    }

    /// The invoice's outbox events with their payloads, oldest first.
    pub async fn events(&self, id: &str) -> Vec<(Delivery, EventPayload)> {
        let mut conn = self.store.pool().acquire().await.expect("connection");
        outbox::invoice_events(&mut conn, id).await.expect("events")
    }
}

impl Drop for Merchant {
    fn drop(&mut self) {
        self.kill_listener();
    }
}
