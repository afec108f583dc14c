//! The sealing keys: what the guest's `seal` import seals and opens with, so that state can
//! travel inside a URL or a cookie instead of sitting in the store. The guest never sees a
//! key.
//!
//! Keys are generated here, kept in the store under [`KEYRING_KEY`], each wrapped
//! (AES-256-GCM) under a key derived from the operator's `keys.secret`, so every replica
//! sharing the store seals and opens with the same keys and the store alone reveals none.
//! Each replica reads the ring at start and every [`REFRESH`]; the first to see the newest
//! key older than `keys.rotate_after` adds a successor with compare-and-set. A new key is
//! published [`PUBLISH_AHEAD`] before anyone seals with it, so that every replica knows it
//! before it meets a text sealed with it; a key that stopped sealing is kept for
//! [`MAX_SEAL_TTL`] more, so that no sealed text still in its time is lost to a rotation.
//!
//! A sealed text is `base64url(version ‖ key id ‖ expiry ‖ salt ‖ ciphertext ‖ tag)`, the
//! purpose, version, key id and expiry authenticated with it: it opens for one purpose, until
//! its expiry, and not after a byte of it changed. Each text is sealed under a key of its
//! own, derived (HKDF-SHA256) from the ring's key and its 128-bit random salt, so a key may
//! seal any number of texts: no GCM nonce is ever used twice under one key.

use super::{now_ms, Unwrap, Wrapping};
use crate::store::{StoreError, StoreResult, TokenStore};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

/// Where the ring lives in the store: one key, its own cluster slot.
pub const KEYRING_KEY: &str = "oauth:keyring:{seal}";
/// How long the ring's record lives unless rewritten; every rotation rewrites it, and
/// `keys.rotate_after` is at most 7 days.
const KEYRING_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often each replica reads the ring again.
pub const REFRESH: Duration = Duration::from_secs(30);
/// How long a new key is known before it seals: three refreshes.
const PUBLISH_AHEAD: Duration = Duration::from_secs(90);
/// The longest a text may stay sealed (`seal`'s `ttl-ms`).
pub const MAX_SEAL_TTL: Duration = Duration::from_secs(3600);
/// The largest value `seal` takes.
pub const MAX_SEAL_BYTES: usize = 16 * 1024;

const VERSION: u8 = 1;
const KID_LEN: usize = 8;
/// Version, key id and expiry (ms since the epoch, big-endian).
const HEADER_LEN: usize = 1 + KID_LEN + 8;
/// The salt of a text's own key.
const SALT_LEN: usize = 16;
const TAG_LEN: usize = 16;

/// The keys one replica seals and opens with, refreshed from the store.
pub struct Keyring {
    /// Derived from `keys.secret`: wraps and unwraps the ring's keys in the store.
    wrapping: Wrapping,
    rotate_after: Duration,
    store: Arc<dyn TokenStore>,
    /// The keys, unwrapped, and the ring as the store had them, to write back if the store
    /// lost it (a flush, a restart without persistence).
    keys: RwLock<(Vec<Key>, Stored)>,
}

/// One sealing key, unwrapped.
struct Key {
    id: [u8; KID_LEN],
    /// From when it seals (ms since the epoch); before, it only opens.
    seals_from_ms: u64,
    /// What each text's own key is derived from.
    prk: ring::hkdf::Prk,
}

/// The ring as the store keeps it.
#[derive(Serialize, Deserialize, Clone, Default)]
struct Stored {
    keys: Vec<StoredKey>,
}

#[derive(Serialize, Deserialize, Clone)]
struct StoredKey {
    /// Hex, 16 digits.
    kid: String,
    created_ms: u64,
    seals_from_ms: u64,
    /// Base64 of nonce ‖ the key wrapped under the secret's key ‖ tag.
    wrapped: String,
}

/// Why the ring could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("the keyring in the store ({KEYRING_KEY}): {0}")]
    Store(#[from] StoreError),
    #[error(
        "it does not open the keyring in the store ({KEYRING_KEY}), which was written under \
         another secret: give every replica the same keys.secret"
    )]
    WrongSecret,
    #[error("the keyring in the store ({KEYRING_KEY}) is not one this host wrote: {0}")]
    Malformed(String),
}

