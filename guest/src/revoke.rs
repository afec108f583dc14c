//! Token revocation (RFC 7009).

use crate::client_auth::authenticate;
use crate::introspect::client_record;
use crate::params::param;
use crate::presented::Named;
use crate::response::{finish, store_failure, OAuthError};
use crate::{Client, Host, Level, Request, Response};

pub fn revoke(host: &impl Host, req: &Request) -> Response {
    finish(answer(host, req))
}

fn answer(host: &impl Host, req: &Request) -> Result<Response, OAuthError> {
    let client = authenticate(host, req, true)?.client;
    let token = param(req, "token")
        .ok_or_else(|| OAuthError::invalid_request("missing parameter token"))?;
    // Unknown and already invalid tokens answer 200 too (section 2.2). A client revokes only
    // its own tokens; another's stays active, and the answer does not tell the difference,
    // so revocation cannot be used to probe for valid tokens. `token_type_hint` is only a
    // hint (section 2.1): one read finds either kind.
    match crate::presented::named(host, token) {
        Named::Grant(token) => {
            crate::grant::revoke(host, &client, &token)?;
        }
        Named::Client(key) => revoke_client_token(host, &client, &key)?,
        Named::Nothing => {}
    }
    Ok(Response {
        status: 200,
        headers: vec![("Cache-Control".into(), "no-store".into())],
        body: String::new(),
    })
}

/// Revokes the client token recorded at `key` if it is `client`'s own.
fn revoke_client_token(host: &impl Host, client: &Client, key: &str) -> Result<(), OAuthError> {
    if let Some(record) = client_record(host, key)? {
        if record.client_id == client.client_id {
            host.store_delete(key).map_err(|e| store_failure(host, e))?;
            host.log(
                Level::Info,
                &format!("client {:?} revoked an access token", client.client_id),
            );
        } else {
            host.log(
                Level::Warn,
                &format!(
                    "client {:?} tried to revoke a token of client {:?}",
                    client.client_id, record.client_id
                ),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::introspect;
    use crate::testing::{
        basic, body, form, issue, TestHost, DEMO_ID, DEMO_SECRET, OTHER_ID, OTHER_SECRET,
    };

    fn active(host: &TestHost, token: &str) -> bool {
        let response = introspect(
            host,
            &form(&[("token", token)], Some(basic(DEMO_ID, DEMO_SECRET))),
        );
        body(&response)["active"] == true
    }

    #[test]
    fn a_client_revokes_its_own_token() {
        let host = TestHost::new();
        let token = issue(&host, "read");
        let response = revoke(
            &host,
            &form(&[("token", &token)], Some(basic(DEMO_ID, DEMO_SECRET))),
        );
        assert_eq!(response.status, 200);
        assert!(!active(&host, &token));
        assert_eq!(host.entries(), 0, "the record is deleted, not just marked");
    }

    #[test]
    fn unknown_tokens_answer_200() {
        let host = TestHost::new();
        let response = revoke(
            &host,
            &form(&[("token", "unknown")], Some(basic(DEMO_ID, DEMO_SECRET))),
        );
        assert_eq!(response.status, 200);
    }

    #[test]
    fn another_clients_token_stays_active_and_the_answer_is_still_200() {
        let host = TestHost::new();
        let token = issue(&host, "read");
        let response = revoke(
            &host,
            &form(&[("token", &token)], Some(basic(OTHER_ID, OTHER_SECRET))),
        );
        assert_eq!(response.status, 200);
        assert!(active(&host, &token));
    }

    #[test]
    fn revocation_requires_client_authentication() {
        let host = TestHost::new();
        let token = issue(&host, "read");
        let response = revoke(
            &host,
            &form(&[("token", &token)], Some(basic(DEMO_ID, "wrong"))),
        );
        assert_eq!(response.status, 401);
        assert!(active(&host, &token));
    }

    #[test]
    fn a_missing_token_is_invalid_request() {
        let host = TestHost::new();
        let response = revoke(&host, &form(&[], Some(basic(DEMO_ID, DEMO_SECRET))));
        assert_eq!(response.status, 400);
        assert_eq!(body(&response)["error"], "invalid_request");
    }
}
