//! A client from Hydra's `OAuth2Client` JSON, checked: the rules of a configured client
//! (`client_rules`) and what only a client registered at runtime can get wrong.

use super::admin::ApiError;
use super::record::{algorithm, Stored};
use crate::client_rules::{self, ClientConfig};
use crate::record::{hex_sha256, new_secret};
use crate::Host;
use serde_json::{Map, Value};
use tokenginx_syntax::registration;

/// Hydra's fields kept and shown as given, with the JSON type each must have.
const SHOWN: [(&str, Kind); 11] = [
    ("metadata", Kind::Any),
    ("owner", Kind::Text),
    ("contacts", Kind::Texts),
    ("client_uri", Kind::Text),
    ("logo_uri", Kind::Text),
    ("policy_uri", Kind::Text),
    ("tos_uri", Kind::Text),
    ("allowed_cors_origins", Kind::Texts),
    ("post_logout_redirect_uris", Kind::Texts),
    ("jwks_uri", Kind::Text),
    ("jwks", Kind::Any),
];

#[derive(Clone, Copy)]
enum Kind {
    Any,
    Text,
    Texts,
}

/// The most JSON a client's record may be: far above what any client needs, and a bound on
/// what a registration can make the store hold and a listing read.
pub const MAX_RECORD_BYTES: usize = 16 * 1024;
/// A secret the operator chooses has at least this many characters.
pub const MIN_CHOSEN_SECRET_CHARS: usize = 32;
/// A client from Hydra's JSON `fields`: the new one, or `previous` replaced (its secret
/// kept unless `client_secret` is given), checked; with the secret to show once.
pub(super) fn build(
    host: &impl Host,
    fields: &Map<String, Value>,
    id: &str,
    previous: Option<&Stored>,
    now: u64,
) -> Result<(Stored, Option<String>), ApiError> {
    let text = |name: &str| -> Result<Option<String>, ApiError> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::metadata(format!("{name} must be a string"))),
        }
    };
    let texts = |name: &str| -> Result<Option<Vec<String>>, ApiError> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| ApiError::metadata(format!("{name} must be an array of strings"))),
            Some(_) => Err(ApiError::metadata(format!(
                "{name} must be an array of strings"
            ))),
        }
    };
    let flag = |name: &str| -> Result<bool, ApiError> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(ApiError::metadata(format!("{name} must be a boolean"))),
        }
    };
    if let Some(given) = text("client_id")?.filter(|g| !g.is_empty() && g != id) {
        return Err(ApiError::metadata(format!(
            "client_id {given:?} differs from the client's, {id:?}: an id cannot change"
        )));
    }
    let inherited = host.client_defaults();
    let method = text("token_endpoint_auth_method")?
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| client_rules::auth_method(None).to_owned());
    // A public client has no secret, nor has one that proves itself with a key.
    let secretless = [
        "none",
        registration::PRIVATE_KEY_JWT,
        registration::TLS_CLIENT_AUTH,
        registration::SELF_SIGNED_TLS_CLIENT_AUTH,
    ]
    .contains(&method.as_str());
    let mut tls_client_auth_name = None;
    for key in registration::CERTIFICATE_NAMES {
        let Some(value) = text(key)?.filter(|v| !v.is_empty()) else {
            continue;
        };
        if tls_client_auth_name.is_some() {
            return Err(ApiError::metadata(format!(
                "{key}: set one tls_client_auth_* name, not two (RFC 8705 section 2.1.2)"
            )));
        }
        tls_client_auth_name = Some((key.to_owned(), value));
    }
    let (digest, shown_secret) = match text("client_secret")?.filter(|s| !s.is_empty()) {
        Some(_) if secretless => {
            return Err(ApiError::metadata(format!(
                "client_secret: a client with token_endpoint_auth_method {method} has none"
            )))
        }
        Some(chosen) if chosen.chars().count() < MIN_CHOSEN_SECRET_CHARS => {
            return Err(ApiError::metadata(format!(
                "client_secret must be at least {MIN_CHOSEN_SECRET_CHARS} characters"
            )))
        }
        Some(chosen) => (hex_sha256(chosen.as_bytes()), Some(chosen)),
        None if secretless => (String::new(), None),
        None => match previous.filter(|p| !p.client_secret_sha256.is_empty()) {
            Some(previous) => (previous.client_secret_sha256.clone(), None),
            None => {
                let secret = new_secret(host);
                (hex_sha256(secret.as_bytes()), Some(secret))
            }
        },
    };
    let grant_types = texts("grant_types")?
        .filter(|g| !g.is_empty())
        .unwrap_or_else(|| vec![crate::issue::AUTHORIZATION_CODE.to_owned()]);
    let response_types = texts("response_types")?
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| vec!["code".to_owned()]);
    if let Some(other) = response_types
        .iter()
        .find(|r| !crate::RESPONSE_TYPES.contains(&r.as_str()))
    {
        return Err(ApiError::metadata(format!(
            "response_types: {other:?} is not one this server answers (code)"
        )));
    }
    let signs = inherited.signs_up_to.is_some();
    let scope = match text("scope")? {
        Some(scope) => scope,
        // Hydra's default, less what this host cannot do.
        None if signs => "openid offline_access".to_owned(),
        None => "offline_access".to_owned(),
    };
    let mut shown = Map::new();
    for (name, kind) in SHOWN {
        let Some(value) = fields.get(name).filter(|v| !v.is_null()) else {
            continue;
        };
        let fits = match kind {
            Kind::Any => true,
            Kind::Text => value.is_string(),
            Kind::Texts => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string)),
        };
        if !fits {
            return Err(ApiError::metadata(format!(
                "{name} has the wrong JSON type"
            )));
        }
        shown.insert(name.to_owned(), value.clone());
    }
    let stored = Stored {
        client_id: id.to_owned(),
        client_name: text("client_name")?.unwrap_or_default(),
        client_secret_sha256: digest,
        grant_types,
        response_types,
        redirect_uris: texts("redirect_uris")?.unwrap_or_default(),
        scope,
        audience: texts("audience")?.unwrap_or_default(),
        token_endpoint_auth_method: method,
        skip_consent: flag("skip_consent")?,
        dpop_bound_access_tokens: flag("dpop_bound_access_tokens")?,
        tls_client_auth_name,
        tls_client_certificate_bound_access_tokens: flag(
            "tls_client_certificate_bound_access_tokens",
        )?,
        access_token_strategy: text("access_token_strategy")?.filter(|s| !s.is_empty()),
        access_token_signed_response_alg: text("access_token_signed_response_alg")?,
        id_token_signed_response_alg: text("id_token_signed_response_alg")?,
        shown,
        created_at: previous.map_or(now, |p| p.created_at),
        updated_at: now,
        registration_access_token_sha256: previous
            .and_then(|p| p.registration_access_token_sha256.clone()),
    };
    check(host, &stored, shown_secret.as_deref(), &inherited)?;
    let bytes = serde_json::to_vec(&stored)
        .expect("a client serializes")
        .len();
    if bytes > MAX_RECORD_BYTES {
        return Err(ApiError::metadata(format!(
            "the client is {bytes} bytes of JSON; at most {MAX_RECORD_BYTES}"
        )));
    }
    Ok((stored, shown_secret))
}

