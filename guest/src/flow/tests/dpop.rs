//! DPoP (RFC 9449) on the flow: a code bound by `dpop_jkt`, a public client's refresh
//! tokens bound to its key, and userinfo taking a bound token only with a proof by its key.

use super::*;
use crate::testing::{refusal, DpopKey, NATIVE_ID, TOKEN_URL, USERINFO_URL};
use crate::Host as _;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};

fn now_s(host: &TestHost) -> u64 {
    host.now_ms() / 1000
}

/// A proof by `key` at the token endpoint, with a jti of its own.
fn token_proof(host: &TestHost, key: &DpopKey) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let jti = format!("jti-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    key.proof("POST", TOKEN_URL, now_s(host), &jti)
}

/// `client` redeems `code`, with a proof by `key` if any.
fn redeem_as(host: &TestHost, client: &str, code: &str, key: Option<&DpopKey>) -> Response {
    let params = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_of(client)),
        ("code_verifier", VERIFIER),
    ];
    let mut req = token_form(client, &params);
    req.dpop = key.map(|key| token_proof(host, key));
    token(host, &req)
}

fn userinfo(host: &TestHost, authorization: &str, proof: Option<String>) -> Response {
    crate::userinfo::userinfo(
        host,
        &crate::userinfo::Presented {
            authorization: Some(authorization),
            form_token: None,
            dpop: proof.as_deref(),
            method: "GET",
            client_cert: None,
        },
    )
}

/// A proof by `key` at userinfo for `token`.
fn resource_proof(host: &TestHost, key: &DpopKey, token: &str, jti: &str) -> String {
    key.sign(
        json!({"typ": "dpop+jwt"}),
        json!({"jti": jti, "htm": "GET", "htu": USERINFO_URL, "iat": now_s(host),
               "ath": crate::jose::sha256_b64(token)}),
    )
}

/// The web client's answer for an `openid` sign-in redeemed with a proof by `key`.
fn signed_in(host: &TestHost, key: Option<&DpopKey>) -> Value {
    let code = code_for(host, WEB_ID, "openid read", &[]);
    let response = redeem_as(host, WEB_ID, &code, key);
    assert_eq!(response.status, 200, "{}", response.body);
    body(&response)
}

#[test]
fn userinfo_takes_a_bound_token_only_with_a_proof_by_its_key() {
    let host = TestHost::new();
    let key = DpopKey::es256(11);
    let answer = signed_in(&host, Some(&key));
    assert_eq!(answer["token_type"], "DPoP");
    let token = answer["access_token"].as_str().unwrap();
    let dpop = format!("DPoP {token}");

    let ok = userinfo(&host, &dpop, Some(resource_proof(&host, &key, token, "u1")));
    assert_eq!((ok.status, body(&ok)["sub"].clone()), (200, json!("alice")));

    let as_bearer = userinfo(&host, &format!("Bearer {token}"), None);
    assert_eq!(refusal(&as_bearer), (401, "invalid_token".into()));
    let challenge = as_bearer.header("WWW-Authenticate").unwrap();
    assert!(
        challenge.starts_with("DPoP error=\"invalid_token\""),
        "{challenge}"
    );

    let no_proof = userinfo(&host, &dpop, None);
    assert_eq!(refusal(&no_proof), (401, "invalid_dpop_proof".into()));
    let other = DpopKey::es256(12);
    let by_other = userinfo(
        &host,
        &dpop,
        Some(resource_proof(&host, &other, token, "u2")),
    );
    assert_eq!(refusal(&by_other), (401, "invalid_dpop_proof".into()));
    let no_ath = key.proof("GET", USERINFO_URL, now_s(&host), "u3");
    let without_ath = userinfo(&host, &dpop, Some(no_ath));
    assert_eq!(refusal(&without_ath), (401, "invalid_dpop_proof".into()));
    let replay = userinfo(&host, &dpop, Some(resource_proof(&host, &key, token, "u1")));
    assert_eq!(refusal(&replay), (401, "invalid_dpop_proof".into()));
}

#[test]
fn a_bearer_token_cannot_be_presented_as_dpop() {
    let host = TestHost::new();
    let answer = signed_in(&host, None);
    assert_eq!(answer["token_type"], "Bearer");
    let token = answer["access_token"].as_str().unwrap();
    let key = DpopKey::es256(13);
    let proof = resource_proof(&host, &key, token, "x");
    let response = userinfo(&host, &format!("DPoP {token}"), Some(proof));
    assert_eq!(refusal(&response), (401, "invalid_token".into()));
}

#[test]
fn a_code_bound_by_dpop_jkt_goes_only_to_a_proof_by_that_key() {
    let host = TestHost::new();
    let key = DpopKey::es256(14);
    let jkt = key.jkt();
    let code = code_for(&host, WEB_ID, "read", &[("dpop_jkt", &jkt)]);
    let other = DpopKey::es256(15);
    let by_other = redeem_as(&host, WEB_ID, &code, Some(&other));
    assert_eq!(refusal(&by_other), (400, "invalid_grant".into()));
    let unproved = redeem_as(&host, WEB_ID, &code, None);
    assert_eq!(refusal(&unproved), (400, "invalid_dpop_proof".into()));
    let redeemed = redeem_as(&host, WEB_ID, &code, Some(&key));
    assert_eq!(redeemed.status, 200, "the refused attempts left the code");
    assert_eq!(body(&redeemed)["token_type"], "DPoP");
}

#[test]
fn a_malformed_dpop_jkt_is_refused_at_the_authorization_endpoint() {
    let host = TestHost::new();
    let challenge = challenge(VERIFIER);
    let response = Browser::default().get(
        &host,
        &[
            ("response_type", "code"),
            ("client_id", WEB_ID),
            ("redirect_uri", WEB_REDIRECT),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("dpop_jkt", "not-a-thumbprint"),
        ],
    );
    let back = location(&response);
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("invalid_request"),
        "{back}"
    );
}

#[test]
fn a_public_clients_refresh_token_is_bound_to_its_key_a_confidential_ones_is_not() {
    let host = TestHost::new();
    let key = DpopKey::es256(16);
    let code = code_for(&host, NATIVE_ID, "offline_access read", &[]);
    let answer = body(&redeem_as(&host, NATIVE_ID, &code, Some(&key)));
    let refresh = answer["refresh_token"].as_str().unwrap().to_owned();
    let refresh_with = |client: &str, presented: &str, key: Option<&DpopKey>| {
        let params = [
            ("grant_type", "refresh_token"),
            ("refresh_token", presented),
        ];
        let mut req = token_form(client, &params);
        req.dpop = key.map(|key| token_proof(&host, key));
        token(&host, &req)
    };
    let unproved = refresh_with(NATIVE_ID, &refresh, None);
    assert_eq!(refusal(&unproved), (400, "invalid_dpop_proof".into()));
    let other = DpopKey::es256(17);
    let by_other = refresh_with(NATIVE_ID, &refresh, Some(&other));
    assert_eq!(refusal(&by_other), (400, "invalid_grant".into()));
    let rotated = refresh_with(NATIVE_ID, &refresh, Some(&key));
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_eq!(body(&rotated)["token_type"], "DPoP");

    // The web client's grant started with a proof; its refresh token goes without one.
    let code = code_for(&host, WEB_ID, "offline_access read", &[]);
    let answer = body(&redeem_as(&host, WEB_ID, &code, Some(&key)));
    let refresh = answer["refresh_token"].as_str().unwrap();
    let rotated = refresh_with(WEB_ID, refresh, None);
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_eq!(body(&rotated)["token_type"], "Bearer");
}
