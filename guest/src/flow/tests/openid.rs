//! OpenID Connect on the flow: the ID token a sign-in with `openid` gets, the one each
//! refresh gets, userinfo, `prompt`; and JWT access tokens, introspected and revoked by
//! their `jti`.

use super::*;
use crate::testing::{issue, DEMO_ID, DEMO_SECRET};
use serde_json::{json, Value};

const NONCE: &str = "n-0S6_WzA2Mj";

/// The header and the claims of a JWS the test host "signed".
pub(super) fn jws(token: &str) -> (Value, Value) {
    let part = |i: usize| -> Value {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(i).unwrap())
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    (part(0), part(1))
}

/// Signs alice in to the web client with `openid`, the login app naming how, and the
/// consent app adding ID token claims (one of which tries to change `sub`): the redirect
/// back to the client.
fn openid_sign_in(browser: &mut Browser, host: &TestHost, extra: &[(&str, &str)]) -> Response {
    let challenge = challenge(VERIFIER);
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", WEB_ID),
        ("redirect_uri", WEB_REDIRECT),
        ("scope", "openid offline_access read"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("nonce", NONCE),
    ];
    params.extend_from_slice(extra);
    browser.get(host, &params)
}

fn finish(browser: &mut Browser, host: &TestHost, to_login: &Response) -> String {
    let login_challenge = param(&location(to_login), "login_challenge").unwrap();
    let consent = json!({
        "grant_scope": ["openid", "offline_access", "read"],
        "session": {
            "id_token": {"email": "alice@example.test", "sub": "mallory", "nonce": "forged"},
            "access_token": {"team": "blue"},
        },
    });
    consent_with(
        browser,
        host,
        &login_challenge,
        r#"{"subject":"alice","acr":"urn:example:mfa","amr":["pwd","otp"]}"#,
        &consent.to_string(),
    )
}

fn userinfo(host: &TestHost, token: &str) -> Response {
    crate::testing::userinfo(host, Some(&format!("Bearer {token}")), None)
}

#[test]
fn an_openid_sign_in_gets_an_id_token_and_each_refresh_another() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let to_login = openid_sign_in(&mut browser, &host, &[]);
    let back = finish(&mut browser, &host, &to_login);
    let issued = redeem(&host, &param(&back, "code").unwrap(), VERIFIER);
    assert_eq!(issued.status, 200, "{}", issued.body);
    let issued = body(&issued);
    let access_token = issued["access_token"].as_str().unwrap();
    let (header, claims) = jws(issued["id_token"].as_str().unwrap());
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["iss"], "http://issuer.test");
    assert_eq!(claims["sub"], "alice", "a session cannot override sub");
    assert_eq!(claims["aud"], WEB_ID);
    assert_eq!(claims["nonce"], NONCE, "the request's nonce, exactly");
    assert_eq!(claims["email"], "alice@example.test");
    assert_eq!(claims["acr"], "urn:example:mfa");
    assert_eq!(claims["amr"], json!(["pwd", "otp"]));
    let now = crate::Host::now_ms(&host) / 1000;
    assert_eq!(claims["iat"], now);
    assert_eq!(claims["auth_time"], now);
    assert_eq!(claims["exp"], now + 3600);
    let digest = Sha256::digest(access_token.as_bytes());
    let at_hash = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]);
    assert_eq!(claims["at_hash"], at_hash);

    let info = userinfo(&host, access_token);
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(
        body(&info),
        json!({"sub": "alice", "email": "alice@example.test"})
    );

    host.advance_clock_ms(60_000);
    let refreshed = token(
        &host,
        &form(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", issued["refresh_token"].as_str().unwrap()),
            ],
            Some(basic(WEB_ID, WEB_SECRET)),
        ),
    );
    let refreshed = body(&refreshed);
    let (_, again) = jws(refreshed["id_token"].as_str().unwrap());
    assert_eq!(again["sub"], "alice");
    assert_eq!(
        again["auth_time"], now,
        "the time of the sign-in, not of the refresh"
    );
    assert_eq!(again["iat"], now + 60);
    assert_eq!(again.get("nonce"), None, "OpenID Connect Core 12.2");
}

