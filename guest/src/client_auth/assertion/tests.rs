use super::*;
use crate::testing::{
    body, form, hs256, keyed_keys, refusal, TestHost, DEMO_ID, KEYED_ID, MAC_ID, MAC_SECRET,
    TOKEN_URL,
};
use serde_json::json;

fn now_s(host: &TestHost) -> u64 {
    host.now_ms() / 1000
}

/// The claims of a good assertion of `client`, sent to the token endpoint.
fn claims(host: &TestHost, client: &str, jti: &str) -> Value {
    json!({"iss": client, "sub": client, "aud": TOKEN_URL, "jti": jti,
           "iat": now_s(host), "exp": now_s(host) + 60})
}

/// An ES256 assertion by the keyed client's first key, with its `kid`.
fn signed(claims: Value) -> String {
    let [es256, _] = keyed_keys();
    es256.sign(json!({"typ": "JWT", "kid": "es", "jwk": null}), claims)
}

fn token_with(host: &TestHost, assertion: &str) -> crate::Response {
    crate::token(
        host,
        &form(
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", assertion),
            ],
            None,
        ),
    )
}

#[test]
fn private_key_jwt_authenticates_with_any_registered_key() {
    let host = TestHost::new();
    let issued = token_with(&host, &signed(claims(&host, KEYED_ID, "a")));
    assert_eq!(issued.status, 200, "{}", issued.body);
    assert_eq!(host.take_authenticated().as_deref(), Some(KEYED_ID));
    // The EdDSA key, found without a kid; the issuer as aud.
    let [_, eddsa] = keyed_keys();
    let mut by_eddsa = claims(&host, KEYED_ID, "b");
    by_eddsa["aud"] = json!(["http://issuer.test"]);
    let assertion = eddsa.sign(json!({"jwk": null}), by_eddsa);
    assert_eq!(token_with(&host, &assertion).status, 200);
}

#[test]
fn client_secret_jwt_is_verified_by_the_host() {
    let host = TestHost::new();
    let good = hs256(MAC_SECRET, claims(&host, MAC_ID, "m"));
    assert_eq!(token_with(&host, &good).status, 200);
    let wrong = hs256(
        "another-secret-0123456789-0123456789-0",
        claims(&host, MAC_ID, "n"),
    );
    assert_eq!(
        refusal(&token_with(&host, &wrong)),
        (401, "invalid_client".into())
    );
    // A client without client_secret_jwt gets nothing from an HS256 assertion.
    let other = hs256(MAC_SECRET, claims(&host, DEMO_ID, "o"));
    assert_eq!(
        refusal(&token_with(&host, &other)),
        (401, "invalid_client".into())
    );
}

#[test]
fn each_bad_assertion_is_invalid_client_and_writes_nothing() {
    let host = TestHost::new();
    let now = now_s(&host);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = claims(&host, KEYED_ID, "x");
        change(&mut c);
        signed(c)
    };
    let other_key = crate::testing::DpopKey::es256(99).sign(
        json!({"kid": "es", "jwk": null}),
        claims(&host, KEYED_ID, "x"),
    );
    let cases = [
        ("a key it did not register", other_key),
        ("another sub", with(&|c| c["sub"] = json!(DEMO_ID))),
        (
            "an unknown client",
            with(&|c| {
                c["iss"] = json!("nobody");
                c["sub"] = json!("nobody")
            }),
        ),
        (
            "another aud",
            with(&|c| c["aud"] = json!("https://elsewhere.test")),
        ),
        (
            "no exp",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        ("expired", with(&|c| c["exp"] = json!(now - SKEW_S - 1))),
        (
            "too long",
            with(&|c| c["exp"] = json!(now + MAX_LIFETIME_S + SKEW_S + 1)),
        ),
        ("iat ahead", with(&|c| c["iat"] = json!(now + SKEW_S + 1))),
        (
            "no jti",
            with(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
        ),
        ("not a JWS", "a.b.c".to_owned()),
    ];
    for (case, assertion) in cases {
        assert_eq!(
            refusal(&token_with(&host, &assertion)),
            (401, "invalid_client".into()),
            "{case}"
        );
    }
    assert_eq!(host.entries(), 0, "a refused assertion writes nothing");
}

#[test]
fn an_assertion_is_taken_once_for_as_long_as_it_lives() {
    let host = TestHost::new();
    let assertion = signed(claims(&host, KEYED_ID, "once"));
    assert_eq!(token_with(&host, &assertion).status, 200);
    let replay = token_with(&host, &assertion);
    assert_eq!(refusal(&replay), (401, "invalid_client".into()));
    assert!(body(&replay)["error_description"]
        .as_str()
        .unwrap()
        .contains("used before"));
    let jti = host
        .keys()
        .into_iter()
        .find(|k| k.starts_with(JTI_PREFIX))
        .unwrap();
    assert_eq!(host.ttl_ms(&jti), Some((60 + SKEW_S) * 1000));
}

#[test]
fn an_assertion_with_a_secret_or_another_type_is_refused() {
    let host = TestHost::new();
    let assertion = signed(claims(&host, KEYED_ID, "t"));
    let twice = crate::token(
        &host,
        &form(
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &assertion),
                ("client_secret", "s"),
            ],
            None,
        ),
    );
    assert_eq!(refusal(&twice), (400, "invalid_request".into()));
    let saml = crate::token(
        &host,
        &form(
            &[
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
                ),
                ("client_assertion", &assertion),
            ],
            None,
        ),
    );
    assert_eq!(refusal(&saml), (401, "invalid_client".into()));
}

#[test]
fn introspection_takes_an_assertion_addressed_to_it() {
    let host = TestHost::new();
    let token = crate::testing::issue(&host, "read");
    let mut c = claims(&host, KEYED_ID, "i");
    c["aud"] = json!("http://issuer.test/api/v1/oauth/introspect");
    let req = form(
        &[
            ("token", &token),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &signed(c)),
        ],
        None,
    );
    let response = crate::introspect(&host, &req);
    assert_eq!(body(&response)["active"], true, "{}", response.body);
}
