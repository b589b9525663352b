//! Per-request cost of serving a route through a plugin versus natively.
//!
//! Both sides answer the same request through an axum router in-process
//! (no TCP): `POST /echo/request/bench` with a small JSON body, answered with
//! a JSON echo of method, route, params, path, query, headers and body.
//! - `plugin`: the `test-echo` component: route lookup, body read, a fresh
//!   instance from the pooling allocator, `handle`, response conversion.
//! - `native`: an axum handler building the same JSON.
//!
//! Run: `cargo bench -p polypay-host --bench plugin_dispatch`; results and the
//! machine are recorded in BENCHMARKS.md.

use axum::Router;
use axum::body::Body;
use axum::extract::{RawPathParams, Request};
use axum::response::IntoResponse;
use axum::routing::post;
use criterion::{Criterion, criterion_group, criterion_main};
use polypay_host::plugin::{PluginConfig, PluginRuntime, PluginServices};
use serde_json::json;
use std::hint::black_box;
use tower::ServiceExt;

const BODY: &str = r#"{"amount":"1000000","chain":"ethereum","asset":"USDT","order_id":"bench-1"}"#;

fn request() -> Request {
    Request::builder()
        .method("POST")
        .uri("/echo/request/bench?x=1")
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
    let response = router.clone().oneshot(request()).await.expect("infallible");
    assert_eq!(response.status(), 200);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    body.len()
}

fn dispatch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let plugin_router = rt.block_on(async {
        let configs = [PluginConfig::new(
            "echo",
            polypay_plugin_artifacts::TEST_ECHO,
        )];
        PluginRuntime::load(&configs, PluginServices::new("http://bench.invalid"))
            .await
            .expect("load")
            .router()
    });
    let native_router = Router::new().route("/echo/request/{*rest}", post(native_echo));

    let mut group = c.benchmark_group("dispatch_small_json");
    group.bench_function("plugin", |b| {
        b.iter(|| black_box(rt.block_on(serve(&plugin_router))))
    });
    group.bench_function("native", |b| {
        b.iter(|| black_box(rt.block_on(serve(&native_router))))
    });
    group.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
