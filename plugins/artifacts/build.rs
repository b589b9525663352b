//! Compiles every plugin crate to a `wasm32-wasip2` component and writes
//! `$OUT_DIR/artifacts.rs` with one `pub const NAME: &str = "/abs/path.wasm";`
//! per plugin (the pattern of wasmtime's `crates/test-programs/artifacts`).
//!
//! The nested cargo uses its own target dir, `<workspace>/target/wasm-plugins`,
//! so it never waits on the outer build's lock, and debug and test builds of
//! the host share one set of release-built components.
//!
//! Test programs whose shape Rust cannot produce (several memories in one
//! component) are WAT files: parsed, given the `plugin` world of the current
//! contract (`plugin-sdk/wit/0.2.0`), and encoded as components with `wit-component`.
//!
//! `DIALECTS` lists the dialect plugins (every crate outside
//! `plugins/test-programs/`): suites that must cover every dialect, such as the
//! fuzz suite, iterate it, so a new dialect joins them by being listed here.
//!
//! JavaScript plugins (`JS_PLUGINS`) are compiled with componentize-js by
//! `plugins/js/componentize.mjs` (Node.js, and the root `node_modules` that
//! `scripts/install-test-tools.sh` installs from package-lock.json) into
//! `<workspace>/target/wasm-plugins/js/`. A JavaScript component embeds a whole
//! engine (about 14 MB) and takes tens of seconds to build, so it is rebuilt only
//! when one of its inputs is newer than it. They are listed in `JS_DIALECTS`, apart
//! from `DIALECTS`.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every plugin crate: (constant name, package name, crate directory relative
/// to the workspace root). Adding a dialect plugin is adding one line here.
const PLUGINS: &[(&str, &str, &str)] = &[
    ("TRINO", "polypay-trino", "plugins/trino"),
    ("PAY_ORDERS", "polypay-pay-orders", "plugins/pay-orders"),
    ("WOPAY", "polypay-wopay", "plugins/wopay"),
    ("TRON_PHP", "polypay-tron-php", "plugins/tron-php"),
    ("BHOP_PAY", "polypay-bhop-pay", "plugins/bhop-pay"),
    (
        "TEST_ECHO",
        "polypay-test-echo",
        "plugins/test-programs/echo",
    ),
    (
        "TEST_FAULTS",
        "polypay-test-faults",
        "plugins/test-programs/faults",
    ),
    (
        "TEST_ROGUE",
        "polypay-test-rogue",
        "plugins/test-programs/rogue",
    ),
    // Built against the released polypay:plugin@0.1.0 (not the SDK): the host must keep
    // loading it.
    (
        "TEST_COMPAT_V0_1",
        "polypay-test-compat-v0-1",
        "plugins/test-programs/compat-v0-1",
    ),
];

/// JavaScript plugins: (constant name, plugin directory relative to the workspace root,
/// entry module relative to it). The component is `<target>/js/<directory name>.wasm`.
const JS_PLUGINS: &[(&str, &str, &str)] = &[("EPUSDT_JS", "plugins/epusdt-js", "src/plugin.js")];

/// The script that compiles a JavaScript plugin, and what else its output depends on.
const JS_BUILD_INPUTS: &[&str] = &["plugins/js/componentize.mjs", "package-lock.json"];

/// WAT test programs: (constant name, file relative to the workspace root).
const WAT_PLUGINS: &[(&str, &str)] = &[(
    "TEST_MULTI_MEMORY",
    "plugins/test-programs/multi-memory/plugin.wat",
)];

const TARGET: &str = "wasm32-wasip2";

/// Initial linear memory of every plugin, in bytes (a multiple of the 64 KiB wasm page).
/// The default (1 MiB of stack plus the data, about 1.3 MiB) leaves a few hundred KiB of
/// heap, so a request building a larger response grows memory; with 4 MiB it does not.
/// Pages a request does not touch cost nothing (the instance pool maps them lazily). A
/// plugin's `memory_mb` must be at least this (the default is 64).
const INITIAL_MEMORY: u64 = 4 << 20;

