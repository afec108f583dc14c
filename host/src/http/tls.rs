//! HTTPS on the listener: rustls with TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 offered by ALPN,
//! and client certificates (mTLS): verified against a CA when configured, or, with
//! `self_signed_client_certs`, taken whatever signed them once the client proved it holds
//! the key (RFC 8705 section 2.2).

use crate::config::{ClientCerts, ServerTls};
use anyhow::{anyhow, Context as _};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::UnixTime;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ServerConnection, WebPkiClientVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// The listener's TLS: the rustls config, and how to tell a client certificate that chains
/// to a configured CA from one that does not.
pub struct Tls {
    pub config: Arc<rustls::ServerConfig>,
    chains: Chains,
}

/// Whether a certificate the handshake took chains to the CA.
enum Chains {
    /// Always: the handshake took no other.
    Always,
    /// Ask the CA's verifier again: the handshake took any (`self_signed_client_certs`).
    AskAgain(Arc<dyn ClientCertVerifier>),
    /// Never: there is no CA.
    Never,
}

/// The certificate a client presented on a TLS connection, which the handshake proved it
/// holds the key of.
#[derive(Clone, Debug)]
pub struct ClientCert {
    /// DER.
    pub der: Arc<[u8]>,
    /// It chains to `server.tls.client_ca_file`.
    pub chained: bool,
}

impl Tls {
    /// The certificate the client of `conn` presented, once its handshake is done.
    pub fn client_cert(&self, conn: &ServerConnection) -> Option<ClientCert> {
        let chain = conn.peer_certificates()?;
        let (end_entity, intermediates) = chain.split_first()?;
        let chained = match &self.chains {
            Chains::Always => true,
            Chains::AskAgain(ca) => ca
                .verify_client_cert(end_entity, intermediates, UnixTime::now())
                .is_ok(),
            Chains::Never => false,
        };
        Some(ClientCert {
            der: Arc::from(end_entity.as_ref()),
            chained,
        })
    }
}

/// The TLS of `server.tls`; errors name the key and the file.
pub fn server_config(tls: &ServerTls) -> anyhow::Result<Tls> {
    let certs = certificates(&tls.cert_file).context("server.tls.cert_file")?;
    let key = PrivateKeyDer::from_pem_file(&tls.key_file)
        .map_err(|e| anyhow!("server.tls.key_file: {}: {e}", tls.key_file.display()))?;
    // Its own provider: the process default offers TLS 1.3 only, for the store's links.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let (builder, chains) = match &tls.client_certs {
        None => (builder.with_no_client_auth(), Chains::Always),
        Some(client_certs) => {
            let ca = match &client_certs.ca_file {
                Some(ca_file) => Some(ca_verifier(ca_file, client_certs, &provider)?),
                None => None,
            };
            match (client_certs.self_signed, ca) {
                (false, Some(ca)) => (builder.with_client_cert_verifier(ca), Chains::Always),
                (false, None) => {
                    return Err(anyhow!(
                        "server.tls.client_ca_file: is required without self_signed_client_certs"
                    ))
                }
                (true, ca) => {
                    let any = AnyCertificate {
                        chain: ca.clone(),
                        required: client_certs.required,
                        algorithms: provider.signature_verification_algorithms,
                    };
                    let chains = ca.map_or(Chains::Never, Chains::AskAgain);
                    (builder.with_client_cert_verifier(Arc::new(any)), chains)
                }
            }
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| anyhow!("server.tls: the certificate and key do not form a pair: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Tls {
        config: Arc::new(config),
        chains,
    })
}

/// The verifier of certificates that chain to `client_certs.ca_file`.
fn ca_verifier(
    ca_file: &Path,
    client_certs: &ClientCerts,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> anyhow::Result<Arc<dyn ClientCertVerifier>> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca_file).context("server.tls.client_ca_file")? {
        roots
            .add(cert)
            .map_err(|e| anyhow!("server.tls.client_ca_file: {}: {e}", ca_file.display()))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let verifier = match client_certs.required {
        true => verifier,
        false => verifier.allow_unauthenticated(),
    };
    verifier
        .build()
        .map_err(|e| anyhow!("server.tls.client_ca_file: {e}"))
}

/// Takes any client certificate whose key signed the handshake (RFC 8705 section 2.2):
/// one that chains to the CA, if there is one, or any other. Which of the two it was is
/// asked again after the handshake ([`Tls::client_cert`]): a verifier has no way to tell
/// its connection.
#[derive(Debug)]
struct AnyCertificate {
    chain: Option<Arc<dyn ClientCertVerifier>>,
    required: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyCertificate {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Hints only: a client with a self-signed certificate sends it whatever they say.
        self.chain
            .as_ref()
            .map_or(&[], |chain| chain.root_hint_subjects())
    }

    fn client_auth_mandatory(&self) -> bool {
        self.required
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // The handshake signature, checked below under the certificate's key, proves the
        // client holds it; what the certificate is worth is the guest's to say.
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn certificates(file: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(file)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("{}: {e}", file.display()))?;
    if certs.is_empty() {
        return Err(anyhow!("{}: no PEM certificate in it", file.display()));
    }
    Ok(certs)
}
