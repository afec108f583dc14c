//! What the OAuth logic needs from its host, as plain Rust, so the same logic runs inside
//! the component and in native tests.

/// A registered client: configured by the operator, or registered at runtime.
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
    /// For a client registered at runtime, what the host's settings answer of a
    /// configured one (see `clients`); none for a configured client.
    pub runtime: Option<Box<crate::clients::RuntimeParts>>,
}

/// Dynamic client registration (RFC 7591) as the operator allows it
/// (`settings.dynamic-registration`).
#[derive(Clone, Debug, Default)]
pub struct RegistrationPolicy {
    /// Anyone may register, without an initial access token.
    pub open: bool,
    /// The SHA-256 of each initial access token that may register.
    pub initial_access_tokens_sha256: Vec<Vec<u8>>,
    /// Registration stops once this many clients are registered at runtime.
    pub max_clients: u32,
    /// The scopes a self-registered client may have, besides `openid` and `offline_access`.
    pub allowed_scopes: Vec<String>,
    /// The audiences a self-registered client may name.
    pub allowed_audiences: Vec<String>,
}

/// What a client registered at runtime inherits of the operator's settings
/// (`settings.client-defaults`).
#[derive(Clone, Copy, Debug)]
pub struct Inherited {
    /// Seconds.
    pub access_token_ttl: u64,
    pub refresh: RefreshPolicy,
    /// `oauth.access_token_strategy` is `jwt`.
    pub jwt_access_tokens: bool,
    /// Seconds.
    pub id_token_ttl: u64,
    /// The longest lifetime of a token the host signs, seconds; none: it signs nothing.
    pub signs_up_to: Option<u64>,
}

/// What the browser flows need of a registered client.
#[derive(Clone, Debug)]
pub struct Registration {
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    /// `client_secret_basic`, `client_secret_post` or `none` (a public client).
    pub token_endpoint_auth_method: String,
    pub skip_consent: bool,
}

/// The operator's login and consent app.
#[derive(Clone, Debug)]
pub struct LoginFlow {
    pub login_url: String,
    pub consent_url: String,
    /// Seconds an authorization code may wait to be redeemed.
    pub authorization_code_ttl: u64,
}

/// How the refresh tokens of a client's grants live.
#[derive(Clone, Copy, Debug)]
pub struct RefreshPolicy {
    /// Seconds a refresh token may wait to be used.
    pub refresh_token_ttl: u64,
    /// Seconds a grant lives at most, however often it is refreshed.
    pub grant_max_lifetime: u64,
    /// Milliseconds after a rotation during which the rotated token gets the same answer
    /// again; 0: never.
    pub reuse_grace_ms: u64,
}

/// The JWS algorithms the host signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Rs256,
    Es256,
    EdDsa,
}

impl Algorithm {
    /// The JWS name (RFC 7518, RFC 8037).
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
            Algorithm::EdDsa => "EdDSA",
        }
    }
}

/// What a signed token is for: the host sets its `typ` from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    IdToken,
    AccessToken,
}

/// How a client's tokens are made.
#[derive(Clone, Debug)]
pub struct TokenFormat {
    /// Signed JWT access tokens (RFC 9068) rather than opaque ones.
    pub jwt_access_tokens: bool,
    pub access_token_alg: Algorithm,
    pub id_token_alg: Algorithm,
    /// The audiences its tokens may name.
    pub audience: Vec<String>,
    /// Seconds an ID token lives.
    pub id_token_ttl: u64,
}

/// DPoP (RFC 9449) as the operator sets it (`settings.dpop`).
#[derive(Clone, Debug, Default)]
pub struct DpopPolicy {
    /// Every proof must carry a nonce this service handed out (section 8).
    pub require_nonce: bool,
    /// The configured clients whose token requests must carry a proof (section 5.2).
    pub bound_clients: Vec<String>,
}

/// Which client certificates the listener takes (`settings.mtls`, RFC 8705).
#[derive(Clone, Copy, Debug, Default)]
pub struct MtlsPolicy {
    /// Certificates that chain to the listener's CA (`request.client-cert`).
    pub chained: bool,
    /// Certificates that chain to none, whose key signed the handshake
    /// (`caller.presented-cert`).
    pub self_signed: bool,
}

/// What names the certificate of a `tls_client_auth` client (RFC 8705 section 2.1.2).
#[derive(Clone, Debug, PartialEq)]
pub enum CertificateName {
    SubjectDn(String),
    SanDns(String),
    SanUri(String),
    SanIp(String),
    SanEmail(String),
}

