//! `chain::tron::BlockReader` against the java-tron simulator: what a block range yields
//! for the watched addresses, and how the client rides out failing nodes.

mod common;

use std::sync::Arc;

use alloy::primitives::U256;
use common::tron::{Fault, Outcome, SimChain, SimNode};
use common::tron_chain::{self, CHAIN, units, unlisted_token, usdt};
use polypay_host::chain::NATIVE_LOG_INDEX;
use polypay_host::chain::tron::{BlockReader, Network, ReadError, TronAddress, WatchSet};
use polypay_host::invoice::Amount;

fn reader_of(config: polypay_host::chain::ChainConfig) -> BlockReader {
    let network = Network::from_config(&config, 0).expect("valid test chain config");
    BlockReader::new(Arc::new(network)).expect("reader")
}

fn reader(nodes: &[&SimNode]) -> BlockReader {
    let urls: Vec<String> = nodes.iter().map(|n| n.url()).collect();
    reader_of(tron_chain::config(&urls, 1))
}

/// A reader of `node` alone.
fn only(node: &SimNode) -> BlockReader {
    reader(&[node])
}

fn watching(native: &[TronAddress], tokens: &[TronAddress]) -> WatchSet {
    WatchSet {
        native_recipients: native.iter().copied().collect(),
        token_recipients: tokens.iter().copied().collect(),
    }
}

fn usdt_units(amount: &str) -> U256 {
    units(amount).as_u256()
}

#[tokio::test]
async fn scan_keeps_trx_and_usdt_paid_to_watched_addresses_only() {
    let node = SimNode::start().await;
    let chain = &node.chain;
    let (payer, watched, other) = (
        SimChain::account(1),
        SimChain::account(2),
        SimChain::account(3),
    );
    let from = chain.head() + 1;
    let trx = chain.transfer_trx(payer, watched, 12_345_678);
    chain.transfer_trx(payer, other, 1_000_000);
    chain.mine();
    chain.mine();
    let token = chain.transfer_trc20(usdt(), payer, watched, usdt_units("10.5"), Outcome::Success);
    chain.transfer_trc20(usdt(), payer, other, usdt_units("3"), Outcome::Success);
    chain.transfer_trc20(
        unlisted_token(),
        payer,
        watched,
        usdt_units("7"),
        Outcome::Success,
    );
    let last = chain.mine();

    let scan = reader(&[&node])
        .scan(from, last.number, &watching(&[watched], &[watched]))
        .await
        .unwrap();

    assert_eq!(scan.blocks.len(), 3);
    for pair in scan.blocks.windows(2) {
        assert_eq!(pair[1].parent_id, pair[0].id);
        assert!(pair[1].timestamp_ms > pair[0].timestamp_ms);
    }
    assert_eq!(scan.last().id, last.id_hex());
    assert_eq!(scan.last().timestamp_ms, Some(last.timestamp));
    assert_eq!(scan.transfers.len(), 2, "{:#?}", scan.transfers);
    let paid_trx = &scan.transfers[0];
    assert_eq!(paid_trx.chain, CHAIN);
    assert_eq!(paid_trx.tx_hash, trx.id);
    assert_eq!(paid_trx.log_index, NATIVE_LOG_INDEX);
    assert_eq!(paid_trx.block_number, from);
    assert_eq!(paid_trx.block_hash, chain.block(from).unwrap().id_hex());
    assert_eq!(paid_trx.from, payer.to_string());
    assert_eq!(paid_trx.to, watched.to_string());
    assert!(paid_trx.to.starts_with('T'), "base58check");
    assert_eq!(paid_trx.asset, "TRX");
    assert_eq!(paid_trx.amount, Amount::from(12_345_678));
    let paid_usdt = &scan.transfers[1];
    assert_eq!(paid_usdt.tx_hash, token.id);
    assert_eq!(paid_usdt.log_index, 0);
    assert_eq!(paid_usdt.block_number, last.number);
    assert_eq!(paid_usdt.block_hash, last.id_hex());
    assert_eq!(paid_usdt.from, payer.to_string());
    assert_eq!(paid_usdt.asset, "USDT");
    assert_eq!(paid_usdt.amount, units("10.5"));
}

