//! Client authentication (RFC 6749 section 2.3): `client_secret_basic`, with the
//! form-encoding of id and secret of section 2.3.1, `client_secret_post`, `none` for a
//! public client registered as such (section 2.1), which sends only its `client_id`, and a
//! JWT the client signed (`private_key_jwt`, `client_secret_jwt`: RFC 7523, [`assertion`]),
//! and the TLS client certificate of a client registered for it (`tls_client_auth`,
//! `self_signed_tls_client_auth`: RFC 8705, [`crate::mtls`]), which sends its `client_id`.
//!
//! Secrets are compared as SHA-256 digests in constant time, so timing tells nothing about a
//! secret. Client ids are not secret (as in Hydra and Keycloak): looking up a registered
//! client costs the host a copy of its record that an unknown id does not, so timing can
//! tell whether an id exists.

use crate::params::param;
use crate::response::{store_failure, OAuthError};
use crate::{Client, Host, Request};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use tokenginx_syntax::registration::{SELF_SIGNED_TLS_CLIENT_AUTH, TLS_CLIENT_AUTH};

mod assertion;
#[cfg(test)]
pub(crate) use assertion::JWT_BEARER;

/// The credentials a request presented, and how.
struct Credentials {
    client_id: String,
    secret: String,
    /// Sent in the `Authorization` header: failures then answer with a Basic challenge.
    basic: bool,
}

/// A client that authenticated.
#[derive(Debug)]
pub struct Authenticated {
    pub client: Client,
    /// A public client, identified by its `client_id` alone.
    pub public: bool,
}

/// The client that authenticated this request (told to the host), or the RFC's error. A
/// public client is let in only where `allow_public` (the token and revocation endpoints).
pub fn authenticate(
    host: &impl Host,
    req: &Request,
    allow_public: bool,
) -> Result<Authenticated, OAuthError> {
    if let Some(assertion_type) = param(req, "client_assertion_type") {
        return assertion::authenticate(host, req, assertion_type);
    }
    if req.authorization.is_none() && param(req, "client_secret").is_none() {
        if let Some(id) = param(req, "client_id") {
            return by_id(host, req, id, allow_public);
        }
    }
    let credentials = credentials(req)?;
    let client =
        crate::clients::find(host, &credentials.client_id).map_err(|e| store_failure(host, e))?;
    let presented: [u8; 32] = Sha256::digest(credentials.secret.as_bytes()).into();
    // Compare against a digest no secret has when the client is unknown: one code path.
    let expected = client
        .as_ref()
        .map(|c| c.secret_sha256.as_slice())
        .unwrap_or(&[0u8; 32]);
    match client {
        Some(client) if constant_time_eq(&presented, expected) => {
            host.authenticated(&client.client_id);
            Ok(Authenticated {
                client,
                public: false,
            })
        }
        _ => Err(OAuthError::invalid_client(
            "client authentication failed",
            credentials.basic,
        )),
    }
}

/// A client named by `client_id` alone: one registered with `token_endpoint_auth_method:
/// none` (where `allow_public`), or one that authenticates with its TLS certificate.
fn by_id(
    host: &impl Host,
    req: &Request,
    client_id: &str,
    allow_public: bool,
) -> Result<Authenticated, OAuthError> {
    let client = crate::clients::find(host, client_id).map_err(|e| store_failure(host, e))?;
    let method = client
        .as_ref()
        .and_then(|client| crate::clients::registration(host, client))
        .map(|r| r.token_endpoint_auth_method);
    let (client, public) = match (client, method.as_deref()) {
        (Some(client), Some("none")) if allow_public => (client, true),
        (Some(client), Some(method @ (TLS_CLIENT_AUTH | SELF_SIGNED_TLS_CLIENT_AUTH))) => {
            let certificate = req.certificate(host);
            if let Err(why) = crate::mtls::authenticate(host, &client, method, certificate) {
                return Err(OAuthError::invalid_client(
                    format!("client authentication failed: {why}"),
                    false,
                ));
            }
            (client, false)
        }
        _ => {
            return Err(OAuthError::invalid_client(
                "client authentication is required",
                true,
            ))
        }
    };
    host.authenticated(&client.client_id);
    Ok(Authenticated { client, public })
}

/// A client's registered public keys (`jwks`, JSON): a runtime client's from its record, a
/// configured one's from the host.
pub(crate) fn jwks_of(host: &impl Host, client: &Client) -> Option<String> {
    match &client.runtime {
        Some(runtime) => runtime.jwks.clone(),
        None => host.client_jwks(&client.client_id),
    }
}

