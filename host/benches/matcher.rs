//! Matcher throughput: observed transfers attributed to their invoices and stored, per
//! second, against 10 000 and 1 000 000 open invoices, on SQLite (the embedded default)
//! and PostgreSQL (`POLYPAY_TEST_POSTGRES_URL`, skipped when unreachable).
//!
//! ```sh
//! cargo bench -p polypay-host --bench matcher
//! # one size or backend only:
//! MATCHER_BENCH_INVOICES=10000 MATCHER_BENCH_BACKENDS=postgres cargo bench -p polypay-host --bench matcher
//! ```
//!
//! Every open invoice has an active payment target: even ones a unique-amount reservation
//! at one of ten shared addresses, odd ones a derived address of their own. One iteration
//! is `matcher::record_transfers` over a batch of 1 000 transfers (each paying a random
//! open invoice, one in ten paying nobody) in a transaction that is then rolled back, so
//! every sample sees the same database. Throughput is reported in transfers per second.

#[path = "../tests/common/db.rs"]
#[allow(dead_code, unused_macros)]
mod db;

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use polypay_host::chain::ObservedTransfer;
use polypay_host::invoice::Amount;
use polypay_host::matcher::record_transfers;
use polypay_host::store::{Backend, Store};

const BATCH: usize = 1_000;
const BASE_AMOUNT: u64 = 10_000_000;

fn shared_address(i: u64) -> String {
    format!("0xshared{}", (i / 2) % 10)
}

fn derived_address(i: u64) -> String {
    format!("0x{i:040x}")
}

/// Inserts `n` open invoices with their targets, generated inside the database.
async fn populate(store: &Store, n: u64) {
    let hex_address = match store.backend() {
        Backend::Sqlite => "printf('0x%040x', i)",
        Backend::Postgres => "'0x' || lpad(to_hex(i), 40, '0')",
    };
    let now = polypay_host::store::now_ms();
    let far = now + 86_400_000;
    let statements = [
        "INSERT INTO merchants (id, name, profile, disabled, created_at, updated_at) VALUES ('m', 'bench', '{}', 0, 0, 0)"
            .to_string(),
        format!(
            "WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < {n}) \
             INSERT INTO invoices (id, merchant_id, plugin, status, chain, asset, decimals, amount_due, \
             confirmations_required, strategy, pay_address, expires_at, monitor_until, created_at, updated_at) \
             SELECT 'inv-' || i, 'm', 'bench', 'pending', 'bench', 'USDT', 6, \
             CASE WHEN i % 2 = 0 THEN CAST({BASE_AMOUNT} + i AS TEXT) ELSE '{BASE_AMOUNT}' END, 1, \
             CASE WHEN i % 2 = 0 THEN 'unique-amount' ELSE 'derived-address' END, \
             CASE WHEN i % 2 = 0 THEN '0xshared' || ((i / 2) % 10) ELSE {hex_address} END, \
             {far}, {far}, {now}, {now} FROM seq"
        ),
        format!(
            "INSERT INTO payment_targets (id, invoice_id, chain, asset, address, strategy, amount, derivation_index, created_at) \
             SELECT 'pt-' || substr(id, 5), id, chain, asset, pay_address, strategy, \
             CASE WHEN strategy = 'unique-amount' THEN amount_due END, \
             CASE WHEN strategy = 'derived-address' THEN CAST(substr(id, 5) AS INTEGER) END, {now} FROM invoices"
        ),
    ];
    let mut tx = store.begin().await.expect("begin");
    for sql in statements {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .expect("populate");
    }
    tx.commit().await.expect("commit");
    sqlx::query("ANALYZE")
        .execute(store.pool())
        .await
        .expect("analyze");
}

/// A batch of transfers paying random open invoices (one in ten pays nobody).
fn batch(n: u64, seed: u64) -> Vec<ObservedTransfer> {
    let mut state = seed;
    (0..BATCH)
        .map(|k| {
            // A fixed LCG: the same batch every run.
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let i = (state >> 33) % n;
            let (to, amount) = match (k % 10, i % 2) {
                (9, _) => (derived_address(n + i), BASE_AMOUNT),
                (_, 0) => (shared_address(i), BASE_AMOUNT + i),
                _ => (derived_address(i), BASE_AMOUNT),
            };
            ObservedTransfer {
                chain: "bench".into(),
                tx_hash: format!("0x{:064x}", (seed << 20) + k as u64),
                log_index: 0,
                block_number: 100,
                block_hash: format!("0x{:064x}", 100),
                block_time: 0,
                from: derived_address(u64::MAX),
                to,
                asset: "USDT".into(),
                amount: Amount::from(amount),
                reference: None,
            }
        })
        .collect()
}

fn matcher_throughput(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("matcher/record_transfers");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(BATCH as u64));
    // `MATCHER_BENCH_INVOICES=10000` runs one size only.
    let sizes: Vec<u64> = std::env::var("MATCHER_BENCH_INVOICES")
        .unwrap_or_else(|_| "10000,1000000".into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("MATCHER_BENCH_INVOICES: comma-separated counts")
        })
        .collect();
    let backends: Vec<String> = std::env::var("MATCHER_BENCH_BACKENDS")
        .unwrap_or_else(|_| "sqlite,postgres".into())
        .split(',')
        .map(|b| b.trim().to_string())
        .collect();
    for (backend, n) in backends
        .iter()
        .flat_map(|b| sizes.iter().map(move |n| (b.as_str(), *n)))
    {
        let Some((db, store)) = runtime.block_on(async {
            if backend == "postgres"
                && sqlx::PgPool::connect(&db::postgres_admin_url())
                    .await
                    .is_err()
            {
                eprintln!("PostgreSQL unreachable: skipping the postgres benchmark");
                return None;
            }
            let db = db::TestDb::by_name(backend).await;
            let store = Store::open(&db.url, 4).await.expect("open store");
            let started = Instant::now();
            populate(&store, n).await;
            eprintln!(
                "{backend}: populated {n} open invoices in {:.1?}",
                started.elapsed()
            );
            Some((db, store))
        }) else {
            continue;
        };
        let transfers = batch(n, 7);
        group.bench_with_input(
            BenchmarkId::new(format!("{backend}/open_invoices"), n),
            &transfers,
            |b, transfers| {
                b.iter_custom(|iterations| {
                    runtime.block_on(async {
                        let mut elapsed = Duration::ZERO;
                        for _ in 0..iterations {
                            let mut tx = store.begin().await.expect("begin");
                            let started = Instant::now();
                            let credited = record_transfers(&mut tx, transfers, 0)
                                .await
                                .expect("record");
                            elapsed += started.elapsed();
                            assert!(credited.len() > BATCH / 2, "the batch pays open invoices");
                            tx.rollback().await.expect("rollback");
                        }
                        elapsed
                    })
                })
            },
        );
        runtime.block_on(store.close());
        drop(db);
    }
    group.finish();
}

criterion_group!(benches, matcher_throughput);
criterion_main!(benches);
