//! The signing keys: what the guest's `keys` import signs ID tokens and JWT access tokens
//! with, and the public key set (JWKS) it serves. The guest hands the host a token's claims
//! and gets the compact JWS back; it never holds a private key.
//!
//! Each algorithm (RS256, ES256, EdDSA) has its own keys, kept in the store under
//! [`SIGNING_KEYS_KEY`] with the seal ring's care: generated here, each private key (PKCS#8)
//! wrapped under a key derived from `keys.secret`, written with compare-and-set so that of
//! replicas rotating at once one writes and the others take what it wrote, and read again
//! every [`Schedule::refresh`]. A key goes through three states, from times it carries, so
//! every replica agrees on them without talking:
//!
//! - *next*: published in the JWKS, not signing, for `keys.publish_ahead`, so that a
//!   verifier that caches the set (for at most [`Schedule::max_age`]) knows it before it
//!   meets a token it signed;
//! - *active*: the newest key whose time has come signs, for `keys.rotate_every`;
//! - *retired*: once its successor signs, still published until every token it signed has
//!   expired (the longest lifetime the host signs for, plus [`SKEW`]), then gone.
//!
//! `kid` is the key's RFC 7638 thumbprint. The host checks what it signs: a JSON object
//! naming the issuer, expiring within the longest lifetime, so that a guest cannot sign a
//! token that outlives its key's publication.

use super::{now_ms, Unwrap, Wrapping};
use crate::contract::keys::{Algorithm, Purpose};
use crate::store::{StoreError, StoreResult, TokenStore};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair, RsaPublicKeyComponents,
    UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

/// Where the signing keys live in the store: one key, its own cluster slot.
pub const SIGNING_KEYS_KEY: &str = "oauth:keyring:{sign}";
/// The longest a signed token may live (the guests' longest access token lifetime).
pub const MAX_SIGNED_TTL: Duration = Duration::from_secs(24 * 3600);
/// Clock differences between replicas and verifiers that a retired key's publication
/// allows for.
pub const SKEW: Duration = Duration::from_secs(60);
/// The largest claims `sign` takes.
pub const MAX_CLAIMS_BYTES: usize = 16 * 1024;
/// The most keys of one algorithm the ring may hold (next, active and retired): the
/// schedule is refused at start when it would need more.
pub const MAX_KEYS_PER_ALGORITHM: u64 = 32;
const RSA_BITS: usize = 2048;
/// Every algorithm the host signs with; RS256 first, as OpenID Connect requires it.
pub const ALGORITHMS: [Algorithm; 3] = [Algorithm::Rs256, Algorithm::Es256, Algorithm::Eddsa];

/// The JWS name of an algorithm.
pub fn name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::Rs256 => "RS256",
        Algorithm::Es256 => "ES256",
        Algorithm::Eddsa => "EdDSA",
    }
}

/// An algorithm by its JWS name.
pub fn algorithm(name: &str) -> Option<Algorithm> {
    ALGORITHMS.into_iter().find(|a| self::name(*a) == name)
}

/// When keys change, from `keys.rotate_every` and `keys.publish_ahead`, and how long the
/// tokens they sign live at most.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    pub rotate_every: Duration,
    pub publish_ahead: Duration,
    /// The longest lifetime of a token the host signs (ID tokens, JWT access tokens).
    pub longest_token: Duration,
}

impl Schedule {
    /// How often each replica reads the keys again: often enough that every replica knows
    /// a next key well before it signs (a quarter of the time it is published ahead).
    pub fn refresh(&self) -> Duration {
        (self.publish_ahead / 4).clamp(Duration::from_millis(250), Duration::from_secs(30))
    }

    /// For how long a verifier may cache the JWKS: a next key is published
    /// `publish_ahead` before it signs, and a replica may learn of it a refresh late, so a
    /// set cached this long (with a refresh to spare for clocks) holds every key that can
    /// have signed a token the verifier meets.
    pub fn max_age(&self) -> u32 {
        self.publish_ahead
            .saturating_sub(self.refresh() * 2)
            .as_secs()
            .min(u32::MAX as u64) as u32
    }

    /// How long a key stays published after its successor took over: until the last
    /// token it signed has expired.
    fn retired_for(&self) -> Duration {
        self.longest_token + SKEW
    }

