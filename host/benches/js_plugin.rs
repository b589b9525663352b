//! What a dialect written in JavaScript costs next to one written in Rust, served by the
//! same host: the `epusdt-js` component (componentize-js, a JavaScript engine inside) and
//! the `tron-php` component (Rust), each answering a status check through an in-process
//! axum router (no TCP) with a fresh instance per request, one storage read (an unknown
//! order, on SQLite) and its dialect's JSON answer:
//! - `epusdt_js`: `GET /epusdt/pay/check-status/{trade_id}` → `invoices.get`, epusdt's
//!   envelope with `status_code` 10008;
//! - `tron_php`: `GET /check_payment_status.php?order_id=…` → `invoices.find-by-order-id`,
//!   `{"error": …}` with 404.
//!
//! Before timing, it prints the instance memory each one needs: the smallest `memory_mb`
//! (1 MiB steps) at which the request is answered rather than failed as a memory fault.
//!
//! Run: `cargo bench -p polypay-host --bench js_plugin`; results and the machine are
//! recorded in BENCHMARKS.md.

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use polypay_host::chain::ChainConfig;
use polypay_host::merchant::{MasterKey, Merchants};
use polypay_host::plugin::{PluginConfig, PluginRuntime, PluginServices};
use polypay_host::store::Store;
use serde_json::json;
use std::hint::black_box;
use tower::ServiceExt;

const TRON_ADDRESS: &str = "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7";

struct Dialect {
    name: &'static str,
    config: fn(memory_mb: u64) -> PluginConfig,
    path: &'static str,
    status: u16,
}

fn dialects() -> [Dialect; 2] {
    [
        Dialect {
            name: "epusdt_js",
            config: |memory_mb| {
                PluginConfig::new("epusdt-js", polypay_plugin_artifacts::EPUSDT_JS)
                    .with_prefix("/epusdt")
                    .with_memory_mb(memory_mb)
                    .with_settings(json!({
                        "token_public_id": "ep_bench",
                        "trade_types": { "usdt.trc20": { "chain": "tron", "asset": "USDT", "address": TRON_ADDRESS } }
                    }))
            },
            path: "/epusdt/pay/check-status/00000000-0000-4000-8000-000000000000",
            status: 200,
        },
        Dialect {
            name: "tron_php",
            config: |memory_mb| {
                PluginConfig::new("tron-php", polypay_plugin_artifacts::TRON_PHP)
                    .with_memory_mb(memory_mb)
                    .with_settings(json!({ "monitoring_address": TRON_ADDRESS, "network": "tron" }))
            },
            path: "/check_payment_status.php?order_id=bench-unknown",
            status: 404,
        },
    ]
}

/// The plugin's router; none when it cannot even load (its manifest call runs out of
/// memory under a small cap).
async fn router(config: PluginConfig, store: &Store) -> Option<Router> {
    let merchants = Merchants::new(store.clone(), MasterKey::from_bytes(&[7; 32]));
    let chain: ChainConfig = serde_json::from_value(json!({
        "name": "tron", "kind": "tron", "rpc_url": "http://127.0.0.1:9",
        "assets": [{ "symbol": "USDT", "decimals": 6, "contract": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t" }]
    }))
    .expect("chain config");
    let services = PluginServices::new("http://bench.invalid")
        .with_storage(store.clone(), merchants)
        .with_chains(vec![chain]);
    PluginRuntime::load(&[config], services)
        .await
        .ok()
        .map(|runtime| runtime.router())
}

async fn serve(router: &Router, path: &str) -> (u16, usize) {
    let request = Request::builder()
        .uri(path)
        .body(Body::empty())
        .expect("request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, body.len())
}

fn js_vs_rust(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let store = rt.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let store = Store::connect(&url, 4).await.expect("store");
        store.migrate().await.expect("migrate");
        store
    });

    let mut group = c.benchmark_group("status_check");
    for dialect in dialects() {
        let needed = (1..=128)
            .find(|mb| {
                rt.block_on(async {
                    match router((dialect.config)(*mb), &store).await {
                        Some(router) => serve(&router, dialect.path).await.0 == dialect.status,
                        None => false,
                    }
                })
            })
            .expect("served within 128 MiB");
        println!(
            "{}: smallest memory_mb serving the request: {needed}",
            dialect.name
        );
        let router = rt
            .block_on(router((dialect.config)(64), &store))
            .expect("loads with 64 MiB");
        assert_eq!(rt.block_on(serve(&router, dialect.path)).0, dialect.status);
        group.bench_function(dialect.name, |b| {
            b.iter(|| black_box(rt.block_on(serve(&router, dialect.path))))
        });
    }
    group.finish();
}

criterion_group!(benches, js_vs_rust);
criterion_main!(benches);
