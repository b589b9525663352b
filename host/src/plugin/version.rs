//! Contract versions: which `polypay:plugin` version a component was built against,
//! linking every supported version into one linker, and calling a component's exports
//! whatever its version.
//!
//! Supported: [`SUPPORTED`] (`0.1.0`, released; `0.2.0`, current). The version is read
//! from the component's imports before linking: every `polypay:plugin/...` import names
//! it (`polypay:plugin/kv@0.1.0`), and every import must be one the host provides. A
//! component importing no `polypay:plugin` interface at all (it uses no capability) is
//! told apart by its exports instead: the newest version whose world it exports.
//! Refused at start-up, naming the plugin ([`ContractError`]): an unsupported version,
//! imports of two versions, an interface the version does not have, and any import that
//! is neither a supported `polypay:plugin` interface nor one of the WASI interfaces the
//! host links (`super::wasi::PROVIDED`) — `wasi:sockets`, `wasi:http`, ...
//!
//! Every capability is implemented once, for 0.2.0. A 0.1.0 component is served by the
//! same implementations: the interfaces identical in both versions are linked under
//! their 0.1.0 names as they are (the WIT types are structural, so the 0.2.0 functions
//! type-check against the 0.1.0 imports; see `bindings`), and the interfaces that
//! changed (`invoices`, `webhooks`, and the exports' `invoice-event`) go through the
//! conversions of `super::compat`.

use super::bindings::{v0_1, v0_2};
use super::compat::Adapt;
use super::runtime::{Call, CallOutput};
use super::state::PluginState;
use std::collections::BTreeSet;
use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Linker};

/// A contract version the host serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum WitVersion {
    /// `polypay:plugin@0.1.0`, released.
    V0_1,
    /// `polypay:plugin@0.2.0`, the current contract.
    V0_2,
}

/// Every version the host loads, oldest first.
pub const SUPPORTED: &[WitVersion] = &[WitVersion::V0_1, WitVersion::V0_2];

impl WitVersion {
    /// The package version, e.g. `"0.2.0"`.
    pub fn as_str(self) -> &'static str {
        match self {
            WitVersion::V0_1 => "0.1.0",
            WitVersion::V0_2 => "0.2.0",
        }
    }

    fn parse(version: &str) -> Option<WitVersion> {
        SUPPORTED.iter().copied().find(|v| v.as_str() == version)
    }

    /// Whether this version has the `polypay:plugin` interface `name`.
    fn has_interface(self, name: &str) -> bool {
        INTERFACES
            .iter()
            .any(|(interface, since)| *interface == name && *since <= self)
    }
}

/// Every `polypay:plugin` interface, with the version that introduced it.
const INTERFACES: &[(&str, WitVersion)] = &[
    ("types", WitVersion::V0_1),
    ("context", WitVersion::V0_1),
    ("merchants", WitVersion::V0_1),
    ("invoices", WitVersion::V0_1),
    ("chains", WitVersion::V0_1),
    ("rates", WitVersion::V0_1),
    ("kv", WitVersion::V0_1),
    ("rate-limit", WitVersion::V0_1),
    ("clock", WitVersion::V0_1),
    ("random", WitVersion::V0_1),
    ("crypto", WitVersion::V0_1),
    ("log", WitVersion::V0_1),
    ("webhooks", WitVersion::V0_1),
    ("plugin-types", WitVersion::V0_1),
    ("money", WitVersion::V0_2),
    ("two-factor", WitVersion::V0_2),
    ("ledger", WitVersion::V0_2),
];

impl std::fmt::Display for WitVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "polypay:plugin@{}", self.as_str())
    }
}

