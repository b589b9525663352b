//! Host-side bindings generated from `plugin-sdk/wit` (world `plugin`).
//!
//! Imports that touch storage are `async` on the host (the instance's fiber
//! suspends while the query runs); all imports are `trappable`, following
//! Spin: a host function returns `wasmtime::Result<Result<T, HostError>>`,
//! where the outer error is a host bug and traps the instance (the request
//! becomes a 500) and the inner error is what the guest sees.

wasmtime::component::bindgen!({
    path: "../plugin-sdk/wit",
    world: "plugin",
    imports: {
        "polypay:plugin/context": trappable,
        "polypay:plugin/clock": trappable,
        "polypay:plugin/random": trappable,
        "polypay:plugin/log": trappable,
        "polypay:plugin/rate-limit": trappable,
        default: async | trappable,
    },
    exports: { default: async },
});

pub use polypay::plugin::types::HostError;
