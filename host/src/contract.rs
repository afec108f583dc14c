//! The host side of the contract, `wit/oauth.wit` (`tokenginx:oauth@0.2.4`), generated:
//! the types the host shares with guests and the traits of its imports. Only the store and
//! rate-limit imports are async (they do I/O); `random.bytes`, `seal.seal` and `keys.sign` may trap (an
//! oversized request is a guest bug).
//!
//! Guests built against 0.1.x are bound apart, by the adapter (`host/adapter/v0_1/`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "guest",
    imports: {
        "tokenginx:oauth/store": async | trappable,
        "tokenginx:oauth/rate-limit": async | trappable,
        "tokenginx:oauth/random.bytes": trappable,
        "tokenginx:oauth/seal.seal": trappable,
        "tokenginx:oauth/keys.sign": trappable,
    },
    exports: { default: async },
    // Store imports return the host's own error; `convert_store_error` (imports.rs) is the
    // one place it becomes the contract's `store-error`.
    trappable_error_type: {
        "tokenginx:oauth/store.store-error" => crate::store::StoreError,
    },
});

pub use exports::tokenginx::oauth::server;
pub use tokenginx::oauth::{
    caller, clock, keys, log, metrics, random, rate_limit, seal, settings, store,
};
