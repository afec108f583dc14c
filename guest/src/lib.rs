//! The default TokenginX guest: every OAuth 2.0 decision of the service.
//!
//! The logic is plain Rust over the [`Host`] trait, so it compiles and is unit-tested
//! natively; `wasm.rs` is the thin layer that binds [`Host`] to the component's imports and
//! exports the endpoints of `wit/oauth.wit`.
//!
//! - [`token`]: RFC 6749 section 4.4, the `client_credentials` grant; the
//!   `authorization_code` grant (`flow/`), and the grants it starts, with their refresh
//!   tokens (`grant/`).
//! - [`introspect`]: RFC 7662.
//! - [`revoke`]: RFC 7009.
//! - [`metadata`]: RFC 8414.

mod client_auth;
mod flow;
mod grant;
mod host;
mod introspect;
mod metadata;
mod params;
mod record;
mod response;
mod revoke;
mod scope;
mod token;

// Single-threaded guests only: the arena has no locks.
#[cfg(any(test, all(target_arch = "wasm32", not(target_feature = "atomics"))))]
mod arena;
/// A native stand-in for the host: the unit tests' and the native benchmark's.
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(target_arch = "wasm32")]
mod wasm;

pub use flow::admin::admin;
pub use flow::authorize::authorize;
pub use host::{
    BrowserRequest, Change, Client, Host, Level, LoginFlow, RefreshPolicy, Registration, Request,
    Response, StoreError, Transaction,
};
pub use introspect::introspect;
pub use metadata::metadata;
pub use revoke::revoke;
pub use token::token;

/// The name and version this guest reports to the host.
pub const NAME: &str = env!("CARGO_PKG_NAME");
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What this guest serves, as it tells the host (`capabilities`) and clients (metadata).
pub const GRANT_TYPES: [&str; 3] = [
    token::CLIENT_CREDENTIALS,
    token::AUTHORIZATION_CODE,
    token::REFRESH_TOKEN,
];
pub const RESPONSE_TYPES: [&str; 1] = ["code"];
pub const ENDPOINTS: [&str; 6] = [
    "token",
    "introspect",
    "revoke",
    "metadata",
    "authorize",
    "admin",
];