#[tokio::test]
async fn a_reverted_or_out_of_energy_trc20_transfer_pays_nothing() {
    let node = SimNode::start().await;
    let chain = &node.chain;
    let (payer, watched) = (SimChain::account(1), SimChain::account(2));
    chain.transfer_trc20(usdt(), payer, watched, usdt_units("5"), Outcome::Revert);
    chain.transfer_trc20(
        usdt(),
        payer,
        watched,
        usdt_units("5"),
        Outcome::OutOfEnergy,
    );
    let ok = chain.transfer_trc20(usdt(), payer, watched, usdt_units("5"), Outcome::Success);
    let block = chain.mine();

    let scan = reader(&[&node])
        .scan(block.number, block.number, &watching(&[], &[watched]))
        .await
        .unwrap();

    let ids: Vec<_> = scan.transfers.iter().map(|t| t.tx_hash.as_str()).collect();
    assert_eq!(ids, [ok.id.as_str()]);
}

#[tokio::test]
async fn transaction_infos_are_asked_only_for_blocks_running_contract_code() {
    let node = SimNode::start().await;
    let chain = &node.chain;
    let (payer, watched) = (SimChain::account(1), SimChain::account(2));
    let from = chain.head() + 1;
    chain.transfer_trx(payer, watched, 1);
    chain.mine();
    chain.mine();
    chain.transfer_trc20(usdt(), payer, watched, U256::from(1), Outcome::Success);
    let to = chain.mine().number;
    let reader = reader(&[&node]);

    reader
        .scan(from, to, &watching(&[watched], &[]))
        .await
        .unwrap();
    assert_eq!(
        node.requests("/wallet/gettransactioninfobyblocknum"),
        0,
        "no token recipient watched"
    );
    let scan = reader
        .scan(from, to, &watching(&[watched], &[watched]))
        .await
        .unwrap();
    assert_eq!(scan.transfers.len(), 2);
    assert_eq!(node.requests("/wallet/gettransactioninfobyblocknum"), 1);
}

#[tokio::test]
async fn long_ranges_are_read_a_hundred_blocks_per_call() {
    let node = SimNode::start().await;
    let chain = &node.chain;
    let watched = SimChain::account(2);
    chain.mine_blocks(149);
    chain.transfer_trx(SimChain::account(1), watched, 7);
    chain.mine();
    let scan = reader(&[&node])
        .scan(1, 250.min(chain.head()), &watching(&[watched], &[]))
        .await
        .unwrap();
    assert_eq!(scan.blocks.len(), 150);
    assert_eq!(scan.transfers.len(), 1);
    assert_eq!(scan.transfers[0].block_number, 150);
    assert_eq!(node.requests("/wallet/getblockbylimitnext"), 2);
    // Beyond the node's head: refused, not cut short.
    let err = reader(&[&node])
        .scan(140, 160, &watching(&[watched], &[]))
        .await
        .unwrap_err();
    assert!(matches!(err, ReadError::MissingBlock(151)), "{err}");
}

#[tokio::test]
async fn a_failing_node_hands_over_to_the_next_and_every_block_is_read() {
    let primary = SimNode::start().await;
    let fallback = SimNode::serve(primary.chain.clone()).await;
    let chain = &primary.chain;
    let watched = SimChain::account(2);
    chain.transfer_trx(SimChain::account(1), watched, 5);
    chain.transfer_trc20(
        usdt(),
        SimChain::account(1),
        watched,
        U256::from(9),
        Outcome::Success,
    );
    let block = chain.mine();
    let reader = reader(&[&primary, &fallback]);
    let watch = watching(&[watched], &[watched]);

    for fault in [Fault::Unavailable, Fault::RateLimited, Fault::LiteFullNode] {
        primary.fail(fault);
        let before = fallback.total_requests();
        let scan = reader
            .scan(block.number, block.number, &watch)
            .await
            .unwrap();
        assert_eq!(scan.transfers.len(), 2, "{fault:?}");
        assert!(
            fallback.total_requests() > before,
            "{fault:?}: the fallback answered"
        );
        primary.heal();
    }

    // Both down: an error naming each endpoint (by host only), never an empty scan.
    primary.fail(Fault::Unavailable);
    fallback.fail(Fault::RateLimited);
    let err = reader
        .scan(block.number, block.number, &watch)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&primary.url()) && text.contains(&fallback.url()),
        "{text}"
    );
    assert!(
        text.contains("HTTP 503") && text.contains("lack of computing resources"),
        "{text}"
    );
}

