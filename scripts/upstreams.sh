#!/usr/bin/env bash
# Run a PRIVATE Dovecot + Postfix pair on loopback for tests and demos.
#
#   scripts/upstreams.sh start DIR [--owner-pid PID] [--rm-on-owner-exit]
#   scripts/upstreams.sh stop DIR
#   scripts/upstreams.sh add-user DIR ADDRESS PASSWORD
#   scripts/upstreams.sh env DIR          # print the KEY=VALUE lines again
#
# Must run as root (Dovecot and Postfix drop privileges themselves). Needs the
# packages of scripts/install-test-deps.sh.
#
# `start` writes every config, queue, mailbox and log under DIR (created if
# missing; a fresh mktemp dir is fine; keep its path under ~70 characters,
# Dovecot's unix sockets live in it), picks free loopback ports, starts Dovecot
# and Postfix, waits until every port answers (20 s at most), seeds mail, and
# prints ONLY KEY=VALUE lines on stdout (also saved as DIR/upstreams.env);
# everything else goes to stderr:
#   IMAP_PORT IMAPS_PORT POP3_PORT POP3S_PORT LMTP_PORT SUBMISSION_PORT
#   DOVECOT_SUBMISSION_PORT IMAP_HAPROXY_PORT MASTER_USER MASTER_PASSWORD
#   MAILDIR_ROOT USERS_FILE DOVECOT_LOG POSTFIX_LOG DOVECOT_CONF POSTFIX_CONF_DIR
#   CA_CERT DIR
# All listeners are on 127.0.0.1. TLS on the Dovecot/Postfix side uses
# certs/upstream.pem (SAN localhost, 127.0.0.1; CA certs/ca.pem).
#
# Users (passwd-file USERS_FILE, {PLAIN} passwords): alice@pec.example /
# alice-secret, bob@pec.example / bob-secret, shared@pec.example /
# shared-secret, carol@pec.example / carol-secret. Master user: proxy-master
# (log in as "alice@pec.example*proxy-master", or SASL PLAIN authzid=alice@...,
# authcid=proxy-master). Seeded: alice's INBOX has 2 messages, shared's 1.
# Mailbox layout: the INBOX of local@domain is the maildir
#   $MAILDIR_ROOT/<domain>/<local>/Maildir   (names lower-cased; cur/ and new/)
#
# Postfix (SUBMISSION_PORT): plain SMTP with STARTTLS offered, AUTH PLAIN/LOGIN
# through Dovecot SASL, XCLIENT allowed from 127.0.0.0/8 (XCLIENT LOGIN=x counts
# as authenticated), recipients accepted only from authenticated clients.
# Every domain in DIR/postfix/etc/virtual_domains (pec.example, plus those of
# users added with add-user) is delivered to Dovecot over LMTP; mail for any
# other domain goes to the error: transport (bounced to the sender, never
# sent out). Dovecot submission (DOVECOT_SUBMISSION_PORT) accepts AUTH PLAIN
# (with master user / authzid) and relays to Postfix's SUBMISSION_PORT with
# XCLIENT ADDR=<client> LOGIN=<user> (submission_relay_trusted), so Postfix
# applies the same rules as for a direct submission.
#
# Test-friendly auth: auth_failure_delay = 0 and the anvil auth penalty is off
# (otherwise failed logins from 127.0.0.1 are delayed 2-15 s, even from
# login_trusted_networks). Login services run in high-performance mode
# (service_count = 0).
#
# --owner-pid PID: a detached watchdog runs `stop DIR` once PID has exited;
# with --rm-on-owner-exit it then also deletes DIR.
# `stop` stops only the daemons of DIR (by the pid files in DIR), waits for
# every process of both instances to be gone, and is idempotent.
set -euo pipefail

# System tools only (a pyenv shim in PATH costs ~1 s per python3 call).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
PY=/usr/bin/python3
SELF=$(readlink -f "$0")
# shellcheck source=lib/owner.sh
source "$(dirname "$SELF")/lib/owner.sh"
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
MASTER_USER=proxy-master
START_TIMEOUT=20

