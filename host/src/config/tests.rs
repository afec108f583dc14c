use super::*;
use crate::contract::settings;
use crate::store::RateLimit;
use sha2::{Digest, Sha256};
use std::time::Duration;

const MINIMAL: &str = "
guest:
  path: guest.wasm
oauth:
  issuer: http://127.0.0.1:8080
  clients:
    - client_id: demo
      client_secret: ${SECRET}
      scopes: [read, write]
      default_scopes: [read]
";

fn env(name: &str) -> Option<String> {
    match name {
        "SECRET" => Some("a-secret-of-enough-length".into()),
        "PORT" => Some("9090".into()),
        "TRICKY" => Some("pa: ss # word".into()),
        _ => None,
    }
}

fn parse_str(text: &str) -> Result<Loaded, ConfigError> {
    parse(Path::new("conf/test.yaml"), text, &env)
}

fn error(text: &str) -> String {
    parse_str(text).unwrap_err().to_string()
}

#[test]
fn a_minimal_file_gets_safe_defaults() {
    let c = parse_str(MINIMAL).unwrap();
    assert_eq!(c.server.addr, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.server.max_body_size, 65536);
    assert!(matches!(
        c.store,
        Store::Memory {
            max_entries: 1_000_000
        }
    ));
    assert_eq!(
        c.guest.path,
        Path::new("conf/guest.wasm"),
        "relative to the config file"
    );
    let demo = &c.oauth.clients["demo"];
    assert_eq!(
        demo.record.secret_sha256,
        Sha256::digest(b"a-secret-of-enough-length").to_vec()
    );
    assert_eq!(demo.record.access_token_ttl, 3600);
    assert_eq!(c.oauth.scopes_supported, ["read", "write"]);
    assert!(c.server.tls.is_none());
    assert_eq!(c.guest.fuel, None);
    assert_eq!(c.guest.cache_dir, None);
    assert_eq!(c.guest.failure_policy.action, FailureAction::KeepServing);
}

#[test]
fn https_settings_are_checked_together() {
    let with = |tls: &str| format!("server:\n  tls:\n{tls}{MINIMAL}");
    let e = error(&with("    enabled: true\n    cert_file: c.pem\n"));
    assert!(e.contains("server.tls.key_file: is required"), "{e}");
    let e = error(&with(
        "    enabled: true\n    cert_file: c.pem\n    key_file: k.pem\n    client_auth: required\n",
    ));
    assert!(e.contains("server.tls.client_ca_file"), "{e}");
    let e = error(&with("    introspect_requires_client_cert: true\n"));
    assert!(
        e.contains("server.tls.introspect_requires_client_cert"),
        "TLS off: {e}"
    );
    let e = error(&with("    client_auth: sometimes\n"));
    assert!(e.contains("server.tls.client_auth"), "{e}");
    let c = parse_str(&with(
        "    enabled: true\n    cert_file: c.pem\n    key_file: k.pem\n",
    ))
    .unwrap();
    let tls = c.server.tls.expect("enabled");
    assert_eq!(tls.cert_file, Path::new("conf/c.pem"));
    assert!(tls.client_certs.is_none());
}

#[test]
fn guest_limits_and_policy_are_checked() {
    let e = error(&MINIMAL.replace("guest:\n", "guest:\n  fuel: 0\n"));
    assert!(e.contains("guest.fuel"), "{e}");
    let e = error(&MINIMAL.replace("guest:\n", "guest:\n  failure_policy:\n    action: panic\n"));
    assert!(e.contains("guest.failure_policy.action"), "{e}");
    let c = parse_str(&MINIMAL.replace(
            "guest:\n",
            "guest:\n  cache_dir: cache\n  failure_policy:\n    consecutive: 3\n    action: roll_back\n",
        ))
        .unwrap();
    assert_eq!(c.guest.cache_dir.as_deref(), Some(Path::new("conf/cache")));
    assert_eq!(c.guest.failure_policy.consecutive, 3);
    assert_eq!(c.guest.failure_policy.action, FailureAction::RollBack);
    assert!(
        c.guest.reuse.is_none(),
        "a fresh instance per request by default"
    );
    let reuse = |value: &str| MINIMAL.replace("guest:\n", &format!("guest:\n  reuse: {value}\n"));
    let c = parse_str(&reuse("{requests: 100, max_age: 30s}")).unwrap();
    let kept = c.guest.reuse.unwrap();
    assert_eq!(
        (kept.requests, kept.max_age),
        (100, Duration::from_secs(30))
    );
    for (value, key) in [
        ("{requests: 1, max_age: 30s}", "guest.reuse.requests"),
        ("{requests: 10, max_age: 2h}", "guest.reuse.max_age"),
        ("{requests: 10}", "max_age"),
    ] {
        let e = error(&reuse(value));
        assert!(e.contains(key), "{value}: {e}");
    }
}