impl Keyring {
    /// The ring in `store`, made there if absent, its keys opened with `secret`. A ring
    /// written under another secret is an error: two secrets would make two rings' worth of
    /// sealed text that only half the replicas open.
    pub async fn load(
        store: Arc<dyn TokenStore>,
        secret: &[u8],
        rotate_after: Duration,
    ) -> Result<Arc<Keyring>, KeyringError> {
        let ring = Arc::new(Keyring {
            wrapping: Wrapping::new(secret, b"wrap sealing keys v1"),
            rotate_after,
            store,
            keys: RwLock::default(),
        });
        ring.refresh().await?;
        Ok(ring)
    }

    /// Reads the ring again and, when the newest key is due, adds one (and retires old ones)
    /// with compare-and-set. Every key is unwrapped before anything is written, so a replica
    /// with another secret changes nothing; a ring the store lost is written back from the
    /// keys held. On an error the keys held stay in use.
    pub async fn refresh(&self) -> Result<(), KeyringError> {
        let (bytes, mut stored) = match self.store.get(KEYRING_KEY.to_owned()).await? {
            Some(bytes) => {
                let stored = parse(&bytes)?;
                (Some(bytes), stored)
            }
            None => (None, self.keys.read().expect("keyring lock").1.clone()),
        };
        let mut keys = self.unwrap_all(&stored)?;
        let lost = bytes.is_none() && !stored.keys.is_empty();
        if let Some(next) = self
            .rotated(&stored, now_ms())
            .or(lost.then(|| stored.clone()))
        {
            let value = serde_json::to_vec(&next).expect("rings serialize");
            let ttl = KEYRING_TTL;
            stored = match super::replace_ring(&*self.store, KEYRING_KEY, bytes, value, ttl).await?
            {
                None => {
                    tracing::info!(keys = next.keys.len(), "sealing keys written to the store");
                    next
                }
                // Another replica wrote first: take what it wrote.
                Some(Some(bytes)) => parse(&bytes)?,
                Some(None) => return Err(KeyringError::Malformed("removed while written".into())),
            };
            keys = self.unwrap_all(&stored)?;
        }
        *self.keys.write().expect("keyring lock") = (keys, stored);
        Ok(())
    }

    fn unwrap_all(&self, stored: &Stored) -> Result<Vec<Key>, KeyringError> {
        stored.keys.iter().map(|k| self.unwrap_key(k)).collect()
    }

    /// The ring with a new key when the newest is older than `rotate_after` (or there is
    /// none), and without the keys no text in its time can need; none when it stays.
    fn rotated(&self, stored: &Stored, now: u64) -> Option<Stored> {
        let newest = stored.keys.iter().map(|k| k.created_ms).max();
        let due =
            newest.is_none_or(|created| now >= created + self.rotate_after.as_millis() as u64);
        if !due {
            return None;
        }
        let mut keys = stored.keys.clone();
        let first = keys.is_empty();
        let mut id = [0u8; KID_LEN];
        getrandom::fill(&mut id).expect("the OS random source");
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("the OS random source");
        let kid = hex::encode(id);
        keys.push(StoredKey {
            wrapped: self.wrapping.wrap(&kid, &secret),
            kid,
            created_ms: now,
            // The first key seals at once: no replica can know another yet.
            seals_from_ms: if first {
                now
            } else {
                now + PUBLISH_AHEAD.as_millis() as u64
            },
        });
        // A key is needed while a text it sealed can be in its time: until its successor
        // has sealed for MAX_SEAL_TTL.
        let keep_after = now.saturating_sub(MAX_SEAL_TTL.as_millis() as u64 + 60_000);
        keys.sort_by_key(|k| k.seals_from_ms);
        // Each key's successor, in the order `retain` visits them; the newest has none.
        let successors: Vec<u64> = keys.iter().skip(1).map(|k| k.seals_from_ms).collect();
        let mut successors = successors.into_iter();
        keys.retain(|_| successors.next().is_none_or(|s| s > keep_after));
        Some(Stored { keys })
    }

