//! Mutual TLS (RFC 8705): clients that authenticate with the certificate they present on
//! the TLS connection, and access tokens bound to it.
//!
//! - `tls_client_auth` (section 2.1): the certificate chains to the listener's CA (the
//!   host checked: `request.client-cert`) and carries the name the client registered: its
//!   subject DN or one subject alternative name ([`crate::x509`]).
//! - `self_signed_tls_client_auth` (section 2.2): the certificate, whoever signed it, is one
//!   the client registered (the first of a key's `x5c` in its `jwks`), or one of a key it
//!   registered. The handshake proved the client holds its key.
//! - `tls_client_certificate_bound_access_tokens` (section 3): the access token records the
//!   certificate's SHA-256 (`cnf.x5t#S256`), and userinfo takes it only over a connection
//!   that presents that certificate.

use crate::record::Confirmation;
use crate::response::OAuthError;
use crate::x509;
use crate::{CertificateName, Client, Host, MtlsClient, Request};
use base64::Engine as _;
use sha2::{Digest, Sha256};
use tokenginx_syntax::registration::TLS_CLIENT_AUTH;

/// The certificate a client presented on its TLS connection, which the handshake proved it
/// holds the key of.
#[derive(Clone, Debug, PartialEq)]
pub struct Certificate {
    /// DER.
    pub der: Vec<u8>,
    /// It chains to the listener's CA (`server.tls.client_ca_file`).
    pub chained: bool,
}

impl Certificate {
    /// The certificate of this request: `chained`, the one `request.client-cert` holds, or
    /// else the one the host took without a chain (`caller.presented-cert`).
    pub fn of_request(host: &impl Host, chained: Option<Vec<u8>>) -> Option<Certificate> {
        match chained {
            Some(der) => Some(Certificate { der, chained: true }),
            None => host.presented_cert().map(|der| Certificate {
                der,
                chained: false,
            }),
        }
    }

    /// Its RFC 8705 section 3.1 thumbprint: base64url(SHA-256(DER)).
    pub fn thumbprint(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(&self.der))
    }
}

/// What `client` registered for mutual TLS.
pub fn of_client(host: &impl Host, client: &Client) -> Option<MtlsClient> {
    match &client.runtime {
        Some(parts) => parts.mtls.clone(),
        None => host.client_mtls(&client.client_id),
    }
}

/// Whether `certificate` authenticates `client`, registered with `method` (one of the two
/// above), or why not, said only to the log: the client is told `invalid_client`.
pub fn authenticate(
    host: &impl Host,
    client: &Client,
    method: &str,
    certificate: Option<&Certificate>,
) -> Result<(), &'static str> {
    let certificate = certificate.ok_or("no client certificate was presented")?;
    if method == TLS_CLIENT_AUTH {
        if !certificate.chained {
            return Err("the client certificate does not chain to a trusted CA");
        }
        let name = of_client(host, client).and_then(|m| m.certificate_name);
        let name = name.ok_or("the client registered no certificate name")?;
        let names = x509::names(&certificate.der).ok_or("the client certificate is unreadable")?;
        return match names_match(&names, &name) {
            true => Ok(()),
            false => Err("the client certificate does not carry the registered name"),
        };
    }
    let jwks = crate::client_auth::jwks_of(host, client).ok_or("the client registered no jwks")?;
    match registers(&jwks, &certificate.der) {
        true => Ok(()),
        false => Err("the client certificate is none the client registered"),
    }
}

/// Whether `names` carry `name` (RFC 8705 section 2.1.2). DNS names compare without case;
/// an IP address as an address, whatever its text; the others exactly.
fn names_match(names: &x509::Names, name: &CertificateName) -> bool {
    match name {
        CertificateName::SubjectDn(dn) => x509::parse_dn(dn).is_ok_and(|dn| names.subject_is(&dn)),
        CertificateName::SanDns(dns) => names.dns.iter().any(|n| n.eq_ignore_ascii_case(dns)),
        CertificateName::SanUri(uri) => names.uris.iter().any(|n| n == uri),
        CertificateName::SanEmail(email) => names.emails.iter().any(|n| n == email),
        CertificateName::SanIp(ip) => ip
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| names.ips.contains(&ip)),
    }
}

/// Whether the JWK set `jwks` registers the certificate `der`: a key whose `x5c` starts
/// with it (RFC 8705 section 2.2.2; RFC 7517 section 4.7's standard base64), or that is its
/// public key (the same RFC 7638 thumbprint), so that a client may renew a certificate for
/// the key it registered.
fn registers(jwks: &str, der: &[u8]) -> bool {
    let set: serde_json::Value = serde_json::from_str(jwks).unwrap_or_default();
    let Some(keys) = set["keys"].as_array() else {
        return false;
    };
    let public = x509::public_jwk(der).and_then(|jwk| crate::jose::thumbprint(&jwk).ok());
    keys.iter().any(|key| {
        let first = key["x5c"].get(0).and_then(serde_json::Value::as_str);
        let first = first.and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok());
        let thumbprint = key
            .as_object()
            .and_then(|k| crate::jose::thumbprint(k).ok());
        first.as_deref() == Some(der) || (public.is_some() && thumbprint == public)
    })
}

/// What an access token issued to `client` on `req` is bound to, if its tokens are bound
/// to its certificate (section 3); a request without one is refused.
pub fn binding(
    host: &impl Host,
    client: &Client,
    req: &Request,
) -> Result<Option<String>, OAuthError> {
    if !of_client(host, client).is_some_and(|m| m.bound_access_tokens) {
        return Ok(None);
    }
    match req.certificate(host) {
        Some(certificate) => Ok(Some(certificate.thumbprint())),
        None => Err(OAuthError::invalid_request(
            "this client's access tokens are bound to its TLS client certificate: present one",
        )),
    }
}

/// Whether a token bound as `cnf` may be used over a connection whose chained certificate
/// is `chained` (or that presented another to the host): section 3, the resource's check.
pub fn holds(host: &impl Host, cnf: Option<&Confirmation>, chained: Option<&[u8]>) -> bool {
    let Some(bound) = cnf.and_then(|c| c.x5t_s256.as_deref()) else {
        return true;
    };
    Certificate::of_request(host, chained.map(<[u8]>::to_vec)).is_some_and(|c| {
        crate::client_auth::constant_time_eq(c.thumbprint().as_bytes(), bound.as_bytes())
    })
}

#[cfg(test)]
mod tests;