#[test]
fn rate_limits_default_for_the_service_and_may_be_set_per_client() {
    let c = parse_str(MINIMAL).unwrap();
    let default = RateLimit {
        interval: Duration::from_millis(50),
        burst: 40,
    };
    assert_eq!(c.oauth.clients["demo"].rate_limit, Some(default));
    let c = parse_str(&MINIMAL.replace(
        "      default_scopes: [read]\n",
        "      default_scopes: [read]\n      rate_limit: {requests: 100, per: 1m, burst: 5}\n",
    ))
    .unwrap();
    let demo = &c.oauth.clients["demo"];
    let limit = demo.rate_limit.unwrap();
    assert_eq!(limit.interval, Duration::from_millis(600));
    assert_eq!(limit.burst, 5);
    assert_eq!(
        demo.rate_limit_key,
        format!(
            "oauth:rate_limit:{{{}}}",
            hex::encode(Sha256::digest(b"demo"))
        )
    );
    let e = error(&MINIMAL.replace(
        "  clients:\n",
        "  rate_limit: {requests: 0, burst: 1}\n  clients:\n",
    ));
    assert!(
        e.contains("oauth.rate_limit: requests, per and burst"),
        "{e}"
    );
    let e = error(&MINIMAL.replace(
        "      default_scopes: [read]\n",
        "      default_scopes: [read]\n      rate_limit: {requests: 2000000, burst: 1}\n",
    ));
    assert!(e.contains("oauth.clients[0].rate_limit"), "{e}");
    let c = parse_str(&MINIMAL.replace(
        "      default_scopes: [read]\n",
        "      default_scopes: [read]\n      rate_limit: unlimited\n",
    ))
    .unwrap();
    assert_eq!(c.oauth.clients["demo"].rate_limit, None);
    let e = error(&MINIMAL.replace(
        "      default_scopes: [read]\n",
        "      default_scopes: [read]\n      rate_limit: endless\n",
    ));
    assert!(e.contains("oauth.clients[0].rate_limit"), "{e}");
}

#[test]
fn the_embedded_store_is_capped_by_default() {
    let e = error(&format!("tokenginx:\n  max_entries: 0\n{MINIMAL}"));
    assert!(e.contains("tokenginx.max_entries"), "{e}");
}

#[test]
fn the_management_listener_is_optional_and_apart_from_the_public_one() {
    let c = parse_str(MINIMAL).unwrap();
    assert_eq!(
        c.metrics.management, None,
        "metrics share the public port by default"
    );
    let e = error(&format!("metrics:\n  port: 8080\n{MINIMAL}"));
    assert!(e.contains("metrics.port: must differ"), "{e}");
    let e = error(&format!(
        "metrics:\n  host: everywhere\n  port: 9090\n{MINIMAL}"
    ));
    assert!(e.contains("metrics.host"), "{e}");
    let c = parse_str(&format!(
        "metrics:\n  host: 0.0.0.0\n  port: 9090\n{MINIMAL}"
    ))
    .unwrap();
    assert_eq!(c.metrics.management, Some("0.0.0.0:9090".parse().unwrap()));
    assert_eq!(c.metrics.path.as_deref(), Some("/metrics"));
}

