//! The whole flow against the native test host: a browser (cookies, redirects), the login
//! and consent app (admin calls), and the client (the token endpoint).

use super::admin::admin;
use super::authorize::authorize;
use crate::testing::{
    basic, body, form, TestHost, NATIVE_ID, NATIVE_REDIRECT, WEB_ID, WEB_REDIRECT, WEB_SECRET,
};
use crate::{introspect, token, BrowserRequest, Response};
use base64::Engine as _;
use sha2::{Digest, Sha256};

mod dpop;
mod openid;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier))
}

/// A browser: it keeps the cookies the endpoint sets.
#[derive(Default)]
struct Browser {
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn get(&mut self, host: &TestHost, params: &[(&str, &str)]) -> Response {
        let req = BrowserRequest {
            method: "GET".into(),
            params: owned(params),
            cookies: self.cookies.clone(),
            body: String::new(),
            client_ip: "127.0.0.1".into(),
        };
        let response = authorize(host, &req);
        for (name, value) in &response.headers {
            if name == "Set-Cookie" {
                let (pair, _) = value.split_once(';').unwrap();
                let (n, v) = pair.split_once('=').unwrap();
                self.cookies.retain(|(c, _)| c != n);
                self.cookies.push((n.into(), v.into()));
            }
        }
        response
    }

    /// Follows a `redirect_to` from the admin API back to the authorization endpoint.
    fn follow(&mut self, host: &TestHost, url: &str) -> Response {
        let params = query(url);
        let refs: Vec<(&str, &str)> = params
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        self.get(host, &refs)
    }
}

fn owned(params: &[(&str, &str)]) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// The decoded query parameters of `url`.
fn query(url: &str) -> Vec<(String, String)> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(n), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

fn location(response: &Response) -> String {
    assert_eq!(response.status, 302, "{}", response.body);
    response.header("Location").unwrap().to_owned()
}

fn param(url: &str, name: &str) -> Option<String> {
    query(url)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

fn call(host: &TestHost, name: &str, params: &[(&str, &str)], body: &str) -> Response {
    let req = BrowserRequest {
        method: if name.ends_with("request") {
            "GET"
        } else {
            "PUT"
        }
        .into(),
        params: owned(params),
        cookies: Vec::new(),
        body: body.into(),
        client_ip: "127.0.0.1".into(),
    };
    admin(host, name, &req)
}

/// The login app accepts `challenge` as alice: where it sends the browser back.
fn alice_logs_in(host: &TestHost, challenge: &str) -> String {
    let accepted = call(
        host,
        "login-accept",
        &[("login_challenge", challenge)],
        r#"{"subject":"alice"}"#,
    );
    body(&accepted)["redirect_to"].as_str().unwrap().to_owned()
}

fn start(browser: &mut Browser, host: &TestHost, client: &str, redirect: &str) -> String {
    let response = browser.get(
        host,
        &[
            ("response_type", "code"),
            ("client_id", client),
            ("redirect_uri", redirect),
            ("scope", "read write"),
            ("state", "xyz"),
            ("code_challenge", &challenge(VERIFIER)),
            ("code_challenge_method", "S256"),
        ],
    );
    let login = location(&response);
    assert!(
        login.starts_with("https://login.test/login?login_challenge="),
        "{login}"
    );
    param(&login, "login_challenge").unwrap()
}

/// Logs in as `alice` and consents to `read`: the redirect back to the client.
fn consent(browser: &mut Browser, host: &TestHost, login_challenge: &str) -> String {
    consent_with(
        browser,
        host,
        login_challenge,
        r#"{"subject":"alice","remember":false}"#,
        r#"{"grant_scope":["read"],"session":{"access_token":{"team":"blue"}}}"#,
    )
}

/// The login app accepts with `login`, the consent app with `consent` (the admin API's
/// JSON bodies): the redirect back to the client.
fn consent_with(
    browser: &mut Browser,
    host: &TestHost,
    login_challenge: &str,
    login: &str,
    consent: &str,
) -> String {
    let accepted = call(
        host,
        "login-accept",
        &[("login_challenge", login_challenge)],
        login,
    );
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    let to_consent =
        location(&browser.follow(host, body(&accepted)["redirect_to"].as_str().unwrap()));
    let consent_challenge = param(&to_consent, "consent_challenge").unwrap();
    let request = call(
        host,
        "consent-request",
        &[("consent_challenge", &consent_challenge)],
        "",
    );
    assert_eq!(body(&request)["subject"], "alice");
    let accepted = call(
        host,
        "consent-accept",
        &[("consent_challenge", &consent_challenge)],
        consent,
    );
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    location(&browser.follow(host, body(&accepted)["redirect_to"].as_str().unwrap()))
}

fn redeem(host: &TestHost, code: &str, verifier: &str) -> Response {
    token(
        host,
        &form(
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", WEB_REDIRECT),
                ("code_verifier", verifier),
            ],
            Some(basic(WEB_ID, WEB_SECRET)),
        ),
    )
}

