//! `polypay dev`: a working local payment setup in one command, for trying polypay and
//! developing against it.
//!
//! It starts a local EVM chain (anvil, from the project's `node_modules`), deploys the
//! test token and the payment contract of `contracts/`, writes a development config that
//! follows that chain and mounts every dialect plugin of `plugins/` that declares a demo,
//! creates one demo merchant per dialect, runs the server and a callback inbox, and prints
//! a walkthrough: credentials, a `curl` that creates an invoice in each dialect, and how to
//! pay it. `polypay dev pay|mine|reorg` then act on the running setup.
//!
//! Rooms:
//! - [`node`]: the anvil process (found, started, stopped with its process group).
//! - [`rpc`]: JSON-RPC to it, including anvil's development calls.
//! - [`contracts`]: the embedded contract artifacts, deployment and token calls.
//! - [`wallet`]: the dev wallet, which pays an invoice as a payer's wallet would (also
//!   behind the checkout page's "Pay with the dev wallet" button in development mode).
//! - [`demo`]: each dialect's demo declaration, `plugins/<name>/demo.toml`.
//! - [`setup`]: the data directory's files: the persisted state and the generated config.
//! - [`inbox`]: the demo merchants' side: callbacks printed and accepted, a return page.
//! - [`tron_node`]: the dev TRON node (a java-tron HTTP API simulator), which the TRON
//!   tests use too.
//! - [`start`]: the start sequence; [`cli`]: the command line.
//!
//! # Decisions
//!
//! - **Resuming.** Everything lives in the data directory (`./data/dev`). anvil keeps its
//!   chain in `chain/state.json` (`--state`, written when it stops), so a second start
//!   resumes the same chain — blocks, hashes, balances, contracts — beside the same
//!   database: invoices, merchants, credentials and payments are all still there and
//!   agree with the chain. A redeployment on a fresh chain would instead look like a reorg
//!   of every block the database knows, and undo every payment. If the chain's state is
//!   lost, the start refuses and says to `--reset`, which deletes the directory.
//! - **Mining.** Each transaction is mined at once in its own block (anvil's automine),
//!   and nothing else is, so the chain's state stays small and every step is
//!   deterministic; `--confirmations` (default 1) sets how deep a payment must be, and
//!   `polypay dev mine N` adds blocks. `--block-time SECS` adds interval mining for a
//!   chain that moves by itself.
//! - **Mode.** The generated config says `mode = "development"`: the dev wallet (`[dev]`)
//!   is refused in production, and callbacks may go to loopback (the inbox).
//! - **Secrets.** The demo merchants' credentials are kept in plain text in `dev.json`, so
//!   that every start prints them again. This is development data.
//! - **TRON.** Beside anvil runs a dev TRON node: the java-tron HTTP API simulator of
//!   [`tron_node`], in this process, on `--tron-port` (8091), network `tron-dev` with TRX
//!   and a USDT-TRC20 token. Its chain is kept in `tron/chain.jsonl` (every change
//!   journaled, replayed at start), so it resumes like anvil's. `polypay dev pay` pays
//!   TRON invoices through it; `mine` and `reorg` take `--network tron-dev`.

pub mod cli;
pub mod contracts;
pub mod demo;
pub mod inbox;
pub mod node;
pub mod rpc;
pub mod setup;
pub mod start;
pub mod tron_node;
pub mod wallet;
