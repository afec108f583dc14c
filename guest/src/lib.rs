//! The default TokenginX guest: every OAuth 2.0 decision of the service.
//!
//! The logic is plain Rust over the [`Host`] trait, so it compiles and is unit-tested
//! natively; `wasm.rs` is the thin layer that binds [`Host`] to the component's imports and
//! exports `server` of `wit/oauth.wit`.
//!
//! - [`routes`]: the routes this guest declares, and which module answers each;
//!   [`counters`]: the counters it keeps; [`client_rules`]: what a client registration
//!   must be.
//! - [`token`]: the token endpoint (RFC 6749 section 3.2), which hands each request to its
//!   grant's module: `client_credentials`, `flow/code` (`authorization_code`) and
//!   `grant/refresh` (`refresh_token`); `issue` is what they share.
//! - `flow/`: the authorization code flow (the authorization endpoint, the admin API, the
//!   code); `grant/`: the user's grants a code starts, and their refresh tokens.
//! - [`introspect`]: RFC 7662.
//! - [`revoke`]: RFC 7009.
//! - [`metadata`]: RFC 8414 and OpenID Connect Discovery, and the public keys (JWKS).
//! - `signed`: JWT access tokens (RFC 9068) and ID tokens, signed by the host;
//!   `userinfo`: OpenID Connect's UserInfo endpoint.
//! - Sender-constrained tokens and clients that prove themselves with keys: `dpop` (RFC
//!   9449), `client_auth` (RFC 6749 section 2.3, RFC 7523), `mtls` (RFC 8705, with `x509`
//!   to read a certificate's names).

mod client_auth;
mod client_credentials;
pub mod client_rules;
pub mod clients;
pub mod counters;
mod dpop;
mod flow;
mod grant;
mod host;
mod introspect;
mod issue;
mod jose;
pub mod metadata;
mod mtls;
mod params;
mod presented;
mod record;
mod response;
mod revoke;
pub mod routes;
mod scope;
mod signed;
mod token;
mod userinfo;
mod x509;

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
    Algorithm, BrowserRequest, CertificateName, Change, Client, DpopPolicy, Host, HttpRequest,
    Inherited, KeySet, Level, LoginFlow, MtlsClient, MtlsPolicy, Purpose, RefreshPolicy,
    Registration, RegistrationPolicy, Request, Response, StoreError, TokenFormat, Transaction,
};
pub use introspect::introspect;
pub use metadata::metadata;
pub use mtls::Certificate;
pub use revoke::revoke;
pub use token::token;

/// The name and version this guest reports to the host.
pub const NAME: &str = env!("CARGO_PKG_NAME");
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The grant types this guest serves, as it tells clients (metadata) and checks the
/// operator's clients against (`client_rules`).
pub const GRANT_TYPES: [&str; 3] = [
    issue::CLIENT_CREDENTIALS,
    issue::AUTHORIZATION_CODE,
    issue::REFRESH_TOKEN,
];
pub const RESPONSE_TYPES: [&str; 1] = ["code"];
