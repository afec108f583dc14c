use super::*;
use crate::store::memory::MemoryStore;

const SECRET: &[u8] = b"an operator secret of 32 bytes or more";
const ISSUER: &str = "https://issuer.test";
const HOUR: Duration = Duration::from_secs(3600);

fn memory() -> Arc<dyn TokenStore> {
    Arc::new(MemoryStore::new(1000))
}

fn schedule(rotate_every: Duration, publish_ahead: Duration) -> Schedule {
    Schedule {
        rotate_every,
        publish_ahead,
        longest_token: HOUR,
    }
}

async fn keys(store: &Arc<dyn TokenStore>, schedule: Schedule) -> Arc<SigningKeys> {
    SigningKeys::load(store.clone(), SECRET, ISSUER.into(), schedule)
        .await
        .unwrap()
}

fn claims(exp_in: u64) -> String {
    let exp = now_ms() / 1000 + exp_in;
    json!({"iss": ISSUER, "sub": "alice", "exp": exp}).to_string()
}

fn part(jws: &str, i: usize) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(jws.split('.').nth(i).unwrap())
        .unwrap()
}

/// Verifies `jws` with the JWK of its `kid` in `jwks`, as an outside verifier would.
fn verify(jws: &str, jwks: &str) -> Value {
    let header: Value = serde_json::from_slice(&part(jws, 0)).unwrap();
    let set: Value = serde_json::from_str(jwks).unwrap();
    let jwk = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap_or_else(|| panic!("kid {} is not in the JWKS", header["kid"]));
    assert_eq!(jwk["alg"], header["alg"]);
    assert!(
        crate::keys::external::verify(&jwk.to_string(), jws),
        "{jws} does not verify with {jwk}"
    );
    header
}

#[tokio::test]
async fn each_algorithm_signs_a_jws_its_published_key_verifies() {
    let keys = keys(&memory(), schedule(HOUR * 24, HOUR)).await;
    let jwks = keys.jwks();
    for alg in ALGORITHMS {
        for (purpose, typ) in [(Purpose::IdToken, "JWT"), (Purpose::AccessToken, "at+jwt")] {
            let jws = keys.sign(purpose, alg, &claims(60)).unwrap();
            let header = verify(&jws, &jwks);
            assert_eq!(header["alg"], name(alg));
            assert_eq!(header["typ"], typ);
            let payload: Value = serde_json::from_slice(&part(&jws, 1)).unwrap();
            assert_eq!(payload["sub"], "alice");
        }
    }
}

/// What a key signs, it verifies, for its purpose only; an altered token, another
/// purpose's, or one signed by a key this host does not hold does not verify.
#[tokio::test]
async fn verify_accepts_only_what_a_held_key_signed_for_the_purpose() {
    let store = memory();
    let keys = keys(&store, schedule(HOUR * 24, HOUR)).await;
    for alg in ALGORITHMS {
        let jws = keys.sign(Purpose::AccessToken, alg, &claims(60)).unwrap();
        let verified: Value =
            serde_json::from_str(&keys.verify(Purpose::AccessToken, &jws).unwrap()).unwrap();
        assert_eq!(verified["sub"], "alice");
        assert_eq!(
            keys.verify(Purpose::IdToken, &jws),
            None,
            "{alg:?}: another purpose"
        );
        // Another payload under the same header and signature.
        let (header, rest) = jws.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let forged_claims = json!({"iss": ISSUER, "sub": "mallory", "exp": 1}).to_string();
        let forged = format!(
            "{header}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(forged_claims)
        );
        assert_eq!(
            keys.verify(Purpose::AccessToken, &forged),
            None,
            "{alg:?}: forged"
        );
    }
    let elsewhere = SigningKeys::load(memory(), SECRET, ISSUER.into(), schedule(HOUR * 24, HOUR))
        .await
        .unwrap();
    let foreign = elsewhere
        .sign(Purpose::AccessToken, Algorithm::Es256, &claims(60))
        .unwrap();
    assert_eq!(keys.verify(Purpose::AccessToken, &foreign), None);
    for junk in ["", "a.b", "a.b.c", "..", &"x".repeat(40_000)] {
        assert_eq!(keys.verify(Purpose::AccessToken, junk), None);
    }
}

