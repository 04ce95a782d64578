//! From the `[tls]` files to a rustls [`ServerConfig`]: every failure names
//! the config key whose file is at fault, so that an operator knows which of
//! three PEM files to look at.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{Error as RustlsError, InconsistentKeys, RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};

use super::TlsError;
use crate::config::{ClientAuth, TlsConfig};

/// The only application protocol served: actix-web is built without HTTP/2.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// A server config built from files, with what the log says about it.
#[derive(Debug)]
pub(super) struct Loaded {
    /// What each handshake starts from.
    pub config: Arc<ServerConfig>,
    /// sha256 of the server's leaf certificate (DER), hex: which certificate is being served.
    pub cert_sha256: String,
}

/// Reads the certificate chain, the key and the client CA named by `tls` and
/// builds a TLS 1.2 + 1.3 server config on the ring provider.
pub(super) fn load(tls: &TlsConfig) -> Result<Loaded, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certificates("tls.cert", &tls.cert)?;
    let certified_key = certified_key(&provider, chain, &tls.key)?;
    let cert_sha256 = hex::encode(Sha256::digest(certified_key.cert[0].as_ref()));

    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Provider(e.to_string()))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let roots = read_client_roots(path)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match tls.client_auth() {
                ClientAuth::Optional => verifier.allow_unauthenticated(),
                ClientAuth::Required => verifier,
            };
            let verifier = verifier.build().map_err(|e| invalid("tls.client_ca", path, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified_key)));
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    Ok(Loaded { config: Arc::new(config), cert_sha256 })
}

/// The chain of `tls.cert` with the key of `tls.key`, refused unless the key
/// is the one the leaf certificate was issued for.
fn certified_key(
    provider: &CryptoProvider,
    chain: Vec<CertificateDer<'static>>,
    key_path: &Path,
) -> Result<CertifiedKey, TlsError> {
    let pem = read("tls.key", key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| invalid("tls.key", key_path, format!("holds no PEM private key (PKCS#8, SEC1 or PKCS#1): {e}")))?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| invalid("tls.key", key_path, format!("is not a usable private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // The ring provider always knows a key's public half; `Unknown` would
        // only come from a provider that cannot tell, and is not a mismatch.
        Ok(()) | Err(RustlsError::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(RustlsError::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err(invalid("tls.key", key_path, "does not match the certificate of `tls.cert`"))
        }
        Err(e) => Err(TlsError::Invalid {
            key: "tls.cert",
            message: format!("its first certificate is not a valid X.509 certificate: {e}"),
        }),
    }
}

fn read_client_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates("tls.client_ca", path)? {
        roots.add(certificate).map_err(|e| invalid("tls.client_ca", path, format!("holds an unusable CA: {e}")))?;
    }
    Ok(roots)
}

/// Every PEM certificate of the file at `path`; none is an error.
fn read_certificates(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(key, path)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(key, path, format!("is not valid PEM: {e}")))?;
    if certificates.is_empty() {
        return Err(invalid(key, path, "holds no PEM certificate"));
    }
    Ok(certificates)
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { key, path: path.to_owned(), source })
}

fn invalid(key: &'static str, path: &Path, message: impl std::fmt::Display) -> TlsError {
    TlsError::Invalid { key, message: format!("`{}` {message}", path.display()) }
}
