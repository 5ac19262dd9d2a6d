//! TLS for both sides: the server config clients see (certificates chosen by
//! SNI, TLS 1.2 and 1.3 only), and the client config used towards upstreams.
//!
//! Both are built once at start-up (and on reload), never per connection.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::aws_lc_rs;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tracing::debug;

use crate::config::CertificateConfig;
use crate::net::Stream;
use crate::ops::metrics as m;
use crate::protocol::Protocol;

/// TLS set-up errors. They name files, never key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("no certificate is configured")]
    NoCertificate,
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The protocol versions we speak: TLS 1.2 is the PEC minimum since AgID's
/// 2019 notice, TLS 1.3 preferred.
static VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(aws_lc_rs::default_provider())
}

/// Loads a certificate chain (leaf first) and its private key.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let file_err = |path: &Path, message: String| TlsError::File {
        path: path.to_owned(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err(cert, format!("cannot read certificates: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(cert, format!("bad PEM: {e}")))?;
    if chain.is_empty() {
        return Err(file_err(cert, "no CERTIFICATE block found".into()));
    }
    // Never echo the parse error's details for a key file: keep the message generic.
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|_| file_err(key, "cannot read a PKCS#8, SEC1 or PKCS#1 private key".into()))?;
    let signing_key = aws_lc_rs::sign::any_supported_type(&key_der)
        .map_err(|_| file_err(key, "unsupported private key type".into()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified
        .keys_match()
        .map_err(|_| file_err(key, format!("does not match the certificate {}", cert.display())))?;
    Ok(certified)
}

/// Picks the certificate by SNI; clients without SNI (or with an unknown
/// name) get the default one rather than a failed handshake.
#[derive(Debug)]
pub struct SniResolver {
    by_name: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    pub fn new(certificates: &[CertificateConfig]) -> Result<Self, TlsError> {
        let mut by_name = HashMap::new();
        let mut default = None;
        for c in certificates {
            let key = Arc::new(load_certified_key(&c.cert, &c.key)?);
            for name in &c.server_names {
                by_name.insert(name.to_ascii_lowercase(), key.clone());
            }
            if c.default || default.is_none() {
                default = Some(key);
            }
        }
        Ok(Self {
            by_name,
            default: default.ok_or(TlsError::NoCertificate)?,
        })
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello
            .server_name()
            .and_then(|n| self.by_name.get(&n.to_ascii_lowercase()));
        Some(chosen.unwrap_or(&self.default).clone())
    }
}

/// The server-side TLS configuration for every client listener.
pub fn server_config(certificates: &[CertificateConfig]) -> Result<Arc<ServerConfig>, TlsError> {
    let resolver = SniResolver::new(certificates)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    // Resumption by ticket saves a full handshake for clients that reconnect
    // often (phones polling); keys rotate every 6 hours.
    config.ticketer = aws_lc_rs::Ticketer::new()?;
    Ok(Arc::new(config))
}

/// The client-side TLS configuration towards one upstream: trust `ca` if
/// given, otherwise the system's roots. Certificates are always verified.
pub fn client_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| TlsError::File {
                path: path.to_owned(),
                message: format!("cannot read: {e}"),
            })?;
            for cert in certs {
                let cert = cert.map_err(|e| TlsError::File {
                    path: path.to_owned(),
                    message: format!("bad PEM: {e}"),
                })?;
                roots.add(cert).map_err(|e| TlsError::File {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?;
            }
            if roots.is_empty() {
                return Err(TlsError::File {
                    path: path.to_owned(),
                    message: "no CA certificate found".into(),
                });
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                return Err(TlsError::File {
                    path: PathBuf::from("(system trust store)"),
                    message: "no CA certificates found; set the upstream's `ca`".into(),
                });
            }
        }
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The server side of a handshake, under `timeout`, counted by protocol
/// and version in `pec_proxy_tls_handshakes_total` and timed. `None` when
/// it failed or timed out (the client is gone: nothing more to say).
pub async fn accept(
    tcp: TcpStream,
    acceptor: &TlsAcceptor,
    timeout: Duration,
    protocol: Protocol,
) -> Option<Stream> {
    let protocol = protocol.as_str();
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, acceptor.accept(tcp)).await;
    let elapsed = started.elapsed().as_secs_f64();
    match result {
        Ok(Ok(tls)) => {
            let stream = Stream::Tls(Box::new(tokio_rustls::TlsStream::Server(tls)));
            let version = stream.tls_version().unwrap_or("other");
            metrics::counter!(m::TLS_HANDSHAKES_TOTAL, "protocol" => protocol, "result" => "ok", "version" => version)
                .increment(1);
            metrics::histogram!(m::TLS_HANDSHAKE_DURATION_SECONDS, "protocol" => protocol).record(elapsed);
            Some(stream)
        }
        Ok(Err(e)) => {
            debug!(protocol, error = %e, "TLS handshake failed");
            metrics::counter!(m::TLS_HANDSHAKES_TOTAL, "protocol" => protocol, "result" => "error", "version" => "none")
                .increment(1);
            None
        }
        Err(_) => {
            metrics::counter!(m::TLS_HANDSHAKES_TOTAL, "protocol" => protocol, "result" => "timeout", "version" => "none")
                .increment(1);
            None
        }
    }
}

#[cfg(test)]
mod tests;
