//! A native stand-in for the host, for the guest's unit tests: an in-memory store, a clock
//! the test moves, counter-based randomness, and two registered clients.

use crate::{
    Algorithm, CertificateName, Client, DpopPolicy, Host, KeySet, Level, LoginFlow, MtlsClient,
    MtlsPolicy, Purpose, RefreshPolicy, Registration, StoreError, TokenFormat, Transaction,
};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use tokenginx_syntax::registration::{SELF_SIGNED_TLS_CLIENT_AUTH, TLS_CLIENT_AUTH};

mod requests;
pub use requests::*;

pub const DEMO_ID: &str = "demo";
pub const DEMO_SECRET: &str = "demo-secret-0123456789";
pub const OTHER_ID: &str = "other";
pub const OTHER_SECRET: &str = "other-secret-0123456789";
/// A web app (confidential) and a native app (public) for the authorization code flow.
pub const WEB_ID: &str = "web";
pub const WEB_SECRET: &str = "web-secret-0123456789";
pub const WEB_REDIRECT: &str = "https://app.example/callback";
pub const NATIVE_ID: &str = "native";
pub const NATIVE_REDIRECT: &str = "http://127.0.0.1:5555/cb";
/// A client that signs its assertions with a key (`private_key_jwt`): the keys of
/// [`keyed_keys`] are its `jwks`; and one that signs them with its secret
/// (`client_secret_jwt`).
pub const KEYED_ID: &str = "keyed";
pub const MAC_ID: &str = "mac";
pub const MAC_SECRET: &str = "mac-secret-0123456789-0123456789-0123456789";
/// Clients that authenticate with a TLS certificate (RFC 8705): one a CA issued, named
/// by its DNS name (`tls_client_auth`), and one registered in the client's `jwks`
/// (`self_signed_tls_client_auth`), whose access tokens are bound to it. Both present
/// [`CLIENT_CERT`].
pub const TLS_ID: &str = "tls-client";
pub const SELF_SIGNED_ID: &str = "self-signed";
/// A certificate made by openssl: subject `CN=client one,UID=42+OU=Payments,O=Example\,
/// AB,C=SE`, names `client.example.com`, `spiffe://example.com/client`, `192.0.2.7`,
/// `2001:db8::1` and `ops@example.com` (see `x509/tests.rs`).
pub const CLIENT_CERT: &[u8] = include_bytes!("../x509/full.der");
/// Another one, `CN=bare`.
pub const OTHER_CERT: &[u8] = include_bytes!("../x509/bare.der");

/// The first audience of every client's token format.
pub const AUDIENCE: &str = "https://api.test";

/// The keys of the `private_key_jwt` client: ES256 (`kid` `es`) and EdDSA (`kid` `ed`).
pub fn keyed_keys() -> [DpopKey; 2] {
    [DpopKey::es256(31), DpopKey::eddsa(32)]
}

pub fn demo_client() -> Client {
    client(DEMO_ID, DEMO_SECRET)
}

fn client(id: &str, secret: &str) -> Client {
    Client {
        client_id: id.into(),
        secret_sha256: Sha256::digest(secret.as_bytes()).to_vec(),
        scopes: vec!["read".into(), "write".into()],
        default_scopes: vec!["read".into()],
        grant_types: vec!["client_credentials".into()],
        access_token_ttl: 3600,
        runtime: None,
    }
}

/// A client of the authorization code flow, which may refresh; public without a secret.
fn user_client(id: &str, secret: Option<&str>) -> Client {
    Client {
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        scopes: vec![
            "openid".into(),
            "read".into(),
            "write".into(),
            "offline_access".into(),
        ],
        secret_sha256: secret.map_or(Vec::new(), |s| Sha256::digest(s.as_bytes()).to_vec()),
        ..client(id, "unused")
    }
}

/// A stored value, the TTL it was written with and when it expires (ms).
type Entry = (Vec<u8>, u64, u64);

/// What another request does meanwhile.
type Concurrent = Box<dyn FnOnce(&TestHost)>;

