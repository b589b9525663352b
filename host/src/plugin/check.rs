//! `polypay plugin check PATH.wasm`: what a component is, against the plugin contract,
//! in plain words, before an operator mounts it.
//!
//! [`check`] reads the component's imports and exports, tells its contract version,
//! calls its `manifest()` the way start-up does (no storage: a manifest that touches
//! storage fails here as it would there), and lists every violation it finds rather than
//! stopping at the first: an unsupported or mixed WIT version, an import the host does not
//! provide (`wasi:sockets`, `wasi:http`, ...), a missing export, and, in the manifest, bad
//! credential templates, an OpenAPI document that is not OpenAPI 3, invalid routes,
//! routes that conflict with each other or claim a path the host serves itself. Decision:
//! routes the OpenAPI document does not mention are a note, not a violation (a document
//! is optional and the host serves the plugin either way).

use std::fmt::Write as _;
use std::path::Path;

use super::bindings::polypay::plugin::plugin_types::Manifest;
use super::config::PluginConfig;
use super::runtime::RuntimeInner;
use super::services::PluginServices;
use super::version::{self, WitVersion};
use super::{PluginError, capabilities, engine, openapi, routes};

/// The exports every supported version's `plugin` world has.
const REQUIRED_EXPORTS: &[&str] = &["manifest", "handle", "render-webhook"];

/// The exports 0.2.0 adds: the ledger's callbacks (the SDK's `export_plugin!` gives every
/// plugin a default that renders none).
const REQUIRED_EXPORTS_0_2: &[&str] = &["render-ledger-webhook"];

/// What `polypay plugin check` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// The contract version, when it could be told.
    pub contract: Option<WitVersion>,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    pub manifest: Option<Manifest>,
    /// Every way the component breaks the contract; empty when it can be mounted.
    pub violations: Vec<String>,
    /// Worth knowing, but no obstacle to mounting it.
    pub notes: Vec<String>,
}

