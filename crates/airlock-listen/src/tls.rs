//! TLS for a listener, with a certificate that can be replaced while connections are served:
//! certificates are renewed every few weeks, and a console restart would cut every event stream
//! and in-flight deploy. The new pair is checked before it replaces the old one, so a bad file
//! leaves the listener serving what it had.

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// Why a certificate and key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM.
    #[error("cannot read {what} from {path}: {message}")]
    Read {
        /// `certificates` or `a private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The files were read but do not make a certificate rustls can serve.
    #[error("the certificate {cert} and the key {key} cannot be served: {message}")]
    Unusable {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        message: String,
    },
}

/// A server certificate and key read from PEM files, reloadable.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: Arc<Reloadable>,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tls({}, {})", self.cert.display(), self.key.display())
    }
}

impl Tls {
    /// Reads the pair and builds a server offering h2 and HTTP/1.1 by ALPN.
    pub fn load(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let provider = provider();
        let current = Arc::new(Reloadable(RwLock::new(read_pair(cert, key, &provider)?)));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| unusable(cert, key, e))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Reads the files again; new handshakes use the new pair. On error the old pair stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = read_pair(&self.cert, &self.key, &provider())?;
        *self.current.0.write().unwrap_or_else(|e| e.into_inner()) = pair;
        Ok(())
    }

    /// The certificate file, for messages.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// The acceptor new connections are handshaken with (it follows reloads).
    pub fn acceptor(&self) -> &tokio_rustls::TlsAcceptor {
        &self.acceptor
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn unusable(cert: &Path, key: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Unusable {
        cert: cert.to_owned(),
        key: key.to_owned(),
        message: e.to_string(),
    }
}

fn read_pair(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let read_error = |what, path: &Path, e: &dyn std::fmt::Display| TlsError::Read {
        what,
        path: path.to_owned(),
        message: e.to_string(),
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| read_error("certificates", cert, &e))?;
    if chain.is_empty() {
        return Err(read_error("certificates", cert, &"no CERTIFICATE block"));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| read_error("a private key", key, &e))?;
    // from_der also checks that the key belongs to the first certificate.
    CertifiedKey::from_der(chain, private, provider)
        .map(Arc::new)
        .map_err(|e| unusable(cert, key, e))
}

/// The pair new handshakes get.
#[derive(Debug)]
struct Reloadable(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Reloadable {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|e| e.into_inner()).clone())
    }
}
