//! The simulated chain: blocks, pending transactions, forks, the solidified head.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use alloy::primitives::{U256, keccak256};
use polypay_host::chain::tron::TronAddress;

use super::proto::{self, BlockHeaderRaw, TransactionRaw};
use super::render::{self, Form};

/// Milliseconds between TRON blocks.
pub const BLOCK_INTERVAL_MS: i64 = 3_000;
/// Blocks between the head and the solidified block on mainnet (two thirds of 27 super
/// representatives must have built on a block): the simulator's default lag.
pub const MAINNET_SOLIDIFIED_LAG: u64 = 19;
/// `fee_limit` of the TRC20 calls the simulator builds (100 TRX), as wallets set it.
const FEE_LIMIT: i64 = 100_000_000;

/// How a submitted TRC20 call ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The token's code reverted (e.g. the payer's balance is short).
    Revert,
    /// The call ran out of energy (the `fee_limit` was too low).
    OutOfEnergy,
}

impl Outcome {
    /// `ret[0].contractRet` and `receipt.result`.
    pub fn contract_ret(self) -> &'static str {
        match self {
            Outcome::Success => "SUCCESS",
            Outcome::Revert => "REVERT",
            Outcome::OutOfEnergy => "OUT_OF_ENERGY",
        }
    }

    /// The `ContractResult` enum value.
    pub fn code(self) -> i64 {
        match self {
            Outcome::Success => 1,
            Outcome::Revert => 2,
            Outcome::OutOfEnergy => 10,
        }
    }
}

/// What a transaction does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A `TransferContract`: `amount` sun of TRX.
    Trx {
        from: TronAddress,
        to: TronAddress,
        amount: i64,
    },
    /// A `TriggerSmartContract` calling `transfer(to, amount)` on a TRC20 contract.
    Trc20 {
        contract: TronAddress,
        from: TronAddress,
        to: TronAddress,
        amount: U256,
        outcome: Outcome,
    },
}

/// A signed transaction as the simulator holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimTx {
    /// `txID`: 64 lowercase hex digits.
    pub id: String,
    pub payload: Payload,
    pub(super) raw: Vec<u8>,
    pub(super) ref_block_bytes: [u8; 2],
    pub(super) ref_block_hash: [u8; 8],
    pub(super) expiration: i64,
    pub(super) timestamp: i64,
    pub(super) signature: [u8; 65],
}

impl SimTx {
    pub fn outcome(&self) -> Outcome {
        match &self.payload {
            Payload::Trx { .. } => Outcome::Success,
            Payload::Trc20 { outcome, .. } => *outcome,
        }
    }

    /// The ABI call data of a TRC20 transfer.
    pub(super) fn call_data(to: TronAddress, amount: U256) -> Vec<u8> {
        let mut data = vec![0xa9, 0x05, 0x9c, 0xbb];
        data.extend_from_slice(&[0; 12]);
        data.extend_from_slice(&to.evm_bytes());
        data.extend_from_slice(&amount.to_be_bytes::<32>());
        data
    }
}

/// A block of the simulated chain.
#[derive(Debug, Clone)]
pub struct SimBlock {
    pub number: u64,
    pub id: [u8; 32],
    pub parent: [u8; 32],
    pub timestamp: i64,
    pub witness: TronAddress,
    pub tx_trie_root: [u8; 32],
    pub witness_signature: [u8; 65],
    pub transactions: Vec<SimTx>,
    /// The block and its transaction infos as java-tron prints them without `visible`,
    /// rendered once (blocks are read far more often than mined).
    pub(super) block_json: Arc<str>,
    pub(super) infos_json: Arc<str>,
}

impl SimBlock {
    /// `blockID` as java-tron prints it.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }
}

pub(super) struct State {
    pub blocks: Vec<SimBlock>,
    pub pending: Vec<SimTx>,
    pub solidified_lag: u64,
    /// Forks made so far: a new branch is produced by other witnesses.
    pub forks: u64,
    /// Last transaction timestamp handed out (unique ids for identical transfers).
    pub last_tx_time: i64,
    pub tx_blocks: HashMap<String, u64>,
}

impl State {
    pub fn head(&self) -> &SimBlock {
        self.blocks.last().expect("genesis exists")
    }

    pub fn solidified(&self) -> &SimBlock {
        let n = self.blocks.len() as u64 - 1;
        &self.blocks[n.saturating_sub(self.solidified_lag) as usize]
    }
}

