#!/usr/bin/env bash
# Side-by-side benchmark: direct upstream, nginx's mail proxy and pec-proxy,
# in one run, on loopback, against the same upstream simulator, with the
# same certificate (ECDSA P-256) and TLS versions (1.2, 1.3). Prints a table
# with ratios; see benches/README.md.
#
#   sudo benches/compare.sh                 # everything, ~5 minutes
#   IDLE_SESSIONS=2000 benches/compare.sh   # smaller idle run
#
# Needs root only to apt-get install nginx-light + libnginx-mod-mail when
# missing. Every load run is bounded by a count and a duration; every
# process started here is stopped on exit.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO" # the tool's defaults (certs/ca.pem) are relative to the repository
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
LOGINS=${LOGINS:-3000}               # logins per login run
LOGIN_CONCURRENCY=${LOGIN_CONCURRENCY:-8}
LATENCY_LOGINS=${LATENCY_LOGINS:-1000}
LATENCY_CONCURRENCY=${LATENCY_CONCURRENCY:-4}   # "moderate load"
IDLE_SESSIONS=${IDLE_SESSIONS:-9000}
BULK_COUNT=${BULK_COUNT:-250}        # fetches of the message per bulk run
MESSAGE_BYTES=${MESSAGE_BYTES:-4194304}
RUNS=${RUNS:-1}                      # repeat each login/bulk run, keep the median CPU figure
WORK=$(mktemp -d /tmp/pec-compare.XXXXXX)
RESULTS=$WORK/results.txt

# Ports: simulator 20xxx, pec-proxy pass-through 21xxx, nginx 22xxx,
# pec-proxy with an account store 23xxx, the floor proxy 24993.
SIM_IMAP=20143 SIM_POP3=20110 SIM_SMTP=20587 SIM_IMAPS=20993 SIM_HANDSHAKE=20994 FLOOR=24993

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [[ -f $WORK/nginx.pid ]]; then kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true; fi
}
trap cleanup EXIT

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

echo "== building (release)" >&2
(cd "$REPO" && cargo build --release --bins -q)
BENCH=$TARGET_DIR/release/pec-proxy-bench
PROXY=$TARGET_DIR/release/pec-proxy

if [[ ! -f /usr/lib/nginx/modules/ngx_mail_module.so ]]; then
    echo "== installing nginx-light and libnginx-mod-mail" >&2
    # Keep the package scripts from starting the system nginx.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light libnginx-mod-mail >&2
fi

wait_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "port $1 never opened" >&2
    exit 1
}

echo "== upstream simulator" >&2
"$BENCH" --threads 2 upstream-sim --imap 127.0.0.1:$SIM_IMAP --pop3 127.0.0.1:$SIM_POP3 \
    --smtp 127.0.0.1:$SIM_SMTP --imaps 127.0.0.1:$SIM_IMAPS --handshake 127.0.0.1:$SIM_HANDSHAKE \
    --cert "$REPO/certs/server.pem" --key "$REPO/certs/server-key.pem" \
    --message-bytes "$MESSAGE_BYTES" --lifetime-secs 1800 2>"$WORK/sim.log" &
SIM_PID=$!
pids+=("$SIM_PID")
wait_port $SIM_HANDSHAKE

echo "== floor proxy (the least an IMAPS login proxy does on tokio + rustls)" >&2
"$BENCH" --threads 2 floor-proxy --listen 127.0.0.1:$FLOOR --upstream 127.0.0.1:$SIM_IMAP \
    --cert "$REPO/certs/server.pem" --key "$REPO/certs/server-key.pem" --lifetime-secs 1800 2>"$WORK/floor.log" &
FLOOR_PID=$!
pids+=("$FLOOR_PID")
wait_port $FLOOR