impl CertificateName {
    /// The name a registration sets as `key` (one of [`CERTIFICATE_NAMES`]) to `value`.
    ///
    /// [`CERTIFICATE_NAMES`]: tokenginx_syntax::registration::CERTIFICATE_NAMES
    pub fn from_key(key: &str, value: String) -> Option<Self> {
        let names = tokenginx_syntax::registration::CERTIFICATE_NAMES;
        let kinds: [fn(String) -> Self; 5] = [
            CertificateName::SubjectDn,
            CertificateName::SanDns,
            CertificateName::SanUri,
            CertificateName::SanIp,
            CertificateName::SanEmail,
        ];
        let i = names.iter().position(|name| *name == key)?;
        Some(kinds[i](value))
    }

    /// What it names.
    pub fn value(&self) -> &str {
        match self {
            CertificateName::SubjectDn(v)
            | CertificateName::SanDns(v)
            | CertificateName::SanUri(v)
            | CertificateName::SanIp(v)
            | CertificateName::SanEmail(v) => v,
        }
    }

    /// The registration key that sets it (RFC 8705 section 2.1.2).
    pub fn key(&self) -> &'static str {
        let i = match self {
            CertificateName::SubjectDn(_) => 0,
            CertificateName::SanDns(_) => 1,
            CertificateName::SanUri(_) => 2,
            CertificateName::SanIp(_) => 3,
            CertificateName::SanEmail(_) => 4,
        };
        tokenginx_syntax::registration::CERTIFICATE_NAMES[i]
    }
}

/// What a client registered for mutual TLS (`settings.find-client-mtls`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MtlsClient {
    /// For `tls_client_auth`.
    pub certificate_name: Option<CertificateName>,
    /// `tls_client_certificate_bound_access_tokens`.
    pub bound_access_tokens: bool,
}

/// The host's public keys, and how long a verifier may cache them.
#[derive(Clone, Debug)]
pub struct KeySet {
    pub json: String,
    pub max_age: u32,
}

/// A compare-and-set over the keys of one hash tag (`store.apply`): if every expected key
/// holds its value (none: absent), every change is made, atomically.
#[derive(Clone, Debug, Default)]
pub struct Transaction {
    pub expect: Vec<(String, Option<Vec<u8>>)>,
    pub changes: Vec<Change>,
}

/// A change of a [`Transaction`]: a value with its TTL, or none to remove the key.
#[derive(Clone, Debug)]
pub struct Change {
    pub key: String,
    pub value: Option<Vec<u8>>,
    pub ttl_ms: u64,
}

/// A browser's request to the authorization endpoint, or an admin API call.
#[derive(Clone, Debug, Default)]
pub struct BrowserRequest {
    pub method: String,
    /// The query's parameters (or a form body's).
    pub params: Vec<(String, String)>,
    pub cookies: Vec<(String, String)>,
    /// An admin call's JSON body.
    pub body: String,
    pub client_ip: String,
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
    /// The `DPoP` header (RFC 9449), if sent.
    pub dpop: Option<String>,
    /// The client's TLS certificate (DER), when it presented one that chains to the
    /// listener's CA (`request.client-cert`); see [`Request::certificate`].
    pub client_cert: Option<Vec<u8>>,
    /// [`Request::certificate`], once asked.
    pub certificate: std::cell::OnceCell<Option<crate::Certificate>>,
}

impl Request {
    /// The TLS certificate the client presented, chained or not (RFC 8705). Asked of the
    /// host only when a client's method or token needs it, and once a request.
    pub fn certificate(&self, host: &impl Host) -> Option<&crate::Certificate> {
        self.certificate
            .get_or_init(|| crate::Certificate::of_request(host, self.client_cert.clone()))
            .as_ref()
    }
}

