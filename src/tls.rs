//! TLS for both sides: the server config clients see (certificates chosen by
//! SNI, TLS 1.2 and 1.3 only, ALPN by the listener's protocol), and the
//! client config used towards upstreams.
//!
//! Both are built once at start-up (and on reload), never per connection.
//!
//! ALPN is the ALPACA mitigation (Brinkmann et al., USENIX Security 2021,
//! CVE-2021-3618): a web page can make a browser open TLS to a mail port
//! under the same certificate as the web site, offering `http/1.1` or `h2`.
//! Each listener refuses a ClientHello whose ALPN list names other
//! protocols and not its own with the `no_application_protocol` alert
//! (RFC 7301 §3.2), before any byte of the mail protocol; a ClientHello
//! without ALPN, which most mail clients send, is served as before. See
//! [`AlpnPolicy`].

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

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::{LazyConfigAcceptor, TlsAcceptor};
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

/// The server-side TLS configuration every client listener starts from,
/// without ALPN: [`Acceptor::new`] adds the listener's protocol.
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

/// The ALPN protocol IDs of the IANA registry "TLS Application-Layer
/// Protocol Negotiation (ALPN) Protocol IDs"
/// (<https://www.iana.org/assignments/tls-extensiontype-values/tls-extensiontype-values.xhtml#alpn-protocol-ids>),
/// byte for byte, without the GREASE values of RFC 8701. Taken from the
/// registry's CSV as reproduced by the haprox-rs crate's generated table
/// (2025); entries registered since then are missing, and on an SMTP
/// listener a missing one counts as unknown (served), never refused.
///
/// `imap` and `pop3` are registered with RFC 2595 as reference,
/// `managesieve` with RFC 5804, `ftp` with RFC 959 and 4217. SMTP has no
/// entry. (nginx's mail proxy, in its ALPACA fix of 1.21.0, answers every
/// SMTP listener with an unregistered `smtp` and refuses any other list;
/// we stay with the registry and refuse only what it names.)
pub const REGISTERED_ALPN_IDS: &[&[u8]] = &[
    b"http/0.9",
    b"http/1.0",
    b"http/1.1",
    b"spdy/1",
    b"spdy/2",
    b"spdy/3",
    b"stun.turn",
    b"stun.nat-discovery",
    b"h2",
    b"h2c",
    b"webrtc",
    b"c-webrtc",
    b"ftp",
    b"imap",
    b"pop3",
    b"managesieve",
    b"coap",
    b"co",
    b"xmpp-client",
    b"xmpp-server",
    b"acme-tls/1",
    b"mqtt",
    b"dot",
    b"ntske/1",
    b"sunrpc",
    b"h3",
    b"smb",
    b"irc",
    b"nntp",
    b"nnsp",
    b"doq",
    b"sip/2",
    b"tds/8.0",
    b"dicom",
    b"postgresql",
    b"radius/1.0",
    b"radius/1.1",
];

/// Whether `id` is one of the GREASE values of RFC 8701 §3.1 (`0x?A 0x?A`),
/// which a server ignores: they name no protocol.
fn is_grease(id: &[u8]) -> bool {
    matches!(id, [a, b] if a == b && a & 0x0f == 0x0a)
}

/// What a listener does with the ALPN list of a ClientHello, by protocol.
/// Identifiers compare byte for byte (RFC 7301 §3.1: no case folding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlpnPolicy {
    /// The protocol has an identifier of its own (IMAP `imap`, POP3
    /// `pop3`): a list with it is served and it is selected; a list
    /// without it is refused. rustls does both, from
    /// [`ServerConfig::alpn_protocols`].
    Own(&'static [u8]),
    /// The protocol has none (SMTP): a list made only of other protocols'
    /// registered identifiers ([`REGISTERED_ALPN_IDS`], GREASE aside) is
    /// refused; anything else is served and nothing is selected. An
    /// unknown identifier is served because it may be a mail one to come
    /// (an `smtp` of a future registration, or nginx's); a browser, the
    /// ALPACA attacker's tool, offers only registered ones.
    RefuseOthers,
}

impl AlpnPolicy {
    pub fn of(protocol: Protocol) -> Self {
        match protocol {
            Protocol::Imap => AlpnPolicy::Own(b"imap"),
            Protocol::Pop3 => AlpnPolicy::Own(b"pop3"),
            Protocol::Smtp => AlpnPolicy::RefuseOthers,
        }
    }

