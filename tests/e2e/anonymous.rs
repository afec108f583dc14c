//! What a request without credentials can make the service hold: nothing in the store, a
//! bounded table of address budgets in memory, and what a client's budget bounds. Floods of
//! the authorization endpoint, of userinfo, of open registration and of DPoP proofs naming a
//! public client, on the store `TOKENGINX_TEST_STORE` names (the embedded one with room for
//! 200 entries).

use crate::authorization_code::{flow_host_on, http, location, query_param, WEB_ID, WEB_REDIRECT};
use crate::harness::*;
use crate::redis::{shared_store, shared_store_keys, shared_store_used_memory};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FLOOD_CONNECTIONS: usize = 32;
const FLOOD_TIME: Duration = Duration::from_secs(4);
/// A bound on each connection's requests, so the flood stops by itself on a fast machine.
const FLOOD_MAX_PER_CONNECTION: u64 = 50_000;
const MIB: u64 = 1024 * 1024;

/// The flow host on the shared store, or on an embedded one with room for 200 entries;
/// `server_extra` goes in the `server` section.
/// The store a flood runs on: the shared one, or on the embedded store a small one (200
/// entries), which a flood that left anything behind would fill.
fn flood_store() -> String {
    match shared_store().contains("mode: memory") {
        true => "tokenginx:\n  mode: memory\n  max_entries: 200\n".to_owned(),
        false => shared_store(),
    }
}

fn flood_host(server_extra: &str) -> (Host, String) {
    let store = flood_store();
    let base = config_with_store(&default_guest(), server_extra, &store);
    flow_host_on(base, "", "admin:\n  port: 0\n")
}

