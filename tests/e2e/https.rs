//! HTTPS on the listener, with certificates made by openssl for the test: TLS 1.2 and 1.3,
//! HTTP/2 and HTTP/1.1, and client certificates (mTLS) required or asked of resource
//! servers only, and self-signed ones (RFC 8705) taken only when asked.

use crate::h2;
use crate::harness::*;
use crate::redis::Certs;
use reqwest::tls::Version;
use reqwest::{Certificate, Client, ClientBuilder, Identity};

fn https_host(certs: &Certs, tls_extra: &str) -> Host {
    let tls = format!(
        "  tls:\n    enabled: true\n    cert_file: {}\n    key_file: {}\n    client_ca_file: {}\n{tls_extra}",
        certs.path("server.pem").display(),
        certs.path("server.key").display(),
        certs.path("ca.pem").display(),
    );
    let host = Host::with_config(&config(&default_guest(), &tls));
    assert!(host.base.starts_with("https://"), "{}", host.base);
    host
}

/// A client trusting the test CA only, optionally with the test client certificate.
fn client(certs: &Certs, with_cert: bool) -> ClientBuilder {
    client_as(certs, with_cert.then_some("client"))
}

/// A client trusting the test CA only, presenting the certificate `identity` (`client`,
/// which the CA issued; `other-ca`, self-signed), if any.
fn client_as(certs: &Certs, identity: Option<&str>) -> ClientBuilder {
    let ca = Certificate::from_pem(&std::fs::read(certs.path("ca.pem")).unwrap()).unwrap();
    let mut builder = Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca);
    if let Some(name) = identity {
        let mut pem = std::fs::read(certs.path(&format!("{name}.pem"))).unwrap();
        pem.extend(std::fs::read(certs.path(&format!("{name}.key"))).unwrap());
        builder = builder.identity(Identity::from_pem(&pem).unwrap());
    }
    builder
}

