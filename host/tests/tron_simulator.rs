//! The java-tron simulator the TRON listener is tested against, checked against java-tron
//! itself: its ids follow java-tron's rules on recorded blocks and transactions, and its
//! answers have the shapes of the answers recorded in java-tron's documentation.

mod common;

use alloy::primitives::U256;
use common::tron::proto::{self, BlockHeaderRaw, TransactionRaw};
use common::tron::{Fault, Outcome, SimChain, SimNode};
use polypay_host::chain::tron::TronAddress;
use serde_json::{Value, json};

const RECORDED_BLOCK: &str = include_str!("fixtures/tron/getblockbynum_66987565.json");
const RECORDED_NOW_BLOCK: &str = include_str!("fixtures/tron/getnowblock_66987627.json");
const RECORDED_TRANSFER: &str = include_str!("fixtures/tron/gettransactionbyid_transfer.json");
const RECORDED_TRIGGER: &str = include_str!("fixtures/tron/gettransactionbyid_trigger.json");
const RECORDED_TRANSFER_INFO: &str =
    include_str!("fixtures/tron/gettransactioninfobyid_transfer.json");
const RECORDED_TRIGGER_INFO: &str =
    include_str!("fixtures/tron/gettransactioninfobyid_trigger.json");

fn bytes(hex_text: &str) -> Vec<u8> {
    hex::decode(hex_text).expect("hex")
}

#[test]
fn block_ids_follow_java_tron_on_recorded_blocks() {
    for recorded in [RECORDED_BLOCK, RECORDED_NOW_BLOCK] {
        let block: Value = serde_json::from_str(recorded).unwrap();
        let raw = &block["block_header"]["raw_data"];
        let header = BlockHeaderRaw {
            timestamp: raw["timestamp"].as_i64().unwrap(),
            tx_trie_root: &bytes(raw["txTrieRoot"].as_str().unwrap()),
            parent_hash: &bytes(raw["parentHash"].as_str().unwrap()),
            number: raw["number"].as_i64().unwrap(),
            witness_address: &bytes(raw["witness_address"].as_str().unwrap()),
            version: raw["version"].as_i64().unwrap(),
        };
        assert_eq!(hex::encode(header.block_id()), block["blockID"]);
    }
}

#[test]
fn transaction_ids_and_raw_data_follow_java_tron_on_recorded_transactions() {
    // The TRX transfer, complete in the documentation.
    let tx: Value = serde_json::from_str(RECORDED_TRANSFER).unwrap();
    let raw = &tx["raw_data"];
    let value = &raw["contract"][0]["parameter"]["value"];
    let contract = proto::contract(
        proto::TRANSFER_CONTRACT,
        raw["contract"][0]["parameter"]["type_url"]
            .as_str()
            .unwrap(),
        &proto::transfer_contract(
            &bytes(value["owner_address"].as_str().unwrap()),
            &bytes(value["to_address"].as_str().unwrap()),
            value["amount"].as_i64().unwrap(),
        ),
    );
    let encoded = TransactionRaw {
        ref_block_bytes: &bytes(raw["ref_block_bytes"].as_str().unwrap()),
        ref_block_hash: &bytes(raw["ref_block_hash"].as_str().unwrap()),
        expiration: raw["expiration"].as_i64().unwrap(),
        contract: &contract,
        timestamp: raw["timestamp"].as_i64().unwrap(),
        fee_limit: 0,
    }
    .encode();
    assert_eq!(hex::encode(&encoded), tx["raw_data_hex"]);
    assert_eq!(hex::encode(proto::sha256(&encoded)), tx["txID"]);

    // A TRC20 transfer built by /wallet/triggersmartcontract on Nile (documentation page
    // of that endpoint): owner, token, `transfer(0x088a…, 100)`, fee limit 100 TRX.
    let data = bytes(
        "a9059cbb000000000000000000000000088a2bfcb1c7271029fd69a66859d555608958840000000000000000000000000000000000000000000000000000000000000064",
    );
    let contract = proto::contract(
        proto::TRIGGER_SMART_CONTRACT,
        "type.googleapis.com/protocol.TriggerSmartContract",
        &proto::trigger_smart_contract(
            &bytes("41dd791d6b49e190062d650e6a23c575510d35f2f9"),
            &bytes("41eca9bc828a3005b9a3b909f2cc5c2a54794de05f"),
            &data,
        ),
    );
    let encoded = TransactionRaw {
        ref_block_bytes: &bytes("28c3"),
        ref_block_hash: &bytes("ce6d340282788569"),
        expiration: 1_777_447_227_000,
        contract: &contract,
        timestamp: 1_777_447_168_009,
        fee_limit: 100_000_000,
    }
    .encode();
    assert_eq!(
        hex::encode(&encoded),
        "0a0228c32208ce6d34028278856940f89cf1c0dd335aae01081f12a9010a31747970652e676f6f676c65617069732e636f6d2f70726f746f636f6c2e54726967676572536d617274436f6e747261637412740a1541dd791d6b49e190062d650e6a23c575510d35f2f9121541eca9bc828a3005b9a3b909f2cc5c2a54794de05f2244a9059cbb000000000000000000000000088a2bfcb1c7271029fd69a66859d5556089588400000000000000000000000000000000000000000000000000000000000000647089d0edc0dd33900180c2d72f"
    );
    assert_eq!(
        hex::encode(proto::sha256(&encoded)),
        "8c621a0dc9bd4d405b20d0a43143955b9f546f98bbfde1aec295a65b0f925629"
    );
}