/// An authorization request of the web client with a fresh PKCE challenge and `state` (none
/// when empty).
fn authorize_url(host: &Host, state: &str) -> String {
    let mut verifier = [0u8; 32];
    getrandom::fill(&mut verifier).unwrap();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(verifier),
    ));
    let params = [
        ("response_type", "code"),
        ("client_id", WEB_ID),
        ("redirect_uri", WEB_REDIRECT),
        ("scope", "read"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    let state = (!state.is_empty()).then_some(("state", state));
    reqwest::Url::parse_with_params(
        &host.url("/api/v1/oauth/authorize"),
        params.into_iter().chain(state),
    )
    .unwrap()
    .to_string()
}

/// What one flood connection sends, by the connection's number.
type FloodRequest = Arc<dyn Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync>;

/// Floods the authorization endpoint from [`FLOOD_CONNECTIONS`] connections for
/// [`FLOOD_TIME`] with `state`: see [`flood_with`]; each answer must be a 302.
async fn flood(host: &Host, state: &str) -> (u64, Vec<u16>, Vec<u16>) {
    let urls: Vec<String> = (0..FLOOD_CONNECTIONS)
        .map(|_| authorize_url(host, state))
        .collect();
    flood_with(
        host,
        Arc::new(move |client, i| client.get(&urls[i])),
        &[302],
    )
    .await
}

/// Sends `request` from [`FLOOD_CONNECTIONS`] connections for [`FLOOD_TIME`], while the
/// demo client asks for a token and a probe asks `/health/ready` every 100 ms: how many
/// flood requests were answered (each with one of the `expected` statuses), and the
/// statuses the client and the probe got.
async fn flood_with(
    host: &Host,
    request: FloodRequest,
    expected: &'static [u16],
) -> (u64, Vec<u16>, Vec<u16>) {
    let deadline = Instant::now() + FLOOD_TIME;
    let answered = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..FLOOD_CONNECTIONS {
        let (request, answered) = (request.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            let client = http();
            for _ in 0..FLOOD_MAX_PER_CONNECTION {
                if Instant::now() >= deadline {
                    break;
                }
                let response = request(&client, i).send().await.unwrap();
                let status = response.status().as_u16();
                assert!(
                    expected.contains(&status),
                    "{status}, not one of {expected:?}"
                );
                answered.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let (mut tokens, mut probes) = (Vec::new(), Vec::new());
    while Instant::now() < deadline {
        tokens.push(
            host.request_token((DEMO_ID, DEMO_SECRET), None)
                .await
                .status,
        );
        probes.push(host.get("/health/ready").await.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for task in tasks {
        task.await.unwrap();
    }
    (answered.load(Ordering::Relaxed), tokens, probes)
}

/// What a flood must leave as it was (`flood_with`'s answer): over a thousand requests of
/// `what` answered, every token request of another client and every readiness probe 200.
fn unharmed(name: &str, what: &str, (answered, tokens, probes): (u64, Vec<u16>, Vec<u16>)) {
    println!("{name}: {answered} {what} requests answered in {FLOOD_TIME:?}");
    assert!(answered > 1000, "{name}: only {answered} requests answered");
    assert!(
        tokens.iter().all(|s| *s == 200),
        "{name}: tokens {tokens:?}"
    );
    assert!(probes.iter().all(|s| *s == 200), "{name}: ready {probes:?}");
}

/// The host's RSS, and Redis's used memory where there is one, grew by less than 64 MiB
/// since `rss_before` and `redis_before`.
fn grew_little(name: &str, host: &Host, rss_before: u64, redis_before: Option<u64>) {
    let grown = host.rss_bytes().saturating_sub(rss_before);
    println!("{name}: the host's RSS grew by {} KiB", grown / 1024);
    assert!(grown < 64 * MIB, "{name}: RSS grew by {grown} bytes");
    if let (Some(before), Some(now)) = (redis_before, shared_store_used_memory()) {
        let grown = now.saturating_sub(before);
        println!("{name}: Redis used_memory grew by {} KiB", grown / 1024);
        assert!(grown < 64 * MIB, "{name}: Redis grew by {grown} bytes");
    }
}

/// The issue's attack: an anonymous flood of authorization requests, with 30 KB states
/// (each refused at once) and without (each sent on to the login app). Before
/// challenges were sealed, each request stored a flow for 10 minutes: the 30 KB ones grew
/// the store by GiBs, the small ones filled a bounded store and stopped every client's
/// tokens. Now the store holds nothing more, other clients keep getting tokens, the
/// replica stays ready, and its memory and Redis's stay flat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_flood_of_authorize_holds_nothing_and_stops_no_one() {
    let (host, _) = flood_host("  address_rate_limit: unlimited\n");
    // The login app's address is the redirect's; a request the flood sends must go there.
    let first = http().get(authorize_url(&host, "s")).send().await.unwrap();
    assert!(query_param(&location(&first), "login_challenge").is_some());
    let challenges_before = shared_store_keys("oauth:login_challenge:*").map(|k| k.len());
    let rss_before = host.rss_bytes();
    let redis_before = shared_store_used_memory();

    for (name, state) in [
        ("30 KB state", "s".repeat(30_000)),
        ("no state", String::new()),
    ] {
        unharmed(name, "authorization", flood(&host, &state).await);
        grew_little(name, &host, rss_before, redis_before);
    }
    // Not one challenge was stored (other tests on the shared store answer a few).
    if let (Some(before), Some(now)) = (
        challenges_before,
        shared_store_keys("oauth:login_challenge:*").map(|k| k.len()),
    ) {
        assert!(
            now < before + 100,
            "{before} challenge keys before, {now} after"
        );
    }
    assert_eq!(host.get("/health/ready").await.json()["store"], "ok");
}

/// Userinfo takes a token from anyone: a flood of made-up opaque tokens and of JWTs forged
/// around the host's real key id (each one a signature the host checks) is answered 401,
/// and holds nothing either; other clients keep getting tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_flood_of_userinfo_holds_nothing_and_stops_no_one() {
    let store = flood_store();
    // A client that may ask for openid: the host then has signing keys.
    let base = config_with_store(
        &default_guest(),
        "  address_rate_limit: unlimited\n",
        &store,
    )
    .replacen("scopes: [read, write]", "scopes: [openid, read, write]", 1);
    let (host, _) = flow_host_on(base, "", "admin:\n  port: 0\n");
    // A guest of an older contract (TOKENGINX_TEST_GUEST) serves no userinfo.
    if host.get("/api/v1/oauth/userinfo").await.status == 404 {
        println!("skipped: the guest serves no userinfo");
        return;
    }
    let jwks = host.get("/.well-known/jwks.json").await.json();
    let es256 = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["alg"] == "ES256");
    let kid = es256.unwrap()["kid"].as_str().unwrap().to_owned();
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let header = b64(serde_json::json!({"alg": "ES256", "kid": kid, "typ": "at+jwt"}));
    let url = host.url("/api/v1/oauth/userinfo");
    let rss_before = host.rss_bytes();
    let redis_before = shared_store_used_memory();
    let request: FloodRequest = Arc::new(move |client, i| {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).unwrap();
        let opaque = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
        let token = match i % 2 {
            0 => opaque,
            _ => format!(
                "{header}.{}.{}",
                b64(serde_json::json!({"jti": hex::encode(random), "sub": "mallory"})),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 64])
            ),
        };
        client.get(&url).bearer_auth(token)
    });
    unharmed(
        "userinfo",
        "userinfo",
        flood_with(&host, request, &[401]).await,
    );
    grew_little("userinfo", &host, rss_before, redis_before);
    assert_eq!(host.get("/health/ready").await.json()["store"], "ok");
}