fn supported_list() -> String {
    SUPPORTED
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a component does not fit the plugin contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error(
        "it is built against polypay:plugin@{version}, which this host does not support \
         (supported: {supported}); rebuild it with a supported polypay-plugin-sdk",
        supported = supported_list()
    )]
    UnsupportedVersion { version: String },
    #[error(
        "it imports several versions of polypay:plugin ({}); a plugin is built against exactly one",
        versions.join(", ")
    )]
    MixedVersions { versions: Vec<String> },
    #[error("it imports `{import}`, which polypay:plugin@{version} does not have")]
    UnknownInterface { import: String, version: String },
    #[error(
        "it imports `{import}`, which the host does not provide: plugins get only the \
         polypay:plugin interfaces and the WASI the Rust standard library needs, with \
         nothing ambient (no network, no files, no environment)"
    )]
    ForbiddenImport { import: String },
    #[error(
        "it exports the `plugin` world of no supported version ({}): {detail}",
        supported_list()
    )]
    NotAPlugin { detail: String },
}

/// The contract version a component was built against, from its import names; `None`
/// when it imports no `polypay:plugin` interface (see [`pre`]).
pub fn detect<'a>(
    imports: impl IntoIterator<Item = &'a str>,
) -> Result<Option<WitVersion>, ContractError> {
    let mut versions = BTreeSet::new();
    let mut ours = Vec::new();
    for import in imports {
        if let Some(rest) = import.strip_prefix("polypay:plugin/") {
            let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
            versions.insert(version.to_owned());
            ours.push((import, interface, version));
            continue;
        }
        let name = import.split_once('@').map_or(import, |(name, _)| name);
        if !super::wasi::PROVIDED.contains(&name) {
            return Err(ContractError::ForbiddenImport {
                import: import.to_owned(),
            });
        }
    }
    if versions.len() > 1 {
        return Err(ContractError::MixedVersions {
            versions: versions.into_iter().collect(),
        });
    }
    let Some(version_text) = versions.into_iter().next() else {
        return Ok(None);
    };
    let version = WitVersion::parse(&version_text).ok_or(ContractError::UnsupportedVersion {
        version: version_text.clone(),
    })?;
    if let Some((import, _, _)) = ours
        .iter()
        .find(|(_, interface, _)| !version.has_interface(interface))
    {
        return Err(ContractError::UnknownInterface {
            import: (*import).to_owned(),
            version: version_text,
        });
    }
    Ok(Some(version))
}

/// Links every supported version's host interfaces (the WASI subset is linked by
/// `super::wasi`).
pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    type D = HasSelf<PluginState>;
    v0_2::Plugin::add_to_linker::<PluginState, D>(linker, |s| s)?;

    // 0.1.0: the interfaces 0.2.0 left unchanged, served by the same functions under
    // their 0.1.0 names.
    macro_rules! unchanged_in_0_1 {
        ($($module:ident => $name:literal),* $(,)?) => {$(
            v0_2::polypay::plugin::$module::add_to_linker_instance::<PluginState, D>(
                &mut linker.instance(concat!("polypay:plugin/", $name, "@0.1.0"))?,
                |s| s,
            )?;
        )*};
    }
    unchanged_in_0_1!(
        context => "context",
        merchants => "merchants",
        chains => "chains",
        rates => "rates",
        kv => "kv",
        rate_limit => "rate-limit",
        clock => "clock",
        random => "random",
        crypto => "crypto",
        log => "log",
    );
    // Interfaces of types only: an (empty) instance to import.
    linker.instance("polypay:plugin/types@0.1.0")?;
    linker.instance("polypay:plugin/plugin-types@0.1.0")?;
    // Changed in 0.2.0: converted (`compat`).
    v0_1::polypay::plugin::invoices::add_to_linker::<PluginState, D>(linker, |s| s)?;
    v0_1::polypay::plugin::webhooks::add_to_linker::<PluginState, D>(linker, |s| s)?;
    Ok(())
}

/// A component linked and checked against the exports of its version, ready to
/// instantiate.
pub(crate) enum PluginPre {
    V0_1(v0_1::PluginPre<PluginState>),
    V0_2(v0_2::PluginPre<PluginState>),
}