/// The chain every simulated node serves. Cheap to clone; clones share the chain.
#[derive(Clone)]
pub struct SimChain {
    pub(super) state: Arc<Mutex<State>>,
}

/// The simulated super representatives, in production order.
fn witness(slot: u64) -> TronAddress {
    let seed = keccak256(format!("polypay tron simulator witness {}", slot % 27));
    TronAddress::from_evm(seed[12..].try_into().expect("20 bytes"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

impl SimChain {
    /// A chain holding only its genesis block, with the mainnet solidified lag.
    pub fn new() -> SimChain {
        let timestamp = now_ms() / BLOCK_INTERVAL_MS * BLOCK_INTERVAL_MS - BLOCK_INTERVAL_MS;
        let genesis = build_block(0, [0; 32], timestamp, witness(0), Vec::new());
        SimChain {
            state: Arc::new(Mutex::new(State {
                blocks: vec![genesis],
                pending: Vec::new(),
                solidified_lag: MAINNET_SOLIDIFIED_LAG,
                forks: 0,
                last_tx_time: timestamp,
                tx_blocks: HashMap::new(),
            })),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("simulator state")
    }

    /// A deterministic account address (`i`-th of the simulator's users).
    pub fn account(i: u32) -> TronAddress {
        let seed = keccak256(format!("polypay tron simulator account {i}"));
        TronAddress::from_evm(seed[12..].try_into().expect("20 bytes"))
    }

    /// A deterministic contract address (the `i`-th token deployed on the simulator).
    pub fn contract(i: u32) -> TronAddress {
        let seed = keccak256(format!("polypay tron simulator contract {i}"));
        TronAddress::from_evm(seed[12..].try_into().expect("20 bytes"))
    }

    /// The latest block number.
    pub fn head(&self) -> u64 {
        self.lock().head().number
    }

    /// The newest solidified block number.
    pub fn solidified(&self) -> u64 {
        self.lock().solidified().number
    }

    /// Keeps the solidified block `lag` blocks behind the head.
    pub fn set_solidified_lag(&self, lag: u64) {
        self.lock().solidified_lag = lag;
    }

    /// Block `number` of the current chain.
    pub fn block(&self, number: u64) -> Option<SimBlock> {
        self.lock().blocks.get(number as usize).cloned()
    }

    /// Queues a TRX transfer of `amount` sun for the next block.
    pub fn transfer_trx(&self, from: TronAddress, to: TronAddress, amount: i64) -> SimTx {
        self.submit(Payload::Trx { from, to, amount })
    }

    /// Queues a TRC20 `transfer(to, amount)` call that ends with `outcome`.
    pub fn transfer_trc20(
        &self,
        contract: TronAddress,
        from: TronAddress,
        to: TronAddress,
        amount: U256,
        outcome: Outcome,
    ) -> SimTx {
        self.submit(Payload::Trc20 {
            contract,
            from,
            to,
            amount,
            outcome,
        })
    }

    /// Signs and queues a transaction for the next block.
    pub fn submit(&self, payload: Payload) -> SimTx {
        let mut state = self.lock();
        let timestamp = (state.last_tx_time + 1).max(now_ms());
        state.last_tx_time = timestamp;
        let head = state.head();
        let tx = sign(payload, head, timestamp);
        state.pending.push(tx.clone());
        tx
    }

    /// Queues `tx` again, as a node re-broadcasts a transaction its orphaned block held.
    pub fn resubmit(&self, tx: &SimTx) {
        self.lock().pending.push(tx.clone());
    }

    /// Mines the pending transactions into a new head block.
    pub fn mine(&self) -> SimBlock {
        let mut state = self.lock();
        let transactions = std::mem::take(&mut state.pending);
        let head = state.head();
        let number = head.number + 1;
        let timestamp = (head.timestamp + BLOCK_INTERVAL_MS)
            .max(now_ms() / BLOCK_INTERVAL_MS * BLOCK_INTERVAL_MS);
        let producer = witness(number + state.forks * 7);
        let block = build_block(number, head.id, timestamp, producer, transactions);
        for tx in &block.transactions {
            state.tx_blocks.insert(tx.id.clone(), number);
        }
        state.blocks.push(block.clone());
        block
    }

    /// Mines `n` empty blocks (pending transactions go into the first).
    pub fn mine_blocks(&self, n: u64) -> Vec<SimBlock> {
        (0..n).map(|_| self.mine()).collect()
    }

    /// Mines blocks until block `number` is solidified.
    pub fn mine_until_solidified(&self, number: u64) {
        while self.solidified() < number {
            self.mine();
        }
    }

    /// Drops the newest `depth` blocks, as a node does when it switches to a heavier
    /// branch: the next blocks mined form that branch (produced by other witnesses, so
    /// the same numbers get other ids). Returns the orphaned transactions, oldest first;
    /// they are not re-queued (see [`SimChain::resubmit`]). Pending transactions stay.
    pub fn fork(&self, depth: u64) -> Vec<SimTx> {
        let mut state = self.lock();
        let keep = (state.blocks.len() as u64).saturating_sub(depth).max(1) as usize;
        let orphaned: Vec<SimTx> = state
            .blocks
            .drain(keep..)
            .flat_map(|b| b.transactions)
            .collect();
        for tx in &orphaned {
            state.tx_blocks.remove(&tx.id);
        }
        state.forks += 1;
        orphaned
    }
}

impl Default for SimChain {
    fn default() -> Self {
        SimChain::new()
    }
}

fn fake_signature(seed: &[u8]) -> [u8; 65] {
    let a = proto::sha256(seed);
    let b = proto::sha256(&a);
    let mut signature = [0u8; 65];
    signature[..32].copy_from_slice(&a);
    signature[32..64].copy_from_slice(&b);
    signature[64] = 0x1b;
    signature
}

/// Builds the transaction's `raw_data` referring to `head` (TaPoS), and its id.
fn sign(payload: Payload, head: &SimBlock, timestamp: i64) -> SimTx {
    let ref_block_bytes: [u8; 2] = (head.number as u16).to_be_bytes();
    let ref_block_hash: [u8; 8] = head.id[8..16].try_into().expect("8 bytes");
    let expiration = head.timestamp + 60_000;
    let (contract, fee_limit) = match &payload {
        Payload::Trx { from, to, amount } => (
            proto::contract(
                proto::TRANSFER_CONTRACT,
                render::TRANSFER_TYPE_URL,
                &proto::transfer_contract(from.as_bytes(), to.as_bytes(), *amount),
            ),
            0,
        ),
        Payload::Trc20 {
            contract,
            from,
            to,
            amount,
            ..
        } => (
            proto::contract(
                proto::TRIGGER_SMART_CONTRACT,
                render::TRIGGER_TYPE_URL,
                &proto::trigger_smart_contract(
                    from.as_bytes(),
                    contract.as_bytes(),
                    &SimTx::call_data(*to, *amount),
                ),
            ),
            FEE_LIMIT,
        ),
    };
    let raw = TransactionRaw {
        ref_block_bytes: &ref_block_bytes,
        ref_block_hash: &ref_block_hash,
        expiration,
        contract: &contract,
        timestamp,
        fee_limit,
    }
    .encode();
    let id = hex::encode(proto::sha256(&raw));
    SimTx {
        signature: fake_signature(id.as_bytes()),
        id,
        payload,
        raw,
        ref_block_bytes,
        ref_block_hash,
        expiration,
        timestamp,
    }
}

fn build_block(
    number: u64,
    parent: [u8; 32],
    timestamp: i64,
    witness: TronAddress,
    transactions: Vec<SimTx>,
) -> SimBlock {
    let leaves: Vec<[u8; 32]> = transactions
        .iter()
        .map(|tx| {
            proto::sha256(&proto::signed_transaction(
                &tx.raw,
                &tx.signature,
                tx.outcome().code(),
            ))
        })
        .collect();
    let tx_trie_root = proto::merkle_root(&leaves);
    let header = BlockHeaderRaw {
        timestamp,
        tx_trie_root: &tx_trie_root,
        parent_hash: &parent,
        number: number as i64,
        witness_address: witness.as_bytes(),
        version: render::BLOCK_VERSION,
    };
    let id = header.block_id();
    let mut block = SimBlock {
        number,
        id,
        parent,
        timestamp,
        witness,
        tx_trie_root,
        witness_signature: fake_signature(&id),
        transactions,
        block_json: Arc::from(""),
        infos_json: Arc::from(""),
    };
    block.block_json = render::block(&block, Form::Hex).into();
    block.infos_json = render::infos(&block, Form::Hex).into();
    block
}
