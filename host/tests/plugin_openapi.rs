//! OpenAPI documents per dialect: every dialect plugin ships one that parses as OpenAPI 3
//! and documents every route of its manifest, and the real server serves each at
//! `/polypay/plugins/{name}/openapi.json` (its `servers` pointing at where the plugin is
//! mounted) with the page listing them all at `/polypay/plugins`.

mod common;

use polypay_host::plugin::{PluginConfig, PluginRuntime, PluginServices, openapi};
use polypay_plugin_artifacts::{DIALECTS, JS_DIALECTS, TEST_COMPAT_V0_1, TEST_ECHO, TRINO};
use serde_json::Value;

/// The plugin name a dialect package is mounted under (`polypay-trino` → `trino`).
fn mount_name(package: &str) -> &str {
    package.strip_prefix("polypay-").unwrap_or(package)
}

#[tokio::test]
async fn every_dialect_documents_every_route_of_its_manifest_in_openapi_3() {
    assert!(DIALECTS.len() >= 4, "{DIALECTS:?}");
    // The Rust dialects and the JavaScript ones alike.
    for (package, wasm) in DIALECTS.iter().chain(JS_DIALECTS) {
        let config = PluginConfig::new(mount_name(package), *wasm);
        let runtime = PluginRuntime::load(&[config], PluginServices::new("http://polypay.test"))
            .await
            .unwrap_or_else(|e| panic!("{package}: {e}"));
        let manifest = runtime.plugins()[0].manifest.clone();
        let text = manifest
            .openapi
            .as_deref()
            .unwrap_or_else(|| panic!("{package} ships no OpenAPI document"));
        let document = openapi::check(text).unwrap_or_else(|e| panic!("{package}: {e}"));
        assert!(document.openapi.starts_with("3."), "{package}");
        assert!(!manifest.routes.is_empty(), "{package}");
        let missing = openapi::undocumented_routes(&document, &manifest.routes);
        assert!(
            missing.is_empty(),
            "{package}: routes missing from its OpenAPI document: {missing:?}"
        );
    }
}

#[tokio::test]
async fn the_server_serves_each_document_at_its_mount_and_a_page_listing_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::polypay::server_config(dir.path());
    config.public_base_url = "https://pay.example.com".into();
    config.plugins = vec![
        PluginConfig::new("trino", TRINO).with_prefix("/trino"),
        PluginConfig::new("echo", TEST_ECHO),
        PluginConfig::new("compat", TEST_COMPAT_V0_1).with_prefix("/old"),
    ];
    let server = polypay_host::app::Server::start(config).await.unwrap();
    let base = format!("http://{}", server.public_addr);
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{base}{path}")).send();

    let index: Value = get("/polypay/plugins/index.json")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let plugins = index["plugins"].as_array().unwrap();
    let names: Vec<&str> = plugins
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["trino", "echo", "compat"]);
    assert_eq!(plugins[0]["openapi"], "/polypay/plugins/trino/openapi.json");
    assert_eq!(plugins[0]["prefix"], "/trino");
    assert_eq!(plugins[0]["contract"], "0.2.0");
    // A plugin without a document (and every 0.1.0 plugin) is listed with its routes.
    assert_eq!(plugins[1]["openapi"], Value::Null);
    assert!(!plugins[1]["routes"].as_array().unwrap().is_empty());
    assert_eq!(plugins[2]["contract"], "0.1.0");
    assert_eq!(plugins[2]["openapi"], Value::Null);

    let response = get("/polypay/plugins/trino/openapi.json").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let document: Value = response.json().await.unwrap();
    assert_eq!(
        document["servers"],
        serde_json::json!([{ "url": "https://pay.example.com/trino" }])
    );
    assert!(document["paths"]["/api/v1/invoices/create"]["post"].is_object());
    openapi::check(&document.to_string()).unwrap();

    for missing in [
        "/polypay/plugins/echo/openapi.json",
        "/polypay/plugins/nobody/openapi.json",
    ] {
        assert_eq!(get(missing).await.unwrap().status(), 404, "{missing}");
    }

    let page = get("/polypay/plugins").await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("/polypay/plugins/docs.js"), "{html}");
    let script = get("/polypay/plugins/docs.js").await.unwrap();
    assert_eq!(script.status(), 200);
    let script = script.text().await.unwrap();
    assert!(script.contains("/polypay/plugins/index.json"));
    // Plugin-controlled text is never inserted as markup.
    assert!(!script.contains("innerHTML"));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_plugin_declaring_a_document_that_is_not_openapi_3_is_refused_at_start_up() {
    let declaring = |document: &str| {
        PluginConfig::new("echo", TEST_ECHO)
            .with_settings(serde_json::json!({ "openapi": document }))
    };
    let services = || PluginServices::new("http://polypay.test");
    let error = PluginRuntime::load(&[declaring(r#"{"swagger": "2.0"}"#)], services())
        .await
        .err()
        .expect("a Swagger 2 document is refused");
    let message = error.to_string();
    assert!(
        message.contains("`echo`") && message.contains("bad OpenAPI document"),
        "{message}"
    );

    let valid = r#"{"openapi": "3.0.3", "info": {"title": "echo", "version": "1"}, "paths": {}}"#;
    let runtime = PluginRuntime::load(&[declaring(valid)], services())
        .await
        .unwrap();
    assert_eq!(
        runtime.plugins()[0].manifest.openapi.as_deref(),
        Some(valid)
    );
}
