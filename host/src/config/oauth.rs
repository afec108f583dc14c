//! The `oauth` section checked: the issuer, the clients and the login app, as the guest
//! reads them through its `settings` import. Of a client the host checks the shapes (an id,
//! a secret or its digest, scope and grant type syntax, durations, its budget); the rules
//! of a registration are the guest's (`server.check-client`, asked at load).

use super::checked::{bad, check_rate_limit};
use super::raw::*;
use crate::contract::{keys::Algorithm, server, settings};
use crate::keys::sign::{algorithm, MAX_SIGNED_TTL};
use crate::store::RateLimit;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// A registered client: its record as the guest reads it (`settings.find-client`, the
/// secret reduced to its digest), and what the host keeps of it besides.
#[derive(Debug, Clone)]
pub struct Client {
    /// Its place in `oauth.clients`, for messages.
    pub index: usize,
    /// Its registration as configured, for the guest's check (`server.check-client`).
    pub configured: server::ClientConfig,
    pub record: settings::Client,
    /// What the browser flows need of it (`settings.find-registration`).
    pub registration: settings::Registration,
    /// How its grants' refresh tokens live (`settings.find-refresh-policy`).
    pub refresh: settings::RefreshPolicy,
    /// How its tokens are made (`settings.find-token-format`).
    pub tokens: settings::TokenFormat,
    /// None: `unlimited`.
    pub rate_limit: Option<RateLimit>,
    /// The store key of this client's rate-limit bucket, computed once at load
    /// ([`crate::store::rate_limit_key`]).
    pub rate_limit_key: String,
    /// Its public keys (`settings.find-client-jwks`), a JWK set as JSON.
    pub jwks: Option<String>,
    /// With `client_secret_jwt`, its secret as an HMAC key (`keys.verify-client-secret-jwt`):
    /// the one secret the host keeps, in memory only.
    pub mac_key: Option<ring::hmac::Key>,
    /// What it registered for mutual TLS (`settings.find-client-mtls`).
    pub mtls: Option<settings::MtlsClient>,
}

/// The OAuth settings the guest reads through its `settings` import.
#[derive(Debug)]
pub struct OAuthSettings {
    pub issuer: String,
    pub clients: HashMap<String, Client>,
    pub scopes_supported: Vec<String>,
    /// The operator's login and consent app; none without browser flows.
    pub flow: Option<settings::Flow>,
    /// The longest lifetime of a token the host may sign (ID tokens, JWT access tokens);
    /// none when no client can get one (no client with `openid` in its scopes nor the JWT
    /// strategy), and the host needs no signing keys.
    pub longest_signed: Option<Duration>,
    /// The budget of a client that has none of its own (`oauth.rate_limit`): a configured
    /// one's, and any the guest registers at runtime. None: `unlimited`.
    pub rate_limit: Option<RateLimit>,
    /// What a client the guest registers at runtime inherits (`settings.client-defaults`);
    /// `signs_up_to` is set once the keys are checked.
    pub defaults: settings::Inherited,
    /// Dynamic client registration (`settings.dynamic-registration`), and its budget per initial
    /// access token; none: off.
    pub registration: Option<DynamicRegistration>,
    /// DPoP (`settings.dpop`).
    pub dpop: settings::DpopPolicy,
    /// Which client certificates the listener takes (`settings.mtls`), from `server.tls`.
    pub mtls: settings::MtlsPolicy,
}

/// Dynamic client registration as the guest sees it, and the budget of each initial access
/// token (none: `unlimited`).
pub type DynamicRegistration = (settings::RegistrationPolicy, Option<RateLimit>);

impl OAuthSettings {
    /// The clients in the order of `oauth.clients`.
    pub fn clients_in_order(&self) -> Vec<&Client> {
        let mut clients: Vec<&Client> = self.clients.values().collect();
        clients.sort_by_key(|c| c.index);
        clients
    }
}

const MAX_GRANT_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// Hydra caps its `rotation_grace_period` alike: a longer window is a longer replay.
const MAX_REUSE_GRACE: Duration = Duration::from_secs(300);