#[test]
fn unknown_keys_are_named() {
    let e = error(&format!("server:\n  prot: 1\n{MINIMAL}"));
    assert!(
        e.starts_with("conf/test.yaml: server.prot: unknown field `prot`"),
        "{e}"
    );
}

#[test]
fn wrong_types_name_the_key() {
    let e = error(&format!("server:\n  read_timeout: soon\n{MINIMAL}"));
    assert!(
        e.starts_with("conf/test.yaml: server.read_timeout: \"soon\" is not a duration"),
        "{e}"
    );
}

#[test]
fn a_whole_variable_becomes_a_number_where_one_is_expected() {
    let c = parse_str(&format!("server:\n  port: ${{PORT}}\n{MINIMAL}")).unwrap();
    assert_eq!(c.server.addr.port(), 9090);
}

#[test]
fn variables_cannot_change_the_document_structure() {
    let c = parse_str(&format!(
            "tokenginx:\n  mode: standalone\n  addrs: [127.0.0.1:6379]\n  password: ${{TRICKY}}\n{MINIMAL}"
        ))
        .unwrap();
    let Store::Redis(redis) = c.store else {
        panic!("a Redis store")
    };
    assert_eq!(redis.password.as_deref(), Some("pa: ss # word"));
}

#[test]
fn an_unset_variable_is_an_error_naming_it_and_the_key() {
    let e = error(&MINIMAL.replace("${SECRET}", "${MISSING}"));
    assert_eq!(
        e,
        "conf/test.yaml: oauth.clients[0].client_secret: environment variable MISSING is not set"
    );
}

#[test]
fn a_default_applies_when_the_variable_is_unset() {
    let c = parse_str(&MINIMAL.replace("${SECRET}", "${MISSING:-another-long-secret}")).unwrap();
    assert_eq!(
        c.oauth.clients["demo"].record.secret_sha256,
        Sha256::digest(b"another-long-secret").to_vec()
    );
}

#[test]
fn a_registration_is_passed_on_as_written_for_the_guest_to_check() {
    // Short secrets, foreign default scopes, public clients with secrets: the guest's
    // rules (`server.check-client`), checked at load (tests/e2e/guest_swap.rs).
    let short = parse_str(&MINIMAL.replace("${SECRET}", "short")).unwrap();
    let demo = &short.oauth.clients["demo"].configured;
    assert_eq!((demo.has_secret, demo.secret_length), (true, Some(5)));
    assert_eq!(demo.grant_types, None);
    let e = error(&MINIMAL.replace(
        "${SECRET}",
        &format!(
            "s3cret-s3cret-s3cret\n      client_secret_sha256: {}",
            "ab".repeat(32)
        ),
    ));
    assert!(
        e.contains("oauth.clients[0].client_secret: set one of client_secret and client_secret_sha256, not both"),
        "{e}"
    );
}

#[test]
fn a_client_id_registered_twice_is_refused() {
    let twice = format!("{MINIMAL}    - client_id: demo\n      client_secret: another-long-secret\n      scopes: [read]\n");
    assert!(error(&twice).contains("oauth.clients[1].client_id: \"demo\" is registered twice"));
}

#[test]
fn the_issuer_must_be_a_clean_url() {
    for issuer in ["127.0.0.1:8080", "http://x/", "http://x?a=b"] {
        let e = error(&MINIMAL.replace("http://127.0.0.1:8080", issuer));
        assert!(e.contains("oauth.issuer"), "{e}");
    }
}

/// The MINIMAL file with a login app and `client` appended to its clients.
fn with_flow(client: &str, admin: &str) -> String {
    format!(
            "{}  login_url: http://127.0.0.1:3000/login\n  consent_url: http://127.0.0.1:3000/consent\n{admin}",
            MINIMAL.replace("  clients:\n", &format!("  clients:\n{client}"))
        )
}

const WEB: &str = "    - client_id: web\n      client_secret: web-secret-0123456789\n      scopes: [read]\n      grant_types: [\"urn:example:grant\"]\n      redirect_uris: [https://app.example/cb, http://127.0.0.1:5555/cb]\n";

