//! `polypay plugin new`, followed as a new plugin author would: generate the Rust
//! template into a temporary directory, build the component for wasm32-wasip2, check it
//! with `polypay plugin check`, and run its own tests: the unit tests on the SDK's native
//! harness and the integration test that mounts it in a real `polypay serve` and calls
//! its authenticated route over loopback HTTP.
//!
//! The generated crate gets this workspace's Cargo.lock (dependencies at the versions
//! polypay is tested with) and builds in the plugins' target dir
//! (`polypay_plugin_artifacts::WASM_TARGET_DIR`), so its dependencies are not compiled
//! again.

use std::path::Path;
use std::process::{Command, Output};

/// The name the guide uses (`plugin-sdk/README.md` shows this plugin's `src/lib.rs`).
const NAME: &str = "hello";

fn cargo(dir: &Path, args: &[&str]) -> Output {
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(dir)
        .args(args)
        .env(
            "CARGO_TARGET_DIR",
            polypay_plugin_artifacts::WASM_TARGET_DIR,
        )
        .env("POLYPAY_BIN", env!("CARGO_BIN_EXE_polypay"))
        // As plugins/artifacts builds the components, so the compiled dependencies match.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .output()
        .expect("run cargo");
    assert!(
        output.status.success(),
        "cargo {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn polypay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_polypay"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run polypay")
}

#[test]
fn a_generated_rust_plugin_builds_passes_check_and_its_own_tests_against_the_real_host() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join(NAME);
    let dir_arg = dir.to_str().unwrap();

    let created = polypay(&["plugin", "new", NAME, "--dir", dir_arg]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "openapi.json",
        "tests/harness.rs",
        "tests/host.rs",
        "README.md",
    ] {
        assert!(dir.join(file).is_file(), "{file} was not generated");
    }
    // Never over an existing plugin.
    let again = polypay(&["plugin", "new", NAME, "--dir", dir_arg]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // Generated code is formatted as `cargo fmt` would.
    let rustfmt = Command::new("rustfmt")
        .args(["--check", "--edition", "2024"])
        .args(["src/lib.rs", "tests/harness.rs", "tests/host.rs"])
        .current_dir(&dir)
        .output()
        .expect("run rustfmt");
    assert!(
        rustfmt.status.success(),
        "the template is not formatted:\n{}",
        String::from_utf8_lossy(&rustfmt.stdout)
    );

    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::copy(workspace.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();

    cargo(&dir, &["build", "--release", "--target", "wasm32-wasip2"]);
    let wasm = Path::new(polypay_plugin_artifacts::WASM_TARGET_DIR)
        .join("wasm32-wasip2/release/hello.wasm");
    let checked = polypay(&["plugin", "check", wasm.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{report}");
    assert!(
        report.contains(&format!("manifest: {NAME} 0.1.0")),
        "{report}"
    );
    assert!(report.contains("  POST /v1/invoices"), "{report}");
    assert!(
        !report.contains("note: its OpenAPI document does not describe"),
        "{report}"
    );

    let tested = cargo(&dir, &["test"]);
    let out = String::from_utf8_lossy(&tested.stdout);
    for test in [
        "creating_an_invoice_needs_a_known_api_key ... ok",
        "a_status_change_is_sent_signed_to_the_notify_url ... ok",
        "the_openapi_document_describes_every_route ... ok",
        "the_real_host_mounts_the_plugin_and_serves_its_authenticated_route ... ok",
    ] {
        assert!(out.contains(test), "{test} in:\n{out}");
    }
}
