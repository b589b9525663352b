//! Write polypay API dialect plugins.
//!
//! A polypay plugin is a WebAssembly component (target `wasm32-wasip2`) that
//! serves one merchant-facing API dialect. The host owns storage, chains, the
//! invoice lifecycle and webhook delivery; the plugin turns its dialect's
//! requests into host calls and host records into its dialect's responses.
//! The contract is the WIT package `polypay:plugin@0.2.0` in this crate's
//! `wit/0.2.0/` folder; read its comments for the scoping rules the host enforces.
//! (Released versions each keep their own folder, `wit/0.1.0/` for 0.1.0, and the
//! host keeps loading components built against them; 0.2.0 is in development until
//! released and may still grow by documented additions, see its package docs.)
//!
//! The guide, "Writing a plugin" (the request lifecycle, capabilities, scoping, limits,
//! testing, the OpenAPI document, `polypay plugin new` and `polypay plugin check`), is this
//! crate's `README.md`.
//!
//! This crate gives a plugin:
//! - [`bindings`]: the generated WIT bindings (re-exported types live in the
//!   [`host`] modules, e.g. [`invoices::NewInvoice`]);
//! - the host capabilities as plain functions ([`invoices::create`],
//!   [`merchants::authenticate`], [`kv::set_if_absent`], ...);
//! - money in the asset's own units, converted by the host: [`invoices::Price::decimal`]
//!   prices an invoice as `"99.99"` USDT, every [`invoices::Invoice`] carries
//!   `amount_due_decimal` / `amount_paid_decimal`, and [`money::to_base_units`] /
//!   [`money::to_decimal`] check or render an amount before anything is created. A
//!   plugin never parses or formats money itself;
//! - a [`Router`] (method + path pattern with `{params}`) that also produces the
//!   manifest's routes, [`Request`]/[`Response`] with JSON and form helpers;
//! - [`HostError`] (with `Display` and `std::error::Error`), for `?` and error mapping;
//! - [`export_plugin!`], which turns a [`Plugin`] into the component's exports;
//! - [`Plugin::credentials`], the credentials an operator's
//!   `polypay merchant create --plugin NAME` issues to your merchants (a bearer
//!   token, an app id and key, ...), printed once by the CLI;
//! - [`ledger`]: custodial balances and orders paid from them, with
//!   [`Plugin::render_ledger_webhook`] for their callbacks;
//! - [`webhooks::stats`] with [`webhooks::DeliveryStats::success_rate`] and
//!   [`webhooks::DeliveryStats::average_attempts`] for a dialect's delivery report;
//! - [`testing`]: a harness and in-memory host to unit-test a plugin natively.
//!
//! # A complete minimal plugin
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "hello-plugin"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib", "rlib"]   # cdylib: the component; rlib: native unit tests
//!
//! [dependencies]
//! polypay-plugin-sdk = { path = "../../plugin-sdk" }
//! serde_json = "1"
//! ```
//!
//! `src/lib.rs`:
//!
//! ```
//! use polypay_plugin_sdk::prelude::*;
//!
//! pub struct Hello;
//!
//! impl Plugin for Hello {
//!     const NAME: &'static str = "hello";
//!     const VERSION: &'static str = "0.1.0";
//!
//!     fn router() -> Router {
//!         Router::new()
//!             .get("/hello/{name}", greet)
//!             .get("/invoices/{id}", invoice_status)
//!     }
//! }
//!
//! fn greet(req: &Request) -> Response {
//!     let name = req.param("name").unwrap_or("world");
//!     Response::json(200, &serde_json::json!({ "greeting": format!("hello, {name}") }))
//! }
//!
//! /// Public status lookup: unauthenticated calls get read-only invoice views.
//! fn invoice_status(req: &Request) -> Result<Response, Response> {
//!     let id = req.param("id").unwrap_or_default();
//!     let invoice = invoices::get(id).map_err(|e| match e {
//!         HostError::NotFound => Response::json(404, &serde_json::json!({ "error": "no such invoice" })),
//!         other => Response::json(500, &serde_json::json!({ "error": other.to_string() })),
//!     })?;
//!     Ok(Response::json(200, &serde_json::json!({
//!         "paid": invoice.status == InvoiceStatus::Paid,
//!         // "99.99", formatted by the host with the asset's decimals.
//!         "amount": invoice.amount_due_decimal,
//!     })))
//! }
//!
//! polypay_plugin_sdk::export_plugin!(Hello);
//!
//! # use polypay_plugin_sdk::testing::Harness;
//! # let h = Harness::<Hello>::new();
//! # assert_eq!(h.get("/hello/bob").send().body_text(), r#"{"greeting":"hello, bob"}"#);
//! # assert_eq!(h.get("/invoices/nope").send().status, 404);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`, and mount it:
//!
//! ```toml
//! [[plugins]]
//! name = "hello"
//! wasm = "target/wasm32-wasip2/release/hello_plugin.wasm"
//! prefix = "/hello-api"          # optional
//! settings = { greeting = "hi" } # handed to the plugin as JSON
//! ```
//!
//! # Trying it in `polypay dev`
//!
//! A plugin crate under the repository's `plugins/` that has a `demo.toml` beside its
//! `Cargo.toml` takes part in `polypay dev` (the README's run command): mounted with the
//! settings the file gives, with a demo merchant holding the credentials of
//! [`Plugin::credentials`], and with the file's `curl` commands in the printed
//! walkthrough. The format and its placeholders (`{public_url}`, `{network}`,
//! `{credential.<kind>}`, …) are documented in `polypay_host::dev::demo`;
//! `plugins/trino/demo.toml` is an example.
//!
//! # Testing a plugin without the server
//!
//! [`testing::Harness`] routes a request like the host does (404 for an
//! unknown path, 405 for a wrong method) and serves it in-process against
//! [`testing::FakeHost`]; see the [`testing`] module for an example. Run the
//! tests natively with `cargo test -p <plugin crate>`.
//!
//! # Panics and limits
//!
//! A panic, trap, memory exhaustion or CPU overrun in a plugin ends only
//! that request, with an HTTP 500 and a log line carrying the request id.
//! Limits are set per plugin by the operator: bodies (1 MiB by default), memory
//! per instance over all its memories (64 MiB), CPU time in the plugin's own code
//! per request (1 s; time inside host calls does not count), the request's wall
//! including host calls (10 s), concurrent requests (32), key-value entries and
//! bytes. When the host cannot serve a request (every slot taken, the database
//! too slow) it answers 503 with `Retry-After` itself, before or instead of the
//! plugin; this is not counted against the plugin.
//!
//! # What the host keeps per plugin
//!
//! Credentials belong to the plugin they were issued for: a plugin sees, signs
//! with, rotates and revokes only its own, and authenticates with its own and
//! the operator's generic ones. A merchant's `plugin-data` is per plugin. A
//! digest proof (`merchants::authenticate_signed`, `crypto::digest_with_secret*`)
//! must include a `secret` or `secret-digest-hex` part and no empty part; the
//! [`testing::FakeHost`] applies the same rules. Responses get
//! `X-Content-Type-Options: nosniff` and, unless you set one, a
//! `Content-Security-Policy` that allows nothing: set your own on a route that
//! serves a page.