#[test]
fn a_user_signs_in_consents_and_the_client_redeems_the_code_once() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let login_challenge = start(&mut browser, &host, WEB_ID, WEB_REDIRECT);
    let request = call(
        &host,
        "login-request",
        &[("login_challenge", &login_challenge)],
        "",
    );
    let request = body(&request);
    assert_eq!(request["client"]["client_id"], WEB_ID);
    assert_eq!(
        request["requested_scope"],
        serde_json::json!(["read", "write"])
    );
    assert_eq!(request["skip"], false);

    let back = consent(&mut browser, &host, &login_challenge);
    assert!(back.starts_with(WEB_REDIRECT), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("xyz"));
    assert_eq!(param(&back, "iss").as_deref(), Some("http://issuer.test"));
    let code = param(&back, "code").unwrap();

    let issued = redeem(&host, &code, VERIFIER);
    assert_eq!(issued.status, 200, "{}", issued.body);
    let access_token = body(&issued)["access_token"].as_str().unwrap().to_owned();
    assert_eq!(body(&issued)["scope"], "read");
    let seen = introspect(
        &host,
        &form(&[("token", &access_token)], Some(basic(WEB_ID, WEB_SECRET))),
    );
    assert_eq!(body(&seen)["sub"], "alice");
    assert_eq!(body(&seen)["ext"]["team"], "blue");

    // A replay is refused and revokes the token the code bought.
    let again = redeem(&host, &code, VERIFIER);
    assert_eq!(body(&again)["error"], "invalid_grant");
    let seen = introspect(
        &host,
        &form(&[("token", &access_token)], Some(basic(WEB_ID, WEB_SECRET))),
    );
    assert_eq!(body(&seen)["active"], false);
    assert_eq!(
        host.outcomes(),
        [
            "authorization-started:",
            "authorization-ended:code",
            "code-redeemed:ok",
            "code-redeemed:replayed"
        ]
    );
}

