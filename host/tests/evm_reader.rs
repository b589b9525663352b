//! `chain::evm::BlockReader` against a real anvil node: what a block range yields for the
//! watched addresses.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use alloy::primitives::{Address, Bytes, U256};
use common::anvil::{CHAIN, TestChain};
use polypay_host::chain::NATIVE_LOG_INDEX;
use polypay_host::chain::evm::{BlockReader, Network, WatchSet};
use polypay_host::invoice::Amount;

async fn reader(chain: &TestChain) -> BlockReader {
    let network = Network::from_config(&chain.config().await, 0).expect("valid test chain config");
    BlockReader::new(Arc::new(network)).expect("reader")
}

fn tokens_to(addresses: &[Address]) -> WatchSet {
    WatchSet {
        token_recipients: addresses.iter().copied().collect(),
        ..WatchSet::default()
    }
}

fn hex(hash: impl std::fmt::LowerHex) -> String {
    format!("{hash:#x}")
}

#[tokio::test]
async fn scan_keeps_token_transfers_to_watched_recipients_only() {
    let chain = TestChain::start().await;
    let reader = reader(&chain).await;
    let (payer, watched, other) = (chain.account(1), chain.account(2), chain.account(3));
    chain.mint(payer, U256::from(1_000_000)).await;
    let from = chain.anvil.block_number().await + 1;
    let paid = chain
        .transfer_token(payer, watched, U256::from(250_000))
        .await;
    chain.transfer_token(payer, other, U256::from(100)).await;
    let to = chain.anvil.block_number().await;

    let scan = reader.scan(from, to, &tokens_to(&[watched])).await.unwrap();

    assert_eq!(scan.first().number, from);
    assert_eq!(scan.last().number, to);
    assert_eq!(scan.transfers.len(), 1, "{:?}", scan.transfers);
    let t = &scan.transfers[0];
    assert_eq!(t.chain, CHAIN);
    assert_eq!(t.tx_hash, hex(paid.tx_hash));
    assert_eq!(t.block_number, paid.block_number);
    assert_eq!(t.block_hash, hex(paid.block_hash));
    assert_eq!(t.from, payer.to_checksum(None));
    assert_eq!(t.to, watched.to_checksum(None));
    assert_eq!(t.asset, "USDT");
    assert_eq!(t.amount, Amount::from(250_000));
    assert_eq!(t.reference, None);
    assert!(t.log_index >= 0);
}

#[tokio::test]
async fn scan_with_more_watched_recipients_than_a_topic_filter_holds_filters_locally() {
    let chain = TestChain::start().await;
    let reader = reader(&chain).await;
    let (payer, watched, other) = (chain.account(1), chain.account(2), chain.account(3));
    chain.mint(payer, U256::from(1_000)).await;
    let from = chain.anvil.block_number().await + 1;
    chain.transfer_token(payer, watched, U256::from(7)).await;
    chain.transfer_token(payer, other, U256::from(8)).await;
    let to = chain.anvil.block_number().await;

    let mut many: Vec<Address> = (0..2_000u64)
        .map(|i| Address::left_padding_from(&i.to_be_bytes()))
        .collect();
    many.push(watched);
    let scan = reader.scan(from, to, &tokens_to(&many)).await.unwrap();

    let amounts: Vec<Amount> = scan.transfers.iter().map(|t| t.amount).collect();
    assert_eq!(amounts, [Amount::from(7)]);
}

