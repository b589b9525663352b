//! The operator's ledger tools: `polypay ledger ...` against the database, and the admin
//! API's `/ledger` routes on a running server.

mod common;

use polypay_host::invoice::Amount;
use polypay_host::ledger::Ledger;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_create_users_and_reconcile_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let polypay = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_polypay"))
            .arg("ledger")
            .args(args)
            .env("POLYPAY_DATA_DIR", &data_dir)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let (ok, out, err) = polypay(&[
        "user-create",
        "--plugin",
        "bhop",
        "--national-code",
        "86",
        "--mobile",
        "18600000001",
    ]);
    assert!(ok, "{err}");
    let user: Value = serde_json::from_str(&out).unwrap();
    let id = user["id"].as_i64().unwrap().to_string();
    assert_eq!(user["contact"]["mobile"], "18600000001");
    let (ok, _, err) = polypay(&["user-create", "--plugin", "bhop", "--mobile", "1"]);
    assert!(!ok && err.contains("go together"), "{err}");

    let (ok, out, err) = polypay(&["users", "--plugin", "bhop"]);
    assert!(ok, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()[0]["id"],
        user["id"]
    );
    let (ok, _, err) = polypay(&["balances", "--plugin", "other", &id]);
    assert!(
        !ok && err.contains("not found"),
        "another plugin's user: {err}"
    );
    // No chain is configured: an adjustment names an asset the host does not know.
    let (ok, _, err) = polypay(&[
        "adjust", "--plugin", "bhop", &id, "--chain", "ethereum", "--asset", "USDT", "1",
    ]);
    assert!(!ok && err.contains("no asset USDT"), "{err}");

    let url = format!("sqlite://{}", data_dir.join("polypay.db").display());
    let store = polypay_host::store::Store::open(&url, 4).await.unwrap();
    let user_id = id.parse().unwrap();
    Ledger::new(store.clone())
        .adjust(
            "bhop",
            user_id,
            "ethereum",
            "USDT",
            Amount::from(2_500_000u64),
            true,
        )
        .await
        .unwrap();
    let (ok, out, err) = polypay(&["reconcile"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("bhop  ethereum/USDT  in=2500000  out=0  held=2500000  debt=0  balanced"),
        "{out}"
    );
    // A cached balance that no longer matches its postings fails reconciliation.
    sqlx::query("UPDATE ledger_accounts SET balance = '1' WHERE kind = 'available'")
        .execute(store.pool())
        .await
        .unwrap();
    store.close().await;
    let (ok, out, err) = polypay(&["reconcile", "--json"]);
    assert!(!ok && err.contains("does not balance"), "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["assets"][0]["balanced"], false);
    assert_eq!(report["mismatches"][0]["from_postings"], "2500000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_manage_the_ledger_through_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = polypay_host::app::Server::start(common::polypay::server_config(dir.path()))
        .await
        .unwrap();
    let admin = format!("http://{}", server.admin_addr);
    let http = common::polypay::admin_client();
    let created = http
        .post(format!("{admin}/ledger/users"))
        .json(&json!({ "plugin": "bhop", "contact": { "email": "a@b.example" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let user: Value = created.json().await.unwrap();
    let id = user["id"].as_i64().unwrap();
    let bad = http
        .post(format!("{admin}/ledger/users"))
        .json(&json!({ "plugin": "bhop", "contact": { "email": "not an email" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    Ledger::new(server.context.store.clone())
        .adjust("bhop", id, "ethereum", "USDT", Amount::from(7u64), true)
        .await
        .unwrap();
    let get = |path: String| {
        let http = http.clone();
        async move { http.get(path).send().await.unwrap() }
    };
    let balances: Value = get(format!("{admin}/ledger/users/bhop/{id}/balances"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(balances["balances"][0]["available"], "7");
    let postings: Value = get(format!("{admin}/ledger/users/bhop/{id}/postings"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(postings["postings"][0]["memo"], "adjustment");
    assert_eq!(
        get(format!("{admin}/ledger/users/other/{id}/balances"))
            .await
            .status(),
        404
    );
    let reconciled: Value = get(format!("{admin}/ledger/reconcile"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reconciled["assets"][0]["balanced"], true);
    assert_eq!(reconciled["mismatches"], json!([]));
    let unauthenticated = reqwest::get(format!("{admin}/ledger/reconcile"))
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
}
