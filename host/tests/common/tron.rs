//! The java-tron HTTP API simulator, from the host's dev module (where `polypay dev`
//! runs it too); see `polypay_host::dev::tron_node`.

// Each test binary uses its own part of the simulator.
#[allow(unused_imports)]
pub use polypay_host::dev::tron_node::{
    BLOCK_INTERVAL_MS, Fault, Form, MAINNET_SOLIDIFIED_LAG, Outcome, Payload, SimBlock, SimChain,
    SimNode, SimTx, proto,
};
