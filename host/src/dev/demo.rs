//! What each dialect plugin contributes to `polypay dev`: its demo declaration,
//! `plugins/<name>/demo.toml`, next to the plugin's `Cargo.toml`.
//!
//! Adding a dialect to the demo is adding that file; the host names no dialect. The file
//! says which local chain the demo needs, the plugin's settings in the dev config, the
//! demo merchant, and the walkthrough: a command that creates an invoice (and where the
//! answer names it) and one that reads it back. Every value is plain data (strings,
//! tables), so the same declaration can later travel in the plugin's manifest as JSON.
//!
//! ```toml
//! about = "Trino pay-srv: bearer tokens, contract payments"
//! chain = "evm"                         # evm (the anvil dev chain) or tron
//! merchant = "Trino demo shop"
//! settings = { expires_in_secs = 1800 } # the plugin's settings in the dev config
//! default_merchant = false              # true: unauthenticated creation goes to the demo merchant
//! merchant_data = { callback_url = "{notify_url}" } # the demo merchant's plugin data
//!
//! [create]
//! say = "Create an invoice of 10 USDT:"
//! run = "curl -sS -X POST {public_url}/api/v1/invoices/create -H 'Authorization: Bearer {credential.bearer}' …"
//! invoice = "/invoice_id"               # JSON pointer: the invoice id or its checkout URL in the answer
//!
//! [status]
//! say = "Its status:"
//! run = "curl -sS {public_url}/api/v1/invoices/$INVOICE -H 'Authorization: Bearer {credential.bearer}'"
//! ```
//!
//! # Placeholders
//!
//! `{name}` in `run` and in the strings of `settings` and `merchant_data` is replaced by `polypay dev`; any
//! other `{…}` (a JSON body's braces) is left alone, and an unknown name is an error that
//! names the file. Names: `public_url`, `network`, `chain_id`, `token`, `token_symbol`,
//! `payment_contract`, `recipient` (the demo merchant's receiving address), `notify_url`
//! (where the demo's callbacks go), `return_url` (the demo shop page payers come back to);
//! in `run` also `merchant_id`, `credential.<kind>` (the secret of the demo merchant's
//! credential of that kind, as the plugin's manifest declares it) and
//! `credential.<kind>.public_id`. Commands after `create` use the shell variable
//! `$INVOICE`, which the walkthrough tells the reader to set from the create answer.
//!
//! # Chains
//!
//! `chain = "tron"` declares a demo on the dev TRON node (see [`super::tron_node`]). Its
//! chain placeholders are TRON's: `network` is `tron-dev`, `token` the USDT-TRC20
//! contract and `recipient` the demo merchant's receiving address, both base58;
//! `chain_id` and `payment_contract` are EVM-only (using them is an unknown placeholder).
//! Every demo may also name the dev TRON chain as `tron_network`, `tron_token` and
//! `tron_recipient` (a demo on the EVM chain that also offers TRC20, like pay-orders).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file name of a demo declaration inside a plugin crate.
pub const DEMO_FILE: &str = "demo.toml";

/// The shell variable walkthrough commands use for the invoice created first.
pub const INVOICE_VARIABLE: &str = "INVOICE";

/// Why the dialects could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("{}: unknown placeholder {{{name}}} in {field}", path.display())]
    UnknownPlaceholder {
        path: PathBuf,
        field: String,
        name: String,
    },
}

/// The local chain a demo runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DemoChain {
    /// The anvil dev chain.
    #[default]
    Evm,
    /// The dev TRON node.
    Tron,
}

/// `plugins/<name>/demo.toml`. See the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoSpec {
    /// One line saying what the dialect is.
    pub about: String,
    #[serde(default)]
    pub chain: DemoChain,
    /// The demo merchant's name.
    pub merchant: String,
    /// The plugin's settings in the dev config.
    #[serde(default = "empty_settings")]
    pub settings: serde_json::Value,
    /// Attribute unauthenticated invoice creation to the demo merchant.
    #[serde(default)]
    pub default_merchant: bool,
    /// The demo merchant's plugin data (a dialect's per-merchant settings, such as a
    /// callback URL), rendered with the chain placeholders when the merchant is created.
    #[serde(default = "empty_settings")]
    pub merchant_data: serde_json::Value,
    pub create: DemoStep,
    #[serde(default)]
    pub status: Option<DemoStep>,
}

