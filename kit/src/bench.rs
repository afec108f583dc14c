//! What `tokenginx-host bench-guest` asks a guest: a client of its own, a token by the
//! client credentials grant, then introspections of that token. The host times the calls;
//! the requests are the kit's, which speaks OAuth.

/// The benchmark's client, registered in [`config_text`].
pub const CLIENT_ID: &str = "bench";
pub const SECRET: &str = "bench-secret-0123456789";
/// The route names the benchmark calls, as the default guest declares them.
pub const TOKEN_ROUTE: &str = "token";
pub const INTROSPECT_ROUTE: &str = "introspect";

/// The config of a benchmark run: its client, with a budget never reached (the token phase
/// charges it on every call).
pub fn config_text() -> String {
    format!(
        "guest: {{path: unused.wasm}}
oauth:
  issuer: http://bench.invalid
  clients:
    - client_id: {CLIENT_ID}
      client_secret: {SECRET}
      scopes: [read]
      default_scopes: [read]
      rate_limit: {{requests: 1000000, per: 1s, burst: 4294967295}}
"
    )
}

/// The token request's form (RFC 6749 section 4.4).
pub const TOKEN_FORM: [(&str, &str); 1] = [("grant_type", "client_credentials")];

/// The introspection request's form for `token` (RFC 7662 section 2.1).
pub fn introspect_form(token: &str) -> [(&str, &str); 1] {
    [("token", token)]
}