pub mod bindings {
    //! Generated by `wit-bindgen` from `wit/0.2.0/plugin.wit` (world `plugin`).
    #![allow(missing_docs, clippy::all)]
    wit_bindgen::generate!({
        path: "wit/0.2.0",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "polypay_plugin_sdk::bindings",
        additional_derives: [PartialEq],
        generate_all,
    });
}

pub mod host;
pub mod http;
pub mod router;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub mod time;

pub use bindings::polypay::plugin::plugin_types::{Manifest, Route};
pub use bindings::polypay::plugin::types::HostError;
pub use host::{
    chains, clock, context, crypto, invoices, kv, ledger, log, merchants, money, random,
    rate_limit, rates, two_factor, webhooks,
};
pub use http::{IntoResponse, Request, Response};
pub use router::Router;

/// The names most plugins need, for `use polypay_plugin_sdk::prelude::*`.
pub mod prelude {
    pub use crate::host::invoices::{InvoiceStatus, MatchStrategy, NewInvoice, Price};
    pub use crate::host::webhooks::{Acceptance, InvoiceEvent, OutgoingRequest, WebhookDelivery};
    pub use crate::host::{
        chains, clock, context, crypto, invoices, kv, ledger, log, merchants, money, random,
        rate_limit, rates, two_factor, webhooks,
    };
    pub use crate::{HostError, IntoResponse, Plugin, Request, Response, Router};
}

/// A dialect plugin. Export it with [`export_plugin!`].
pub trait Plugin {
    /// The plugin's own name (its manifest name).
    const NAME: &'static str;
    /// The plugin's version, usually `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;

    /// Every route the plugin serves; also its manifest's route list.
    fn router() -> Router;

