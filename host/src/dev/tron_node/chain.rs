//! The simulated chain: blocks, pending transactions, forks, the solidified head.
//!
//! Every change goes through [`SimChain::apply`] as an [`Op`] carrying the times it
//! used, so that a chain is a pure function of its ops: a chain opened on a journal
//! ([`SimChain::open`]) replays the file at start and appends each new op, which is how
//! `polypay dev` keeps its TRON chain across restarts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::journal::{Journal, JournalError, Op};

use crate::chain::tron::TronAddress;
use alloy::primitives::{U256, keccak256};

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
    /// Where ops are recorded, for a chain that must survive its process.
    pub journal: Option<Journal>,
    /// Transactions forks have orphaned, which [`SimChain::resubmit`] may queue again.
    pub orphans: Vec<SimTx>,
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
        SimChain::with_genesis(timestamp)
    }

    fn with_genesis(timestamp: i64) -> SimChain {
        let genesis = build_block(0, [0; 32], timestamp, witness(0), Vec::new());
        SimChain {
            state: Arc::new(Mutex::new(State {
                blocks: vec![genesis],
                pending: Vec::new(),
                solidified_lag: MAINNET_SOLIDIFIED_LAG,
                forks: 0,
                last_tx_time: timestamp,
                tx_blocks: HashMap::new(),
                journal: None,
                orphans: Vec::new(),
            })),
        }
    }

    /// The chain recorded in the journal file `path`, replayed op by op; a new chain
    /// (genesis only) when the file does not exist. Every later change is appended to the
    /// file before it takes effect in memory.
    pub fn open(path: &std::path::Path) -> Result<SimChain, JournalError> {
        let (journal, genesis, ops) = Journal::open(path, || {
            now_ms() / BLOCK_INTERVAL_MS * BLOCK_INTERVAL_MS - BLOCK_INTERVAL_MS
        })?;
        let chain = SimChain::with_genesis(genesis);
        {
            let mut state = chain.lock();
            for op in ops {
                apply(&mut state, op);
            }
            state.journal = Some(journal);
        }
        Ok(chain)
    }

    /// Records `op` (when the chain has a journal) and applies it.
    fn apply(&self, op: Op) -> Applied {
        self.apply_with(|_| op)
    }

    /// As [`SimChain::apply`], with the op made under the chain's lock (from the state
    /// it applies to, so that concurrent callers never pick the same time).
    fn apply_with(&self, make: impl FnOnce(&State) -> Op) -> Applied {
        let mut state = self.lock();
        let op = make(&state);
        if let Some(journal) = state.journal.as_mut() {
            // A chain whose journal cannot be written would silently lose its history at
            // the next start; the simulator stops instead.
            journal
                .append(&op)
                .expect("the TRON dev chain's journal cannot be written");
        }
        apply(&mut state, op)
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

    /// How many blocks the solidified block is kept behind the head.
    pub fn solidified_lag(&self) -> u64 {
        self.lock().solidified_lag
    }

    /// Keeps the solidified block `lag` blocks behind the head.
    pub fn set_solidified_lag(&self, lag: u64) {
        self.apply(Op::Lag { lag });
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
        let now = now_ms();
        match self.apply_with(|state| Op::Submit {
            payload,
            timestamp: (state.last_tx_time + 1).max(now),
        }) {
            Applied::Tx(tx) => *tx,
            _ => unreachable!("a submit yields its transaction"),
        }
    }

    /// Queues `tx` again, as a node re-broadcasts a transaction its orphaned block held.
    pub fn resubmit(&self, tx: &SimTx) {
        self.apply(Op::Resubmit { id: tx.id.clone() });
    }

    /// Mines the pending transactions into a new head block.
    pub fn mine(&self) -> SimBlock {
        self.mine_at(now_ms())
    }

    /// Mines the pending transactions into a new head block whose time is `at_ms`
    /// rounded down to a block slot, or the next slot after the head when that is later.
    pub fn mine_at(&self, at_ms: i64) -> SimBlock {
        match self.apply_with(|state| Op::Mine {
            timestamp: (state.head().timestamp + BLOCK_INTERVAL_MS)
                .max(at_ms / BLOCK_INTERVAL_MS * BLOCK_INTERVAL_MS),
        }) {
            Applied::Block(block) => *block,
            _ => unreachable!("a mine yields its block"),
        }
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
        match self.apply(Op::Fork { depth }) {
            Applied::Orphaned(txs) => txs,
            _ => unreachable!("a fork yields the orphaned transactions"),
        }
    }
}