pub(super) fn check_oauth(oauth: OAuthConfig) -> Result<OAuthSettings, (String, String)> {
    let issuer = oauth.issuer;
    let scheme_ok = issuer.starts_with("https://") || issuer.starts_with("http://");
    if !scheme_ok
        || issuer.ends_with('/')
        || issuer.contains(['?', '#'])
        || issuer.contains(char::is_whitespace)
    {
        return bad(
            "oauth.issuer",
            format!("{issuer:?} must be an http(s) URL without query, fragment or trailing slash"),
        );
    }
    let default_limit =
        check_rate_limit(oauth.rate_limit).map_err(|m| ("oauth.rate_limit".to_owned(), m))?;
    let max_lifetime = oauth.grant_max_lifetime;
    if max_lifetime < Duration::from_secs(1) || max_lifetime > MAX_GRANT_LIFETIME {
        return bad("oauth.grant_max_lifetime", "must be between 1s and 365d");
    }
    // A refresh token outliving its grant would only mislead: the grant ends it anyway.
    let check_refresh_ttl = |key: String, ttl: Duration| {
        if ttl < Duration::from_secs(1) || ttl > max_lifetime {
            return bad(key, "must be between 1s and oauth.grant_max_lifetime");
        }
        Ok(ttl)
    };
    let default_refresh_ttl =
        check_refresh_ttl("oauth.refresh_token_ttl".into(), oauth.refresh_token_ttl)?;
    let grace = oauth.refresh_token_reuse_grace;
    if grace > MAX_REUSE_GRACE {
        return bad(
            "oauth.refresh_token_reuse_grace",
            "must be at most 5m (0s: off)",
        );
    }
    let id_token_ttl = oauth.id_token_ttl;
    if id_token_ttl < Duration::from_secs(1) || id_token_ttl > MAX_SIGNED_TTL {
        return bad("oauth.id_token_ttl", "must be between 1s and 24h");
    }
    let mut longest_signed: Option<Duration> = None;
    let mut clients = HashMap::new();
    let mut all_scopes = BTreeSet::new();
    let mut dpop_bound = Vec::new();
    let default_strategy = oauth.access_token_strategy;
    let registration = match oauth.registration {
        Some(r) => check_registration(r)?,
        None => None,
    };
    for (i, c) in oauth.clients.into_iter().enumerate() {
        let key = move |field: &str| format!("oauth.clients[{i}].{field}");
        if c.client_id.is_empty() || c.client_id.chars().any(char::is_control) {
            return bad(
                key("client_id"),
                "must be non-empty without control characters",
            );
        }
        // Shapes only: which methods, secrets, redirect URIs and lifetimes a client may
        // have is the guest's to say (`server.check-client`, at load).
        let secret_sha256 = match (&c.client_secret, &c.client_secret_sha256) {
            (None, None) => Vec::new(),
            (Some(secret), None) => Sha256::digest(secret.as_bytes()).to_vec(),
            (None, Some(hex_digest)) => {
                let mut digest = [0u8; 32];
                if hex::decode_to_slice(hex_digest, &mut digest).is_err() {
                    return bad(key("client_secret_sha256"), "must be 64 hex digits");
                }
                digest.to_vec()
            }
            (Some(_), Some(_)) => {
                return bad(
                    key("client_secret"),
                    "set one of client_secret and client_secret_sha256, not both",
                )
            }
        };
        for scope in &c.scopes {
            if !tokenginx_syntax::is_scope_token(scope) {
                return bad(
                    key("scopes"),
                    format!("{scope:?} is not a valid scope token (RFC 6749 section 3.3)"),
                );
            }
        }
        // Which grant types the guest serves is the guest's to say: checked when it loads.
        if let Some(malformed) = c
            .grant_types
            .iter()
            .flatten()
            .find(|g| !tokenginx_syntax::is_grant_type(g))
        {
            return bad(
                key("grant_types"),
                format!("{malformed:?} is not a grant type (RFC 6749 appendix A.10)"),
            );
        }
        let rate_limit = match c.rate_limit {
            Some(limit) => check_rate_limit(limit).map_err(|m| (key("rate_limit"), m))?,
            None => default_limit,
        };
        let refresh_token_ttl = match c.refresh_token_ttl {
            Some(ttl) => check_refresh_ttl(key("refresh_token_ttl"), ttl)?,
            None => default_refresh_ttl,
        };
        let tokens = check_token_format(&c, oauth.access_token_strategy, id_token_ttl, &key)?;
        let jwks = match &c.jwks {
            Some(jwks) => Some(check_jwks(jwks).map_err(|m| (key("jwks"), m))?),
            None => None,
        };
        let mac_key = match (c.token_endpoint_auth_method.as_deref(), &c.client_secret) {
            (Some(tokenginx_syntax::registration::CLIENT_SECRET_JWT), Some(secret)) => Some(
                ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes()),
            ),
            _ => None,
        };
        if c.scopes.iter().any(|s| s == "openid") {
            longest_signed = longest_signed.max(Some(id_token_ttl));
        }
        if tokens.access_token_strategy == settings::AccessTokenStrategy::Jwt {
            longest_signed = longest_signed.max(Some(c.access_token_ttl));
        }
        all_scopes.extend(c.scopes.iter().cloned());
        if c.dpop_bound_access_tokens {
            dpop_bound.push(c.client_id.clone());
        }
        let mtls = check_mtls(&c).map_err(|(field, m)| (key(field), m))?;
        let configured = server::ClientConfig {
            client_id: c.client_id.clone(),
            client_name: c.client_name.clone(),
            token_endpoint_auth_method: c.token_endpoint_auth_method.clone(),
            has_secret: c.client_secret.is_some() || c.client_secret_sha256.is_some(),
            secret_length: c.client_secret.as_ref().map(|s| s.chars().count() as u32),
            scopes: c.scopes.clone(),
            default_scopes: c.default_scopes.clone(),
            grant_types: c.grant_types.clone(),
            redirect_uris: c.redirect_uris.clone(),
            access_token_ttl: c.access_token_ttl.as_secs(),
            refresh_token_ttl: refresh_token_ttl.as_secs(),
            grant_max_lifetime: max_lifetime.as_secs(),
        };
        let client = Client {
            index: i,
            configured,
            refresh: settings::RefreshPolicy {
                refresh_token_ttl: refresh_token_ttl.as_secs(),
                grant_max_lifetime: max_lifetime.as_secs(),
                reuse_grace_ms: grace.as_millis() as u64,
            },
            tokens,
            rate_limit,
            rate_limit_key: crate::store::rate_limit_key(&c.client_id),
            jwks,
            mac_key,
            mtls,
            registration: settings::Registration {
                client_name: c.client_name,
                redirect_uris: c.redirect_uris,
                token_endpoint_auth_method: c.token_endpoint_auth_method.clone(),
                skip_consent: c.skip_consent,
            },
            record: settings::Client {
                client_id: c.client_id.clone(),
                secret_sha256,
                scopes: c.scopes,
                default_scopes: c.default_scopes,
                grant_types: c.grant_types,
                access_token_ttl: c.access_token_ttl.as_secs(),
            },
        };
        if clients.insert(c.client_id.clone(), client).is_some() {
            return bad(
                key("client_id"),
                format!("{:?} is registered twice", c.client_id),
            );
        }
    }
    let flow = match (oauth.login_url, oauth.consent_url) {
        (None, None) => None,
        (Some(login_url), Some(consent_url)) => {
            for (key, url) in [
                ("oauth.login_url", &login_url),
                ("oauth.consent_url", &consent_url),
            ] {
                check_app_url(url).map_err(|m| (key.to_owned(), m))?;
            }
            let ttl = oauth.authorization_code_ttl;
            if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(600) {
                return bad("oauth.authorization_code_ttl", "must be between 1s and 10m");
            }
            Some(settings::Flow {
                login_url,
                consent_url,
                authorization_code_ttl: ttl.as_secs(),
            })
        }
        (Some(_), None) => return bad("oauth.consent_url", "is required with login_url"),
        (None, Some(_)) => return bad("oauth.login_url", "is required with consent_url"),
    };
    Ok(OAuthSettings {
        issuer,
        clients,
        scopes_supported: all_scopes.into_iter().collect(),
        flow,
        longest_signed,
        rate_limit: default_limit,
        registration,
        dpop: settings::DpopPolicy {
            require_nonce: oauth.dpop.require_nonce,
            bound_clients: dpop_bound,
        },
        mtls: settings::MtlsPolicy {
            chained: false,
            self_signed: false,
        },
        defaults: settings::Inherited {
            access_token_ttl: super::raw::default_token_ttl().as_secs(),
            refresh: settings::RefreshPolicy {
                refresh_token_ttl: default_refresh_ttl.as_secs(),
                grant_max_lifetime: max_lifetime.as_secs(),
                reuse_grace_ms: grace.as_millis() as u64,
            },
            access_token_strategy: strategy(default_strategy),
            id_token_ttl: id_token_ttl.as_secs(),
            signs_up_to: None,
        },
    })
}