pub struct TestHost {
    /// key -> (value, ttl in ms, expiry in ms of the clock below); expired entries go at
    /// the next store operation, as a store's TTL removes them.
    store: RefCell<HashMap<String, Entry>>,
    store_down: Cell<bool>,
    now_ms: Cell<u64>,
    counter: Cell<u64>,
    repeat_next: Cell<bool>,
    clients: RefCell<Vec<Client>>,
    /// Requests each client may still make (none: unlimited), and the wait the host
    /// reports once they are spent.
    budget: Cell<Option<u32>>,
    /// The client the logic last said a request authenticated as.
    authenticated: RefCell<Option<String>>,
    /// The counts the logic made, as `name{labels} by`.
    counts: RefCell<Vec<String>>,
    refresh_policy: Cell<RefreshPolicy>,
    /// The next `apply` makes its changes but answers false, as a host does that retried
    /// it after a dropped connection.
    apply_lands_unseen: Cell<bool>,
    /// The next `apply` fails as an unavailable store does, changing nothing.
    apply_fails: Cell<bool>,
    /// Run just before the next `apply`: another request's changes.
    before_apply: RefCell<Option<Concurrent>>,
    /// Warnings the logic logged.
    warnings: RefCell<Vec<String>>,
    /// What `seal` handed out, by text. The host seals with a key; here the text is a
    /// handle, which keeps a test's sealed values as opaque as the host's.
    sealed: RefCell<HashMap<String, Sealed>>,
    /// The clients whose access tokens are JWTs.
    jwt_clients: RefCell<Vec<String>>,
    /// Dynamic registration, when a test allows it, its budget a key, and what was charged.
    pub registration: RefCell<Option<crate::RegistrationPolicy>>,
    pub registration_budget: Cell<u32>,
    registrations_charged: RefCell<Vec<String>>,
    /// DPoP as a test sets it.
    pub dpop: RefCell<DpopPolicy>,
    /// Mutual TLS as a test sets it: the listener's policy (both kinds of certificate by
    /// default), what the clients registered, and the certificate presented without a
    /// chain (`caller.presented-cert`).
    pub mtls: Cell<MtlsPolicy>,
    pub mtls_clients: RefCell<HashMap<String, MtlsClient>>,
    pub presented: RefCell<Option<Vec<u8>>>,
}

/// A sealed value: its purpose, its bytes, and its expiry in ms of the test clock.
type Sealed = (String, Vec<u8>, u64);

impl Default for TestHost {
    fn default() -> Self {
        Self::new()
    }
}

impl TestHost {
    pub fn new() -> Self {
        let mut odd = client("odd id:+%", "s\u{e9}cret & more");
        odd.scopes.push("admin".into());
        TestHost {
            store: RefCell::default(),
            store_down: Cell::new(false),
            now_ms: Cell::new(1_700_000_000_000),
            counter: Cell::new(0),
            repeat_next: Cell::new(false),
            clients: RefCell::new(vec![
                demo_client(),
                client(OTHER_ID, OTHER_SECRET),
                odd,
                user_client(WEB_ID, Some(WEB_SECRET)),
                user_client(NATIVE_ID, None),
                Client {
                    secret_sha256: Vec::new(),
                    ..client(KEYED_ID, "unused")
                },
                client(MAC_ID, MAC_SECRET),
                Client {
                    secret_sha256: Vec::new(),
                    ..client(TLS_ID, "unused")
                },
                Client {
                    secret_sha256: Vec::new(),
                    ..client(SELF_SIGNED_ID, "unused")
                },
            ]),
            budget: Cell::new(None),
            authenticated: RefCell::default(),
            counts: RefCell::default(),
            refresh_policy: Cell::new(RefreshPolicy {
                refresh_token_ttl: 30 * 24 * 3600,
                grant_max_lifetime: 90 * 24 * 3600,
                reuse_grace_ms: 0,
            }),
            apply_lands_unseen: Cell::new(false),
            apply_fails: Cell::new(false),
            before_apply: RefCell::default(),
            warnings: RefCell::default(),
            sealed: RefCell::default(),
            jwt_clients: RefCell::default(),
            registration: RefCell::default(),
            registration_budget: Cell::new(u32::MAX),
            registrations_charged: RefCell::default(),
            dpop: RefCell::default(),
            mtls: Cell::new(MtlsPolicy {
                chained: true,
                self_signed: true,
            }),
            mtls_clients: RefCell::new(HashMap::from([
                (
                    TLS_ID.to_owned(),
                    MtlsClient {
                        certificate_name: Some(CertificateName::SanDns(
                            "client.example.com".into(),
                        )),
                        bound_access_tokens: false,
                    },
                ),
                (
                    SELF_SIGNED_ID.to_owned(),
                    MtlsClient {
                        certificate_name: None,
                        bound_access_tokens: true,
                    },
                ),
            ])),
            presented: RefCell::default(),
        }
    }

