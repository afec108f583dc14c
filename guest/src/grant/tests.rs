//! Grants against the native test host: rotation, reuse, the grace, revocation, lifetimes.

use super::*;
use crate::testing::{
    basic, body, form, TestHost, DEMO_ID, DEMO_SECRET, NATIVE_ID, WEB_ID, WEB_SECRET,
};
use crate::{introspect, revoke, token};

const DAY_MS: u64 = 24 * 3600 * 1000;

/// Starts a grant for `alice` to the web client with `scope`, as a redeemed code does: the
/// token response.
fn started(host: &TestHost, scope: &str) -> serde_json::Value {
    let client = host.client(WEB_ID).unwrap();
    let claims = Claims {
        user_id: "alice".into(),
        scope: scope.into(),
        ext: Some(serde_json::json!({"team": "blue"})),
        audience: Vec::new(),
        session: None,
        cnf: None,
    };
    body(
        &start(host, &client, claims, None, "127.0.0.1", None)
            .unwrap()
            .response,
    )
}

fn refresh_as(
    host: &TestHost,
    auth: Option<String>,
    extra: &[(&str, &str)],
    token: &str,
) -> Response {
    let mut params = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    params.extend_from_slice(extra);
    token_endpoint(host, form(&params, auth))
}

fn token_endpoint(host: &TestHost, req: Request) -> Response {
    token(host, &req)
}

fn web() -> Option<String> {
    Some(basic(WEB_ID, WEB_SECRET))
}

fn refresh(host: &TestHost, token: &str) -> Response {
    refresh_as(host, web(), &[], token)
}

