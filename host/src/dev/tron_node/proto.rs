//! The protobuf encodings java-tron hashes into ids, for the few messages the simulator
//! produces: a transaction's `raw_data` (`txID = sha256(raw_data)`, printed as
//! `raw_data_hex`) and a block header's `raw_data` (`blockID` = the block number in 8
//! big-endian bytes, then bytes 8.. of `sha256(raw_data)`). Field numbers are those of
//! java-tron's `Tron.proto`, `balance_contract.proto` and `smart_contract.proto`; the
//! unit tests check the encodings against ids recorded in java-tron's documentation.

use sha2::{Digest, Sha256};

/// A protobuf message being written, fields in ascending number as java-tron writes them.
#[derive(Default)]
pub struct Message(Vec<u8>);

impl Message {
    fn varint(&mut self, mut n: u64) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }

    /// An integer field (int64, int32, enum); zero is the default and is not written.
    pub fn int(mut self, field: u32, value: i64) -> Message {
        if value != 0 {
            self.varint(u64::from(field) << 3);
            self.varint(value as u64);
        }
        self
    }

    /// A length-delimited field (bytes, string, embedded message); empty is not written.
    pub fn bytes(mut self, field: u32, value: &[u8]) -> Message {
        if !value.is_empty() {
            self.varint((u64::from(field) << 3) | 2);
            self.varint(value.len() as u64);
            self.0.extend_from_slice(value);
        }
        self
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// `protocol.Transaction.Contract.ContractType` values.
pub const TRANSFER_CONTRACT: i64 = 1;
pub const TRIGGER_SMART_CONTRACT: i64 = 31;

/// `TransferContract { owner_address = 1; to_address = 2; amount = 3; }`
pub fn transfer_contract(owner: &[u8], to: &[u8], amount: i64) -> Vec<u8> {
    Message::default()
        .bytes(1, owner)
        .bytes(2, to)
        .int(3, amount)
        .into_bytes()
}

/// `TriggerSmartContract { owner_address = 1; contract_address = 2; call_value = 3; data = 4; }`
pub fn trigger_smart_contract(owner: &[u8], contract: &[u8], data: &[u8]) -> Vec<u8> {
    Message::default()
        .bytes(1, owner)
        .bytes(2, contract)
        .bytes(4, data)
        .into_bytes()
}

/// `Transaction.Contract { type = 1; parameter = 2 (google.protobuf.Any); }`
pub fn contract(kind: i64, type_url: &str, value: &[u8]) -> Vec<u8> {
    let any = Message::default()
        .bytes(1, type_url.as_bytes())
        .bytes(2, value)
        .into_bytes();
    Message::default().int(1, kind).bytes(2, &any).into_bytes()
}

/// `Transaction.raw` with the fields the simulator sets.
pub struct TransactionRaw<'a> {
    pub ref_block_bytes: &'a [u8],
    pub ref_block_hash: &'a [u8],
    pub expiration: i64,
    pub contract: &'a [u8],
    pub timestamp: i64,
    pub fee_limit: i64,
}

impl TransactionRaw<'_> {
    /// `ref_block_bytes = 1; ref_block_hash = 4; expiration = 8; contract = 11;
    /// timestamp = 14; fee_limit = 18;`
    pub fn encode(&self) -> Vec<u8> {
        Message::default()
            .bytes(1, self.ref_block_bytes)
            .bytes(4, self.ref_block_hash)
            .int(8, self.expiration)
            .bytes(11, self.contract)
            .int(14, self.timestamp)
            .int(18, self.fee_limit)
            .into_bytes()
    }
}

/// `BlockHeader.raw` with the fields java-tron sets.
pub struct BlockHeaderRaw<'a> {
    pub timestamp: i64,
    pub tx_trie_root: &'a [u8],
    pub parent_hash: &'a [u8],
    pub number: i64,
    pub witness_address: &'a [u8],
    pub version: i64,
}

impl BlockHeaderRaw<'_> {
    /// `timestamp = 1; txTrieRoot = 2; parentHash = 3; number = 7; witness_address = 9;
    /// version = 10;`
    pub fn encode(&self) -> Vec<u8> {
        Message::default()
            .int(1, self.timestamp)
            .bytes(2, self.tx_trie_root)
            .bytes(3, self.parent_hash)
            .int(7, self.number)
            .bytes(9, self.witness_address)
            .int(10, self.version)
            .into_bytes()
    }

    /// java-tron's block id: the number, then the tail of the header's hash.
    pub fn block_id(&self) -> [u8; 32] {
        let mut id: [u8; 32] = Sha256::digest(self.encode()).into();
        id[..8].copy_from_slice(&(self.number as u64).to_be_bytes());
        id
    }
}

/// `Transaction.Result { contractRet = 3; }` then `Transaction { raw_data = 1;
/// signature = 2; ret = 5; }`: the bytes java-tron's transaction merkle tree hashes.
pub fn signed_transaction(raw: &[u8], signature: &[u8], contract_ret: i64) -> Vec<u8> {
    let ret = Message::default().int(3, contract_ret).into_bytes();
    Message::default()
        .bytes(1, raw)
        .bytes(2, signature)
        .bytes(5, &ret)
        .into_bytes()
}

/// The merkle root java-tron puts in `txTrieRoot`: leaves `sha256(transaction)`, parents
/// `sha256(left || right)`, an odd last node carried up; all zeros for no transactions.
pub fn merkle_root(leaves: &[[u8; 32]]) -> [u8; 32] {
    if leaves.is_empty() {
        return [0; 32];
    }
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => {
                    let mut hasher = Sha256::new();
                    hasher.update(left);
                    hasher.update(right);
                    hasher.finalize().into()
                }
                [single] => *single,
                _ => unreachable!(),
            })
            .collect();
    }
    level[0]
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}
