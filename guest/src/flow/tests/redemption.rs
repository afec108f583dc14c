//! The code at the token endpoint: who may redeem it, with what, and what a replay ends.

use super::*;

#[test]
fn a_public_client_redeems_with_its_id_and_verifier_alone() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let challenge = start(&mut browser, &host, NATIVE_ID, NATIVE_REDIRECT);
    let back = consent(&mut browser, &host, &challenge);
    let code = param(&back, "code").unwrap();
    let issued = token(
        &host,
        &form(
            &[
                ("grant_type", "authorization_code"),
                ("client_id", NATIVE_ID),
                ("code", &code),
                ("redirect_uri", NATIVE_REDIRECT),
                ("code_verifier", VERIFIER),
            ],
            None,
        ),
    );
    assert_eq!(issued.status, 200, "{}", issued.body);
    // A public client gets no client_credentials token.
    let machine = token(
        &host,
        &form(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", NATIVE_ID),
            ],
            None,
        ),
    );
    assert_eq!(body(&machine)["error"], "unauthorized_client");
}

/// A request that fails a check is refused before the code is taken: the code stays for
/// the client it was issued to (docs/behaviour.md, misuse).
#[test]
fn a_code_is_bound_to_its_client_and_redirect_uri_and_a_wrong_attempt_leaves_it_to_its_owner() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let challenge = start(&mut browser, &host, WEB_ID, WEB_REDIRECT);
    let code = param(&consent(&mut browser, &host, &challenge), "code").unwrap();
    let by_other = token(
        &host,
        &form(
            &[
                ("grant_type", "authorization_code"),
                ("client_id", NATIVE_ID),
                ("code", &code),
                ("redirect_uri", WEB_REDIRECT),
                ("code_verifier", VERIFIER),
            ],
            None,
        ),
    );
    assert_eq!(body(&by_other)["error"], "invalid_grant");
    assert!(body(&redeem(&host, &code, VERIFIER))["access_token"].is_string());

    let challenge = start(&mut browser, &host, WEB_ID, WEB_REDIRECT);
    let code = param(&consent(&mut browser, &host, &challenge), "code").unwrap();
    let elsewhere = token(
        &host,
        &form(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "https://app.example/other"),
                ("code_verifier", VERIFIER),
            ],
            Some(basic(WEB_ID, WEB_SECRET)),
        ),
    );
    assert_eq!(body(&elsewhere)["error"], "invalid_grant");
    assert!(body(&redeem(&host, &code, VERIFIER))["access_token"].is_string());
}

#[test]
fn an_omitted_redirect_uri_may_be_omitted_at_the_token_endpoint_too() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let response = browser.get(
        &host,
        &[
            ("response_type", "code"),
            ("client_id", WEB_ID),
            ("scope", "read"),
            ("code_challenge", &challenge(VERIFIER)),
            ("code_challenge_method", "S256"),
        ],
    );
    let login_challenge = param(&location(&response), "login_challenge").unwrap();
    let back = consent(&mut browser, &host, &login_challenge);
    assert!(
        back.starts_with(WEB_REDIRECT),
        "the one registered URI: {back}"
    );
    let code = param(&back, "code").unwrap();
    let issued = token(
        &host,
        &form(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", VERIFIER),
            ],
            Some(basic(WEB_ID, WEB_SECRET)),
        ),
    );
    assert_eq!(issued.status, 200, "{}", issued.body);
}

#[test]
fn a_client_over_its_rate_limit_keeps_its_code_for_a_retry() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let challenge = start(&mut browser, &host, WEB_ID, WEB_REDIRECT);
    let code = param(&consent(&mut browser, &host, &challenge), "code").unwrap();
    host.set_rate_budget(0);
    assert_eq!(redeem(&host, &code, VERIFIER).status, 429);
    host.set_rate_budget(1);
    let issued = redeem(&host, &code, VERIFIER);
    assert_eq!(issued.status, 200, "{}", issued.body);
}

#[test]
fn only_the_codes_own_client_with_its_verifier_ends_the_grant_by_replaying_the_code() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let login_challenge = start(&mut browser, &host, WEB_ID, WEB_REDIRECT);
    let code = param(&consent(&mut browser, &host, &login_challenge), "code").unwrap();
    let issued = redeem(&host, &code, VERIFIER);
    let access_token = body(&issued)["access_token"].as_str().unwrap().to_owned();
    let active = |token: &str| {
        let seen = introspect(
            &host,
            &form(&[("token", token)], Some(basic(WEB_ID, WEB_SECRET))),
        );
        body(&seen)["active"] == true
    };
    // A used code from a browser's history, replayed under a public client's id.
    let elsewhere = token(
        &host,
        &form(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", NATIVE_REDIRECT),
                ("code_verifier", VERIFIER),
                ("client_id", NATIVE_ID),
            ],
            None,
        ),
    );
    assert_eq!(body(&elsewhere)["error"], "invalid_grant");
    assert!(active(&access_token), "another client cannot end the grant");
    // Nor can the code alone, under its own client: the verifier never was in a URL.
    let other_verifier = "x".repeat(43);
    let without = redeem(&host, &code, &other_verifier);
    assert_eq!(body(&without)["error"], "invalid_grant");
    assert!(active(&access_token), "a used code alone ends nothing");
    let again = redeem(&host, &code, VERIFIER);
    assert_eq!(body(&again)["error"], "invalid_grant");
    assert!(!active(&access_token), "its own client's replay ends it");
}
