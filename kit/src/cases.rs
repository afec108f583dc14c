//! The cases: one a row of `docs/behaviour.md`, named as there, in its order.

use super::*;
use serde_json::{json, Value};
use std::time::Duration;

const TOKEN: &str = "/api/v1/oauth/token";
const INTROSPECT: &str = "/api/v1/oauth/introspect";
const REVOKE: &str = "/api/v1/oauth/revoke";
const METADATA: &str = "/.well-known/oauth-authorization-server";
const CLIENT_CREDENTIALS: (&str, &str) = ("grant_type", "client_credentials");

/// `endpoint, source, "name" => async fn;` for each case, in the table's order.
macro_rules! cases {
    ($($endpoint:literal, $source:expr, $name:literal => $run:ident;)*) => {
        pub(super) const CASES: &[Case] = &[$(Case {
            endpoint: $endpoint,
            source: $source,
            name: $name,
            run: |kit| Box::pin($run(kit)),
        }),*];
    };
}

use Source::{Must, Profile, Should};

cases! {
    "token", Must("RFC 6749 4.4, 5.1"), "client_credentials with client_secret_basic: a Bearer token for the default scopes" => basic_issues_a_token;
    "token", Profile, "client_secret_post: requested scopes granted sorted, each once" => post_issues_sorted_scopes;
    "token", Must("RFC 6749 2.3.1"), "Basic credentials are form-decoded before they are compared" => basic_is_form_decoded;
    "token", Must("RFC 6749 3.2"), "an empty parameter counts as omitted" => empty_parameter_is_omitted;
    "token", Must("RFC 6749 5.2"), "a wrong secret in Basic: 401 invalid_client with a Basic challenge" => wrong_basic_secret;
    "token", Profile, "a wrong secret in the body: 401 invalid_client, no challenge" => wrong_post_secret;
    "token", Profile, "no client authentication: 401 invalid_client with a Basic challenge" => no_authentication;
    "token", Must("RFC 6749 5.2"), "an unknown client: 401 invalid_client" => unknown_client;
    "token", Must("RFC 6749 2.3"), "Basic and client_secret in the body together: 400 invalid_request" => two_methods;
    "token", Must("RFC 6749 5.2"), "no grant_type: 400 invalid_request" => no_grant_type;
    "token", Must("RFC 6749 5.2"), "a grant type the guest does not serve: 400 unsupported_grant_type" => unsupported_grant_type;
    "token", Must("RFC 6749 5.2"), "a client not registered for client_credentials: 400 unauthorized_client" => unauthorized_client;
    "token", Must("RFC 6749 5.2"), "a scope beyond the client's: 400 invalid_scope" => scope_beyond_the_client;
    "token", Must("RFC 6749 3.3"), "no scope and no default scopes: 400 invalid_scope" => no_scope_at_all;
    "token", Must("RFC 6749 3.3"), "a malformed scope (doubled, leading or trailing space): 400 invalid_scope" => malformed_scope;
    "token", Must("RFC 6749 3.2"), "a repeated parameter: 400 invalid_request naming it (the host answers)" => repeated_parameter;
    "token", Profile, "a client past its rate limit: 429 temporarily_unavailable with Retry-After" => rate_limited;
    "introspect", Must("RFC 7662 2.2"), "a live token, asked by any authenticated client: active, with its claims" => live_token;
    "introspect", Should("RFC 7662 2.2"), "unknown and malformed tokens: exactly {\"active\": false}" => unknown_tokens;
    "introspect", Must("RFC 7662 2.1"), "a wrong token_type_hint still finds the token" => wrong_hint;
    "introspect", Must("RFC 7662 2.2"), "an expired token: {\"active\": false}" => expired_token;
    "introspect", Must("RFC 7662 2.1"), "no or wrong client authentication: 401 invalid_client" => introspect_unauthenticated;
    "introspect", Must("RFC 7662 2.1"), "no token: 400 invalid_request" => introspect_without_token;
    "revoke", Must("RFC 7009 2.2"), "a client's own token: 200, empty body, and the token is inactive at once" => revoke_own_token;
    "revoke", Must("RFC 7009 2.2"), "an unknown token: 200" => revoke_unknown_token;
    "revoke", Profile, "another client's token: 200, and the token stays active" => revoke_other_clients_token;
    "revoke", Must("RFC 7009 2.1"), "no or wrong client authentication: 401 invalid_client, the token stays active" => revoke_unauthenticated;
    "revoke", Must("RFC 7009 2.1"), "no token: 400 invalid_request" => revoke_without_token;
    "metadata", Must("RFC 8414 3"), "GET: 200 JSON naming the issuer, the endpoints at the host's URLs, grants, methods and scopes" => metadata_document;
    "metadata", Profile, "it may be cached: Cache-Control with a max-age, not no-store" => metadata_is_cacheable;
}