    /// Makes `client_id`'s access tokens JWTs.
    pub fn use_jwt_access_tokens(&self, client_id: &str) {
        self.jwt_clients.borrow_mut().push(client_id.into());
    }

    /// How many values were sealed.
    pub fn seals(&self) -> usize {
        self.sealed.borrow().len()
    }

    /// The length of the value `text` seals.
    pub fn sealed_len(&self, text: &str) -> Option<usize> {
        self.sealed
            .borrow()
            .get(text)
            .map(|(_, value, _)| value.len())
    }

    pub fn edit_refresh_policy(&self, edit: impl FnOnce(&mut RefreshPolicy)) {
        let mut policy = self.refresh_policy.get();
        edit(&mut policy);
        self.refresh_policy.set(policy);
    }
    /// The next `apply` makes its changes but answers false.
    pub fn next_apply_lands_unseen(&self) {
        self.apply_lands_unseen.set(true);
    }
    /// The next `apply` answers `unavailable` and changes nothing.
    pub fn next_apply_fails(&self) {
        self.apply_fails.set(true);
    }
    /// Runs `change` just before the next `apply`, as a concurrent request would.
    pub fn before_next_apply(&self, change: impl FnOnce(&TestHost) + 'static) {
        *self.before_apply.borrow_mut() = Some(Box::new(change));
    }
    /// Warnings logged so far.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.borrow().clone()
    }
    /// The keys held now, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.store.borrow().keys().cloned().collect();
        keys.sort();
        keys
    }
    /// The TTL, in ms, `key` was last written with.
    pub fn ttl_ms(&self, key: &str) -> Option<u64> {
        self.store.borrow().get(key).map(|(_, ttl, _)| *ttl)
    }

    /// From now on, admit `requests` more requests, then report a wait of 1.5 s.
    pub fn set_rate_budget(&self, requests: u32) {
        self.budget.set(Some(requests));
    }

    pub fn edit_demo(&self, edit: impl FnOnce(&mut Client)) {
        self.edit_client(DEMO_ID, edit);
    }
    pub fn edit_client(&self, client_id: &str, edit: impl FnOnce(&mut Client)) {
        let mut clients = self.clients.borrow_mut();
        edit(
            clients
                .iter_mut()
                .find(|c| c.client_id == client_id)
                .expect("a test client"),
        );
    }
    pub fn set_store_down(&self, down: bool) {
        self.store_down.set(down);
    }
    pub fn advance_clock_ms(&self, ms: u64) {
        self.now_ms.set(self.now_ms.get() + ms);
    }
    /// The next two draws of randomness return the same bytes.
    pub fn repeat_randomness_once(&self) {
        self.repeat_next.set(true);
    }
    /// The counts made so far, as `name{labels} by` (`name by` without labels).
    pub fn counts(&self) -> Vec<String> {
        self.counts.borrow().clone()
    }
    /// The flow's steps counted so far, as `step:result` (see `counters::STEPS`).
    pub fn outcomes(&self) -> Vec<String> {
        let steps = crate::counters::STEPS;
        self.counts
            .borrow()
            .iter()
            .filter_map(|count| {
                let (series, _) = count.rsplit_once(' ')?;
                let (name, result) = match series.split_once('{') {
                    Some((name, labels)) => (name, labels.trim_end_matches('}')),
                    None => (series, ""),
                };
                let (step, _) = steps.iter().find(|(_, n)| *n == name)?;
                Some(format!("{step}:{result}"))
            })
            .collect()
    }
    /// The client the logic said the last request authenticated as, forgotten once read.
    pub fn take_authenticated(&self) -> Option<String> {
        self.authenticated.take()
    }
    pub fn entries(&self) -> usize {
        self.store.borrow().len()
    }
    pub fn only_entry(&self) -> (String, Vec<u8>, u64) {
        let store = self.store.borrow();
        assert_eq!(store.len(), 1);
        let (k, (v, ttl, _)) = store.iter().next().unwrap();
        (k.clone(), v.clone(), *ttl)
    }

    /// Fails when the store is down; else lets the TTLs that ran out remove their entries.
    fn store_up(&self) -> Result<(), StoreError> {
        if self.store_down.get() {
            return Err(StoreError::Unavailable("test store is down".into()));
        }
        let now = self.now_ms.get();
        self.store
            .borrow_mut()
            .retain(|_, (_, _, expires)| *expires > now);
        Ok(())
    }

    /// An entry written now with `ttl_ms`.
    fn entry(&self, value: Vec<u8>, ttl_ms: u64) -> Entry {
        (value, ttl_ms, self.now_ms.get() + ttl_ms)
    }
}

