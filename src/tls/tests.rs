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