#[tokio::test]
async fn scan_keeps_successful_native_transfers_and_skips_reverted_ones() {
    let chain = TestChain::start().await;
    let reader = reader(&chain).await;
    let (payer, watched) = (chain.account(1), chain.account(2));
    let from = chain.anvil.block_number().await + 1;
    let paid = chain
        .anvil
        .send_eth(payer, watched, U256::from(10u64.pow(18)))
        .await;
    // The token contract accepts no ether: with the gas given (no estimate) the
    // transaction is mined, and fails.
    let reverted = chain
        .anvil
        .send(
            payer,
            Some(chain.token),
            U256::from(5),
            Bytes::new(),
            Some(100_000),
        )
        .await;
    assert!(!reverted.success);
    chain.anvil.send_eth(payer, watched, U256::ZERO).await;
    chain
        .anvil
        .send_eth(payer, chain.account(3), U256::from(1))
        .await;
    let to = chain.anvil.block_number().await;
    let watch = WatchSet {
        native_recipients: HashSet::from([watched, chain.token]),
        ..WatchSet::default()
    };

    let scan = reader.scan(from, to, &watch).await.unwrap();

    assert_eq!(scan.transfers.len(), 1, "{:?}", scan.transfers);
    let t = &scan.transfers[0];
    assert_eq!(t.tx_hash, hex(paid.tx_hash));
    assert_eq!(t.log_index, NATIVE_LOG_INDEX);
    assert_eq!(t.asset, "ETH");
    assert_eq!(t.amount, Amount::from(10u64.pow(18)));
    assert_eq!(t.from, payer.to_checksum(None));
    // Native scans read every block, so every hash is known.
    let numbers: Vec<u64> = scan.blocks.iter().map(|b| b.number).collect();
    assert_eq!(numbers, (from..=to).collect::<Vec<_>>());
    for pair in scan.blocks.windows(2) {
        assert_eq!(pair[1].parent_hash, pair[0].hash);
    }
}

#[tokio::test]
async fn scan_reports_a_pay_event_with_its_payer_and_not_its_inner_token_transfer() {
    let chain = TestChain::start().await;
    let reader = reader(&chain).await;
    let (payer, merchant) = (chain.account(4), chain.account(5));
    chain.mint(payer, U256::from(5_000_000)).await;
    let from = chain.anvil.block_number().await + 1;
    let paid = chain
        .pay_through_contract(payer, "inv-42", merchant, U256::from(1_500_000))
        .await;
    // A plain transfer to the same recipient in its own transaction still counts.
    let plain = chain
        .transfer_token(payer, merchant, U256::from(1_500_000))
        .await;
    let to = chain.anvil.block_number().await;

    // The merchant's address is also watched for token transfers: the worst case.
    let scan = reader
        .scan(from, to, &tokens_to(&[merchant]))
        .await
        .unwrap();

    assert_eq!(scan.transfers.len(), 2, "{:?}", scan.transfers);
    let pay = &scan.transfers[0];
    assert_eq!(pay.tx_hash, hex(paid.tx_hash));
    assert_eq!(pay.reference.as_deref(), Some("inv-42"));
    assert_eq!(pay.from, payer.to_checksum(None));
    assert_eq!(pay.to, merchant.to_checksum(None));
    assert_eq!(pay.asset, "USDT");
    assert_eq!(pay.amount, Amount::from(1_500_000));
    assert_eq!(scan.transfers[1].tx_hash, hex(plain.tx_hash));
    assert_eq!(scan.transfers[1].reference, None);
}

#[tokio::test]
async fn a_range_scan_finds_what_single_block_scans_find() {
    let chain = TestChain::start().await;
    let reader = reader(&chain).await;
    let (payer, a, b) = (chain.account(1), chain.account(2), chain.account(3));
    chain.mint(payer, U256::from(1_000_000)).await;
    let from = chain.anvil.block_number().await + 1;
    for i in 1..=4u64 {
        chain
            .transfer_token(payer, if i % 2 == 0 { a } else { b }, U256::from(i))
            .await;
        chain.anvil.send_eth(payer, a, U256::from(i)).await;
        chain.anvil.mine(1).await;
    }
    chain
        .pay_through_contract(payer, "inv-7", b, U256::from(9))
        .await;
    let to = chain.anvil.block_number().await;
    let watch = WatchSet {
        token_recipients: HashSet::from([a, b]),
        native_recipients: HashSet::from([a]),
    };

    let range = reader.scan(from, to, &watch).await.unwrap();
    let mut singles = Vec::new();
    for n in from..=to {
        let scan = reader.scan(n, n, &watch).await.unwrap();
        assert_eq!(scan.blocks.len(), 1);
        singles.extend(scan.transfers);
    }

    assert_eq!(range.transfers, singles);
    assert_eq!(range.transfers.len(), 9);
}