/// One walkthrough step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoStep {
    /// What the step does, one sentence.
    pub say: String,
    /// The shell command.
    pub run: String,
    /// For `create`: a JSON pointer to the invoice id, or its checkout page URL, in the
    /// command's JSON answer.
    #[serde(default)]
    pub invoice: Option<String>,
}

fn empty_settings() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// A dialect plugin crate under `plugins/`.
#[derive(Debug, Clone)]
pub struct Dialect {
    /// The directory name, which is also the name the plugin is mounted under.
    pub name: String,
    pub dir: PathBuf,
    /// Its `.wasm` component (it may not be built yet).
    pub wasm: PathBuf,
    /// None when the crate has no `demo.toml`.
    pub demo: Option<DemoSpec>,
}

/// The dialect plugin crates in `plugins_dir`: every direct subdirectory whose
/// `Cargo.toml` builds a `cdylib`, sorted by name, with the component path it builds to
/// in `wasm_dir` (`<package name with _ for ->.wasm`) and its demo declaration.
pub fn discover(plugins_dir: &Path, wasm_dir: &Path) -> Result<Vec<Dialect>, DemoError> {
    let entries = std::fs::read_dir(plugins_dir).map_err(|source| DemoError::Read {
        path: plugins_dir.to_path_buf(),
        source,
    })?;
    let mut dialects = Vec::new();
    for entry in entries.flatten() {
        let dir = entry.path();
        let manifest = dir.join("Cargo.toml");
        if !manifest.is_file() {
            continue;
        }
        let Some(package) = component_package(&manifest)? else {
            continue;
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        let demo_path = dir.join(DEMO_FILE);
        let demo = if demo_path.is_file() {
            Some(read_demo(&demo_path)?)
        } else {
            None
        };
        dialects.push(Dialect {
            wasm: wasm_dir.join(format!("{}.wasm", package.replace('-', "_"))),
            name,
            dir,
            demo,
        });
    }
    dialects.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(dialects)
}

/// The package name of a crate that builds a WebAssembly component (`cdylib`).
fn component_package(manifest: &Path) -> Result<Option<String>, DemoError> {
    let text = read(manifest)?;
    let invalid = |message: String| DemoError::Invalid {
        path: manifest.to_path_buf(),
        message,
    };
    let parsed: toml::Table = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    let is_component = parsed
        .get("lib")
        .and_then(|lib| lib.get("crate-type"))
        .and_then(|types| types.as_array())
        .is_some_and(|types| types.iter().any(|t| t.as_str() == Some("cdylib")));
    if !is_component {
        return Ok(None);
    }
    parsed
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.as_str())
        .map(|n| Some(n.to_string()))
        .ok_or_else(|| invalid("no package.name".into()))
}

fn read(path: &Path) -> Result<String, DemoError> {
    std::fs::read_to_string(path).map_err(|source| DemoError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and checks one demo declaration.
pub fn read_demo(path: &Path) -> Result<DemoSpec, DemoError> {
    parse_demo(path, &read(path)?)
}

fn parse_demo(path: &Path, text: &str) -> Result<DemoSpec, DemoError> {
    let invalid = |message: String| DemoError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let spec: DemoSpec = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    if !spec.settings.is_object() {
        return Err(invalid("settings must be a table".into()));
    }
    match spec.create.invoice.as_deref() {
        Some(pointer) if pointer.starts_with('/') => {}
        Some(pointer) => {
            return Err(invalid(format!(
                "create.invoice `{pointer}` is not a JSON pointer (it starts with /)"
            )));
        }
        None => {
            return Err(invalid(
                "create.invoice is missing: where the answer names the invoice".into(),
            ));
        }
    }
    Ok(spec)
}

/// Values for placeholders; see the module docs for the names.
#[derive(Debug, Clone, Default)]
pub struct Placeholders(BTreeMap<String, String>);

/// A well-formed placeholder no value was given for (its name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown placeholder `{{{0}}}`")]
pub struct UnknownPlaceholder(pub String);

impl Placeholders {
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.0.insert(name.into(), value.into());
        self
    }

    /// `text` with every `{name}` replaced. `{` followed by anything but a placeholder
    /// name and `}` is left as it is; a well-formed but unknown name is an error.
    pub fn render(&self, text: &str) -> Result<String, UnknownPlaceholder> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let name_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
                .unwrap_or(after.len());
            let name = &after[..name_len];
            let is_placeholder = name.starts_with(|c: char| c.is_ascii_lowercase())
                && after[name_len..].starts_with('}');
            if !is_placeholder {
                out.push('{');
                rest = after;
                continue;
            }
            out.push_str(
                self.0
                    .get(name)
                    .ok_or_else(|| UnknownPlaceholder(name.to_string()))?,
            );
            rest = &after[name_len + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Every string in `value` rendered.
    pub fn render_json(
        &self,
        value: &serde_json::Value,
    ) -> Result<serde_json::Value, UnknownPlaceholder> {
        use serde_json::Value;
        Ok(match value {
            Value::String(s) => Value::String(self.render(s)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.render_json(v))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.render_json(v)?)))
                    .collect::<Result<_, UnknownPlaceholder>>()?,
            ),
            other => other.clone(),
        })
    }
}