async fn token_over(host: &Host, http: &Client) -> reqwest::Response {
    http.post(host.url("/api/v1/oauth/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Authorization", basic_header(DEMO_ID, DEMO_SECRET))
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("request over TLS")
}

/// `token` introspected by the demo client over `http`.
async fn introspect_over(host: &Host, http: &Client, token: &str) -> reqwest::Response {
    http.post(host.url("/api/v1/oauth/introspect"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Authorization", basic_header(DEMO_ID, DEMO_SECRET))
        .body(form_encode(&[("token", token)]))
        .send()
        .await
        .expect("request over TLS")
}

#[tokio::test]
async fn https_serves_http2_and_http1_over_tls_1_3_and_1_2() {
    let certs = Certs::generate();
    let host = https_host(&certs, "");
    let h2 = client(&certs, false).build().unwrap();
    let reply = token_over(&host, &h2).await;
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.version(), reqwest::Version::HTTP_2, "ALPN picks h2");
    let token: serde_json::Value = reply.json().await.unwrap();
    assert!(token["access_token"].as_str().is_some());

    let h1_tls12 = client(&certs, false)
        .http1_only()
        .min_tls_version(Version::TLS_1_2)
        .max_tls_version(Version::TLS_1_2)
        .build()
        .unwrap();
    let reply = token_over(&host, &h1_tls12).await;
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.version(), reqwest::Version::HTTP_11);

    // Plain HTTP to the TLS port gets no answer.
    let plain = reqwest::get(format!("http://{}/health/live", host.addr)).await;
    assert!(plain.is_err(), "{plain:?}");
}

#[tokio::test]
async fn required_client_certificates_shut_out_clients_without_one() {
    let certs = Certs::generate();
    let host = https_host(&certs, "    client_auth: required\n");
    let without = client(&certs, false).build().unwrap();
    let refused = without.get(host.url("/health/live")).send().await;
    assert!(refused.is_err(), "{refused:?}");
    let with = client(&certs, true).build().unwrap();
    assert_eq!(token_over(&host, &with).await.status(), 200);
}

#[tokio::test]
async fn introspection_can_be_kept_for_resource_servers_with_certificates() {
    let certs = Certs::generate();
    let host = https_host(
        &certs,
        "    client_auth: optional\n    introspect_requires_client_cert: true\n",
    );
    let oauth_client = client(&certs, false).build().unwrap();
    let reply = token_over(&host, &oauth_client).await;
    assert_eq!(reply.status(), 200, "token clients need no certificate");
    let token = reply.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = introspect_over(&host, &oauth_client, &token).await;
    assert_eq!(refused.status(), 401);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    let resource_server = client(&certs, true).build().unwrap();
    let reply = introspect_over(&host, &resource_server, &token).await;
    assert_eq!(reply.status(), 200);
    let body: serde_json::Value = reply.json().await.unwrap();
    assert_eq!(body["active"], true);
}

/// RFC 8705 section 2.2's certificates: one that chains to no CA passes the handshake only
/// with `self_signed_client_certs`, and even then never for one the CA issued: the route
/// kept for certificates that chain (introspection here) still refuses it.
#[tokio::test]
async fn a_self_signed_certificate_is_taken_only_when_asked_and_never_as_a_chained_one() {
    let certs = Certs::generate();
    let gated = "    client_auth: optional\n    introspect_requires_client_cert: true\n";
    let self_signed = || client_as(&certs, Some("other-ca")).build().unwrap();

    let host = https_host(&certs, gated);
    let refused = self_signed().get(host.url("/health/live")).send().await;
    assert!(refused.is_err(), "{refused:?}");
    drop(host);

    let host = https_host(
        &certs,
        &format!("{gated}    self_signed_client_certs: true\n"),
    );
    let reply = token_over(&host, &self_signed()).await;
    assert_eq!(reply.status(), 200, "the handshake took it");
    let token = reply.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refused = introspect_over(&host, &self_signed(), &token).await;
    assert_eq!(refused.status(), 401);
    let chained = client(&certs, true).build().unwrap();
    assert_eq!(introspect_over(&host, &chained, &token).await.status(), 200);
}

#[test]
fn a_bad_certificate_file_is_a_start_error_naming_the_key() {
    let certs = Certs::generate();
    let dir = scratch_dir();
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let tls = format!(
        "  tls:\n    enabled: true\n    cert_file: {}\n    key_file: {}\n",
        empty.display(),
        certs.path("server.key").display(),
    );
    let stderr = start_error(&config(&default_guest(), &tls));
    assert!(
        stderr.contains("server.tls.cert_file") && stderr.contains("empty.pem"),
        "{stderr}"
    );
}

/// Over TLS too, a request head is told by its HTTP/2 frames: a head left
/// unfinished after the connection's first request is cut at the read timeout (not kept for
/// the idle timeout), and an idle connection closes with a GOAWAY.
#[tokio::test]
async fn over_tls_an_unfinished_h2_head_is_cut_at_the_read_timeout_and_idle_ends_with_goaway() {
    let certs = Certs::generate();
    let host = |timeouts: &str| {
        let tls = format!(
            "{timeouts}  tls:\n    enabled: true\n    cert_file: {}\n    key_file: {}\n",
            certs.path("server.pem").display(),
            certs.path("server.key").display(),
        );
        Host::with_config(&config(&default_guest(), &tls))
    };
    let patient = host("  read_timeout: 300ms\n  idle_timeout: 60s\n");
    let brief = host("  read_timeout: 300ms\n  idle_timeout: 1s\n");
    let (patient, brief, ca) = (
        patient.addr.clone(),
        brief.addr.clone(),
        certs.path("ca.pem"),
    );
    let (stalled, idle_frames) = tokio::task::spawn_blocking(move || {
        let mut client = h2::Client::connect(h2::tls(&patient, &ca));
        client.get(1, true);
        client.response(1);
        client.get(3, false);
        let start = std::time::Instant::now();
        // Our reads give up after 20 s; the server's idle timeout is 60 s.
        while client.next().is_some() {}
        let stalled = start.elapsed();

        let mut client = h2::Client::connect(h2::tls(&brief, &ca));
        client.get(1, true);
        client.response(1);
        let mut kinds = Vec::new();
        while let Some(frame) = client.next() {
            kinds.push(frame.kind);
        }
        (stalled, kinds)
    })
    .await
    .unwrap();
    assert!(
        stalled < std::time::Duration::from_secs(15),
        "the unfinished head was kept {stalled:?}"
    );
    assert!(idle_frames.contains(&h2::GOAWAY), "{idle_frames:?}");
}