/// The WIT of the contract version the SDK targets, for the WAT test programs.
const CURRENT_WIT: &str = "plugin-sdk/wit/0.2.0";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest_dir
        .join("../..")
        .canonicalize()
        .expect("workspace root exists");
    let target_dir = workspace.join("target").join("wasm-plugins");

    for path in [
        "plugin-sdk/src",
        "plugin-sdk/wit",
        "plugin-sdk/Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(path).display());
    }
    for (_, _, dir) in PLUGINS {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    for (_, file) in WAT_PLUGINS {
        println!("cargo:rerun-if-changed={}", workspace.join(file).display());
    }
    for (_, dir, _) in JS_PLUGINS {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    for file in JS_BUILD_INPUTS {
        println!("cargo:rerun-if-changed={}", workspace.join(file).display());
    }

    require_target_installed();

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace)
        .args(["build", "--release", "--target", TARGET])
        .env("CARGO_TARGET_DIR", &target_dir)
        // Flags meant for the host build must not leak into the wasm build.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        // (the plugins' own link flags are passed explicitly)
        .env(
            "RUSTFLAGS",
            format!("-C link-arg=--initial-memory={INITIAL_MEMORY}"),
        )
        .env_remove("CARGO_BUILD_TARGET")
        // `cargo clippy` of the host wraps rustc in clippy-driver; the plugins are
        // linted by running clippy on their own crates, not from this build.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        // Small components compile faster in the host; plugins need no debug info.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo");
    for (_, package, _) in PLUGINS {
        cmd.args(["-p", package]);
    }
    let status = cmd
        .status()
        .expect("failed to run the nested `cargo build` for the plugins");
    if !status.success() {
        panic!("building the plugin components failed ({status}); see the cargo output above");
    }

    let mut out = String::from("// Generated by plugins/artifacts/build.rs.\n\n");
    let mut all = String::new();
    let mut dialects = String::new();
    for (constant, package, dir) in PLUGINS {
        let wasm = component_path(&target_dir, package);
        assert!(
            wasm.exists(),
            "nested cargo did not produce {}",
            wasm.display()
        );
        writeln!(out, "/// The `{package}` component.").unwrap();
        writeln!(
            out,
            "pub const {constant}: &str = {:?};",
            wasm.display().to_string()
        )
        .unwrap();
        writeln!(all, "    ({package:?}, {constant}),").unwrap();
        if !dir.starts_with("plugins/test-programs/") {
            writeln!(dialects, "    ({package:?}, {constant}),").unwrap();
        }
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    for (constant, file) in WAT_PLUGINS {
        let wasm = encode_wat_plugin(&workspace, &workspace.join(file), &out_dir);
        writeln!(out, "/// The component encoded from `{file}`.").unwrap();
        writeln!(
            out,
            "pub const {constant}: &str = {:?};",
            wasm.display().to_string()
        )
        .unwrap();
    }
    let mut js_dialects = String::new();
    for (constant, dir, entry) in JS_PLUGINS {
        let wasm = build_js_plugin(&workspace, &target_dir, dir, entry);
        let name = Path::new(dir)
            .file_name()
            .expect("a plugin directory")
            .to_string_lossy()
            .into_owned();
        writeln!(out, "/// The `{name}` component (JavaScript, `{dir}`).").unwrap();
        writeln!(
            out,
            "pub const {constant}: &str = {:?};",
            wasm.display().to_string()
        )
        .unwrap();
        writeln!(js_dialects, "    ({name:?}, {constant}),").unwrap();
    }
    writeln!(
        out,
        "\n/// The JavaScript dialect plugins: (plugin name, path)."
    )
    .unwrap();
    writeln!(
        out,
        "pub const JS_DIALECTS: &[(&str, &str)] = &[\n{js_dialects}];"
    )
    .unwrap();
    writeln!(
        out,
        "\n/// The target dir the components are built in (`--target {TARGET} --release`): \
         a build of another plugin crate given it reuses the compiled dependencies."
    )
    .unwrap();
    writeln!(
        out,
        "pub const WASM_TARGET_DIR: &str = {:?};",
        target_dir.display().to_string()
    )
    .unwrap();
    writeln!(
        out,
        "\n/// Every plugin crate's component: (package name, path)."
    )
    .unwrap();
    writeln!(out, "pub const ALL: &[(&str, &str)] = &[\n{all}];").unwrap();
    writeln!(
        out,
        "\n/// The dialect plugins (every plugin crate but the test programs): (package name, path)."
    )
    .unwrap();
    writeln!(
        out,
        "pub const DIALECTS: &[(&str, &str)] = &[\n{dialects}];"
    )
    .unwrap();
    std::fs::write(out_dir.join("artifacts.rs"), out).expect("write artifacts.rs");
}

/// Encodes the core module in `file` (WAT) as a component of the `plugin` world.
fn encode_wat_plugin(workspace: &Path, file: &Path, out_dir: &Path) -> PathBuf {
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
        panic!("{}: {what}: {e:#}", file.display())
    };
    let mut module = wat::parse_file(file).unwrap_or_else(|e| fail("not valid WAT", &e));
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_dir(workspace.join(CURRENT_WIT))
        .unwrap_or_else(|e| fail("reading the WIT", &e));
    let world = resolve
        .select_world(&[package], Some("plugin"))
        .unwrap_or_else(|e| fail("selecting the world", &e));
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap_or_else(|e| fail("embedding the world", &e));
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|e| e.validate(true).encode())
        .unwrap_or_else(|e| fail("encoding the component", &e));
    let name = file
        .parent()
        .and_then(Path::file_name)
        .expect("WAT plugins live in a directory of their own")
        .to_string_lossy()
        .replace('-', "_");
    let wasm = out_dir.join(format!("{name}.wasm"));
    std::fs::write(&wasm, component).expect("write the encoded component");
    wasm
}

