use super::*;

fn certs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("certs")
}

#[test]
fn loads_the_test_pki_and_rejects_mismatched_keys() {
    let d = certs_dir();
    load_certified_key(&d.join("server.pem"), &d.join("server-key.pem")).unwrap();
    let err = load_certified_key(&d.join("server.pem"), &d.join("alt-key.pem")).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    let err = load_certified_key(&d.join("server-key.pem"), &d.join("server-key.pem")).unwrap_err();
    assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
    client_config(Some(&d.join("ca.pem"))).unwrap();
}

/// The refusal table: (protocol, offered list or no extension, refused).
#[test]
fn alpn_policy_known_answers() {
    type Row = (Protocol, Option<&'static [&'static [u8]]>, bool);
    let rows: &[Row] = &[
        // No ALPN extension: what most mail clients send, served everywhere.
        (Protocol::Imap, None, false),
        (Protocol::Pop3, None, false),
        (Protocol::Smtp, None, false),
        // A browser's lists.
        (Protocol::Imap, Some(&[b"http/1.1"]), true),
        (Protocol::Pop3, Some(&[b"h2", b"http/1.1"]), true),
        (Protocol::Smtp, Some(&[b"h2", b"http/1.1"]), true),
        (Protocol::Smtp, Some(&[b"http/1.1"]), true),
        // The protocol's own identifier, alone or among others.
        (Protocol::Imap, Some(&[b"imap"]), false),
        (Protocol::Imap, Some(&[b"h2", b"imap"]), false),
        (Protocol::Pop3, Some(&[b"pop3", b"http/1.1"]), false),
        // Another mail protocol's identifier.
        (Protocol::Imap, Some(&[b"pop3"]), true),
        (Protocol::Pop3, Some(&[b"imap"]), true),
        (Protocol::Smtp, Some(&[b"imap", b"pop3"]), true),
        (Protocol::Smtp, Some(&[b"managesieve"]), true),
        // Byte for byte: no case folding, no prefix match.
        (Protocol::Imap, Some(&[b"IMAP"]), true),
        (Protocol::Imap, Some(&[b"imap4"]), true),
        (Protocol::Smtp, Some(&[b"HTTP/1.1"]), false),
        // SMTP serves what the registry does not name.
        (Protocol::Smtp, Some(&[b"smtp"]), false),
        (Protocol::Smtp, Some(&[b"smtp", b"h2"]), false),
        (Protocol::Smtp, Some(&[b"x-future-mail"]), false),
        // GREASE (RFC 8701) names no protocol: ignored by SMTP, and not
        // IMAP's identifier.
        (Protocol::Smtp, Some(&[&[0x3a, 0x3a], b"h2"]), true),
        (Protocol::Smtp, Some(&[&[0x3a, 0x3a]]), false),
        (Protocol::Imap, Some(&[&[0x3a, 0x3a], b"imap"]), false),
        (Protocol::Imap, Some(&[&[0x3a, 0x3a]]), true),
    ];
    for (protocol, offered, refused) in rows {
        let got = AlpnPolicy::of(*protocol).refuses(offered.map(|ids| ids.iter().copied()));
        let names = offered.map(|ids| {
            ids.iter()
                .map(|id| String::from_utf8_lossy(id))
                .collect::<Vec<_>>()
        });
        assert_eq!(got, *refused, "{protocol} offered {names:?}");
    }
}

#[test]
fn grease_values_are_the_sixteen_of_rfc_8701() {
    let grease: Vec<u8> = (0u8..=255).filter(|&b| is_grease(&[b, b])).collect();
    assert_eq!(grease, (0..16).map(|n| n << 4 | 0x0a).collect::<Vec<u8>>());
    assert!(!is_grease(&[0x0a, 0x1a]));
    assert!(!is_grease(&[0x0a]));
    assert!(!is_grease(&[0x0a, 0x0a, 0x0a]));
}

