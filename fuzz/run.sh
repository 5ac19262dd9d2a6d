#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) each with its dictionary,
# starting from the committed seeds plus what earlier runs found
# (fuzz/corpus, not committed). Needs cargo-fuzz; on a stable toolchain
# RUSTC_BOOTSTRAP=1 lets it pass the sanitizer flags.
#
#     fuzz/run.sh            # 60 s per target
#     fuzz/run.sh 10 sasl    # 10 s, one target
#
# A crash is saved under fuzz/artifacts/TARGET/; copy it to
# fuzz/regressions/TARGET/ so `cargo test --test fuzz_smoke` replays it.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(imap_parse imap_frontend imap_guard sasl login_name
    pop3_parse pop3_frontend pop3_guard smtp_parse smtp_frontend smtp_guard address proxy_protocol)
declare -A dict=([imap_parse]=imap [imap_frontend]=imap [imap_guard]=imap [sasl]=sasl [login_name]=login_name
    [pop3_parse]=pop3 [pop3_frontend]=pop3 [pop3_guard]=pop3
    [smtp_parse]=smtp [smtp_frontend]=smtp [smtp_guard]=smtp [address]=address
    [proxy_protocol]=proxy_protocol)
export RUSTC_BOOTSTRAP=1
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
    echo "== $t: ${seconds}s"
    cargo fuzz run --target-dir "$target_dir" "$t" "corpus/$t" -- \
        -dict="dict/${dict[$t]}.dict" -max_total_time="$seconds" -max_len=4096 \
        -print_final_stats=1 2>&1 | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|.*panicked|Done)" || true
done