#[tokio::test]
async fn reverting_to_a_snapshot_removes_blocks_from_the_node() {
    let chain = TestChain::start().await;
    let reader = reader(&chain).await;
    let snapshot = chain.anvil.snapshot().await;
    let before = chain.anvil.block_number().await;
    chain.anvil.mine(3).await;
    let doomed = reader
        .block(before + 2)
        .await
        .unwrap()
        .expect("mined block");
    assert_eq!(reader.head().await.unwrap(), before + 3);

    chain.anvil.revert(snapshot).await;
    assert_eq!(reader.head().await.unwrap(), before);
    assert_eq!(reader.block(before + 2).await.unwrap(), None);
    chain
        .anvil
        .send_eth(chain.account(1), chain.account(2), U256::from(1))
        .await;
    chain.anvil.mine(2).await;
    let replacement = reader.block(before + 2).await.unwrap().expect("new block");
    assert_ne!(replacement.hash, doomed.hash);
    assert_eq!(reader.chain_id().await.unwrap(), common::anvil::CHAIN_ID);
}

/// What following native transfers costs the reader: a range of busy blocks scanned with
/// and without a watched native recipient. Not a pass/fail test (no timed assertion): a
/// measurement harness, run by hand; BENCHMARKS.md has its command and figures.
#[tokio::test]
#[ignore = "measurement harness: cargo test -p polypay-host --test evm_reader native_scan_cost -- --ignored --nocapture"]
async fn native_scan_cost() {
    const BLOCKS: u64 = 50;
    const TXS_PER_BLOCK: usize = 20;
    let chain = TestChain::start().await;
    let reader = reader(&chain).await;
    let (payer, other, watched) = (chain.account(1), chain.account(3), chain.account(2));
    chain.mint(payer, U256::from(1_000_000_000u64)).await;
    let from = chain.anvil.block_number().await + 1;
    chain.anvil.set_automine(false).await;
    for _ in 0..BLOCKS {
        // Half native transfers, half token transfers, between unwatched accounts.
        for i in 0..TXS_PER_BLOCK {
            let tx = if i % 2 == 0 {
                serde_json::json!({ "from": payer, "to": other, "value": "0x1" })
            } else {
                let mut data = vec![0xa9, 0x05, 0x9c, 0xbb];
                data.extend_from_slice(&[0; 12]);
                data.extend_from_slice(other.as_slice());
                data.extend_from_slice(&U256::from(1).to_be_bytes::<32>());
                serde_json::json!({ "from": payer, "to": chain.token, "data": Bytes::from(data) })
            };
            chain
                .anvil
                .rpc("eth_sendTransaction", serde_json::json!([tx]))
                .await;
        }
        chain.anvil.mine(1).await;
    }
    chain.anvil.set_automine(true).await;
    let to = chain.anvil.block_number().await;
    assert_eq!(to - from + 1, BLOCKS);

    let token_only = tokens_to(&[watched]);
    let with_native = WatchSet {
        native_recipients: HashSet::from([watched]),
        ..tokens_to(&[watched])
    };
    for (label, watch) in [
        ("tokens only", &token_only),
        ("tokens + native", &with_native),
    ] {
        let mut best = std::time::Duration::MAX;
        for _ in 0..5 {
            let started = std::time::Instant::now();
            let scan = reader.scan(from, to, watch).await.unwrap();
            best = best.min(started.elapsed());
            assert!(
                scan.transfers.is_empty(),
                "nothing was paid to the watched address"
            );
        }
        println!(
            "{label}: {BLOCKS} blocks of {TXS_PER_BLOCK} transactions in {best:?} (best of 5), {:.2} ms per block",
            best.as_secs_f64() * 1000.0 / BLOCKS as f64
        );
    }
}
