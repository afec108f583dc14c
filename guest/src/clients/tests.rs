//! The client admin API against the native test host's store: what an operator scripting
//! Hydra's API relies on, and that a client registered here is served like a configured one.

use super::admin::handle;
use crate::testing::{basic, body, form, TestHost, DEMO_ID};
use crate::{introspect, token, Host, Response};
use serde_json::{json, Value};

const SECRET: &str = "a-secret-of-at-least-32-characters!!";

fn call(host: &TestHost, method: &str, id: Option<&str>, body: Option<Value>) -> Response {
    let body = body.map(|b| b.to_string());
    handle(host, method, id, &[], body.as_deref())
}

fn machine(id: &str) -> Value {
    json!({"client_id": id, "client_secret": SECRET, "grant_types": ["client_credentials"],
           "scope": "read write", "metadata": {"team": "payments"}})
}

fn token_for(host: &TestHost, id: &str, secret: &str) -> Response {
    token(
        host,
        &form(
            &[("grant_type", "client_credentials")],
            Some(basic(id, secret)),
        ),
    )
}

fn active(host: &TestHost, token: &str) -> bool {
    let req = form(
        &[("token", token)],
        Some(basic(DEMO_ID, crate::testing::DEMO_SECRET)),
    );
    body(&introspect(host, &req))["active"] == true
}

#[test]
fn a_created_client_gets_tokens_and_its_secret_is_shown_once() {
    let host = TestHost::new();
    let created = call(&host, "POST", None, Some(machine("svc")));
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.header("Location"), Some("/admin/clients/svc"));
    let shown = body(&created);
    assert_eq!(shown["client_secret"], SECRET);
    assert_eq!(shown["scope"], "read write");
    assert_eq!(shown["metadata"], json!({"team": "payments"}));
    assert_eq!(shown["token_endpoint_auth_method"], "client_secret_basic");

    let read = body(&call(&host, "GET", Some("svc"), None));
    assert!(read.get("client_secret").is_none(), "{read}");
    assert_eq!(read["created_at"], shown["created_at"]);
    // No secret in the store, only its digest.
    assert!(host.keys().iter().all(|k| !k.contains(SECRET)));
    let record = host.store_get(&super::record_key("svc")).unwrap().unwrap();
    let record = String::from_utf8(record).unwrap();
    assert!(!record.contains(SECRET), "{record}");

    let answer = token_for(&host, "svc", SECRET);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let access = body(&answer)["access_token"].as_str().unwrap().to_owned();
    assert!(active(&host, &access));
    assert_eq!(token_for(&host, "svc", "wrong").status, 401);
}

#[test]
fn a_generated_client_has_a_uuid_and_a_256_bit_secret() {
    let host = TestHost::new();
    let shown = body(&call(
        &host,
        "POST",
        None,
        Some(json!({"grant_types": ["client_credentials"], "scope": "read"})),
    ));
    let id = shown["client_id"].as_str().unwrap();
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(&id[14..15], "4");
    let secret = shown["client_secret"].as_str().unwrap();
    assert_eq!(secret.len(), 43, "256 bits in base64url: {secret}");
    assert_eq!(token_for(&host, id, secret).status, 200);
}

