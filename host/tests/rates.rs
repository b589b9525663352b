//! The rate service against real HTTP on loopback: a CoinGecko-compatible `simple/price`
//! fixture answering the API's documented shape, a generic JSON endpoint read by pointer,
//! a Chainlink feed (the mock aggregator of `contracts/`) on a local anvil node, providers
//! tried in order with fallback, answers cached, timeouts, stale answers and outages.

mod common;
mod webhook_support;

use std::collections::BTreeMap;

use alloy::primitives::{Address, I256, U256};
use alloy::sol_types::{SolCall, SolValue};
use common::anvil::Anvil;

use polypay_host::rates::{ProviderConfig, RateError, Rates, RatesConfig};
use webhook_support::{Receiver, Reply};

fn coingecko(receiver: &Receiver, timeout_ms: u64) -> ProviderConfig {
    ProviderConfig::Coingecko {
        name: None,
        base_url: receiver.url("/api/v3"),
        ids: BTreeMap::from([
            ("USDT".into(), "tether".into()),
            ("ETH".into(), "ethereum".into()),
        ]),
        timeout_ms,
    }
}

fn static_table(pairs: &[(&str, &str)]) -> ProviderConfig {
    ProviderConfig::Static {
        name: Some("fallback".into()),
        rates: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn rates(providers: Vec<ProviderConfig>) -> Rates {
    Rates::new(&RatesConfig {
        cache_secs: 3600,
        quote_valid_secs: 120,
        providers,
        ..RatesConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn coingecko_simple_price_is_read_exactly_and_cached() {
    // The shape of GET /api/v3/simple/price?ids=ethereum&vs_currencies=usd.
    let api = Receiver::start(|r, _| {
        assert_eq!(r.path, "/api/v3/simple/price");
        Reply::Body(200, r#"{"ethereum":{"usd":3021.45}}"#.into())
    })
    .await;
    let rates = rates(vec![coingecko(&api, 2000)]);
    let quote = rates.quote("USD", "20.00", "ETH", 18).await.unwrap();
    // 20 / 3021.45 ETH = 0.006619338397127… rounded up to the next wei.
    assert_eq!(quote.amount.to_string(), "6619338397127208");
    assert_eq!(quote.rate.rate.to_string(), "3021.45");
    assert_eq!(quote.rate.source, "coingecko");
    let again = rates.quote("USD", "1", "ETH", 18).await.unwrap();
    assert_eq!(again.rate.fetched_at, quote.rate.fetched_at);
    assert_eq!(api.count(), 1, "the second quote is served from the cache");
}

#[tokio::test]
async fn coingecko_query_names_the_coin_and_the_fiat() {
    let api = Receiver::start(|_, _| Reply::Body(200, r#"{"tether":{"cny":7.12}}"#.into())).await;
    let rates = rates(vec![coingecko(&api, 2000)]);
    let quote = rates.quote("CNY", "71.20", "USDT", 6).await.unwrap();
    assert_eq!(quote.amount.to_string(), "10000000");
}

#[tokio::test]
async fn a_json_endpoint_is_read_by_pointer_numbers_or_strings() {
    let api = Receiver::start(|r, _| match r.path.as_str() {
        "/ticker/eth" => Reply::Body(200, r#"{"data":{"amount":"2500.00","base":"ETH"}}"#.into()),
        _ => Reply::Body(200, r#"{"result":[{"price":1.25}]}"#.into()),
    })
    .await;
    let rates = rates(vec![ProviderConfig::Json {
        name: Some("exchange".into()),
        pairs: BTreeMap::from([
            (
                "ETH/USD".into(),
                polypay_host::rates::JsonSource {
                    url: api.url("/ticker/eth"),
                    pointer: "/data/amount".into(),
                },
            ),
            (
                "MATIC/USD".into(),
                polypay_host::rates::JsonSource {
                    url: api.url("/ticker/matic"),
                    pointer: "/result/0/price".into(),
                },
            ),
        ]),
        timeout_ms: 2000,
    }]);
    let eth = rates.quote("USD", "25", "ETH", 18).await.unwrap();
    assert_eq!(eth.amount.to_string(), "10000000000000000");
    assert_eq!(eth.rate.source, "exchange");
    let matic = rates.quote("USD", "5", "MATIC", 18).await.unwrap();
    assert_eq!(matic.amount.to_string(), "4000000000000000000");
}

#[tokio::test]
async fn providers_are_tried_in_order_and_a_failing_one_falls_back() {
    // First an HTTP provider answering 500, then one that hangs past its timeout, then
    // a static table: the table answers.
    let failing = Receiver::start(|_, _| Reply::Status(500)).await;
    let hanging = Receiver::start(|_, _| Reply::Hang).await;
    let rates = rates(vec![
        coingecko(&failing, 2000),
        ProviderConfig::Coingecko {
            name: Some("slow".into()),
            base_url: hanging.url("/api/v3"),
            ids: BTreeMap::from([("USDT".into(), "tether".into())]),
            timeout_ms: 200,
        },
        static_table(&[("USDT/USD", "1")]),
    ]);
    let quote = rates.quote("USD", "20", "USDT", 6).await.unwrap();
    assert_eq!(quote.rate.source, "fallback");
    assert_eq!(quote.amount.to_string(), "20000000");
    assert_eq!(failing.count(), 1);
    assert_eq!(hanging.count(), 1);
    hanging.release();

    // A working first provider wins over the table.
    let good = Receiver::start(|_, _| Reply::Body(200, r#"{"tether":{"usd":"0.5"}}"#.into())).await;
    let rates = self::rates(vec![
        coingecko(&good, 2000),
        static_table(&[("USDT/USD", "1")]),
    ]);
    let quote = rates.quote("USD", "20", "USDT", 6).await.unwrap();
    assert_eq!(quote.rate.source, "coingecko");
    assert_eq!(quote.amount.to_string(), "40000000");
}

#[tokio::test]
async fn an_outage_of_every_provider_is_unavailable_and_malformed_answers_count_as_failures() {
    let answers = [
        "not json",
        r#"{"tether":{}}"#,
        r#"{"tether":{"usd":0}}"#,
        r#"{"tether":{"usd":-1}}"#,
    ];
    for body in answers {
        let api = Receiver::start(move |_, _| Reply::Body(200, body.into())).await;
        let rates = rates(vec![coingecko(&api, 2000)]);
        let err = rates.quote("USD", "20", "USDT", 6).await.unwrap_err();
        assert!(
            matches!(&err, RateError::Unavailable { pair, .. } if pair == "USDT/USD"),
            "{body}: {err:?}"
        );
    }
    // A provider that is down: nothing listens on its port any more.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}/api/v3", listener.local_addr().unwrap());
    drop(listener);
    let rates = rates(vec![ProviderConfig::Coingecko {
        name: None,
        base_url: closed,
        ids: BTreeMap::from([("USDT".into(), "tether".into())]),
        timeout_ms: 500,
    }]);
    let err = rates.quote("USD", "20", "USDT", 6).await.unwrap_err();
    assert!(matches!(err, RateError::Unavailable { .. }), "{err:?}");
    assert!(err.to_string().contains("USDT/USD"), "{err}");
    // A pair nobody knows is not an outage.
    assert!(matches!(
        rates.quote("USD", "20", "DOGE", 8).await,
        Err(RateError::Unsupported(_))
    ));
}

const MOCK_AGGREGATOR: &str = include_str!("../../contracts/artifacts/MockAggregator.json");

alloy::sol! {
    function setAnswer(int256 answer_, uint256 updatedAt_) external;
}

/// Deploys a mock Chainlink feed answering `answer` with `decimals` decimals.
async fn deploy_feed(anvil: &Anvil, decimals: u8, answer: i64) -> Address {
    let artifact: serde_json::Value = serde_json::from_str(MOCK_AGGREGATOR).unwrap();
    let mut code = hex::decode(
        artifact["bytecode"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
    )
    .unwrap();
    code.extend((U256::from(decimals), I256::try_from(answer).unwrap()).abi_encode_params());
    let receipt = anvil
        .send(
            anvil.accounts[0],
            None,
            U256::ZERO,
            code.into(),
            Some(3_000_000),
        )
        .await;
    assert!(receipt.success);
    receipt.contract_address.expect("deployed")
}

async fn set_answer(anvil: &Anvil, feed: Address, answer: i64, updated_at: u64) {
    let call = setAnswerCall {
        answer_: I256::try_from(answer).unwrap(),
        updatedAt_: U256::from(updated_at),
    };
    let receipt = anvil
        .send(
            anvil.accounts[0],
            Some(feed),
            U256::ZERO,
            call.abi_encode().into(),
            None,
        )
        .await;
    assert!(receipt.success);
}

fn chainlink(anvil: &Anvil, feed: Address) -> ProviderConfig {
    ProviderConfig::Chainlink {
        name: None,
        rpc_url: anvil.url.clone(),
        feeds: BTreeMap::from([("ETH/USD".into(), feed.to_string())]),
        max_age_secs: 3600,
        timeout_ms: 2000,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chainlink_feed_is_read_exactly_and_stale_or_bad_answers_are_refused() {
    let anvil = Anvil::start().await;
    // 3000.12345678 USD per ETH, 8 decimals like Chainlink's ETH/USD.
    let feed = deploy_feed(&anvil, 8, 300_012_345_678).await;
    let only_chainlink = Rates::new(&RatesConfig {
        cache_secs: 0,
        quote_valid_secs: 120,
        providers: vec![chainlink(&anvil, feed)],
        ..RatesConfig::default()
    })
    .unwrap();
    let quote = only_chainlink
        .quote("USD", "3000.12", "ETH", 18)
        .await
        .unwrap();
    assert_eq!(quote.rate.rate.to_string(), "3000.12345678");
    assert_eq!(quote.rate.source, "chainlink");
    // 3000.12 / 3000.12345678 ETH, rounded up to the wei.
    assert_eq!(quote.amount.to_string(), "999998847787416152");

    // Updated two hours ago: stale (at most an hour allowed).
    set_answer(&anvil, feed, 300_012_345_678, unix_now() - 7200).await;
    let err = only_chainlink
        .quote("USD", "10", "ETH", 18)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("stale"), "{err}");
    assert!(matches!(err, RateError::Unavailable { .. }));
    // With a fallback behind it, the fallback answers.
    let with_fallback = rates(vec![
        chainlink(&anvil, feed),
        static_table(&[("ETH/USD", "2000")]),
    ]);
    let quote = with_fallback.quote("USD", "10", "ETH", 18).await.unwrap();
    assert_eq!(quote.rate.source, "fallback");

    // A fresh but non-positive answer is refused too.
    set_answer(&anvil, feed, 0, unix_now()).await;
    let err = only_chainlink
        .quote("USD", "10", "ETH", 18)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not positive"), "{err}");
    // A fresh positive answer is used again.
    set_answer(&anvil, feed, 250_000_000_000, unix_now()).await;
    let quote = only_chainlink.quote("USD", "10", "ETH", 18).await.unwrap();
    assert_eq!(quote.rate.rate.to_string(), "2500");
    assert_eq!(quote.amount.to_string(), "4000000000000000");
}