fn tokens(response: &Response) -> (String, String) {
    assert_eq!(response.status, 200, "{}", response.body);
    let body = body(response);
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

fn introspected(host: &TestHost, token: &str) -> serde_json::Value {
    body(&introspect(host, &form(&[("token", token)], web())))
}

fn active(host: &TestHost, token: &str) -> bool {
    introspected(host, token)["active"] == true
}

#[test]
fn offline_access_gets_a_refresh_token_and_its_absence_none() {
    let host = TestHost::new();
    let online = started(&host, "read");
    assert!(online.get("refresh_token").is_none(), "{online}");
    let offline = started(&host, "offline_access read");
    assert!(offline["refresh_token"].is_string());
    host.edit_client(WEB_ID, |c| c.grant_types.retain(|g| g != "refresh_token"));
    let not_allowed = started(&host, "offline_access read");
    assert!(
        not_allowed.get("refresh_token").is_none(),
        "the client may not refresh"
    );
}

#[test]
fn a_refresh_rotates_both_tokens_and_carries_the_grant_over() {
    let host = TestHost::new();
    let first = started(&host, "offline_access read write");
    let old_refresh = first["refresh_token"].as_str().unwrap();
    let (access, refresh_token) = tokens(&refresh(&host, old_refresh));
    assert_ne!(refresh_token, old_refresh);
    let seen = introspected(&host, &access);
    assert_eq!(
        (
            &seen["active"],
            &seen["sub"],
            &seen["client_id"],
            &seen["scope"],
            &seen["ext"]["team"]
        ),
        (
            &true.into(),
            &"alice".into(),
            &WEB_ID.into(),
            &"offline_access read write".into(),
            &"blue".into()
        )
    );
    assert_eq!(seen["token_use"], "access_token");
    let seen = introspected(&host, &refresh_token);
    assert_eq!(seen["token_type"], "refresh_token");
    assert_eq!(seen["token_use"], "refresh_token");
    assert_eq!(seen["sub"], "alice");
    assert!(!active(&host, old_refresh), "the rotated token is dead");
    assert!(
        active(&host, first["access_token"].as_str().unwrap()),
        "earlier access tokens live on"
    );
    assert_eq!(host.outcomes(), ["refresh:ok"]);
}

#[test]
fn a_rotated_token_presented_again_ends_the_whole_grant() {
    let host = TestHost::new();
    let first = started(&host, "offline_access read");
    let old_refresh = first["refresh_token"].as_str().unwrap();
    let (access, refresh_token) = tokens(&refresh(&host, old_refresh));
    let reused = refresh(&host, old_refresh);
    assert_eq!(
        (reused.status, body(&reused)["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    for token in [
        &access,
        &refresh_token,
        first["access_token"].as_str().unwrap(),
    ] {
        assert!(
            !active(&host, token),
            "every token of the grant is inactive"
        );
    }
    assert_eq!(
        body(&refresh(&host, &refresh_token))["error"],
        "invalid_grant"
    );
    assert_eq!(
        host.outcomes(),
        ["refresh:ok", "refresh:reused", "refresh:invalid_grant"]
    );
    let warning = host.warnings().concat();
    assert!(
        warning.contains("grant") && warning.contains(WEB_ID),
        "{warning}"
    );
    assert!(!warning.contains(old_refresh) && !warning.contains(&refresh_token));
}

#[test]
fn a_forged_secret_of_the_live_generation_is_unknown_and_ends_nothing() {
    let host = TestHost::new();
    let first = started(&host, "offline_access read");
    let refresh_token = first["refresh_token"].as_str().unwrap();
    let (id, rest) = refresh_token.split_once('.').unwrap();
    assert!(rest.starts_with("0."), "generation 0: {refresh_token}");
    let forged = format!("{id}.0.{}", "A".repeat(43));
    assert_eq!(body(&refresh(&host, &forged))["error"], "invalid_grant");
    let ahead = format!("{id}.1.{}", "A".repeat(43));
    assert_eq!(body(&refresh(&host, &ahead))["error"], "invalid_grant");
    assert_eq!(refresh(&host, refresh_token).status, 200);
    assert_eq!(
        host.outcomes(),
        [
            "refresh:invalid_grant",
            "refresh:invalid_grant",
            "refresh:ok"
        ]
    );
}

#[test]
fn an_access_token_can_neither_refresh_nor_be_made_into_a_refresh_token() {
    let host = TestHost::new();
    let first = started(&host, "offline_access read");
    let access = first["access_token"].as_str().unwrap();
    assert_eq!(access.matches('.').count(), 1);
    assert_eq!(body(&refresh(&host, access))["error"], "invalid_grant");
    // Its id names the grant's records, but is not the grant id a refresh token carries.
    let (access_id, _) = access.split_once('.').unwrap();
    let made = format!("{access_id}.0.{}", "A".repeat(43));
    assert_eq!(body(&refresh(&host, &made))["error"], "invalid_grant");
    assert_eq!(
        refresh(&host, first["refresh_token"].as_str().unwrap()).status,
        200
    );
}

#[test]
fn a_grant_keeps_no_record_of_the_tokens_it_rotated_out() {
    let host = TestHost::new();
    let first = started(&host, "offline_access read");
    let mut refresh_token = first["refresh_token"].as_str().unwrap().to_owned();
    let mut rotated = Vec::new();
    for _ in 0..50 {
        let next = tokens(&refresh(&host, &refresh_token)).1;
        rotated.push(std::mem::replace(&mut refresh_token, next));
    }
    let keys = host.keys();
    assert_eq!(
        keys.iter()
            .filter(|k| !k.starts_with("oauth:access_token:"))
            .count(),
        1,
        "the grant's one record: {keys:?}"
    );
    assert!(refresh_token.contains(".50."), "{refresh_token}");
    // Any of them, come back, is told by its generation.
    assert_eq!(body(&refresh(&host, &rotated[7]))["error"], "invalid_grant");
    assert!(!active(&host, &refresh_token));
}

#[test]
fn another_clients_refresh_token_is_invalid_grant_and_stays_usable() {
    let host = TestHost::new();
    let first = started(&host, "offline_access read");
    let refresh_token = first["refresh_token"].as_str().unwrap();
    let stolen = refresh_as(&host, Some(basic(DEMO_ID, DEMO_SECRET)), &[], refresh_token);
    // The demo client may not use the grant at all; give it the grant type to reach the check.
    assert_eq!(body(&stolen)["error"], "unauthorized_client");
    host.edit_client(DEMO_ID, |c| c.grant_types.push("refresh_token".into()));
    let stolen = refresh_as(&host, Some(basic(DEMO_ID, DEMO_SECRET)), &[], refresh_token);
    assert_eq!(body(&stolen)["error"], "invalid_grant");
    assert_eq!(
        refresh(&host, refresh_token).status,
        200,
        "still the web client's"
    );
}

#[test]
fn scope_may_narrow_the_new_access_token_and_the_grant_keeps_its_scope() {
    let host = TestHost::new();
    let first = started(&host, "offline_access read write");
    let (access, refresh_token) = tokens(&refresh_as(
        &host,
        web(),
        &[("scope", "read")],
        first["refresh_token"].as_str().unwrap(),
    ));
    assert_eq!(introspected(&host, &access)["scope"], "read");
    let wider = refresh_as(&host, web(), &[("scope", "read admin")], &refresh_token);
    assert_eq!(body(&wider)["error"], "invalid_scope");
    let (access, _) = tokens(&refresh(&host, &refresh_token));
    assert_eq!(
        introspected(&host, &access)["scope"],
        "offline_access read write"
    );
}

#[test]
fn a_lost_compare_and_set_reads_again_and_the_loser_is_a_reuse() {
    let host = TestHost::new();
    let first = started(&host, "offline_access read");
    let refresh_token = first["refresh_token"].as_str().unwrap().to_owned();
    // Another request rotates the same token between this one's read and its write.
    let racing = refresh_token.clone();
    host.before_next_apply(move |host| {
        assert_eq!(refresh(host, &racing).status, 200);
    });
    let loser = refresh(&host, &refresh_token);
    assert_eq!(body(&loser)["error"], "invalid_grant");
    assert_eq!(host.outcomes(), ["refresh:ok", "refresh:reused"]);
}

#[test]
fn a_rotation_the_host_made_but_answered_false_is_recognized_as_ours() {
    let host = TestHost::new();
    let first = started(&host, "offline_access read");
    host.next_apply_lands_unseen();
    let (access, refresh_token) = tokens(&refresh(&host, first["refresh_token"].as_str().unwrap()));
    assert!(active(&host, &access) && active(&host, &refresh_token));
    assert_eq!(host.outcomes(), ["refresh:ok"]);
}

#[test]
fn within_the_grace_a_rotated_token_gets_the_same_answer_and_after_it_ends_the_grant() {
    let host = TestHost::new();
    host.edit_refresh_policy(|p| p.reuse_grace_ms = 10_000);
    let first = started(&host, "offline_access read");
    let old_refresh = first["refresh_token"].as_str().unwrap();
    let answer = refresh(&host, old_refresh);
    host.advance_clock_ms(9_000);
    let again = refresh(&host, old_refresh);
    assert_eq!(tokens(&again), tokens(&answer), "the answer it missed");
    assert!(body(&again)["expires_in"].as_u64().unwrap() <= 3600 - 9);
    let (access, refresh_token) = tokens(&answer);
    assert!(active(&host, &access) && active(&host, &refresh_token));
    host.advance_clock_ms(1_000);
    assert_eq!(body(&refresh(&host, old_refresh))["error"], "invalid_grant");
    assert!(
        !active(&host, &refresh_token),
        "after the grace it is a reuse"
    );
    assert_eq!(
        host.outcomes(),
        ["refresh:ok", "refresh:replayed", "refresh:reused"]
    );
}

#[test]
fn an_answer_read_back_is_sent_only_once_the_store_acknowledges_it() {
    // A replay within the grace, and a rotation a retry found done, were read, not written:
    // the store must acknowledge them (with wait_replicas, replicas must have them) first.
    let host = TestHost::new();
    host.edit_refresh_policy(|p| p.reuse_grace_ms = 10_000);
    let first = started(&host, "offline_access read");
    let old_refresh = first["refresh_token"].as_str().unwrap();
    let answer = refresh(&host, old_refresh);
    host.next_apply_fails();
    assert_eq!(
        refresh(&host, old_refresh).status,
        503,
        "not acknowledged: try again"
    );
    assert_eq!(tokens(&refresh(&host, old_refresh)), tokens(&answer));

    // The rotation lands but the host, retrying, answers false; confirming it then fails.
    let (_, refresh_token) = tokens(&answer);
    host.next_apply_lands_unseen();
    host.before_next_apply(|host| host.next_apply_fails());
    assert_eq!(refresh(&host, &refresh_token).status, 503);
    // The client retries: within the grace, it gets the rotation that landed.
    let retried = refresh(&host, &refresh_token);
    assert!(tokens(&retried).1.contains(".2."), "{}", retried.body);
    assert_eq!(
        host.outcomes(),
        ["refresh:ok", "refresh:replayed", "refresh:replayed"]
    );
}

#[test]
fn within_the_grace_a_token_whose_successor_was_rotated_too_is_a_reuse() {
    let host = TestHost::new();
    host.edit_refresh_policy(|p| p.reuse_grace_ms = 10_000);
    let first = started(&host, "offline_access read");
    let old_refresh = first["refresh_token"].as_str().unwrap();
    let (_, second) = tokens(&refresh(&host, old_refresh));
    let (_, third) = tokens(&refresh(&host, &second));
    assert_eq!(body(&refresh(&host, old_refresh))["error"], "invalid_grant");
    assert!(!active(&host, &third));
}

#[test]
fn without_a_grace_nothing_that_rebuilds_an_answer_is_stored() {
    let host = TestHost::new();
    let first = started(&host, "offline_access read");
    tokens(&refresh(&host, first["refresh_token"].as_str().unwrap()));
    assert!(
        host.keys()
            .iter()
            .all(|k| !k.starts_with("oauth:refresh_grace:")),
        "{:?}",
        host.keys()
    );
}

#[test]
fn the_store_holds_digests_under_one_hash_tag_never_a_token() {
    let host = TestHost::new();
    host.edit_refresh_policy(|p| p.reuse_grace_ms = 10_000);
    let first = started(&host, "offline_access read");
    let (access, refresh_token) = tokens(&refresh(&host, first["refresh_token"].as_str().unwrap()));
    let keys = host.keys();
    assert_eq!(keys.len(), 4, "grant, 2 access tokens, the grace: {keys:?}");
    let tag = tokenginx_syntax::hash_tag(&keys[0]);
    assert!(
        keys.iter().all(|k| tokenginx_syntax::hash_tag(k) == tag),
        "{keys:?}"
    );
    // Each id and secret of every token, apart: none is in a key or a value.
    let tokens = [
        first["refresh_token"].as_str().unwrap(),
        first["access_token"].as_str().unwrap(),
        &access,
        &refresh_token,
    ];
    let parts: Vec<&str> = tokens
        .iter()
        .flat_map(|t| t.split('.'))
        .filter(|p| p.len() == 43)
        .collect();
    assert_eq!(parts.len(), 8, "two parts of 43 characters in each token");
    for key in host.keys() {
        let value = String::from_utf8(host.store_get(&key).unwrap().unwrap()).unwrap();
        for part in &parts {
            assert!(
                !key.contains(part) && !value.contains(part),
                "{key}: {value}"
            );
        }
    }
}

#[test]
fn refresh_tokens_expire_and_the_grant_ends_at_its_lifetime_however_often_rotated() {
    let host = TestHost::new();
    host.edit_refresh_policy(|p| {
        p.refresh_token_ttl = 24 * 3600;
        p.grant_max_lifetime = 3 * 24 * 3600;
    });
    let first = started(&host, "offline_access read");
    // Unused for a day and a moment: expired.
    let unused = started(&host, "offline_access read");
    let mut refresh_token = first["refresh_token"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        host.advance_clock_ms(DAY_MS - 1000);
        refresh_token = tokens(&refresh(&host, &refresh_token)).1;
    }
    assert_eq!(
        body(&refresh(&host, unused["refresh_token"].as_str().unwrap()))["error"],
        "invalid_grant"
    );
    // Rotated within a day each time, but the grant's 3 days are up.
    host.advance_clock_ms(DAY_MS - 1000);
    let (access, last) = tokens(&refresh(&host, &refresh_token));
    let grant_key = host
        .keys()
        .into_iter()
        .find(|k| k.starts_with("oauth:grant:") && host.ttl_ms(k).unwrap() < DAY_MS)
        .unwrap();
    let ttl = host.ttl_ms(&grant_key).unwrap();
    assert_eq!(
        ttl, 3000,
        "every record of the grant expires by the grant's end"
    );
    let seen = introspected(&host, &access);
    assert_eq!(
        seen["exp"].as_u64().unwrap() * 1000,
        host.now_ms() + 3000,
        "access tokens too"
    );
    host.advance_clock_ms(3000);
    assert_eq!(body(&refresh(&host, &last))["error"], "invalid_grant");
}

#[test]
fn revoking_the_refresh_token_ends_the_grant_and_an_access_token_only_itself() {
    for hint in ["refresh_token", "access_token", "nonsense"] {
        let host = TestHost::new();
        let first = started(&host, "offline_access read");
        let (access, refresh_token) =
            tokens(&refresh(&host, first["refresh_token"].as_str().unwrap()));
        let revoked = revoke(
            &host,
            &form(&[("token", &access), ("token_type_hint", hint)], web()),
        );
        assert_eq!(revoked.status, 200);
        assert!(!active(&host, &access));
        assert!(
            active(&host, &refresh_token),
            "revoking an access token leaves the grant"
        );
        let revoked = revoke(
            &host,
            &form(
                &[("token", &refresh_token), ("token_type_hint", hint)],
                web(),
            ),
        );
        assert_eq!(revoked.status, 200);
        assert!(
            !active(&host, first["access_token"].as_str().unwrap()),
            "{hint}"
        );
        assert_eq!(
            body(&refresh(&host, &refresh_token))["error"],
            "invalid_grant"
        );
    }
}

#[test]
fn another_client_cannot_revoke_a_grant() {
    let host = TestHost::new();
    let first = started(&host, "offline_access read");
    let refresh_token = first["refresh_token"].as_str().unwrap();
    let revoked = revoke(
        &host,
        &form(
            &[("token", refresh_token)],
            Some(basic(DEMO_ID, DEMO_SECRET)),
        ),
    );
    assert_eq!(revoked.status, 200);
    assert!(active(&host, refresh_token));
}

#[test]
fn a_public_client_refreshes_with_its_id_alone() {
    let host = TestHost::new();
    let client = host.client(NATIVE_ID).unwrap();
    let claims = Claims {
        user_id: "bob".into(),
        scope: "offline_access read".into(),
        ext: None,
        audience: Vec::new(),
        session: None,
        cnf: None,
    };
    let first = body(
        &start(&host, &client, claims, None, "127.0.0.1", None)
            .unwrap()
            .response,
    );
    let answer = refresh_as(
        &host,
        None,
        &[("client_id", NATIVE_ID)],
        first["refresh_token"].as_str().unwrap(),
    );
    let (_, next) = tokens(&answer);
    assert_ne!(
        next,
        first["refresh_token"].as_str().unwrap(),
        "rotated, as RFC 9700 requires of public clients"
    );
}

#[test]
fn malformed_and_missing_refresh_tokens_are_refused_before_the_store_is_read() {
    let host = TestHost::new();
    host.set_store_down(true);
    assert_eq!(
        body(&refresh(&host, "not a token"))["error"],
        "invalid_grant"
    );
    let missing = token_endpoint(&host, form(&[("grant_type", "refresh_token")], web()));
    assert_eq!(body(&missing)["error"], "invalid_request");
}

#[test]
fn a_store_outage_is_503_and_loses_nothing() {
    let host = TestHost::new();
    let first = started(&host, "offline_access read");
    let refresh_token = first["refresh_token"].as_str().unwrap();
    host.set_store_down(true);
    assert_eq!(refresh(&host, refresh_token).status, 503);
    host.set_store_down(false);
    assert_eq!(refresh(&host, refresh_token).status, 200);
}

#[test]
fn ending_a_grant_with_many_access_tokens_is_one_removal() {
    let host = TestHost::new();
    host.edit_refresh_policy(|p| p.reuse_grace_ms = 0);
    let first = started(&host, "offline_access read");
    let mut refresh_token = first["refresh_token"].as_str().unwrap().to_owned();
    let mut access_tokens = vec![first["access_token"].as_str().unwrap().to_owned()];
    for _ in 0..20 {
        let (access, next) = tokens(&refresh(&host, &refresh_token));
        access_tokens.push(access);
        refresh_token = next;
    }
    let before = host.keys().len();
    revoke(&host, &form(&[("token", &refresh_token)], web()));
    assert_eq!(
        host.keys().len(),
        before - 1,
        "only the grant's record goes"
    );
    assert!(access_tokens.iter().all(|t| !active(&host, t)));
}