#[test]
fn userinfo_refuses_what_is_not_a_live_openid_token() {
    let host = TestHost::new();
    let without = userinfo(&host, "");
    assert_eq!(without.status, 401);
    assert_eq!(without.header("WWW-Authenticate"), Some("Bearer"));
    let unknown = userinfo(&host, "not-a-token");
    assert_eq!(unknown.status, 401);
    assert!(unknown
        .header("WWW-Authenticate")
        .unwrap()
        .starts_with("Bearer error=\"invalid_token\""));
    // A client's own token names no user.
    let machine = issue(&host, "read");
    let refused = userinfo(&host, &machine);
    assert_eq!(refused.status, 401, "{}", refused.body);
    // A user's token without openid.
    let mut browser = Browser::default();
    let login_challenge = start(&mut browser, &host, WEB_ID, WEB_REDIRECT);
    let back = consent(&mut browser, &host, &login_challenge);
    let issued = redeem(&host, &param(&back, "code").unwrap(), VERIFIER);
    assert_eq!(body(&issued).get("id_token"), None);
    let token = body(&issued)["access_token"].as_str().unwrap().to_owned();
    let refused = userinfo(&host, &token);
    assert_eq!(refused.status, 403);
    assert_eq!(body(&refused)["error"], "insufficient_scope");
    // Both ways at once.
    let twice = crate::testing::userinfo(&host, Some(&format!("Bearer {token}")), Some(&token));
    assert_eq!(twice.status, 400);
}

#[test]
fn prompt_none_without_a_remembered_login_is_login_required_at_the_client() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let answer = openid_sign_in(&mut browser, &host, &[("prompt", "none"), ("state", "s")]);
    let back = location(&answer);
    assert!(back.starts_with(WEB_REDIRECT), "{back}");
    assert_eq!(param(&back, "error").as_deref(), Some("login_required"));
    assert_eq!(param(&back, "state").as_deref(), Some("s"));
    for bad in ["none login", "sometimes"] {
        let answer = openid_sign_in(&mut browser, &host, &[("prompt", bad)]);
        assert_eq!(
            param(&location(&answer), "error").as_deref(),
            Some("invalid_request")
        );
    }
}

#[test]
fn the_login_app_sees_what_the_request_asked_of_the_sign_in() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let to_login = openid_sign_in(
        &mut browser,
        &host,
        &[
            ("login_hint", "alice@example.test"),
            ("ui_locales", "fr en"),
            ("resource", crate::testing::AUDIENCE),
        ],
    );
    let login_challenge = param(&location(&to_login), "login_challenge").unwrap();
    let request = call(
        &host,
        "login-request",
        &[("login_challenge", &login_challenge)],
        "",
    );
    let request = body(&request);
    assert_eq!(request["oidc_context"]["login_hint"], "alice@example.test");
    assert_eq!(request["oidc_context"]["ui_locales"], json!(["fr", "en"]));
    assert_eq!(
        request["requested_access_token_audience"],
        json!([crate::testing::AUDIENCE])
    );
    let foreign = openid_sign_in(
        &mut browser,
        &host,
        &[("resource", "https://elsewhere.test")],
    );
    assert_eq!(
        param(&location(&foreign), "error").as_deref(),
        Some("invalid_target")
    );
}

