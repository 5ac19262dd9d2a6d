#!/usr/bin/env bash
# Checks systemd/pec-proxy.service offline, without installing anything:
#
#     systemd/verify.sh [BINARY]
#
# `systemd-analyze verify` insists that ExecStart's binary exists, so it
# checks a copy of the unit whose /usr/bin/pec-proxy is replaced by BINARY
# (default: the debug build, built here if missing). Then prints the
# `systemd-analyze security --offline=yes` exposure score (README records it)
# and fails if it rises above 2.0 (a hardening line was lost).
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
binary=${1:-$target/debug/pec-proxy}
if [[ ! -x "$binary" && $# -eq 0 ]]; then
    cargo build --quiet --bin pec-proxy
fi
[[ -x "$binary" ]] || { echo "verify.sh: $binary is not an executable" >&2; exit 1; }
binary=$(realpath "$binary")
command -v systemd-analyze >/dev/null || {
    echo "verify.sh: systemd-analyze missing: run scripts/install-test-deps.sh (Debian package systemd)" >&2
    exit 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s#/usr/bin/pec-proxy#$binary#g" systemd/pec-proxy.service >"$tmp/pec-proxy.service"
systemd-analyze verify "$tmp/pec-proxy.service"
echo "systemd-analyze verify: OK"
systemd-analyze security --offline=yes --threshold=20 --no-pager "$tmp/pec-proxy.service" >"$tmp/security" || {
    cat "$tmp/security"
    echo "verify.sh: exposure above 2.0" >&2
    exit 1
}
tail -n 1 "$tmp/security"