/// The kind of a JSON value, strings told apart by their form; a string the
/// documentation cut short (`…...`) matches any string.
fn kind(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), kind(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().take(1).map(kind).collect()),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
        Value::String(s) if s.ends_with("...") => json!("string"),
        Value::String(s) if s.len() == 42 && s.starts_with("41") && hex::decode(s).is_ok() => {
            json!("hex address")
        }
        Value::String(s) if s.len() == 34 && TronAddress::parse(s).is_ok() => {
            json!("base58 address")
        }
        Value::String(s) if hex::decode(s).is_ok() => json!("hex"),
        Value::String(_) => json!("string"),
    }
}

/// Whether `a` and `b` have the same keys and kinds, a cut-short string matching any.
fn same_shape(a: &Value, b: &Value, at: &str) -> Result<(), String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let xs: Vec<_> = x.keys().collect();
            let ys: Vec<_> = y.keys().collect();
            if xs != ys {
                return Err(format!("{at}: keys {xs:?} vs {ys:?}"));
            }
            for (k, v) in x {
                same_shape(v, &y[k], &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(x), Value::Array(y)) => match (x.first(), y.first()) {
            (Some(a), Some(b)) => same_shape(a, b, &format!("{at}[0]")),
            _ => Ok(()),
        },
        (a, b) if a == b || a == "string" || b == "string" => Ok(()),
        (a, b) => Err(format!("{at}: {a} vs {b}")),
    }
}

async fn get(node: &SimNode, path: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", node.url()))
        .json(&body)
        .send()
        .await
        .expect("simulator answers");
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.expect("JSON")
}

#[tokio::test]
async fn answers_have_the_recorded_shapes() {
    let node = SimNode::start().await;
    let chain = &node.chain;
    let (payer, merchant) = (SimChain::account(1), SimChain::account(2));
    let usdt = SimChain::contract(0);
    chain.mine();
    let empty = chain.head();
    let trx = chain.transfer_trx(payer, merchant, 10_000_000);
    let trc20 = chain.transfer_trc20(usdt, payer, merchant, U256::from(100), Outcome::Success);
    chain.mine();

    // The recorded call also made internal calls; a TRC20 transfer makes none.
    let mut trigger_info: Value = serde_json::from_str(RECORDED_TRIGGER_INFO).unwrap();
    trigger_info
        .as_object_mut()
        .unwrap()
        .remove("internal_transactions");
    let recorded = |text: &str| -> Value { serde_json::from_str(text).unwrap() };
    let cases = [
        (
            "getblockbynum",
            json!({ "num": empty }),
            recorded(RECORDED_BLOCK),
        ),
        (
            "gettransactionbyid",
            json!({ "value": trx.id }),
            recorded(RECORDED_TRANSFER),
        ),
        (
            "gettransactionbyid",
            json!({ "value": trc20.id }),
            recorded(RECORDED_TRIGGER),
        ),
        (
            "gettransactioninfobyid",
            json!({ "value": trx.id }),
            recorded(RECORDED_TRANSFER_INFO),
        ),
        (
            "gettransactioninfobyid",
            json!({ "value": trc20.id }),
            trigger_info,
        ),
    ];
    for (endpoint, params, recorded) in cases {
        let answer = get(&node, &format!("/wallet/{endpoint}"), params.clone()).await;
        same_shape(&kind(&answer), &kind(&recorded), endpoint)
            .unwrap_or_else(|e| panic!("{endpoint} {params}: {e}"));
    }
    let info = get(
        &node,
        "/wallet/gettransactioninfobyid",
        json!({ "value": trc20.id }),
    )
    .await;
    assert_eq!(info["log"][0]["address"], hex::encode(usdt.evm_bytes()));
    assert_eq!(info["contract_address"], usdt.to_hex());

    // A whole block lists the same transactions, and their infos in the same order.
    let head = get(&node, "/wallet/getnowblock", json!({})).await;
    assert_eq!(
        head["transactions"][0],
        get(
            &node,
            "/wallet/gettransactionbyid",
            json!({ "value": trx.id })
        )
        .await
    );
    let infos = get(
        &node,
        "/wallet/gettransactioninfobyblocknum",
        json!({ "num": chain.head() }),
    )
    .await;
    assert_eq!(infos[1], info);
    assert_eq!(head["blockID"], chain.block(chain.head()).unwrap().id_hex());
}