// ---- the token endpoint: RFC 6749 sections 2.3, 3.3, 4.4 and 5 ----

/// A successful token answer for `scope`: 200, JSON, no-store, a Bearer token of token68
/// syntax (RFC 6750 section 2.1) living `expires_in` seconds. Returns the token.
fn token_answer(reply: &Reply, scope: &str, expires_in: u64) -> Result<String, String> {
    status(reply, 200)?;
    header(reply, "content-type", Some("application/json"))?;
    header(reply, "cache-control", Some("no-store"))?;
    header(reply, "pragma", Some("no-cache"))?;
    let body = reply.json()?;
    equal("token_type", &body["token_type"], &json!("Bearer"), reply)?;
    equal("expires_in", &body["expires_in"], &json!(expires_in), reply)?;
    equal("scope", &body["scope"], &json!(scope), reply)?;
    let token = body["access_token"].as_str().unwrap_or_default();
    let b64token = token.trim_end_matches('=');
    ensure(
        !b64token.is_empty()
            && b64token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)),
        "access_token: a string of RFC 6750's b64token syntax",
        reply,
    )?;
    Ok(token.to_owned())
}

/// A token for `client` with `scope` (none: the default scopes).
async fn issue(kit: &Kit, client: (&str, &str), scope: Option<&str>) -> Result<String, String> {
    let mut params = vec![CLIENT_CREDENTIALS];
    params.extend(scope.map(|s| ("scope", s)));
    let reply = kit.post(TOKEN, &params, Some(client)).await?;
    status(&reply, 200)?;
    reply.json()?["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("expected: an access_token\ngot:      {reply}"))
}

async fn basic_issues_a_token(kit: Kit) -> Outcome {
    let reply = kit.post(TOKEN, &[CLIENT_CREDENTIALS], Some(DEMO)).await?;
    token_answer(&reply, "read", 3600).map(drop)
}

async fn post_issues_sorted_scopes(kit: Kit) -> Outcome {
    let (id, secret) = DEMO;
    let params = [
        CLIENT_CREDENTIALS,
        ("client_id", id),
        ("client_secret", secret),
        ("scope", "write read write"),
    ];
    let reply = kit.post(TOKEN, &params, None).await?;
    token_answer(&reply, "read write", 3600).map(drop)
}

async fn basic_is_form_decoded(kit: Kit) -> Outcome {
    let params = [CLIENT_CREDENTIALS, ("scope", "admin")];
    let reply = kit.post(TOKEN, &params, Some(ODD)).await?;
    token_answer(&reply, "admin", 3600).map(drop)
}

async fn empty_parameter_is_omitted(kit: Kit) -> Outcome {
    let params = [CLIENT_CREDENTIALS, ("scope", "")];
    let reply = kit.post(TOKEN, &params, Some(DEMO)).await?;
    token_answer(&reply, "read", 3600)?;
    let reply = kit.post(TOKEN, &[("grant_type", "")], Some(DEMO)).await?;
    oauth_error(&reply, 400, "invalid_request")
}

/// A 401 `invalid_client`, with or without a `Basic` challenge (RFC 6749 section 5.2), and
/// no-store like every answer of the endpoint.
fn invalid_client(reply: &Reply, challenge: bool) -> Outcome {
    oauth_error(reply, 401, "invalid_client")?;
    header(reply, "cache-control", Some("no-store"))?;
    let got = reply.header("www-authenticate");
    ensure(
        got.is_some_and(|c| c.starts_with("Basic ")) == challenge,
        match challenge {
            true => "a WWW-Authenticate: Basic ... challenge",
            false => "no WWW-Authenticate header (the client did not use Basic)",
        },
        reply,
    )
}

async fn wrong_basic_secret(kit: Kit) -> Outcome {
    let reply = kit
        .post(TOKEN, &[CLIENT_CREDENTIALS], Some((DEMO.0, "wrong-secret")))
        .await?;
    invalid_client(&reply, true)
}

async fn wrong_post_secret(kit: Kit) -> Outcome {
    let params = [
        CLIENT_CREDENTIALS,
        ("client_id", DEMO.0),
        ("client_secret", "wrong-secret"),
    ];
    invalid_client(&kit.post(TOKEN, &params, None).await?, false)
}

async fn no_authentication(kit: Kit) -> Outcome {
    invalid_client(&kit.post(TOKEN, &[CLIENT_CREDENTIALS], None).await?, true)
}

async fn unknown_client(kit: Kit) -> Outcome {
    let reply = kit
        .post(TOKEN, &[CLIENT_CREDENTIALS], Some(("nobody", DEMO.1)))
        .await?;
    invalid_client(&reply, true)
}

async fn two_methods(kit: Kit) -> Outcome {
    let params = [CLIENT_CREDENTIALS, ("client_secret", DEMO.1)];
    let reply = kit.post(TOKEN, &params, Some(DEMO)).await?;
    oauth_error(&reply, 400, "invalid_request")
}

async fn no_grant_type(kit: Kit) -> Outcome {
    let reply = kit.post(TOKEN, &[], Some(DEMO)).await?;
    oauth_error(&reply, 400, "invalid_request")?;
    header(&reply, "cache-control", Some("no-store"))
}

async fn unsupported_grant_type(kit: Kit) -> Outcome {
    let reply = kit
        .post(TOKEN, &[("grant_type", "password")], Some(DEMO))
        .await?;
    oauth_error(&reply, 400, "unsupported_grant_type")
}

async fn unauthorized_client(kit: Kit) -> Outcome {
    let reply = kit
        .post(TOKEN, &[CLIENT_CREDENTIALS], Some(RESOURCE_SERVER))
        .await?;
    oauth_error(&reply, 400, "unauthorized_client")
}

async fn scope_beyond_the_client(kit: Kit) -> Outcome {
    let params = [CLIENT_CREDENTIALS, ("scope", "read admin")];
    let reply = kit.post(TOKEN, &params, Some(DEMO)).await?;
    oauth_error(&reply, 400, "invalid_scope")
}

async fn no_scope_at_all(kit: Kit) -> Outcome {
    let reply = kit.post(TOKEN, &[CLIENT_CREDENTIALS], Some(ODD)).await?;
    oauth_error(&reply, 400, "invalid_scope")
}

async fn malformed_scope(kit: Kit) -> Outcome {
    for scope in ["read  write", " read", "read "] {
        let params = [CLIENT_CREDENTIALS, ("scope", scope)];
        let reply = kit.post(TOKEN, &params, Some(DEMO)).await?;
        oauth_error(&reply, 400, "invalid_scope").map_err(|e| format!("scope {scope:?}:\n{e}"))?;
    }
    Ok(())
}

async fn repeated_parameter(kit: Kit) -> Outcome {
    let params = [CLIENT_CREDENTIALS, CLIENT_CREDENTIALS];
    let reply = kit.post(TOKEN, &params, Some(DEMO)).await?;
    oauth_error(&reply, 400, "invalid_request")?;
    let description = reply.json()?["error_description"].clone();
    ensure(
        description
            .as_str()
            .is_some_and(|d| d.contains("grant_type")),
        "an error_description naming grant_type",
        &reply,
    )
}

async fn rate_limited(kit: Kit) -> Outcome {
    // A burst of 2, then 1 an hour.
    let client = (kit.limited, LIMITED_SECRET);
    for _ in 0..2 {
        issue(&kit, client, None).await?;
    }
    let reply = kit.post(TOKEN, &[CLIENT_CREDENTIALS], Some(client)).await?;
    oauth_error(&reply, 429, "temporarily_unavailable")?;
    let wait = reply
        .header("retry-after")
        .and_then(|s| s.parse::<u64>().ok());
    ensure(
        wait.is_some_and(|s| (1..=3600).contains(&s)),
        "Retry-After: the seconds until the budget allows one more (1 to 3600)",
        &reply,
    )
}

// ---- introspection: RFC 7662 ----

/// Introspects `token` as the `other` client.
async fn introspect(kit: &Kit, token: &str, hint: Option<&str>) -> Result<(Reply, Value), String> {
    let mut params = vec![("token", token)];
    params.extend(hint.map(|h| ("token_type_hint", h)));
    let reply = kit.post(INTROSPECT, &params, Some(OTHER)).await?;
    status(&reply, 200)?;
    header(&reply, "cache-control", Some("no-store"))?;
    let body = reply.json()?;
    Ok((reply, body))
}

/// Fails unless `token` introspects as exactly `{"active": false}`.
async fn inactive(kit: &Kit, token: &str) -> Outcome {
    let (reply, body) = introspect(kit, token, None).await?;
    equal("the body", body, json!({ "active": false }), &reply)
}

async fn active(kit: &Kit, token: &str) -> Outcome {
    let (reply, body) = introspect(kit, token, None).await?;
    equal("active", &body["active"], &json!(true), &reply)
}

async fn live_token(kit: Kit) -> Outcome {
    let token = issue(&kit, DEMO, Some("read write")).await?;
    let (reply, body) = introspect(&kit, &token, None).await?;
    header(&reply, "content-type", Some("application/json"))?;
    for (field, expected) in [
        ("active", json!(true)),
        ("scope", json!("read write")),
        ("client_id", json!(DEMO.0)),
        ("sub", json!(DEMO.0)),
        ("token_type", json!("Bearer")),
        ("iss", json!(ISSUER)),
    ] {
        equal(field, &body[field], &expected, &reply)?;
    }
    if body.get("token_use").is_some() {
        equal(
            "token_use",
            &body["token_use"],
            &json!("access_token"),
            &reply,
        )?;
    }
    let (iat, exp) = (body["iat"].as_u64(), body["exp"].as_u64());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    ensure(
        iat.is_some_and(|iat| iat <= now && now - iat < 60),
        "iat: the issue time, Unix seconds",
        &reply,
    )?;
    equal(
        "exp - iat",
        exp.zip(iat).map(|(e, i)| e - i),
        Some(3600),
        &reply,
    )
}

async fn unknown_tokens(kit: Kit) -> Outcome {
    for token in ["never-issued", "a-b_c", "!!!", &"x".repeat(600)] {
        inactive(&kit, token).await?;
    }
    Ok(())
}

async fn wrong_hint(kit: Kit) -> Outcome {
    let token = issue(&kit, DEMO, None).await?;
    let (reply, body) = introspect(&kit, &token, Some("refresh_token")).await?;
    equal("active", &body["active"], &json!(true), &reply)
}

async fn expired_token(kit: Kit) -> Outcome {
    // Expiry is counted in whole seconds, so a 1 s token issued at N.999 s lives 1 ms:
    // issued just after a second begins, it lives most of one, whatever the guest's pace.
    let into_second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_millis());
    tokio::time::sleep(Duration::from_millis(u64::from(1020 - into_second))).await;
    let token = issue(&kit, SHORT_LIVED, None).await?;
    active(&kit, &token).await?;
    // It lives 1 s, counted in whole seconds: 2.1 s later it has expired for sure.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    inactive(&kit, &token).await
}

