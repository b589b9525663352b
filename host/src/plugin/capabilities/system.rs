//! `clock` and `random`: the host's wall clock and CSPRNG.

use crate::plugin::bindings::polypay::plugin::{clock, random};
use crate::plugin::state::PluginState;
use rand::RngCore;

/// Largest `random.bytes` request; larger asks are a guest bug.
const MAX_RANDOM_BYTES: u32 = 4096;

pub(crate) fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

impl clock::Host for PluginState {
    fn now(&mut self) -> wasmtime::Result<i64> {
        Ok(now_ms())
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
