//! The host side of the contract, `wit/oauth.wit`, generated: the types the host shares with
//! guests (the settings' client record, requests, responses) and the traits of its imports.
//! Only the store and rate-limit imports are async (they do I/O); `random.bytes` may trap
//! (an oversized request is a guest bug).
//!
//! Two worlds: `base`, which every guest since 0.1.0 satisfies and which a guest is linked
//! against, and the `capabilities` export that guests since 0.1.2 add, looked up apart so
//! that a guest without it still loads.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "base",
    imports: {
        "tokenginx:oauth/store": async | trappable,
        "tokenginx:oauth/rate-limit": async | trappable,
        "tokenginx:oauth/random.bytes": trappable,
        "tokenginx:oauth/seal.seal": trappable,
    },
    exports: { default: async },
    // Store imports return the host's own error; `convert_store_error` (imports.rs) is the
    // one place it becomes the contract's `store-error`.
    trappable_error_type: {
        "tokenginx:oauth/store.store-error" => crate::store::StoreError,
    },
});

/// The optional exports, `capabilities` and `browser`, each looked up on its own.
pub mod optional {
    wasmtime::component::bindgen!({
        path: "../wit",
        inline: "
            package tokenginx:host;
            world optional {
                export tokenginx:oauth/capabilities@0.1.4;
                export tokenginx:oauth/browser@0.1.4;
            }
        ",
        exports: { default: async },
    });

    pub use exports::tokenginx::oauth::{browser, capabilities};
}

pub use exports::tokenginx::oauth::handler::{Request, Response};
pub use tokenginx::oauth::{caller, clock, log, random, rate_limit, seal, settings, store};

/// An empty request, for exports that take none (`metadata`).
impl Default for Request {
    fn default() -> Self {
        Request {
            params: Vec::new(),
            authorization: None,
            client_ip: String::new(),
        }
    }
}