/// A live token of the demo client, sent to `path` with no credentials and with a wrong
/// secret: 401 `invalid_client` both times. Returns the token.
async fn refused_without_credentials(kit: &Kit, path: &str) -> Result<String, String> {
    let token = issue(kit, DEMO, None).await?;
    let params = [("token", token.as_str())];
    for credentials in [None, Some((DEMO.0, "wrong"))] {
        let reply = kit.post(path, &params, credentials).await?;
        oauth_error(&reply, 401, "invalid_client")?;
    }
    Ok(token)
}

async fn introspect_unauthenticated(kit: Kit) -> Outcome {
    refused_without_credentials(&kit, INTROSPECT)
        .await
        .map(drop)
}

async fn introspect_without_token(kit: Kit) -> Outcome {
    let reply = kit.post(INTROSPECT, &[], Some(DEMO)).await?;
    oauth_error(&reply, 400, "invalid_request")
}

// ---- revocation: RFC 7009 ----

async fn revoke_own_token(kit: Kit) -> Outcome {
    let token = issue(&kit, DEMO, None).await?;
    let reply = kit.post(REVOKE, &[("token", &token)], Some(DEMO)).await?;
    status(&reply, 200)?;
    equal("the body", reply.body.as_str(), "", &reply)?;
    inactive(&kit, &token).await
}