/// What applying an op yields.
enum Applied {
    Nothing,
    Tx(Box<SimTx>),
    Block(Box<SimBlock>),
    Orphaned(Vec<SimTx>),
}

/// The chain's one state transition: every change, live or replayed, goes through here.
fn apply(state: &mut State, op: Op) -> Applied {
    match op {
        Op::Lag { lag } => {
            state.solidified_lag = lag;
            Applied::Nothing
        }
        Op::Submit { payload, timestamp } => {
            state.last_tx_time = timestamp;
            let tx = sign(payload, state.head(), timestamp);
            state.pending.push(tx.clone());
            Applied::Tx(Box::new(tx))
        }
        Op::Resubmit { id } => {
            // Only a transaction a fork orphaned can be resubmitted; the ones still known
            // are kept by id for exactly this.
            if let Some(tx) = state.orphans.iter().find(|t| t.id == id).cloned() {
                state.pending.push(tx);
            }
            Applied::Nothing
        }
        Op::Mine { timestamp } => {
            let transactions = std::mem::take(&mut state.pending);
            let head = state.head();
            let number = head.number + 1;
            let producer = witness(number + state.forks * 7);
            let block = build_block(number, head.id, timestamp, producer, transactions);
            for tx in &block.transactions {
                state.tx_blocks.insert(tx.id.clone(), number);
            }
            state.blocks.push(block.clone());
            Applied::Block(Box::new(block))
        }
        Op::Fork { depth } => {
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
            state.orphans.extend(orphaned.iter().cloned());
            Applied::Orphaned(orphaned)
        }
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

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    /// Submits a TRX and a TRC20 transfer, mines, forks one block away and mines again.
    fn history(chain: &SimChain) {
        chain.set_solidified_lag(0);
        chain.transfer_trx(SimChain::account(1), SimChain::account(2), 1_500_000);
        chain.mine();
        chain.transfer_trc20(
            SimChain::contract(0),
            SimChain::account(1),
            SimChain::account(3),
            U256::from(2_500_000u64),
            Outcome::Success,
        );
        let paying = chain.mine();
        let orphaned = chain.fork(1);
        assert_eq!(orphaned[0].id, paying.transactions[0].id);
        chain.mine_blocks(2);
        chain.resubmit(&orphaned[0]);
        chain.mine();
    }

    #[test]
    fn a_journaled_chain_reopens_as_the_same_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tron/chain.jsonl");
        let chain = SimChain::open(&path).unwrap();
        history(&chain);
        let blocks: Vec<String> = (0..=chain.head())
            .map(|n| chain.block(n).unwrap().id_hex())
            .collect();
        drop(chain);

        let reopened = SimChain::open(&path).unwrap();
        assert_eq!(reopened.head(), blocks.len() as u64 - 1);
        let again: Vec<String> = (0..=reopened.head())
            .map(|n| reopened.block(n).unwrap().id_hex())
            .collect();
        assert_eq!(again, blocks, "the same blocks, ids and order");
        assert_eq!(reopened.solidified_lag(), 0);
        // It goes on from there, and the next start sees that too.
        let next = reopened.mine();
        drop(reopened);
        assert_eq!(
            SimChain::open(&path)
                .unwrap()
                .block(next.number)
                .unwrap()
                .id,
            next.id
        );
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_a_damaged_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.jsonl");
        let chain = SimChain::open(&path).unwrap();
        chain.mine_blocks(3);
        drop(chain);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(br#"{"op":"mine","timest"#).unwrap();
        drop(file);
        let reopened = SimChain::open(&path).unwrap();
        assert_eq!(reopened.head(), 3, "the torn op never happened");
        reopened.mine();
        drop(reopened);
        assert_eq!(
            SimChain::open(&path).unwrap().head(),
            4,
            "and the file mends"
        );

        std::fs::write(
            &path,
            "{\"op\":\"genesis\",\"timestamp\":0}\n{\"op\":\"nonsense\"}\n",
        )
        .unwrap();
        let err = SimChain::open(&path).err().unwrap().to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}
