#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine:
#
#     scripts/test.sh
#
# Installs what the integration tests need when it is missing (Dovecot,
# Postfix, PostgreSQL, swaks, curl, python3: Debian packages, as root), then
# runs every test: unit, parser known-answer tables, and the end-to-end tests
# that start real Dovecot and Postfix (scripts/upstreams.sh) and private
# PostgreSQL clusters (scripts/postgres.sh; never the system service) on
# loopback high ports with private configs.
# Extra arguments go to `cargo test` (e.g. scripts/test.sh --test e2e imap::).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh
# Tests start private Dovecot instances and many sockets; integration test
# binaries run one after another, tests inside each in parallel.
cargo test --all-targets "$@"
# The tests that run the proxy with an account store, again with a
# PostgreSQL store (a private cluster per test binary, tests/support/postgres.rs):
# the same tests, one harness (tests/support/operator.rs).
if [[ $# -eq 0 ]]; then
    PEC_PROXY_TEST_STORE=postgres cargo test --test e2e --test penalty_series
fi