    /// The most keys of one algorithm this schedule keeps at once.
    pub fn keys_held(&self) -> u64 {
        let retired = self
            .retired_for()
            .as_millis()
            .div_ceil(self.rotate_every.as_millis());
        retired as u64 + 2
    }
}

/// What a key is now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Next,
    Active,
    Retired,
}

impl State {
    pub const ALL: [State; 3] = [State::Next, State::Active, State::Retired];

    pub fn name(self) -> &'static str {
        match self {
            State::Next => "next",
            State::Active => "active",
            State::Retired => "retired",
        }
    }
}

/// The signing keys one replica holds, refreshed from the store.
pub struct SigningKeys {
    /// Derived from `keys.secret`: wraps and unwraps the private keys in the store.
    wrapping: Wrapping,
    schedule: Schedule,
    /// What every signed token's `iss` must be.
    issuer: String,
    store: Arc<dyn TokenStore>,
    held: RwLock<Held>,
    rng: SystemRandom,
}

/// The keys as held: unwrapped, the ring as the store had it (to write back if the store
/// lost it), and the JWKS, made once a refresh.
#[derive(Default)]
struct Held {
    keys: Vec<Arc<Key>>,
    stored: Stored,
    jwks: Arc<str>,
}

/// One signing key, unwrapped.
struct Key {
    kid: String,
    alg: Algorithm,
    /// From when it signs (ms since the epoch).
    active_from_ms: u64,
    pair: Pair,
    /// Its public JWK.
    jwk: Value,
    /// The JWS headers it signs under, base64url: an ID token's and an access token's.
    headers: [String; 2],
    /// Its public key, to verify with.
    public: Public,
}

enum Public {
    Rsa(RsaPublicKeyComponents<Vec<u8>>),
    Ec(Vec<u8>),
    Ed(Vec<u8>),
}

/// What `verify` reads of a JWS header.
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    kid: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    typ: Option<std::borrow::Cow<'a, str>>,
}

/// What `sign` reads of the claims it is given; the rest passes through untouched.
#[derive(Deserialize)]
struct Checked<'a> {
    #[serde(borrow)]
    iss: Option<std::borrow::Cow<'a, str>>,
    exp: Option<u64>,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// The ring as the store keeps it.
#[derive(Serialize, Deserialize, Clone, Default)]
struct Stored {
    keys: Vec<StoredKey>,
}

#[derive(Serialize, Deserialize, Clone)]
struct StoredKey {
    kid: String,
    /// The JWS name.
    alg: String,
    created_ms: u64,
    active_from_ms: u64,
    /// The PKCS#8 private key, wrapped under `keys.secret` ([`Wrapping::wrap`]).
    wrapped: String,
}

/// Why the signing keys could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeysError {
    #[error("the signing keys in the store ({SIGNING_KEYS_KEY}): {0}")]
    Store(#[from] StoreError),
    #[error(
        "it does not open the signing keys in the store ({SIGNING_KEYS_KEY}), which were \
         written under another secret: give every replica the same keys.secret"
    )]
    WrongSecret,
    #[error(
        "the signing keys in the store ({SIGNING_KEYS_KEY}) are not ones this host wrote: {0}"
    )]
    Malformed(String),
}

impl SigningKeys {
    /// The keys in `store`, made there if absent (one active key of each algorithm), their
    /// private parts opened with `secret`.
    pub async fn load(
        store: Arc<dyn TokenStore>,
        secret: &[u8],
        issuer: String,
        schedule: Schedule,
    ) -> Result<Arc<SigningKeys>, SigningKeysError> {
        let keys = Arc::new(SigningKeys {
            wrapping: Wrapping::new(secret, b"wrap signing keys v1"),
            schedule,
            issuer,
            store,
            held: RwLock::default(),
            rng: SystemRandom::new(),
        });
        keys.refresh().await?;
        Ok(keys)
    }

    pub fn schedule(&self) -> Schedule {
        self.schedule
    }