/// Compiles the JavaScript plugin in `dir` (entry module `entry`) unless its component is
/// newer than every input; returns the component's path.
fn build_js_plugin(workspace: &Path, target_dir: &Path, dir: &str, entry: &str) -> PathBuf {
    let name = Path::new(dir).file_name().expect("a plugin directory");
    let wasm = target_dir
        .join("js")
        .join(format!("{}.wasm", name.to_string_lossy()));
    let mut inputs = vec![workspace.join(dir), workspace.join(CURRENT_WIT)];
    inputs.extend(JS_BUILD_INPUTS.iter().map(|f| workspace.join(f)));
    let built = std::fs::metadata(&wasm).and_then(|m| m.modified()).ok();
    if built.is_some_and(|built| inputs.iter().all(|i| newest_mtime(i) <= built)) {
        return wasm;
    }
    if !workspace
        .join("node_modules/@bytecodealliance/componentize-js")
        .is_dir()
    {
        panic!(
            "\n\nThe JavaScript plugin {dir} needs componentize-js in node_modules.\n\
             Run `scripts/install-test-tools.sh` (or `npm install`) at the repository root.\n\n"
        );
    }
    let status = Command::new("node")
        .current_dir(workspace)
        .arg("plugins/js/componentize.mjs")
        .arg(Path::new(dir).join(entry))
        .arg(&wasm)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run `node` to build {dir} (is Node.js installed?): {e}")
        });
    if !status.success() {
        panic!("building the JavaScript plugin {dir} failed ({status}); see the output above");
    }
    wasm
}

/// The newest modification time of `path` and, for a directory, everything under it.
fn newest_mtime(path: &Path) -> std::time::SystemTime {
    let own = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(std::time::SystemTime::UNIX_EPOCH);
    let children = std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name() != "node_modules")
        .map(|e| newest_mtime(&e.path()));
    children.fold(own, std::cmp::max)
}

fn component_path(target_dir: &Path, package: &str) -> PathBuf {
    target_dir
        .join(TARGET)
        .join("release")
        .join(format!("{}.wasm", package.replace('-', "_")))
}

/// Fails with the fix spelled out when the wasm target's standard library is missing.
fn require_target_installed() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {rustc}: {e}"));
    let libdir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if !output.status.success()
        || !libdir.is_dir()
        || std::fs::read_dir(&libdir).is_ok_and(|mut d| d.next().is_none())
    {
        panic!(
            "\n\nThe Rust target `{TARGET}` is not installed, so the polypay plugins cannot be built.\n\
             Run `rustup target add {TARGET}` and build again.\n\n"
        );
    }
}
