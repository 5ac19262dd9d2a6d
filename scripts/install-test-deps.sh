#!/usr/bin/env bash
# Install what the integration tests and demos need to run REAL Dovecot,
# Postfix (see scripts/upstreams.sh) and PostgreSQL (scripts/postgres.sh)
# privately, without starting any system service.
#
#     scripts/install-test-deps.sh           # install what is missing (root, apt-get)
#     scripts/install-test-deps.sh --check   # only report; exit 1 if anything is missing
#
# Idempotent and quick when everything is present (checked with dpkg-query).
# When something is missing it, as root:
#   - preseeds Postfix to "No configuration" (debconf-set-selections), so the
#     system instance is neither configured nor started;
#   - sets create_main_cluster = false in
#     /etc/postgresql-common/createcluster.conf (kept over the package's
#     version: UCF_FORCE_CONFFOLD), so installing PostgreSQL creates no
#     system "main" cluster (tests run private clusters; a main cluster made
#     earlier is left alone, and stays stopped);
#   - creates /usr/sbin/policy-rc.d exiting 101 (only if none exists), so
#     package scripts start no system service (it is left in place);
#   - runs apt-get update and apt-get install -y of the packages below.
set -euo pipefail

PACKAGES=(
    dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-submissiond
    postfix swaks libnet-ssleay-perl curl openssl python3 ca-certificates
    prometheus systemd postgresql
)

check_only=0
case "${1:-}" in
    --check) check_only=1 ;;
    "") ;;
    -h | --help)
        sed -n '2,20p' "$0"
        exit 0
        ;;
    *)
        echo "usage: $0 [--check]" >&2
        exit 2
        ;;
esac

say() { echo "install-test-deps: $*" >&2; }

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "installed" ]]; then
        missing+=("$pkg")
    fi
done
# The binaries the scripts call, in case a package is installed but broken.
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    say "missing PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb)"
    [[ ${#missing[@]} -gt 0 ]] || missing+=("${PACKAGES[@]}")
fi
for bin in /usr/sbin/dovecot /usr/sbin/postfix /usr/bin/doveadm /usr/bin/swaks /usr/bin/python3 /usr/bin/openssl \
    /usr/bin/promtool /usr/bin/systemd-analyze /usr/bin/psql /usr/bin/pg_isready; do
    if [[ ! -x "$bin" ]]; then
        say "missing binary $bin"
        [[ ${#missing[@]} -gt 0 ]] || missing+=("${PACKAGES[@]}")
    fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
    say "all test dependencies present (${PACKAGES[*]})"
    exit 0
fi

if [[ $check_only -eq 1 ]]; then
    say "MISSING packages: ${missing[*]}"
    say "run scripts/install-test-deps.sh as root to install them"
    exit 1
fi

if [[ $(id -u) -ne 0 ]]; then
    say "missing packages: ${missing[*]}; must run as root to install them" >&2
    exit 1
fi

say "missing packages: ${missing[*]}"
say "preseeding postfix/main_mailer_type = No configuration"
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections

cc=/etc/postgresql-common/createcluster.conf
if ! grep -Eqs '^[[:space:]]*create_main_cluster[[:space:]]*=[[:space:]]*(false|off|no)' "$cc"; then
    say "setting create_main_cluster = false in $cc (no system PostgreSQL cluster)"
    mkdir -p "${cc%/*}"
    echo "create_main_cluster = false" >>"$cc"
fi

if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    say "creating /usr/sbin/policy-rc.d (exit 101: package scripts start no service)"
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
else
    say "keeping existing /usr/sbin/policy-rc.d"
fi

say "apt-get update"
apt-get update
say "apt-get install -y ${PACKAGES[*]}"
DEBIAN_FRONTEND=noninteractive UCF_FORCE_CONFFOLD=1 apt-get install -y "${PACKAGES[@]}"
say "done"
