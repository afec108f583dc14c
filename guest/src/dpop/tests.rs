use super::*;
use crate::testing::{
    basic, body, form, refusal, DpopKey, TestHost, DEMO_ID, DEMO_SECRET, TOKEN_URL,
};
use serde_json::json;

fn now_s(host: &TestHost) -> u64 {
    host.now_ms() / 1000
}

/// A client_credentials request of the demo client with `proof`.
fn token_with(host: &TestHost, proof: Option<String>) -> crate::Response {
    let mut req = form(
        &[("grant_type", "client_credentials")],
        Some(basic(DEMO_ID, DEMO_SECRET)),
    );
    req.dpop = proof;
    crate::token(host, &req)
}

#[test]
fn a_proof_binds_the_token_to_its_key_and_introspection_says_so() {
    let host = TestHost::new();
    let key = DpopKey::es256(7);
    let response = token_with(&host, Some(key.proof("POST", TOKEN_URL, now_s(&host), "a")));
    assert_eq!(response.status, 200, "{}", response.body);
    let answer = body(&response);
    assert_eq!(answer["token_type"], "DPoP");
    let token = answer["access_token"].as_str().unwrap();
    let introspected = crate::introspect(
        &host,
        &form(&[("token", token)], Some(basic(DEMO_ID, DEMO_SECRET))),
    );
    let introspected = body(&introspected);
    assert_eq!(introspected["token_type"], "DPoP");
    assert_eq!(introspected["cnf"], json!({"jkt": key.jkt()}));
}

#[test]
fn without_a_proof_a_token_is_a_bearer_token() {
    let host = TestHost::new();
    let answer = body(&token_with(&host, None));
    assert_eq!(answer["token_type"], "Bearer");
}