say() { echo "upstreams: $*" >&2; }
die() {
    say "ERROR: $*"
    exit 1
}

usage() {
    sed -n '2,8p' "$SELF" >&2
    exit 2
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (Dovecot and Postfix drop privileges themselves)"
}

check_deps() {
    local b
    for b in /usr/sbin/dovecot /usr/sbin/postfix /usr/bin/python3 /usr/lib/dovecot/lmtp \
        /usr/lib/dovecot/imap /usr/lib/dovecot/pop3 /usr/lib/dovecot/submission; do
        [[ -x "$b" ]] || die "$b is missing: run scripts/install-test-deps.sh (as root)"
    done
}

abs_dir() {
    # Absolute path of an existing directory.
    (cd "$1" && pwd -P)
}

# ---------------------------------------------------------------- processes

# Prints the pids of the direct children of PID (from /proc: no procps needed).
children_of() {
    local f line rest ppid
    for f in /proc/[0-9]*/stat; do
        { read -r line <"$f"; } 2>/dev/null || continue
        rest=${line##*) }
        read -r _ ppid _ <<<"$rest"
        if [[ "$ppid" == "$1" ]]; then
            f=${f#/proc/}
            echo "${f%/stat}"
        fi
    done
}

# alive PID: the process exists and is not a zombie.

# exe_under PID PREFIX...: the process's executable lives under one of the prefixes.
exe_under() {
    local pid=$1 exe p
    shift
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    for p in "$@"; do
        [[ "$exe" == "$p"* ]] && return 0
    done
    return 1
}

# wait_gone SECONDS PID...: returns 0 once none is alive, 1 on timeout.
wait_gone() {
    local deadline=$((SECONDS + $1)) p any
    shift
    while :; do
        any=0
        for p in "$@"; do
            if alive "$p"; then any=1; fi
        done
        [[ $any -eq 0 ]] && return 0
        [[ $SECONDS -ge $deadline ]] && return 1
        sleep 0.1
    done
}

# stop_tree NAME PIDFILE EXE_PREFIXES...: SIGTERM the master whose pid is in
# PIDFILE (if it is still that program), wait for it and the children it had,
# SIGKILL what is left after 10 s.
stop_tree() {
    local name=$1 pidfile=$2 pid kids=() p
    shift 2
    [[ -s "$pidfile" ]] || return 0
    pid=$(tr -dc '0-9' <"$pidfile")
    if [[ -z "$pid" ]] || ! alive "$pid" || ! exe_under "$pid" "$@"; then
        rm -f "$pidfile"
        return 0
    fi
    for p in $(children_of "$pid"); do
        exe_under "$p" "$@" && kids+=("$p")
    done
    say "stopping $name (master pid $pid, ${#kids[@]} children)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone 10 "$pid" "${kids[@]}"; then
        say "$name did not exit within 10 s: SIGKILL"
        for p in "$pid" "${kids[@]}"; do
            if alive "$p" && exe_under "$p" "$@"; then kill -KILL "$p" 2>/dev/null || true; fi
        done
        wait_gone 5 "$pid" "${kids[@]}" || say "WARNING: some $name processes survived SIGKILL"
    fi
    rm -f "$pidfile"
}

cmd_stop() {
    local dir=$1
    [[ -d "$dir" ]] || return 0
    dir=$(abs_dir "$dir")
    rm -f "$dir/.running"
    # The watchdog notices .running is gone and exits; make sure of it unless
    # we are the watchdog.
    if [[ -z "${PEC_WATCHDOG:-}" && -s "$dir/watchdog.pid" ]]; then
        local wpid
        wpid=$(tr -dc '0-9' <"$dir/watchdog.pid")
        if [[ -n "$wpid" ]] && alive "$wpid" && grep -q "_watchdog" "/proc/$wpid/cmdline" 2>/dev/null; then
            kill -TERM "$wpid" 2>/dev/null || true
        fi
        rm -f "$dir/watchdog.pid"
    fi
    stop_tree postfix "$dir/postfix/queue/pid/master.pid" /usr/lib/postfix/ /usr/libexec/postfix/
    stop_tree dovecot "$dir/d/master.pid" /usr/sbin/dovecot /usr/lib/dovecot/ /usr/libexec/dovecot/
    return 0
}

# ---------------------------------------------------------------- watchdog

# cmd_watchdog: scripts/lib/owner.sh


# ---------------------------------------------------------------- ports

# Prints N distinct free TCP ports on 127.0.0.1, outside the ephemeral range
# (so outgoing test connections cannot take them), not handed out by another
# start in the last 2 minutes (a shared file under a lock).
pick_ports() {
    "$PY" - "$1" <<'EOF'
import fcntl, os, random, socket, sys, time
n = int(sys.argv[1])
lo, hi = 20000, 32767
try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        elo = int(f.read().split()[0])
    hi = min(hi, elo - 1)
except Exception:
    pass
if hi - lo < 1000:
    lo, hi = 10000, 19999
path = "/tmp/pec-upstreams-ports.lock"
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
fcntl.flock(fd, fcntl.LOCK_EX)
now = time.time()
recent = {}
with os.fdopen(os.dup(fd), "r+") as f:
    f.seek(0)
    for line in f:
        try:
            p, t = line.split()
            if now - float(t) < 120:
                recent[int(p)] = float(t)
        except ValueError:
            pass
    chosen = []
    tries = 0
    while len(chosen) < n:
        tries += 1
        if tries > 5000:
            sys.exit("no free ports found")
        p = random.randint(lo, hi)
        if p in recent or p in chosen:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            s.close()
        chosen.append(p)
    for p in chosen:
        recent[p] = now
    f.seek(0)
    f.truncate()
    f.write("".join(f"{p} {t}\n" for p, t in recent.items()))
print(" ".join(map(str, chosen)))
EOF
}

# ---------------------------------------------------------------- configs

write_dovecot_conf() {
    cat >"$DIR/dovecot/dovecot.conf" <<EOF
# Private Dovecot for pec-proxy tests; generated by scripts/upstreams.sh.
protocols = imap pop3 lmtp submission
listen = 127.0.0.1
base_dir = $DIR/d
instance_name = pec-upstreams-$INSTANCE
state_dir = $DIR/dovecot/state
log_path = $DIR/dovecot.log
auth_verbose = yes
verbose_proctitle = yes
shutdown_clients = yes
hostname = mail.pec.example

ssl = yes
ssl_cert = <$DIR/tls/upstream.pem
ssl_key = <$DIR/tls/upstream-key.pem
ssl_min_protocol = TLSv1.2

disable_plaintext_auth = no
auth_mechanisms = plain login
auth_master_user_separator = *
auth_username_format = %Lu
login_trusted_networks = 127.0.0.0/8 ::1
# IMAP_HAPROXY_PORT takes a PROXY protocol header first (pec-proxy's
# [upstream.imap] proxy_protocol = true), from loopback only.
haproxy_trusted_networks = 127.0.0.0/8 ::1
mail_max_userip_connections = 10000

first_valid_uid = $MAIL_UID
first_valid_gid = $MAIL_GID
mail_uid = $MAIL_UID
mail_gid = $MAIL_GID
mail_location = maildir:$DIR/mail/%d/%n/Maildir
mail_home = $DIR/mail/%d/%n

default_process_limit = 1000
default_client_limit = 10000
default_vsz_limit = 512M

# The master passdb must come before the normal one.
passdb {
  driver = passwd-file
  master = yes
  pass = yes
  args = scheme=PLAIN $DIR/dovecot/masters
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%Lu $DIR/dovecot/users
}
userdb {
  driver = passwd-file
  args = username_format=%Lu $DIR/dovecot/users
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $IMAPS_PORT
    ssl = yes
  }
  inet_listener imap_haproxy {
    address = 127.0.0.1
    port = $IMAP_HAPROXY_PORT
    haproxy = yes
  }
  service_count = 0
  process_min_avail = 1
  process_limit = 32
  client_limit = 1000
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $POP3_PORT
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = $POP3S_PORT
    ssl = yes
  }
  service_count = 0
  process_min_avail = 1
  process_limit = 32
  client_limit = 1000
}
service submission-login {
  inet_listener submission {
    address = 127.0.0.1
    port = $DOVECOT_SUBMISSION_PORT
  }
  service_count = 0
  process_min_avail = 1
  process_limit = 32
  client_limit = 1000
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $LMTP_PORT
  }
}
service imap {
  process_limit = 4000
}
service pop3 {
  process_limit = 2000
}
# No failure delay and no per-IP auth penalty: every test client is 127.0.0.1.
auth_failure_delay = 0
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service auth {
  client_limit = 20000
  unix_listener auth-postfix {
    mode = 0660
    user = postfix
    group = postfix
  }
}

