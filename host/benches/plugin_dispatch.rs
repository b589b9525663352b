//! Per-request cost of serving a route through a plugin versus natively.
//!
//! Both sides answer the same request through an axum router in-process
//! (no TCP): `POST /echo/request/bench` with a small JSON body, answered with
//! a JSON echo of method, route, params, path, query, headers and body.
//! - `plugin`: the `test-echo` component: route lookup, body read, a fresh
//!   instance from the pooling allocator, `handle`, response conversion.
//! - `native`: an axum handler building the same JSON.
//!
//! Where the plugin's time goes, each step alone (group `plugin_steps`):
//! - `store`: a store with its WASI context, limits and call hooks, dropped;
//! - `instantiate`: the same plus a fresh instance (no call);
//! - `noop_route`: `POST /echo/noop` through the router: a fresh instance whose
//!   `handle` answers a constant 204 (everything but the echo's own work).
//!
//! Requests are measured the way the server serves them: one after another on a task of
//! the multi-threaded runtime (a connection's task), so the plugin call's own task
//! (`plugin::runtime`) starts on the same worker thread. Group
//! `dispatch_small_json_from_outside_the_runtime` drives the same requests with
//! `block_on` from the benchmark's thread instead: every plugin call's task then has to
//! wake a parked worker thread, which no request in the server pays, and on an idle
//! virtual machine that wake-up costs more than the whole call.
//!
//! After criterion, each variant is run [`FAULT_SAMPLES`] more times and the minor
//! page faults of the process (`getrusage`, `ru_minflt`) per request are printed.
//!
//! The instance pool runs with the server's settings (`PoolTuning::default_for_host`);
//! with `POLYPAY_BENCH_POOL=wasmtime-defaults` it runs with wasmtime's defaults
//! instead (every slot given back to the kernel after use), for a side-by-side run.
//!
//! Run: `cargo bench -p polypay-host --bench plugin_dispatch`; results and the
//! machine are recorded in BENCHMARKS.md.

use axum::Router;
use axum::body::Body;
use axum::extract::{RawPathParams, Request};
use axum::response::IntoResponse;
use axum::routing::post;
use criterion::{Criterion, criterion_group, criterion_main};
use polypay_host::plugin::{
    PluginConfig, PluginRuntime, PluginServices, PoolTuning, set_pool_tuning,
};
use serde_json::json;
use std::hint::black_box;
use std::time::Instant;
use tower::ServiceExt;

const BODY: &str = r#"{"amount":"1000000","chain":"ethereum","asset":"USDT","order_id":"bench-1"}"#;

fn request() -> Request {
    post_to("/echo/request/bench?x=1")
}

fn post_to(uri: &str) -> Request {
    Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/json")
        .header("x-request-id", "bench")
        .body(Body::from(BODY))
        .expect("valid request")
}

/// The native twin of `test-echo`'s `echo_request` handler.
async fn native_echo(params: RawPathParams, request: Request) -> impl IntoResponse {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    axum::Json(json!({
        "method": parts.method.as_str(),
        "route": "/echo/request/{*rest}",
        "params": params,
        "path": parts.uri.path(),
        "query": parts.uri.query().unwrap_or_default(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
        "client_ip": null,
        "request_id": "bench",
    }))
}

async fn serve(router: &Router) -> usize {
    serve_request(router, request(), 200).await
}

async fn serve_request(router: &Router, request: Request, status: u16) -> usize {
    let response = router.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), status);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    body.len()
}