#[test]
fn a_login_app_turns_on_the_admin_listener_on_loopback() {
    let c = parse_str(&with_flow(WEB, "")).unwrap();
    let flow = c.oauth.flow.expect("a login flow");
    assert_eq!(flow.authorization_code_ttl, 60);
    let admin = c.admin.expect("an admin listener");
    assert_eq!(admin.addr, "127.0.0.1:4445".parse().unwrap());
    assert!(admin.api_key_sha256.is_none());
    let web = &c.oauth.clients["web"].registration;
    // Passed on as written: the default method is the guest's (client_rules.rs).
    assert_eq!(web.token_endpoint_auth_method, None);
    assert_eq!(web.redirect_uris.len(), 2);
    let minimal = parse_str(MINIMAL).unwrap();
    assert!(minimal.admin.is_none(), "no login app, no admin API");
    // No client can get a signed token, and no client can be registered at runtime.
    assert!(minimal.keys.signing.is_none());
}

#[test]
fn dynamic_registration_is_off_unless_open_or_with_a_token_and_its_keys_are_checked() {
    let with = |section: &str| format!("{MINIMAL}  registration:\n{section}");
    let off = parse_str(&with("    open: false\n")).unwrap();
    assert!(off.oauth.registration.is_none());
    let digest = "ab".repeat(32);
    let on = parse_str(&with(&format!(
        "    initial_access_tokens_sha256: [{digest}]\n    max_clients: 32\n"
    )))
    .unwrap();
    let (policy, limit) = on.oauth.registration.expect("on");
    assert_eq!((policy.open, policy.max_clients), (false, 32));
    assert_eq!(policy.initial_access_tokens_sha256, [vec![0xab; 32]]);
    assert!(limit.is_some(), "10 an hour by default");
    let e = error(&with("    open: true\n    max_clients: 100\n"));
    assert!(
        e.contains("oauth.registration.max_clients") && e.contains("16"),
        "{e}"
    );
    let e = error(&with("    open: true\n    allowed_scopes: [\"a b\"]\n"));
    assert!(e.contains("oauth.registration.allowed_scopes[0]"), "{e}");
    let e = error(&with("    initial_access_tokens_sha256: [nothex]\n"));
    assert!(
        e.contains("oauth.registration.initial_access_tokens_sha256[0]"),
        "{e}"
    );
}

#[test]
fn an_admin_section_alone_turns_on_the_client_api_and_signing_for_its_clients() {
    let c = parse_str(&format!("{MINIMAL}admin:\n  port: 4999\n")).unwrap();
    assert_eq!(c.admin.expect("an admin listener").addr.port(), 4999);
    // A client registered at runtime may ask for ID tokens: the embedded store signs, for
    // as long as `oauth.id_token_ttl`, and the guest is told so.
    let signing = c.keys.signing.expect("signing keys");
    assert_eq!(signing.longest_token.as_secs(), 3600);
    assert_eq!(c.oauth.defaults.signs_up_to, Some(3600));
    assert_eq!(c.oauth.defaults.access_token_ttl, 3600);
}

#[test]
fn the_admin_api_is_refused_off_loopback_without_a_key_or_on_a_shared_port() {
    let e = error(&with_flow(WEB, "admin:\n  host: 0.0.0.0\n"));
    assert!(e.contains("admin.host"), "{e}");
    let key = "admin:\n  host: 0.0.0.0\n  api_key: 0123456789abcdef0123456789abcdef\n";
    assert!(parse_str(&with_flow(WEB, key))
        .unwrap()
        .admin
        .unwrap()
        .api_key_sha256
        .is_some());
    let e = error(&with_flow(WEB, "admin:\n  api_key: short\n"));
    assert!(e.contains("admin.api_key"), "{e}");
    let e = error(&with_flow(WEB, "admin:\n  port: 8080\n"));
    assert!(e.contains("admin.port"), "{e}");
    let e = error(&with_flow(WEB, "admin:\n  tls:\n    cert_file: c.pem\n"));
    assert!(e.contains("admin.tls"), "{e}");
    let e = error(&MINIMAL.replace(
        "  clients:\n",
        "  login_url: http://127.0.0.1:3000/login\n  clients:\n",
    ));
    assert!(e.contains("oauth.consent_url"), "{e}");
}