/// An open dynamic client registration (RFC 7591) flooded by anonymous requests: the
/// store holds at most `oauth.registration.max_clients` clients, every request past them
/// is refused (403), and other clients keep getting tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_flood_of_open_registration_holds_at_most_max_clients() {
    const MAX_CLIENTS: u64 = 48;
    let store = flood_store();
    let base = config_with_store(
        &default_guest(),
        "  address_rate_limit: unlimited\n",
        &store,
    );
    let registration = format!(
        "  registration:\n    open: true\n    max_clients: {MAX_CLIENTS}\n    rate_limit: unlimited\n    allowed_scopes: [read]\n"
    );
    let (host, admin) = flow_host_on(base, &registration, "admin:\n  port: 0\n");
    let url = host.url("/oauth2/register");
    // A guest of an older contract (TOKENGINX_TEST_GUEST) registers nothing.
    let probe = http()
        .post(&url)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    if probe.status() == 404 {
        println!("skipped: the guest has no dynamic registration");
        return;
    }
    let rss_before = host.rss_bytes();
    let request: FloodRequest = Arc::new(move |client, _| {
        let metadata = serde_json::json!(
            {"client_name": "flood", "grant_types": ["client_credentials"], "scope": "read"}
        );
        client.post(&url).json(&metadata)
    });
    let flooded = flood_with(&host, request, &[201, 403]).await;
    unharmed("open registration", "registration", flooded);
    // Every client the flood registered is in the store: the admin API lists them.
    let listed = http()
        .get(format!("{admin}/admin/clients?page_size=500"))
        .send()
        .await
        .unwrap();
    let listed: serde_json::Value = listed.json().await.unwrap();
    let flooded = listed.as_array().unwrap().iter();
    let registered = flooded.filter(|c| c["client_name"] == "flood").count() as u64;
    println!("{registered} clients registered");
    assert!(
        (1..=MAX_CLIENTS).contains(&registered),
        "{registered} clients"
    );
    grew_little("open registration", &host, rss_before, None);
}

