#!/usr/bin/env bash
# Regenerate the committed TEST PKI (never use these keys for anything real):
#
#     certs/regen.sh            # from the repository root, or from anywhere
#
# It rewrites, in the directory of this script:
#   ca.pem / ca-key.pem             test CA, ECDSA P-256, valid 100 years
#   server.pem / server-key.pem     leaf for the proxy: SAN DNS localhost,
#                                   mail.pec.example, imap.pec.example,
#                                   IP 127.0.0.1, ::1 (server.pem = leaf + CA)
#   alt.pem / alt-key.pem           second leaf for SNI tests: SAN DNS
#                                   mail.other.example, alt.pec.example (leaf + CA)
#   upstream.pem / upstream-key.pem leaf for the private Dovecot/Postfix TLS
#                                   listeners: SAN DNS localhost, IP 127.0.0.1
#                                   (leaf + CA)
# All keys are ECDSA P-256 in PKCS#8 PEM ("BEGIN PRIVATE KEY"), all leaves are
# signed by ca.pem and valid 100 years. Requires openssl >= 1.1.1.
set -euo pipefail

cd "$(dirname "$0")"
DAYS=36525
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

newkey() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
    chmod 644 "$1"
}

echo "regen: CA" >&2
newkey ca-key.pem
cat >"$tmp/ca.ext" <<'EOF'
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
openssl req -new -key ca-key.pem -subj "/O=pec-proxy tests/CN=pec-proxy Test CA" -out "$tmp/ca.csr"
openssl x509 -req -in "$tmp/ca.csr" -signkey ca-key.pem -days "$DAYS" \
    -sha256 -set_serial "0x$(openssl rand -hex 16)" -extfile "$tmp/ca.ext" -out ca.pem

# leaf NAME CN SAN
leaf() {
    local name=$1 cn=$2 san=$3
    echo "regen: leaf $name ($san)" >&2
    newkey "$name-key.pem"
    cat >"$tmp/$name.ext" <<EOF
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = $san
EOF
    openssl req -new -key "$name-key.pem" -subj "/O=pec-proxy tests/CN=$cn" -out "$tmp/$name.csr"
    openssl x509 -req -in "$tmp/$name.csr" -CA ca.pem -CAkey ca-key.pem -days "$DAYS" \
        -sha256 -set_serial "0x$(openssl rand -hex 16)" -extfile "$tmp/$name.ext" \
        -out "$tmp/$name.leaf.pem"
    cat "$tmp/$name.leaf.pem" ca.pem >"$name.pem"
    openssl verify -CAfile ca.pem "$tmp/$name.leaf.pem" >&2
}

leaf server localhost \
    "DNS:localhost, DNS:mail.pec.example, DNS:imap.pec.example, IP:127.0.0.1, IP:::1"
leaf alt mail.other.example "DNS:mail.other.example, DNS:alt.pec.example"
leaf upstream localhost "DNS:localhost, IP:127.0.0.1"

chmod 644 ./*.pem
echo "regen: done" >&2
