//! A client registered at runtime as the store keeps it, and what it stands for: the same
//! [`Client`] a configured client is, and the same rules (`client_rules`).

use super::RuntimeParts;
use crate::host::Inherited;
use crate::{Algorithm, CertificateName, Client, MtlsClient, Registration, TokenFormat};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A client at `oauth:client:{client-<b>}:<hex sha256(client_id)>`, in Ory Hydra's
/// `OAuth2Client` names. No secret is kept: only its digest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Stored {
    pub client_id: String,
    #[serde(default)]
    pub client_name: String,
    /// The hex SHA-256 of its secret; empty for a public client.
    #[serde(default)]
    pub client_secret_sha256: String,
    pub grant_types: Vec<String>,
    pub response_types: Vec<String>,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Space-separated.
    #[serde(default)]
    pub scope: String,
    #[serde(default)]
    pub audience: Vec<String>,
    pub token_endpoint_auth_method: String,
    #[serde(default)]
    pub skip_consent: bool,
    /// `opaque` or `jwt`; none: `oauth.access_token_strategy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_strategy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_signed_response_alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_signed_response_alg: Option<String>,
    /// Hydra's fields this guest keeps and shows but does not act on (`metadata`,
    /// `owner`, `contacts`, `client_uri`, ...), by name.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub shown: Map<String, Value>,
    /// Unix seconds.
    pub created_at: u64,
    pub updated_at: u64,
    /// For a client registered by RFC 7591: the hex SHA-256 of its registration access
    /// token (RFC 7592), which reads, changes and deletes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_access_token_sha256: Option<String>,
    /// Its token requests must carry a DPoP proof (RFC 9449 section 5.2).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens: bool,
    /// What names its certificate for `tls_client_auth` (RFC 8705 section 2.1.2): one of
    /// the `tls_client_auth_*` keys, and its value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_name: Option<(String, String)>,
    /// Its access tokens are bound to its TLS certificate (RFC 8705 section 3).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls_client_certificate_bound_access_tokens: bool,
}

/// The signing algorithm named `name` (RS256 when none).
pub fn algorithm(name: Option<&str>) -> Option<Algorithm> {
    match name.unwrap_or("RS256") {
        "RS256" => Some(Algorithm::Rs256),
        "ES256" => Some(Algorithm::Es256),
        "EdDSA" => Some(Algorithm::EdDsa),
        _ => None,
    }
}

impl Stored {
    /// The scopes, one by one.
    pub fn scopes(&self) -> Vec<String> {
        self.scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Whether its access tokens are JWTs.
    pub fn jwt_access_tokens(&self, inherited: &Inherited) -> bool {
        match self.access_token_strategy.as_deref() {
            Some(strategy) => strategy == "jwt",
            None => inherited.jwt_access_tokens,
        }
    }

    /// What it registered for mutual TLS.
    pub fn mtls(&self) -> Option<MtlsClient> {
        let certificate_name = self
            .tls_client_auth_name
            .clone()
            .and_then(|(key, value)| CertificateName::from_key(&key, value));
        let bound_access_tokens = self.tls_client_certificate_bound_access_tokens;
        (certificate_name.is_some() || bound_access_tokens).then_some(MtlsClient {
            certificate_name,
            bound_access_tokens,
        })
    }

    /// The client it stands for, with what a configured client's lookups answer.
    pub fn client(&self, inherited: &Inherited) -> Client {
        let secret_sha256 = (0..self.client_secret_sha256.len() / 2)
            .filter_map(|i| {
                u8::from_str_radix(&self.client_secret_sha256[2 * i..2 * i + 2], 16).ok()
            })
            .collect();
        let format = TokenFormat {
            jwt_access_tokens: self.jwt_access_tokens(inherited),
            access_token_alg: algorithm(self.access_token_signed_response_alg.as_deref())
                .unwrap_or(Algorithm::Rs256),
            id_token_alg: algorithm(self.id_token_signed_response_alg.as_deref())
                .unwrap_or(Algorithm::Rs256),
            audience: self.audience.clone(),
            id_token_ttl: inherited.id_token_ttl,
        };
        Client {
            client_id: self.client_id.clone(),
            secret_sha256,
            scopes: self.scopes(),
            // A request that names no scope gets every scope the client has.
            default_scopes: self.scopes(),
            grant_types: self.grant_types.clone(),
            access_token_ttl: inherited.access_token_ttl,
            runtime: Some(Box::new(RuntimeParts {
                registration: Registration {
                    client_name: self.client_name.clone(),
                    redirect_uris: self.redirect_uris.clone(),
                    token_endpoint_auth_method: self.token_endpoint_auth_method.clone(),
                    skip_consent: self.skip_consent,
                },
                refresh: inherited.refresh,
                format,
                registered_at: self.created_at,
                dpop_bound: self.dpop_bound_access_tokens,
                jwks: self.shown.get("jwks").map(Value::to_string),
                mtls: self.mtls(),
            })),
        }
    }
}