/// Anyone can name a public client: a flood of token requests naming one, each with a
/// fresh DPoP proof by the flooder's own key (RFC 9449) and a made-up code. A proof's `jti`
/// is written only once the client's budget is charged, so the store holds at most the
/// budget's worth of them (for 120 s); every request past the budget is 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_dpop_proofs_naming_a_public_client_holds_at_most_its_budget() {
    use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
    const BURST: usize = 40;
    let store = flood_store();
    let public_client = format!(
        "    - client_id: native\n      token_endpoint_auth_method: none\n      scopes: [read]\n      grant_types: [authorization_code]\n      redirect_uris: [http://127.0.0.1/cb]\n      rate_limit: {{requests: 1, per: 1h, burst: {BURST}}}\nlog:\n"
    );
    let base = config_with_store(
        &default_guest(),
        "  address_rate_limit: unlimited\n",
        &store,
    )
    .replace("log:\n", &public_client);
    let (host, _admin) = flow_host_on(base, "", "admin:\n  port: 0\n");
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key = Arc::new(
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap(),
    );
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let point = key.public_key().as_ref();
    let header = b64(
        serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {
        "kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])}})
        .to_string()
        .as_bytes(),
    );
    let sent = Arc::new(AtomicU64::new(0));
    let url = host.url("/api/v1/oauth/token");
    let (rss_before, redis_before) = (host.rss_bytes(), shared_store_used_memory());
    let request: FloodRequest = Arc::new(move |client, _| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let jti = sent.fetch_add(1, Ordering::Relaxed).to_string();
        let claims = serde_json::json!({"jti": jti,
            "htm": "POST", "htu": "http://issuer.test/api/v1/oauth/token", "iat": now});
        let input = format!("{header}.{}", b64(claims.to_string().as_bytes()));
        let signature = key
            .sign(&ring::rand::SystemRandom::new(), input.as_bytes())
            .unwrap();
        let form = form_encode(&[
            ("grant_type", "authorization_code"),
            ("client_id", "native"),
            ("code", "a-made-up-code-0123456789-0123456789-012345"),
            ("code_verifier", crate::authorization_code::VERIFIER),
            ("redirect_uri", "http://127.0.0.1/cb"),
        ]);
        client
            .post(&url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("DPoP", format!("{input}.{}", b64(signature.as_ref())))
            .body(form)
    });
    // The proof is good: the request is charged, the proof taken, and the code unknown.
    let first = request(&http(), 0).send().await.unwrap();
    let first: serde_json::Value = first.json().await.unwrap();
    assert_eq!(first["error"], "invalid_grant", "{first}");
    // 400 so, or 429 past the budget.
    let flooded = flood_with(&host, request, &[400, 429]).await;
    unharmed("DPoP proofs", "token", flooded);
    if let Some(jtis) = shared_store_keys("oauth:dpop_jti:*") {
        println!("{} DPoP jti records in the store", jtis.len());
        assert!(
            (1..=BURST + 1).contains(&jtis.len()),
            "{} jti records",
            jtis.len()
        );
    }
    // On the embedded store (200 entries) a flood that wrote past the budget would have
    // filled it, and the demo client's tokens `unharmed` asked for would have been 503.
    grew_little("DPoP proofs", &host, rss_before, redis_before);
}

/// One address over its budget gets 429 with `Retry-After` and a metric; another address
/// is untouched. Loopback has many addresses: 127.0.0.2 is another client.
#[tokio::test]
async fn one_address_over_its_budget_does_not_starve_another() {
    let (host, _) = flood_host("  address_rate_limit: {requests: 1, per: 1h, burst: 5}\n");
    let url = authorize_url(&host, "s");
    for _ in 0..5 {
        assert_eq!(http().get(&url).send().await.unwrap().status(), 302);
    }
    let refused = http().get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    let other = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    assert_eq!(other.get(&url).send().await.unwrap().status(), 302);
    // Tokens are not the anonymous budget's: the demo client still gets one.
    host.issue((DEMO_ID, DEMO_SECRET), None).await;
    let metrics = host.get("/metrics").await.body;
    let labels = [("route", "authorize")];
    assert_eq!(
        metric(&metrics, "tokenginx_address_rate_limited_total", &labels),
        Some(1.0)
    );
    assert_eq!(
        metric(&metrics, "tokenginx_address_budgets", &[]),
        Some(2.0)
    );
}

