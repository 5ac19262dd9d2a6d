#!/usr/bin/env bash
# Runs pec-proxy for real, in front of real local servers, on a fresh Debian machine:
#
#     scripts/demo.sh
#
# Installs Dovecot and Postfix if missing, starts private instances on
# loopback high ports (configs and mail under a temp dir, nothing
# system-wide), builds pec-proxy, creates a demo PEC mailbox with two-step
# verification and an app password in the account store, starts the proxy in
# the foreground (IMAPS, IMAP+STARTTLS, POP3S, SMTPS, submission+STARTTLS),
# and prints the settings to type into a mail client. Ctrl-C stops everything.
#
# Ports: PEC_DEMO_IMAPS_PORT (default 9993), PEC_DEMO_IMAP_PORT (9143),
# PEC_DEMO_POP3S_PORT (9995), PEC_DEMO_SMTPS_PORT (9465),
# PEC_DEMO_SUBMISSION_PORT (9587), PEC_DEMO_METRICS_PORT (9925).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

imaps_port=${PEC_DEMO_IMAPS_PORT:-9993}
imap_port=${PEC_DEMO_IMAP_PORT:-9143}
pop3s_port=${PEC_DEMO_POP3S_PORT:-9995}
smtps_port=${PEC_DEMO_SMTPS_PORT:-9465}
submission_port=${PEC_DEMO_SUBMISSION_PORT:-9587}
metrics_port=${PEC_DEMO_METRICS_PORT:-9925}
mailbox=alice@pec.example
proxy=target/release/pec-proxy

bash scripts/install-test-deps.sh
echo "demo: building pec-proxy (release)..." >&2
cargo build --release --quiet

dir=$(mktemp -d /tmp/pec-proxy-demo.XXXXXX)
trap 'bash "$repo/scripts/upstreams.sh" stop "$dir" >/dev/null 2>&1 || true' EXIT
bash scripts/upstreams.sh start "$dir" --owner-pid $$ >/dev/null  # also writes $dir/upstreams.env
# shellcheck disable=SC1091
source "$dir/upstreams.env"

# The proxy logs in upstream as the mailbox with Dovecot's master user (IMAP,
# POP3) and Postfix XCLIENT (SMTP), after checking the client itself.
printf '%s\n' "$MASTER_PASSWORD" > "$dir/master-password"
chmod 600 "$dir/master-password"

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

[[listener]]
name = "pop3s"
protocol = "pop3"
address = "127.0.0.1:$pop3s_port"
tls = "implicit"

[[listener]]
name = "smtps"
protocol = "smtp"
address = "127.0.0.1:$smtps_port"
tls = "implicit"

[[listener]]
name = "submission"
protocol = "smtp"
address = "127.0.0.1:$submission_port"
tls = "starttls"

[store]
path = "$dir/accounts.db"

[upstream.imap]
address = "127.0.0.1:$IMAP_PORT"
tls = "starttls"
ca = "$repo/certs/ca.pem"
server_name = "localhost"
login = "master-user"
master_user = "$MASTER_USER"
master_password_file = "$dir/master-password"

[upstream.pop3]
address = "127.0.0.1:$POP3_PORT"
tls = "starttls"
ca = "$repo/certs/ca.pem"
server_name = "localhost"
login = "master-user"
master_user = "$MASTER_USER"
master_password_file = "$dir/master-password"

[upstream.smtp]
address = "127.0.0.1:$SUBMISSION_PORT"
tls = "starttls"
ca = "$repo/certs/ca.pem"
server_name = "localhost"
login = "xclient"

[metrics]
listen = "127.0.0.1:$metrics_port"
TOML

$proxy check-config "$dir/pec-proxy.toml" >/dev/null

# The operator's side: a PEC mailbox with two-step verification on, so mail
# clients must use an app password (shown once, as a provider's page would).
admin() { $proxy --store "$dir/accounts.db" "$@"; }
main_password=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
printf '%s\n' "$main_password" | admin mailbox add "$mailbox" --password-stdin >/dev/null
admin mailbox set "$mailbox" --two-step on >/dev/null
app_password=$(admin app-password create "$mailbox" --label "Thunderbird (demo)" --json \
    | sed -n 's/.*"password":"\([a-z-]*\)".*/\1/p')
[[ -n "$app_password" ]] || { echo "demo: could not create the app password" >&2; exit 1; }

cat <<INFO

pec-proxy demo: private Dovecot and Postfix behind pec-proxy, on 127.0.0.1.

  Mailbox            $mailbox  (two-step verification on)
  App password       $app_password   <- shown once; use it in the mail client
  Main password      $main_password   (refused by IMAP/POP3/SMTP while two-step is on)

  Mail client settings (Thunderbird: Account Settings > Server Settings)
    Incoming (IMAP)  server localhost, port $imaps_port, SSL/TLS
                     (or port $imap_port with STARTTLS)
    Incoming (POP3)  server localhost, port $pop3s_port, SSL/TLS
    Outgoing (SMTP)  server localhost, port $smtps_port, SSL/TLS
                     (or port $submission_port with STARTTLS)
    User name        $mailbox
    Password         the app password above, normal password authentication
    The certificate is signed by the test CA in certs/ca.pem: import it, or
    accept the exception your client offers.

  From a terminal
    curl --cacert certs/ca.pem -u '$mailbox:$app_password' imaps://localhost:$imaps_port/INBOX
    swaks --server localhost:$smtps_port --tls-on-connect --auth PLAIN \\
          --auth-user $mailbox --auth-password '$app_password' \\
          --from $mailbox --to bob@pec.example --header "From: $mailbox"

  Operator
    $proxy --store $dir/accounts.db access-log $mailbox
    $proxy --store $dir/accounts.db mailbox set $mailbox --pop3 off
    curl http://127.0.0.1:$metrics_port/metrics

  Mail, configs and logs under $dir
Ctrl-C stops the proxy, Dovecot and Postfix.

INFO

$proxy run --config "$dir/pec-proxy.toml"