#[test]
fn invalid_metadata_is_refused_and_nothing_is_written() {
    let host = TestHost::new();
    let before = host.entries();
    for (client, error) in [
        (
            json!({"client_secret": "too short"}),
            "invalid_client_metadata",
        ),
        (
            json!({"grant_types": ["password"], "client_secret": SECRET}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["http://app.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"grant_types": ["authorization_code"]}),
            "invalid_redirect_uri",
        ),
        (json!({"scope": 7}), "invalid_client_metadata"),
        (
            json!({"access_token_strategy": "jwt", "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"token_endpoint_auth_method": "none", "client_secret": SECRET}),
            "invalid_client_metadata",
        ),
    ] {
        let answer = call(&host, "POST", None, Some(client.clone()));
        assert_eq!(
            (answer.status, body(&answer)["error"].as_str()),
            (400, Some(error)),
            "{client}: {}",
            answer.body
        );
    }
    assert_eq!(host.entries(), before);
}

#[test]
fn a_taken_id_is_409_and_configured_clients_are_listed_but_not_changed() {
    let host = TestHost::new();
    assert_eq!(call(&host, "POST", None, Some(machine("svc"))).status, 201);
    assert_eq!(call(&host, "POST", None, Some(machine("svc"))).status, 409);
    assert_eq!(
        call(&host, "POST", None, Some(machine(DEMO_ID))).status,
        409
    );
    for method in ["PUT", "PATCH", "DELETE"] {
        let answer = call(&host, method, Some(DEMO_ID), Some(json!({})));
        assert_eq!(answer.status, 403, "{method}");
        assert!(answer.body.contains("oauth.clients"), "{}", answer.body);
    }
    let demo = body(&call(&host, "GET", Some(DEMO_ID), None));
    assert_eq!(demo["metadata"]["tokenginx"]["configured"], true);
    assert_eq!(call(&host, "GET", Some("nobody"), None).status, 404);
}

#[test]
fn a_put_keeps_the_secret_unless_it_sets_one_and_a_patch_edits_the_json() {
    let host = TestHost::new();
    call(&host, "POST", None, Some(machine("svc")));
    let mut changed = machine("svc");
    changed.as_object_mut().unwrap().remove("client_secret");
    changed["client_name"] = json!("Service");
    let put = call(&host, "PUT", Some("svc"), Some(changed));
    assert_eq!(put.status, 200, "{}", put.body);
    assert!(body(&put).get("client_secret").is_none());
    assert_eq!(token_for(&host, "svc", SECRET).status, 200);

    let new_secret = "another-secret-of-at-least-32-chars!";
    let patch = json!([{"op": "replace", "path": "/client_secret", "value": new_secret},
                       {"op": "replace", "path": "/scope", "value": "read"}]);
    let patched = call(&host, "PATCH", Some("svc"), Some(patch));
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(body(&patched)["client_secret"], new_secret);
    assert_eq!(body(&patched)["client_name"], "Service");
    assert_eq!(token_for(&host, "svc", SECRET).status, 401);
    let answer = token_for(&host, "svc", new_secret);
    assert_eq!(body(&answer)["scope"], "read", "{}", answer.body);

    let rename = json!([{"op": "replace", "path": "/client_id", "value": "other-id"}]);
    assert_eq!(call(&host, "PATCH", Some("svc"), Some(rename)).status, 400);
    assert_eq!(
        call(&host, "PATCH", Some("ghost"), Some(json!([]))).status,
        404
    );
}

#[test]
fn a_deleted_clients_tokens_are_inactive_and_stay_so_if_its_id_is_taken_again() {
    let host = TestHost::new();
    call(&host, "POST", None, Some(machine("svc")));
    let access = body(&token_for(&host, "svc", SECRET))["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(call(&host, "DELETE", Some("svc"), None).status, 204);
    assert!(!active(&host, &access));
    assert_eq!(call(&host, "DELETE", Some("svc"), None).status, 404);
    assert_eq!(token_for(&host, "svc", SECRET).status, 401);
    host.advance_clock_ms(1000);
    assert_eq!(call(&host, "POST", None, Some(machine("svc"))).status, 201);
    assert!(
        !active(&host, &access),
        "a new client with the old id revives nothing"
    );
}

#[test]
fn the_list_pages_by_id_through_the_link_header() {
    let host = TestHost::new();
    for i in 0..7 {
        call(&host, "POST", None, Some(machine(&format!("svc-{i}"))));
    }
    let configured = host.configured_clients().len();
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut query = vec![("page_size".to_owned(), "3".to_owned())];
        query.extend(token.clone().map(|t| ("page_token".to_owned(), t)));
        let page = handle(&host, "GET", None, &query, None);
        assert_eq!(page.status, 200);
        let ids: Vec<String> = body(&page)
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["client_id"].as_str().unwrap().to_owned())
            .collect();
        assert!(ids.len() <= 3);
        seen.extend(ids);
        let link = page.header("Link").unwrap().to_owned();
        assert!(link.contains("rel=\"first\""), "{link}");
        match link.split(',').find(|l| l.ends_with("rel=\"next\"")) {
            Some(next) => {
                let start = next.find("page_token=").unwrap() + "page_token=".len();
                let end = next.find('>').unwrap();
                token = Some(next[start..end].to_owned());
            }
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "each once, by id");
    assert_eq!(seen.len(), 7 + configured);
    let bad = handle(
        &host,
        "GET",
        None,
        &[("page_size".into(), "0".into())],
        None,
    );
    assert_eq!(bad.status, 400);

    // Hydra's filters: exact matches, paged the same way, kept in the links.
    for (i, owner) in ["ops", "ops", "web"].iter().enumerate() {
        let mut client = machine(&format!("owned-{i}"));
        client["owner"] = json!(owner);
        client["client_name"] = json!("Batch");
        call(&host, "POST", None, Some(client));
    }
    let filtered = |query: &[(&str, &str)]| {
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        handle(&host, "GET", None, &query, None)
    };
    let page = filtered(&[("owner", "ops"), ("page_size", "1")]);
    assert_eq!(body(&page)[0]["client_id"], "owned-0");
    let link = page.header("Link").unwrap();
    assert!(
        link.contains("owner=ops") && link.contains("rel=\"next\""),
        "{link}"
    );
    let named = body(&filtered(&[("client_name", "Batch"), ("owner", "web")]));
    assert_eq!(named.as_array().unwrap().len(), 1);
    assert_eq!(named[0]["client_id"], "owned-2");
}

#[test]
fn a_store_that_is_away_is_503_and_loses_nothing() {
    let host = TestHost::new();
    host.set_store_down(true);
    assert_eq!(call(&host, "POST", None, Some(machine("svc"))).status, 503);
    assert_eq!(token_for(&host, "svc", SECRET).status, 503);
    host.set_store_down(false);
    assert_eq!(call(&host, "GET", Some("svc"), None).status, 404);
}

/// A grant of `scope` for alice to the runtime client `app`, as a redeemed code starts one.
fn alices_grant(host: &TestHost, scope: &str) -> crate::grant::Started {
    let client = super::find(host, "app").unwrap().unwrap();
    let claims = crate::issue::Claims {
        user_id: "alice".into(),
        scope: scope.into(),
        ext: None,
        audience: Vec::new(),
        session: None,
        cnf: None,
    };
    crate::grant::start(host, &client, claims, None, "127.0.0.1", None).unwrap()
}

#[test]
fn a_grant_of_a_deleted_client_refreshes_for_no_client_that_takes_its_id() {
    let host = TestHost::new();
    let app = json!({"client_id": "app", "client_secret": SECRET,
                     "grant_types": ["authorization_code", "refresh_token"],
                     "redirect_uris": ["https://app.example/cb"], "scope": "read offline_access"});
    call(&host, "POST", None, Some(app.clone()));
    let started = alices_grant(&host, "offline_access read");
    let refresh_token = body(&started.response)["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh = |host: &TestHost| {
        let params = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
        ];
        token(host, &form(&params, Some(basic("app", SECRET))))
    };
    assert_eq!(call(&host, "DELETE", Some("app"), None).status, 204);
    host.advance_clock_ms(1000);
    assert_eq!(call(&host, "POST", None, Some(app)).status, 201);
    let answer = refresh(&host);
    assert_eq!(
        (answer.status, body(&answer)["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(!active(&host, &refresh_token));
}

#[test]
fn userinfo_answers_for_no_token_of_a_deleted_client() {
    let host = TestHost::new();
    let app = json!({"client_id": "app", "client_secret": SECRET,
                     "grant_types": ["authorization_code"],
                     "redirect_uris": ["https://app.example/cb"], "scope": "openid read"});
    call(&host, "POST", None, Some(app));
    let started = alices_grant(&host, "openid read");
    let access = body(&started.response)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let userinfo = |host: &TestHost| {
        let bearer = format!("Bearer {access}");
        crate::testing::userinfo(host, Some(&bearer), None).status
    };
    assert_eq!(userinfo(&host), 200);
    call(&host, "DELETE", Some("app"), None);
    assert_eq!(userinfo(&host), 401);
}

mod registration {
    use super::*;
    use crate::clients::register::handle as register;
    use crate::RegistrationPolicy;

    const INITIAL: &str = "an-initial-access-token-of-the-operators";

    fn allowing(open: bool) -> TestHost {
        let host = TestHost::new();
        *host.registration.borrow_mut() = Some(RegistrationPolicy {
            open,
            initial_access_tokens_sha256: vec![sha2::Sha256::digest(INITIAL.as_bytes()).to_vec()],
            max_clients: 16,
            allowed_scopes: vec!["read".into()],
            allowed_audiences: vec!["https://api.example".into()],
        });
        host
    }

    fn post(host: &TestHost, bearer: Option<&str>, body: Value) -> Response {
        let auth = bearer.map(|t| format!("Bearer {t}"));
        register(host, "POST", None, auth.as_deref(), Some(&body.to_string()))
    }

    fn machine_metadata() -> Value {
        json!({"client_name": "a job", "grant_types": ["client_credentials"], "scope": "read"})
    }

    use sha2::Digest as _;

    #[test]
    fn a_client_registers_with_an_initial_token_and_manages_itself_with_its_own() {
        let host = allowing(false);
        assert_eq!(post(&host, None, machine_metadata()).status, 401);
        assert_eq!(post(&host, Some("not-it"), machine_metadata()).status, 401);
        let created = post(&host, Some(INITIAL), machine_metadata());
        assert_eq!(created.status, 201, "{}", created.body);
        let shown = body(&created);
        let (id, secret) = (
            shown["client_id"].as_str().unwrap(),
            shown["client_secret"].as_str().unwrap(),
        );
        let token = shown["registration_access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            shown["registration_client_uri"],
            format!("http://issuer.test/oauth2/register/{id}")
        );
        assert_eq!(token_for(&host, id, secret).status, 200);

        let read = |bearer: &str| {
            let auth = format!("Bearer {bearer}");
            register(&host, "GET", Some(id), Some(&auth), None)
        };
        assert_eq!(read(&token).status, 200);
        assert!(body(&read(&token)).get("client_secret").is_none());
        assert_eq!(
            read(INITIAL).status,
            401,
            "the initial token manages nothing"
        );
        // Another client's registration token reads nothing of this one.
        let other = body(&post(&host, Some(INITIAL), machine_metadata()));
        let other_token = other["registration_access_token"].as_str().unwrap();
        assert_eq!(read(other_token).status, 401);

        let auth = format!("Bearer {token}");
        let changed = json!({"client_name": "renamed", "grant_types": ["client_credentials"], "scope": "read"});
        let put = register(
            &host,
            "PUT",
            Some(id),
            Some(&auth),
            Some(&changed.to_string()),
        );
        assert_eq!(put.status, 200, "{}", put.body);
        let new_token = body(&put)["registration_access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            read(&token).status,
            401,
            "a change ends the old registration token"
        );
        assert_eq!(body(&read(&new_token))["client_name"], "renamed");
        assert_eq!(
            token_for(&host, id, secret).status,
            200,
            "the secret is kept"
        );

        let auth = format!("Bearer {new_token}");
        assert_eq!(
            register(&host, "DELETE", Some(id), Some(&auth), None).status,
            204
        );
        assert_eq!(token_for(&host, id, secret).status, 401);
    }

    #[test]
    fn what_a_client_cannot_set_about_itself_is_refused_and_the_caps_hold() {
        let host = allowing(true);
        for field in [
            json!({"client_secret": SECRET}),
            json!({"metadata": {}}),
            json!({"skip_consent": true}),
            json!({"access_token_strategy": "jwt"}),
        ] {
            let mut metadata = machine_metadata();
            metadata
                .as_object_mut()
                .unwrap()
                .extend(field.as_object().unwrap().clone());
            let answer = post(&host, None, metadata);
            assert_eq!(
                (answer.status, body(&answer)["error"].as_str()),
                (400, Some("invalid_client_metadata")),
                "{field}"
            );
        }
        // An audience or an owner the operator did not allow.
        let mut aimed = machine_metadata();
        aimed["audience"] = json!(["https://api.internal"]);
        assert_eq!(
            body(&post(&host, None, aimed))["error"],
            "invalid_client_metadata"
        );
        let mut allowed = machine_metadata();
        allowed["audience"] = json!(["https://api.example"]);
        assert_eq!(post(&host, None, allowed).status, 201);
        let mut owned = machine_metadata();
        owned["owner"] = json!("ops");
        assert_eq!(
            body(&post(&host, None, owned))["error"],
            "invalid_client_metadata"
        );
        // A scope the operator did not allow: anyone could mint tokens for it.
        let mut admin = machine_metadata();
        admin["scope"] = json!("read admin");
        let refused = post(&host, None, admin);
        assert_eq!(body(&refused)["error"], "invalid_client_metadata");
        assert!(body(&refused)["error_description"]
            .as_str()
            .unwrap()
            .contains("\"admin\""));
        let taken =
            json!({"client_id": DEMO_ID, "grant_types": ["client_credentials"], "scope": "read"});
        let created = body(&post(&host, None, taken));
        assert_ne!(created["client_id"], DEMO_ID, "the server gives the id");
        // One a bucket: 16 at most, whatever the order the ids fall in.
        let statuses: Vec<u16> = (0..40)
            .map(|_| post(&host, None, machine_metadata()).status)
            .collect();
        let created = 1 + statuses.iter().filter(|s| **s == 201).count();
        assert!(
            (8..=16).contains(&created),
            "{created} registered: {statuses:?}"
        );
        assert!(
            statuses.iter().all(|s| [201, 403].contains(s)),
            "{statuses:?}"
        );
        let full = post(&host, None, machine_metadata());
        assert_eq!(
            (full.status, body(&full)["error"].as_str()),
            (403, Some("access_denied"))
        );

        let host = allowing(true);
        host.registration_budget.set(1);
        assert_eq!(post(&host, None, machine_metadata()).status, 201);
        let limited = post(&host, None, machine_metadata());
        assert_eq!(limited.status, 429);
        assert_eq!(limited.header("Retry-After"), Some("60"));
        // Another initial token has a budget of its own.
        assert_eq!(post(&host, Some(INITIAL), machine_metadata()).status, 201);
    }

    #[test]
    fn registration_is_off_unless_allowed_and_then_in_the_metadata() {
        let host = TestHost::new();
        assert_eq!(post(&host, None, machine_metadata()).status, 404);
        assert!(body(&crate::metadata(&host))
            .get("registration_endpoint")
            .is_none());
        let host = allowing(false);
        assert_eq!(
            body(&crate::metadata(&host))["registration_endpoint"],
            "http://issuer.test/oauth2/register"
        );
    }
}

/// `client` with `change`'s fields set (a null removes one) is refused as metadata.
fn refused_as_changed(host: &TestHost, client: &Value, change: Value, why: &str) {
    let mut fields = client.clone();
    for (name, value) in change.as_object().unwrap() {
        fields[name] = value.clone();
    }
    fields["client_id"] = json!(format!("x-{why}"));
    let answer = call(host, "POST", None, Some(fields));
    assert_eq!(answer.status, 400, "{why}: {}", answer.body);
    assert_eq!(body(&answer)["error"], "invalid_client_metadata", "{why}");
}

#[test]
fn a_runtime_client_with_jwks_authenticates_with_private_key_jwt() {
    let host = TestHost::new();
    let key = crate::testing::DpopKey::es256(41);
    let client = json!({"client_id": "signer", "grant_types": ["client_credentials"],
        "scope": "read", "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [key.jwk()]}});
    let created = call(&host, "POST", None, Some(client.clone()));
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(
        body(&created).get("client_secret").is_none(),
        "no secret to show"
    );
    let now = host.now_ms() / 1000;
    let assertion = key.sign(
        json!({"jwk": null}),
        json!({"iss": "signer", "sub": "signer", "aud": "http://issuer.test", "jti": "1",
               "exp": now + 60}),
    );
    let issued = token(
        &host,
        &form(
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", crate::client_auth::JWT_BEARER),
                ("client_assertion", &assertion),
            ],
            None,
        ),
    );
    assert_eq!(issued.status, 200, "{}", issued.body);

    let refused = |change: Value, why: &str| refused_as_changed(&host, &client, change, why);
    let mut private = key.jwk();
    private["d"] = json!("AAAA");
    refused(json!({"jwks": {"keys": [private]}}), "a private key");
    refused(
        json!({"jwks": null, "jwks_uri": "https://app.example/jwks"}),
        "only a jwks_uri",
    );
    refused(
        json!({"token_endpoint_auth_method": "client_secret_jwt", "client_secret": SECRET}),
        "client_secret_jwt",
    );
}

#[test]
fn a_runtime_client_authenticates_with_its_tls_certificate_and_its_tokens_are_bound_to_it() {
    let host = TestHost::new();
    let client = json!({"client_id": "device", "grant_types": ["client_credentials"],
        "scope": "read", "token_endpoint_auth_method": "tls_client_auth",
        "tls_client_auth_san_uri": "spiffe://example.com/client",
        "tls_client_certificate_bound_access_tokens": true});
    let created = call(&host, "POST", None, Some(client.clone()));
    assert_eq!(created.status, 201, "{}", created.body);
    let shown = body(&created);
    assert!(shown.get("client_secret").is_none(), "no secret to show");
    assert_eq!(
        shown["tls_client_auth_san_uri"],
        "spiffe://example.com/client"
    );
    assert_eq!(shown["tls_client_certificate_bound_access_tokens"], true);

    let request = |client_cert: Option<&[u8]>| {
        let mut req = form(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "device"),
            ],
            None,
        );
        req.client_cert = client_cert.map(<[u8]>::to_vec);
        req
    };
    let req = request(Some(crate::testing::CLIENT_CERT));
    let issued = token(&host, &req);
    assert_eq!(issued.status, 200, "{}", issued.body);
    let access = body(&issued)["access_token"].as_str().unwrap().to_owned();
    let record = crate::record::access_token_key(&access)
        .and_then(|key| host.store_get(&key).unwrap())
        .unwrap();
    let record: crate::record::TokenRecord = serde_json::from_slice(&record).unwrap();
    let thumbprint = req.certificate(&host).unwrap().thumbprint();
    assert_eq!(
        record.cnf.and_then(|c| c.x5t_s256),
        Some(thumbprint),
        "bound to the certificate"
    );
    assert_eq!(token(&host, &request(None)).status, 401);

    let refused = |change: Value, why: &str| refused_as_changed(&host, &client, change, why);
    refused(json!({"tls_client_auth_san_uri": null}), "no name");
    refused(json!({"tls_client_auth_san_dns": "a.example"}), "two names");
    refused(
        json!({"tls_client_auth_san_uri": null, "tls_client_auth_san_ip": "host"}),
        "not an IP address",
    );
    refused(json!({"client_secret": "x".repeat(40)}), "a secret");
    refused(
        json!({"token_endpoint_auth_method": "self_signed_tls_client_auth",
               "tls_client_auth_san_uri": null}),
        "no certificates in jwks",
    );
}