/// What client `c` registered for mutual TLS (RFC 8705), or the field at fault and why:
/// at most one name of its certificate (section 2.1.2). What the names must be is the
/// guest's to say.
fn check_mtls(c: &ClientConfig) -> Result<Option<settings::MtlsClient>, (&'static str, String)> {
    use settings::CertificateName as Name;
    use tokenginx_syntax::registration::CERTIFICATE_NAMES;
    let names: [(&Option<String>, fn(String) -> Name); 5] = [
        (&c.tls_client_auth_subject_dn, Name::SubjectDn),
        (&c.tls_client_auth_san_dns, Name::SanDns),
        (&c.tls_client_auth_san_uri, Name::SanUri),
        (&c.tls_client_auth_san_ip, Name::SanIp),
        (&c.tls_client_auth_san_email, Name::SanEmail),
    ];
    let mut certificate_name = None;
    for (field, (value, name)) in CERTIFICATE_NAMES.into_iter().zip(names) {
        let Some(value) = value else { continue };
        if certificate_name.is_some() {
            return Err((
                field,
                "set one tls_client_auth_* name, not two (RFC 8705 section 2.1.2)".into(),
            ));
        }
        if value.is_empty() || value.chars().any(char::is_control) {
            return Err((field, "must be non-empty without control characters".into()));
        }
        certificate_name = Some(name(value.clone()));
    }
    let bound_access_tokens = c.tls_client_certificate_bound_access_tokens;
    Ok(
        (certificate_name.is_some() || bound_access_tokens).then_some(settings::MtlsClient {
            certificate_name,
            bound_access_tokens,
        }),
    )
}

