//! What every grant of the token endpoint shares: the grant types' names, the claims a
//! token stands for, the token response (RFC 6749 section 5.1), and the rate-limit charge.
//! The grants import it; it imports none of them.

use crate::dpop::Proof;
use crate::record::Confirmation;
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

/// The DPoP proof a token request sent, if any (checked: `dpop::at_token_endpoint`),
/// whether its client is public: a public client's refresh tokens are bound to the proof's
/// key too (RFC 9449 section 5); a confidential client's are not, so that it may change
/// keys; and the certificate its access tokens are bound to, if they are (RFC 8705).
#[derive(Clone, Copy)]
pub(crate) struct Sender<'a> {
    pub proof: Option<&'a Proof>,
    pub public: bool,
    /// `x5t#S256`.
    pub certificate: Option<&'a String>,
}

impl Sender<'_> {
    /// What an access token issued now is bound to.
    pub fn cnf(&self) -> Option<Confirmation> {
        Confirmation::of(self.proof.map(|p| &p.jkt), self.certificate)
    }
    /// What a grant started now binds its refresh tokens to: a public client's DPoP key or
    /// certificate (RFC 9449 section 5, RFC 8705 section 4); a confidential client's
    /// refresh tokens are bound by its authentication.
    pub fn refresh_bound(&self) -> Option<Confirmation> {
        self.cnf().filter(|_| self.public)
    }
}

/// Charges the client's rate limit, then spends the request's DPoP proof: only once it has
/// authenticated, so that no one else can spend its budget, and before anything is written,
/// so that the budget bounds what it stores.
pub(crate) fn charge(host: &impl Host, client: &Client, sender: Sender) -> Result<(), OAuthError> {
    match host.rate_limit(&client.client_id) {
        Ok(None) => {}
        Ok(Some(wait_ms)) => return Err(OAuthError::rate_limited(wait_ms)),
        Err(e) => return Err(store_failure(host, e)),
    }
    match sender.proof {
        Some(proof) => crate::dpop::spend(host, proof),
        None => Ok(()),
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
    /// What the access token is bound to; none: a bearer token.
    pub cnf: Option<Confirmation>,
}