#[test]
fn the_registry_list_names_imap_and_pop3_and_not_smtp() {
    for own in [b"imap".as_slice(), b"pop3"] {
        assert!(REGISTERED_ALPN_IDS.contains(&own));
    }
    // The refusal config's identifier must be in no refused list.
    assert!(!REGISTERED_ALPN_IDS.contains(&REFUSAL_ALPN));
    assert!(!is_grease(REFUSAL_ALPN));
    for (i, id) in REGISTERED_ALPN_IDS.iter().enumerate() {
        assert!(!id.is_empty() && id.len() < 256 && !is_grease(id));
        assert!(
            !REGISTERED_ALPN_IDS[..i].contains(id),
            "{:?} twice",
            String::from_utf8_lossy(id)
        );
    }
}

fn base_config() -> Arc<ServerConfig> {
    let d = certs_dir();
    server_config(&[CertificateConfig {
        cert: d.join("server.pem"),
        key: d.join("server-key.pem"),
        server_names: vec!["localhost".into()],
        default: true,
    }])
    .unwrap()
}

/// A client of one TLS version, trusting the test CA, offering `alpn`.
fn client(version: &'static rustls::SupportedProtocolVersion, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(certs_dir().join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|id| id.to_vec()).collect();
    Arc::new(config)
}

/// A handshake in memory between `client` and an [`Acceptor`] for
/// `protocol`: the ALPN protocol the client got, or its error; and whether
/// the server counted an ALPN refusal.
async fn handshake(
    protocol: Protocol,
    client: Arc<ClientConfig>,
) -> (Result<Option<Vec<u8>>, rustls::Error>, bool) {
    let acceptor = Acceptor::new(&base_config(), protocol);
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move {
        match acceptor.handshake(server_io).await {
            Ok(_) => false,
            Err(e) => is_alpn_refusal(&e),
        }
    });
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let result = tokio_rustls::TlsConnector::from(client)
        .connect(name, client_io)
        .await
        .map(|tls| tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec))
        .map_err(|e| {
            e.get_ref()
                .and_then(|e| e.downcast_ref::<rustls::Error>())
                .cloned()
                .unwrap_or_else(|| panic!("not a TLS error: {e}"))
        });
    (result, server.await.unwrap())
}

/// Both paths (rustls' own check for IMAP and POP3, the proxy's look at the
/// ClientHello for SMTP), under both TLS versions: a refusal is the alert
/// `no_application_protocol` to the client and recognised as such by the
/// server; a served list negotiates the protocol's own identifier or none.
#[tokio::test]
async fn refusals_are_no_application_protocol_under_tls_1_2_and_1_3() {
    let refused = Err(rustls::Error::AlertReceived(
        rustls::AlertDescription::NoApplicationProtocol,
    ));
    type Row = (
        Protocol,
        &'static [&'static [u8]],
        Result<Option<&'static [u8]>, ()>,
    );
    let rows: &[Row] = &[
        (Protocol::Imap, &[b"http/1.1"], Err(())),
        (Protocol::Imap, &[], Ok(None)),
        (Protocol::Imap, &[b"h2", b"imap"], Ok(Some(b"imap"))),
        (Protocol::Pop3, &[b"imap"], Err(())),
        (Protocol::Pop3, &[b"pop3"], Ok(Some(b"pop3"))),
        (Protocol::Smtp, &[b"h2", b"http/1.1"], Err(())),
        (Protocol::Smtp, &[], Ok(None)),
        (Protocol::Smtp, &[b"smtp"], Ok(None)),
        (Protocol::Smtp, &[b"x-future-mail", b"h2"], Ok(None)),
    ];
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        for (protocol, alpn, expected) in rows {
            let what = format!("{protocol} {:?} offered {alpn:?}", version.version);
            let (got, counted_as_refusal) = handshake(*protocol, client(version, alpn)).await;
            match expected {
                Err(()) => {
                    assert_eq!(got, refused, "{what}");
                    assert!(counted_as_refusal, "{what}: the server saw an ALPN refusal");
                }
                Ok(negotiated) => assert_eq!(got, Ok(negotiated.map(<[u8]>::to_vec)), "{what}"),
            }
        }
    }
}