    /// Whether a ClientHello offering `offered` (`None`: no ALPN
    /// extension) is refused. Bounded by the ClientHello: rustls takes at
    /// most 64 KiB of handshake message, and each identifier is compared
    /// with the 37 registered ones, without allocating.
    pub fn refuses<'a>(self, offered: Option<impl IntoIterator<Item = &'a [u8]>>) -> bool {
        let Some(offered) = offered else {
            return false;
        };
        match self {
            AlpnPolicy::Own(own) => !offered.into_iter().any(|id| id == own),
            AlpnPolicy::RefuseOthers => {
                let mut names_a_protocol = false;
                for id in offered.into_iter().filter(|id| !is_grease(id)) {
                    if !REGISTERED_ALPN_IDS.contains(&id) {
                        return false;
                    }
                    names_a_protocol = true;
                }
                names_a_protocol
            }
        }
    }
}

/// The identifier the refusal config of an [`AlpnPolicy::RefuseOthers`]
/// listener claims, so that rustls finds no overlap with a refused list and
/// sends the alert itself. Never selected: a list holding it is served
/// with the accepting config. Not registered (a unit test checks), hence
/// in no refused list.
const REFUSAL_ALPN: &[u8] = b"smtp";

/// One listener's side of the handshake: the server config with its
/// protocol's [`AlpnPolicy`]. Built once per configuration and listener;
/// cloning shares the configs.
#[derive(Clone)]
pub struct Acceptor {
    protocol: Protocol,
    /// The config a served handshake goes on with. For [`AlpnPolicy::Own`]
    /// its `alpn_protocols` is the protocol's identifier, so rustls alone
    /// refuses other lists; for [`AlpnPolicy::RefuseOthers`] it has none.
    config: Arc<ServerConfig>,
    /// `RefuseOthers` only: the config a refused ClientHello is handed to,
    /// `alpn_protocols = [REFUSAL_ALPN]`, so that rustls answers it with
    /// `no_application_protocol`. `None` for `Own`, whose ClientHello
    /// rustls reads without the proxy looking first.
    refusal: Option<Arc<ServerConfig>>,
}

impl Acceptor {
    /// `base` (from [`server_config`]) with `protocol`'s ALPN policy.
    pub fn new(base: &ServerConfig, protocol: Protocol) -> Self {
        let with_alpn = |id: &[u8]| {
            let mut config = base.clone();
            config.alpn_protocols = vec![id.to_vec()];
            Arc::new(config)
        };
        match AlpnPolicy::of(protocol) {
            AlpnPolicy::Own(own) => Acceptor {
                protocol,
                config: with_alpn(own),
                refusal: None,
            },
            AlpnPolicy::RefuseOthers => {
                let mut config = base.clone();
                config.alpn_protocols.clear();
                Acceptor {
                    protocol,
                    config: Arc::new(config),
                    refusal: Some(with_alpn(REFUSAL_ALPN)),
                }
            }
        }
    }

    /// The handshake. `Own` listeners hand the socket to rustls with their
    /// config, as before ALPN was checked: no cost added. `RefuseOthers`
    /// listeners read the ClientHello first (rustls' `Acceptor`, which
    /// keeps the bytes it read for the connection), look at its ALPN list,
    /// and go on with the accepting or the refusal config.
    async fn handshake<IO>(&self, io: IO) -> std::io::Result<tokio_rustls::server::TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let Some(refusal) = &self.refusal else {
            return TlsAcceptor::from(self.config.clone()).accept(io).await;
        };
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io).await?;
        let config = if AlpnPolicy::RefuseOthers.refuses(start.client_hello().alpn()) {
            refusal
        } else {
            &self.config
        };
        start.into_stream(config.clone()).await
    }
}

/// Whether a failed handshake was an ALPN refusal: ours, or rustls' for an
/// [`AlpnPolicy::Own`] listener. tokio-rustls wraps the rustls error in
/// the `io::Error`.
fn is_alpn_refusal(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|e| *e == rustls::Error::NoApplicationProtocol)
}

/// The server side of a handshake, under `timeout`, counted by protocol
/// and result in `pec_proxy_tls_handshakes_total` (`ok` with the version;
/// `no_application_protocol` for an ALPN refusal, `error`, `timeout`) and
/// timed. `None` when it failed or timed out (the client is gone: nothing
/// more to say).
pub async fn accept(tcp: TcpStream, acceptor: &Acceptor, timeout: Duration) -> Option<Stream> {
    let protocol = acceptor.protocol.as_str();
    let started = Instant::now();
    let result = tokio::time::timeout(timeout, acceptor.handshake(tcp)).await;
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
        Ok(Err(e)) if is_alpn_refusal(&e) => {
            debug!(
                protocol,
                "TLS handshake refused: the client's ALPN names another protocol"
            );
            metrics::counter!(m::TLS_HANDSHAKES_TOTAL, "protocol" => protocol, "result" => "no_application_protocol", "version" => "none")
                .increment(1);
            None
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
