//! HTTPS on the listener: rustls with TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 offered by ALPN,
//! and client certificates verified against a CA when configured (mTLS).

use crate::config::ServerTls;
use anyhow::{anyhow, Context as _};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// The rustls server config of `server.tls`; errors name the key and the file.
pub fn server_config(tls: &ServerTls) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs = certificates(&tls.cert_file).context("server.tls.cert_file")?;
    let key = PrivateKeyDer::from_pem_file(&tls.key_file)
        .map_err(|e| anyhow!("server.tls.key_file: {}: {e}", tls.key_file.display()))?;
    // Its own provider: the process default offers TLS 1.3 only, for the store's links.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match &tls.client_certs {
        None => builder.with_no_client_auth(),
        Some(client_certs) => {
            let ca_file = &client_certs.ca_file;
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca_file).context("server.tls.client_ca_file")? {
                roots.add(cert).map_err(|e| {
                    anyhow!("server.tls.client_ca_file: {}: {e}", ca_file.display())
                })?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier = match client_certs.required {
                true => verifier,
                false => verifier.allow_unauthenticated(),
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| anyhow!("server.tls.client_ca_file: {e}"))?,
            )
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| anyhow!("server.tls: the certificate and key do not form a pair: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
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