/// RFC 7638 section 3.1's example key has this thumbprint.
#[test]
fn the_kid_is_the_rfc_7638_thumbprint() {
    let members = json!({
        "e": "AQAB",
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    });
    let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(members.to_string().as_bytes()));
    assert_eq!(kid, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
}

#[tokio::test]
async fn the_jwks_holds_public_parameters_only() {
    let keys = keys(&memory(), schedule(HOUR * 24, HOUR)).await;
    let set: Value = serde_json::from_str(&keys.jwks()).unwrap();
    let set = set["keys"].as_array().unwrap();
    assert_eq!(set.len(), 3);
    for jwk in set {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(jwk.get(private).is_none(), "{private} in {jwk}");
        }
        assert_eq!(jwk["use"], "sig");
    }
}

#[tokio::test]
async fn sign_refuses_claims_it_must_not_sign() {
    let keys = keys(&memory(), schedule(HOUR * 24, HOUR)).await;
    let sign = |claims: &str| keys.sign(Purpose::IdToken, Algorithm::Es256, claims);
    let exp = now_ms() / 1000 + 60;
    for bad in [
        "not json".to_owned(),
        "[1]".to_owned(),
        json!({"exp": exp}).to_string(),
        json!({"iss": "https://other.test", "exp": exp}).to_string(),
        json!({"iss": ISSUER}).to_string(),
        json!({"iss": ISSUER, "exp": "soon"}).to_string(),
        claims(HOUR.as_secs() + 60),
        json!({"iss": ISSUER, "exp": exp, "pad": "x".repeat(MAX_CLAIMS_BYTES)}).to_string(),
    ] {
        assert!(
            matches!(sign(&bad), Err(StoreError::Rejected(_))),
            "{bad:.80}"
        );
    }
    assert!(sign(&claims(HOUR.as_secs())).is_ok());
}

/// The store holds the private keys wrapped only: no PKCS#8 in the clear, no JWK private
/// member.
#[tokio::test]
async fn the_store_holds_no_private_key_in_the_clear() {
    let store = memory();
    keys(&store, schedule(HOUR * 24, HOUR)).await;
    let stored = store
        .get(SIGNING_KEYS_KEY.to_owned())
        .await
        .unwrap()
        .unwrap();
    let stored: Stored = serde_json::from_slice(&stored).unwrap();
    assert_eq!(stored.keys.len(), 3);
    let wrapping = Wrapping::new(SECRET, b"wrap signing keys v1");
    for key in &stored.keys {
        let pkcs8 = wrapping.unwrap(&key.kid, &key.wrapped).unwrap();
        let wrapped = base64::engine::general_purpose::STANDARD
            .decode(&key.wrapped)
            .unwrap();
        assert!(!wrapped
            .windows(32)
            .any(|w| pkcs8.windows(32).any(|p| p == w)));
    }
}

#[tokio::test]
async fn replicas_sharing_a_store_share_keys_and_another_secret_is_refused() {
    let store = memory();
    let first = keys(&store, schedule(HOUR * 24, HOUR)).await;
    let second = keys(&store, schedule(HOUR * 24, HOUR)).await;
    assert_eq!(first.jwks(), second.jwks());
    let jws = first
        .sign(Purpose::IdToken, Algorithm::Rs256, &claims(60))
        .unwrap();
    verify(&jws, &second.jwks());
    let before = store.get(SIGNING_KEYS_KEY.to_owned()).await.unwrap();
    let other = SigningKeys::load(
        store.clone(),
        b"another secret, also long enough....",
        ISSUER.into(),
        schedule(HOUR * 24, HOUR),
    )
    .await;
    assert!(matches!(other, Err(SigningKeysError::WrongSecret)));
    assert_eq!(
        store.get(SIGNING_KEYS_KEY.to_owned()).await.unwrap(),
        before
    );
}

