//! `context`: the plugin's settings and mount name.

use crate::plugin::bindings::polypay::plugin::context::Host;
use crate::plugin::state::PluginState;

impl Host for PluginState {
    fn settings(&mut self) -> wasmtime::Result<String> {
        Ok(self.scope.plugin.settings_json.clone())
    }

    fn plugin_name(&mut self) -> wasmtime::Result<String> {
        Ok(self.scope.plugin.name.clone())
    }
}
