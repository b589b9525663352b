//! `polypay plugin check PATH.wasm`, run as an author would: the in-tree plugins pass and
//! are described (contract, manifest, imports, exports); components breaking the contract
//! fail with every violation named in plain words and a non-zero exit code.

use std::process::Command;

use polypay_plugin_artifacts::{DIALECTS, TEST_COMPAT_V0_1};

/// Runs `polypay plugin check PATH`: (succeeded, stdout + stderr).
fn check(path: &std::path::Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_polypay"))
        .args(["plugin", "check"])
        .arg(path)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run polypay");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn wat_file(dir: &tempfile::TempDir, name: &str, wat: &str) -> std::path::PathBuf {
    let path = dir.path().join(format!("{name}.wasm"));
    std::fs::write(&path, wat::parse_str(wat).expect("valid component text")).unwrap();
    path
}

#[test]
fn every_dialect_passes_and_is_described() {
    for (package, wasm) in DIALECTS {
        let (ok, text) = check(wasm.as_ref());
        assert!(ok, "{package}: {text}");
        assert!(text.contains("contract: polypay:plugin@0.2.0"), "{text}");
        assert!(text.contains("ok: the host can mount it"), "{text}");
        assert!(text.contains("openapi: yes"), "{text}");
        assert!(text.contains("  polypay:plugin/invoices@0.2.0"), "{text}");
        assert!(text.contains("  handle"), "{text}");
        assert!(!text.contains("violation"), "{text}");
    }
    let (ok, text) = check(TEST_COMPAT_V0_1.as_ref());
    assert!(ok, "{text}");
    assert!(text.contains("contract: polypay:plugin@0.1.0"), "{text}");
    assert!(text.contains("openapi: none"), "{text}");
    assert!(
        text.contains("note: it ships no OpenAPI document"),
        "{text}"
    );
}

#[test]
fn the_manifest_of_a_dialect_is_listed_with_its_routes_and_settings() {
    let trino = DIALECTS
        .iter()
        .find(|(p, _)| *p == "polypay-trino")
        .unwrap()
        .1;
    let (ok, text) = check(trino.as_ref());
    assert!(ok, "{text}");
    assert!(text.contains("manifest: trino "), "{text}");
    assert!(text.contains("  POST /api/v1/invoices/create"), "{text}");
    assert!(text.contains("  GET /api/v1/invoices/{id}"), "{text}");
    assert!(text.contains("settings schema: {"), "{text}");
    assert!(text.contains("credentials: bearer"), "{text}");
}

#[test]
fn forbidden_imports_and_missing_exports_are_each_named_and_fail() {
    let dir = tempfile::tempdir().unwrap();
    let sneaky = wat_file(
        &dir,
        "sneaky",
        r#"(component
            (import "polypay:plugin/clock@0.2.0" (instance))
            (import "wasi:sockets/tcp@0.2.0" (instance))
            (import "wasi:http/outgoing-handler@0.2.0" (instance)))"#,
    );
    let (ok, text) = check(&sneaky);
    assert!(!ok, "{text}");
    for expected in [
        "violation: it imports `wasi:sockets/tcp@0.2.0`, which the host does not provide",
        "violation: it imports `wasi:http/outgoing-handler@0.2.0`, which the host does not provide",
        "violation: it does not export `manifest`",
        "violation: it does not export `handle`",
        "violation: it does not export `render-webhook`",
        "violation: it does not export `render-ledger-webhook`, which contract 0.2.0 requires",
        "6 violation(s)",
        "contract: polypay:plugin@0.2.0",
    ] {
        assert!(text.contains(expected), "{expected} in:\n{text}");
    }
}

#[test]
fn unsupported_and_mixed_versions_fail() {
    let dir = tempfile::tempdir().unwrap();
    let future = wat_file(
        &dir,
        "future",
        r#"(component (import "polypay:plugin/clock@0.3.0" (instance)))"#,
    );
    let (ok, text) = check(&future);
    assert!(!ok, "{text}");
    assert!(
        text.contains("built against polypay:plugin@0.3.0, which this host does not support"),
        "{text}"
    );
    assert!(text.contains("contract: unknown"), "{text}");

    let mixed = wat_file(
        &dir,
        "mixed",
        r#"(component
            (import "polypay:plugin/clock@0.1.0" (instance))
            (import "polypay:plugin/money@0.2.0" (instance)))"#,
    );
    let (ok, text) = check(&mixed);
    assert!(!ok, "{text}");
    assert!(
        text.contains("several versions of polypay:plugin"),
        "{text}"
    );
}

#[test]
fn a_file_that_is_no_component_fails_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.wasm");
    std::fs::write(&path, b"not wasm").unwrap();
    let (ok, text) = check(&path);
    assert!(!ok, "{text}");
    assert!(
        text.contains("violation: it is not a loadable WebAssembly component"),
        "{text}"
    );
}