/// A rotation publishes the new key before it signs; once it signs, the old one stays
/// published; a ring the store lost is written back.
#[tokio::test]
async fn a_new_key_is_published_ahead_and_the_old_one_stays_published() {
    let store = memory();
    // The newest key is due once it has less than `publish_ahead` left of its turn: 100 ms
    // after it began.
    let keys = keys(&store, schedule(HOUR + Duration::from_millis(100), HOUR)).await;
    let old = keys
        .sign(Purpose::IdToken, Algorithm::Es256, &claims(60))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    keys.refresh().await.unwrap();
    assert_eq!(keys.len(), 6);
    let es256 = |now: u64| {
        keys.states_at(now)
            .into_iter()
            .filter(|(alg, _, _)| *alg == Algorithm::Es256)
            .map(|(_, state, n)| (state, n))
            .collect::<Vec<_>>()
    };
    let now = now_ms();
    assert_eq!(
        es256(now),
        [(State::Next, 1), (State::Active, 1), (State::Retired, 0)]
    );
    // The old key still signs, and the new one is in the set already.
    let during = keys
        .sign_at(Purpose::IdToken, Algorithm::Es256, &claims(60), now)
        .unwrap();
    assert_eq!(part(&old, 0), part(&during, 0));
    let jwks = keys.jwks();
    // An hour on, the new key signs; the old one is still published.
    let later = now + HOUR.as_millis() as u64;
    let after = keys
        .sign_at(Purpose::IdToken, Algorithm::Es256, &claims(60), later)
        .unwrap();
    assert_ne!(part(&old, 0), part(&after, 0));
    assert_eq!(
        es256(later),
        [(State::Next, 0), (State::Active, 1), (State::Retired, 1)]
    );
    // A verifier that fetched the set while the new key was next verifies its tokens.
    verify(&after, &jwks);
    verify(&old, &keys.jwks());
    store.delete(SIGNING_KEYS_KEY.to_owned()).await.unwrap();
    keys.refresh().await.unwrap();
    let other = SigningKeys::load(store, SECRET, ISSUER.into(), schedule(HOUR * 2, HOUR))
        .await
        .unwrap();
    assert_eq!(other.jwks(), jwks);
}

#[tokio::test]
async fn keys_no_token_can_need_are_gone() {
    let schedule = schedule(HOUR, Duration::from_secs(60));
    let key = |alg: &str, active_from_ms: u64| StoredKey {
        kid: format!("{alg}{active_from_ms}"),
        alg: alg.into(),
        created_ms: active_from_ms,
        active_from_ms,
        wrapped: String::new(),
    };
    let hour = HOUR.as_millis() as u64;
    let now = 100 * hour;
    let stored = Stored {
        keys: vec![
            // Succeeded 3 hours ago: every token it signed (at most an hour) expired.
            key("ES256", now - 4 * hour),
            // Succeeded half an hour ago: its tokens may live on.
            key("ES256", now - 3 * hour),
            key("ES256", now - hour / 2),
            key("RS256", now - 4 * hour),
        ],
    };
    let keys = SigningKeys {
        wrapping: Wrapping::new(SECRET, b"wrap signing keys v1"),
        schedule,
        issuer: ISSUER.into(),
        store: memory(),
        held: RwLock::default(),
        rng: SystemRandom::new(),
    };
    let kept = keys.without_gone(&stored, now).unwrap();
    let kids: Vec<&str> = kept.keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids.len(), 3);
    assert!(!kids.contains(&format!("ES256{}", now - 4 * hour).as_str()));
    assert!(keys.without_gone(&kept, now).is_none());
}

#[test]
fn the_jwks_may_be_cached_for_less_than_a_key_is_published_ahead() {
    for (ahead, max_age) in [(3600, 3540), (4, 2), (60, 30)] {
        let s = schedule(HOUR, Duration::from_secs(ahead));
        assert_eq!(s.max_age(), max_age, "publish_ahead {ahead}s");
        assert!(Duration::from_secs(max_age.into()) + s.refresh() < s.publish_ahead);
    }
}