#[test]
fn a_jwt_access_token_is_introspected_and_revoked_by_its_jti() {
    let host = TestHost::new();
    host.use_jwt_access_tokens(DEMO_ID);
    let token = issue(&host, "read");
    let (header, claims) = jws(&token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(claims["sub"], DEMO_ID);
    assert_eq!(claims["client_id"], DEMO_ID);
    assert_eq!(claims["scope"], "read");
    assert_eq!(
        claims["aud"],
        json!([crate::testing::AUDIENCE, "https://other-api.test"])
    );
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );
    let introspect_as = |token: &str| {
        body(&introspect(
            &host,
            &form(&[("token", token)], Some(basic(DEMO_ID, DEMO_SECRET))),
        ))
    };
    let seen = introspect_as(&token);
    assert_eq!(seen["active"], true);
    assert_eq!(
        seen["aud"], claims["aud"],
        "introspection names the token's audiences"
    );
    // The jti is where the record is, not a credential: presented as a token it is
    // nothing, and a token the host did not sign, naming the same jti, is nothing either.
    let jti = claims["jti"].as_str().unwrap();
    assert!(!token.contains(jti));
    assert_eq!(introspect_as(jti)["active"], false);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let (header, _, signature) = (parts.next().unwrap(), parts.next(), parts.next().unwrap());
    let forged_claims = json!({"jti": jti, "sub": "mallory", "scope": "admin"}).to_string();
    let forged = format!("{header}.{}.{signature}", b64.encode(forged_claims));
    assert_eq!(introspect_as(&forged)["active"], false);
    // Revoking the JWT revokes the token it stands for.
    crate::revoke(
        &host,
        &form(&[("token", &token)], Some(basic(DEMO_ID, DEMO_SECRET))),
    );
    assert_eq!(introspect_as(&token)["active"], false);

    let narrowed = token_with(&host, &[("resource", "https://other-api.test")]);
    let narrowed_seen = introspect_as(narrowed["access_token"].as_str().unwrap());
    assert_eq!(narrowed_seen["aud"], json!(["https://other-api.test"]));
    assert_eq!(
        jws(narrowed["access_token"].as_str().unwrap()).1["aud"],
        json!(["https://other-api.test"])
    );
    let refused = token_with(
        &host,
        &[("audience", "https://api.test https://elsewhere.test")],
    );
    assert_eq!(refused["error"], "invalid_target");
}

fn token_with(host: &TestHost, extra: &[(&str, &str)]) -> Value {
    let mut params = vec![("grant_type", "client_credentials"), ("scope", "read")];
    params.extend_from_slice(extra);
    body(&token(
        host,
        &form(&params, Some(basic(DEMO_ID, DEMO_SECRET))),
    ))
}

#[test]
fn prompt_consent_asks_again_for_a_remembered_consent() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let to_login = openid_sign_in(&mut browser, &host, &[]);
    let login_challenge = param(&location(&to_login), "login_challenge").unwrap();
    consent_with(
        &mut browser,
        &host,
        &login_challenge,
        r#"{"subject":"alice"}"#,
        r#"{"grant_scope":["openid","offline_access","read"],"remember":true}"#,
    );
    // The consent app's `skip` for the next sign-in, with and without prompt=consent.
    let skip = |browser: &mut Browser, extra: &[(&str, &str)]| {
        let to_login = openid_sign_in(browser, &host, extra);
        let login_challenge = param(&location(&to_login), "login_challenge").unwrap();
        let back = alice_logs_in(&host, &login_challenge);
        let to_consent = location(&browser.follow(&host, &back));
        let consent_challenge = param(&to_consent, "consent_challenge").unwrap();
        let request = call(
            &host,
            "consent-request",
            &[("consent_challenge", &consent_challenge)],
            "",
        );
        body(&request)["skip"].as_bool().unwrap()
    };
    assert!(skip(&mut browser, &[]));
    assert!(!skip(&mut browser, &[("prompt", "consent")]));
}

#[test]
fn a_consent_with_too_many_session_claims_is_refused_and_may_answer_again() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let to_login = openid_sign_in(&mut browser, &host, &[]);
    let login_challenge = param(&location(&to_login), "login_challenge").unwrap();
    let back = alice_logs_in(&host, &login_challenge);
    let to_consent = location(&browser.follow(&host, &back));
    let consent_challenge = param(&to_consent, "consent_challenge").unwrap();
    let accept = |body: &str| {
        call(
            &host,
            "consent-accept",
            &[("consent_challenge", &consent_challenge)],
            body,
        )
    };
    let huge =
        json!({"grant_scope": ["openid"], "session": {"id_token": {"bio": "x".repeat(9000)}}});
    let refused = accept(&huge.to_string());
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(body(&refused)["error_description"]
        .as_str()
        .unwrap()
        .contains("session.id_token"));
    assert_eq!(accept(r#"{"grant_scope":["openid"]}"#).status, 200);
}
