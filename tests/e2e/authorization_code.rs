//! The authorization code flow over real HTTP: a browser's requests to the authorization
//! endpoint (cookies kept by hand, redirects read, not followed), a login app's calls to the
//! admin API on its own listener, and the client at the token endpoint.

use crate::harness::*;
use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, COOKIE, LOCATION, SET_COOKIE};
use sha2::{Digest, Sha256};
use std::time::Duration;

pub(crate) const WEB_ID: &str = "web";
pub(crate) const WEB_SECRET: &str = "web-secret-0123456789";
pub(crate) const WEB_REDIRECT: &str = "https://app.example/callback";
/// A second web app, to show that one client's tokens are not another's.
pub(crate) const OTHER_WEB_ID: &str = "other-web";
pub(crate) const ADMIN_KEY: &str = "admin-key-0123456789-0123456789-0123";
pub(crate) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// A host with a login app configured, the web client, and an admin API key.
pub(crate) fn flow_host() -> (Host, String) {
    flow_host_with("", &format!("admin:\n  port: 0\n  api_key: {ADMIN_KEY}\n"))
}

/// [`flow_host`] with `oauth_extra` in the `oauth` section and `admin` as the admin
/// section: the host and the admin API's base URL.
pub(crate) fn flow_host_with(oauth_extra: &str, admin: &str) -> (Host, String) {
    flow_host_on(config(&default_guest(), ""), oauth_extra, admin)
}

/// [`flow_host_with`] on the host config `base` (the test clients and a store).
pub(crate) fn flow_host_on(base: String, oauth_extra: &str, admin: &str) -> (Host, String) {
    let text = base
        .replace(
            "  issuer: http://issuer.test\n",
            &format!("  issuer: http://issuer.test\n  login_url: http://127.0.0.1:1/login\n  consent_url: http://127.0.0.1:1/consent\n{oauth_extra}"),
        )
        .replace(
            "log:\n",
            &format!(
                "    - client_id: {WEB_ID}\n      client_secret: {WEB_SECRET}\n      scopes: [read, write, offline_access]\n      grant_types: [authorization_code, refresh_token]\n      redirect_uris: [{WEB_REDIRECT}]\n      client_name: Web app\n    - client_id: {OTHER_WEB_ID}\n      client_secret: {WEB_SECRET}\n      scopes: [read, offline_access]\n      grant_types: [authorization_code, refresh_token]\n      redirect_uris: [{WEB_REDIRECT}]\n{admin}log:\n"
            ),
        );
    let host = Host::with_config(&text);
    let line = host.wait_for_log("admin API listening", Duration::from_secs(10));
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    let scheme = if line["mtls"] == true {
        "https"
    } else {
        "http"
    };
    let admin = format!("{scheme}://{}", line["addr"].as_str().unwrap());
    (host, admin)
}

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of query parameter `name` in `url`.
pub(crate) fn query_param(url: &str, name: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).unwrap();
    parsed
        .query_pairs()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

/// A browser: the cookies the service set, sent back on each request. The issuer's name
/// (`http://issuer.test`) stands for the host's address, as DNS would make it.
struct Browser {
    base: String,
    cookies: Vec<String>,
}

impl Browser {
    async fn get(&mut self, url: &str) -> reqwest::Response {
        let url = url.replace("http://issuer.test", &self.base);
        let mut request = http().get(url);
        if !self.cookies.is_empty() {
            request = request.header(COOKIE, self.cookies.join("; "));
        }
        let response = request.send().await.unwrap();
        for value in response.headers().get_all(SET_COOKIE) {
            let pair = value
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            let name = pair.split('=').next().unwrap().to_owned();
            self.cookies.retain(|c| !c.starts_with(&format!("{name}=")));
            self.cookies.push(pair);
        }
        response
    }
}

pub(crate) fn location(response: &reqwest::Response) -> String {
    assert_eq!(response.status(), 302);
    response.headers()[LOCATION].to_str().unwrap().to_owned()
}

