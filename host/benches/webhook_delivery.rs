//! Webhook deliveries per second to a local receiver that accepts everything: each
//! iteration queues a batch of events (not timed), then times the dispatcher from start
//! until every one of them is delivered and recorded. SQLite (a file in a temp dir) and
//! PostgreSQL (`POLYPAY_TEST_POSTGRES_URL`, skipped when unreachable).
//!
//! `cargo bench -p polypay-host --bench webhook_delivery`

#[path = "../tests/common/db.rs"]
#[allow(dead_code, unused_macros)]
mod db;
#[path = "../tests/webhook_support/mod.rs"]
mod webhook_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use db::TestDb;
use polypay_host::store::Store;
use webhook_support::{Receiver, Running, TestRenderer, fast_config, invoice, merchant};

const EVENTS: usize = 200;

struct Setup {
    _db: TestDb,
    store: Store,
    merchant: String,
    receiver: Receiver,
}

async fn setup(backend: &str) -> Option<Setup> {
    if backend == "postgres" {
        let reachable = sqlx::PgPool::connect(&db::postgres_admin_url())
            .await
            .is_ok();
        if !reachable {
            eprintln!("PostgreSQL unreachable: skipping the postgres benchmark");
            return None;
        }
    }
    let db = TestDb::by_name(backend).await;
    let store = Store::open(&db.url, 16).await.expect("open store");
    let merchant = merchant(&store).await;
    let receiver = Receiver::accepting().await;
    Some(Setup {
        _db: db,
        store,
        merchant,
        receiver,
    })
}

/// Queues `EVENTS` events, then times their delivery by `workers` loops.
async fn deliver_batch(setup: &Setup, workers: u32) -> Duration {
    for _ in 0..EVENTS {
        invoice(
            &setup.store,
            &setup.merchant,
            Some(&setup.receiver.url("/notify")),
        )
        .await;
    }
    let target = setup.receiver.count() + EVENTS;
    let mut config = fast_config();
    config.workers = workers;
    config.batch_size = 32;
    config.poll_interval_ms = 1;
    let started = Instant::now();
    let running = Running::start(&setup.store, config, Arc::new(TestRenderer::default()));
    while setup.receiver.count() < target {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    // Stopping waits for in-flight attempts to be recorded.
    running.stop().await;
    started.elapsed()
}

fn deliveries(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("webhook_delivery");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(EVENTS as u64));
    for backend in ["sqlite", "postgres"] {
        let Some(setup) = runtime.block_on(setup(backend)) else {
            continue;
        };
        for workers in [1u32, 4] {
            group.bench_with_input(
                BenchmarkId::new(backend, format!("{workers}_workers")),
                &workers,
                |b, &workers| {
                    b.iter_custom(|iters| {
                        runtime.block_on(async {
                            let mut total = Duration::ZERO;
                            for _ in 0..iters {
                                total += deliver_batch(&setup, workers).await;
                            }
                            total
                        })
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, deliveries);
criterion_main!(benches);
