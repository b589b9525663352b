//! java-tron's HTTP API answers, as the listener reads them.
//!
//! Shapes follow java-tron's JSON printer (`JsonFormat`) without `visible=true`:
//! addresses are hex with the `0x41` prefix, except `log[].address` and the addresses
//! inside `log[].topics`, which are the 20-byte EVM form; hashes and ids are bare
//! lowercase hex. The printer omits every field holding its protobuf default, so every
//! field here has a default (the genesis block has no `number`, a plain TRX transfer's
//! `receipt` has no `result`, a successful transaction's info has no `result`).
//!
//! Only the fields the listener needs are typed; contract parameters are kept as raw JSON
//! and decoded only for the contract types that can pay (`TransferContract`), so a block
//! of two thousand transactions is read without building a tree of every value.
//!
//! Errors come back with HTTP 200 as `{"Error": "…"}` (rate limits, servlet exceptions), a
//! lite full node answers historical queries with bare text, and a block or list the node
//! does not have is `{}`. [`Answer::decode`] tells these apart so that an error is never
//! read as "no such block".

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

/// The `type` of a TRX transfer contract.
pub const TRANSFER_CONTRACT: &str = "TransferContract";
/// The contract types that run TVM code (and so may emit TRC20 `Transfer` logs).
pub const VM_CONTRACTS: [&str; 2] = ["TriggerSmartContract", "CreateSmartContract"];
/// `contractRet` / `receipt.result` of a transaction that succeeded.
pub const SUCCESS: &str = "SUCCESS";
/// `result` of a transaction info whose execution failed.
pub const FAILED: &str = "FAILED";
/// `keccak256("Transfer(address,address,uint256)")`, as java-tron writes topics.
pub const TRANSFER_TOPIC: &str = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef";

/// Why an answer cannot be used. Either way the node is asked again (or another one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The node answered `{"Error": …}`.
    #[error("the node answered an error: {0}")]
    Node(String),
    /// Not the JSON this endpoint answers (a lite full node's text, a proxy's page, …).
    #[error("unreadable answer: {0}")]
    Malformed(String),
}

/// A response body of one endpoint.
pub trait Answer: Sized {
    fn decode(body: &[u8]) -> Result<Self, DecodeError>;
}

/// `{"Error": "…"}`, or any other object (whose other fields are ignored).
#[derive(Debug, Default, Deserialize)]
struct ErrorField {
    #[serde(rename = "Error", default)]
    error: Option<String>,
}

fn malformed(body: &[u8], e: impl std::fmt::Display) -> DecodeError {
    let start: String = String::from_utf8_lossy(&body[..body.len().min(120)])
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    DecodeError::Malformed(format!("{e} (body starts `{start}`)"))
}

fn decode_object<T: DeserializeOwned + HasError>(body: &[u8]) -> Result<T, DecodeError> {
    let value: T = serde_json::from_slice(body).map_err(|e| malformed(body, e))?;
    match value.error() {
        Some(error) => Err(DecodeError::Node(error.to_string())),
        None => Ok(value),
    }
}

trait HasError {
    fn error(&self) -> Option<&str>;
}

/// A block (`/wallet/getnowblock`, `/wallet/getblockbynum`), or `None` for `{}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Block {
    #[serde(rename = "blockID", default)]
    pub block_id: String,
    #[serde(default)]
    pub block_header: BlockHeader,
    #[serde(default)]
    pub transactions: Vec<Transaction>,
    #[serde(rename = "Error", default)]
    error: Option<String>,
}

impl HasError for Block {
    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

impl Answer for Option<Block> {
    fn decode(body: &[u8]) -> Result<Option<Block>, DecodeError> {
        let block: Block = decode_object(body)?;
        Ok((!block.block_id.is_empty()).then_some(block))
    }
}

impl Block {
    pub fn number(&self) -> u64 {
        self.block_header.raw_data.number
    }

    pub fn parent_id(&self) -> &str {
        &self.block_header.raw_data.parent_hash
    }