/// Behind a trusted proxy, the budget is the address `X-Forwarded-For` names; from anyone
/// else, the header is ignored.
#[tokio::test]
async fn x_forwarded_for_counts_only_from_a_trusted_proxy() {
    let (host, _) = flood_host(
        "  address_rate_limit: {requests: 1, per: 1h, burst: 2}\n  trusted_proxies: [127.0.0.1/32]\n",
    );
    let url = authorize_url(&host, "s");
    let from = |client: &'static str| {
        let url = url.clone();
        async move {
            http()
                .get(&url)
                .header("X-Forwarded-For", format!("203.0.113.9, {client}"))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(from("198.51.100.7").await, 302);
    assert_eq!(from("198.51.100.7").await, 302);
    assert_eq!(from("198.51.100.7").await, 429);
    assert_eq!(from("198.51.100.8").await, 302);
    // 127.0.0.2 is no trusted proxy: whatever it says it forwards, it is the client.
    let untrusted = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    for (forwarded_for, expected) in [
        ("198.51.100.20", 302),
        ("198.51.100.21", 302),
        ("198.51.100.22", 429),
    ] {
        let status = untrusted
            .get(&url)
            .header("X-Forwarded-For", forwarded_for)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, expected, "{forwarded_for}");
    }
    host.wait_for_log("X-Forwarded-For ignored", Duration::from_secs(5));
}

/// A 40-60 KB query used to answer 500: now the client gets `invalid_request` at its
/// redirect URI, and nothing is stored.
#[tokio::test]
async fn an_oversized_authorization_request_is_invalid_request_at_the_redirect_uri() {
    let (host, _) = flood_host("");
    for size in [5_000, 40_000, 60_000] {
        let url = format!("{}&padding={}", authorize_url(&host, "s"), "p".repeat(size));
        let back = location(&http().get(url).send().await.unwrap());
        assert!(back.starts_with(WEB_REDIRECT), "{back}");
        assert_eq!(
            query_param(&back, "error").as_deref(),
            Some("invalid_request")
        );
        assert_eq!(query_param(&back, "state").as_deref(), Some("s"));
    }
    let back = location(
        &http()
            .get(authorize_url(&host, &"s".repeat(3000)))
            .send()
            .await
            .unwrap(),
    );
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("invalid_request")
    );
    assert_eq!(query_param(&back, "state"), None);
}

/// The host's own HTTP hygiene in front of the flow: a Host that is no authority is 400.
#[tokio::test]
async fn an_invalid_host_header_is_400() {
    let host = Host::start();
    let mut stream = tokio::net::TcpStream::connect(&host.addr).await.unwrap();
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}

/// Replicas sharing a Redis store share the sealing keys: a challenge one sealed, another
/// opens and answers, once. A replica given another `keys.secret` is refused at start,
/// naming the key, rather than sealing what its peers cannot open.
#[tokio::test]
async fn replicas_on_one_store_answer_each_others_challenges_once() {
    if shared_store().contains("mode: memory") {
        println!("skipped: each embedded store is its own replica's (TOKENGINX_TEST_STORE)");
        return;
    }
    let (first, _) = flood_host("");
    let (_second, second_admin) = flood_host("");
    let to_login = location(&http().get(authorize_url(&first, "s")).send().await.unwrap());
    let challenge = query_param(&to_login, "login_challenge").unwrap();
    let path = format!("/admin/oauth2/auth/requests/login?login_challenge={challenge}");
    let described = http()
        .get(format!("{second_admin}{path}"))
        .send()
        .await
        .unwrap();
    assert_eq!(described.status(), 200);
    let described: serde_json::Value = described.json().await.unwrap();
    assert_eq!(described["client"]["client_id"], WEB_ID);
    let accept = format!("/admin/oauth2/auth/requests/login/accept?login_challenge={challenge}");
    let answer = |admin: String| {
        let url = format!("{admin}{accept}");
        async move {
            http()
                .put(url)
                .json(&serde_json::json!({ "subject": "alice" }))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(answer(second_admin.clone()).await, 200);
    assert_eq!(answer(second_admin).await, 410);

    let base = config_with_store(&default_guest(), "", &shared_store())
        .replace(KEYS_SECRET, "another secret than the replicas', 32+ characters")
        .replace(
            "  issuer: http://issuer.test\n",
            "  issuer: http://issuer.test\n  login_url: http://127.0.0.1:1/login\n  consent_url: http://127.0.0.1:1/consent\n",
        )
        .replace("log:\n", "admin:\n  port: 0\nlog:\n");
    let error = start_error(&base);
    assert!(
        error.contains("keys.secret: it does not open the keyring"),
        "{error}"
    );
}