/// Why a component could not be prepared.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PrepareError {
    #[error(transparent)]
    Contract(#[from] ContractError),
    /// The linker refused it (an import the host lacks, of a provided interface).
    #[error("{0:#}")]
    Link(wasmtime::Error),
}

/// Checks `component`'s imports, links it and checks its exports against its version.
pub(crate) fn pre(
    linker: &Linker<PluginState>,
    component: &Component,
) -> Result<(PluginPre, WitVersion), PrepareError> {
    let ty = component.component_type();
    let engine = linker.engine();
    let version = detect(ty.imports(engine).map(|(name, _)| name))?;
    let instance_pre = linker
        .instantiate_pre(component)
        .map_err(PrepareError::Link)?;
    let as_v0_2 = |p| v0_2::PluginPre::new(p).map(PluginPre::V0_2);
    let as_v0_1 = |p| v0_1::PluginPre::new(p).map(PluginPre::V0_1);
    let not_a_plugin = |e: wasmtime::Error| ContractError::NotAPlugin {
        detail: format!("{e:#}"),
    };
    let prepared = match version {
        Some(WitVersion::V0_2) => (
            as_v0_2(instance_pre).map_err(not_a_plugin)?,
            WitVersion::V0_2,
        ),
        Some(WitVersion::V0_1) => (
            as_v0_1(instance_pre).map_err(not_a_plugin)?,
            WitVersion::V0_1,
        ),
        // No capability imported: the newest world whose exports it has.
        None => match as_v0_2(instance_pre.clone()) {
            Ok(p) => (p, WitVersion::V0_2),
            Err(_) => (
                as_v0_1(instance_pre).map_err(not_a_plugin)?,
                WitVersion::V0_1,
            ),
        },
    };
    Ok(prepared)
}

impl PluginPre {
    /// Instantiates the component in `store` without calling it (the dispatch benchmark).
    pub(crate) async fn instantiate(&self, store: &mut Store<PluginState>) -> wasmtime::Result<()> {
        match self {
            PluginPre::V0_2(pre) => pre.instantiate_async(&mut *store).await.map(drop),
            PluginPre::V0_1(pre) => pre.instantiate_async(&mut *store).await.map(drop),
        }
    }

