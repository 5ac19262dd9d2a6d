#!/usr/bin/env bash
# The account store's cost, in one run against the same upstream simulator:
#   - CPU per IMAPS login and logins/s with the SQLite store and with the
#     PostgreSQL store (a private cluster: scripts/postgres.sh), credentials
#     cached, access log on; the PostgreSQL server's own CPU beside it;
#   - CPU per failed login (a wrong password, argon2id-checked) on one node
#     with its own penalty (SQLite) and on a fleet node whose penalty is
#     shared over PostgreSQL (each failure an event: insert + NOTIFY).
# See benches/README.md ("The account store on PostgreSQL").
#
#   benches/store.sh              # ~2 minutes
#   RUNS=3 LOGINS=5000 benches/store.sh
#
# Every process started here is stopped on exit; nothing is installed.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
LOGINS=${LOGINS:-3000}
FAILED=${FAILED:-300}
CONCURRENCY=${CONCURRENCY:-8}
RUNS=${RUNS:-3}
WORK=$(mktemp -d /tmp/pec-store-bench.XXXXXX)
chmod 0755 "$WORK" # the cluster runs as the postgres user when we are root
RESULTS=$WORK/results.txt
SIM_IMAP=25143 SQLITE=26 POSTGRES=27 PG_PORT=25432

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    bash "$REPO/scripts/postgres.sh" stop "$WORK/pg" >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "== building (release)" >&2
cargo build --release --bins -q
BENCH=$TARGET_DIR/release/pec-proxy-bench
PROXY=$TARGET_DIR/release/pec-proxy

wait_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "port $1 never opened" >&2
    exit 1
}

echo "== upstream simulator, PostgreSQL" >&2
"$BENCH" --threads 2 upstream-sim --imap 127.0.0.1:$SIM_IMAP --lifetime-secs 1800 2>"$WORK/sim.log" &
pids+=("$!")
PG_URL=$(bash scripts/postgres.sh start "$WORK/pg" $PG_PORT --owner-pid $$)
PGPASSWORD=$(cat "$WORK/pg/password")
export PGPASSWORD
openssl rand -hex 32 >"$WORK/fleet-key"
echo "sim-master-password" >"$WORK/master"

config() { # $1 port prefix, $2 [store] keys
    cat <<TOML
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

[upstream.imap]
address = "127.0.0.1:$SIM_IMAP"
tls = "none"
send_client_address = false
login = "master-user"
master_user = "proxy-master"
master_password_file = "$WORK/master"

[store]
$2

# The penalty counts every failure (no trusted networks) and never delays
# or refuses for long, so the failed-login runs measure the counting.
[penalty]
initial_delay_ms = 1
max_delay_ms = 1
ip_refuse_after = 0
mailbox_refuse_after = 0

[limits]
max_connections_per_ip = 1000
max_prelogin_per_ip = 1000

[metrics]
listen = "127.0.0.1:${1}925"
TOML
}

config $SQLITE "path = \"$WORK/accounts.db\"" >"$WORK/sqlite.toml"
config $POSTGRES "url = \"$PG_URL\"
password_file = \"$WORK/pg/password\"
sslmode = \"disable\"
fleet_key_file = \"$WORK/fleet-key\"
control_socket = \"$WORK/pg.sock\"" >"$WORK/postgres.toml"

"$PROXY" store migrate --store "$PG_URL" >/dev/null
for store in "$WORK/accounts.db" "$PG_URL"; do
    echo "bench-password" | "$PROXY" mailbox add bench@pec.example --password-stdin --store "$store" >/dev/null
done
"$PROXY" run -c "$WORK/sqlite.toml" >"$WORK/sqlite.log" 2>&1 &
SQLITE_PID=$!
pids+=("$SQLITE_PID")
"$PROXY" run -c "$WORK/postgres.toml" >"$WORK/postgres.log" 2>&1 &
POSTGRES_PID=$!
pids+=("$POSTGRES_PID")
wait_port ${SQLITE}993
wait_port ${POSTGRES}993

# The cluster's CPU seconds so far: the postmaster and its children.
pg_cpu() {
    local main
    main=$(head -1 "$WORK/pg/data/postmaster.pid")
    { echo "$main"; pgrep -P "$main"; } | while read -r p; do
        awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || true
    done | awk -v hz="$(getconf CLK_TCK)" '{s += $1} END {printf "%.3f", s / hz}'
}