pub(crate) async fn admin_put(
    admin: &str,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let response = http()
        .put(format!("{admin}{path}"))
        .header(AUTHORIZATION, format!("Bearer {ADMIN_KEY}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Runs the flow as `alice`, consenting to `read`: the code.
async fn code_for_alice(host: &Host, admin: &str) -> String {
    code_for(host, admin, &["read"]).await
}

/// Runs the flow as `alice` for the web client, asking for `scope` and consenting to all of
/// it: the code.
pub(crate) async fn code_for(host: &Host, admin: &str, scope: &[&str]) -> String {
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER));
    let mut browser = Browser {
        base: host.base.clone(),
        cookies: Vec::new(),
    };
    let start = reqwest::Url::parse_with_params(
        &host.url("/api/v1/oauth/authorize"),
        &[
            ("response_type", "code"),
            ("client_id", WEB_ID),
            ("redirect_uri", WEB_REDIRECT),
            ("scope", &scope.join(" ")),
            ("state", "s1"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let to_login = location(&browser.get(start.as_str()).await);
    assert!(
        to_login.starts_with("http://127.0.0.1:1/login?login_challenge="),
        "{to_login}"
    );
    let login_challenge = query_param(&to_login, "login_challenge").unwrap();

    let request: serde_json::Value = http()
        .get(format!(
            "{admin}/admin/oauth2/auth/requests/login?login_challenge={login_challenge}"
        ))
        .header(AUTHORIZATION, format!("Bearer {ADMIN_KEY}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(request["client"]["client_name"], "Web app");
    assert_eq!(request["requested_scope"], serde_json::json!(scope));

    let accepted = admin_put(
        admin,
        &format!("/admin/oauth2/auth/requests/login/accept?login_challenge={login_challenge}"),
        serde_json::json!({ "subject": "alice" }),
    )
    .await;
    let to_consent = location(&browser.get(accepted["redirect_to"].as_str().unwrap()).await);
    let consent_challenge = query_param(&to_consent, "consent_challenge").unwrap();
    let accepted = admin_put(
        admin,
        &format!(
            "/admin/oauth2/auth/requests/consent/accept?consent_challenge={consent_challenge}"
        ),
        serde_json::json!({ "grant_scope": scope, "session": {"access_token": {"team": "blue"}} }),
    )
    .await;
    let back = location(&browser.get(accepted["redirect_to"].as_str().unwrap()).await);
    assert!(back.starts_with(WEB_REDIRECT), "{back}");
    assert_eq!(query_param(&back, "state").as_deref(), Some("s1"));
    assert_eq!(
        query_param(&back, "iss").as_deref(),
        Some("http://issuer.test")
    );
    query_param(&back, "code").unwrap()
}

pub(crate) async fn redeem(host: &Host, code: &str) -> Reply {
    host.post(
        "/api/v1/oauth/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", WEB_REDIRECT),
            ("code_verifier", VERIFIER),
        ],
        Some((WEB_ID, WEB_SECRET)),
    )
    .await
}

#[tokio::test]
async fn a_user_signs_in_through_the_login_app_and_the_client_gets_a_token() {
    let (host, admin) = flow_host();
    let code = code_for_alice(&host, &admin).await;
    let reply = redeem(&host, &code).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    let seen = host.introspect(&token).await;
    assert_eq!(seen["sub"], "alice");
    assert_eq!(seen["client_id"], WEB_ID);
    assert_eq!(seen["scope"], "read");
    redeem(&host, &code)
        .await
        .assert_error(400, "invalid_grant");
    // The Go guide's token counters count tokens, not the flow's challenges and codes.
    let metrics = host.get("/metrics").await.body;
    assert_eq!(
        metric(&metrics, "tokenginx_token_created_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        metric(&metrics, "tokenginx_token_revoked_total", &[]),
        Some(1.0),
        "the replay"
    );
    let count = |name: &str, labels: &[(&str, &str)]| metric(&metrics, name, labels);
    assert_eq!(
        count("tokenginx_authorizations_started_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        count(
            "tokenginx_authorizations_ended_total",
            &[("result", "code")]
        ),
        Some(1.0)
    );
    assert_eq!(
        count("tokenginx_code_redemptions_total", &[("result", "ok")]),
        Some(1.0)
    );
    assert_eq!(
        count(
            "tokenginx_code_redemptions_total",
            &[("result", "replayed")]
        ),
        Some(1.0)
    );

    let metadata = host
        .get("/.well-known/oauth-authorization-server")
        .await
        .json();
    assert_eq!(
        metadata["authorization_endpoint"],
        "http://issuer.test/api/v1/oauth/authorize"
    );
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
}

#[tokio::test]
async fn of_eight_concurrent_redemptions_of_a_code_one_succeeds() {
    let (host, admin) = flow_host();
    let code = code_for_alice(&host, &admin).await;
    let attempts = (0..8).map(|_| redeem(&host, &code));
    let replies = futures_util::future::join_all(attempts).await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        7,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn the_admin_api_needs_its_key_and_is_never_on_the_public_port() {
    let (host, admin) = flow_host();
    let path = "/admin/oauth2/auth/requests/login?login_challenge=x";
    let without = http().get(format!("{admin}{path}")).send().await.unwrap();
    assert_eq!(without.status(), 401);
    let wrong = http()
        .get(format!("{admin}{path}"))
        .header(AUTHORIZATION, "Bearer not-the-key-0123456789-0123456789-01")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let unknown = http()
        .get(format!("{admin}{path}"))
        .header(AUTHORIZATION, format!("Bearer {ADMIN_KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let unknown: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(
        unknown["error_description"], UNKNOWN_CHALLENGE,
        "the guest's answer, so the route was served"
    );
    let public = host.get(path).await;
    assert_eq!(public.status, 404);
    assert_eq!(
        public.json()["error_description"],
        NO_ROUTE,
        "not on the public port"
    );
    let on_admin = http()
        .get(format!("{admin}/api/v1/oauth/authorize"))
        .send()
        .await
        .unwrap();
    assert_eq!(on_admin.status(), 404);
    let on_admin: serde_json::Value = on_admin.json().await.unwrap();
    assert_eq!(
        on_admin["error_description"], NO_ROUTE,
        "the public routes are not on the admin port"
    );
}

/// The guest's answer for a challenge it does not know, and the host's for a path it does
/// not serve: telling them apart shows which one answered.
const UNKNOWN_CHALLENGE: &str = "the challenge is unknown or expired";
const NO_ROUTE: &str = "no such route";

#[tokio::test]
async fn an_expired_code_is_invalid_grant() {
    let (host, admin) = flow_host_with(
        "  authorization_code_ttl: 1s\n",
        &format!("admin:\n  port: 0\n  api_key: {ADMIN_KEY}\n"),
    );
    let code = code_for_alice(&host, &admin).await;
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    redeem(&host, &code)
        .await
        .assert_error(400, "invalid_grant");
    let metrics = host.get("/metrics").await.body;
    assert_eq!(
        metric(
            &metrics,
            "tokenginx_code_redemptions_total",
            &[("result", "invalid_grant")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn with_mtls_the_admin_api_answers_only_clients_with_a_certificate() {
    let certs = crate::redis::Certs::generate();
    let (_host, admin) = flow_host_with(
        "",
        &format!(
            "admin:\n  port: 0\n  tls:\n    cert_file: {}\n    key_file: {}\n    client_ca_file: {}\n",
            certs.path("server.pem").display(),
            certs.path("server.key").display(),
            certs.path("ca.pem").display(),
        ),
    );
    assert!(admin.starts_with("https://"), "{admin}");
    let ca = reqwest::Certificate::from_pem(&std::fs::read(certs.path("ca.pem")).unwrap()).unwrap();
    let client = |with_cert: bool| {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca.clone());
        if with_cert {
            let mut pem = std::fs::read(certs.path("client.pem")).unwrap();
            pem.extend(std::fs::read(certs.path("client.key")).unwrap());
            builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        builder.build().unwrap()
    };
    let url = format!("{admin}/admin/oauth2/auth/requests/login?login_challenge=x");
    assert!(
        client(false).get(&url).send().await.is_err(),
        "no certificate, no connection"
    );
    let reply = client(true)
        .get(&url)
        .send()
        .await
        .expect("with the client certificate");
    assert_eq!(reply.status(), 404);
    let reply: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(
        reply["error_description"], UNKNOWN_CHALLENGE,
        "through to the admin API"
    );
}
