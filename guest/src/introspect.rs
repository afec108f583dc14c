//! Token introspection (RFC 7662).

use crate::client_auth::authenticate;
use crate::grant::{self, Found};
use crate::params::param;
use crate::presented::Named;
use crate::record::TokenRecord;
use crate::response::{finish, json, store_failure, OAuthError};
use crate::{Host, Level, Request, Response};
use serde::Serialize;

#[derive(Serialize)]
struct Active<'a> {
    active: bool,
    scope: &'a str,
    client_id: &'a str,
    sub: &'a str,
    token_type: &'a str,
    /// Hydra's name for what the token is for: `access_token` or `refresh_token`.
    token_use: &'a str,
    exp: u64,
    iat: u64,
    iss: &'a str,
    /// Claims the consent app added (Hydra's `ext`).
    #[serde(skip_serializing_if = "Option::is_none")]
    ext: Option<&'a serde_json::Value>,
    /// The resource servers it is for (RFC 8707's `resource`), when the client has some.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    aud: &'a [String],
    /// The key the token is bound to (RFC 9449 section 6.2): a resource server takes it
    /// only with a DPoP proof by that key.
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<&'a crate::record::Confirmation>,
}

#[derive(Serialize)]
struct Inactive {
    active: bool,
}

pub fn introspect(host: &impl Host, req: &Request) -> Response {
    finish(answer(host, req))
}

fn answer(host: &impl Host, req: &Request) -> Result<Response, OAuthError> {
    authenticate(host, req, false)?;
    let token = param(req, "token")
        .ok_or_else(|| OAuthError::invalid_request("missing parameter token"))?;
    // `token_type_hint` is only a hint (section 2.1): one read finds either kind.
    match live_record(host, token)? {
        Some(record) => Ok(json(
            200,
            &Active {
                active: true,
                scope: &record.scope,
                client_id: &record.client_id,
                sub: &record.user_id,
                token_type: &record.token_type,
                token_use: match record.token_type == crate::issue::REFRESH_TOKEN {
                    true => "refresh_token",
                    false => "access_token",
                },
                exp: record.expires_at,
                iat: record.created_at,
                iss: &host.issuer(),
                ext: record.ext.as_ref(),
                aud: &record.aud,
                cnf: record.cnf.as_ref(),
            },
        )),
        // Unknown, expired and revoked tokens look the same (section 2.2).
        None => Ok(json(200, &Inactive { active: false })),
    }
}

/// The record of `token` if it is live: a `client_credentials` access token that exists and
/// has not expired, or a live grant's access token or refresh token (as a record of
/// `token_type` `refresh_token`); a JWT access token by the record its `jti` names.
pub(crate) fn live_record(
    host: &impl Host,
    token: &str,
) -> Result<Option<TokenRecord>, OAuthError> {
    let record = match crate::presented::named(host, token) {
        Named::Grant(token) => match grant::find(host, &token)? {
            Found::Access(record, _) | Found::Refresh(record) => Some(record),
            Found::Rotated { .. } | Found::None => None,
        },
        Named::Client(key) => client_record(host, &key)?,
        Named::Nothing => None,
    };
    let Some(record) = record else {
        return Ok(None);
    };
    let registered =
        crate::clients::still_registered(host, &record.client_id, record.client_registered_at)
            .map_err(|e| store_failure(host, e))?;
    Ok(registered.then_some(record))
}

/// The record of a `client_credentials` access token at `key` if it exists and has not
/// expired.
pub(crate) fn client_record(
    host: &impl Host,
    key: &str,
) -> Result<Option<TokenRecord>, OAuthError> {
    let Some(bytes) = host.store_get(key).map_err(|e| store_failure(host, e))? else {
        return Ok(None);
    };
    let record: TokenRecord = match serde_json::from_slice(&bytes) {
        Ok(record) => record,
        Err(e) => {
            host.log(Level::Warn, &format!("unreadable token record: {e}"));
            return Ok(None);
        }
    };
    Ok((record.expires_at * 1000 > host.now_ms()).then_some(record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{
        basic, body, form, issue, TestHost, DEMO_ID, DEMO_SECRET, OTHER_ID, OTHER_SECRET,
    };

    fn introspect_as(host: &TestHost, id: &str, secret: &str, params: &[(&str, &str)]) -> Response {
        introspect(host, &form(params, Some(basic(id, secret))))
    }

    #[test]
    fn a_live_token_is_active_with_its_claims() {
        let host = TestHost::new();
        let token = issue(&host, "read write");
        let response = introspect_as(&host, DEMO_ID, DEMO_SECRET, &[("token", &token)]);
        assert_eq!(response.status, 200);
        assert_eq!(response.header("Cache-Control"), Some("no-store"));
        let body = body(&response);
        assert_eq!(body["active"], true);
        assert_eq!(body["scope"], "read write");
        assert_eq!(body["client_id"], DEMO_ID);
        assert_eq!(body["sub"], DEMO_ID);
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["iss"], "http://issuer.test");
        assert_eq!(
            body["exp"].as_u64().unwrap(),
            body["iat"].as_u64().unwrap() + 3600
        );
    }

    #[test]
    fn an_unknown_token_is_only_inactive() {
        let host = TestHost::new();
        let response = introspect_as(&host, DEMO_ID, DEMO_SECRET, &[("token", "nope")]);
        assert_eq!(response.body, r#"{"active":false}"#);
    }

    #[test]
    fn an_expired_token_is_inactive_even_if_the_store_still_has_it() {
        let host = TestHost::new();
        let token = issue(&host, "read");
        host.advance_clock_ms(3_600_000);
        let response = introspect_as(&host, DEMO_ID, DEMO_SECRET, &[("token", &token)]);
        assert_eq!(response.body, r#"{"active":false}"#);
    }

    #[test]
    fn a_wrong_token_type_hint_still_finds_the_token() {
        let host = TestHost::new();
        let token = issue(&host, "read");
        let response = introspect_as(
            &host,
            DEMO_ID,
            DEMO_SECRET,
            &[("token", &token), ("token_type_hint", "refresh_token")],
        );
        assert_eq!(body(&response)["active"], true);
    }

    #[test]
    fn another_authenticated_client_may_introspect() {
        let host = TestHost::new();
        let token = issue(&host, "read");
        let response = introspect_as(&host, OTHER_ID, OTHER_SECRET, &[("token", &token)]);
        assert_eq!(body(&response)["active"], true);
    }

    #[test]
    fn introspection_requires_client_authentication() {
        let host = TestHost::new();
        let token = issue(&host, "read");
        let response = introspect(&host, &form(&[("token", &token)], None));
        assert_eq!(response.status, 401);
        assert_eq!(body(&response)["error"], "invalid_client");
        assert!(response.header("WWW-Authenticate").is_some());
    }

    #[test]
    fn a_missing_token_is_invalid_request() {
        let host = TestHost::new();
        let response = introspect_as(&host, DEMO_ID, DEMO_SECRET, &[]);
        assert_eq!(
            (response.status, body(&response)["error"].as_str()),
            (400, Some("invalid_request"))
        );
    }
}