/// A JSON pointer as a reader says it: `/data/payment_id` → `data.payment_id`.
pub fn pointer_words(pointer: &str) -> String {
    pointer.trim_start_matches('/').replace('/', ".")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholders() -> Placeholders {
        let mut p = Placeholders::default();
        p.set("public_url", "http://127.0.0.1:8080")
            .set("credential.bearer", "tok");
        p
    }

    #[test]
    fn placeholders_fill_names_and_leave_json_braces_alone() {
        let text = r#"curl {public_url}/x -H 'Authorization: Bearer {credential.bearer}' -d '{"a": {"b": 1}, "c": {}}'"#;
        assert_eq!(
            placeholders().render(text).unwrap(),
            r#"curl http://127.0.0.1:8080/x -H 'Authorization: Bearer tok' -d '{"a": {"b": 1}, "c": {}}'"#
        );
        assert_eq!(
            placeholders().render("{ public_url}").unwrap(),
            "{ public_url}"
        );
        assert_eq!(placeholders().render("trailing {").unwrap(), "trailing {");
    }

    #[test]
    fn unknown_placeholder_is_an_error_naming_it() {
        assert_eq!(
            placeholders().render("{public_ur}").unwrap_err(),
            UnknownPlaceholder("public_ur".into())
        );
    }

    #[test]
    fn settings_strings_are_rendered_inside_tables_and_lists() {
        let settings =
            serde_json::json!({ "base": "{public_url}/x", "n": 3, "l": ["{credential.bearer}"] });
        assert_eq!(
            placeholders().render_json(&settings).unwrap(),
            serde_json::json!({ "base": "http://127.0.0.1:8080/x", "n": 3, "l": ["tok"] })
        );
    }

    #[test]
    fn demo_declaration_needs_a_json_pointer_to_the_invoice() {
        let base = "about = \"x\"\nmerchant = \"m\"\n[create]\nsay = \"s\"\nrun = \"r\"\n";
        let err = parse_demo(Path::new("d.toml"), base)
            .unwrap_err()
            .to_string();
        assert!(err.contains("create.invoice is missing"), "{err}");
        let err = parse_demo(Path::new("d.toml"), &format!("{base}invoice = \"id\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a JSON pointer"), "{err}");
        let spec = parse_demo(Path::new("d.toml"), &format!("{base}invoice = \"/id\"\n")).unwrap();
        assert_eq!(spec.chain, DemoChain::Evm);
        assert_eq!(spec.settings, serde_json::json!({}));
    }

    #[test]
    fn unknown_keys_in_a_demo_declaration_are_refused() {
        let text = "about = \"x\"\nmerchant = \"m\"\nmerchnt = \"typo\"\n[create]\nsay = \"s\"\nrun = \"r\"\ninvoice = \"/id\"\n";
        let err = parse_demo(Path::new("d.toml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("merchnt"), "{err}");
    }

    #[test]
    fn shipped_demo_declarations_parse() {
        let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
        let dialects = discover(&plugins, Path::new("/wasm")).unwrap();
        assert!(
            dialects
                .iter()
                .any(|d| d.name == "trino" && d.demo.is_some()),
            "{dialects:?}"
        );
        for dialect in dialects {
            assert_eq!(
                dialect.wasm.parent(),
                Some(Path::new("/wasm")),
                "{dialect:?}"
            );
        }
    }

    #[test]
    fn pointers_read_as_dotted_paths() {
        assert_eq!(pointer_words("/data/payment_id"), "data.payment_id");
        assert_eq!(pointer_words("/invoice_id"), "invoice_id");
    }
}
