//! A client as Hydra's `OAuth2Client` JSON shows it.

use super::record::Stored;
use crate::{Client, Host};
use serde_json::{json as value, Map, Value};

/// The client's JSON as Hydra shows it; `secret` only in the answer that set it.
pub(super) fn show(stored: &Stored, secret: Option<&str>, host: &impl Host) -> Value {
    let mut shown = stored.shown.clone();
    let inherited = host.client_defaults();
    let strategy = match stored.jwt_access_tokens(&inherited) {
        true => "jwt",
        false => "opaque",
    };
    for (name, value) in [
        ("client_id", value!(stored.client_id)),
        ("client_name", value!(stored.client_name)),
        ("redirect_uris", value!(stored.redirect_uris)),
        ("grant_types", value!(stored.grant_types)),
        ("response_types", value!(stored.response_types)),
        ("scope", value!(stored.scope)),
        ("audience", value!(stored.audience)),
        (
            "token_endpoint_auth_method",
            value!(stored.token_endpoint_auth_method),
        ),
        ("skip_consent", value!(stored.skip_consent)),
        (
            "dpop_bound_access_tokens",
            value!(stored.dpop_bound_access_tokens),
        ),
        ("access_token_strategy", value!(strategy)),
        ("subject_type", value!("public")),
        ("client_secret_expires_at", value!(0)),
        ("created_at", value!(rfc3339(stored.created_at))),
        ("updated_at", value!(rfc3339(stored.updated_at))),
    ] {
        shown.insert(name.to_owned(), value);
    }
    if stored.tls_client_certificate_bound_access_tokens {
        shown.insert(
            "tls_client_certificate_bound_access_tokens".into(),
            value!(true),
        );
    }
    if let Some((key, name)) = &stored.tls_client_auth_name {
        shown.insert(key.clone(), value!(name));
    }
    if let Some(alg) = &stored.id_token_signed_response_alg {
        shown.insert("id_token_signed_response_alg".into(), value!(alg));
    }
    if let Some(alg) = &stored.access_token_signed_response_alg {
        shown.insert("access_token_signed_response_alg".into(), value!(alg));
    }
    for name in [
        "contacts",
        "allowed_cors_origins",
        "post_logout_redirect_uris",
    ] {
        shown.entry(name).or_insert_with(|| value!([]));
    }
    shown.entry("metadata").or_insert_with(|| value!({}));
    for name in ["owner", "client_uri", "logo_uri", "policy_uri", "tos_uri"] {
        shown.entry(name).or_insert_with(|| value!(""));
    }
    if let Some(secret) = secret {
        shown.insert("client_secret".into(), value!(secret));
    }
    Value::Object(shown)
}

/// A configured client as Hydra would show it.
pub(super) fn show_configured(host: &impl Host, client: &Client) -> Value {
    let registration = host.registration(&client.client_id);
    let format = host.token_format(&client.client_id);
    let mtls = host.client_mtls(&client.client_id);
    let stored = Stored {
        client_id: client.client_id.clone(),
        client_name: registration
            .as_ref()
            .map(|r| r.client_name.clone())
            .unwrap_or_default(),
        client_secret_sha256: String::new(),
        grant_types: client.grant_types.clone(),
        response_types: vec!["code".into()],
        redirect_uris: registration
            .as_ref()
            .map(|r| r.redirect_uris.clone())
            .unwrap_or_default(),
        scope: client.scopes.join(" "),
        audience: format
            .as_ref()
            .map(|f| f.audience.clone())
            .unwrap_or_default(),
        token_endpoint_auth_method: registration
            .as_ref()
            .map_or_else(String::new, |r| r.token_endpoint_auth_method.clone()),
        skip_consent: registration.is_some_and(|r| r.skip_consent),
        access_token_strategy: format.as_ref().map(|f| match f.jwt_access_tokens {
            true => "jwt".into(),
            false => "opaque".into(),
        }),
        access_token_signed_response_alg: format.as_ref().map(|f| f.access_token_alg.name().into()),
        id_token_signed_response_alg: format.as_ref().map(|f| f.id_token_alg.name().into()),
        shown: Map::from_iter([(
            "metadata".to_owned(),
            value!({"tokenginx": {"configured": true}}),
        )]),
        created_at: 0,
        updated_at: 0,
        registration_access_token_sha256: None,
        dpop_bound_access_tokens: host.dpop().bound_clients.contains(&client.client_id),
        tls_client_auth_name: mtls
            .as_ref()
            .and_then(|m| m.certificate_name.as_ref())
            .map(|name| (name.key().to_owned(), name.value().to_owned())),
        tls_client_certificate_bound_access_tokens: mtls.is_some_and(|m| m.bound_access_tokens),
    };
    show(&stored, None, host)
}

/// Unix seconds as RFC 3339 UTC (`1970-01-01T00:00:00Z`).
pub fn rfc3339(unix_s: u64) -> String {
    let (days, secs) = (unix_s / 86_400, unix_s % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}