#[tokio::test]
async fn a_fallback_node_that_is_behind_does_not_make_a_block_vanish() {
    let primary = SimNode::start().await;
    let lagging = SimNode::serve(primary.chain.clone()).await;
    primary.chain.mine_blocks(10);
    lagging.set_behind(5);
    let reader = reader(&[&primary, &lagging]);
    assert!(reader.block(10).await.unwrap().is_some());

    primary.fail(Fault::Unavailable);
    let err = reader.block(10).await.unwrap_err();
    assert!(
        matches!(
            err,
            ReadError::NodeBehind {
                head: 5,
                wanted: 10
            }
        ),
        "{err}"
    );
    assert!(reader.block(5).await.unwrap().is_some());

    // A reorg to a shorter chain looks the same from one node: the block is reported
    // again once the new branch has grown past it, with its new id (the listener's reorg
    // check compares ids). A node never makes a stored block vanish by being behind.
    primary.heal();
    let old = only(&primary).block(10).await.unwrap().unwrap();
    primary.chain.fork(3);
    assert!(matches!(
        only(&primary).block(10).await,
        Err(ReadError::NodeBehind {
            head: 7,
            wanted: 10
        })
    ));
    primary.chain.mine_blocks(3);
    let new = only(&primary).block(10).await.unwrap().unwrap();
    assert_ne!(new.id, old.id);
}

#[tokio::test]
async fn infos_from_another_chain_than_the_block_are_refused() {
    // The block comes from the primary; its infos, the primary failing that one call, from
    // a node on another chain of the same height.
    let primary = SimNode::start().await;
    let stranger = SimNode::start().await;
    let watched = SimChain::account(2);
    for (chain, amount) in [(&primary.chain, 1u64), (&stranger.chain, 2)] {
        chain.transfer_trc20(
            usdt(),
            SimChain::account(1),
            watched,
            U256::from(amount),
            Outcome::Success,
        );
        chain.mine();
    }
    primary.fail_path("/wallet/gettransactioninfobyblocknum", Fault::Unavailable);
    let err = reader(&[&primary, &stranger])
        .scan(1, 1, &watching(&[], &[watched]))
        .await
        .unwrap_err();
    assert!(matches!(err, ReadError::Inconsistent(_)), "{err}");
}

#[tokio::test]
async fn the_api_key_goes_in_the_tron_pro_api_key_header() {
    let node = SimNode::start().await;
    node.require_api_key("tron-key");
    node.chain.mine();
    let mut config = tron_chain::config(&[node.url()], 1);
    assert!(
        reader_of(config.clone()).head().await.is_err(),
        "no key, no answer"
    );
    config.api_key = Some("tron-key".into());
    let reader = reader_of(config);
    assert_eq!(reader.head().await.unwrap().number, 1);
    assert!(reader.block(1).await.unwrap().is_some());
}

#[tokio::test]
async fn the_solidified_head_comes_from_the_solidity_endpoints() {
    let full = SimNode::start().await;
    let solidity = SimNode::serve(full.chain.clone()).await;
    full.chain.mine_blocks(30);
    let mut config = tron_chain::config(&[full.url()], 1);
    assert_eq!(
        reader_of(config.clone()).solidified_head().await.unwrap(),
        11
    );
    config.solidity_rpc_urls = vec![solidity.url()];
    full.chain.set_solidified_lag(4);
    let reader = reader_of(config);
    assert_eq!(reader.solidified_head().await.unwrap(), 26);
    assert_eq!(solidity.requests("/walletsolidity/getnowblock"), 1);
    assert_eq!(reader.head().await.unwrap().number, 30);
}
