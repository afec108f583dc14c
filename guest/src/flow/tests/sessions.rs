//! A user's consents listed and taken back, and remembered logins forgotten (Hydra's
//! `/admin/oauth2/auth/sessions/...`), through whole flows.

use super::*;
use crate::flow::sessions::handle as sessions;

/// Alice signs in to `client` (remembering the login and the consent) and grants `read`
/// and `offline_access`: the redirect back with the code.
fn granted(browser: &mut Browser, host: &TestHost, client: &str, redirect: &str) -> String {
    granted_remembering(browser, host, client, redirect, true)
}

/// [`granted`], the consent remembered or not.
fn granted_remembering(
    browser: &mut Browser,
    host: &TestHost,
    client: &str,
    redirect: &str,
    remember: bool,
) -> String {
    let response = browser.get(
        host,
        &[
            ("response_type", "code"),
            ("client_id", client),
            ("redirect_uri", redirect),
            ("scope", "read offline_access"),
            ("code_challenge", &challenge(VERIFIER)),
            ("code_challenge_method", "S256"),
        ],
    );
    let login_challenge = param(&location(&response), "login_challenge").unwrap();
    consent_with(
        browser,
        host,
        &login_challenge,
        r#"{"subject":"alice","remember":true,"remember_for":3600}"#,
        &format!(
            r#"{{"grant_scope":["read","offline_access"],"remember":{remember},"remember_for":3600}}"#
        ),
    )
}

/// The code of `back` redeemed by `client`: the token response.
fn tokens(host: &TestHost, client: &str, redirect: &str, back: &str) -> serde_json::Value {
    let code = param(back, "code").unwrap();
    let mut params = vec![
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect),
        ("code_verifier", VERIFIER),
    ];
    let auth = match client {
        WEB_ID => Some(basic(WEB_ID, WEB_SECRET)),
        _ => {
            params.push(("client_id", client));
            None
        }
    };
    let answer = token(host, &form(&params, auth));
    assert_eq!(answer.status, 200, "{}", answer.body);
    body(&answer)
}

fn active(host: &TestHost, token: &str) -> bool {
    let req = form(&[("token", token)], Some(basic(WEB_ID, WEB_SECRET)));
    body(&introspect(host, &req))["active"] == true
}

/// A new sign-in to the web app in `browser`: its login challenge, and what the login app
/// is told of it.
fn login_request(browser: &mut Browser, host: &TestHost) -> (String, serde_json::Value) {
    let challenge = start(browser, host, WEB_ID, WEB_REDIRECT);
    let login = call(
        host,
        "login-request",
        &[("login_challenge", &challenge)],
        "",
    );
    (challenge, body(&login))
}

fn admin_call(host: &TestHost, method: &str, which: &str, query: &[(&str, &str)]) -> Response {
    sessions(host, method, which, &owned(query))
}