    /// `block_header.raw_data.timestamp`: unix milliseconds.
    pub fn timestamp_ms(&self) -> i64 {
        self.block_header.raw_data.timestamp
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct BlockHeader {
    #[serde(default)]
    pub raw_data: BlockHeaderRaw,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct BlockHeaderRaw {
    #[serde(default)]
    pub number: u64,
    #[serde(rename = "parentHash", default)]
    pub parent_hash: String,
    #[serde(default)]
    pub timestamp: i64,
}

/// `/wallet/getblockbylimitnext`: `{"block": [...]}`, or `{}` when the node has none.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BlockList {
    #[serde(default)]
    pub block: Vec<Block>,
    #[serde(rename = "Error", default)]
    error: Option<String>,
}

impl HasError for BlockList {
    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

impl Answer for BlockList {
    fn decode(body: &[u8]) -> Result<BlockList, DecodeError> {
        decode_object(body)
    }
}

/// One transaction of a block.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Transaction {
    #[serde(rename = "txID", default)]
    pub tx_id: String,
    #[serde(default)]
    pub ret: Vec<TransactionResult>,
    #[serde(default)]
    pub raw_data: TransactionRaw,
}

impl Transaction {
    /// The transaction's first (on TRON: only) contract.
    pub fn contract(&self) -> Option<&Contract> {
        self.raw_data.contract.first()
    }

    /// `ret[0].contractRet`, e.g. `SUCCESS`, `REVERT`, `OUT_OF_ENERGY`.
    pub fn contract_ret(&self) -> Option<&str> {
        self.ret.first().and_then(|r| r.contract_ret.as_deref())
    }

    /// Whether the transaction runs TVM code.
    pub fn runs_vm(&self) -> bool {
        self.contract()
            .is_some_and(|c| VM_CONTRACTS.contains(&c.kind.as_str()))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct TransactionResult {
    #[serde(rename = "contractRet", default)]
    pub contract_ret: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct TransactionRaw {
    #[serde(default)]
    pub contract: Vec<Contract>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Contract {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub parameter: Option<Parameter>,
}

impl Contract {
    /// The parameter of a `TransferContract`.
    pub fn transfer(&self) -> Result<TransferValue, DecodeError> {
        let raw = self
            .parameter
            .as_ref()
            .map(|p| p.value.get())
            .unwrap_or("{}");
        serde_json::from_str(raw).map_err(|e| malformed(raw.as_bytes(), e))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Parameter {
    pub value: Box<RawValue>,
}

/// `TransferContract`'s parameter value.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TransferValue {
    /// Sun (1 TRX = 1 000 000 sun).
    #[serde(default)]
    pub amount: i64,
    #[serde(default)]
    pub owner_address: String,
    #[serde(default)]
    pub to_address: String,
}

/// `/wallet/gettransactioninfobyblocknum`: one info per transaction of the block; `[]`
/// for an empty block, `{}` for block 0.
#[derive(Debug, Clone, Default)]
pub struct TransactionInfos(pub Vec<TransactionInfo>);

impl Answer for TransactionInfos {
    fn decode(body: &[u8]) -> Result<TransactionInfos, DecodeError> {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'[') {
            return serde_json::from_slice(body)
                .map(TransactionInfos)
                .map_err(|e| malformed(body, e));
        }
        let object: ErrorField = serde_json::from_slice(body).map_err(|e| malformed(body, e))?;
        match object.error {
            Some(error) => Err(DecodeError::Node(error)),
            None => Ok(TransactionInfos(Vec::new())),
        }
    }
}

/// The execution result of one transaction.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TransactionInfo {
    #[serde(default)]
    pub id: String,
    #[serde(rename = "blockNumber", default)]
    pub block_number: u64,
    #[serde(rename = "blockTimeStamp", default)]
    pub block_timestamp: i64,
    #[serde(default)]
    pub receipt: Receipt,
    #[serde(default)]
    pub log: Vec<Log>,
    /// Absent on success, `FAILED` otherwise.
    #[serde(default)]
    pub result: Option<String>,
}

impl TransactionInfo {
    /// Whether the transaction's code ran to the end: no `FAILED` result and a receipt of
    /// `SUCCESS`. Only then do its logs describe something that happened.
    pub fn succeeded(&self) -> bool {
        self.result.as_deref() != Some(FAILED) && self.receipt.result.as_deref() == Some(SUCCESS)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Receipt {
    /// `SUCCESS`, `REVERT`, `OUT_OF_ENERGY`, …; absent for system contracts (TRX).
    #[serde(default)]
    pub result: Option<String>,
}

/// A TVM event log.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Log {
    /// The emitting contract, 20-byte hex (no `41`).
    #[serde(default)]
    pub address: String,
    /// 32-byte hex words.
    #[serde(default)]
    pub topics: Vec<String>,
    #[serde(default)]
    pub data: String,
}

/// Decodes a 32-byte hex word (`topics[i]`, `data`), with or without `0x`.
pub fn word(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text.strip_prefix("0x").unwrap_or(text), &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    //! Against responses recorded in java-tron's documentation (`host/tests/fixtures/tron`).

    use super::*;

    fn fixture(name: &str) -> &'static str {
        match name {
            "block" => include_str!("../../../tests/fixtures/tron/getblockbynum_66987565.json"),
            "now" => include_str!("../../../tests/fixtures/tron/getnowblock_66987627.json"),
            "trx" => include_str!("../../../tests/fixtures/tron/gettransactionbyid_transfer.json"),
            "trigger" => {
                include_str!("../../../tests/fixtures/tron/gettransactionbyid_trigger.json")
            }
            "trx_info" => {
                include_str!("../../../tests/fixtures/tron/gettransactioninfobyid_transfer.json")
            }
            "trigger_info" => {
                include_str!("../../../tests/fixtures/tron/gettransactioninfobyid_trigger.json")
            }
            "infos" => {
                include_str!(
                    "../../../tests/fixtures/tron/gettransactioninfobyblocknum_66987565.json"
                )
            }
            other => panic!("no fixture {other}"),
        }
    }

    #[test]
    fn recorded_blocks_give_number_ids_and_timestamp() {
        let block = <Option<Block>>::decode(fixture("block").as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(block.number(), 66_987_565);
        assert_eq!(
            block.block_id,
            "0000000003fe262d52bfa4b2814f816fd2e57af5b98a33d60d8630a03a908e0e"
        );
        assert_eq!(
            block.parent_id(),
            "0000000003fe262c85cd6b02033f4c3e5c1efa35de256a17bd906dc61fb1aeed"
        );
        assert_eq!(block.timestamp_ms(), 1_777_445_121_000);
        assert!(block.transactions.is_empty());
        let now = <Option<Block>>::decode(fixture("now").as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(now.number(), 66_987_627);
    }

    #[test]
    fn recorded_transactions_give_their_contract_and_result() {
        let trx: Transaction = serde_json::from_str(fixture("trx")).unwrap();
        assert_eq!(
            trx.tx_id,
            "c558bd35978267d8999baf6148703cbc94786f3f2e22893637588ca05437d7f0"
        );
        assert_eq!(trx.contract_ret(), Some(SUCCESS));
        let contract = trx.contract().unwrap();
        assert_eq!(contract.kind, TRANSFER_CONTRACT);
        let value = contract.transfer().unwrap();
        assert_eq!(value.amount, 10_000_000);
        assert_eq!(
            value.owner_address,
            "4198927ffb9f554dc4a453c64b2e553a02d6df514b"
        );
        assert_eq!(
            value.to_address,
            "41d0b69631440f0a494bb51f7eee68ff5c593c00f0"
        );
        assert!(!trx.runs_vm());

        let trigger: Transaction = serde_json::from_str(fixture("trigger")).unwrap();
        assert!(trigger.runs_vm());
        assert_eq!(trigger.contract_ret(), Some(SUCCESS));
    }

    #[test]
    fn recorded_infos_say_whether_code_ran() {
        let trx: TransactionInfo = serde_json::from_str(fixture("trx_info")).unwrap();
        assert_eq!(trx.block_number, 27_773_932);
        assert_eq!(trx.block_timestamp, 1_656_917_586_000);
        assert!(trx.log.is_empty());
        assert!(
            !trx.succeeded(),
            "a system contract has no receipt result: its logs (none) never count"
        );

        let call: TransactionInfo = serde_json::from_str(fixture("trigger_info")).unwrap();
        assert!(call.succeeded());
        assert_eq!(call.log.len(), 1);
        assert_eq!(
            call.log[0].address,
            "9ff8fc48fb114ccd5bbdc24a86f0c73082f08825"
        );
        assert_eq!(call.log[0].topics.len(), 3);

        let list = TransactionInfos::decode(fixture("infos").as_bytes()).unwrap();
        assert_eq!(list.0.len(), 2);
        assert!(list.0.iter().all(|i| i.block_number == 66_987_565));
    }

    #[test]
    fn a_failed_execution_is_not_success_even_with_logs() {
        // The documentation asks to check the result before reading logs.
        let reverted = r#"{"id":"ab","blockNumber":5,"blockTimeStamp":15000,"contractResult":[""],
            "receipt":{"energy_usage_total":1234,"result":"REVERT"},"result":"FAILED",
            "resMessage":"5452433230","log":[{"address":"a614f803b6fd780986a42c78ec9c7f77e6ded13c",
            "topics":["ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"],"data":""}]}"#;
        let info: TransactionInfo = serde_json::from_str(reverted).unwrap();
        assert!(!info.succeeded());
        let out_of_energy = r#"{"id":"ab","receipt":{"result":"OUT_OF_ENERGY"},"result":"FAILED"}"#;
        assert!(
            !serde_json::from_str::<TransactionInfo>(out_of_energy)
                .unwrap()
                .succeeded()
        );
        let inconsistent = r#"{"id":"ab","receipt":{"result":"SUCCESS"},"result":"FAILED"}"#;
        assert!(
            !serde_json::from_str::<TransactionInfo>(inconsistent)
                .unwrap()
                .succeeded()
        );
    }

    #[test]
    fn errors_empty_answers_and_text_are_told_apart() {
        assert!(<Option<Block>>::decode(b"{}").unwrap().is_none());
        assert!(matches!(
            <Option<Block>>::decode(
                br#"{"Error":"class java.lang.IllegalAccessException : lack of computing resources"}"#
            ),
            Err(DecodeError::Node(e)) if e.contains("lack of computing resources")
        ));
        assert!(matches!(
            <Option<Block>>::decode(b"this API is closed because this node is a lite fullnode"),
            Err(DecodeError::Malformed(e)) if e.contains("lite fullnode")
        ));
        assert!(TransactionInfos::decode(b"[]").unwrap().0.is_empty());
        assert!(TransactionInfos::decode(b" {}").unwrap().0.is_empty());
        assert!(matches!(
            TransactionInfos::decode(br#"{"Error":"boom"}"#),
            Err(DecodeError::Node(_))
        ));
        assert!(BlockList::decode(b"{}").unwrap().block.is_empty());
        assert!(matches!(
            BlockList::decode(br#"{"Error":"boom"}"#),
            Err(DecodeError::Node(_))
        ));
    }

    #[test]
    fn words_decode_with_or_without_prefix() {
        let w = word("000000000000000000000000dd791d6b49e190062d650e6a23c575510d35f2f9").unwrap();
        assert_eq!(w[12], 0xdd);
        assert_eq!(
            word("0x00000000000000000000000000000000000000000000000000000000000000ff").unwrap()[31],
            0xff
        );
        assert!(word("00").is_none());
        assert!(word("zz00000000000000000000000000000000000000000000000000000000000000").is_none());
    }
}
