//! A java-tron HTTP API simulator: no TRON node can be installed here, so the TRON
//! listener is tested against this stand-in, which answers with java-tron's exact JSON.
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
//! The simulator depends only on the host's `TronAddress`, axum and hashing crates, so
//! it can move into a crate of its own (for `polypay dev`, or a dialect's tests) as is.

mod chain;
pub mod proto;
mod render;
mod server;

// Each test binary uses its own part of the simulator.
#[allow(unused_imports)]
pub use chain::{
    BLOCK_INTERVAL_MS, MAINNET_SOLIDIFIED_LAG, Outcome, Payload, SimBlock, SimChain, SimTx,
};
#[allow(unused_imports)]
pub use render::Form;
#[allow(unused_imports)]
pub use server::{Fault, SimNode};
