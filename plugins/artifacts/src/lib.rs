//! Paths of the plugin components, compiled by this crate's `build.rs`.
//!
//! Each constant is the absolute path of a `.wasm` component built for
//! `wasm32-wasip2` in release mode; `ALL` lists them with their package names.
//! Depend on this crate (usually as a dev-dependency) and `cargo test` builds
//! the plugins first. Requires `rustup target add wasm32-wasip2`.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