#[tokio::test]
async fn visible_answers_write_every_address_in_base58() {
    let node = SimNode::start().await;
    let (payer, merchant, usdt) = (
        SimChain::account(1),
        SimChain::account(2),
        SimChain::contract(0),
    );
    let tx = node
        .chain
        .transfer_trc20(usdt, payer, merchant, U256::from(5), Outcome::Success);
    node.chain.mine();
    let info = get(
        &node,
        "/wallet/gettransactioninfobyid",
        json!({ "value": tx.id, "visible": true }),
    )
    .await;
    assert_eq!(info["contract_address"], usdt.to_base58());
    assert_eq!(info["log"][0]["address"], usdt.to_base58());
    let block = get(&node, "/wallet/getnowblock", json!({ "visible": true })).await;
    let value = &block["transactions"][0]["raw_data"]["contract"][0]["parameter"]["value"];
    assert_eq!(value["owner_address"], payer.to_base58());
    assert_eq!(value["contract_address"], usdt.to_base58());
    // GET with query parameters, as java-tron also accepts.
    let by_get: Value = reqwest::get(format!(
        "{}/wallet/getblockbynum?num={}&visible=true",
        node.url(),
        node.chain.head()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(by_get, block);
}

#[tokio::test]
async fn failed_trc20_calls_keep_no_logs_and_say_why() {
    let node = SimNode::start().await;
    let (payer, merchant, usdt) = (
        SimChain::account(1),
        SimChain::account(2),
        SimChain::contract(0),
    );
    let reverted = node
        .chain
        .transfer_trc20(usdt, payer, merchant, U256::from(5), Outcome::Revert);
    let starved =
        node.chain
            .transfer_trc20(usdt, payer, merchant, U256::from(5), Outcome::OutOfEnergy);
    node.chain.mine();
    for (tx, result) in [(reverted, "REVERT"), (starved, "OUT_OF_ENERGY")] {
        let body = get(
            &node,
            "/wallet/gettransactionbyid",
            json!({ "value": tx.id }),
        )
        .await;
        assert_eq!(body["ret"][0]["contractRet"], result);
        let info = get(
            &node,
            "/wallet/gettransactioninfobyid",
            json!({ "value": tx.id }),
        )
        .await;
        assert_eq!(info["receipt"]["result"], result);
        assert_eq!(info["result"], "FAILED");
        assert!(info.get("log").is_none(), "{info}");
        assert!(info["resMessage"].as_str().is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test]
async fn missing_blocks_empty_lists_and_bad_parameters_answer_as_java_tron() {
    let node = SimNode::start().await;
    node.chain.mine_blocks(3);
    let head = node.chain.head();
    assert_eq!(
        get(&node, "/wallet/getblockbynum", json!({ "num": head + 1 })).await,
        json!({})
    );
    assert_eq!(
        get(
            &node,
            "/wallet/gettransactioninfobyblocknum",
            json!({ "num": head })
        )
        .await,
        json!([])
    );
    assert_eq!(
        get(
            &node,
            "/wallet/gettransactioninfobyblocknum",
            json!({ "num": 0 })
        )
        .await,
        json!({})
    );
    assert_eq!(
        get(
            &node,
            "/wallet/getblockbylimitnext",
            json!({ "startNum": 1, "endNum": 102 })
        )
        .await,
        json!({}),
        "more than 100 blocks"
    );
    let range = get(
        &node,
        "/wallet/getblockbylimitnext",
        json!({ "startNum": 2, "endNum": head + 5 }),
    )
    .await;
    let numbers: Vec<_> = range["block"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["block_header"]["raw_data"]["number"].clone())
        .collect();
    assert_eq!(numbers, [json!(2), json!(3)], "only the blocks it has");
    let response = reqwest::Client::new()
        .post(format!("{}/wallet/getblockbynum", node.url()))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["Error"].as_str().unwrap().contains("JSONException"),
        "{body}"
    );
}

#[tokio::test]
async fn the_solidified_head_lags_and_a_fork_replaces_the_newest_blocks() {
    let node = SimNode::start().await;
    let chain = &node.chain;
    chain.mine_blocks(25);
    assert_eq!(chain.solidified(), 25 - 19);
    let solid = get(&node, "/walletsolidity/getnowblock", json!({})).await;
    assert_eq!(solid["block_header"]["raw_data"]["number"], 6);
    assert_eq!(
        get(&node, "/walletsolidity/getblockbynum", json!({ "num": 7 })).await,
        json!({})
    );
    chain.set_solidified_lag(2);
    assert_eq!(chain.solidified(), 23);

    let tx = chain.transfer_trx(SimChain::account(1), SimChain::account(2), 1);
    let paying = chain.mine();
    let before = chain.block(24).unwrap();
    let orphaned = chain.fork(2);
    assert_eq!(orphaned, std::slice::from_ref(&tx));
    assert_eq!(chain.head(), 24);
    let replacement = chain.mine();
    assert_eq!(replacement.number, 25);
    assert_ne!(
        replacement.id, paying.id,
        "another block at the same height"
    );
    assert_eq!(chain.block(24).unwrap().id, before.id);
    assert_eq!(
        get(
            &node,
            "/wallet/gettransactionbyid",
            json!({ "value": tx.id })
        )
        .await,
        json!({})
    );
    chain.resubmit(&tx);
    let remined = chain.mine();
    assert_eq!(
        remined.transactions[0].id, tx.id,
        "the same transaction, in a new block"
    );
}

#[tokio::test]
async fn faults_keys_lag_and_outages_are_the_tests_to_choose() {
    let mut node = SimNode::start().await;
    node.chain.mine_blocks(5);
    let client = reqwest::Client::new();
    let url = node.url();
    let post = |path: &str| client.post(format!("{url}{path}")).body("{}").send();

    node.fail(Fault::Unavailable);
    assert_eq!(post("/wallet/getnowblock").await.unwrap().status(), 503);
    node.heal();
    node.fail_path("/wallet/getnowblock", Fault::RateLimited);
    let body: Value = post("/wallet/getnowblock")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        body["Error"]
            .as_str()
            .unwrap()
            .contains("lack of computing resources")
    );
    assert_eq!(post("/wallet/getblockbynum").await.unwrap().status(), 200);
    node.fail(Fault::LiteFullNode);
    let text = post("/wallet/getblockbynum")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.starts_with("this API is closed"));
    node.heal();

    node.require_api_key("secret");
    assert_eq!(post("/wallet/getnowblock").await.unwrap().status(), 401);
    let keyed = client
        .post(format!("{}/wallet/getnowblock", node.url()))
        .header("TRON-PRO-API-KEY", "secret")
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), 200);

    let other = SimNode::serve(node.chain.clone()).await;
    other.set_behind(2);
    let head = get(&other, "/wallet/getnowblock", json!({})).await;
    assert_eq!(head["block_header"]["raw_data"]["number"], 3);
    assert_eq!(
        get(&other, "/wallet/getblockbynum", json!({ "num": 4 })).await,
        json!({})
    );
    assert!(node.requests("/wallet/getnowblock") >= 4);

    node.stop().await;
    assert!(
        post("/wallet/getnowblock").await.is_err(),
        "connection refused"
    );
    node.restart().await;
    let keyed = client
        .post(format!("{}/wallet/getnowblock", node.url()))
        .header("TRON-PRO-API-KEY", "secret")
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), 200);
}