#[test]
fn refresh_lifetimes_default_to_30_and_90_days_and_are_checked_naming_the_key() {
    let c = parse_str(&with_flow(WEB, "")).unwrap();
    let policy = c.oauth.clients["web"].refresh;
    assert_eq!(policy.refresh_token_ttl, 30 * 86400);
    assert_eq!(policy.grant_max_lifetime, 90 * 86400);
    assert_eq!(policy.reuse_grace_ms, 0, "off unless asked for");
    let own = WEB.replace("      scopes", "      refresh_token_ttl: 1h\n      scopes");
    let c = parse_str(&with_flow(&own, "  refresh_token_reuse_grace: 2s\n")).unwrap();
    assert_eq!(c.oauth.clients["web"].refresh.refresh_token_ttl, 3600);
    assert_eq!(c.oauth.clients["web"].refresh.reuse_grace_ms, 2000);
    for (oauth, client, key) in [
        ("  grant_max_lifetime: 1d\n", WEB, "oauth.refresh_token_ttl"),
        (
            "  grant_max_lifetime: 400d\n",
            WEB,
            "oauth.grant_max_lifetime",
        ),
        (
            "  refresh_token_reuse_grace: 10m\n",
            WEB,
            "oauth.refresh_token_reuse_grace",
        ),
        (
            "",
            own.replace("1h", "100d").as_str(),
            "oauth.clients[0].refresh_token_ttl",
        ),
    ] {
        let e = error(&with_flow(client, oauth));
        assert!(e.contains(key), "{key}: {e}");
    }
}

#[test]
fn the_guest_section_is_read_alone_without_the_clients_variables() {
    let none = |_: &str| None;
    let guest = parse_guest(Path::new("conf/test.yaml"), MINIMAL, &none).unwrap();
    assert_eq!(guest.path, Path::new("conf/guest.wasm"));
    assert!(
        parse(Path::new("conf/test.yaml"), MINIMAL, &none).is_err(),
        "the whole file needs SECRET"
    );
    let bad = MINIMAL.replace(
        "  path: guest.wasm\n",
        "  path: guest.wasm\n  deadline: 0s\n",
    );
    let e = parse_guest(Path::new("conf/test.yaml"), &bad, &none).unwrap_err();
    assert_eq!(
        e.to_string(),
        "conf/test.yaml: guest.deadline: must be greater than zero"
    );
    let e = parse_guest(Path::new("c.yaml"), "oauth: {}\n", &none).unwrap_err();
    assert!(e.to_string().contains("missing field `guest`"), "{e}");
}

#[test]
fn a_redis_store_with_a_login_app_needs_a_keys_secret_of_32_characters() {
    let redis = "tokenginx:\n  mode: standalone\n  addrs: [127.0.0.1:6379]\n";
    let e = error(&format!("{redis}{}", with_flow(WEB, "")));
    assert!(
        e.starts_with("conf/test.yaml: keys.secret: is required on a Redis store"),
        "{e}"
    );
    let short = "keys:\n  secret: too-short\n";
    let e = error(&format!("{redis}{short}{}", with_flow(WEB, "")));
    assert!(
        e.contains("keys.secret: must be at least 32 characters"),
        "{e}"
    );
    let good = "keys:\n  secret: ${SECRET}${SECRET}\n";
    let c = parse_str(&format!("{redis}{good}{}", with_flow(WEB, ""))).unwrap();
    assert_eq!(c.keys.secret.unwrap().len(), 50);
    assert_eq!(c.keys.rotate_after, Duration::from_secs(86400));
    // No login app: nothing to seal yet, nothing required.
    assert!(parse_str(&format!("{redis}{MINIMAL}"))
        .unwrap()
        .keys
        .secret
        .is_none());
    // The embedded store makes one up: its keys need no sharing.
    assert_eq!(
        parse_str(&with_flow(WEB, ""))
            .unwrap()
            .keys
            .secret
            .unwrap()
            .len(),
        32
    );
    let e = error(&format!("keys:\n  rotate_after: 10m\n{MINIMAL}"));
    assert!(e.contains("keys.rotate_after"), "{e}");
}

