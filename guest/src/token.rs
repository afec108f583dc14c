//! The token endpoint (RFC 6749 section 3.2): it authenticates the client, checks the grant
//! type, and hands the request to the grant's own module: [`crate::client_credentials`]
//! (section 4.4), [`crate::flow::code`] (`authorization_code`, section 4.1.3, with PKCE) and
//! [`crate::grant::refresh`] (`refresh_token`, section 6).

use crate::client_auth::{authenticate, Authenticated};
use crate::issue::{Sender, AUTHORIZATION_CODE, CLIENT_CREDENTIALS, REFRESH_TOKEN};
use crate::params::param;
use crate::response::{finish, OAuthError};
use crate::{Host, Request, Response};

pub fn token(host: &impl Host, req: &Request) -> Response {
    finish(issue(host, req))
}

fn issue(host: &impl Host, req: &Request) -> Result<Response, OAuthError> {
    let grant_type = param(req, "grant_type")
        .ok_or_else(|| OAuthError::invalid_request("missing parameter grant_type"))?;
    let Authenticated { client, public } = authenticate(host, req, true)?;
    if !crate::GRANT_TYPES.contains(&grant_type) {
        return Err(OAuthError::unsupported_grant_type(format!(
            "grant type {:?} is not supported",
            grant_type.chars().take(64).collect::<String>()
        )));
    }
    // A public client proves nothing about itself: it may only redeem codes, which PKCE
    // binds to the app that asked for them, and refresh the grants those start (rotated at
    // each use, RFC 9700 section 4.14).
    let allowed = client.grant_types.iter().any(|g| g == grant_type)
        && !(public && grant_type == CLIENT_CREDENTIALS);
    if !allowed {
        return Err(OAuthError::unauthorized_client(format!(
            "this client may not use the {grant_type} grant"
        )));
    }
    let proof = crate::dpop::at_token_endpoint(host, req, &client)?;
    let certificate = crate::mtls::binding(host, &client, req)?;
    let sender = Sender {
        proof: proof.as_ref(),
        public,
        certificate: certificate.as_ref(),
    };
    match grant_type {
        AUTHORIZATION_CODE => crate::flow::code::redeem(host, &client, req, sender),
        REFRESH_TOKEN => crate::grant::refresh::refresh(host, &client, req, sender),
        _ => crate::client_credentials::issue(host, &client, req, sender),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{access_token_key, TokenRecord};
    use crate::testing::{basic, body, form, TestHost, DEMO_ID, DEMO_SECRET};

    fn token_request(params: &[(&str, &str)]) -> Request {
        form(params, Some(basic(DEMO_ID, DEMO_SECRET)))
    }

    #[test]
    fn client_credentials_issues_a_bearer_token_with_default_scope() {
        let host = TestHost::new();
        let response = token(
            &host,
            &token_request(&[("grant_type", "client_credentials")]),
        );
        assert_eq!(response.status, 200);
        assert_eq!(response.header("Cache-Control"), Some("no-store"));
        assert_eq!(response.header("Pragma"), Some("no-cache"));
        let body = body(&response);
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        assert_eq!(body["scope"], "read");
        let token = body["access_token"].as_str().unwrap();
        assert!(token.len() >= 43, "256 bits in base64url");
    }

    #[test]
    fn the_store_holds_a_digest_keyed_record_never_the_token() {
        let host = TestHost::new();
        let response = token(
            &host,
            &token_request(&[("grant_type", "client_credentials"), ("scope", "write")]),
        );
        let token = body(&response)["access_token"].as_str().unwrap().to_owned();
        let (key, value, ttl_ms) = host.only_entry();
        assert_eq!(key, access_token_key(&token).unwrap());
        assert_eq!(ttl_ms, 3_600_000);
        assert!(!key.contains(&token) && !String::from_utf8_lossy(&value).contains(&token));
        let record: TokenRecord = serde_json::from_slice(&value).unwrap();
        assert_eq!(record.client_id, DEMO_ID);
        assert_eq!(record.user_id, DEMO_ID);
        assert_eq!(record.scope, "write");
        assert_eq!(record.client_ip, "127.0.0.1");
        assert_eq!(record.expires_at, record.created_at + 3600);
        assert_eq!(record.token_type, "Bearer");
    }

    #[test]
    fn missing_grant_type_is_invalid_request() {
        let host = TestHost::new();
        let response = token(&host, &token_request(&[]));
        assert_eq!(response.status, 400);
        assert_eq!(body(&response)["error"], "invalid_request");
    }

    #[test]
    fn unknown_grant_type_is_unsupported_grant_type() {
        let host = TestHost::new();
        let response = token(&host, &token_request(&[("grant_type", "password")]));
        assert_eq!(response.status, 400);
        assert_eq!(body(&response)["error"], "unsupported_grant_type");
    }

    #[test]
    fn a_client_without_the_grant_is_unauthorized_client() {
        let host = TestHost::new();
        host.edit_demo(|c| c.grant_types.clear());
        let response = token(
            &host,
            &token_request(&[("grant_type", "client_credentials")]),
        );
        assert_eq!(body(&response)["error"], "unauthorized_client");
    }

    #[test]
    fn a_store_outage_is_temporarily_unavailable() {
        let host = TestHost::new();
        host.set_store_down(true);
        let response = token(
            &host,
            &token_request(&[("grant_type", "client_credentials")]),
        );
        assert_eq!(response.status, 503);
        assert_eq!(body(&response)["error"], "temporarily_unavailable");
    }

    #[test]
    fn a_client_over_its_rate_limit_gets_429_with_retry_after_and_nothing_is_stored() {
        let host = TestHost::new();
        host.set_rate_budget(1);
        let request = token_request(&[("grant_type", "client_credentials")]);
        assert_eq!(token(&host, &request).status, 200);
        let refused = token(&host, &request);
        assert_eq!(refused.status, 429);
        assert_eq!(
            refused.header("Retry-After"),
            Some("2"),
            "1.5 s, rounded up"
        );
        assert_eq!(body(&refused)["error"], "temporarily_unavailable");
        assert_eq!(host.entries(), 1);
    }

    #[test]
    fn failed_authentication_does_not_spend_the_clients_budget() {
        let host = TestHost::new();
        host.set_rate_budget(1);
        let wrong = form(
            &[("grant_type", "client_credentials")],
            Some(basic(DEMO_ID, "not-the-secret")),
        );
        for _ in 0..3 {
            assert_eq!(token(&host, &wrong).status, 401);
        }
        let request = token_request(&[("grant_type", "client_credentials")]);
        assert_eq!(token(&host, &request).status, 200);
    }

    #[test]
    fn a_colliding_token_is_drawn_again_never_overwritten() {
        let host = TestHost::new();
        host.repeat_randomness_once();
        let first = token(
            &host,
            &token_request(&[("grant_type", "client_credentials")]),
        );
        let second = token(
            &host,
            &token_request(&[("grant_type", "client_credentials")]),
        );
        assert_eq!((first.status, second.status), (200, 200));
        assert_ne!(body(&first)["access_token"], body(&second)["access_token"]);
        assert_eq!(host.entries(), 2);
    }
}