fn dispatch(c: &mut Criterion) {
    let tuning = match std::env::var("POLYPAY_BENCH_POOL").as_deref() {
        Ok("wasmtime-defaults") => PoolTuning::wasmtime_defaults(),
        Ok(other) => panic!("POLYPAY_BENCH_POOL={other}: only `wasmtime-defaults` is known"),
        Err(_) => PoolTuning::default_for_host(),
    };
    assert!(set_pool_tuning(tuning), "set before the engine exists");
    println!("instance pool: {tuning:?}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let runtime = rt.block_on(async {
        let configs = [PluginConfig::new(
            "echo",
            polypay_plugin_artifacts::TEST_ECHO,
        )];
        PluginRuntime::load(&configs, PluginServices::new("http://bench.invalid"))
            .await
            .expect("load")
    });
    let plugin_router = runtime.router();
    let native_router = Router::new().route("/echo/request/{*rest}", post(native_echo));

    // Requests are served one after another on a task of the runtime, as a connection's
    // requests are in the server (see the module docs).
    let in_task = |router: &Router, iters: u64| {
        let router = router.clone();
        rt.block_on(rt.spawn(async move {
            let started = Instant::now();
            for _ in 0..iters {
                black_box(serve(&router).await);
            }
            started.elapsed()
        }))
        .expect("the measuring task")
    };
    let mut group = c.benchmark_group("dispatch_small_json");
    group.bench_function("plugin", |b| {
        b.iter_custom(|iters| in_task(&plugin_router, iters))
    });
    group.bench_function("native", |b| {
        b.iter_custom(|iters| in_task(&native_router, iters))
    });
    group.finish();

    // The same requests driven from outside the runtime (`block_on` on the benchmark's
    // thread): the plugin's call task then starts on a parked worker thread, which
    // must be woken for every request.
    let mut outside = c.benchmark_group("dispatch_small_json_from_outside_the_runtime");
    outside.bench_function("plugin", |b| {
        b.iter(|| black_box(rt.block_on(serve(&plugin_router))))
    });
    outside.bench_function("native", |b| {
        b.iter(|| black_box(rt.block_on(serve(&native_router))))
    });
    outside.finish();

    let mut steps = c.benchmark_group("plugin_steps");
    steps.bench_function("store", |b| {
        b.iter(|| {
            rt.block_on(runtime.probe_call_setup("echo", false))
                .expect("store")
        })
    });
    steps.bench_function("instantiate", |b| {
        b.iter(|| {
            rt.block_on(runtime.probe_call_setup("echo", true))
                .expect("instance")
        })
    });
    steps.bench_function("noop_route", |b| {
        b.iter_custom(|iters| {
            let router = plugin_router.clone();
            rt.block_on(rt.spawn(async move {
                let started = Instant::now();
                for _ in 0..iters {
                    black_box(serve_request(&router, post_to("/echo/noop"), 204).await);
                }
                started.elapsed()
            }))
            .expect("the measuring task")
        })
    });
    steps.finish();

    println!("\nminor page faults per request (getrusage ru_minflt, {FAULT_SAMPLES} requests):");
    let faults = |name: &str, mut one: Box<dyn FnMut() + '_>| {
        one();
        let before = minor_faults();
        for _ in 0..FAULT_SAMPLES {
            one();
        }
        let per = (minor_faults() - before) as f64 / FAULT_SAMPLES as f64;
        println!("  {name:<12} {per:>8.2}");
    };
    faults(
        "plugin",
        Box::new(|| {
            rt.block_on(serve(&plugin_router));
        }),
    );
    faults(
        "native",
        Box::new(|| {
            rt.block_on(serve(&native_router));
        }),
    );
    faults(
        "store",
        Box::new(|| {
            rt.block_on(runtime.probe_call_setup("echo", false))
                .expect("store")
        }),
    );
    faults(
        "instantiate",
        Box::new(|| {
            rt.block_on(runtime.probe_call_setup("echo", true))
                .expect("instance")
        }),
    );
    faults(
        "noop_route",
        Box::new(|| {
            rt.block_on(serve_request(&plugin_router, post_to("/echo/noop"), 204));
        }),
    );
}

/// Requests per variant for the page-fault count.
const FAULT_SAMPLES: u64 = 5_000;

/// Minor page faults of this process so far.
fn minor_faults() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    usage.ru_minflt as u64
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
