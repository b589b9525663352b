//! java-tron's JSON for the simulator's blocks, transactions and transaction infos.
//!
//! Written by hand, in java-tron's field order (protobuf field number order, `blockID`
//! and `txID`/`raw_data_hex` where its HTTP layer adds them), omitting what its printer
//! omits (default values, empty lists). `Form::Hex` is java-tron's default: account and
//! contract addresses as `41…` hex, log addresses as 20-byte hex; `Form::Base58` is
//! `visible=true`: every address base58check, the log address included (with its `41`).

use std::fmt::Write as _;

use crate::chain::tron::TronAddress;

use super::chain::{Outcome, Payload, SimBlock, SimTx};

pub const TRANSFER_TYPE_URL: &str = "type.googleapis.com/protocol.TransferContract";
pub const TRIGGER_TYPE_URL: &str = "type.googleapis.com/protocol.TriggerSmartContract";
/// `block_header.raw_data.version` of current mainnet blocks.
pub const BLOCK_VERSION: i64 = 32;
pub const TRANSFER_TOPIC: &str = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";

/// Bandwidth of a plain TRX transfer (bytes), and of a TRC20 call.
const TRX_NET_USAGE: i64 = 267;
const TRC20_NET_FEE: i64 = 345_000;
/// Energy of a TRC20 transfer to an account already holding the token, and its price in
/// sun per energy unit.
const TRC20_ENERGY: i64 = 31_895;
const ENERGY_PRICE: i64 = 210;

/// How addresses are written: java-tron's default, or `visible=true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Hex,
    Base58,
}

impl Form {
    fn address(self, address: &TronAddress) -> String {
        match self {
            Form::Hex => address.to_hex(),
            Form::Base58 => address.to_base58(),
        }
    }

    /// A log's emitting contract: the EVM form, or base58 with `visible=true`.
    fn log_address(self, address: &TronAddress) -> String {
        match self {
            Form::Hex => hex::encode(address.evm_bytes()),
            Form::Base58 => address.to_base58(),
        }
    }
}

fn word_of(address: &TronAddress) -> String {
    format!("{:0>64}", hex::encode(address.evm_bytes()))
}