/// A challenge is answered once; a bad answer (a body that is not JSON) is no answer.
#[test]
fn a_challenge_is_answered_once_and_a_bad_answer_spends_nothing() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let challenge = start(&mut browser, &host, WEB_ID, WEB_REDIRECT);
    let accept = |body: &str| {
        call(
            &host,
            "login-accept",
            &[("login_challenge", &challenge)],
            body,
        )
    };
    assert_eq!(accept("not json").status, 400);
    assert_eq!(accept(r#"{"subject":"alice"}"#).status, 200);
    assert_eq!(accept(r#"{"subject":"alice"}"#).status, 410);
    let request = call(
        &host,
        "login-request",
        &[("login_challenge", &challenge)],
        "",
    );
    assert_eq!(request.status, 410);
    let unknown = call(&host, "login-request", &[("login_challenge", "nope")], "");
    assert_eq!(unknown.status, 404);
}

#[test]
fn a_rejected_login_sends_access_denied_to_the_client() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let challenge = start(&mut browser, &host, WEB_ID, WEB_REDIRECT);
    let rejected = call(
        &host,
        "login-reject",
        &[("login_challenge", &challenge)],
        r#"{"error":"access_denied","error_description":"wrong password"}"#,
    );
    let back = location(&browser.follow(&host, body(&rejected)["redirect_to"].as_str().unwrap()));
    assert!(back.starts_with(WEB_REDIRECT), "{back}");
    assert_eq!(param(&back, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&back, "state").as_deref(), Some("xyz"));
    assert_eq!(param(&back, "iss").as_deref(), Some("http://issuer.test"));
}

#[test]
fn requests_that_cannot_be_trusted_get_a_page_and_the_rest_go_back_with_an_error() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let bad_redirect = browser.get(
        &host,
        &[
            ("response_type", "code"),
            ("client_id", WEB_ID),
            ("redirect_uri", "https://evil.example/cb"),
        ],
    );
    assert_eq!(bad_redirect.status, 400);
    assert!(bad_redirect.header("Location").is_none());
    let unknown = browser.get(&host, &[("response_type", "code"), ("client_id", "nobody")]);
    assert_eq!(unknown.status, 400);
    assert!(unknown.header("Location").is_none());

    for (params, error) in [
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (vec![("response_type", "code")], "invalid_request"), // no PKCE
        (
            vec![
                ("response_type", "code"),
                ("code_challenge", "abc"),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
        ),
    ] {
        let mut all = vec![("client_id", WEB_ID), ("state", "s1")];
        all.extend(params);
        let back = location(&browser.get(&host, &all));
        assert!(back.starts_with(WEB_REDIRECT), "{back}");
        assert_eq!(param(&back, "error").as_deref(), Some(error), "{back}");
        assert_eq!(param(&back, "state").as_deref(), Some("s1"));
    }
}

#[test]
fn a_remembered_login_and_consent_are_skipped_next_time() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let challenge = start(&mut browser, &host, WEB_ID, WEB_REDIRECT);
    let accepted = call(
        &host,
        "login-accept",
        &[("login_challenge", &challenge)],
        r#"{"subject":"alice","remember":true,"remember_for":3600}"#,
    );
    let to_consent =
        location(&browser.follow(&host, body(&accepted)["redirect_to"].as_str().unwrap()));
    let consent_challenge = param(&to_consent, "consent_challenge").unwrap();
    let first = call(
        &host,
        "consent-request",
        &[("consent_challenge", &consent_challenge)],
        "",
    );
    assert_eq!(body(&first)["skip"], false);
    let accepted = call(
        &host,
        "consent-accept",
        &[("consent_challenge", &consent_challenge)],
        r#"{"grant_scope":["read","write"],"remember":true,"remember_for":3600}"#,
    );
    location(&browser.follow(&host, body(&accepted)["redirect_to"].as_str().unwrap()));

    // The same browser again: the login app is told who, and that it may skip asking.
    let again = start(&mut browser, &host, WEB_ID, WEB_REDIRECT);
    let login = body(&call(
        &host,
        "login-request",
        &[("login_challenge", &again)],
        "",
    ));
    assert_eq!(
        (login["skip"].clone(), login["subject"].clone()),
        (true.into(), "alice".into())
    );
    let other = call(
        &host,
        "login-accept",
        &[("login_challenge", &again)],
        r#"{"subject":"mallory"}"#,
    );
    assert_eq!(
        other.status, 400,
        "a remembered login is accepted for its own subject only"
    );
    let accepted = call(
        &host,
        "login-accept",
        &[("login_challenge", &again)],
        r#"{"subject":"alice"}"#,
    );
    assert_eq!(accepted.status, 200, "{}", accepted.body);
    let to_consent =
        location(&browser.follow(&host, body(&accepted)["redirect_to"].as_str().unwrap()));
    let consent_challenge = param(&to_consent, "consent_challenge").unwrap();
    let consent = call(
        &host,
        "consent-request",
        &[("consent_challenge", &consent_challenge)],
        "",
    );
    assert_eq!(
        body(&consent)["skip"],
        true,
        "read and write were consented to before"
    );

    // Another browser has no remembered login.
    let mut fresh = Browser::default();
    let challenge = start(&mut fresh, &host, WEB_ID, WEB_REDIRECT);
    let login = body(&call(
        &host,
        "login-request",
        &[("login_challenge", &challenge)],
        "",
    ));
    assert_eq!(login["skip"], false);
}

#[test]
fn a_client_without_the_grant_or_asking_too_much_scope_gets_the_error_at_its_redirect_uri() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let pkce = challenge(VERIFIER);
    let request = |scope| {
        [
            ("response_type", "code"),
            ("client_id", WEB_ID),
            ("scope", scope),
            ("state", "s2"),
            ("code_challenge", pkce.as_str()),
            ("code_challenge_method", "S256"),
        ]
    };
    let back = location(&browser.get(&host, &request("read admin")));
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("invalid_scope"),
        "{back}"
    );
    host.edit_client(WEB_ID, |c| {
        c.grant_types = vec!["client_credentials".into()]
    });
    let back = location(&browser.get(&host, &request("read")));
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("unauthorized_client"),
        "{back}"
    );
    assert_eq!(param(&back, "state").as_deref(), Some("s2"));
}