echo "== nginx mail proxy" >&2
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_mail_module.so;
worker_processes auto;
worker_rlimit_nofile 20000;
pid $WORK/nginx.pid;
error_log $WORK/nginx/error.log error;
events { worker_connections 19500; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    # The cheapest auth_http there is: a static answer, no backend.
    map \$http_auth_protocol \$mail_port { imap $SIM_IMAP; pop3 $SIM_POP3; smtp $SIM_SMTP; }
    server {
        listen 127.0.0.1:22080;
        location = /auth {
            add_header Auth-Status OK;
            add_header Auth-Server 127.0.0.1;
            add_header Auth-Port \$mail_port;
            return 204;
        }
    }
}
mail {
    auth_http 127.0.0.1:22080/auth;
    ssl_certificate $REPO/certs/server.pem;
    ssl_certificate_key $REPO/certs/server-key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:MAIL:10m;
    ssl_session_tickets on;
    imap_auth login plain;
    pop3_auth plain;
    smtp_auth login plain;
    server { listen 127.0.0.1:22993 ssl; protocol imap; }
    server { listen 127.0.0.1:22995 ssl; protocol pop3; }
    server { listen 127.0.0.1:22465 ssl; protocol smtp; xclient off; }
}
EOF
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" -e "$WORK/nginx/error.log"
wait_port 22993
NGINX_MASTER=$(cat "$WORK/nginx.pid")
NGINX_PIDS=("$NGINX_MASTER" $(pgrep -P "$NGINX_MASTER"))

proxy_config() { # $1 port prefix, $2 extra upstream keys, $3 extra sections
    cat <<EOF
[[certificate]]
cert = "$REPO/certs/server.pem"
key = "$REPO/certs/server-key.pem"
server_names = ["localhost"]
default = true

[[listener]]
name = "imaps"
protocol = "imap"
address = "127.0.0.1:${1}993"
tls = "implicit"

[[listener]]
name = "pop3s"
protocol = "pop3"
address = "127.0.0.1:${1}995"
tls = "implicit"

[[listener]]
name = "smtps"
protocol = "smtp"
address = "127.0.0.1:${1}465"
tls = "implicit"

[upstream.imap]
address = "127.0.0.1:$SIM_IMAP"
tls = "none"
send_client_address = false
$2

[upstream.pop3]
address = "127.0.0.1:$SIM_POP3"
tls = "none"
send_client_address = false
$2

[upstream.smtp]
address = "127.0.0.1:$SIM_SMTP"
tls = "none"
send_client_address = false
$2

[pec_checks]
sender = false
from_header = false
no_bcc = false
size = false

[limits]
max_connections = 19500
# The load tool's few source addresses stand for thousands of clients
# (nginx has no per-client limit): exempt them, as a webmail would be.
trusted_networks = ["127.0.0.0/8"]

[metrics]
listen = "127.0.0.1:${1}925"
$3
EOF
}

echo "== pec-proxy (pass-through)" >&2
proxy_config 21 'login = "pass-through"' '' >"$WORK/pass.toml"
"$PROXY" run -c "$WORK/pass.toml" >"$WORK/pass.log" 2>&1 &
PASS_PID=$!
pids+=("$PASS_PID")

echo "== pec-proxy (account store, master user)" >&2
echo "sim-master-password" >"$WORK/master"
proxy_config 23 "login = \"master-user\"
master_user = \"proxy-master\"
master_password_file = \"$WORK/master\"" "
[store]
path = \"$WORK/accounts.db\"" >"$WORK/store.toml"
echo "bench-password" | "$PROXY" mailbox add bench@pec.example --password-stdin --store "$WORK/accounts.db" >/dev/null
"$PROXY" run -c "$WORK/store.toml" >"$WORK/store.log" 2>&1 &
STORE_PID=$!
pids+=("$STORE_PID")
wait_port 21993
wait_port 23993

bench() { "$BENCH" --threads 2 "$@" 2>>"$WORK/bench.err" | tee -a "$RESULTS" >&2; }