    /// Reads the keys again and, when a key is due (or one gone), writes the ring with it
    /// by compare-and-set; a ring the store lost is written back from the keys held. Every
    /// key is unwrapped before anything is written, so a replica with another secret
    /// changes nothing. On an error the keys held stay in use.
    pub async fn refresh(&self) -> Result<(), SigningKeysError> {
        let (bytes, mut stored) = match self.store.get(SIGNING_KEYS_KEY.to_owned()).await? {
            Some(bytes) => {
                let stored = parse(&bytes)?;
                (Some(bytes), stored)
            }
            None => (None, self.held.read().expect("keys lock").stored.clone()),
        };
        let mut keys = self.unwrap_all(&stored)?;
        let lost = bytes.is_none() && !stored.keys.is_empty();
        let now = now_ms();
        let next = match due(&stored, &self.schedule, now) {
            Some(due) => Some(self.rotated(&stored, &due, now).await?),
            None => self
                .without_gone(&stored, now)
                .or(lost.then(|| stored.clone())),
        };
        if let Some(next) = next {
            let value = serde_json::to_vec(&next).expect("rings serialize");
            let ttl = self.ring_ttl();
            stored = match super::replace_ring(&*self.store, SIGNING_KEYS_KEY, bytes, value, ttl)
                .await?
            {
                None => {
                    tracing::info!(keys = next.keys.len(), "signing keys written to the store");
                    next
                }
                // Another replica wrote first: take what it wrote.
                Some(Some(bytes)) => parse(&bytes)?,
                Some(None) => {
                    return Err(SigningKeysError::Malformed("removed while written".into()))
                }
            };
            keys = self.unwrap_all(&stored)?;
        }
        let jwks = jwk_set(&keys);
        *self.held.write().expect("keys lock") = Held { keys, stored, jwks };
        Ok(())
    }

    /// How long the ring's record lives unless rewritten: past the next rotation and the
    /// retirement of every key in it, so only a stopped service lets it expire.
    fn ring_ttl(&self) -> Duration {
        (self.schedule.rotate_every + self.schedule.retired_for()) * 2
    }

    /// The keys of `stored`, unwrapped; those already held are not unwrapped again.
    fn unwrap_all(&self, stored: &Stored) -> Result<Vec<Arc<Key>>, SigningKeysError> {
        let held: HashMap<String, Arc<Key>> = self
            .held
            .read()
            .expect("keys lock")
            .keys
            .iter()
            .map(|k| (k.kid.clone(), k.clone()))
            .collect();
        stored
            .keys
            .iter()
            .map(|k| match held.get(&k.kid) {
                Some(key) if key.active_from_ms == k.active_from_ms => Ok(key.clone()),
                _ => self.unwrap_key(k).map(Arc::new),
            })
            .collect()
    }

    fn unwrap_key(&self, stored: &StoredKey) -> Result<Key, SigningKeysError> {
        let malformed =
            |what: &str| SigningKeysError::Malformed(format!("key {}: {what}", stored.kid));
        let alg = algorithm(&stored.alg).ok_or_else(|| malformed("unknown algorithm"))?;
        let pkcs8 = match self.wrapping.unwrap(&stored.kid, &stored.wrapped) {
            Ok(pkcs8) => pkcs8,
            Err(Unwrap::WrongSecret) => return Err(SigningKeysError::WrongSecret),
            Err(Unwrap::Malformed) => return Err(malformed("not wrapped by this host")),
        };
        let key = key_from_pkcs8(alg, &pkcs8, stored.active_from_ms).map_err(|e| malformed(&e))?;
        if key.kid != stored.kid {
            return Err(malformed("its kid is not its thumbprint"));
        }
        Ok(key)
    }

    /// `stored` with a new key of each algorithm in `due`, and without the keys gone.
    async fn rotated(
        &self,
        stored: &Stored,
        due: &[Algorithm],
        now: u64,
    ) -> Result<Stored, SigningKeysError> {
        let mut next = self
            .without_gone(stored, now)
            .unwrap_or_else(|| stored.clone());
        for &alg in due {
            let first = !stored.keys.iter().any(|k| k.alg == name(alg));
            // RSA key generation takes tens of milliseconds: off the request threads.
            let pkcs8 = tokio::task::spawn_blocking(move || generate(alg))
                .await
                .map_err(|e| SigningKeysError::Malformed(format!("key generation: {e}")))?;
            let key = key_from_pkcs8(alg, &pkcs8, 0).map_err(SigningKeysError::Malformed)?;
            // Timed from when it exists: the generation (tens of milliseconds for RSA, more
            // on a loaded machine) must not eat into the time it is published ahead.
            let now = now_ms();
            next.keys.push(StoredKey {
                wrapped: self.wrapping.wrap(&key.kid, &pkcs8),
                kid: key.kid,
                alg: name(alg).to_owned(),
                created_ms: now,
                // The first key of an algorithm signs at once: nothing was signed with
                // that algorithm before, so no verifier waits for it.
                active_from_ms: if first {
                    now
                } else {
                    now + self.schedule.publish_ahead.as_millis() as u64
                },
            });
        }
        Ok(next)
    }

