//! `log`: guest log lines in the host's log, tagged with plugin and request id.

use crate::plugin::bindings::polypay::plugin::log::{Host, Level};
use crate::plugin::state::PluginState;

/// Longest message or field kept; the rest is cut so a plugin cannot flood the log.
const MAX_TEXT: usize = 4096;

fn cut(s: &str) -> &str {
    if s.len() <= MAX_TEXT {
        return s;
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Host for PluginState {
    fn log(
        &mut self,
        level: Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let plugin = self.scope.plugin.name.as_str();
        let request_id = self.scope.request_id.as_str();
        let fields = fields
            .iter()
            .take(32)
            .map(|(k, v)| format!("{}={}", cut(k), cut(v)))
            .collect::<Vec<_>>()
            .join(" ");
        let message = cut(&message);
        match level {
            Level::Trace => tracing::trace!(plugin, request_id, fields, "{message}"),
            Level::Debug => tracing::debug!(plugin, request_id, fields, "{message}"),
            Level::Info => tracing::info!(plugin, request_id, fields, "{message}"),
            Level::Warn => tracing::warn!(plugin, request_id, fields, "{message}"),
            Level::Error => tracing::error!(plugin, request_id, fields, "{message}"),
        }
        Ok(())
    }
}