#[test]
fn flows_in_two_tabs_of_one_browser_both_finish() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let first = start(&mut browser, &host, WEB_ID, WEB_REDIRECT);
    let second = start(&mut browser, &host, WEB_ID, WEB_REDIRECT);
    for challenge in [first, second] {
        let back = consent(&mut browser, &host, &challenge);
        assert!(param(&back, "code").is_some(), "{back}");
    }
}

#[test]
fn a_loopback_redirect_uri_may_use_any_port_and_nothing_else_differs() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let other_port = "http://127.0.0.1:6000/cb";
    let challenge = start(&mut browser, &host, NATIVE_ID, other_port);
    let back = consent(&mut browser, &host, &challenge);
    assert!(back.starts_with(other_port), "{back}");
    let other_path = browser.get(
        &host,
        &[
            ("response_type", "code"),
            ("client_id", NATIVE_ID),
            ("redirect_uri", "http://127.0.0.1:6000/evil"),
        ],
    );
    assert_eq!(other_path.status, 400);
    assert!(other_path.header("Location").is_none());
    for port in ["65536", "", "0", "-1", "+6000"] {
        let response = browser.get(
            &host,
            &[
                ("response_type", "code"),
                ("client_id", NATIVE_ID),
                ("redirect_uri", &format!("http://127.0.0.1:{port}/cb")),
            ],
        );
        assert_eq!(response.status, 400, "port {port:?}");
    }
}

#[test]
fn reading_an_answered_challenge_is_410_with_where_to_go() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let challenge = start(&mut browser, &host, WEB_ID, WEB_REDIRECT);
    call(
        &host,
        "login-accept",
        &[("login_challenge", &challenge)],
        r#"{"subject":"alice"}"#,
    );
    let again = call(
        &host,
        "login-request",
        &[("login_challenge", &challenge)],
        "",
    );
    assert_eq!(again.status, 410);
    assert!(body(&again)["redirect_to"]
        .as_str()
        .unwrap()
        .contains("/api/v1/oauth/authorize?"));
}

/// Signs alice in to `client` asking `scope` (with `extra` parameters), and consents to all
/// of it: the code.
fn code_for(host: &TestHost, client: &str, scope: &str, extra: &[(&str, &str)]) -> String {
    let redirect = redirect_of(client);
    let challenge = challenge(VERIFIER);
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", redirect),
        ("scope", scope),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    params.extend_from_slice(extra);
    let mut browser = Browser::default();
    let to_login = browser.get(host, &params);
    let login_challenge = param(&location(&to_login), "login_challenge").unwrap();
    let grant: Vec<&str> = scope.split(' ').collect();
    let back = consent_with(
        &mut browser,
        host,
        &login_challenge,
        r#"{"subject":"alice"}"#,
        &serde_json::json!({ "grant_scope": grant }).to_string(),
    );
    param(&back, "code").unwrap()
}

mod misuse;
mod mtls;
mod redemption;
mod sessions;

/// The redirect URI `client` (the web app or the native app) registered.
fn redirect_of(client: &str) -> &'static str {
    match client {
        NATIVE_ID => NATIVE_REDIRECT,
        _ => WEB_REDIRECT,
    }
}

/// A token request of `client` with `params`: the web app authenticates with its secret
/// (Basic), the native app, a public client, names itself (`client_id`).
fn token_form(client: &str, params: &[(&str, &str)]) -> crate::Request {
    let mut params = params.to_vec();
    let authorization = match client {
        NATIVE_ID => {
            params.push(("client_id", NATIVE_ID));
            None
        }
        _ => Some(basic(WEB_ID, WEB_SECRET)),
    };
    form(&params, authorization)
}