submission_relay_host = 127.0.0.1
submission_relay_port = $SUBMISSION_PORT
# Trusted: Dovecot sends XCLIENT ADDR=... LOGIN=<user> to Postfix, which makes
# the relayed session count as authenticated there.
submission_relay_trusted = yes
submission_relay_ssl = no

protocol lmtp {
  postmaster_address = postmaster@pec.example
}
EOF
}

# Postfix re-reads a config file that is less than 2 s old, sleeping 300 ms
# each time, until it is older (a guard against half-written files); date
# freshly written files back so that start and reload do not wait.
backdate() {
    touch -d '1 minute ago' "$@"
}

write_postfix_conf() {
    local etc=$DIR/postfix/etc
    cat >"$etc/main.cf" <<EOF
# Private Postfix for pec-proxy tests; generated by scripts/upstreams.sh.
compatibility_level = 3.6
queue_directory = $DIR/postfix/queue
data_directory = $DIR/postfix/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $DIR/postfix.log
maillog_file_prefixes = $DIR
syslog_name = postfix-pec-$INSTANCE

myhostname = mx.pec.example
mydomain = pec.example
myorigin = pec.example
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
biff = no
append_dot_mydomain = no
smtp_dns_support_level = disabled
lmtp_dns_support_level = disabled
smtpd_peername_lookup = no

# Nothing ever leaves this machine.
default_transport = error:outside mail is disabled in the pec-proxy test upstreams
relay_transport = error:outside mail is disabled in the pec-proxy test upstreams
local_transport = error:local delivery is disabled in the pec-proxy test upstreams
relay_domains =
relayhost =

virtual_mailbox_domains = $etc/virtual_domains
virtual_mailbox_maps = regexp:$etc/virtual_mailboxes.regexp
virtual_transport = lmtp:inet:127.0.0.1:$LMTP_PORT

message_size_limit = 52428800
mailbox_size_limit = 0
virtual_mailbox_limit = 0

smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = $DIR/d/auth-postfix
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
smtpd_tls_security_level = may
smtpd_tls_chain_files = $DIR/tls/upstream-key.pem, $DIR/tls/upstream.pem
smtpd_tls_loglevel = 1
smtpd_tls_session_cache_database =
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
EOF
    cat >"$etc/master.cf" <<EOF
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:$SUBMISSION_PORT inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
    echo "pec.example" >"$etc/virtual_domains"
    # Any local part in a virtual domain is accepted here; Dovecot's LMTP
    # rejects unknown users (Postfix then bounces to the sender).
    echo '/^[^@]+@[^@]+$/ OK' >"$etc/virtual_mailboxes.regexp"
    backdate "$etc"/*
}

add_user_line() {
    # add_user_line DIR ADDRESS PASSWORD
    local dir=$1 addr pass=$3
    addr=$(tr '[:upper:]' '[:lower:]' <<<"$2")
    [[ "$addr" =~ ^[^@:[:space:]*]+@[^@:[:space:]*]+$ ]] || die "bad address '$2' (want local@domain, no ':' or '*')"
    [[ "$pass" != *:* && "$pass" != *$'\n'* ]] || die "password must not contain ':' or a newline"
    local users=$dir/dovecot/users tmp old_mtime=0 new_mtime
    tmp=$(mktemp "$users.XXXXXX")
    if [[ -f "$users" ]]; then
        awk -F: -v a="$addr" '$1 != a' "$users" >"$tmp"
        old_mtime=$(stat -c %Y "$users")
    fi
    printf '%s:{PLAIN}%s::::::\n' "$addr" "$pass" >>"$tmp"
    chmod 640 "$tmp"
    chgrp dovecot "$tmp"
    # Dovecot re-reads the passwd-file when its mtime (in seconds) or size
    # differs from the copy it has: make every version's mtime strictly
    # larger, so that even a same-size rewrite within one second is seen.
    new_mtime=$(date +%s)
    ((new_mtime > old_mtime)) || new_mtime=$((old_mtime + 1))
    touch -d "@$new_mtime" "$tmp"
    # Atomic replace: a lookup never sees a half-written file.
    mv -f "$tmp" "$users"
}

# ---------------------------------------------------------------- start

wait_ready() {
    # Waits until every port answers, at most START_TIMEOUT seconds.
    "$PY" - "$START_TIMEOUT" "$@" <<'EOF'
import socket, ssl, sys, time
timeout = float(sys.argv[1])
checks = []
for spec in sys.argv[2:]:
    name, port, kind = spec.split(":")
    checks.append((name, int(port), kind))
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
deadline = time.time() + timeout
pending = list(checks)
last = {}
while pending and time.time() < deadline:
    still = []
    for name, port, kind in pending:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                if kind == "tls":
                    with ctx.wrap_socket(s) as t:
                        t.settimeout(2)
                        greet = t.recv(512)
                else:
                    s.settimeout(2)
                    greet = s.recv(512)
            if not greet:
                raise OSError("closed without a greeting")
            if not (greet.startswith(b"* OK") or greet.startswith(b"+OK") or greet.startswith(b"220")):
                raise OSError("unexpected greeting %r" % greet[:80])
        except Exception as e:
            last[name] = str(e)
            still.append((name, port, kind))
    pending = still
    if pending:
        time.sleep(0.1)
if pending:
    for name, port, kind in pending:
        print("upstreams: %s (port %d) not answering: %s" % (name, port, last.get(name)), file=sys.stderr)
    sys.exit(1)
EOF
}

seed_mail() {
    "$PY" - "$LMTP_PORT" <<'EOF'
import smtplib, sys, time
port = int(sys.argv[1])
def msg(frm, to, subj, body, n):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: Mon, 1 Jan 2024 10:0%d:00 +0000\r\n"
            "Message-ID: <seed-%d@pec.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n"
            % (frm, to, subj, n, n, body)).encode()
seeds = [
    ("bob@pec.example", "alice@pec.example", "Seed 1 for alice", "First seeded message.", 1),
    ("carol@pec.example", "alice@pec.example", "Seed 2 for alice", "Second seeded message.", 2),
    ("alice@pec.example", "shared@pec.example", "Seed 1 for shared", "Seeded message of the shared mailbox.", 3),
]
c = smtplib.LMTP("127.0.0.1", port, timeout=10)
for frm, to, subj, body, n in seeds:
    c.sendmail(frm, [to], msg(frm, to, subj, body, n))
c.quit()
EOF
}

show_tails() {
    local f
    for f in "$DIR/dovecot.log" "$DIR/dovecot.out" "$DIR/postfix.log" "$DIR/postfix.out"; do
        if [[ -s "$f" ]]; then
            say "---- tail of $f"
            tail -n 30 "$f" >&2
        fi
    done
}

start_failed() {
    say "start FAILED: $*"
    show_tails
    cmd_stop "$DIR" || true
    exit 1
}

cmd_start() {
    DIR=$1
    shift
    owner_options "$@"
    need_root
    check_deps
    mkdir -p "$DIR"
    DIR=$(abs_dir "$DIR")
    [[ ${#DIR} -le 70 ]] || die "DIR path too long for Dovecot's unix sockets (${#DIR} > 70 chars): $DIR"
    [[ ! -e "$DIR/.running" ]] || die "$DIR already runs upstreams (stop it first)"
    local t0=$SECONDS
    INSTANCE=$(basename "$DIR" | tr -c 'A-Za-z0-9_\n-' '_')
    MAIL_UID=$(id -u mail)
    MAIL_GID=$(id -g mail)

    # Dovecot's unprivileged processes (dovecot, dovenull, mail) and Postfix's
    # (postfix) must traverse DIR.
    chmod 755 "$DIR"
    rm -rf "$DIR/d" "$DIR/postfix/queue/pid"
    mkdir -p "$DIR/dovecot/state" "$DIR/tls" "$DIR/postfix/etc" "$DIR/postfix/queue" "$DIR/mail"
    chmod 755 "$DIR/dovecot" "$DIR/postfix" "$DIR/postfix/etc"
    chown mail:mail "$DIR/mail"
    chmod 755 "$DIR/mail"
    install -m 644 "$REPO/certs/upstream.pem" "$DIR/tls/upstream.pem"
    install -m 640 -g postfix "$REPO/certs/upstream-key.pem" "$DIR/tls/upstream-key.pem"
    chmod 755 "$DIR/tls"

    local ports
    ports=$(pick_ports 8) || die "could not pick free ports"
    read -r IMAP_PORT IMAPS_PORT POP3_PORT POP3S_PORT LMTP_PORT SUBMISSION_PORT \
        DOVECOT_SUBMISSION_PORT IMAP_HAPROXY_PORT <<<"$ports"

    MASTER_PASSWORD=${PEC_UPSTREAMS_MASTER_PASSWORD:-$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')}
    printf '%s:{PLAIN}%s\n' "$MASTER_USER" "$MASTER_PASSWORD" >"$DIR/dovecot/masters"
    chgrp dovecot "$DIR/dovecot/masters"
    chmod 640 "$DIR/dovecot/masters"
    : >"$DIR/dovecot/users"
    add_user_line "$DIR" alice@pec.example alice-secret
    add_user_line "$DIR" bob@pec.example bob-secret
    add_user_line "$DIR" shared@pec.example shared-secret
    add_user_line "$DIR" carol@pec.example carol-secret

    write_dovecot_conf
    write_postfix_conf
    touch "$DIR/.running"

    say "starting dovecot ($DIR/dovecot/dovecot.conf)"
    /usr/sbin/dovecot -c "$DIR/dovecot/dovecot.conf" </dev/null >>"$DIR/dovecot.out" 2>&1 ||
        start_failed "dovecot did not start"

    say "starting postfix ($DIR/postfix/etc)"
    # `postfix start` creates the queue directories with the right owners
    # (post-install create-missing) before it starts the master.
    postfix -c "$DIR/postfix/etc" start </dev/null >>"$DIR/postfix.out" 2>&1 ||
        start_failed "postfix did not start"

    wait_ready "imap:$IMAP_PORT:plain" "imaps:$IMAPS_PORT:tls" "pop3:$POP3_PORT:plain" \
        "pop3s:$POP3S_PORT:tls" "lmtp:$LMTP_PORT:plain" "submission:$SUBMISSION_PORT:plain" \
        "dovecot-submission:$DOVECOT_SUBMISSION_PORT:plain" ||
        start_failed "not every port answered within ${START_TIMEOUT}s"

    seed_mail || start_failed "could not seed mail over LMTP"

    start_watchdog "$DIR"

    cat >"$DIR/upstreams.env" <<EOF
IMAP_PORT=$IMAP_PORT
IMAPS_PORT=$IMAPS_PORT
POP3_PORT=$POP3_PORT
POP3S_PORT=$POP3S_PORT
LMTP_PORT=$LMTP_PORT
SUBMISSION_PORT=$SUBMISSION_PORT
DOVECOT_SUBMISSION_PORT=$DOVECOT_SUBMISSION_PORT
IMAP_HAPROXY_PORT=$IMAP_HAPROXY_PORT
MASTER_USER=$MASTER_USER
MASTER_PASSWORD=$MASTER_PASSWORD
MAILDIR_ROOT=$DIR/mail
USERS_FILE=$DIR/dovecot/users
DOVECOT_LOG=$DIR/dovecot.log
POSTFIX_LOG=$DIR/postfix.log
DOVECOT_CONF=$DIR/dovecot/dovecot.conf
POSTFIX_CONF_DIR=$DIR/postfix/etc
CA_CERT=$REPO/certs/ca.pem
DIR=$DIR
EOF
    say "ready in $((SECONDS - t0)) s: imap $IMAP_PORT, imaps $IMAPS_PORT, pop3 $POP3_PORT, pop3s $POP3S_PORT, lmtp $LMTP_PORT, postfix submission $SUBMISSION_PORT, dovecot submission $DOVECOT_SUBMISSION_PORT"
    cat "$DIR/upstreams.env"
}

cmd_add_user() {
    local dir addr=$2 pass=$3 domain etc
    dir=$(abs_dir "$1")
    [[ -f "$dir/dovecot/users" ]] || die "$dir has no upstreams (run start first)"
    # Tests add users from parallel threads: serialise the read-modify-write
    # (but not the wait below).
    (
        flock 9
        add_user_line "$dir" "$addr" "$pass"
    ) 9>"$dir/.add-user.lock" || exit 1
    # Dovecot stats the passwd-file at most once per second (per auth
    # process), so a lookup in the same second as the previous one may still
    # see the old copy: wait (bounded) until this very password logs in and
    # the userdb (LMTP) knows the user.
    if [[ -e "$dir/.running" ]]; then
        local i ok=0 conf=$dir/dovecot/dovecot.conf
        for i in $(seq 1 60); do
            # `user` first: a failed `auth test` costs Dovecot's 0.5 s delay.
            if doveadm -c "$conf" user "$addr" >/dev/null 2>&1 &&
                doveadm -c "$conf" auth test "$addr" "$pass" >/dev/null 2>&1; then
                ok=1
                break
            fi
            sleep 0.05
        done
        [[ $ok -eq 1 ]] || say "WARNING: Dovecot does not accept $addr yet (after $i tries)"
    fi
    domain=$(tr '[:upper:]' '[:lower:]' <<<"${addr#*@}")
    etc=$dir/postfix/etc
    (
        flock 9
        if ! grep -qxF "$domain" "$etc/virtual_domains"; then
            echo "$domain" >>"$etc/virtual_domains"
            backdate "$etc/virtual_domains"
            if [[ -e "$dir/.running" ]]; then
                say "new domain $domain: reloading postfix"
                postfix -c "$etc" reload </dev/null >>"$dir/postfix.out" 2>&1 ||
                    say "WARNING: postfix reload failed"
            fi
        fi
    ) 9>"$dir/.add-user.lock" || exit 1
    say "added $addr"
}

[[ $# -ge 1 ]] || usage
case "$1" in
    start)
        [[ $# -ge 2 ]] || usage
        shift
        cmd_start "$@"
        ;;
    stop)
        [[ $# -eq 2 ]] || usage
        cmd_stop "$2"
        ;;
    add-user)
        [[ $# -eq 4 ]] || usage
        cmd_add_user "$2" "$3" "$4"
        ;;
    env)
        [[ $# -eq 2 ]] || usage
        cat "$2/upstreams.env"
        ;;
    _watchdog)
        [[ $# -eq 5 ]] || usage
        cmd_watchdog "$2" "$3" "$4" "$5"
        ;;
    *) usage ;;
esac