async fn revoke_unknown_token(kit: Kit) -> Outcome {
    let reply = kit
        .post(REVOKE, &[("token", "never-issued")], Some(DEMO))
        .await?;
    status(&reply, 200)
}

async fn revoke_other_clients_token(kit: Kit) -> Outcome {
    let token = issue(&kit, DEMO, None).await?;
    let reply = kit.post(REVOKE, &[("token", &token)], Some(OTHER)).await?;
    status(&reply, 200)?;
    active(&kit, &token).await
}

async fn revoke_unauthenticated(kit: Kit) -> Outcome {
    let token = refused_without_credentials(&kit, REVOKE).await?;
    active(&kit, &token).await
}

async fn revoke_without_token(kit: Kit) -> Outcome {
    let reply = kit.post(REVOKE, &[], Some(DEMO)).await?;
    oauth_error(&reply, 400, "invalid_request")
}

// ---- metadata: RFC 8414 ----

async fn metadata_document(kit: Kit) -> Outcome {
    let reply = kit.get(METADATA).await?;
    status(&reply, 200)?;
    header(&reply, "content-type", Some("application/json"))?;
    let doc = reply.json()?;
    for field in [
        "token_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
    ] {
        // Both of RFC 6749's, and whatever else the guest serves (RFC 7523's JWTs, ...);
        // `none` only with public clients, which need the authorization code flow.
        let methods = doc[field].as_array().map(Vec::as_slice).unwrap_or_default();
        let named = |m: &str| methods.iter().any(|v| v == m);
        ensure(
            named("client_secret_basic") && named("client_secret_post") && !named("none"),
            &format!("{field} naming client_secret_basic and client_secret_post, not none"),
            &reply,
        )?;
    }
    for (field, expected) in [
        ("issuer", json!(ISSUER)),
        ("token_endpoint", json!(format!("{ISSUER}{TOKEN}"))),
        (
            "introspection_endpoint",
            json!(format!("{ISSUER}{INTROSPECT}")),
        ),
        ("revocation_endpoint", json!(format!("{ISSUER}{REVOKE}"))),
        ("grant_types_supported", json!(["client_credentials"])),
        ("response_types_supported", json!([])),
        ("scopes_supported", json!(["admin", "read", "write"])),
    ] {
        equal(field, &doc[field], &expected, &reply)?;
    }
    Ok(())
}

async fn metadata_is_cacheable(kit: Kit) -> Outcome {
    let reply = kit.get(METADATA).await?;
    let cache = reply.header("cache-control").unwrap_or_default();
    ensure(
        cache.contains("max-age=") && !cache.contains("no-store"),
        "Cache-Control with a max-age (metadata changes only with the config)",
        &reply,
    )
}