# Transactions committed and statements' rows so far in the bench database.
pg_xacts() {
    bash "$REPO/scripts/postgres.sh" psql "$WORK/pg" -At -c \
        "SELECT xact_commit || ' ' || tup_inserted FROM pg_stat_database WHERE datname = 'pecproxy'" pecproxy
}

run() { # $1 label, $2 port prefix, $3 pid, $4.. extra arguments
    local label=$1 prefix=$2 pid=$3
    shift 3
    local before after xb xa
    xb=$(pg_xacts)
    before=$(pg_cpu)
    "$BENCH" --threads 2 login --label "$label" --target "127.0.0.1:${prefix}993" --tls --protocol imap \
        -c "$CONCURRENCY" --pid "$pid" "$@" 2>>"$WORK/bench.err" | tee -a "$RESULTS" >&2
    after=$(pg_cpu)
    sleep 1 # the statistics collector's flush
    xa=$(pg_xacts)
    echo "PGCPU label=$label cpu_s=$(awk -v a="$after" -v b="$before" 'BEGIN {printf "%.3f", a - b}') \
xacts=$(( ${xa% *} - ${xb% *} )) inserted=$(( ${xa#* } - ${xb#* } ))" | tee -a "$RESULTS" >&2
}

echo "== logins (credentials cached, access log on), $RUNS runs, alternating" >&2
for _ in $(seq "$RUNS"); do
    run sqlite $SQLITE "$SQLITE_PID" --count "$LOGINS"
    run postgres $POSTGRES "$POSTGRES_PID" --count "$LOGINS"
done
echo "== failed logins (a wrong password each), $RUNS runs, alternating" >&2
for _ in $(seq "$RUNS"); do
    run sqlite-failed $SQLITE "$SQLITE_PID" --count "$FAILED" --warmup 10 --expect-refusal --password wrong
    run postgres-failed $POSTGRES "$POSTGRES_PID" --count "$FAILED" --warmup 10 --expect-refusal --password wrong
done
ROWS=$(bash scripts/postgres.sh psql "$WORK/pg" -At -c "SELECT count(*) FROM counter_events" pecproxy)

python3 - "$RESULTS" "$ROWS" <<'PY'
import re, statistics, sys
runs, pg, xacts = {}, {}, {}
for line in open(sys.argv[1]):
    f = dict(re.findall(r"(\w+)=(\S+)", line))
    if line.startswith("RESULT"):
        runs.setdefault(f["label"], []).append(f)
    elif line.startswith("PGCPU"):
        pg.setdefault(f["label"], []).append(float(f["cpu_s"]))
        xacts.setdefault(f["label"], []).append((int(f["xacts"]), int(f["inserted"])))
def med(label, key):
    return statistics.median(float(r[key]) for r in runs[label])
print("| run | logins/s | p50 ms | proxy CPU ms per login | PostgreSQL CPU ms per login | PostgreSQL transactions per login | rows inserted per login | errors |")
print("|---|---|---|---|---|---|---|---|")
for label in runs:
    n = statistics.median(int(r["logins"]) for r in runs[label])
    pgms = statistics.median(pg[label]) * 1e3 / max(n, 1)
    errors = ",".join(sorted({r["errors"] for r in runs[label]}))
    total = [int(r["logins"]) + 0 for r in runs[label]]
    tx = statistics.median(x / max(t, 1) for (x, _), t in zip(xacts[label], total))
    ins = statistics.median(i / max(t, 1) for (_, i), t in zip(xacts[label], total))
    print(f"| {label} | {med(label, 'per_sec'):.0f} | {med(label, 'p50_ms'):.3f} | "
          f"{med(label, 'cpu_ms_per_login'):.3f} | {pgms:.3f} | {tx:.2f} | {ins:.2f} | {errors} |")
ratio = med("postgres", "cpu_ms_per_login") / med("sqlite", "cpu_ms_per_login")
failed = med("postgres-failed", "cpu_ms_per_login") / med("sqlite-failed", "cpu_ms_per_login")
print(f"\nPostgreSQL store / SQLite store, proxy CPU per login: {ratio:.2f}x (target <= 1.2x)")
print(f"Failed login, fleet node (shared counters) / single node: {failed:.2f}x")
print(f"counter_events rows after the run: {sys.argv[2]}")
PY
echo "raw results: $RESULTS" >&2