    /// `stored` without the keys no token in its time can need (retired for longer than
    /// the longest token lifetime); none when none is gone.
    fn without_gone(&self, stored: &Stored, now: u64) -> Option<Stored> {
        let retired_for = self.schedule.retired_for().as_millis() as u64;
        let gone =
            |k: &StoredKey| successor(stored, k).is_some_and(|from| from + retired_for < now);
        if !stored.keys.iter().any(gone) {
            return None;
        }
        Some(Stored {
            keys: stored.keys.iter().filter(|k| !gone(k)).cloned().collect(),
        })
    }

    /// `claims` signed for `purpose` with the active key of `alg`: a compact JWS.
    pub fn sign(&self, purpose: Purpose, alg: Algorithm, claims: &str) -> StoreResult<String> {
        self.sign_at(purpose, alg, claims, now_ms())
    }

    fn sign_at(
        &self,
        purpose: Purpose,
        alg: Algorithm,
        claims: &str,
        now: u64,
    ) -> StoreResult<String> {
        let rejected = |why: String| Err(StoreError::Rejected(format!("keys.sign: {why}")));
        if claims.len() > MAX_CLAIMS_BYTES {
            return rejected(format!(
                "{} bytes of claims; at most {MAX_CLAIMS_BYTES}",
                claims.len()
            ));
        }
        // An object (serde would read a struct from an array too), read for the two
        // claims checked without building the rest.
        let parsed = match claims.trim_start().starts_with('{') {
            true => serde_json::from_str::<Checked>(claims).ok(),
            false => None,
        };
        let Some(parsed) = parsed else {
            return rejected("the claims are not a JSON object".into());
        };
        if parsed.iss.as_deref() != Some(self.issuer.as_str()) {
            return rejected(format!("iss must be the issuer, {:?}", self.issuer));
        }
        let latest = now / 1000 + self.schedule.longest_token.as_secs() + 1;
        match parsed.exp {
            Some(exp) if exp <= latest => {}
            _ => {
                return rejected(format!(
                    "exp must be Unix seconds at most {}s away",
                    self.schedule.longest_token.as_secs()
                ))
            }
        }
        let key = self.active(alg, now).ok_or_else(|| {
            StoreError::Unavailable(format!("keys.sign: no {} key is active", name(alg)))
        })?;
        let header = match purpose {
            Purpose::IdToken => &key.headers[0],
            Purpose::AccessToken => &key.headers[1],
        };
        let mut jws = String::with_capacity(header.len() + claims.len() * 4 / 3 + 360);
        jws.push_str(header);
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(claims, &mut jws);
        let signature = key.sign(&self.rng, jws.as_bytes());
        jws.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut jws);
        Ok(jws)
    }

    /// The claims of `token` if it is a compact JWS whose signature verifies under a key
    /// held now (next, active or retired) and whose `typ` is `purpose`'s.
    pub fn verify(&self, purpose: Purpose, token: &str) -> Option<String> {
        // A token longer than the longest this host signs is not one of its own.
        if token.len() > MAX_CLAIMS_BYTES * 2 {
            return None;
        }
        let (signed, signature) = token.rsplit_once('.')?;
        let (header, payload) = signed.split_once('.')?;
        let header = URL_SAFE_NO_PAD.decode(header).ok()?;
        let header: Header = serde_json::from_slice(&header).ok()?;
        if header.typ.as_deref() != Some(typ(purpose)) {
            return None;
        }
        let key = {
            let held = self.held.read().expect("keys lock");
            held.keys.iter().find(|k| k.kid == header.kid)?.clone()
        };
        if name(key.alg) != header.alg {
            return None;
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let message = signed.as_bytes();
        let verified = match &key.public {
            Public::Rsa(public) => public.verify(&RSA_PKCS1_2048_8192_SHA256, message, &signature),
            Public::Ec(point) => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).verify(message, &signature)
            }
            Public::Ed(public) => {
                UnparsedPublicKey::new(&ED25519, public).verify(message, &signature)
            }
        };
        verified.ok()?;
        String::from_utf8(URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
    }

    /// The key of `alg` that signs at `now`.
    fn active(&self, alg: Algorithm, now: u64) -> Option<Arc<Key>> {
        let held = self.held.read().expect("keys lock");
        signing(&held.keys, alg, now).cloned()
    }

    /// The public keys, as a JWK set.
    pub fn jwks(&self) -> Arc<str> {
        self.held.read().expect("keys lock").jwks.clone()
    }

    /// How many keys of each algorithm are in each state now.
    pub fn states(&self) -> Vec<(Algorithm, State, usize)> {
        self.states_at(now_ms())
    }

    fn states_at(&self, now: u64) -> Vec<(Algorithm, State, usize)> {
        let held = self.held.read().expect("keys lock");
        let mut out = Vec::new();
        for alg in ALGORITHMS {
            let active = signing(&held.keys, alg, now).map(|k| k.kid.as_str());
            let mut counts = [0; 3];
            for key in held.keys.iter().filter(|k| k.alg == alg) {
                let state = match key.active_from_ms > now {
                    true => State::Next,
                    false if Some(key.kid.as_str()) == active => State::Active,
                    false => State::Retired,
                };
                counts[state as usize] += 1;
            }
            out.extend(
                State::ALL
                    .into_iter()
                    .map(|state| (alg, state, counts[state as usize])),
            );
        }
        out
    }

    /// Seconds until a key of `alg` is due to be made (negative: overdue).
    pub fn rotation_due_in(&self, alg: Algorithm) -> i64 {
        let held = self.held.read().expect("keys lock");
        let due = due_at(&held.stored, &self.schedule, alg).unwrap_or(0);
        (due as i64 - now_ms() as i64) / 1000
    }

    /// Keys held now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.held.read().expect("keys lock").keys.len()
    }
}

