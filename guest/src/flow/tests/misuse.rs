//! What an anonymous request can make the flow hold (nothing), its limits, and misuse:
//! docs/behaviour.md's last section, row by row.

use super::*;

/// PKCE's point is that a code without its verifier is worth nothing: an attempt without it
/// is refused and the code stays for the client that holds the verifier.
#[test]
fn a_wrong_verifier_is_invalid_grant_and_leaves_the_code_to_its_owner() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let challenge = start(&mut browser, &host, WEB_ID, WEB_REDIRECT);
    let code = param(&consent(&mut browser, &host, &challenge), "code").unwrap();
    let wrong = "x".repeat(43);
    assert_eq!(
        body(&redeem(&host, &code, &wrong))["error"],
        "invalid_grant"
    );
    assert!(body(&redeem(&host, &code, VERIFIER))["access_token"].is_string());
    assert_eq!(
        body(&redeem(&host, &code, VERIFIER))["error"],
        "invalid_grant"
    );
}

/// The anonymous half of the flow makes the service hold nothing: the challenge and the
/// browser's cookie are sealed, not stored.
#[test]
fn starting_a_flow_writes_nothing_to_the_store() {
    let host = TestHost::new();
    for _ in 0..10 {
        let mut browser = Browser::default();
        start(&mut browser, &host, WEB_ID, WEB_REDIRECT);
    }
    assert_eq!(host.entries(), 0);
    assert!(host.seals() >= 20);
}

/// A cookie value the browser brought but the service never sealed is replaced, not
/// adopted: whoever planted it (a sibling site setting cookies, a shared computer) cannot
/// finish the flow its victim begins with the verifier.
#[test]
fn a_binding_cookie_the_service_did_not_seal_is_replaced_not_adopted() {
    let host = TestHost::new();
    let planted = ("tokenginx_flow".to_owned(), "a".repeat(43));
    let mut victim = Browser {
        cookies: vec![planted.clone()],
    };
    let challenge = start(&mut victim, &host, WEB_ID, WEB_REDIRECT);
    assert!(!victim.cookies.contains(&planted));
    let redirect_to = alice_logs_in(&host, &challenge);
    let mut attacker = Browser {
        cookies: vec![planted],
    };
    assert_eq!(attacker.follow(&host, &redirect_to).status, 403);
    assert!(location(&victim.follow(&host, &redirect_to)).contains("consent_challenge"));
}

/// A challenge opens for its own step only, and not after its time.
#[test]
fn a_challenge_is_refused_at_another_step_and_after_its_time() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let login = start(&mut browser, &host, WEB_ID, WEB_REDIRECT);
    let as_consent = call(
        &host,
        "consent-request",
        &[("consent_challenge", &login)],
        "",
    );
    assert_eq!(as_consent.status, 404);
    host.advance_clock_ms(10 * 60 * 1000);
    let expired = call(&host, "login-request", &[("login_challenge", &login)], "");
    assert_eq!(expired.status, 404);
}

/// Another browser's attempt with a verifier it should not have is refused and does not
/// spend it: the browser that began the flow still finishes.
#[test]
fn another_browsers_attempt_leaves_the_verifier_to_its_own_browser() {
    let host = TestHost::new();
    let mut browser = Browser::default();
    let challenge = start(&mut browser, &host, WEB_ID, WEB_REDIRECT);
    let redirect_to = alice_logs_in(&host, &challenge);
    let refused = Browser::default().follow(&host, &redirect_to);
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("another browser"), "{}", refused.body);
    let to_consent = location(&browser.follow(&host, &redirect_to));
    assert!(
        param(&to_consent, "consent_challenge").is_some(),
        "{to_consent}"
    );
}