/// The configuration key of `name`.
pub fn certificate_name_key(name: &settings::CertificateName) -> &'static str {
    use settings::CertificateName as Name;
    let i = match name {
        Name::SubjectDn(_) => 0,
        Name::SanDns(_) => 1,
        Name::SanUri(_) => 2,
        Name::SanIp(_) => 3,
        Name::SanEmail(_) => 4,
    };
    tokenginx_syntax::registration::CERTIFICATE_NAMES[i]
}

/// `oauth.registration`: none when it lets no one register (neither open nor with a token).
fn check_registration(
    r: RegistrationConfig,
) -> Result<Option<DynamicRegistration>, (String, String)> {
    let key = |field: &str| format!("oauth.registration.{field}");
    let mut tokens = Vec::new();
    for (i, hex_digest) in r.initial_access_tokens_sha256.iter().enumerate() {
        let mut digest = [0u8; 32];
        if hex::decode_to_slice(hex_digest, &mut digest).is_err() {
            return bad(
                key(&format!("initial_access_tokens_sha256[{i}]")),
                "must be 64 hex digits (the SHA-256 of the token)",
            );
        }
        tokens.push(digest.to_vec());
    }
    if r.max_clients == 0 || r.max_clients > 24_000 || !r.max_clients.is_multiple_of(16) {
        return bad(
            key("max_clients"),
            "must be a multiple of 16 between 16 and 24000: the store keeps clients in 16 \
             buckets, each holding a sixteenth of them",
        );
    }
    let limit = check_rate_limit(r.rate_limit).map_err(|m| (key("rate_limit"), m))?;
    for (i, scope) in r.allowed_scopes.iter().enumerate() {
        if !tokenginx_syntax::is_scope_token(scope) {
            return bad(
                key(&format!("allowed_scopes[{i}]")),
                format!("{scope:?} is not a scope token (RFC 6749 section 3.3)"),
            );
        }
    }
    if !r.open && tokens.is_empty() {
        return Ok(None);
    }
    let policy = settings::RegistrationPolicy {
        open: r.open,
        initial_access_tokens_sha256: tokens,
        max_clients: r.max_clients,
        allowed_scopes: r.allowed_scopes,
        allowed_audiences: r.allowed_audiences,
    };
    Ok(Some((policy, limit)))
}

fn strategy(configured: AccessTokenStrategy) -> settings::AccessTokenStrategy {
    match configured {
        AccessTokenStrategy::Opaque => settings::AccessTokenStrategy::Opaque,
        AccessTokenStrategy::Jwt => settings::AccessTokenStrategy::Jwt,
    }
}