    /// JSON Schema of the plugin's settings, if it has any.
    fn settings_schema() -> Option<serde_json::Value> {
        None
    }

    /// The credentials `polypay merchant create --plugin NAME` issues to a
    /// merchant of this plugin (and `merchant rotate` replaces). The default,
    /// empty, gives such merchants the host's default: one `api-key`.
    fn credentials() -> Vec<host::merchants::CredentialTemplate> {
        Vec::new()
    }

    /// The plugin's OpenAPI 3 document (JSON text), if it ships one; usually
    /// `Some(include_str!("../openapi.json"))`. Its paths are the router's patterns (the
    /// host adds the operator's prefix), and it should list every route: the host serves
    /// it at `/polypay/plugins/{name}/openapi.json` and lists it on `/polypay/plugins`.
    /// [`testing::undocumented_routes`] checks the document against the router.
    fn openapi() -> Option<&'static str> {
        None
    }

    /// The callback for an invoice event; `None` (the default) sends none.
    fn render_webhook(
        event: &host::webhooks::InvoiceEvent,
        attempt: u32,
    ) -> Option<host::webhooks::WebhookDelivery> {
        let _ = (event, attempt);
        None
    }

    /// Renders the callback for a ledger event (order paid, refunded, ...; see
    /// [`ledger::LedgerEvent`]); `None` (the default) sends none.
    fn render_ledger_webhook(
        event: &host::ledger::LedgerEvent,
        attempt: u32,
    ) -> Option<host::webhooks::WebhookDelivery> {
        let _ = (event, attempt);
        None
    }
}

/// Makes a [`Plugin`] the component's exports (`manifest`, `handle`,
/// `render-webhook`). Use it once, at the root of the plugin crate.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            struct __PolypayExports;

            impl $crate::bindings::Guest for __PolypayExports {
                fn manifest() -> $crate::bindings::Manifest {
                    $crate::__private::manifest::<$plugin>()
                }
                fn handle(request: $crate::bindings::HttpRequest) -> $crate::bindings::HttpResponse {
                    $crate::__private::handle::<$plugin>(request)
                }
                fn render_webhook(
                    event: $crate::bindings::InvoiceEvent,
                    attempt: u32,
                ) -> Option<$crate::bindings::WebhookDelivery> {
                    <$plugin as $crate::Plugin>::render_webhook(&event, attempt)
                }
                fn render_ledger_webhook(
                    event: $crate::bindings::polypay::plugin::ledger::LedgerEvent,
                    attempt: u32,
                ) -> Option<$crate::bindings::WebhookDelivery> {
                    <$plugin as $crate::Plugin>::render_ledger_webhook(&event, attempt)
                }
            }

            $crate::bindings::__export_plugin_world!(__PolypayExports with_types_in $crate::bindings);
        };
    };
}

#[doc(hidden)]
pub mod __private {
    //! Glue used by [`export_plugin!`](crate::export_plugin); not a public API.
    use crate::Plugin;
    use crate::bindings::polypay::plugin::types::{HttpRequest, HttpResponse};

    pub fn manifest<P: Plugin>() -> crate::Manifest {
        crate::Manifest {
            name: P::NAME.to_owned(),
            version: P::VERSION.to_owned(),
            routes: P::router().routes(),
            settings_schema: P::settings_schema().map(|s| s.to_string()),
            credentials: P::credentials(),
            openapi: P::openapi().map(str::to_owned),
        }
    }

    pub fn handle<P: Plugin + 'static>(request: HttpRequest) -> HttpResponse {
        crate::router::table::<P>().dispatch(&request.into()).into()
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0x0f) as usize] as char);
    }
    out
}

/// Whether `text` is a UUID in its hyphenated form (`8-4-4-4-12` hex digits, either
/// case): how most dialects' ids and tokens look.
pub fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Decodes hex (either case); `None` if malformed.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    /// A released contract version never changes: plugins built against it must keep
    /// loading. A change to 0.1.0 goes into a new version's directory instead.
    #[test]
    fn the_released_0_1_0_wit_is_frozen() {
        use sha2::{Digest, Sha256};
        let released = include_bytes!("../wit/0.1.0/plugin.wit");
        assert_eq!(
            super::hex(&Sha256::digest(released)),
            "d490d7c7cb25dc69e4aac88bcbe947b09ee9a8638279461dc8514b88d047f16a",
            "plugin-sdk/wit/0.1.0 is released and frozen"
        );
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(super::hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(super::unhex("00ABff"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(super::unhex("abc"), None);
        assert_eq!(super::unhex("zz"), None);
    }
}