impl CheckReport {
    /// Whether the component can be mounted.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Checks the component at `path` (see the module docs).
pub async fn check(path: &Path) -> CheckReport {
    let mut report = CheckReport::default();
    let engine = match engine::shared() {
        Ok(engine) => engine,
        Err(e) => {
            report
                .violations
                .push(format!("the host cannot run it: {e}"));
            return report;
        }
    };
    let component = {
        let (engine, path) = (engine.clone(), path.to_path_buf());
        tokio::task::spawn_blocking(move || engine::component(&engine, &path)).await
    };
    let component = match component {
        Ok(Ok(component)) => component,
        Ok(Err(e)) => {
            report
                .violations
                .push(format!("it is not a loadable WebAssembly component: {e}"));
            return report;
        }
        Err(e) => {
            report.violations.push(format!("compiling it failed: {e}"));
            return report;
        }
    };
    let ty = component.component_type();
    report.imports = ty
        .imports(&engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    report.exports = ty
        .exports(&engine)
        .map(|(name, _)| name.to_owned())
        .collect();

    // Imports: each foreign one on its own line, then the contract version.
    let (ours, foreign): (Vec<&str>, Vec<&str>) = report
        .imports
        .iter()
        .map(String::as_str)
        .partition(|i| i.starts_with("polypay:plugin/"));
    for import in foreign {
        if let Err(e) = version::detect([import]) {
            report.violations.push(e.to_string());
        }
    }
    match version::detect(ours) {
        Ok(contract) => report.contract = contract,
        Err(e) => report.violations.push(e.to_string()),
    }
    for export in REQUIRED_EXPORTS {
        if !report.exports.iter().any(|e| e == export) {
            report.violations.push(format!(
                "it does not export `{export}`: a plugin exports `manifest`, `handle` and \
                 `render-webhook` (build it with polypay-plugin-sdk's `export_plugin!`)"
            ));
        }
    }
    if report.contract == Some(WitVersion::V0_2) {
        for export in REQUIRED_EXPORTS_0_2 {
            if !report.exports.iter().any(|e| e == export) {
                report.violations.push(format!(
                    "it does not export `{export}`, which contract 0.2.0 requires (the SDK's \
                     `export_plugin!` adds a default; a JavaScript plugin exports \
                     `renderLedgerWebhook`)"
                ));
            }
        }
    }
    if !report.violations.is_empty() {
        return report;
    }

    // Load it as start-up does, up to its manifest.
    let config = PluginConfig::new("checked", path);
    let services = PluginServices::new("http://127.0.0.1");
    let inner = match RuntimeInner::load_manifests(std::slice::from_ref(&config), services).await {
        Ok(inner) => inner,
        Err(PluginError::Contract { source, .. }) => {
            report.violations.push(source.to_string());
            return report;
        }
        Err(PluginError::Load { reason, .. }) => {
            report.violations.push(reason);
            return report;
        }
        Err(e) => {
            report.violations.push(e.to_string());
            return report;
        }
    };
    let plugin = &inner.plugins[0];
    report.contract = Some(plugin.version);
    let manifest = plugin.manifest.clone();
    check_manifest(&manifest, &mut report);
    report.manifest = Some(manifest);
    report
}

fn check_manifest(manifest: &Manifest, report: &mut CheckReport) {
    if manifest.name.trim().is_empty() {
        report
            .violations
            .push("its manifest has an empty name".to_owned());
    }
    if manifest.routes.is_empty() {
        report
            .notes
            .push("its manifest declares no route: it serves nothing".to_owned());
    }
    if let Err(e) = capabilities::check_credential_templates(&manifest.credentials) {
        report
            .violations
            .push(format!("its manifest declares a bad credential: {e}"));
    }
    if let Some(schema) = &manifest.settings_schema
        && serde_json::from_str::<serde_json::Value>(schema).is_err()
    {
        report
            .violations
            .push("its settings schema is not JSON".to_owned());
    }
    match manifest.openapi.as_deref().map(openapi::check) {
        None => report.notes.push("it ships no OpenAPI document".to_owned()),
        Some(Err(e)) => report
            .violations
            .push(format!("its OpenAPI document is refused: {e}")),
        Some(Ok(document)) => {
            for route in openapi::undocumented_routes(&document, &manifest.routes) {
                report
                    .notes
                    .push(format!("its OpenAPI document does not describe {route}"));
            }
        }
    }

    // Routes: each on its own, then together (conflicts within the manifest).
    let declared: Vec<(Vec<String>, String)> = manifest
        .routes
        .iter()
        .map(|r| (r.methods.clone(), r.path.clone()))
        .collect();
    let mut valid = Vec::new();
    for route in &declared {
        match routes::claims(0, &manifest.name, "", std::slice::from_ref(route)) {
            Ok(_) => valid.push(route.clone()),
            Err(e) => report.violations.push(route_message(&e)),
        }
        if let Some(prefix) = crate::http::HOST_PUBLIC_PREFIXES
            .iter()
            .find(|p| route.1.starts_with(**p))
        {
            report.violations.push(format!(
                "route `{}` is under {prefix}, which the host serves itself (unless the \
                 operator mounts the plugin under a prefix)",
                route.1
            ));
        }
    }
    let names = [manifest.name.clone()];
    match routes::claims(0, &manifest.name, "", &valid)
        .and_then(|claims| routes::check_conflicts(&claims, &names))
    {
        Ok(()) => {}
        Err(e) => report.violations.push(route_message(&e)),
    }
}

/// A route error without the plugin's name (the report is about one plugin).
fn route_message(error: &routes::RouteError) -> String {
    match error {
        routes::RouteError::Invalid { route, reason, .. } => {
            format!("route `{route}` is invalid: {reason}")
        }
        other => other.to_string(),
    }
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        match self.contract {
            Some(v) => writeln!(out, "contract: {v}")?,
            None => writeln!(out, "contract: unknown")?,
        }
        if let Some(m) = &self.manifest {
            writeln!(out, "manifest: {} {}", m.name, m.version)?;
            writeln!(out, "routes:")?;
            for route in &m.routes {
                writeln!(out, "  {} {}", route.methods.join(","), route.path)?;
            }
            match &m.settings_schema {
                Some(schema) => writeln!(out, "settings schema: {schema}")?,
                None => writeln!(out, "settings schema: none (the plugin takes no settings)")?,
            }
            let kinds: Vec<&str> = m.credentials.iter().map(|c| c.kind.as_str()).collect();
            if kinds.is_empty() {
                writeln!(out, "credentials: the host default (one api-key)")?;
            } else {
                writeln!(out, "credentials: {}", kinds.join(", "))?;
            }
            writeln!(
                out,
                "openapi: {}",
                if m.openapi.is_some() { "yes" } else { "none" }
            )?;
        }
        writeln!(out, "imports:")?;
        for import in &self.imports {
            writeln!(out, "  {import}")?;
        }
        writeln!(out, "exports:")?;
        for export in &self.exports {
            writeln!(out, "  {export}")?;
        }
        for note in &self.notes {
            writeln!(out, "note: {note}")?;
        }
        if self.violations.is_empty() {
            writeln!(out, "ok: the host can mount it")?;
        } else {
            for violation in &self.violations {
                writeln!(out, "violation: {violation}")?;
            }
            writeln!(
                out,
                "{} violation(s): the host would refuse it",
                self.violations.len()
            )?;
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::bindings::polypay::plugin::plugin_types::Route;

    fn manifest(routes: &[(&[&str], &str)]) -> Manifest {
        Manifest {
            name: "shop".into(),
            version: "1".into(),
            routes: routes
                .iter()
                .map(|(methods, path)| Route {
                    methods: methods.iter().map(|m| m.to_string()).collect(),
                    path: path.to_string(),
                })
                .collect(),
            settings_schema: None,
            credentials: Vec::new(),
            openapi: None,
        }
    }

    fn violations(m: &Manifest) -> Vec<String> {
        let mut report = CheckReport::default();
        check_manifest(m, &mut report);
        report.violations
    }

    #[test]
    fn routes_conflicting_within_the_manifest_are_violations() {
        let twice = manifest(&[(&["GET"], "/a/{id}"), (&["GET", "POST"], "/a/{id}")]);
        assert_eq!(
            violations(&twice),
            ["route `/a/{id}` is invalid: `GET` is declared twice"]
        );
        let renamed = manifest(&[(&["GET"], "/a/{id}"), (&["POST"], "/a/{name}")]);
        let found = violations(&renamed);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with("route `/a/{name}` is invalid"),
            "{found:?}"
        );
    }

    #[test]
    fn invalid_routes_and_host_paths_are_each_named() {
        let m = manifest(&[
            (&["GET"], "no-slash"),
            (&["FETCH"], "/b"),
            (&["GET"], "/pay/{id}"),
            (&["GET"], "/polypay/plugins"),
            (&["GET"], "/fine/{id}"),
        ]);
        let found = violations(&m);
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(found[0].contains("`no-slash`"), "{found:?}");
        assert!(found[1].contains("unsupported method `FETCH`"), "{found:?}");
        assert!(found[2].contains("under /pay/"), "{found:?}");
        assert!(found[3].contains("under /polypay/"), "{found:?}");
    }

    #[test]
    fn a_document_that_is_not_openapi_3_is_a_violation_and_gaps_are_notes() {
        let mut m = manifest(&[(&["GET"], "/a")]);
        m.openapi = Some(r#"{"swagger": "2.0"}"#.into());
        assert!(violations(&m)[0].starts_with("its OpenAPI document is refused"));
        m.openapi = Some(
            r#"{"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {}}"#.into(),
        );
        let mut report = CheckReport::default();
        check_manifest(&m, &mut report);
        assert!(report.violations.is_empty(), "{:?}", report.violations);
        assert_eq!(
            report.notes,
            ["its OpenAPI document does not describe GET /a"]
        );
    }
}