#[test]
fn each_malformed_proof_is_invalid_dpop_proof_and_writes_nothing() {
    let host = TestHost::new();
    let key = DpopKey::eddsa(3);
    let now = now_s(&host);
    let claims =
        |htm: &str, htu: &str, iat: u64| json!({"jti": "j", "htm": htm, "htu": htu, "iat": iat});
    let cases = [
        ("not a JWS", "a.b".to_owned()),
        ("wrong typ", key.sign(json!({"typ": "JWT"}), claims("POST", TOKEN_URL, now))),
        ("no jwk", key.sign(json!({"typ": "dpop+jwt", "jwk": null}), claims("POST", TOKEN_URL, now))),
        (
            "a private jwk",
            key.sign(
                json!({"typ": "dpop+jwt", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": key.jwk()["x"], "d": "AA"}}),
                claims("POST", TOKEN_URL, now),
            ),
        ),
        (
            "another key's jwk",
            key.sign(json!({"typ": "dpop+jwt", "jwk": DpopKey::eddsa(4).jwk()}), claims("POST", TOKEN_URL, now)),
        ),
        ("wrong htm", key.proof("GET", TOKEN_URL, now, "j")),
        ("wrong htu", key.proof("POST", "http://issuer.test/api/v1/oauth/introspect", now, "j")),
        // Whatever Host a request names: a proof made for another server is no good here.
        ("another server", key.proof("POST", "http://other.test/api/v1/oauth/token", now, "j")),
        ("old iat", key.proof("POST", TOKEN_URL, now - IAT_WINDOW_S - 1, "j")),
        ("future iat", key.proof("POST", TOKEN_URL, now + IAT_WINDOW_S + 1, "j")),
        (
            "no jti",
            key.sign(json!({"typ": "dpop+jwt"}), json!({"htm": "POST", "htu": TOKEN_URL, "iat": now})),
        ),
    ];
    for (case, proof) in cases {
        let response = token_with(&host, Some(proof));
        assert_eq!(
            refusal(&response),
            (400, "invalid_dpop_proof".into()),
            "{case}"
        );
    }
    assert_eq!(host.entries(), 0, "a refused proof writes nothing");
}

#[test]
fn htu_is_compared_as_section_4_3_says() {
    let host = TestHost::new();
    let key = DpopKey::es256(9);
    let now = now_s(&host);
    for (i, htu) in [
        "HTTP://Issuer.TEST:80/api/v1/oauth/token",
        "http://issuer.test/api/v1/oauth/%74oken?query#fragment",
    ]
    .into_iter()
    .enumerate()
    {
        let response = token_with(&host, Some(key.proof("POST", htu, now, &i.to_string())));
        assert_eq!(response.status, 200, "{htu}: {}", response.body);
    }
    assert_eq!(
        normalized("https://a.example:443"),
        Some("https://a.example/".into())
    );
    assert_eq!(
        normalized("https://a.example:8443/x%2f"),
        Some("https://a.example:8443/x%2F".into())
    );
    assert_eq!(normalized("ftp://a.example/"), None);
}

#[test]
fn a_replayed_proof_is_refused_and_the_first_token_stands() {
    let host = TestHost::new();
    let key = DpopKey::es256(5);
    let proof = key.proof("POST", TOKEN_URL, now_s(&host), "once");
    assert_eq!(token_with(&host, Some(proof.clone())).status, 200);
    let replay = token_with(&host, Some(proof));
    assert_eq!(refusal(&replay), (400, "invalid_dpop_proof".into()));
    assert_eq!(
        body(&replay)["error_description"],
        "the DPoP proof was used before"
    );
    // The jti lives as long as a proof's iat is acceptable, and no longer.
    let jtis: Vec<String> = host
        .keys()
        .into_iter()
        .filter(|k| k.starts_with(JTI_PREFIX))
        .collect();
    assert_eq!(jtis.len(), 1);
    assert_eq!(host.ttl_ms(&jtis[0]), Some(2 * IAT_WINDOW_S * 1000));
}

#[test]
fn the_same_jti_under_another_key_is_another_proof() {
    let host = TestHost::new();
    let now = now_s(&host);
    for seed in [1, 2] {
        let proof = DpopKey::es256(seed).proof("POST", TOKEN_URL, now, "same");
        assert_eq!(token_with(&host, Some(proof)).status, 200);
    }
}

#[test]
fn with_require_nonce_a_proof_needs_one_of_ours() {
    let host = TestHost::new();
    host.dpop.borrow_mut().require_nonce = true;
    let key = DpopKey::es256(6);
    let now = now_s(&host);
    let first = token_with(&host, Some(key.proof("POST", TOKEN_URL, now, "n1")));
    assert_eq!(refusal(&first), (400, "use_dpop_nonce".into()));
    let nonce = first.header("DPoP-Nonce").unwrap().to_owned();
    assert_eq!(host.entries(), 0, "a nonce costs the store nothing");
    let with_nonce = |nonce: &str, jti: &str| {
        key.sign(
            json!({"typ": "dpop+jwt"}),
            json!({"jti": jti, "htm": "POST", "htu": TOKEN_URL, "iat": now, "nonce": nonce}),
        )
    };
    assert_eq!(
        token_with(&host, Some(with_nonce(&nonce, "n2"))).status,
        200
    );
    let forged = token_with(&host, Some(with_nonce("made-up", "n3")));
    assert_eq!(refusal(&forged), (400, "use_dpop_nonce".into()));
    host.advance_clock_ms(NONCE_TTL_MS + 1);
    let stale = key.sign(
        json!({"typ": "dpop+jwt"}),
        json!({"jti": "n4", "htm": "POST", "htu": TOKEN_URL, "iat": now_s(&host), "nonce": nonce}),
    );
    assert_eq!(
        refusal(&token_with(&host, Some(stale))),
        (400, "use_dpop_nonce".into())
    );
}

#[test]
fn a_dpop_bound_client_must_send_a_proof() {
    let host = TestHost::new();
    host.dpop.borrow_mut().bound_clients = vec![DEMO_ID.into()];
    assert_eq!(
        refusal(&token_with(&host, None)),
        (400, "invalid_dpop_proof".into())
    );
    let key = DpopKey::es256(8);
    let proof = key.proof("POST", TOKEN_URL, now_s(&host), "b");
    assert_eq!(token_with(&host, Some(proof)).status, 200);
}

#[test]
fn a_client_over_its_rate_limit_keeps_its_proof_unspent() {
    let host = TestHost::new();
    host.set_rate_budget(0);
    let key = DpopKey::es256(2);
    let proof = key.proof("POST", TOKEN_URL, now_s(&host), "later");
    assert_eq!(token_with(&host, Some(proof)).status, 429);
    assert_eq!(host.entries(), 0);
}