/// How a client's tokens are made: the strategy (its own or the service's), the signing
/// algorithms (ones the host signs with), and its audiences (absolute URIs; one at least
/// for JWT access tokens, whose `aud` is required by RFC 9068).
fn check_token_format(
    c: &ClientConfig,
    default_strategy: AccessTokenStrategy,
    id_token_ttl: Duration,
    key: &dyn Fn(&str) -> String,
) -> Result<settings::TokenFormat, (String, String)> {
    let alg = |field: &str, value: &Option<String>| -> Result<Algorithm, (String, String)> {
        match value {
            None => Ok(Algorithm::Rs256),
            Some(name) => algorithm(name).ok_or_else(|| {
                (
                    key(field),
                    format!("{name:?} is not one of RS256, ES256 and EdDSA"),
                )
            }),
        }
    };
    let strategy = strategy(c.access_token_strategy.unwrap_or(default_strategy));
    for (i, uri) in c.audience.iter().enumerate() {
        let parsed: Option<hyper::Uri> = uri.parse().ok();
        if parsed.is_none_or(|u| u.scheme().is_none() || u.host().is_none()) || uri.contains('#') {
            return bad(
                key(&format!("audience[{i}]")),
                format!("{uri:?} must be an absolute URI without a fragment (RFC 8707)"),
            );
        }
    }
    if strategy == settings::AccessTokenStrategy::Jwt {
        if c.audience.is_empty() {
            return bad(
                key("audience"),
                "is required with the JWT access token strategy: RFC 9068 tokens name \
                 their resource servers in aud",
            );
        }
        if c.access_token_ttl > MAX_SIGNED_TTL {
            return bad(
                key("access_token_ttl"),
                "must be at most 24h for JWT access tokens",
            );
        }
    }
    Ok(settings::TokenFormat {
        access_token_strategy: strategy,
        access_token_alg: alg(
            "access_token_signed_response_alg",
            &c.access_token_signed_response_alg,
        )?,
        id_token_alg: alg(
            "id_token_signed_response_alg",
            &c.id_token_signed_response_alg,
        )?,
        audience: c.audience.clone(),
        id_token_ttl: id_token_ttl.as_secs(),
    })
}

/// A URL of the operator's login or consent app: http(s), without a fragment or a query
/// (the service appends its own).
fn check_app_url(url: &str) -> Result<(), String> {
    let uri: hyper::Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https"))
        || uri.host().is_none()
        || uri.query().is_some()
        || url.contains('#')
    {
        return Err(format!(
            "{url:?} must be an http(s) URL without query or fragment"
        ));
    }
    Ok(())
}

/// The most keys, and JSON, a client's `jwks` may hold.
const MAX_JWKS_KEYS: usize = 16;
const MAX_JWKS_BYTES: usize = 16 * 1024;

/// A client's `jwks` as the JSON the guest reads: a JWK set (RFC 7517 section 5) of 1 to 16
/// public keys, each with its `kty`; the guest judges which it can verify with.
fn check_jwks(jwks: &serde_json::Value) -> Result<String, String> {
    let keys = jwks
        .get("keys")
        .and_then(serde_json::Value::as_array)
        .ok_or("must be a JWK set: {keys: [...]}")?;
    if keys.is_empty() || keys.len() > MAX_JWKS_KEYS {
        return Err(format!("must hold 1 to {MAX_JWKS_KEYS} keys"));
    }
    for (i, jwk) in keys.iter().enumerate() {
        let Some(jwk) = jwk.as_object() else {
            return Err(format!("keys[{i}] is not a JWK object"));
        };
        if !jwk.get("kty").is_some_and(serde_json::Value::is_string) {
            return Err(format!("keys[{i}] has no kty"));
        }
        let private = tokenginx_syntax::registration::PRIVATE_JWK_MEMBERS;
        if let Some(member) = private.iter().find(|m| jwk.contains_key(**m)) {
            return Err(format!(
                "keys[{i}] holds a private key ({member:?}): register the public key only"
            ));
        }
    }
    let json = jwks.to_string();
    if json.len() > MAX_JWKS_BYTES {
        return Err(format!("must be at most {MAX_JWKS_BYTES} bytes of JSON"));
    }
    Ok(json)
}