/// A request to one of this guest's routes, checked by the host (`server.request`).
#[derive(Clone, Debug, Default)]
pub struct HttpRequest {
    pub method: String,
    /// The URL as the client addressed it.
    pub url: String,
    pub path_params: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub form: Vec<(String, String)>,
    pub json: Option<String>,
    pub cookies: Vec<(String, String)>,
    /// The headers the route reads that the request sent, by their lowercase name as the
    /// route declares it.
    pub headers: Vec<(&'static str, String)>,
    pub client_ip: String,
    /// The client's TLS certificate (DER), when it presented one that chains to the
    /// listener's CA (`request.client-cert`).
    pub client_cert: Option<Vec<u8>>,
}

impl HttpRequest {
    /// The value of header `name` (lowercase), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path parameter `name`, if the route has it.
    pub fn path_param(&self, name: &str) -> Option<&str> {
        self.path_params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
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
/// more (of `store`, all but `ttl`), so a native test host implements just what the logic
/// needs.
pub trait Host {
    fn store_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// The values at `keys`, in order, in one round trip.
    fn store_get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError>;
    /// Makes the transaction's changes if its expectations hold; whether it did.
    fn store_apply(&self, tx: Transaction) -> Result<bool, StoreError>;
    /// Writes only if `key` is absent; false when it exists.
    fn store_insert(&self, key: &str, value: &[u8], ttl_ms: u64) -> Result<bool, StoreError>;
    fn store_delete(&self, key: &str) -> Result<bool, StoreError>;
    /// Writes `value` at `key`, replacing what was there.
    fn store_set(&self, key: &str, value: &[u8], ttl_ms: u64) -> Result<(), StoreError>;
    /// Removes `key` and returns its value, atomically.
    fn store_take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Charges one request to the rate limit of registered client `client_id`: none when
    /// admitted, or the milliseconds to wait.
    fn rate_limit(&self, client_id: &str) -> Result<Option<u64>, StoreError>;
    /// `value` sealed for `purpose` under the host's keys (`seal.seal`): URL-safe text that
    /// [`Host::open`] turns back into `value` for `ttl_ms` milliseconds, and that no one
    /// else can read or forge.
    fn seal(&self, purpose: &str, value: &[u8], ttl_ms: u64) -> Result<String, StoreError>;
    /// The value `sealed` holds, if the host sealed it for `purpose` and it has not expired.
    fn open(&self, purpose: &str, sealed: &str) -> Option<Vec<u8>>;
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Secure random bytes.
    fn random_bytes(&self, len: u32) -> Vec<u8>;
    fn log(&self, level: Level, message: &str);
    fn issuer(&self) -> String;
    /// The configured client `client_id` (`settings.find-client`); [`crate::clients::find`]
    /// finds runtime ones too.
    fn client(&self, client_id: &str) -> Option<Client>;
    fn registration(&self, client_id: &str) -> Option<Registration>;
    /// The login and consent app; none when the operator set none.
    fn login_flow(&self) -> Option<LoginFlow>;
    fn refresh_policy(&self, client_id: &str) -> Option<RefreshPolicy>;
    fn token_format(&self, client_id: &str) -> Option<TokenFormat>;
    /// `claims` (a JSON object naming the issuer and an `exp`) signed by the host's active
    /// key of `alg` (`keys.sign`): a compact JWS.
    fn sign(&self, purpose: Purpose, alg: Algorithm, claims: &str) -> Result<String, StoreError>;
    /// The claims of `token` if the host signed it for `purpose` with a key it still
    /// publishes (`keys.verify`).
    fn verify(&self, purpose: Purpose, token: &str) -> Option<String>;
    /// The host's public keys (`keys.public-keys`).
    fn public_keys(&self) -> KeySet;
    fn scopes_supported(&self) -> Vec<String>;
    /// What a client registered at runtime inherits (`settings.client-defaults`).
    fn client_defaults(&self) -> Inherited;
    /// The ids of the configured clients, in the configuration's order.
    fn configured_clients(&self) -> Vec<String>;
    /// Dynamic client registration, when the operator allows it.
    fn dynamic_registration(&self) -> Option<RegistrationPolicy>;
    /// DPoP as the operator sets it (`settings.dpop`).
    fn dpop(&self) -> DpopPolicy;
    /// The public keys configured client `client_id` registered, a JWK set as JSON
    /// (`settings.find-client-jwks`).
    fn client_jwks(&self, client_id: &str) -> Option<String>;
    /// Which client certificates the listener takes (`settings.mtls`).
    fn mtls(&self) -> MtlsPolicy;
    /// What configured client `client_id` registered for mutual TLS
    /// (`settings.find-client-mtls`).
    fn client_mtls(&self, client_id: &str) -> Option<MtlsClient>;
    /// The certificate the request's client presented, chained or not
    /// (`caller.presented-cert`).
    fn presented_cert(&self) -> Option<Vec<u8>>;
    /// Whether `token` is an HS256 JWS under configured client `client_id`'s secret
    /// (`keys.verify-client-secret-jwt`).
    fn verify_client_secret_jwt(&self, client_id: &str, token: &str) -> bool;
    /// Whether `token` is a JWS signed by the public key `jwk` (JSON) under its header's
    /// `alg` (`keys.verify-with-key`).
    fn verify_with_key(&self, jwk: &str, token: &str) -> bool;
    /// Charges one registration to the budget of `key` (`rate-limit.charge-registration`):
    /// none when admitted, or the milliseconds to wait.
    fn charge_registration(&self, key: &str) -> Result<Option<u64>, StoreError>;
    /// Tells the host the request authenticated as registered client `client_id`.
    fn authenticated(&self, client_id: &str);
    /// Adds `by` to the series `labels` of the declared counter `name` (`metrics.count`;
    /// see `counters.rs`).
    fn count(&self, name: &str, labels: &[&str], by: u64);
}