#[test]
fn revoking_one_apps_consent_ends_its_tokens_and_leaves_the_others() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let back = granted(&mut browser, &host, WEB_ID, WEB_REDIRECT);
    let web = tokens(&host, WEB_ID, WEB_REDIRECT, &back);
    let back = granted(&mut browser, &host, NATIVE_ID, NATIVE_REDIRECT);
    let native = tokens(&host, NATIVE_ID, NATIVE_REDIRECT, &back);

    let listed = admin_call(&host, "GET", "consent", &[("subject", "alice")]);
    assert_eq!(listed.status, 200);
    let clients: Vec<String> = body(&listed)
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["consent_request"]["client"]["client_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(clients, [NATIVE_ID, WEB_ID]);
    assert_eq!(
        body(&listed)[1]["grant_scope"],
        serde_json::json!(["read", "offline_access"])
    );
    assert_eq!(body(&listed)[1]["consent_request"]["subject"], "alice");

    let revoked = admin_call(
        &host,
        "DELETE",
        "consent",
        &[("subject", "alice"), ("client", WEB_ID)],
    );
    assert_eq!(revoked.status, 204, "{}", revoked.body);
    for kind in ["access_token", "refresh_token"] {
        assert!(!active(&host, web[kind].as_str().unwrap()), "web's {kind}");
        assert!(
            active(&host, native[kind].as_str().unwrap()),
            "native's {kind}"
        );
    }
    let refresh = token(
        &host,
        &form(
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", web["refresh_token"].as_str().unwrap()),
            ],
            Some(basic(WEB_ID, WEB_SECRET)),
        ),
    );
    assert_eq!(body(&refresh)["error"], "invalid_grant");
    let listed = body(&admin_call(
        &host,
        "GET",
        "consent",
        &[("subject", "alice")],
    ));
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // Asked again: the login is remembered still, the consent to web is not.
    let (again, login) = login_request(&mut browser, &host);
    assert_eq!(login["skip"], true);
    let accepted = call(
        &host,
        "login-accept",
        &[("login_challenge", &again)],
        r#"{"subject":"alice"}"#,
    );
    let to_consent =
        location(&browser.follow(&host, body(&accepted)["redirect_to"].as_str().unwrap()));
    let consent_challenge = param(&to_consent, "consent_challenge").unwrap();
    let consent = body(&call(
        &host,
        "consent-request",
        &[("consent_challenge", &consent_challenge)],
        "",
    ));
    assert_eq!(consent["skip"], false, "a revoked consent is asked again");

    // Forgetting the logins: the next sign-in asks who.
    let forgot = admin_call(&host, "DELETE", "login", &[("subject", "alice")]);
    assert_eq!(forgot.status, 204);
    let (_, login) = login_request(&mut browser, &host);
    assert_eq!(login["skip"], false);
    assert!(
        active(&host, native["access_token"].as_str().unwrap()),
        "tokens outlive a logout"
    );
}

#[test]
fn a_grant_refreshed_past_its_first_tokens_is_still_revoked_with_its_consent() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let back = granted(&mut browser, &host, WEB_ID, WEB_REDIRECT);
    let mut tokens = tokens(&host, WEB_ID, WEB_REDIRECT, &back);
    // Refreshed every 29 days: the grant outlives its first refresh token's 30 days.
    for _ in 0..2 {
        host.advance_clock_ms(29 * 24 * 3600 * 1000);
        let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
        let params = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh.as_str()),
        ];
        let answer = token(&host, &form(&params, Some(basic(WEB_ID, WEB_SECRET))));
        assert_eq!(answer.status, 200, "{}", answer.body);
        tokens = body(&answer);
    }
    let query = [("subject", "alice"), ("client", WEB_ID)];
    assert_eq!(admin_call(&host, "DELETE", "consent", &query).status, 204);
    for kind in ["access_token", "refresh_token"] {
        assert!(!active(&host, tokens[kind].as_str().unwrap()), "{kind}");
    }
}

#[test]
fn a_code_issued_before_a_revocation_starts_no_grant() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    // A consent not remembered, revoked before its code is redeemed, all clients at once.
    let back = granted_remembering(&mut browser, &host, WEB_ID, WEB_REDIRECT, false);
    host.advance_clock_ms(1000);
    let revoked = admin_call(
        &host,
        "DELETE",
        "consent",
        &[("subject", "alice"), ("all", "true")],
    );
    assert_eq!(revoked.status, 204);
    let code = param(&back, "code").unwrap();
    let answer = redeem(&host, &code, VERIFIER);
    assert_eq!(body(&answer)["error"], "invalid_grant", "{}", answer.body);
    assert!(
        host.keys().iter().all(|k| !k.starts_with("oauth:grant:")),
        "{:?}",
        host.keys()
    );
}

#[test]
fn the_calls_hydra_refuses_are_refused_and_an_unknown_subject_has_nothing() {
    let host = TestHost::new();
    assert_eq!(admin_call(&host, "GET", "consent", &[]).status, 400);
    assert_eq!(
        admin_call(&host, "DELETE", "consent", &[("subject", "alice")]).status,
        400
    );
    let both = [("subject", "alice"), ("client", WEB_ID), ("all", "true")];
    assert_eq!(admin_call(&host, "DELETE", "consent", &both).status, 400);
    let none = admin_call(&host, "GET", "consent", &[("subject", "nobody")]);
    assert_eq!((none.status, none.body.as_str()), (200, "[]"));
    assert_eq!(
        admin_call(&host, "DELETE", "login", &[("subject", "nobody")]).status,
        204
    );
    assert_eq!(
        admin_call(&host, "GET", "other", &[("subject", "alice")]).status,
        404
    );
}