/// The rules of a registration (`client_rules`, a configured client's), and what only a
/// client registered here can get wrong.
fn check(
    host: &impl Host,
    stored: &Stored,
    secret: Option<&str>,
    inherited: &crate::Inherited,
) -> Result<(), ApiError> {
    let jwks = stored.shown.get("jwks").filter(|j| !j.is_null());
    if let Some(jwks) = jwks {
        check_jwks(jwks)?;
    }
    if stored.token_endpoint_auth_method == registration::CLIENT_SECRET_JWT {
        return Err(ApiError::metadata(
            "token_endpoint_auth_method: client_secret_jwt needs the secret itself, and this \
             service keeps a runtime client's secret only as a digest: use private_key_jwt",
        ));
    }
    let config = ClientConfig {
        jwks: jwks.map(Value::to_string),
        mtls: stored.mtls(),
        listener: host.mtls(),
        token_endpoint_auth_method: Some(stored.token_endpoint_auth_method.clone()),
        has_secret: !stored.client_secret_sha256.is_empty(),
        secret_chars: secret.map(|s| s.chars().count() as u32),
        scopes: stored.scopes(),
        default_scopes: Vec::new(),
        grant_types: Some(stored.grant_types.clone()),
        redirect_uris: stored.redirect_uris.clone(),
        access_token_ttl: inherited.access_token_ttl,
    };
    if let Err((key, message)) = client_rules::check(&config) {
        return Err(match key.starts_with("redirect_uris") {
            true => ApiError(400, "invalid_redirect_uri", format!("{key}: {message}")),
            false => ApiError::metadata(format!("{}: {message}", hydra_name(&key))),
        });
    }
    let code = stored
        .grant_types
        .iter()
        .any(|g| g == crate::issue::AUTHORIZATION_CODE);
    if code && stored.redirect_uris.is_empty() {
        return Err(ApiError(
            400,
            "invalid_redirect_uri",
            "redirect_uris: the authorization_code grant needs at least one".into(),
        ));
    }
    if let Some(bad) = stored
        .scopes()
        .iter()
        .find(|s| !tokenginx_syntax::is_scope_token(s))
    {
        return Err(ApiError::metadata(format!(
            "scope: {bad:?} is not a scope token"
        )));
    }
    for (i, uri) in stored.audience.iter().enumerate() {
        let absolute = uri.split_once("://").is_some_and(|(scheme, rest)| {
            !scheme.is_empty() && !rest.is_empty() && !uri.contains(['#', ' '])
        });
        if !absolute {
            return Err(ApiError::metadata(format!(
                "audience[{i}]: {uri:?} is not an absolute URI without a fragment"
            )));
        }
    }
    match stored.access_token_strategy.as_deref() {
        None | Some("opaque" | "jwt") => {}
        Some(other) => {
            return Err(ApiError::metadata(format!(
                "access_token_strategy: {other:?} is not opaque or jwt"
            )))
        }
    }
    for (name, alg) in [
        (
            "access_token_signed_response_alg",
            &stored.access_token_signed_response_alg,
        ),
        (
            "id_token_signed_response_alg",
            &stored.id_token_signed_response_alg,
        ),
    ] {
        if algorithm(alg.as_deref()).is_none() {
            return Err(ApiError::metadata(format!(
                "{name}: {alg:?} is not RS256, ES256 or EdDSA"
            )));
        }
    }
    let jwt = stored.jwt_access_tokens(inherited);
    let openid = stored.scopes().iter().any(|s| s == crate::signed::OPENID);
    match inherited.signs_up_to {
        None if jwt || openid => Err(ApiError::metadata(
            "this server signs nothing (a Redis store without keys.secret): a client can \
             have neither the openid scope nor JWT access tokens",
        )),
        Some(longest) if jwt && inherited.access_token_ttl > longest => Err(ApiError::metadata(
            format!("access_token_strategy: this server signs tokens of at most {longest}s"),
        )),
        Some(longest) if openid && inherited.id_token_ttl > longest => {
            Err(ApiError::metadata(format!(
                "scope: openid: this server signs tokens of at most {longest}s, less than \
                 an ID token lives (oauth.id_token_ttl, {}s)",
                inherited.id_token_ttl
            )))
        }
        _ if jwt && stored.audience.is_empty() => Err(ApiError::metadata(
            "audience: JWT access tokens (RFC 9068) name their audience: give at least one",
        )),
        _ => Ok(()),
    }
}

/// A client's `jwks`: a JWK set of 1 to 16 public keys this guest verifies with (EC P-256,
/// OKP Ed25519, RSA of 2048 bits or more); a private member anywhere is refused, so that a
/// private key pasted by mistake is not kept.
fn check_jwks(jwks: &Value) -> Result<(), ApiError> {
    let bad = |why: String| Err(ApiError::metadata(format!("jwks: {why}")));
    let Some(keys) = jwks.get("keys").and_then(Value::as_array) else {
        return bad("must be a JWK set: {\"keys\": [...]}".into());
    };
    if keys.is_empty() || keys.len() > 16 {
        return bad("must hold 1 to 16 keys".into());
    }
    for (i, jwk) in keys.iter().enumerate() {
        let Some(jwk) = jwk.as_object() else {
            return bad(format!("keys[{i}] is not a JWK object"));
        };
        if let Err(why) = crate::jose::public_jwk(jwk) {
            return bad(format!("keys[{i}]: {why}"));
        }
    }
    Ok(())
}

/// Hydra's name for a key `client_rules` names.
fn hydra_name(key: &str) -> &str {
    match key {
        "scopes" | "default_scopes" => "scope",
        other => other,
    }
}
