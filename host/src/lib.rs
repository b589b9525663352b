//! # polypay host
//!
//! The server process of polypay, a self-hosted crypto payment server. The host owns
//! everything that must be right exactly once — storage, the invoice lifecycle, money,
//! merchant secrets, chain listeners, webhook delivery — while each merchant-facing API
//! dialect runs as a sandboxed WebAssembly plugin (see `ARCHITECTURE.md` at the
//! repository root).
//!
//! Rooms, one module each:
//! - [`config`]: settings from defaults, a TOML file and `POLYPAY_*` environment variables.
//! - [`store`]: sqlx storage over SQLite (embedded default) or PostgreSQL.
//! - [`invoice`]: invoice domain types, the lifecycle state machine, exact money.
//! - [`merchant`]: merchants, credentials, and encryption of merchant secrets at rest.
//! - [`chain`]: chain listeners (`chain::evm` with alloy, `chain::tron` over java-tron's
//!   HTTP API, both driven by `chain::follow`): blocks, transfers, reorgs.
//! - [`matcher`]: transfer → invoice, payment-target allocation, the expiry scheduler.
//! - [`ledger`]: custodial balances: users, double-entry postings, orders paid from
//!   balances (the `ledger` capability of custodial dialects).
//! - [`plugin`]: the WebAssembly runtime that runs API dialects, and its host capabilities;
//!   for plugin authors, `polypay plugin new` (templates) and `polypay plugin check`.
//! - [`http`]: the public and admin listeners (axum): their connection and request limits,
//!   client addresses behind trusted proxies, the admin token, the checkout page and feed,
//!   the plugins' OpenAPI documents and the page listing them (`/polypay/plugins`).
//! - [`webhook`]: the outbox of merchant callbacks: delivery with retries, dead letters,
//!   operator replay.
//! - [`two_factor`]: second-factor confirmation for plugins' users (TOTP, one-time codes
//!   delivered through the outbox).
//! - [`telemetry`]: logs, metrics, request ids.
//! - [`memory`]: giving freed heap memory back to the system (glibc arenas, trimming).
//! - [`app`]: wires the rooms into a running server.
//! - [`dev`]: `polypay dev`, a local payment setup in one command: an anvil dev chain with
//!   the test contracts, every dialect's demo, the dev wallet.
//! - [`cli`]: the `polypay` command line.

/// Gives a fieldless enum its stable string names, written once: `as_str`,
/// `ALL`, `Display`, `FromStr` (error [`UnknownName`]) and serde as that
/// string. The `match` in `as_str` makes a variant without a name a compile
/// error, so the names cannot drift from the enum.
#[macro_export]
macro_rules! stable_names {
    ($ty:ident, $what:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The stable name used in the API, the database and plugins.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::names::UnknownName;

            fn from_str(s: &str) -> Result<$ty, Self::Err> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err($crate::names::UnknownName { what: $what, name: s.to_owned() }),
                }
            }
        }

        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<$ty, D::Error> {
                let name = <String as ::serde::Deserialize>::deserialize(deserializer)?;
                name.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}

pub mod app;
pub mod chain;
pub mod cli;
pub mod config;
pub mod dev;
pub mod http;
pub mod invoice;
pub mod leader;
pub mod ledger;
pub mod matcher;
pub mod memory;
pub mod merchant;
pub mod names;
pub mod plugin;
pub mod rates;
pub mod store;
pub mod telemetry;
pub mod two_factor;
pub mod webhook;
