//! The host side of `wit/oauth.wit`, generated. Only the store and rate-limit imports are
//! async (they do I/O); `random.bytes` may trap (an oversized request is a guest bug).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "guest",
    imports: {
        "tokenginx:oauth/store": async,
        "tokenginx:oauth/rate-limit": async,
        "tokenginx:oauth/random.bytes": trappable,
    },
    exports: { default: async },
});

pub use exports::tokenginx::oauth::handler::{Request, Response};
pub use tokenginx::oauth::{clock, log, random, rate_limit, settings, store};

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
