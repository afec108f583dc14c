//! What every grant of the token endpoint shares: the grant types' names, the claims a
//! token stands for, the token response (RFC 6749 section 5.1), and the rate-limit charge.
//! The grants import it; it imports none of them.

use crate::response::{store_failure, OAuthError};
use crate::{Client, Host};
use serde::Serialize;

pub(crate) const CLIENT_CREDENTIALS: &str = "client_credentials";
pub(crate) const AUTHORIZATION_CODE: &str = "authorization_code";
pub(crate) const REFRESH_TOKEN: &str = "refresh_token";

/// A successful token response (RFC 6749 section 5.1).
#[derive(Serialize)]
pub(crate) struct TokenResponse<'a> {
    pub access_token: &'a str,
    pub token_type: &'a str,
    pub expires_in: u64,
    pub scope: &'a str,
    /// Never for `client_credentials` (section 4.4.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<&'a str>,
    /// With the `openid` scope (OpenID Connect Core section 3.1.3.3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<&'a str>,
}

/// Charges the client's rate limit: only once it has authenticated, so that no one else can
/// spend its budget, and before anything is written, so that the budget bounds what it
/// stores.
pub(crate) fn charge(host: &impl Host, client: &Client) -> Result<(), OAuthError> {
    match host.rate_limit(&client.client_id) {
        Ok(None) => Ok(()),
        Ok(Some(wait_ms)) => Err(OAuthError::rate_limited(wait_ms)),
        Err(e) => Err(store_failure(host, e)),
    }
}

/// What an access token stands for.
pub(crate) struct Claims {
    /// The resource owner: the signed-in user, or for `client_credentials` the client.
    pub user_id: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Claims the consent app added (Hydra's `session.access_token`).
    pub ext: Option<serde_json::Value>,
    /// The audiences granted (RFC 8707 resources); none: every one of the client's.
    pub audience: Vec<String>,
    /// The user's OpenID Connect sign-in, when `openid` was granted.
    pub session: Option<crate::signed::Session>,
}
