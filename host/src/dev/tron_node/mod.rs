//! A java-tron HTTP API simulator: the local TRON node of `polypay dev`, and the node the
//! TRON listener's tests run against. No TRON node can be installed on a development
//! machine the way anvil can, so this stand-in answers with java-tron's exact JSON.
//!
//! - [`SimChain`]: the chain. Tests queue TRX transfers and TRC20 `transfer` calls (one
//!   that succeeds, reverts or runs out of energy), mine blocks, fork the head away, and
//!   set how far the solidified block lags (19 blocks by default, as on mainnet).
//! - [`SimNode`]: a node serving a chain on a loopback port. Several nodes can serve one
//!   chain (failover); each can fail requests ([`Fault`]), lag behind, require a
//!   `TRON-PRO-API-KEY`, be stopped and restarted, and counts the requests it gets.
//!
//! What it serves, by GET (query) or POST (JSON body), with `visible` honoured:
//! `/wallet/getnowblock`, `/wallet/getblockbynum`, `/wallet/getblockbylimitnext`,
//! `/wallet/gettransactioninfobyblocknum`, `/wallet/gettransactionbyid`,
//! `/wallet/gettransactioninfobyid`, and the same under `/walletsolidity/` limited to the
//! solidified block. Answers follow java-tron: `{}` for a block it does not have, `[]` for
//! the infos of such a block, `{"Error": …}` with HTTP 200 for malformed parameters.
//!
//! Fidelity: ids are computed as java-tron computes them (`txID` = sha256 of the
//! transaction's protobuf `raw_data`, `blockID` = number + tail of sha256 of the header's
//! protobuf `raw_data`), checked against recorded ids in `tron_simulator.rs`; the shapes
//! are checked against the recorded answers in `host/tests/fixtures/tron`. Signatures are
//! not real (nothing verifies them); fees and energy are plausible constants.
//!
//! # In `polypay dev`
//!
//! - The chain is opened on a journal ([`SimChain::open`], `data/dev/tron/chain.jsonl`),
//!   so a second start serves the same blocks the database remembers.
//! - The node listens on a fixed loopback port and also answers a few development
//!   routes under `/polypay-dev/` ([`control`]), which is how `polypay dev pay|mine|reorg`
//!   (another process) and the checkout page's dev-wallet button act on it: a transfer
//!   is signed by the simulator and mined at once in its own block, like anvil's
//!   automine.
//! - Balances are not simulated: the dev wallet can always pay.

pub mod chain;
pub mod control;
pub mod journal;
pub mod proto;
mod render;
mod server;

pub use chain::{
    BLOCK_INTERVAL_MS, MAINNET_SOLIDIFIED_LAG, Outcome, Payload, SimBlock, SimChain, SimTx,
};
pub use journal::JournalError;
pub use render::Form;
pub use server::{Fault, SimNode};