/// The algorithms whose next key is due: none held yet, or the newest signs (or will) for
/// less than `publish_ahead` more before its `rotate_every` is up.
fn due(stored: &Stored, schedule: &Schedule, now: u64) -> Option<Vec<Algorithm>> {
    let due: Vec<Algorithm> = ALGORITHMS
        .into_iter()
        .filter(|&alg| due_at(stored, schedule, alg).is_none_or(|at| now >= at))
        .collect();
    (!due.is_empty()).then_some(due)
}

/// When the next key of `alg` is due (ms since the epoch): `publish_ahead` before the
/// newest one's `rotate_every` is up; none when there is none yet.
fn due_at(stored: &Stored, schedule: &Schedule, alg: Algorithm) -> Option<u64> {
    let newest = stored
        .keys
        .iter()
        .filter(|k| k.alg == name(alg))
        .map(|k| k.active_from_ms)
        .max()?;
    let turn = schedule.rotate_every.saturating_sub(schedule.publish_ahead);
    Some(newest + turn.as_millis() as u64)
}

/// The JWS `typ` of a token for `purpose`: an ID token's, or RFC 9068's for an access token.
fn typ(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::IdToken => "JWT",
        Purpose::AccessToken => "at+jwt",
    }
}

/// The key of `alg` among `keys` that signs at `now`: the newest whose time has come.
fn signing(keys: &[Arc<Key>], alg: Algorithm, now: u64) -> Option<&Arc<Key>> {
    keys.iter()
        .filter(|k| k.alg == alg && k.active_from_ms <= now)
        .max_by_key(|k| k.active_from_ms)
}

/// When the key after `key` (of its algorithm) signs from, if there is one.
fn successor(stored: &Stored, key: &StoredKey) -> Option<u64> {
    stored
        .keys
        .iter()
        .filter(|k| k.alg == key.alg && k.active_from_ms > key.active_from_ms)
        .map(|k| k.active_from_ms)
        .min()
}

impl Key {
    fn sign(&self, rng: &SystemRandom, message: &[u8]) -> Vec<u8> {
        match &self.pair {
            Pair::Rsa(pair) => {
                let mut signature = vec![0; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, rng, message, &mut signature)
                    .expect("RSA signs");
                signature
            }
            Pair::Ec(pair) => pair
                .sign(rng, message)
                .expect("ECDSA signs")
                .as_ref()
                .to_vec(),
            Pair::Ed(pair) => pair.sign(message).as_ref().to_vec(),
        }
    }
}

