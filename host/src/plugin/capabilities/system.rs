//! `clock` and `random`: the host's wall clock and CSPRNG.

use crate::plugin::bindings::polypay::plugin::{clock, random};
use crate::plugin::state::PluginState;
use rand::RngCore;

/// Largest `random.bytes` request; larger asks are a guest bug.
const MAX_RANDOM_BYTES: u32 = 4096;

impl clock::Host for PluginState {
    fn now(&mut self) -> wasmtime::Result<i64> {
        Ok(crate::store::now_ms())
    }
}

impl random::Host for PluginState {
    fn bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
        if len > MAX_RANDOM_BYTES {
            wasmtime::bail!("random.bytes({len}) exceeds the {MAX_RANDOM_BYTES}-byte limit");
        }
        let mut out = vec![0; len as usize];
        rand::rng().fill_bytes(&mut out);
        Ok(out)
    }
}