/// A block as `/wallet/getblockbynum` prints it.
pub fn block(block: &SimBlock, form: Form) -> String {
    let mut out = String::with_capacity(600 + block.transactions.len() * 900);
    write!(
        out,
        r#"{{"blockID":"{}","block_header":{{"raw_data":{{"#,
        block.id_hex()
    )
    .unwrap();
    if block.number != 0 {
        write!(out, r#""number":{},"#, block.number).unwrap();
    }
    write!(
        out,
        r#""txTrieRoot":"{}","witness_address":"{}","parentHash":"{}","version":{BLOCK_VERSION},"timestamp":{}}},"witness_signature":"{}"}}"#,
        hex::encode(block.tx_trie_root),
        form.address(&block.witness),
        hex::encode(block.parent),
        block.timestamp,
        hex::encode(block.witness_signature),
    )
    .unwrap();
    if !block.transactions.is_empty() {
        out.push_str(r#","transactions":["#);
        for (i, tx) in block.transactions.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            transaction_into(&mut out, tx, form);
        }
        out.push(']');
    }
    out.push('}');
    out
}

/// A transaction as `/wallet/gettransactionbyid` (and a block) prints it.
pub fn transaction(tx: &SimTx, form: Form) -> String {
    let mut out = String::with_capacity(900);
    transaction_into(&mut out, tx, form);
    out
}

fn transaction_into(out: &mut String, tx: &SimTx, form: Form) {
    write!(
        out,
        r#"{{"ret":[{{"contractRet":"{}"}}],"signature":["{}"],"txID":"{}","raw_data":{{"contract":[{{"parameter":{{"value":{{"#,
        tx.outcome().contract_ret(),
        hex::encode(tx.signature),
        tx.id,
    )
    .unwrap();
    let (type_url, kind, fee_limit) = match &tx.payload {
        Payload::Trx { from, to, amount } => {
            write!(
                out,
                r#""amount":{amount},"owner_address":"{}","to_address":"{}""#,
                form.address(from),
                form.address(to)
            )
            .unwrap();
            (TRANSFER_TYPE_URL, "TransferContract", None)
        }
        Payload::Trc20 {
            contract,
            from,
            to,
            amount,
            ..
        } => {
            write!(
                out,
                r#""data":"{}","owner_address":"{}","contract_address":"{}""#,
                hex::encode(SimTx::call_data(*to, *amount)),
                form.address(from),
                form.address(contract)
            )
            .unwrap();
            (TRIGGER_TYPE_URL, "TriggerSmartContract", Some(100_000_000))
        }
    };
    write!(
        out,
        r#"}},"type_url":"{type_url}"}},"type":"{kind}"}}],"ref_block_bytes":"{}","ref_block_hash":"{}","expiration":{},"#,
        hex::encode(tx.ref_block_bytes),
        hex::encode(tx.ref_block_hash),
        tx.expiration,
    )
    .unwrap();
    if let Some(fee_limit) = fee_limit {
        write!(out, r#""fee_limit":{fee_limit},"#).unwrap();
    }
    write!(
        out,
        r#""timestamp":{}}},"raw_data_hex":"{}"}}"#,
        tx.timestamp,
        hex::encode(&tx.raw)
    )
    .unwrap();
}

/// `/wallet/gettransactioninfobyblocknum`: one info per transaction; `[]` when empty.
pub fn infos(block: &SimBlock, form: Form) -> String {
    let mut out = String::with_capacity(2 + block.transactions.len() * 700);
    out.push('[');
    for (i, tx) in block.transactions.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        info_into(&mut out, tx, block, form);
    }
    out.push(']');
    out
}

/// `/wallet/gettransactioninfobyid`.
pub fn info(tx: &SimTx, block: &SimBlock, form: Form) -> String {
    let mut out = String::with_capacity(700);
    info_into(&mut out, tx, block, form);
    out
}

/// ABI encoding of `Error(string)`, what a `require(…, "message")` reverts with.
fn revert_reason(message: &str) -> String {
    let mut data = String::from("08c379a0");
    write!(data, "{:064x}{:064x}", 32, message.len()).unwrap();
    let mut text = hex::encode(message);
    while !text.len().is_multiple_of(64) {
        text.push('0');
    }
    data + &text
}

fn info_into(out: &mut String, tx: &SimTx, block: &SimBlock, form: Form) {
    write!(out, r#"{{"id":"{}","#, tx.id).unwrap();
    let Payload::Trc20 {
        contract,
        from,
        to,
        amount,
        outcome,
    } = &tx.payload
    else {
        // A TRX transfer within the sender's free bandwidth: no fee, no receipt result.
        write!(
            out,
            r#""blockNumber":{},"blockTimeStamp":{},"contractResult":[""],"receipt":{{"net_usage":{TRX_NET_USAGE}}}}}"#,
            block.number, block.timestamp
        )
        .unwrap();
        return;
    };
    let (energy, contract_result) = match outcome {
        Outcome::Success => (
            TRC20_ENERGY,
            "0000000000000000000000000000000000000000000000000000000000000001".to_string(),
        ),
        Outcome::Revert => (
            TRC20_ENERGY / 3,
            revert_reason("ERC20: transfer amount exceeds balance"),
        ),
        Outcome::OutOfEnergy => (100_000_000 / ENERGY_PRICE, String::new()),
    };
    let energy_fee = energy * ENERGY_PRICE;
    write!(
        out,
        r#""fee":{},"blockNumber":{},"blockTimeStamp":{},"contractResult":["{contract_result}"],"contract_address":"{}","receipt":{{"energy_fee":{energy_fee},"energy_usage_total":{energy},"net_fee":{TRC20_NET_FEE},"result":"{}"}}"#,
        energy_fee + TRC20_NET_FEE,
        block.number,
        block.timestamp,
        form.address(contract),
        outcome.contract_ret(),
    )
    .unwrap();
    match outcome {
        Outcome::Success => write!(
            out,
            r#","log":[{{"address":"{}","topics":["{TRANSFER_TOPIC}","{}","{}"],"data":"{}"}}]}}"#,
            form.log_address(contract),
            word_of(from),
            word_of(to),
            hex::encode(amount.to_be_bytes::<32>()),
        )
        .unwrap(),
        Outcome::Revert => write!(
            out,
            r#","result":"FAILED","resMessage":"{}"}}"#,
            hex::encode("REVERT opcode executed")
        )
        .unwrap(),
        Outcome::OutOfEnergy => write!(
            out,
            r#","result":"FAILED","resMessage":"{}"}}"#,
            hex::encode(format!(
                "Not enough energy for 'SSTORE' operation executing: curInvokeEnergyLimit[{energy}], curOpEnergy[20000], usedEnergy[{}]",
                energy - 20_000
            ))
        )
        .unwrap(),
    }
}
