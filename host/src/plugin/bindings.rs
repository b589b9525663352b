//! Host-side bindings generated from `plugin-sdk/wit/<version>/` (world `plugin`), one
//! module per supported contract version.
//!
//! [`v0_2`] (`polypay:plugin@0.2.0`) is the current contract: every capability is
//! implemented once, against its types, and this module re-exports it so the rest of the
//! host names `bindings::polypay::plugin::...` without a version. [`v0_1`]
//! (`polypay:plugin@0.1.0`) is generated only for what changed in 0.2.0: its interfaces
//! that are identical in both versions (`types`, `context`, `merchants`, `chains`,
//! `rates`, `kv`, `rate-limit`, `clock`, `random`, `crypto`, `log`) are mapped onto the
//! 0.2.0 modules with bindgen's `with`, so their types are the very same Rust types and
//! their host implementations are linked under the 0.1.0 names unchanged
//! (`super::version`). `invoices`, `webhooks` and `plugin-types` changed shape: they get
//! their own 0.1.0 types, converted to and from 0.2.0 at the boundary
//! (`super::compat`).
//!
//! Imports that touch storage are `async` on the host (the instance's fiber
//! suspends while the query runs); all imports are `trappable`, following
//! Spin: a host function returns `wasmtime::Result<Result<T, HostError>>`,
//! where the outer error is a host bug and traps the instance (the request
//! becomes a 500) and the inner error is what the guest sees.

/// `polypay:plugin@0.2.0`, the current contract.
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../plugin-sdk/wit/0.2.0",
        world: "plugin",
        imports: {
            "polypay:plugin/context": trappable,
            "polypay:plugin/clock": trappable,
            "polypay:plugin/random": trappable,
            "polypay:plugin/log": trappable,
            "polypay:plugin/rate-limit": trappable,
            "polypay:plugin/money": trappable,
            default: async | trappable,
        },
        exports: { default: async },
    });
}

/// `polypay:plugin@0.1.0`, released; served through the 0.2.0 capabilities.
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../plugin-sdk/wit/0.1.0",
        world: "plugin",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "polypay:plugin/types@0.1.0": super::v0_2::polypay::plugin::types,
            "polypay:plugin/context@0.1.0": super::v0_2::polypay::plugin::context,
            "polypay:plugin/merchants@0.1.0": super::v0_2::polypay::plugin::merchants,
            "polypay:plugin/chains@0.1.0": super::v0_2::polypay::plugin::chains,
            "polypay:plugin/rates@0.1.0": super::v0_2::polypay::plugin::rates,
            "polypay:plugin/kv@0.1.0": super::v0_2::polypay::plugin::kv,
            "polypay:plugin/rate-limit@0.1.0": super::v0_2::polypay::plugin::rate_limit,
            "polypay:plugin/clock@0.1.0": super::v0_2::polypay::plugin::clock,
            "polypay:plugin/random@0.1.0": super::v0_2::polypay::plugin::random,
            "polypay:plugin/crypto@0.1.0": super::v0_2::polypay::plugin::crypto,
            "polypay:plugin/log@0.1.0": super::v0_2::polypay::plugin::log,
        },
    });
}

pub use v0_2::polypay::plugin::types::HostError;
pub use v0_2::*;
