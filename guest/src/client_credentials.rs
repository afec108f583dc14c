//! The `client_credentials` grant (RFC 6749 section 4.4): a client's token for itself.

use crate::issue::{charge, Claims, Sender, TokenResponse};
use crate::params::param;
use crate::record::{access_token_key, new_secret, token_type, TokenRecord};
use crate::response::{json, store_failure, OAuthError};
use crate::{scope, Client, Host, Level, Request, Response};

/// `grant_type=client_credentials`: the scope asked for (or the default), charged to the
/// client, for an access token.
pub fn issue(
    host: &impl Host,
    client: &Client,
    req: &Request,
    sender: Sender,
) -> Result<Response, OAuthError> {
    let scope = scope::grant(client, param(req, "scope"))?;
    let format = crate::signed::format(host, client)?;
    let audience =
        crate::signed::audience(&format, param(req, "resource"), param(req, "audience"))?;
    charge(host, client, sender)?;
    let claims = Claims {
        user_id: client.client_id.clone(),
        scope,
        ext: None,
        audience,
        session: None,
        cnf: sender.cnf(),
    };
    issue_token(host, client, &format, claims, &req.client_ip)
}

/// Issues a `client_credentials` access token for `claims` to `client`.
fn issue_token(
    host: &impl Host,
    client: &Client,
    format: &crate::TokenFormat,
    claims: Claims,
    client_ip: &str,
) -> Result<Response, OAuthError> {
    let now = host.now_ms() / 1000;
    let ttl = client.access_token_ttl;
    let cnf = claims.cnf.clone();
    let record = TokenRecord {
        user_id: claims.user_id,
        scope: claims.scope,
        created_at: now,
        client_ip: client_ip.to_owned(),
        client_id: client.client_id.clone(),
        expires_at: now + ttl,
        token_type: token_type(&cnf).into(),
        ext: claims.ext,
        aud: crate::signed::effective(format, claims.audience),
        client_registered_at: crate::clients::registered_at(client),
        cnf,
    };
    let value = serde_json::to_vec(&record).expect("records serialize");

    // 256 random bits never collide in practice; `insert` (SET NX) makes sure a collision
    // could never overwrite another client's token.
    for _ in 0..3 {
        let token = new_secret(host);
        let key = access_token_key(&token).expect("issued tokens are well formed");
        match host.store_insert(&key, &value, ttl * 1000) {
            Ok(true) => {
                host.log(
                    Level::Info,
                    &format!(
                        "issued access token to client {:?} with scope {:?}",
                        client.client_id, record.scope
                    ),
                );
                let token = crate::signed::access_token(host, format, token, &record)?;
                let response = json(
                    200,
                    &TokenResponse {
                        access_token: &token,
                        token_type: &record.token_type,
                        expires_in: ttl,
                        scope: &record.scope,
                        refresh_token: None,
                        id_token: None,
                    },
                );
                return Ok(response);
            }
            Ok(false) => continue,
            Err(e) => return Err(store_failure(host, e)),
        }
    }
    Err(OAuthError::server_error("could not store a new token"))
}