login_runs() { # $1 label, $2 port prefix or "direct", $3.. pids
    local label=$1 prefix=$2
    shift 2
    local pidargs=()
    for p in "$@"; do pidargs+=(--pid "$p"); done
    for proto in imap pop3 smtp; do
        local port tls=(--tls)
        case $proto in imap) port=993 ;; pop3) port=995 ;; smtp) port=465 ;; esac
        if [[ $prefix == direct ]]; then
            tls=()
            case $proto in imap) port=$SIM_IMAP ;; pop3) port=$SIM_POP3 ;; smtp) port=$SIM_SMTP ;; esac
        else
            port=$prefix$port
        fi
        for _ in $(seq "$RUNS"); do
            bench login --label "$label" --target "127.0.0.1:$port" "${tls[@]}" --protocol $proto \
                --count "$LOGINS" -c "$LOGIN_CONCURRENCY" "${pidargs[@]}"
        done
        # Latency at moderate load, separately.
        bench login --label "$label-latency" --target "127.0.0.1:$port" "${tls[@]}" --protocol $proto \
            --count "$LATENCY_LOGINS" -c "$LATENCY_CONCURRENCY"
    done
    if [[ $prefix != direct ]]; then
        bench login --label "$label-resume" --target "127.0.0.1:${prefix}993" --tls --resume --protocol imap \
            --count "$LOGINS" -c "$LOGIN_CONCURRENCY" "${pidargs[@]}"
    fi
}

nginx_pidargs=()
for p in "${NGINX_PIDS[@]}"; do nginx_pidargs+=(--pid "$p"); done

echo "== baselines: bare rustls TLS 1.3 handshake, direct-TLS IMAP, the floor proxy" >&2
for _ in $(seq "$RUNS"); do
    bench login --label rustls-handshake --handshake-only --tls --tls13 --target 127.0.0.1:$SIM_HANDSHAKE \
        --count "$LOGINS" -c "$LOGIN_CONCURRENCY" --pid "$SIM_PID"
    bench login --label direct-tls-cpu --tls --target 127.0.0.1:$SIM_IMAPS --protocol imap \
        --count "$LOGINS" -c "$LOGIN_CONCURRENCY" --pid "$SIM_PID"
    bench login --label floor --tls --target 127.0.0.1:$FLOOR --protocol imap \
        --count "$LOGINS" -c "$LOGIN_CONCURRENCY" --pid "$FLOOR_PID"
done
bench login --label direct-tls --tls --target 127.0.0.1:$SIM_IMAPS --protocol imap \
    --count "$LATENCY_LOGINS" -c "$LATENCY_CONCURRENCY"

echo "== login" >&2
login_runs direct direct "$SIM_PID"
login_runs nginx 22 "${NGINX_PIDS[@]}"
login_runs pec-proxy 21 "$PASS_PID"
login_runs pec-proxy-store 23 "$STORE_PID"

echo "== bulk" >&2
for proto in imap pop3; do
    sport=$SIM_IMAP port=993
    if [[ $proto == pop3 ]]; then sport=$SIM_POP3 port=995; fi
    for _ in $(seq "$RUNS"); do
        bench bulk --label direct --target 127.0.0.1:$sport --protocol $proto -m "$BULK_COUNT" --pid "$SIM_PID"
        bench bulk --label nginx --target 127.0.0.1:22$port --tls --protocol $proto -m "$BULK_COUNT" "${nginx_pidargs[@]}"
        bench bulk --label pec-proxy --target 127.0.0.1:21$port --tls --protocol $proto -m "$BULK_COUNT" --pid "$PASS_PID"
        if [[ $proto == imap ]]; then
            bench bulk --label direct-tls --target 127.0.0.1:$SIM_IMAPS --tls --protocol imap -m "$BULK_COUNT" --pid "$SIM_PID"
            bench bulk --label floor --target 127.0.0.1:$FLOOR --tls --protocol imap -m "$BULK_COUNT" --pid "$FLOOR_PID"
        fi
    done
done

echo "== idle ($IDLE_SESSIONS sessions)" >&2
bench idle --label nginx --target 127.0.0.1:22993 --tls -k "$IDLE_SESSIONS" "${nginx_pidargs[@]}"
bench idle --label pec-proxy --target 127.0.0.1:21993 --tls -k "$IDLE_SESSIONS" --pid "$PASS_PID"

echo "== openssl speed -evp aes-256-gcm" >&2
openssl speed -evp aes-256-gcm -seconds 2 2>/dev/null | tail -1 | tee "$WORK/aes.txt" >&2

python3 "$REPO/benches/compare_table.py" "$RESULTS" "$WORK/aes.txt"
echo >&2
echo "raw results: $RESULTS" >&2