    fn unwrap_key(&self, stored: &StoredKey) -> Result<Key, KeyringError> {
        let malformed = || KeyringError::Malformed(format!("key {}", stored.kid));
        let id: [u8; KID_LEN] = hex::decode(&stored.kid)
            .ok()
            .and_then(|id| id.try_into().ok())
            .ok_or_else(malformed)?;
        let secret = match self.wrapping.unwrap(&stored.kid, &stored.wrapped) {
            Ok(secret) if secret.len() == 32 => secret,
            Err(Unwrap::WrongSecret) => return Err(KeyringError::WrongSecret),
            _ => return Err(malformed()),
        };
        Ok(Key {
            id,
            seals_from_ms: stored.seals_from_ms,
            prk: ring::hkdf::Prk::new_less_safe(ring::hkdf::HKDF_SHA256, &secret),
        })
    }

    /// `value` sealed for `purpose`, opening until `ttl` from now.
    pub fn seal(&self, purpose: &str, value: &[u8], ttl: Duration) -> StoreResult<String> {
        if value.len() > MAX_SEAL_BYTES {
            return Err(StoreError::Rejected(format!(
                "seal: {} bytes; at most {MAX_SEAL_BYTES}",
                value.len()
            )));
        }
        if ttl.is_zero() || ttl > MAX_SEAL_TTL {
            return Err(StoreError::Rejected(format!(
                "seal: ttl-ms must be 1 to {}",
                MAX_SEAL_TTL.as_millis()
            )));
        }
        let now = now_ms();
        let held = self.keys.read().expect("keyring lock");
        // The newest key that seals already; the ring always has one (the first seals at
        // once, and a successor's predecessor stays).
        let key = held
            .0
            .iter()
            .filter(|k| k.seals_from_ms <= now)
            .max_by_key(|k| k.seals_from_ms)
            .or_else(|| held.0.first())
            .ok_or_else(|| StoreError::Unavailable("seal: the keyring is empty".into()))?;
        let mut out = Vec::with_capacity(HEADER_LEN + SALT_LEN + value.len() + TAG_LEN);
        out.push(VERSION);
        out.extend_from_slice(&key.id);
        out.extend_from_slice(&(now + ttl.as_millis() as u64).to_be_bytes());
        let mut salt = [0u8; SALT_LEN];
        getrandom::fill(&mut salt).expect("the OS random source");
        out.extend_from_slice(&salt);
        let mut sealed = value.to_vec();
        text_key(key, &salt)
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key([0; NONCE_LEN]),
                Aad::from(aad(purpose, &out[..HEADER_LEN])),
                &mut sealed,
            )
            .map_err(|_| StoreError::Rejected("seal: too large".into()))?;
        out.extend_from_slice(&sealed);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    /// The value of `sealed`, if this ring sealed it for `purpose` and it has not expired.
    pub fn open(&self, purpose: &str, sealed: &str) -> Option<Vec<u8>> {
        // A text longer than the largest seal is not ours: refuse it before decoding.
        let max = (HEADER_LEN + SALT_LEN + MAX_SEAL_BYTES + TAG_LEN).div_ceil(3) * 4;
        if sealed.len() > max {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if bytes.len() < HEADER_LEN + SALT_LEN + TAG_LEN || bytes[0] != VERSION {
            return None;
        }
        let (header, rest) = bytes.split_at(HEADER_LEN);
        let expires = u64::from_be_bytes(header[1 + KID_LEN..].try_into().ok()?);
        if now_ms() >= expires {
            return None;
        }
        let (salt, ciphertext) = rest.split_at(SALT_LEN);
        let held = self.keys.read().expect("keyring lock");
        let key = held.0.iter().find(|k| k.id[..] == header[1..1 + KID_LEN])?;
        let mut plaintext = ciphertext.to_vec();
        let opened = text_key(key, salt)
            .open_in_place(
                Nonce::assume_unique_for_key([0; NONCE_LEN]),
                Aad::from(aad(purpose, header)),
                &mut plaintext,
            )
            .ok()?;
        Some(opened.to_vec())
    }

    /// Keys in the ring now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.read().expect("keyring lock").0.len()
    }
}