fn credentials(req: &Request) -> Result<Credentials, OAuthError> {
    let body_id = param(req, "client_id");
    let body_secret = param(req, "client_secret");
    let header = req.authorization.as_deref();

    let Some(header) = header else {
        return match (body_id, body_secret) {
            (Some(id), Some(secret)) => Ok(Credentials {
                client_id: id.to_owned(),
                secret: secret.to_owned(),
                basic: false,
            }),
            // No credentials, or an id without a secret (no public clients here): challenge.
            _ => Err(OAuthError::invalid_client(
                "client authentication is required",
                true,
            )),
        };
    };

    let Some(encoded) = strip_scheme(header, "Basic") else {
        return Err(OAuthError::invalid_client(
            "the Authorization header must use the Basic scheme",
            true,
        ));
    };
    if body_secret.is_some() {
        return Err(OAuthError::invalid_request(
            "the client used more than one authentication method",
        ));
    }
    let (client_id, secret) = decode_basic(encoded)
        .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials", true))?;
    if body_id.is_some_and(|id| id != client_id) {
        return Err(OAuthError::invalid_request(
            "client_id does not match the authenticated client",
        ));
    }
    Ok(Credentials {
        client_id,
        secret,
        basic: true,
    })
}

/// The credentials of `<scheme> <rest>`, the scheme matched case-insensitively.
pub(crate) fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (name, rest) = header.split_once(' ')?;
    name.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// `base64(form-encode(id) ":" form-encode(secret))`, section 2.3.1.
fn decode_basic(encoded: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (id, secret) = text.split_once(':')?;
    let id = crate::params::form_decode(id)?;
    let secret = crate::params::form_decode(secret)?;
    (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
}

/// Equality whose time depends only on the lengths, not on where the bytes differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{basic, form as request, post_auth, TestHost, DEMO_ID, DEMO_SECRET};

    #[test]
    fn client_secret_basic_authenticates() {
        let host = TestHost::new();
        let client = authenticate(
            &host,
            &request(&[], Some(basic(DEMO_ID, DEMO_SECRET))),
            false,
        )
        .unwrap()
        .client;
        assert_eq!(client.client_id, DEMO_ID);
        assert_eq!(host.take_authenticated().as_deref(), Some(DEMO_ID));
    }

    #[test]
    fn basic_credentials_are_form_decoded_per_section_2_3_1() {
        let host = TestHost::new();
        // "odd id:+%" form-encoded is "odd+id%3A%2B%25"; the header is built from that.
        let header = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode("odd+id%3A%2B%25:s%C3%A9cret+%26+more")
        );
        let client = authenticate(&host, &request(&[], Some(header)), false)
            .unwrap()
            .client;
        assert_eq!(client.client_id, "odd id:+%");
    }

    #[test]
    fn client_secret_post_authenticates() {
        let host = TestHost::new();
        let client = authenticate(
            &host,
            &request(&post_auth(DEMO_ID, DEMO_SECRET), None),
            false,
        )
        .unwrap()
        .client;
        assert_eq!(client.client_id, DEMO_ID);
    }

    #[test]
    fn wrong_secret_is_invalid_client_with_challenge_only_for_basic() {
        let host = TestHost::new();
        let err =
            authenticate(&host, &request(&[], Some(basic(DEMO_ID, "wrong"))), false).unwrap_err();
        assert_eq!(
            (err.status, err.error, err.challenge),
            (401, "invalid_client", true)
        );
        let err =
            authenticate(&host, &request(&post_auth(DEMO_ID, "wrong"), None), false).unwrap_err();
        assert_eq!(
            (err.status, err.error, err.challenge),
            (401, "invalid_client", false)
        );
        assert_eq!(
            host.take_authenticated(),
            None,
            "a failed attempt is not reported"
        );
    }

    #[test]
    fn unknown_client_is_invalid_client() {
        let host = TestHost::new();
        let err = authenticate(
            &host,
            &request(&post_auth("nobody", DEMO_SECRET), None),
            false,
        )
        .unwrap_err();
        assert_eq!(err.error, "invalid_client");
    }

    #[test]
    fn no_credentials_is_invalid_client_with_challenge() {
        let host = TestHost::new();
        let err =
            authenticate(&host, &request(&[("client_id", DEMO_ID)], None), false).unwrap_err();
        assert_eq!(
            (err.status, err.error, err.challenge),
            (401, "invalid_client", true)
        );
    }

    #[test]
    fn two_authentication_methods_are_invalid_request() {
        let host = TestHost::new();
        let err = authenticate(
            &host,
            &request(
                &[("client_secret", DEMO_SECRET)],
                Some(basic(DEMO_ID, DEMO_SECRET)),
            ),
            false,
        )
        .unwrap_err();
        assert_eq!((err.status, err.error), (400, "invalid_request"));
    }

    #[test]
    fn malformed_basic_header_is_invalid_client() {
        let host = TestHost::new();
        for header in [
            "Basic !!!",
            "Basic",
            "Bearer abc",
            "Basic Zm9v", /* "foo": no colon */
        ] {
            let err = authenticate(&host, &request(&[], Some(header.into())), false).unwrap_err();
            assert_eq!((err.status, err.error), (401, "invalid_client"), "{header}");
        }
    }

    #[test]
    fn constant_time_eq_compares_whole_slices() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
