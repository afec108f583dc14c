//! What the OAuth logic needs from its host, as plain Rust, so the same logic runs inside
//! the component and in native tests.

/// A registered client, as the operator configured it.
#[derive(Clone, Debug)]
pub struct Client {
    pub client_id: String,
    /// SHA-256 of the client secret; the guest never sees the secret itself.
    pub secret_sha256: Vec<u8>,
    pub scopes: Vec<String>,
    pub default_scopes: Vec<String>,
    pub grant_types: Vec<String>,
    /// Access token lifetime in seconds.
    pub access_token_ttl: u64,
}

/// A store operation that failed.
#[derive(Clone, Debug)]
pub enum StoreError {
    /// The store is unreachable or too slow: answer 503.
    Unavailable(String),
    /// The host refused the operation: a bug in this guest.
    Rejected(String),
}

#[derive(Clone, Copy, Debug)]
pub enum Level {
    Debug,
    Info,
    Warn,
}

/// A form request, checked and decoded by the host (no repeated parameter, valid UTF-8).
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub params: Vec<(String, String)>,
    pub authorization: Option<String>,
    pub client_ip: String,
}

/// An HTTP response for the host to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The value of header `name` (case-insensitive), if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the OAuth logic uses of its host: the imports of `wit/oauth.wit` it calls, and no
/// more (of `store`, only `get`, `insert` and `delete`), so a native test host implements
/// just what the logic needs.
pub trait Host {
    fn store_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Writes only if `key` is absent; false when it exists.
    fn store_insert(&self, key: &str, value: &[u8], ttl_ms: u64) -> Result<bool, StoreError>;
    fn store_delete(&self, key: &str) -> Result<bool, StoreError>;
    /// Charges one request to the rate limit of registered client `client_id`: none when
    /// admitted, or the milliseconds to wait.
    fn rate_limit(&self, client_id: &str) -> Result<Option<u64>, StoreError>;
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Secure random bytes.
    fn random_bytes(&self, len: u32) -> Vec<u8>;
    fn log(&self, level: Level, message: &str);
    fn issuer(&self) -> String;
    fn client(&self, client_id: &str) -> Option<Client>;
    fn scopes_supported(&self) -> Vec<String>;
    /// The URL the host serves the endpoint `name` at (`token`, `introspect`, ...).
    fn endpoint_url(&self, name: &str) -> Option<String>;
    /// Tells the host the request authenticated as registered client `client_id`.
    fn authenticated(&self, client_id: &str);
}