impl Host for TestHost {
    fn store_get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store_up()?;
        Ok(self.store.borrow().get(key).map(|(v, _, _)| v.clone()))
    }
    fn store_get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().map(|k| self.store_get(k)).collect()
    }
    /// As the host: every key with one hash tag, or `rejected`.
    fn store_apply(&self, tx: Transaction) -> Result<bool, StoreError> {
        self.store_up()?;
        let mut keys = tx
            .expect
            .iter()
            .map(|(k, _)| k)
            .chain(tx.changes.iter().map(|c| &c.key));
        let tag = tokenginx_syntax::hash_tag(keys.next().expect("a key"));
        if keys.any(|k| tokenginx_syntax::hash_tag(k) != tag) || tx.changes.is_empty() {
            return Err(StoreError::Rejected("keys of several hash tags".into()));
        }
        if self.apply_fails.replace(false) {
            return Err(StoreError::Unavailable(
                "the change was not acknowledged".into(),
            ));
        }
        let concurrent = self.before_apply.borrow_mut().take();
        if let Some(change) = concurrent {
            change(self);
        }
        let mut store = self.store.borrow_mut();
        let holds = |(key, value): &(String, Option<Vec<u8>>)| {
            store.get(key).map(|(v, _, _)| v) == value.as_ref()
        };
        if !tx.expect.iter().all(holds) {
            return Ok(false);
        }
        for change in tx.changes {
            assert!(change.value.is_none() || change.ttl_ms > 0, "a zero TTL");
            match change.value {
                Some(value) => store.insert(change.key, self.entry(value, change.ttl_ms)),
                None => store.remove(&change.key),
            };
        }
        Ok(!self.apply_lands_unseen.replace(false))
    }
    fn store_insert(&self, key: &str, value: &[u8], ttl_ms: u64) -> Result<bool, StoreError> {
        self.store_up()?;
        let mut store = self.store.borrow_mut();
        if store.contains_key(key) {
            return Ok(false);
        }
        store.insert(key.into(), self.entry(value.to_vec(), ttl_ms));
        Ok(true)
    }
    fn store_delete(&self, key: &str) -> Result<bool, StoreError> {
        self.store_up()?;
        Ok(self.store.borrow_mut().remove(key).is_some())
    }
    fn store_set(&self, key: &str, value: &[u8], ttl_ms: u64) -> Result<(), StoreError> {
        self.store_up()?;
        let entry = self.entry(value.to_vec(), ttl_ms);
        self.store.borrow_mut().insert(key.into(), entry);
        Ok(())
    }
    fn store_take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store_up()?;
        Ok(self.store.borrow_mut().remove(key).map(|(v, _, _)| v))
    }
    fn rate_limit(&self, client_id: &str) -> Result<Option<u64>, StoreError> {
        self.store_up()?;
        // As the host since 0.2.2: any id of 1 to 255 bytes (a runtime client's too).
        if client_id.is_empty() || client_id.len() > 255 {
            return Err(StoreError::Rejected("a client id is 1 to 255 bytes".into()));
        }
        match self.budget.get() {
            None => Ok(None),
            Some(0) => Ok(Some(1500)),
            Some(left) => {
                self.budget.set(Some(left - 1));
                Ok(None)
            }
        }
    }
    fn seal(&self, purpose: &str, value: &[u8], ttl_ms: u64) -> Result<String, StoreError> {
        assert!(value.len() <= 16 * 1024, "seal: a value over 16 KiB");
        assert!((1..=3_600_000).contains(&ttl_ms), "seal: ttl out of range");
        let text = format!("sealed{}", crate::record::new_secret(self));
        let expiry = self.now_ms.get() + ttl_ms;
        self.sealed
            .borrow_mut()
            .insert(text.clone(), (purpose.into(), value.into(), expiry));
        Ok(text)
    }
    fn open(&self, purpose: &str, sealed: &str) -> Option<Vec<u8>> {
        let map = self.sealed.borrow();
        let (p, value, expiry) = map.get(sealed)?;
        (p == purpose && self.now_ms.get() < *expiry).then(|| value.clone())
    }
    fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }
    fn random_bytes(&self, len: u32) -> Vec<u8> {
        if self.repeat_next.replace(false) {
            // Hand out the same bytes as the following draw.
            return (self.counter.get() + 1)
                .to_le_bytes()
                .iter()
                .copied()
                .cycle()
                .take(len as usize)
                .collect();
        }
        self.counter.set(self.counter.get() + 1);
        self.counter
            .get()
            .to_le_bytes()
            .iter()
            .copied()
            .cycle()
            .take(len as usize)
            .collect()
    }
    fn log(&self, level: Level, message: &str) {
        if matches!(level, Level::Warn) {
            self.warnings.borrow_mut().push(message.into());
        }
    }
    fn refresh_policy(&self, client_id: &str) -> Option<RefreshPolicy> {
        self.client(client_id).map(|_| self.refresh_policy.get())
    }
    fn token_format(&self, client_id: &str) -> Option<TokenFormat> {
        self.client(client_id)?;
        let jwt = self.jwt_clients.borrow().contains(&client_id.to_owned());
        Some(TokenFormat {
            jwt_access_tokens: jwt,
            access_token_alg: Algorithm::Es256,
            id_token_alg: Algorithm::Rs256,
            audience: vec![AUDIENCE.into(), "https://other-api.test".into()],
            id_token_ttl: 3600,
        })
    }
    /// Not a signature: the test host checks what the real one checks of the claims and
    /// returns a JWS whose "signature" is a digest of its header and payload, for the
    /// logic's tests to read the header and claims and for `verify` to tell an altered
    /// token. The host's own tests sign and verify for real.
    fn sign(&self, purpose: Purpose, alg: Algorithm, claims: &str) -> Result<String, StoreError> {
        let parsed: serde_json::Value = serde_json::from_str(claims).expect("claims are JSON");
        assert_eq!(parsed["iss"], self.issuer(), "sign: iss must be the issuer");
        let exp = parsed["exp"].as_u64().expect("sign: exp is required");
        assert!(
            exp <= self.now_ms.get() / 1000 + 24 * 3600,
            "sign: exp too far"
        );
        let typ = typ(purpose);
        let header = serde_json::json!({"alg": alg.name(), "kid": "test", "typ": typ});
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let (header, payload) = (b64(header.to_string().as_bytes()), b64(claims.as_bytes()));
        let signature = fake_signature(&header, &payload);
        Ok(format!("{header}.{payload}.{signature}"))
    }
    /// Checks what the fake `sign` wrote: the header's `typ`, and the stand-in signature of
    /// this very header and payload.
    fn verify(&self, purpose: Purpose, token: &str) -> Option<String> {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts = token.split('.');
        let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
        let parsed: serde_json::Value = serde_json::from_slice(&b64.decode(header).ok()?).ok()?;
        let typ = typ(purpose);
        let expected = fake_signature(header, payload);
        (parsed["typ"] == typ && signature == expected && parts.next().is_none())
            .then(|| String::from_utf8(b64.decode(payload).ok()?).ok())
            .flatten()
    }
    fn public_keys(&self) -> KeySet {
        KeySet {
            json: r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"test","kid":"test"}]}"#.into(),
            max_age: 120,
        }
    }
    fn issuer(&self) -> String {
        "http://issuer.test".into()
    }
    fn client(&self, client_id: &str) -> Option<Client> {
        self.clients
            .borrow()
            .iter()
            .find(|c| c.client_id == client_id)
            .cloned()
    }
    fn client_defaults(&self) -> crate::Inherited {
        crate::Inherited {
            access_token_ttl: 3600,
            refresh: self.refresh_policy.get(),
            jwt_access_tokens: false,
            id_token_ttl: 3600,
            signs_up_to: Some(3600),
        }
    }
    fn dynamic_registration(&self) -> Option<crate::RegistrationPolicy> {
        self.registration.borrow().clone()
    }
    fn dpop(&self) -> DpopPolicy {
        self.dpop.borrow().clone()
    }
    fn mtls(&self) -> MtlsPolicy {
        self.mtls.get()
    }
    fn client_mtls(&self, client_id: &str) -> Option<MtlsClient> {
        self.mtls_clients.borrow().get(client_id).cloned()
    }
    fn presented_cert(&self) -> Option<Vec<u8>> {
        self.presented.borrow().clone()
    }
    fn client_jwks(&self, client_id: &str) -> Option<String> {
        if client_id == SELF_SIGNED_ID {
            let x5c = base64::engine::general_purpose::STANDARD.encode(CLIENT_CERT);
            return Some(serde_json::json!({"keys": [{"kty": "EC", "x5c": [x5c]}]}).to_string());
        }
        (client_id == KEYED_ID).then(|| {
            let [es256, eddsa] = keyed_keys();
            let (mut es256, mut eddsa) = (es256.jwk(), eddsa.jwk());
            es256["kid"] = "es".into();
            eddsa["kid"] = "ed".into();
            serde_json::json!({ "keys": [es256, eddsa] }).to_string()
        })
    }
    fn verify_with_key(&self, jwk: &str, token: &str) -> bool {
        requests::verify_with_key(jwk, token)
    }
    fn verify_client_secret_jwt(&self, client_id: &str, token: &str) -> bool {
        // As the host: HS256 under the configured secret, for the client_secret_jwt client.
        let claims = token.split('.').nth(1).unwrap_or_default();
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .ok()
            .and_then(|c| serde_json::from_slice(&c).ok())
            .unwrap_or_default();
        client_id == MAC_ID && token == hs256(MAC_SECRET, claims)
    }
    fn charge_registration(&self, key: &str) -> Result<Option<u64>, StoreError> {
        self.store_up()?;
        self.registrations_charged.borrow_mut().push(key.to_owned());
        let spent = self
            .registrations_charged
            .borrow()
            .iter()
            .filter(|k| *k == key)
            .count();
        Ok((spent as u32 > self.registration_budget.get()).then_some(60_000))
    }
    fn configured_clients(&self) -> Vec<String> {
        self.clients
            .borrow()
            .iter()
            .map(|c| c.client_id.clone())
            .collect()
    }
    fn scopes_supported(&self) -> Vec<String> {
        let mut scopes: Vec<String> = self
            .clients
            .borrow()
            .iter()
            .flat_map(|c| c.scopes.clone())
            .collect();
        scopes.sort();
        scopes.dedup();
        scopes
    }
    fn registration(&self, client_id: &str) -> Option<Registration> {
        let redirect = match client_id {
            WEB_ID => WEB_REDIRECT,
            NATIVE_ID => NATIVE_REDIRECT,
            _ => {
                let method = match client_id {
                    TLS_ID => TLS_CLIENT_AUTH,
                    SELF_SIGNED_ID => SELF_SIGNED_TLS_CLIENT_AUTH,
                    _ => "client_secret_basic",
                };
                return self.client(client_id).map(|_| Registration {
                    client_name: String::new(),
                    redirect_uris: Vec::new(),
                    token_endpoint_auth_method: method.into(),
                    skip_consent: false,
                });
            }
        };
        Some(Registration {
            client_name: format!("The {client_id} app"),
            redirect_uris: vec![redirect.into()],
            token_endpoint_auth_method: match client_id {
                NATIVE_ID => "none".into(),
                _ => "client_secret_basic".into(),
            },
            skip_consent: false,
        })
    }
    fn login_flow(&self) -> Option<LoginFlow> {
        Some(LoginFlow {
            login_url: "https://login.test/login".into(),
            consent_url: "https://login.test/consent".into(),
            authorization_code_ttl: 60,
        })
    }
    fn authenticated(&self, client_id: &str) {
        *self.authenticated.borrow_mut() = Some(client_id.into());
    }
    fn count(&self, name: &str, labels: &[&str], by: u64) {
        let count = match labels.is_empty() {
            true => format!("{name} {by}"),
            false => format!("{name}{{{}}} {by}", labels.join(",")),
        };
        self.counts.borrow_mut().push(count);
    }
}

/// The JWS `typ` the host sets for `purpose`.
fn typ(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::IdToken => "JWT",
        Purpose::AccessToken => "at+jwt",
    }
}

/// The test host's stand-in for a signature: base64url(SHA-256(header "." payload)).
fn fake_signature(header: &str, payload: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(format!("{header}.{payload}").as_bytes()))
}