#[test]
fn the_address_budget_defaults_on_and_trusted_proxies_are_addresses_or_blocks() {
    let c = parse_str(MINIMAL).unwrap();
    assert_eq!(
        c.server.address_rate_limit,
        Some(crate::store::RateLimit {
            interval: Duration::from_millis(50),
            burst: 60
        })
    );
    let proxies = "server:\n  trusted_proxies: [10.0.0.0/8, 192.0.2.1, \"2001:db8::/32\"]\n  address_rate_limit: unlimited\n";
    let c = parse_str(&format!("{proxies}{MINIMAL}")).unwrap();
    assert_eq!(c.server.address_rate_limit, None);
    let proxies = &c.server.trusted_proxies;
    let inside = |ip: &str| proxies.iter().any(|p| p.contains(ip.parse().unwrap()));
    assert!(inside("10.1.2.3") && inside("192.0.2.1") && inside("2001:db8::9"));
    assert!(
        inside("::ffff:10.9.9.9"),
        "an IPv4-mapped address is its IPv4 address"
    );
    assert!(!inside("192.0.2.2") && !inside("11.0.0.1") && !inside("2001:db9::1"));
    for bad in ["10.0.0.0/33", "example.com", "10.0.0/8"] {
        let e = error(&format!(
            "server:\n  trusted_proxies: [\"{bad}\"]\n{MINIMAL}"
        ));
        assert!(e.contains("server.trusted_proxies"), "{bad}: {e}");
    }
}

#[test]
fn missing_sections_are_named() {
    assert!(error("guest:\n  path: x.wasm\n").contains("missing field `oauth`"));
}

#[test]
fn durations_and_sizes_parse_with_units() {
    assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
    assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
    assert_eq!(
        parse_duration("30d").unwrap(),
        Duration::from_secs(30 * 86400)
    );
    assert!(parse_duration("10").is_err());
    assert!(parse_duration("10 s").is_err());
    assert_eq!(parse_byte_size("64KiB").unwrap(), 65536);
    assert_eq!(parse_byte_size("16MiB").unwrap(), 16 << 20);
    assert!(parse_byte_size("lots").is_err());
}

/// A client that asks for signed tokens (JWT access tokens) at `alg`, with `audience`.
fn jwt_client(extra: &str) -> String {
    format!(
        "guest:\n  path: guest.wasm\noauth:\n  issuer: http://127.0.0.1:8080\n  clients:\n    \
         - client_id: api\n      client_secret: ${{SECRET}}\n      scopes: [read]\n      \
         access_token_strategy: jwt\n{extra}"
    )
}

#[test]
fn a_jwt_client_needs_an_audience_and_an_algorithm_the_host_signs_with() {
    let e = error(&jwt_client(""));
    assert!(
        e.starts_with("conf/test.yaml: oauth.clients[0].audience: is required with the JWT"),
        "{e}"
    );
    let audience = "      audience: [https://api.test]\n";
    let c = parse_str(&jwt_client(audience)).unwrap();
    let client = &c.oauth.clients["api"];
    assert_eq!(
        client.tokens.access_token_strategy,
        crate::contract::settings::AccessTokenStrategy::Jwt
    );
    assert_eq!(
        client.tokens.access_token_alg,
        crate::contract::keys::Algorithm::Rs256
    );
    // Signing keys, on the schedule's defaults, for tokens of an hour.
    let schedule = c.keys.signing.unwrap();
    assert_eq!(schedule.longest_token, Duration::from_secs(3600));
    assert_eq!(schedule.rotate_every, Duration::from_secs(30 * 86400));
    let e = error(&jwt_client(&format!(
        "{audience}      access_token_signed_response_alg: HS256\n"
    )));
    assert!(
        e.contains("oauth.clients[0].access_token_signed_response_alg: \"HS256\" is not one of"),
        "{e}"
    );
    let e = error(&jwt_client("      audience: [not a uri]\n"));
    assert!(e.contains("oauth.clients[0].audience[0]"), "{e}");
    // Nothing signed, no signing keys.
    assert!(parse_str(MINIMAL).unwrap().keys.signing.is_none());
}