/// docs/behaviour.md's limits: over one, `invalid_request` at the redirect URI (the client
/// and redirect URI being good), and a state that is not one is not sent back.
#[test]
fn an_oversized_request_is_invalid_request_at_the_redirect_uri() {
    let host = TestHost::new();
    let pkce = challenge(VERIFIER);
    let long_state = "s".repeat(crate::flow::MAX_STATE_BYTES + 1);
    let long_scope = "read ".repeat(crate::flow::MAX_SCOPE_BYTES / 5 + 2);
    let long_nonce = "n".repeat(crate::flow::MAX_NONCE_BYTES + 1);
    let padding = "p".repeat(crate::flow::MAX_QUERY_BYTES);
    let cases: [(&str, &str, Option<&str>); 5] = [
        ("state", &long_state, None),
        ("state", "tab\there", None),
        ("scope", long_scope.trim_end(), Some("ok")),
        ("nonce", &long_nonce, Some("ok")),
        ("padding", &padding, Some("ok")),
    ];
    for (name, value, state_back) in cases {
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", WEB_ID),
            ("redirect_uri", WEB_REDIRECT),
            ("code_challenge", pkce.as_str()),
            ("code_challenge_method", "S256"),
            (name, value),
        ];
        if name != "state" {
            params.push(("state", "ok"));
        }
        let back = location(&Browser::default().get(&host, &params));
        assert!(back.starts_with(WEB_REDIRECT), "{name}: {back}");
        assert_eq!(
            param(&back, "error").as_deref(),
            Some("invalid_request"),
            "{name}"
        );
        assert_eq!(param(&back, "state").as_deref(), state_back, "{name}");
    }
    // Just within: a state of the largest size goes to the login app.
    let largest = "s".repeat(crate::flow::MAX_STATE_BYTES);
    let to_login = location(&Browser::default().get(
        &host,
        &[
            ("response_type", "code"),
            ("client_id", WEB_ID),
            ("code_challenge", &pkce),
            ("code_challenge_method", "S256"),
            ("state", &largest),
        ],
    ));
    assert!(param(&to_login, "login_challenge").is_some(), "{to_login}");
    assert_eq!(host.entries(), 0);
}

/// The largest request within the limits makes a challenge of at most 8 KiB as the host
/// seals it (49 bytes around the value, base64url): a login URL proxies and login apps
/// take. The worst states: the longest allowed, and quotes (three bytes each in the query,
/// two in the flow's JSON, three in its URL again), with the rest of the query padded.
#[test]
fn the_largest_request_within_the_limits_makes_a_challenge_under_8_kib() {
    let host = TestHost::new();
    let pkce = challenge(VERIFIER);
    let scope = "read";
    let longest = "s".repeat(crate::flow::MAX_STATE_BYTES);
    let quotes = "\"".repeat((crate::flow::MAX_QUERY_BYTES - 800) / 3);
    for state in [longest, quotes] {
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", WEB_ID),
            ("redirect_uri", WEB_REDIRECT),
            ("scope", scope),
            ("state", state.as_str()),
            ("code_challenge", pkce.as_str()),
            ("code_challenge_method", "S256"),
        ];
        let used = crate::flow::with_query("", &params).len() - "?".len();
        let padding = "p".repeat(crate::flow::MAX_QUERY_BYTES - used - "&padding=".len());
        params.push(("padding", &padding));
        let to_login = location(&Browser::default().get(&host, &params));
        let challenge = param(&to_login, "login_challenge").expect(&to_login);
        let sealed = host.sealed_len(&challenge).unwrap();
        let text = (49 + sealed).div_ceil(3) * 4;
        println!("the largest challenge: {sealed} bytes sealed, {text} characters");
        assert!(text <= 8192, "{text}");
    }
}

#[test]
fn the_service_pages_forbid_scripts_and_sniffing() {
    let host = TestHost::new();
    let page = Browser::default().get(&host, &[("client_id", "nobody")]);
    assert_eq!(page.status, 400);
    assert_eq!(page.header("X-Content-Type-Options"), Some("nosniff"));
    assert!(page
        .header("Content-Security-Policy")
        .is_some_and(|csp| csp.starts_with("default-src 'none'")));
}
