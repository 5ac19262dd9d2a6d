#!/usr/bin/env bash
# Runs pec-proxy for real, in front of real local servers, on a fresh Debian machine:
#
#     scripts/demo.sh
#
# Installs Dovecot and Postfix if missing, starts private instances on
# loopback high ports (configs and mail under a temp dir, nothing system-wide),
# builds pec-proxy, starts it in the foreground in front of them and prints the
# settings to type into a mail client. Ctrl-C stops everything.
#
# Ports: PEC_DEMO_IMAPS_PORT (default 9993), PEC_DEMO_IMAP_PORT (9143),
# PEC_DEMO_METRICS_PORT (9925).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

imaps_port=${PEC_DEMO_IMAPS_PORT:-9993}
imap_port=${PEC_DEMO_IMAP_PORT:-9143}
metrics_port=${PEC_DEMO_METRICS_PORT:-9925}

bash scripts/install-test-deps.sh
cargo build --release --quiet

dir=$(mktemp -d /tmp/pec-proxy-demo.XXXXXX)
trap 'bash "$repo/scripts/upstreams.sh" stop "$dir" >/dev/null 2>&1 || true' EXIT
bash scripts/upstreams.sh start "$dir" --owner-pid $$ > "$dir/upstreams.env"
# shellcheck disable=SC1091
source "$dir/upstreams.env"

cat > "$dir/pec-proxy.toml" <<TOML
[[certificate]]
cert = "$repo/certs/server.pem"
key = "$repo/certs/server-key.pem"
server_names = ["localhost", "mail.pec.example"]

[[listener]]
name = "imaps"
protocol = "imap"
address = "127.0.0.1:$imaps_port"
tls = "implicit"

[[listener]]
name = "imap-starttls"
protocol = "imap"
address = "127.0.0.1:$imap_port"
tls = "starttls"

[upstream.imap]
address = "127.0.0.1:$IMAP_PORT"
tls = "starttls"
ca = "$repo/certs/ca.pem"
server_name = "localhost"
login = "pass-through"

[metrics]
listen = "127.0.0.1:$metrics_port"
TOML

target/release/pec-proxy check-config "$dir/pec-proxy.toml" >/dev/null

cat <<INFO

pec-proxy demo: private Dovecot (IMAP on 127.0.0.1:$IMAP_PORT) behind pec-proxy.

  Mail client settings (Thunderbird: Account Settings > Server Settings)
    Incoming server   IMAP
    Server            localhost
    Port              $imaps_port        Connection security: SSL/TLS
                      (or $imap_port with STARTTLS)
    User name         alice@pec.example
    Password          alice-secret
    The certificate is signed by the test CA in certs/ca.pem: import it, or
    accept the exception your client offers.

  From a terminal
    curl --cacert certs/ca.pem -u alice@pec.example:alice-secret imaps://localhost:$imaps_port/INBOX
    openssl s_client -quiet -connect localhost:$imaps_port -CAfile certs/ca.pem

  Metrics           curl http://127.0.0.1:$metrics_port/metrics
  Mail and logs     $dir

Ctrl-C stops the proxy, Dovecot and Postfix.
INFO

target/release/pec-proxy run --config "$dir/pec-proxy.toml"