/// Refreshes `ring` every [`REFRESH`] while anything else holds it.
pub fn spawn_refresh(ring: &Arc<Keyring>) {
    let ring: Weak<Keyring> = Arc::downgrade(ring);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(REFRESH);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let Some(ring) = ring.upgrade() else { return };
            if let Err(e) = ring.refresh().await {
                tracing::warn!("sealing keys not refreshed (the ones held stay in use): {e}");
            }
        }
    });
}

/// The key of one text: HKDF-SHA256 of the ring's key with the text's salt. Used for that
/// text alone, so its GCM nonce may be fixed.
fn text_key(key: &Key, salt: &[u8]) -> LessSafeKey {
    let info: [&[u8]; 2] = [b"tokenginx seal v1", salt];
    let okm = key
        .prk
        .expand(&info, &AES_256_GCM)
        .expect("32 bytes from HKDF-SHA256");
    LessSafeKey::new(UnboundKey::from(okm))
}

fn parse(bytes: &[u8]) -> Result<Stored, KeyringError> {
    serde_json::from_slice(bytes).map_err(|e| KeyringError::Malformed(e.to_string()))
}

/// What a seal authenticates besides its ciphertext: the purpose (so a text sealed for one
/// use cannot stand for another) and the header.
fn aad(purpose: &str, header: &[u8]) -> Vec<u8> {
    [b"tokenginx seal\0", purpose.as_bytes(), b"\0", header].concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    const SECRET: &[u8] = b"an operator secret of 32 bytes or more";
    const DAY: Duration = Duration::from_secs(24 * 3600);

    async fn ring(store: &Arc<dyn TokenStore>) -> Arc<Keyring> {
        Keyring::load(store.clone(), SECRET, DAY).await.unwrap()
    }

    fn memory() -> Arc<dyn TokenStore> {
        Arc::new(MemoryStore::new(1000))
    }

    #[tokio::test]
    async fn a_sealed_value_opens_for_its_purpose_only() {
        let ring = ring(&memory()).await;
        let sealed = ring
            .seal("login", b"flow", Duration::from_secs(60))
            .unwrap();
        assert_eq!(ring.open("login", &sealed).as_deref(), Some(&b"flow"[..]));
        assert_eq!(ring.open("consent", &sealed), None);
        assert!(!sealed.contains("flow"));
    }

    #[tokio::test]
    async fn an_altered_or_truncated_text_does_not_open() {
        let ring = ring(&memory()).await;
        let sealed = ring.seal("p", b"value", Duration::from_secs(60)).unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        for i in 0..bytes.len() {
            bytes[i] ^= 1;
            assert_eq!(
                ring.open("p", &URL_SAFE_NO_PAD.encode(&bytes)),
                None,
                "byte {i}"
            );
            bytes[i] ^= 1;
        }
        assert_eq!(ring.open("p", &sealed[..sealed.len() - 1]), None);
        assert_eq!(ring.open("p", "not base64 !"), None);
        assert_eq!(ring.open("p", ""), None);
    }

    #[tokio::test]
    async fn a_text_does_not_open_after_its_time() {
        let ring = ring(&memory()).await;
        let sealed = ring.seal("p", b"v", Duration::from_millis(1)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(ring.open("p", &sealed), None);
    }

    #[tokio::test]
    async fn seal_refuses_what_is_over_its_limits() {
        let ring = ring(&memory()).await;
        let big = vec![0u8; MAX_SEAL_BYTES + 1];
        assert!(ring.seal("p", &big, Duration::from_secs(1)).is_err());
        assert!(ring.seal("p", b"v", Duration::ZERO).is_err());
        assert!(ring
            .seal("p", b"v", MAX_SEAL_TTL + Duration::from_millis(1))
            .is_err());
        let largest = vec![7u8; MAX_SEAL_BYTES];
        let sealed = ring.seal("p", &largest, MAX_SEAL_TTL).unwrap();
        assert_eq!(ring.open("p", &sealed), Some(largest));
    }

    /// Replicas sharing a store share keys: what one seals, another opens.
    #[tokio::test]
    async fn replicas_sharing_a_store_and_secret_open_each_others_texts() {
        let store = memory();
        let first = ring(&store).await;
        let second = ring(&store).await;
        let sealed = first.seal("p", b"v", Duration::from_secs(60)).unwrap();
        assert_eq!(second.open("p", &sealed).as_deref(), Some(&b"v"[..]));
        // The store keeps no key in the clear.
        let stored = store.get(KEYRING_KEY.to_owned()).await.unwrap().unwrap();
        let stored: Stored = serde_json::from_slice(&stored).unwrap();
        assert_eq!(stored.keys.len(), 1);
    }

    /// A replica given another secret is refused, and writes nothing, even when a rotation
    /// is due: the replicas with the right secret keep their ring.
    #[tokio::test]
    async fn another_secret_is_refused_and_changes_nothing() {
        let store = memory();
        ring(&store).await;
        let before = store.get(KEYRING_KEY.to_owned()).await.unwrap();
        let other = b"another secret, also long enough....";
        let refused = Keyring::load(store.clone(), other, Duration::from_millis(1)).await;
        assert!(matches!(refused, Err(KeyringError::WrongSecret)));
        assert_eq!(store.get(KEYRING_KEY.to_owned()).await.unwrap(), before);
        ring(&store).await;
    }

    /// A store that lost the ring gets the keys held back: texts in flight still open on
    /// every replica.
    #[tokio::test]
    async fn a_ring_the_store_lost_is_written_back_from_the_keys_held() {
        let store = memory();
        let ring = ring(&store).await;
        let sealed = ring.seal("p", b"v", Duration::from_secs(60)).unwrap();
        store.delete(KEYRING_KEY.to_owned()).await.unwrap();
        ring.refresh().await.unwrap();
        let other = Keyring::load(store, SECRET, DAY).await.unwrap();
        assert_eq!(other.open("p", &sealed).as_deref(), Some(&b"v"[..]));
    }

    /// A rotation publishes the new key before it seals, and keeps the old one opening.
    #[tokio::test]
    async fn a_rotation_keeps_texts_in_flight_opening() {
        let store = memory();
        let ring = Keyring::load(store.clone(), SECRET, Duration::from_millis(1))
            .await
            .unwrap();
        let before = ring.seal("p", b"v", Duration::from_secs(60)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        ring.refresh().await.unwrap();
        assert_eq!(ring.len(), 2);
        // Another replica that only reads the ring now still opens the old text, and the
        // new key does not seal yet.
        let other = Keyring::load(store, SECRET, DAY).await.unwrap();
        assert_eq!(other.open("p", &before).as_deref(), Some(&b"v"[..]));
        let after = ring.seal("p", b"w", Duration::from_secs(60)).unwrap();
        let kid = |text: &str| URL_SAFE_NO_PAD.decode(text).unwrap()[1..1 + KID_LEN].to_vec();
        assert_eq!(kid(&before), kid(&after));
    }

    #[tokio::test]
    async fn keys_no_text_can_need_are_retired() {
        let ring = Keyring {
            wrapping: Wrapping::new(SECRET, b"wrap sealing keys v1"),
            rotate_after: DAY,
            store: memory(),
            keys: RwLock::default(),
        };
        let key = |created_ms: u64| StoredKey {
            kid: "00".repeat(KID_LEN),
            created_ms,
            seals_from_ms: created_ms,
            wrapped: String::new(),
        };
        let now = 10 * DAY.as_millis() as u64;
        let day = DAY.as_millis() as u64;
        // Keys made 3, 2 and 1 days ago: the one 3 days old was succeeded 2 days ago and
        // goes; the one 2 days old was succeeded a day ago and goes too; yesterday's stays,
        // as its successor (made now) does not seal yet.
        let stored = Stored {
            keys: vec![key(now - 3 * day), key(now - 2 * day), key(now - day)],
        };
        let next = ring.rotated(&stored, now).unwrap();
        let created: Vec<u64> = next.keys.iter().map(|k| k.created_ms).collect();
        assert_eq!(created, [now - day, now]);
        assert!(ring.rotated(&next, now + 1).is_none());
    }
}
