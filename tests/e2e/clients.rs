//! Clients registered at runtime through Ory Hydra's client admin API, over real HTTP: a
//! client created on one replica gets tokens on another the next moment, a changed secret
//! stops working everywhere at once, and a deleted client's tokens answer inactive. On a
//! Redis store the replicas are two host processes; the embedded store is one process's, so
//! there both "replicas" are one host.

use crate::authorization_code::{flow_host_on, http, ADMIN_KEY};
use crate::harness::*;
use crate::redis::shared_store;
use reqwest::header::AUTHORIZATION;
use serde_json::{json, Value};

const SECRET: &str = "a-secret-of-at-least-32-characters!!";

fn replica() -> (Host, String) {
    flow_host_on(
        config(&default_guest(), ""),
        "",
        &format!("admin:\n  port: 0\n  api_key: {ADMIN_KEY}\n"),
    )
}

/// An admin API call: the status and the JSON body (null when empty).
async fn admin(base: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = http()
        .request(method, format!("{base}{path}"))
        .header(AUTHORIZATION, format!("Bearer {ADMIN_KEY}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_client_made_on_one_replica_is_served_changed_and_ended_on_every_one() {
    let (first, first_admin) = replica();
    // A guest of an older contract (TOKENGINX_TEST_GUEST) has no client API.
    if admin(&first_admin, "GET", "/admin/clients", None).await.0 == 404 {
        println!("skipped: the guest has no client admin API");
        return;
    }
    let redis = !shared_store().contains("mode: memory");
    let second = match redis {
        true => Some(replica()),
        false => None,
    };
    let (other, other_admin) = second
        .as_ref()
        .map_or((&first, first_admin.as_str()), |(h, a)| (h, a.as_str()));

    let (status, created) = admin(
        &first_admin,
        "POST",
        "/admin/clients",
        Some(json!({"client_id": "svc", "client_secret": SECRET,
                    "grant_types": ["client_credentials"], "scope": "read"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["client_secret"], SECRET);

    // Served at once by the other replica, which has never seen it.
    let token = other.issue(("svc", SECRET), None).await;
    assert_eq!(first.introspect(&token).await["active"], true);
    assert_eq!(first.introspect(&token).await["client_id"], "svc");

    // The secret changed on one replica fails on the other the next moment.
    let new_secret = "the-new-secret-of-at-least-32-characters";
    let patch = json!([{"op": "replace", "path": "/client_secret", "value": new_secret}]);
    let (status, patched) = admin(&first_admin, "PATCH", "/admin/clients/svc", Some(patch)).await;
    assert_eq!(status, 200, "{patched}");
    other
        .request_token(("svc", SECRET), None)
        .await
        .assert_error(401, "invalid_client");
    other.issue(("svc", new_secret), None).await;

    // The configured clients are listed, and refused a change with why.
    let (_, listed) = admin(other_admin, "GET", "/admin/clients", None).await;
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"svc") && ids.contains(&DEMO_ID), "{ids:?}");
    let (status, refused) = admin(
        other_admin,
        "DELETE",
        &format!("/admin/clients/{DEMO_ID}"),
        None,
    )
    .await;
    assert_eq!(status, 403);
    assert!(refused["error_description"]
        .as_str()
        .unwrap()
        .contains("oauth.clients"));

    // Deleted on one replica: its tokens are inactive on both.
    let (status, _) = admin(other_admin, "DELETE", "/admin/clients/svc", None).await;
    assert_eq!(status, 204);
    for host in [&first, other] {
        assert_eq!(host.introspect(&token).await["active"], false);
    }
    first
        .request_token(("svc", new_secret), None)
        .await
        .assert_error(401, "invalid_client");
    assert_eq!(
        admin(&first_admin, "GET", "/admin/clients/svc", None)
            .await
            .0,
        404
    );
}

/// Bad metadata is the RFC 7591 error and writes nothing; the admin API asks for its key.
#[tokio::test]
async fn bad_metadata_is_refused_and_the_api_asks_for_the_admin_key() {
    let (_host, base) = replica();
    if admin(&base, "GET", "/admin/clients", None).await.0 == 404 {
        println!("skipped: the guest has no client admin API");
        return;
    }
    let (status, error) = admin(
        &base,
        "POST",
        "/admin/clients",
        Some(json!({"client_id": "bad", "redirect_uris": ["http://app.example/cb"]})),
    )
    .await;
    assert_eq!(
        (status, error["error"].as_str()),
        (400, Some("invalid_redirect_uri"))
    );
    assert_eq!(admin(&base, "GET", "/admin/clients/bad", None).await.0, 404);
    let anonymous = http()
        .get(format!("{base}/admin/clients"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}
