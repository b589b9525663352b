//! `kv`: the plugin's own key-value store (keys are namespaced by plugin name
//! in the store, so plugins never see each other's entries), within the
//! plugin's quota (`kv_max_entries`, `kv_max_bytes`): a write beyond it is
//! `unavailable`, and writes nothing.

use super::{HostResult, guest, store_error};
use crate::plugin::bindings::HostError;
use crate::plugin::bindings::polypay::plugin::kv::Host;
use crate::plugin::services::Storage;
use crate::plugin::state::{CallScope, PluginState};
use crate::store::kv::{KvError, KvQuota};
use crate::store::now_ms;

const MAX_KEY: usize = 256;
const MAX_VALUE: usize = 64 * 1024;

fn expiry(ttl_secs: Option<u32>) -> Option<i64> {
    ttl_secs.map(|t| now_ms() + i64::from(t) * 1000)
}

fn quota(scope: &CallScope) -> KvQuota {
    scope.plugin.kv_quota
}

fn kv_error(scope: &CallScope, key: &str, e: KvError) -> HostError {
    match e {
        KvError::QuotaExceeded { .. } => HostError::Unavailable(e.to_string()),
        KvError::NotAnInteger => HostError::Invalid(format!("`{key}` does not hold an integer")),
        KvError::Store(e) => store_error(scope, e),
    }
}

impl PluginState {
    fn kv_storage(&self, key: &str, value_len: usize) -> Result<&Storage, HostError> {
        let storage = self.scope.storage()?;
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(HostError::Invalid(format!("keys are 1 to {MAX_KEY} bytes")));
        }
        if value_len > MAX_VALUE {
            return Err(HostError::Invalid(format!(
                "values are at most {MAX_VALUE} bytes"
            )));
        }
        Ok(storage)
    }
}

impl Host for PluginState {
    async fn get(&mut self, key: String) -> HostResult<Option<Vec<u8>>> {
        let storage = match self.kv_storage(&key, 0) {
            Ok(s) => s,
            Err(e) => return guest(Err(e)),
        };
        let scope = &self.scope;
        guest(
            storage
                .store
                .kv_get(scope.plugin_name(), &key, now_ms())
                .await
                .map_err(|e| store_error(scope, e)),
        )
    }

    async fn set(&mut self, key: String, value: Vec<u8>, ttl_secs: Option<u32>) -> HostResult<()> {
        let storage = match self.kv_storage(&key, value.len()) {
            Ok(s) => s,
            Err(e) => return guest(Err(e)),
        };
        let scope = &self.scope;
        let stored = storage
            .store
            .kv_set(
                scope.plugin_name(),
                &key,
                &value,
                expiry(ttl_secs),
                quota(scope),
                now_ms(),
            )
            .await
            .map_err(|e| kv_error(scope, &key, e));
        self.after_write(stored)
    }

    async fn set_if_absent(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_secs: Option<u32>,
    ) -> HostResult<bool> {
        let storage = match self.kv_storage(&key, value.len()) {
            Ok(s) => s,
            Err(e) => return guest(Err(e)),
        };
        let scope = &self.scope;
        let stored = storage
            .store
            .kv_insert_if_absent(
                scope.plugin_name(),
                &key,
                &value,
                expiry(ttl_secs),
                quota(scope),
                now_ms(),
            )
            .await
            .map_err(|e| kv_error(scope, &key, e));
        self.after_write(stored)
    }

    async fn increment(
        &mut self,
        key: String,
        delta: i64,
        ttl_secs: Option<u32>,
    ) -> HostResult<i64> {
        let storage = match self.kv_storage(&key, 0) {
            Ok(s) => s,
            Err(e) => return guest(Err(e)),
        };
        let scope = &self.scope;
        let result = storage
            .store
            .plugin_kv_increment(
                scope.plugin_name(),
                &key,
                delta,
                expiry(ttl_secs),
                quota(scope),
                now_ms(),
            )
            .await
            .map_err(|e| kv_error(scope, &key, e));
        self.after_write(result)
    }

    async fn delete(&mut self, key: String) -> HostResult<()> {
        let storage = match self.kv_storage(&key, 0) {
            Ok(s) => s,
            Err(e) => return guest(Err(e)),
        };
        let scope = &self.scope;
        let deleted = storage
            .store
            .kv_delete(scope.plugin_name(), &key)
            .await
            .map(|_| ())
            .map_err(|e| store_error(scope, e));
        self.after_write(deleted)
    }
}
