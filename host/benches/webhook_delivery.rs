//! Webhook deliveries per second to local receivers: each iteration queues a batch of
//! events (not timed), then times the dispatcher from start until the receiver got every
//! one of them (and, in the first group, until every outcome is recorded). SQLite (a file
//! in a temp dir) and PostgreSQL (`POLYPAY_TEST_POSTGRES_URL`, skipped when unreachable).
//!
//! - `webhook_delivery`: one receiver that accepts everything, 1 and 4 worker loops.
//! - `webhook_slow_receiver`: the same events to the fast receiver, behind a backlog of
//!   events to a receiver that answers after 2 s (queued first, so claims meet them
//!   first); timed until the fast receiver has all of its events.
//!
//! `cargo bench -p polypay-host --bench webhook_delivery`

#[path = "../tests/common/db.rs"]
#[allow(dead_code, unused_macros)]
mod db;
#[path = "../tests/webhook_support/mod.rs"]
mod webhook_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use db::TestDb;
use polypay_host::store::{Store, now_ms};
use polypay_host::webhook::WebhookConfig;
use webhook_support::{
    Receiver, Reply, Running, TestRenderer, events_of, fast_config, invoice, merchant,
};

/// Events to the fast receiver per iteration.
const EVENTS: usize = 1_000;
/// Events to the slow receiver queued ahead of them in the second group.
const SLOW_EVENTS: usize = 100;
const SLOW_ANSWER: Duration = Duration::from_secs(2);

struct Setup {
    _db: TestDb,
    store: Store,
    fast: Receiver,
    slow: Receiver,
    /// Outbox events whose payload (callback URL) the queued copies take.
    fast_template: i64,
    slow_template: i64,
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
    let fast = Receiver::accepting().await;
    let slow = Receiver::start(|_, _| Reply::Delay(SLOW_ANSWER)).await;
    let mut templates = Vec::new();
    for receiver in [&fast, &slow] {
        let invoice = invoice(&store, &merchant, Some(&receiver.url("/notify"))).await;
        let event = events_of(&store, &invoice.id).await.remove(0).id;
        // The template itself is not delivered.
        sqlx::query("UPDATE outbox_events SET state = 'skipped' WHERE id = $1")
            .bind(event)
            .execute(store.pool())
            .await
            .expect("park the template");
        templates.push(event);
    }
    Some(Setup {
        _db: db,
        store,
        fast,
        slow,
        fast_template: templates[0],
        slow_template: templates[1],
    })
}

/// Queues `n` copies of event `template` (no invoice, so no per-invoice order between
/// them), due now.
async fn queue(store: &Store, template: i64, n: usize) {
    let now = now_ms();
    sqlx::query(
        "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $1) \
         INSERT INTO outbox_events (merchant_id, plugin, kind, payload, created_at, next_attempt_at) \
         SELECT e.merchant_id, e.plugin, e.kind, e.payload, $2, $3 FROM seq CROSS JOIN outbox_events e WHERE e.id = $4",
    )
    .bind(n as i64)
    .bind(now)
    .bind(now)
    .bind(template)
    .execute(store.pool())
    .await
    .expect("queue events");
}

fn config(workers: u32) -> WebhookConfig {
    let defaults = WebhookConfig::default();
    WebhookConfig {
        workers,
        batch_size: 32,
        poll_interval_ms: 1,
        max_in_flight: defaults.max_in_flight,
        per_receiver_in_flight: defaults.per_receiver_in_flight,
        request_timeout_ms: 5_000,
        lease_ms: 30_000,
        ..fast_config()
    }
}

async fn wait_for(receiver: &Receiver, count: usize) {
    while receiver.count() < count {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// Queues `EVENTS` events, then times their delivery and recording by `workers` loops.
async fn deliver_batch(setup: &Setup, workers: u32) -> Duration {
    queue(&setup.store, setup.fast_template, EVENTS).await;
    let target = setup.fast.count() + EVENTS;
    let started = Instant::now();
    let running = Running::start(
        &setup.store,
        config(workers),
        Arc::new(TestRenderer::default()),
    );
    wait_for(&setup.fast, target).await;
    // Stopping waits for in-flight attempts to be recorded.
    running.stop().await;
    started.elapsed()
}

/// Queues `SLOW_EVENTS` events to the slow receiver, then `EVENTS` to the fast one, and
/// times until the fast one got all of its events.
async fn deliver_past_a_slow_receiver(setup: &Setup, workers: u32) -> Duration {
    queue(&setup.store, setup.slow_template, SLOW_EVENTS).await;
    queue(&setup.store, setup.fast_template, EVENTS).await;
    let target = setup.fast.count() + EVENTS;
    let started = Instant::now();
    let running = Running::start(
        &setup.store,
        config(workers),
        Arc::new(TestRenderer::default()),
    );
    wait_for(&setup.fast, target).await;
    let elapsed = started.elapsed();
    running.stop().await;
    // What the slow receiver has not been sent yet is not carried into the next sample.
    sqlx::query(
        "UPDATE outbox_events SET state = 'skipped' WHERE state IN ('pending', 'delivering')",
    )
    .execute(setup.store.pool())
    .await
    .expect("clear the backlog");
    elapsed
}

fn deliveries(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let backends: Vec<String> = std::env::var("WEBHOOK_BENCH_BACKENDS")
        .unwrap_or_else(|_| "sqlite,postgres".into())
        .split(',')
        .map(|b| b.trim().to_string())
        .collect();
    let setups: Vec<(String, Setup)> = backends
        .into_iter()
        .filter_map(|backend| Some((backend.clone(), runtime.block_on(setup(&backend))?)))
        .collect();

    let mut group = c.benchmark_group("webhook_delivery");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(EVENTS as u64));
    for (backend, setup) in &setups {
        for workers in [1u32, 4] {
            group.bench_with_input(
                BenchmarkId::new(backend, format!("{workers}_workers")),
                &workers,
                |b, &workers| {
                    b.iter_custom(|iters| {
                        runtime.block_on(async {
                            let mut total = Duration::ZERO;
                            for _ in 0..iters {
                                total += deliver_batch(setup, workers).await;
                            }
                            total
                        })
                    })
                },
            );
        }
    }
    group.finish();

    let mut group = c.benchmark_group("webhook_slow_receiver");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Elements(EVENTS as u64));
    for (backend, setup) in &setups {
        group.bench_function(BenchmarkId::new(backend, "fast_receiver_1_worker"), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += deliver_past_a_slow_receiver(setup, 1).await;
                    }
                    total
                })
            })
        });
    }
    group.finish();
    for (_, setup) in setups {
        eprintln!(
            "slow receiver: {} requests answered after {SLOW_ANSWER:?}",
            setup.slow.count()
        );
        runtime.block_on(setup.store.close());
    }
}

criterion_group!(benches, deliveries);
criterion_main!(benches);