#[test]
fn a_signing_schedule_keeps_few_keys_and_a_redis_store_needs_a_secret_to_sign() {
    let audience = "      audience: [https://api.test]\n      access_token_ttl: 60s\n";
    let keys = |rotate: &str, ahead: &str| {
        format!(
            "keys:\n  rotate_every: {rotate}\n  publish_ahead: {ahead}\n{}",
            jwt_client(audience)
        )
    };
    assert!(parse_str(&keys("6s", "4s")).is_ok());
    let e = error(&keys("4s", "4s"));
    assert!(
        e.contains("keys.rotate_every: must be longer than keys.publish_ahead"),
        "{e}"
    );
    let e = error(&keys("2s", "1s"));
    assert!(
        e.contains("keys.publish_ahead: must be between 4s and 7d"),
        "{e}"
    );
    // Tokens of 10 minutes, plus a minute of skew, over keys of 10 s: 66 retired keys,
    // the next and the active.
    let e = error(&keys("10s", "4s").replace("access_token_ttl: 60s", "access_token_ttl: 10m"));
    assert!(
        e.contains("keys.rotate_every: 10s would keep 68 keys"),
        "{e}"
    );
    let redis = "tokenginx:\n  mode: standalone\n  addrs: [127.0.0.1:6379]\n";
    let e = error(&format!("{redis}{}", jwt_client(audience)));
    assert!(
        e.contains("keys.secret: is required on a Redis store once a client can get signed tokens"),
        "{e}"
    );
}

#[test]
fn dpop_settings_reach_the_guest_and_nonces_on_redis_need_a_keys_secret() {
    let c = parse_str(MINIMAL).unwrap();
    assert!(!c.oauth.dpop.require_nonce, "nonces are off by default");
    assert!(c.oauth.dpop.bound_clients.is_empty());
    let bound = MINIMAL.replace(
        "      default_scopes: [read]\n",
        "      default_scopes: [read]\n      dpop_bound_access_tokens: true\n  dpop:\n    require_nonce: true\n",
    );
    let c = parse_str(&bound).unwrap();
    assert!(c.oauth.dpop.require_nonce);
    assert_eq!(c.oauth.dpop.bound_clients, ["demo"]);
    let redis = "tokenginx:\n  mode: standalone\n  addrs: [127.0.0.1:6379]\n";
    let e = error(&format!("{redis}{bound}"));
    assert!(
        e.contains(
            "keys.secret: is required on a Redis store once oauth.dpop.require_nonce is set"
        ),
        "{e}"
    );
    let e = error(&bound.replace("require_nonce: true", "require_nonces: true"));
    assert!(
        e.contains("oauth.dpop") && e.contains("require_nonces"),
        "{e}"
    );
}

#[test]
fn a_clients_jwks_is_a_set_of_public_keys_and_client_secret_jwt_keeps_its_secret() {
    let jwks = "      token_endpoint_auth_method: private_key_jwt\n      jwks:\n        keys:\n          - {kty: OKP, crv: Ed25519, x: 11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo}\n";
    let keyed = MINIMAL.replace("      client_secret: ${SECRET}\n", jwks);
    let c = parse_str(&keyed).unwrap();
    let client = &c.oauth.clients["demo"];
    let json: serde_json::Value = serde_json::from_str(client.jwks.as_ref().unwrap()).unwrap();
    assert_eq!(json["keys"][0]["crv"], "Ed25519");
    assert!(client.mac_key.is_none());
    let private = keyed.replace("x: 11qY", "d: AAAA, x: 11qY");
    let e = error(&private);
    assert!(
        e.contains("oauth.clients[0].jwks: keys[0] holds a private key"),
        "{e}"
    );
    let e = error(&keyed.replace("keys:\n          - ", "nokeys:\n          - "));
    assert!(
        e.contains("oauth.clients[0].jwks: must be a JWK set"),
        "{e}"
    );

    let mac = MINIMAL.replace(
        "      client_secret: ${SECRET}\n",
        "      client_secret: ${SECRET}${SECRET}\n      token_endpoint_auth_method: client_secret_jwt\n",
    );
    let c = parse_str(&mac).unwrap();
    let key = c.oauth.clients["demo"].mac_key.clone().unwrap();
    // An HS256 JWS under the secret verifies; another secret's, or another alg, does not.
    let b64 = |bytes: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let jws = |alg: &str, secret: &str| {
        let input = format!(
            "{}.{}",
            b64(format!("{{\"alg\":\"{alg}\"}}").as_bytes()),
            b64(b"{}")
        );
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
        format!(
            "{input}.{}",
            b64(ring::hmac::sign(&key, input.as_bytes()).as_ref())
        )
    };
    let secret = "a-secret-of-enough-lengtha-secret-of-enough-length";
    assert!(crate::keys::external::verify_hs256(
        &key,
        &jws("HS256", secret)
    ));
    assert!(!crate::keys::external::verify_hs256(
        &key,
        &jws("HS256", "another secret")
    ));
    assert!(!crate::keys::external::verify_hs256(
        &key,
        &jws("none", secret)
    ));
    assert!(!crate::keys::external::verify_hs256(&key, "not.a.jws"));
}