/// A new private key of `alg`, as PKCS#8.
pub(super) fn generate(alg: Algorithm) -> Vec<u8> {
    let rng = SystemRandom::new();
    match alg {
        Algorithm::Rs256 => {
            use rsa::pkcs8::EncodePrivateKey as _;
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS)
                .expect("RSA key generation");
            key.to_pkcs8_der()
                .expect("PKCS#8 encoding")
                .as_bytes()
                .to_vec()
        }
        Algorithm::Es256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("P-256 key generation")
            .as_ref()
            .to_vec(),
        Algorithm::Eddsa => Ed25519KeyPair::generate_pkcs8(&rng)
            .expect("Ed25519 key generation")
            .as_ref()
            .to_vec(),
    }
}

/// The key of `alg` in `pkcs8`, with its public JWK and thumbprint.
fn key_from_pkcs8(alg: Algorithm, pkcs8: &[u8], active_from_ms: u64) -> Result<Key, String> {
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let (pair, public, members) = match alg {
        Algorithm::Rs256 => {
            let pair = RsaKeyPair::from_pkcs8(pkcs8).map_err(|e| format!("RSA: {e}"))?;
            let public: RsaPublicKeyComponents<Vec<u8>> = pair.public().into();
            // RFC 7638: the required members, in lexicographic order.
            let members = json!({"e": b64(&public.e), "kty": "RSA", "n": b64(&public.n)});
            (Pair::Rsa(pair), Public::Rsa(public), members)
        }
        Algorithm::Es256 => {
            let pair = EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                pkcs8,
                &SystemRandom::new(),
            )
            .map_err(|e| format!("P-256: {e}"))?;
            // An uncompressed point: 0x04, x, y.
            let point = pair.public_key().as_ref();
            let members = json!({"crv": "P-256", "kty": "EC", "x": b64(&point[1..33]), "y": b64(&point[33..65])});
            let public = Public::Ec(point.to_vec());
            (Pair::Ec(pair), public, members)
        }
        Algorithm::Eddsa => {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8)
                .map_err(|e| format!("Ed25519: {e}"))?;
            let members =
                json!({"crv": "Ed25519", "kty": "OKP", "x": b64(pair.public_key().as_ref())});
            let public = Public::Ed(pair.public_key().as_ref().to_vec());
            (Pair::Ed(pair), public, members)
        }
    };
    // serde_json's maps keep keys sorted, and the members hold no whitespace: the
    // thumbprint's canonical form.
    let kid = b64(&Sha256::digest(members.to_string().as_bytes()));
    let header = |typ: &str| {
        b64(json!({"alg": name(alg), "kid": kid, "typ": typ})
            .to_string()
            .as_bytes())
    };
    // An ID token's, then an access token's.
    let headers = [
        header(typ(Purpose::IdToken)),
        header(typ(Purpose::AccessToken)),
    ];
    let mut jwk = members;
    jwk["use"] = "sig".into();
    jwk["alg"] = name(alg).into();
    jwk["kid"] = kid.clone().into();
    Ok(Key {
        kid,
        alg,
        active_from_ms,
        pair,
        jwk,
        headers,
        public,
    })
}

/// The JWK set of `keys`: the next, active and retired keys of every algorithm.
fn jwk_set(keys: &[Arc<Key>]) -> Arc<str> {
    let keys: Vec<&Value> = keys.iter().map(|k| &k.jwk).collect();
    json!({ "keys": keys }).to_string().into()
}

fn parse(bytes: &[u8]) -> Result<Stored, SigningKeysError> {
    serde_json::from_slice(bytes).map_err(|e| SigningKeysError::Malformed(e.to_string()))
}

/// Refreshes `keys` every [`Schedule::refresh`] while anything else holds them, and sets
/// the key metrics after each.
pub fn spawn_refresh(keys: &Arc<SigningKeys>, metrics: Arc<crate::metrics::Metrics>) {
    let period = keys.schedule.refresh();
    let keys: Weak<SigningKeys> = Arc::downgrade(keys);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is at once: `load` has just read the keys.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(keys) = keys.upgrade() else { return };
            if let Err(e) = keys.refresh().await {
                tracing::warn!("signing keys not refreshed (the ones held stay in use): {e}");
            }
            metrics.set_signing_keys(&keys);
        }
    });
}

#[cfg(test)]
mod tests;