    /// Instantiates the component in `store` and makes `call`, converting what crosses
    /// to and from its version.
    pub(crate) async fn call(
        &self,
        store: &mut Store<PluginState>,
        call: Call,
    ) -> wasmtime::Result<CallOutput> {
        Ok(match self {
            PluginPre::V0_2(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                match call {
                    Call::Manifest => CallOutput::Manifest(instance.call_manifest(store).await?),
                    Call::Handle(request) => {
                        CallOutput::Handle(instance.call_handle(store, &request).await?)
                    }
                    Call::RenderWebhook(event, attempt) => CallOutput::RenderWebhook(
                        instance.call_render_webhook(store, &event, attempt).await?,
                    ),
                    Call::RenderLedgerWebhook(event, attempt) => CallOutput::RenderLedgerWebhook(
                        instance
                            .call_render_ledger_webhook(store, &event, attempt)
                            .await?,
                    ),
                }
            }
            PluginPre::V0_1(pre) => {
                let instance = pre.instantiate_async(&mut *store).await?;
                match call {
                    Call::Manifest => {
                        CallOutput::Manifest(instance.call_manifest(store).await?.adapt())
                    }
                    Call::Handle(request) => {
                        CallOutput::Handle(instance.call_handle(store, &request).await?)
                    }
                    Call::RenderWebhook(event, attempt) => {
                        let event: v0_1::polypay::plugin::plugin_types::InvoiceEvent =
                            (*event).adapt();
                        CallOutput::RenderWebhook(
                            instance
                                .call_render_webhook(store, &event, attempt)
                                .await?
                                .adapt(),
                        )
                    }
                    // 0.1.0 has no ledger: nothing of a 0.1.0 plugin is on a ledger.
                    Call::RenderLedgerWebhook(..) => CallOutput::RenderLedgerWebhook(None),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect_all(imports: &[&str]) -> Result<Option<WitVersion>, ContractError> {
        detect(imports.iter().copied())
    }

    /// Every interface each version's WIT declares is in the version table, and
    /// nothing else: a component importing a real interface is never refused as unknown.
    #[test]
    fn the_interface_table_matches_each_versions_wit() {
        // Every `.wit` file of the version's directory (an interface may live in a file
        // of its own).
        let wit_of = |dir: &str| {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../plugin-sdk/wit")
                .join(dir);
            let mut text = String::new();
            for entry in std::fs::read_dir(&dir).expect("WIT directory") {
                let path = entry.expect("WIT directory entry").path();
                if path.extension().is_some_and(|e| e == "wit") {
                    text.push_str(&std::fs::read_to_string(&path).expect("WIT file"));
                    text.push('\n');
                }
            }
            text
        };
        let wits = [
            (WitVersion::V0_1, wit_of("0.1.0")),
            (WitVersion::V0_2, wit_of("0.2.0")),
        ];
        for (version, wit) in wits {
            let declared: Vec<&str> = wit
                .lines()
                .filter_map(|l| l.strip_prefix("interface "))
                .filter_map(|l| l.split_whitespace().next())
                .collect();
            assert!(declared.len() >= 14, "{version}: {declared:?}");
            for name in &declared {
                assert!(version.has_interface(name), "{version} lacks `{name}`");
            }
            let table: Vec<&str> = INTERFACES
                .iter()
                .filter(|(_, since)| *since <= version)
                .map(|(name, _)| *name)
                .collect();
            assert_eq!(
                table.len(),
                declared.len(),
                "{version}: {table:?} vs {declared:?}"
            );
        }
    }

    #[test]
    fn the_version_comes_from_the_polypay_imports() {
        let v1 = [
            "wasi:io/streams@0.2.6",
            "polypay:plugin/types@0.1.0",
            "polypay:plugin/kv@0.1.0",
        ];
        assert_eq!(detect_all(&v1), Ok(Some(WitVersion::V0_1)));
        let v2 = ["polypay:plugin/money@0.2.0", "wasi:cli/stdout@0.2.0"];
        assert_eq!(detect_all(&v2), Ok(Some(WitVersion::V0_2)));
        assert_eq!(detect_all(&["wasi:cli/exit@0.2.3"]), Ok(None));
    }

    #[test]
    fn unsupported_mixed_unknown_and_forbidden_imports_are_named() {
        assert_eq!(
            detect_all(&["polypay:plugin/kv@0.3.0"]),
            Err(ContractError::UnsupportedVersion {
                version: "0.3.0".into()
            })
        );
        assert_eq!(
            detect_all(&["polypay:plugin/kv@0.1.0", "polypay:plugin/money@0.2.0"]),
            Err(ContractError::MixedVersions {
                versions: vec!["0.1.0".into(), "0.2.0".into()]
            })
        );
        assert_eq!(
            detect_all(&["polypay:plugin/money@0.1.0"]),
            Err(ContractError::UnknownInterface {
                import: "polypay:plugin/money@0.1.0".into(),
                version: "0.1.0".into()
            })
        );
        for forbidden in [
            "wasi:sockets/tcp@0.2.0",
            "wasi:http/outgoing-handler@0.2.0",
            "wasi:filesystem/whatever@0.2.0",
            "evil:host/escape",
        ] {
            assert_eq!(
                detect_all(&["polypay:plugin/kv@0.2.0", forbidden]),
                Err(ContractError::ForbiddenImport {
                    import: forbidden.into()
                }),
                "{forbidden}"
            );
        }
        let message = ContractError::UnsupportedVersion {
            version: "9.0.0".into(),
        }
        .to_string();
        assert!(message.contains("supported: 0.1.0, 0.2.0"), "{message}");
    }
}