#[test]
fn mutual_tls_settings_reach_the_guest_and_are_checked_together() {
    let c = parse_str(MINIMAL).unwrap();
    assert!(
        !c.oauth.mtls.chained && !c.oauth.mtls.self_signed,
        "off by default"
    );
    let tls = |extra: &str| {
        format!("server:\n  tls:\n    enabled: true\n    cert_file: c.pem\n    key_file: k.pem\n{extra}{MINIMAL}")
    };
    let e = error(&tls("    self_signed_client_certs: true\n"));
    assert!(
        e.contains("server.tls.self_signed_client_certs: needs client_auth optional or required"),
        "{e}"
    );
    // Self-signed certificates alone need no CA; with a CA both kinds are taken.
    let c = parse_str(&tls(
        "    client_auth: optional\n    self_signed_client_certs: true\n",
    ))
    .unwrap();
    let certs = c
        .server
        .tls
        .as_ref()
        .unwrap()
        .client_certs
        .as_ref()
        .unwrap();
    assert!(certs.ca_file.is_none() && certs.self_signed && !certs.required);
    assert!(!c.oauth.mtls.chained && c.oauth.mtls.self_signed);
    let c = parse_str(&tls(
        "    client_auth: optional\n    client_ca_file: ca.pem\n    self_signed_client_certs: true\n",
    ))
    .unwrap();
    assert!(c.oauth.mtls.chained && c.oauth.mtls.self_signed);
    let e = error(&tls(
        "    client_auth: optional\n    self_signed_client_certs: true\n    introspect_requires_client_cert: true\n",
    ));
    assert!(
        e.contains("server.tls.introspect_requires_client_cert") && e.contains("client_ca_file"),
        "a self-signed certificate proves nothing to introspection: {e}"
    );

    let named = MINIMAL.replace(
        "      client_secret: ${SECRET}\n",
        "      token_endpoint_auth_method: tls_client_auth\n      tls_client_auth_san_dns: client.example.com\n      tls_client_certificate_bound_access_tokens: true\n",
    );
    let c = parse_str(&named).unwrap();
    let mtls = c.oauth.clients["demo"].mtls.clone().unwrap();
    assert!(mtls.bound_access_tokens);
    assert!(matches!(
        mtls.certificate_name,
        Some(settings::CertificateName::SanDns(dns)) if dns == "client.example.com"
    ));
    let e = error(&named.replace(
        "      tls_client_certificate_bound_access_tokens",
        "      tls_client_auth_subject_dn: CN=client\n      tls_client_certificate_bound_access_tokens",
    ));
    assert!(
        e.contains(
            "oauth.clients[0].tls_client_auth_san_dns: set one tls_client_auth_* name, not two"
        ),
        "{e}"
    );
    assert!(parse_str(MINIMAL).unwrap().oauth.clients["demo"]
        .mtls
        .is_none());
}
