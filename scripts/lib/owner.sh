# shellcheck shell=bash
# Sourced by scripts/upstreams.sh and scripts/postgres.sh: whether a process
# lives, its start time (to tell a reused pid), and the watchdog that stops
# a script's private servers once the process that started them is gone.
# The sourcing script defines `say MESSAGE`, `die MESSAGE`, `usage`, SELF
# (its own path, for the detached watchdog) and `cmd_stop DIR`; cmd_stop
# leaves the watchdog alone when PEC_WATCHDOG is set (the watchdog is the
# one calling it).

alive() {
    local state
    [[ -r /proc/$1/stat ]] || return 1
    state=$(sed -E 's/^[0-9]+ \(.*\) (.) .*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

proc_starttime() {
    # Field 22 of /proc/PID/stat (after the parenthesised comm), to detect pid reuse.
    sed -E 's/^[0-9]+ \(.*\) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'
}

# _watchdog DIR OWNER_PID OWNER_STARTTIME RM(0|1): every 0.5 s, while
# DIR/.running exists, checks the owner; once it is gone (or its pid was
# reused), stops DIR's servers and, with RM=1, deletes DIR.
cmd_watchdog() {
    local dir=$1 owner=$2 start=$3 rm=$4
    echo $$ >"$dir/watchdog.pid"
    trap 'exit 0' TERM
    while [[ -e "$dir/.running" ]]; do
        if ! alive "$owner" || [[ "$(proc_starttime "$owner")" != "$start" ]]; then
            say "owner pid $owner is gone: stopping $dir"
            PEC_WATCHDOG=1 cmd_stop "$dir"
            rm -f "$dir/watchdog.pid"
            if [[ $rm -eq 1 ]]; then
                cd /
                rm -rf "$dir"
            fi
            exit 0
        fi
        sleep 0.5
    done
    rm -f "$dir/watchdog.pid"
}

# owner_options ARGS...: a start command's options, --owner-pid PID and
# --rm-on-owner-exit, into OWNER and RM_ON_EXIT (anything else: usage);
# the owner must be a live process.
owner_options() {
    OWNER="" RM_ON_EXIT=0
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --owner-pid)
                [[ $# -ge 2 ]] || usage
                OWNER=$2
                shift 2
                ;;
            --rm-on-owner-exit)
                RM_ON_EXIT=1
                shift
                ;;
            *) usage ;;
        esac
    done
    if [[ -n "$OWNER" ]] && ! { [[ "$OWNER" =~ ^[0-9]+$ ]] && alive "$OWNER"; }; then
        die "--owner-pid $OWNER: no such process"
    fi
}

# start_watchdog DIR: with an OWNER, the detached watchdog of DIR
# (cmd_watchdog, through SELF's `_watchdog` command), logging to
# DIR/watchdog.log.
start_watchdog() {
    [[ -n "$OWNER" ]] || return 0
    local ost
    ost=$(proc_starttime "$OWNER")
    setsid "$SELF" _watchdog "$1" "$OWNER" "$ost" "$RM_ON_EXIT" </dev/null >>"$1/watchdog.log" 2>&1 &
    disown || true
}
